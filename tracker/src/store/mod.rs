//! The tracker's storage: the only module that knows about sled.
//!
//! One tree per record kind, typed keys (fixed-width user ids first, so a user's records are
//! one prefix scan), and versioned values (see [`codec`]). Reads go straight to the trees;
//! every write goes through one writer task ([`Writer`]) that applies a batch of writes and
//! then flushes once, answering each caller only after that flush: an acknowledged write
//! is durable, and durability costs one flush per batch instead of one per request (group
//! commit). With [`Durability::Fsync`] (the default, `[storage] fsync`) the flush is
//! followed by an `fdatasync` of sled's log file, because sled's flush is
//! `sync_file_range`, which survives a crash of the process but not power loss.
//!
//! Everything else in the tracker calls the typed operations on [`Store`] defined in this
//! module's children, one per record kind ([`accounts`], [`library`], [`billing`],
//! [`requests`], [`rooms`], [`network`], [`bindings`], [`pages`], [`preferences`]); none of them sees a sled type. Each write operation is one
//! writer job, and a change that spans trees runs in one sled transaction inside it. The
//! one exception is progress ([`Store::put_progress`]): plain inserts in a fixed order,
//! because a transaction per write capped durable progress writes (see
//! `library::write_progress`); history tolerates a crash between them.

pub mod accounts;
pub mod billing;
pub mod bindings;
pub mod codec;
pub mod library;
pub mod network;
pub mod pages;
pub mod preferences;
pub mod records;
pub mod requests;
pub mod rooms;

use std::future::Future;
use std::path::Path;

use tokio::sync::{mpsc, oneshot};

pub use accounts::{Created, EmailTokenError, Rotation};
pub mod oauth;
pub use billing::BillingApplied;
pub use bindings::{Announced, BindHow, BindOutcome, BindSpec, BindingRecord, IngestRecord};
pub use library::{HistoryRows, WatchAdd};
pub use network::{InviteRecord, NodeRecord, RedeemError};
pub use records::*;
pub use requests::{AskOutcome, AskQuota};

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("the storage writer has stopped")]
    Closed,
    #[error("cannot make {path} private (0700 directory, 0600 files): {source}")]
    Mode {
        path: std::path::PathBuf,
        source: std::sync::Arc<std::io::Error>,
    },
}

impl StoreError {
    /// Whether opening failed because another process (a running tracker) holds the
    /// database lock.
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Db(msg) if msg.contains("could not acquire lock"))
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

/// The trees, one per record kind (private to the store).
#[derive(Clone)]
struct Trees {
    db: sled::Db,
    /// user id → [`User`]
    users: sled::Tree,
    /// lowercased email → user id
    emails: sled::Tree,
    /// blake3(token) → [`EmailToken`]
    email_tokens: sled::Tree,
    /// blake3(token) → [`RefreshToken`]
    refresh: sled::Tree,
    /// family id → [`Family`]
    families: sled::Tree,
    /// user id ++ family id → ()
    user_families: sled::Tree,
    /// node id (64 hex characters) ++ family id → (): the sessions whose tokens are bound to
    /// that node (revoking the node ends them)
    node_families: sled::Tree,
    /// user id ++ node id (hex) → [`Consent`]
    consents: sled::Tree,
    /// user id ++ movie id → [`WatchEntry`]
    watchlist: sled::Tree,
    /// user id ++ movie id → [`Progress`]
    progress: sled::Tree,
    /// user id → [`Preferences`] (audio/subtitle languages, caption style)
    preferences: sled::Tree,
    /// user id ++ (u64::MAX - updated_at_ms) ++ (u64::MAX - seq) ++ movie id → ()
    history: sled::Tree,
    /// room id → [`RoomRecord`]
    rooms: sled::Tree,
    /// billing event id → unix seconds it was applied (webhook idempotency)
    billing_events: sled::Tree,
    /// user id → [`SubNotice`] (which subscription emails went out)
    sub_notices: sled::Tree,
    /// request id (u64 BE) → [`MovieRequest`]
    requests: sled::Tree,
    /// tmdb id (u64 BE) → request id of the one open (not finished) request for it
    open_requests: sled::Tree,
    /// user id ++ (u64::MAX - asked_at_ms) ++ request id → ()
    user_requests: sled::Tree,
    /// user id ++ (u64::MAX - id) → [`Notification`]
    notifications: sled::Tree,
    invites: sled::Tree,
    nodes: sled::Tree,
    network: sled::Tree,
    /// movie id → [`BindingRecord`]
    bindings: sled::Tree,
    /// binding version (u64 BE) → movie id
    binding_versions: sled::Tree,
    /// manifest id → [`IngestRecord`]
    ingests: sled::Tree,
    /// origin node id ++ order (u64 BE) ++ manifest id → ()
    origin_ingests: sled::Tree,
    /// movie id ++ 0 ++ manifest id → ()
    movie_ingests: sled::Tree,
    /// blake3(session cookie) → [`pages::BrowserSession`] (the tracker's own pages)
    browser_sessions: sled::Tree,
    /// user id ++ blake3(session cookie) → ()
    user_browser_sessions: sled::Tree,
    /// user id ++ credential id → [`pages::PasskeyRecord`]
    passkeys: sled::Tree,
}

