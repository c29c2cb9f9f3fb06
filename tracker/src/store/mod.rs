//! The tracker's storage: the only module that knows about the database engines.
//!
//! One tree per record kind, typed keys (fixed-width user ids first, so a user's records are
//! one prefix scan), and versioned values (see [`codec`]). The trees live behind the
//! key-value seam [`kv`]: sled (embedded, the default) or PostgreSQL (`[storage] engine`).
//! Reads go straight to the trees; every write goes through one writer task ([`Writer`])
//! that applies a batch of writes and then commits once, answering each caller only after
//! that commit: an acknowledged write is durable, and durability costs one commit per
//! batch instead of one per request (group commit).
//!
//! - sled: the commit is sled's flush; with [`Durability::Fsync`] (the default,
//!   `[storage] fsync`) it is followed by an `fdatasync` of sled's log file, because sled's
//!   flush is `sync_file_range`, which survives a crash of the process but not power loss.
//! - PostgreSQL: the batch is one transaction (each job in a savepoint) and the commit is
//!   `COMMIT` (see [`kv::postgres`]).
//!
//! Everything else in the tracker calls the typed operations on [`Store`] defined in this
//! module's children, one per record kind ([`accounts`], [`library`], [`billing`],
//! [`requests`], [`rooms`], [`network`], [`bindings`], [`pages`], [`preferences`]); none of
//! them sees an engine's type. Each write operation is one writer job, and a change that
//! spans trees runs in one [`kv::Transactional::transaction`] inside it. The one exception
//! is progress ([`Store::put_progress`]): plain inserts in a fixed order, because a sled
//! transaction per write capped durable progress writes (see `library::write_progress`);
//! history tolerates a crash between them.

pub mod accounts;
pub mod billing;
pub mod bindings;
pub mod codec;
pub mod kv;
pub mod library;
pub mod migrate;
pub mod network;
pub mod pages;
pub mod preferences;
pub mod records;
pub mod requests;
pub mod rooms;
pub mod shared;

use std::future::Future;
use std::path::Path;

use tokio::sync::{mpsc, oneshot};

use kv::Tree;

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
    /// The database cannot be reached now (PostgreSQL down, unreachable or timing out);
    /// the request may be tried again later (the API answers 503 with `Retry-After`).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The PostgreSQL schema was written by a newer tracker.
    #[error(
        "the database schema is version {found}, newer than this tracker knows ({known}): \
         run the newer tracker, or restore a backup made for this one"
    )]
    SchemaTooNew { found: i32, known: i32 },
    /// The storage configuration is wrong (a bad URL).
    #[error("{0}")]
    Config(String),
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