impl Trees {
    /// A number larger than any this database handed out before, across restarts.
    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    fn open(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            users: db.open_tree("users")?,
            emails: db.open_tree("emails")?,
            email_tokens: db.open_tree("email_tokens")?,
            refresh: db.open_tree("refresh")?,
            families: db.open_tree("families")?,
            user_families: db.open_tree("user_families")?,
            node_families: db.open_tree("node_families")?,
            consents: db.open_tree("consents")?,
            watchlist: db.open_tree("watchlist")?,
            progress: db.open_tree("progress")?,
            preferences: db.open_tree("preferences")?,
            history: db.open_tree("history")?,
            rooms: db.open_tree("rooms")?,
            billing_events: db.open_tree("billing_events")?,
            sub_notices: db.open_tree("sub_notices")?,
            requests: db.open_tree("requests")?,
            open_requests: db.open_tree("open_requests")?,
            user_requests: db.open_tree("user_requests")?,
            notifications: db.open_tree("notifications")?,
            invites: db.open_tree("invites")?,
            nodes: db.open_tree("nodes")?,
            network: db.open_tree("network")?,
            bindings: db.open_tree("bindings")?,
            binding_versions: db.open_tree("binding_versions")?,
            ingests: db.open_tree("ingests")?,
            origin_ingests: db.open_tree("origin_ingests")?,
            movie_ingests: db.open_tree("movie_ingests")?,
            browser_sessions: db.open_tree("browser_sessions")?,
            user_browser_sessions: db.open_tree("user_browser_sessions")?,
            passkeys: db.open_tree("passkeys")?,
            db,
        })
    }
}

/// How many records some trees hold (read at scrape time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub users: u64,
    pub open_requests: u64,
    pub rooms: u64,
}

/// Encodes a record inside a sled transaction (an encoding failure aborts it).
fn enc_tx<T: serde::Serialize>(
    v: &T,
) -> Result<Vec<u8>, sled::transaction::ConflictableTransactionError<StoreError>> {
    codec::encode(v).map_err(sled::transaction::ConflictableTransactionError::Abort)
}

/// Decodes a record inside a sled transaction (a decoding failure aborts it).
fn dec_tx<T: serde::de::DeserializeOwned>(
    v: &[u8],
) -> Result<T, sled::transaction::ConflictableTransactionError<StoreError>> {
    codec::decode(v).map_err(sled::transaction::ConflictableTransactionError::Abort)
}

type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Trees) -> Done + Send>;

/// The storage handle: cheap to clone, reads directly, writes through the writer task.
#[derive(Clone)]
pub struct Store {
    trees: Trees,
    writer: mpsc::Sender<Job>,
}

/// The single writer: owns the order of writes and the flushes.
pub struct Writer {
    trees: Trees,
    jobs: mpsc::Receiver<Job>,
    /// sled's log file, `fdatasync`ed after each flush (`None`: sled's flush only).
    sync: Option<tokio::fs::File>,
}

/// How durable a group commit is before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// sled's flush: `pwrite` + `sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)` of the log.
    /// The data is handed to the device, so a crash of the process loses nothing; the
    /// device's volatile write cache and the file system's journal (the log's newly
    /// allocated blocks) are not flushed, so power loss can lose what sled's background
    /// `fsync` (every 500 ms) has not covered yet.
    Flush,
    /// sled's flush, then `fdatasync` of sled's log file: survives power loss too.
    Fsync,
}

/// Most writes applied before one flush.
const MAX_BATCH: usize = 512;

impl Store {
    /// Opens (or creates) the database under `dir` with [`Durability::Fsync`]. Run the
    /// returned [`Writer`] in a task.
    pub fn open(dir: &Path) -> Result<(Self, Writer), StoreError> {
        Self::open_with(dir, Durability::Fsync)
    }

    /// Opens (or creates) the database under `dir`, acknowledging writes at `durability`.
    pub fn open_with(dir: &Path, durability: Durability) -> Result<(Self, Writer), StoreError> {
        let private = |source| StoreError::Mode {
            path: dir.to_owned(),
            source: std::sync::Arc::new(source),
        };
        // sled creates its files with the process umask: the directory is made 0700 first
        // and whatever sled created is narrowed once it is open.
        reelnet_runtime::fs::create_private_dir(dir).map_err(private)?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        reelnet_runtime::fs::restrict_tree(dir).map_err(private)?;
        let sync = match durability {
            Durability::Flush => None,
            Durability::Fsync => {
                let sync_err = |e: std::io::Error| {
                    StoreError::Db(format!("cannot open {} to sync it: {e}", dir.display()))
                };
                // The directory entries of sled's files (made on first open) are made
                // durable once; from then on each group commit syncs the log file.
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(sync_err)?;
                let log = std::fs::File::open(dir.join("db")).map_err(sync_err)?;
                Some(tokio::fs::File::from_std(log))
            }
        };
        let trees = Trees::open(db)?;
        let (tx, rx) = mpsc::channel(4096);
        Ok((
            Self {
                trees: trees.clone(),
                writer: tx,
            },
            Writer {
                trees,
                jobs: rx,
                sync,
            },
        ))
    }

    /// A number larger than any this database handed out before, across restarts.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.trees.next_id()
    }

    /// Record counts for the metrics: accounts, open requests, rooms.
    pub fn counts(&self) -> Counts {
        Counts {
            users: self.trees.users.len() as u64,
            open_requests: self.trees.open_requests.len() as u64,
            rooms: self.trees.rooms.len() as u64,
        }
    }

    /// Applies `f` in write order and answers once the write is flushed to disk. Private:
    /// the typed operations in this module's children are the only callers.
    fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Trees) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            let job: Job = Box::new(move |trees| {
                let result = f(trees);
                Box::new(move |flushed: Result<(), StoreError>| {
                    let _ = tx.send(flushed.and(result));
                })
            });
            writer.send(job).await.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }
}

impl Writer {
    /// Runs until every [`Store`] handle is dropped, then flushes a last time.
    pub async fn run(mut self) -> Result<(), StoreError> {
        let mut pending: Vec<Done> = Vec::with_capacity(MAX_BATCH);
        while let Some(job) = self.jobs.recv().await {
            pending.push(job(&self.trees));
            while pending.len() < MAX_BATCH {
                match self.jobs.try_recv() {
                    Ok(job) => pending.push(job(&self.trees)),
                    Err(_) => break,
                }
            }
            let flushed = self.commit().await;
            if let Err(err) = &flushed {
                tracing::error!(%err, "flush failed; failing {} writes", pending.len());
            }
            for done in pending.drain(..) {
                done(flushed.clone());
            }
        }
        self.commit().await
    }

    /// sled's flush, then (with [`Durability::Fsync`]) `fdatasync` of its log file.
    async fn commit(&mut self) -> Result<(), StoreError> {
        self.trees.db.flush_async().await?;
        if let Some(log) = &mut self.sync {
            log.sync_data()
                .await
                .map_err(|e| StoreError::Db(format!("fdatasync of the log: {e}")))?;
        }
        Ok(())
    }
}