/// Declares [`Trees`] (one field per record kind) and [`TREE_NAMES`] from one list, so
/// the store opens and `migrate` copies exactly the same trees.
macro_rules! trees {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// The trees, one per record kind (private to the store).
        #[derive(Clone)]
        struct Trees {
            db: kv::Db,
            $($(#[$doc])* $name: Tree,)+
        }

        /// The name of every tree the store opens, in declaration order.
        pub const TREE_NAMES: &[&str] = &[$(stringify!($name)),+];

        impl Trees {
            fn open(db: kv::Db) -> Result<Self, StoreError> {
                Ok(Self {
                    $($name: db.open_tree(stringify!($name))?,)+
                    db,
                })
            }
        }
    };
}

trees! {

    /// user id → [`User`]
    users,
    /// lowercased email → user id
    emails,
    /// blake3(token) → [`EmailToken`]
    email_tokens,
    /// blake3(token) → [`RefreshToken`]
    refresh,
    /// family id → [`Family`]
    families,
    /// user id ++ family id → ()
    user_families,
    /// node id (64 hex characters) ++ family id → (): the sessions whose tokens are bound to
    /// that node (revoking the node ends them)
    node_families,
    /// user id ++ node id (hex) → [`Consent`]
    consents,
    /// user id ++ movie id → [`WatchEntry`]
    watchlist,
    /// user id ++ movie id → [`Progress`]
    progress,
    /// user id → [`Preferences`] (audio/subtitle languages, caption style)
    preferences,
    /// user id ++ (u64::MAX - updated_at_ms) ++ (u64::MAX - seq) ++ movie id → ()
    history,
    /// room id → [`RoomRecord`]
    rooms,
    /// billing event id → unix seconds it was applied (webhook idempotency)
    billing_events,
    /// user id → [`SubNotice`] (which subscription emails went out)
    sub_notices,
    /// request id (u64 BE) → [`MovieRequest`]
    requests,
    /// tmdb id (u64 BE) → request id of the one open (not finished) request for it
    open_requests,
    /// user id ++ (u64::MAX - asked_at_ms) ++ request id → ()
    user_requests,
    /// user id ++ (u64::MAX - id) → [`Notification`]
    notifications,
    invites,
    nodes,
    network,
    /// movie id → [`BindingRecord`]
    bindings,
    /// binding version (u64 BE) → movie id
    binding_versions,
    /// manifest id → [`IngestRecord`]
    ingests,
    /// origin node id ++ order (u64 BE) ++ manifest id → ()
    origin_ingests,
    /// movie id ++ 0 ++ manifest id → ()
    movie_ingests,
    /// blake3(session cookie) → [`pages::BrowserSession`] (the tracker's own pages)
    browser_sessions,
    /// user id ++ blake3(session cookie) → ()
    user_browser_sessions,
    /// user id ++ credential id → [`pages::PasskeyRecord`]
    passkeys,
    /// `token` / `network` → [`shared::StoredKeyring`] (PostgreSQL engine: every replica
    /// signs with these; sled keeps its keys in files in the data directory)
    signing_keys,
    /// blake3(code) → [`crate::oauth::codes::CodeRecord`]
    oauth_codes,
    /// blake3(device code) → [`crate::oauth::device::DeviceEntry`]
    devices,
    /// user code (8 letters) → blake3(device code)
    device_user_codes,
    /// replay key of a node-signed request → end of its window (unix seconds, u64 BE)
    node_replays,
    /// blake3(ceremony id) → passkey ceremony in flight (`pages::passkeys`)
    passkey_ceremonies,
}

impl Trees {
    /// A number larger than any this database handed out before, across restarts.
    fn next_id(&self) -> Result<u64, StoreError> {
        self.db.generate_id()
    }
}

/// How many records some trees hold (read at scrape time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub users: u64,
    pub open_requests: u64,
    pub rooms: u64,
}

/// Encodes a record inside a transaction (an encoding failure aborts it).
fn enc_tx<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(v)
}

/// Decodes a record inside a transaction (a decoding failure aborts it).
fn dec_tx<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    codec::decode(v)
}

type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write: applied to the writer's trees, it answers whether it succeeded (a failed job's
/// writes are rolled back where the engine can: PostgreSQL) and how to answer its caller.
type Job = Box<dyn FnOnce(&Trees) -> (bool, Done) + Send>;

/// The storage handle: cheap to clone, reads directly, writes through the writer task.
#[derive(Clone)]
pub struct Store {
    trees: Trees,
    writer: mpsc::Sender<Job>,
}

/// The single writer: owns the order of writes and the commits.
pub struct Writer {
    /// The trees as the writer sees them (PostgreSQL: inside the open batch).
    trees: Trees,
    jobs: mpsc::Receiver<Job>,
    /// sled's log file, `fdatasync`ed after each flush (`None`: sled's flush only, or
    /// PostgreSQL).
    sync: Option<tokio::fs::File>,
}

/// How durable a group commit is before it is acknowledged (sled; PostgreSQL acknowledges
/// after `COMMIT`, as durable as the server's `synchronous_commit` makes it).
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

/// Which engine to open, and where.
#[derive(Debug, Clone)]
pub enum Engine {
    /// The embedded sled database in this directory.
    Sled {
        dir: std::path::PathBuf,
        durability: Durability,
    },
    /// A PostgreSQL database ([`kv::postgres`]).
    Postgres(kv::postgres::PgOptions),
}

/// Most writes applied before one flush.
const MAX_BATCH: usize = 512;

impl Store {
    /// Opens (or creates) the database under `dir` with [`Durability::Fsync`]. Run the
    /// returned [`Writer`] in a task.
    pub fn open(dir: &Path) -> Result<(Self, Writer), StoreError> {
        Self::open_with(dir, Durability::Fsync)
    }

    /// Opens the store on `engine`. Run the returned [`Writer`] in a task.
    pub fn open_engine(engine: &Engine) -> Result<(Self, Writer), StoreError> {
        match engine {
            Engine::Sled { dir, durability } => Self::open_with(dir, *durability),
            Engine::Postgres(opts) => {
                let db = kv::Db::Postgres(kv::postgres::PgDb::open(opts)?);
                Self::from_db(db, None)
            }
        }
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
        let db = kv::sled::SledDb::open(dir)?;
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
        Self::from_db(kv::Db::Sled(db), sync)
    }

    fn from_db(db: kv::Db, sync: Option<tokio::fs::File>) -> Result<(Self, Writer), StoreError> {
        let writer_trees = Trees::open(db.for_writer())?;
        let trees = Trees::open(db)?;
        let (tx, rx) = mpsc::channel(4096);
        Ok((
            Self { trees, writer: tx },
            Writer {
                trees: writer_trees,
                jobs: rx,
                sync,
            },
        ))
    }

    /// A number larger than any this database handed out before, across restarts.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.trees.next_id()
    }

    /// Record counts for the metrics: accounts, open requests, rooms (0 where the
    /// database could not answer; logged).
    pub fn counts(&self) -> Counts {
        let len = |tree: &kv::Tree| match tree.len() {
            Ok(n) => n as u64,
            Err(err) => {
                tracing::warn!(%err, "cannot count records");
                0
            }
        };
        Counts {
            users: len(&self.trees.users),
            open_requests: len(&self.trees.open_requests),
            rooms: len(&self.trees.rooms),
        }
    }

    /// Applies `f` in write order and answers once the write is durable. Private:
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
                let ok = result.is_ok();
                let done: Done = Box::new(move |flushed: Result<(), StoreError>| {
                    let _ = tx.send(flushed.and(result));
                });
                (ok, done)
            });
            writer.send(job).await.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }
}

impl Writer {
    /// Runs until every [`Store`] handle is dropped, then flushes a last time.
    pub async fn run(mut self) -> Result<(), StoreError> {
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        while let Some(job) = self.jobs.recv().await {
            batch.push(job);
            while batch.len() < MAX_BATCH {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let answers = match &self.trees.db {
                kv::Db::Sled(_) => {
                    let pending: Vec<Done> =
                        batch.drain(..).map(|job| job(&self.trees).1).collect();
                    let flushed = self.commit().await;
                    pending.into_iter().map(|d| (d, flushed.clone())).collect()
                }
                kv::Db::Postgres(db) => {
                    let jobs = std::mem::take(&mut batch);
                    let (db, trees) = (db.clone(), self.trees.clone());
                    tokio::task::spawn_blocking(move || pg_batch(&db, &trees, jobs))
                        .await
                        .map_err(|e| StoreError::Db(format!("the writer's batch panicked: {e}")))?
                }
            };
            let failed = answers.iter().filter(|(_, r)| r.is_err()).count();
            if failed > 0 {
                if let Some((_, Err(err))) = answers.iter().find(|(_, r)| r.is_err()) {
                    tracing::error!(%err, "commit failed; failing {failed} of {} writes", answers.len());
                }
            }
            for (done, result) in answers {
                done(result);
            }
        }
        self.commit().await
    }

    /// sled's flush, then (with [`Durability::Fsync`]) `fdatasync` of its log file.
    /// Nothing to do for PostgreSQL (each batch commits).
    async fn commit(&mut self) -> Result<(), StoreError> {
        if let kv::Db::Sled(db) = &self.trees.db {
            db.flush().await?;
        }
        if let Some(log) = &mut self.sync {
            log.sync_data()
                .await
                .map_err(|e| StoreError::Db(format!("fdatasync of the log: {e}")))?;
        }
        Ok(())
    }
}

/// One PostgreSQL batch: `BEGIN`, each job in a savepoint, `COMMIT`; every job's answer
/// is the commit's (or its own failure). Blocking: runs on a blocking thread.
fn pg_batch(
    db: &kv::postgres::PgDb,
    trees: &Trees,
    jobs: Vec<Job>,
) -> Vec<(Done, Result<(), StoreError>)> {
    let begun = db.begin_batch();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        db.begin_job();
        let (ok, done) = job(trees);
        let own = db.end_job(ok);
        out.push((done, own));
    }
    let committed = begun.and_then(|()| db.commit_batch());
    if committed.is_err() {
        // Make sure the connection slot is empty for the next batch.
        let _ = db.commit_batch();
    }
    out.into_iter()
        .map(|(done, own)| (done, committed.clone().and(own)))
        .collect()
}

/// Opening a store on either engine for the store's own tests: each test body runs on
/// sled and on a real PostgreSQL started by the test ([`engine_tests!`]).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod testing {
    use super::{Engine, Store, StoreError};

    /// The engines a store test runs on.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum TestEngine {
        Sled,
        Postgres,
    }

    /// A store, its running writer, and what it lives in (dropped after it).
    pub(crate) struct TestStore {
        pub store: Store,
        writer: tokio::task::JoinHandle<Result<(), StoreError>>,
        _dir: tempfile::TempDir,
        pub pg: Option<reelnet_testkit::postgres::Postgres>,
    }

    impl TestStore {
        /// A fresh store on `engine`, its writer running.
        pub async fn open(engine: TestEngine) -> TestStore {
            let dir = tempfile::tempdir().unwrap();
            let (pg, engine) = match engine {
                TestEngine::Sled => (
                    None,
                    Engine::Sled {
                        dir: dir.path().join("db"),
                        durability: super::Durability::Fsync,
                    },
                ),
                TestEngine::Postgres => {
                    let pg = reelnet_testkit::postgres::Postgres::start()
                        .await
                        .unwrap_or_else(|e| {
                            panic!("cannot start a test PostgreSQL (run scripts/setup.sh): {e}")
                        });
                    let engine = Engine::Postgres(pg_options(&pg.url()));
                    (Some(pg), engine)
                }
            };
            let (store, writer) = Store::open_engine(&engine).unwrap();
            TestStore {
                store,
                writer: tokio::spawn(writer.run()),
                _dir: dir,
                pg,
            }
        }

        /// Drops the store handle and waits for the writer's last commit.
        pub async fn close(self) {
            let TestStore {
                store, writer, pg, ..
            } = self;
            drop(store);
            writer.await.unwrap().unwrap();
            drop(pg);
        }
    }

    /// Test options for a PostgreSQL URL (short timeouts).
    pub(crate) fn pg_options(url: &str) -> super::kv::postgres::PgOptions {
        super::kv::postgres::PgOptions {
            url: url.to_owned(),
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(5),
            ca_file: None,
        }
    }

    /// `engine_tests!(name, body)`: a module `name` with one test per engine, each running
    /// `body(store: Store)` on a fresh store of that engine.
    macro_rules! engine_tests {
        ($name:ident, $body:path) => {
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn sled() {
                    let t = $crate::store::testing::TestStore::open(
                        $crate::store::testing::TestEngine::Sled,
                    )
                    .await;
                    $body(t.store.clone()).await;
                    t.close().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let t = $crate::store::testing::TestStore::open(
                        $crate::store::testing::TestEngine::Postgres,
                    )
                    .await;
                    $body(t.store.clone()).await;
                    t.close().await;
                }
            }
        };
    }
    pub(crate) use engine_tests;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::kv::Transactional;
    use super::testing::{engine_tests, TestEngine, TestStore};
    use super::*;

    /// The seam's semantics the typed operations rely on, on both engines: bytewise key
    /// order, prefix and range scans from both ends (across several pages), counts, ids,
    /// reads inside a job seeing its own writes, and an aborted transaction leaving nothing.
    async fn seam_semantics(store: Store) {
        // Keys around the edges of bytewise order, and enough of them for several pages.
        let mut keys: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff], vec![1, 0xff], vec![2]];
        for i in 0u16..300 {
            let mut k = vec![1];
            k.extend_from_slice(&i.to_be_bytes());
            keys.push(k);
        }
        let ks = keys.clone();
        let seen_own = store
            .write(move |t| {
                for k in &ks {
                    t.users.insert(k, [k.len() as u8])?;
                }
                // Reads inside the job see its own writes.
                t.users.get([1, 0, 7])
            })
            .await
            .unwrap();
        assert_eq!(seen_own, Some(vec![3]));
        let t = &store.trees;
        keys.sort();
        let all: Vec<Vec<u8>> = t.users.iter().keys().map(Result::unwrap).collect();
        assert_eq!(all, keys);
        let rev: Vec<Vec<u8>> = t.users.iter().keys().rev().map(Result::unwrap).collect();
        assert_eq!(rev, keys.iter().rev().cloned().collect::<Vec<_>>());
        assert_eq!(t.users.len().unwrap(), keys.len());
        // A prefix: [1, *] (301 keys, [1, 0xff] included), both ends meeting in the middle.
        let ones: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| k.first() == Some(&1))
            .cloned()
            .collect();
        assert_eq!(t.users.count_prefix([1]).unwrap(), ones.len());
        let mut it = t.users.scan_prefix([1]);
        let mut front = Vec::new();
        let mut back = Vec::new();
        while let Some(r) = it.next() {
            front.push(r.unwrap().0);
            match it.next_back() {
                Some(r) => back.push(r.unwrap().0),
                None => break,
            }
        }
        back.reverse();
        front.extend(back);
        assert_eq!(front, ones);
        assert_eq!(
            t.users.scan_prefix([1]).next_back().unwrap().unwrap().0,
            vec![1, 0xff]
        );
        assert_eq!(t.users.scan_prefix([0xff]).count(), 1);
        assert_eq!(t.users.scan_prefix([3]).count(), 0);
        // A range from a key that is not there.
        let from: Vec<Vec<u8>> = t
            .users
            .range(vec![1, 1, 0x2a, 0]..)
            .keys()
            .take(2)
            .map(Result::unwrap)
            .collect();
        assert_eq!(from, vec![vec![1, 1, 0x2b], vec![1, 0xff]]);
        assert!(t.users.contains_key([2]).unwrap());
        assert!(!t.users.contains_key([3]).unwrap());
        // Ids grow.
        let a = store.next_id().unwrap();
        let b = store.next_id().unwrap();
        assert!(b > a);

        // An aborted transaction leaves nothing; a committed one everything; the job goes on.
        let (aborted, after) = store
            .write(|t| {
                let aborted = (&t.users, &t.emails).transaction(|(users, emails)| {
                    users.insert([9], [9])?;
                    emails.insert([9], [9])?;
                    assert_eq!(users.get([9])?, Some(vec![9]));
                    Err::<(), _>(StoreError::Corrupt("abort".into()))
                });
                t.users.transaction(|users| {
                    users.insert([8], [8])?;
                    assert_eq!(users.remove([2])?, Some(vec![1]));
                    Ok(())
                })?;
                Ok((aborted.is_err(), t.users.get([8])?))
            })
            .await
            .unwrap();
        assert!(aborted);
        assert_eq!(after, Some(vec![8]));
        assert_eq!(t.users.get([9]).unwrap(), None);
        assert_eq!(t.emails.get([9]).unwrap(), None);
        assert_eq!(t.users.get([2]).unwrap(), None);
        assert_eq!(t.users.remove([8]).unwrap(), Some(vec![8]));

        // Writes that answer nothing (kept back on PostgreSQL until the job's next
        // statement or its end): the last write of a key wins, and reads see them.
        store
            .write(|t| {
                t.users.insert([20], [1])?;
                t.users.insert([20], [2])?;
                t.users.insert([21], [1])?;
                t.users.delete([21])?;
                t.users.delete([0xff])?;
                t.users.insert([0xff], [7])?;
                t.users.delete([22])?;
                assert_eq!(t.users.get([20])?, Some(vec![2]));
                assert_eq!(t.users.get([21])?, None);
                t.users.insert([23], [3])?;
                t.users.delete([20])?;
                t.users.insert([20], [4])?;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(t.users.get([20]).unwrap(), Some(vec![4]));
        assert_eq!(t.users.get([21]).unwrap(), None);
        assert_eq!(t.users.get([0xff]).unwrap(), Some(vec![7]));
        assert_eq!(t.users.get([23]).unwrap(), Some(vec![3]));
    }
    engine_tests!(seam, seam_semantics);

    /// PostgreSQL: `bad` (which writes key [2]) queued in one batch between two good jobs
    /// (keys [1] and [3]) fails, and only the good jobs' keys are stored.
    async fn only_the_bad_job_of_a_batch_fails<F>(bad: F)
    where
        F: Fn(&Trees) -> Result<(), StoreError> + Send + 'static,
    {
        let t = TestStore::open(TestEngine::Postgres).await;
        let store = t.store.clone();
        let good = |k: u8| {
            let s = store.clone();
            async move {
                s.write(move |t| {
                    t.users.insert([k], [k])?;
                    Ok(())
                })
                .await
            }
        };
        // Queued together, so they share one batch.
        let (a, b, c) = tokio::join!(good(1), store.write(bad), good(3));
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(b.is_err(), "{b:?}");
        let keys: Vec<Vec<u8>> = store
            .trees
            .users
            .iter()
            .keys()
            .map(Result::unwrap)
            .collect();
        assert_eq!(keys, vec![vec![1], vec![3]]);
        drop(store);
        t.close().await;
    }

    /// PostgreSQL: a write kept back to the job's end that the server refuses (a key too
    /// long for the index) fails the job and rolls back its other writes, though the job
    /// itself answered `Ok`; the batch's other jobs commit.
    #[tokio::test]
    async fn postgres_a_refused_deferred_write_fails_its_job() {
        only_the_bad_job_of_a_batch_fails(|t| {
            t.users.insert([2], [2])?;
            // Beyond a btree entry's limit (about 2.7 kB, after compression: random
            // bytes do not compress): refused at the flush.
            let key: Vec<u8> = (0..16 * 1024).map(|_| rand::random::<u8>()).collect();
            t.users.insert(key, [0])?;
            Ok(())
        })
        .await;
    }

    /// PostgreSQL: a failing job of a batch rolls back only its own writes; the others of
    /// the same batch commit.
    #[tokio::test]
    async fn postgres_a_failing_job_rolls_back_only_itself() {
        only_the_bad_job_of_a_batch_fails(|t| {
            t.users.insert([2], [2])?;
            Err(StoreError::Corrupt("refused".into()))
        })
        .await;
    }

    /// PostgreSQL killed (-9) while writers create accounts (account + email index, one
    /// transaction each): every acknowledged account is there after the restart, no
    /// account lacks its index entry or the other way round, calls during the outage fail
    /// with [`StoreError::Unavailable`] (never hang), and the same store works again once
    /// the server is back, without reopening.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_lost_and_back_loses_no_acknowledged_write_and_half_writes_none() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let t = TestStore::open(TestEngine::Postgres).await;
        let store = t.store.clone();
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..16 {
            let (store, acked, stop) = (store.clone(), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut unavailable = 0;
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let email = format!("u{c}-{i}@x");
                    let user = User {
                        id: UserId::random(),
                        email: email.clone(),
                        display_name: "x".into(),
                        password_hash: String::new(),
                        email_verified: false,
                        tier: reelnet_proto::Tier::Free,
                        tier_until: None,
                        role: reelnet_proto::Role::User,
                        created_at: 1,
                    };
                    match store.create_user(user, None, None, 1).await {
                        Ok(Created::Created(_)) => acked.lock().unwrap().push(email),
                        Ok(other) => panic!("{other:?}"),
                        Err(StoreError::Unavailable(_)) => {
                            unavailable += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("not a typed outage: {e}"),
                    }
                }
                unavailable
            }));
        }
        let pg = t.pg.as_ref().unwrap();
        let wait_acked = |n: usize| {
            let acked = acked.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while acked.lock().unwrap().len() < n {
                    assert!(std::time::Instant::now() < deadline, "writes stalled");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        };
        wait_acked(50).await;
        pg.kill9().await.unwrap();
        // Reads and writes during the outage: typed errors.
        assert!(matches!(
            store.user_id_by_email("u0-0@x"),
            Err(StoreError::Unavailable(_))
        ));
        let before = acked.lock().unwrap().len();
        pg.start_again().await.unwrap();
        wait_acked(before + 50).await;
        stop.store(true, Ordering::SeqCst);
        let mut outages = 0;
        for task in tasks {
            outages += task.await.unwrap();
        }
        assert!(outages > 0, "no write met the outage");

        // Every acknowledged account, with its index; no half-written one.
        for email in acked.lock().unwrap().iter() {
            assert!(
                store.user_id_by_email(email).unwrap().is_some(),
                "{email} lost"
            );
        }
        let users = store.all_users();
        for u in &users {
            assert_eq!(store.user_id_by_email(&u.email).unwrap(), Some(u.id));
        }
        let emails = store.trees.emails.len().unwrap();
        assert_eq!(emails, users.len(), "an index entry without its account");
        drop(store);
        t.close().await;
    }

    /// PostgreSQL: a database whose schema is newer than this binary is refused with a
    /// clear error, and nothing is written to it.
    #[tokio::test]
    async fn postgres_a_newer_schema_is_refused() {
        let pg = reelnet_testkit::postgres::Postgres::start()
            .await
            .unwrap_or_else(|e| {
                panic!("cannot start a test PostgreSQL (run scripts/setup.sh): {e}")
            });
        let url = pg.create_database("newer").await.unwrap();
        // Made by this binary, then claimed by a "newer" one.
        let (store, writer) =
            Store::open_engine(&Engine::Postgres(testing::pg_options(&url))).unwrap();
        drop(store);
        writer.run().await.unwrap();
        let client = pg.connect("newer").await.unwrap();
        let newer = kv::postgres::SCHEMA_VERSION + 1;
        client
            .batch_execute(&format!("UPDATE reelnet_schema SET version = {newer}"))
            .await
            .unwrap();
        let err = match Store::open_engine(&Engine::Postgres(testing::pg_options(&url))) {
            Ok(_) => panic!("a newer schema was accepted"),
            Err(e) => e,
        };
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, .. } if found == newer),
            "{err}"
        );
        assert!(
            err.to_string().contains("newer than this tracker knows"),
            "{err}"
        );
        let version: i32 = client
            .query_one("SELECT version FROM reelnet_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, newer);

        // Several hosts, the first one down: the second one is found (and its newer schema
        // refused like any other).
        let across = url.replace(
            &format!("127.0.0.1:{}", pg.port()),
            &format!("127.0.0.1:1,127.0.0.1:{}", pg.port()),
        ) + "?target_session_attrs=read-write";
        let err = Store::open_engine(&Engine::Postgres(testing::pg_options(&across)))
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");

        // A wrong password and an unreachable server: clear errors, nothing else.
        let wrong = url.replace(pg.password(), "wrong");
        let err = Store::open_engine(&Engine::Postgres(testing::pg_options(&wrong)))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("password authentication failed"),
            "{err}"
        );
        assert!(!err.to_string().contains(pg.password()), "{err}");
        let port = pg.port();
        pg.stop().await.unwrap();
        let err = Store::open_engine(&Engine::Postgres(testing::pg_options(&url)))
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}
