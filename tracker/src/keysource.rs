//! Where the signing keyrings (token and network) live, and how a running tracker
//! notices that `rotate-key` / `network rotate-key` changed one.
//!
//! - **sled** (one tracker process, which holds sled's lock): files in the data directory
//!   (`keys/`, `network-keys/`, [`crate::keys`]), reloaded when `keyring.json` changes.
//! - **PostgreSQL** (any number of replicas on one database): the store's `signing_keys`
//!   tree, one record per keyring with a version. On start a replica takes the keyring
//!   stored there; on an empty database it stores a first one — the data directory's own
//!   keys when it has some (a tracker moved from sled keeps signing with its keys), else
//!   new ones — with an insert-if-absent in one writer job, so replicas starting at once
//!   end with one keyring ([`crate::store::Store::init_keyring`]). `rotate-key` changes the
//!   stored record and raises its version; every replica polls the version every
//!   [`POLL_EVERY`] and reloads. The database then holds the signing secrets in the clear:
//!   protect its backups and its role like the key files (README, operator section).
//!
//! Why not the same path for sled: only one process can open a sled database, so a
//! second replica cannot exist there, and `rotate-key` (a separate process) could not
//! reach the store while the tracker runs; the files keep working as they always did.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{StorageEngine, TrackerConfig};
use crate::keys::{self, KeyError, Keyring, StoredKeyring};
use crate::network::keys::{self as network_keys, NetworkKeyring};
use crate::store::shared::{NETWORK_KEYRING, TOKEN_KEYRING};
use crate::store::{Store, StoreError};

/// How often a replica on PostgreSQL looks for a rotated keyring.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Which keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The token (JWT) signing keys.
    Token,
    /// The network (certificates, revocations, bindings) signing keys.
    Network,
}

impl Which {
    fn record(self) -> &'static [u8] {
        match self {
            Which::Token => TOKEN_KEYRING,
            Which::Network => NETWORK_KEYRING,
        }
    }

    /// The keyring a first start stores: the data directory's, else a new one.
    fn candidate(self, data_dir: &Path, now: u64) -> Result<StoredKeyring, KeyError> {
        match self {
            Which::Token => Ok(keys::stored_from_dir(&keys::keys_dir(data_dir))?
                .unwrap_or_else(|| keys::new_stored(now))),
            Which::Network => network_keys::stored_candidate(data_dir, now),
        }
    }
}

/// Where a tracker's keyrings are.
#[derive(Clone)]
pub enum KeySource {
    /// Files in this data directory (sled).
    Files(PathBuf),
    /// The store (PostgreSQL); the data directory's keys are imported on a first start.
    Store {
        /// Boxed: a store handle is large beside a path.
        store: Box<Store>,
        data_dir: PathBuf,
    },
}

impl KeySource {
    /// The source `config`'s storage engine uses.
    pub fn for_config(config: &TrackerConfig, store: &Store) -> Self {
        match config.storage.engine {
            StorageEngine::Sled => KeySource::Files(config.data_dir.clone()),
            StorageEngine::Postgres => KeySource::Store {
                store: Box::new(store.clone()),
                data_dir: config.data_dir.clone(),
            },
        }
    }

    /// The stored keyring `which`, made on first use (see the module docs).
    async fn stored(&self, which: Which, now: u64) -> Result<Option<StoredKeyring>, KeyError> {
        let KeySource::Store { store, data_dir } = self else {
            return Ok(None);
        };
        if let Some(ring) = store.keyring(which.record())? {
            return Ok(Some(ring));
        }
        let candidate = which.candidate(data_dir, now)?;
        Ok(Some(store.init_keyring(which.record(), candidate).await?))
    }

    /// The token keyring (made on first start).
    pub async fn token(&self, grace_secs: u64, now: u64) -> Result<Keyring, KeyError> {
        match self {
            KeySource::Files(dir) => Keyring::load_or_create(dir, grace_secs, now),
            KeySource::Store { .. } => match self.stored(Which::Token, now).await? {
                Some(ring) => Keyring::from_stored(&ring, grace_secs),
                None => Err(KeyError::Stored("no token keyring".into())),
            },
        }
    }

    /// The network keyring (made on first start).
    pub async fn network(&self, configured_id: &str, now: u64) -> Result<NetworkKeyring, KeyError> {
        match self {
            KeySource::Files(dir) => NetworkKeyring::load_or_create(dir, configured_id, now),
            KeySource::Store { .. } => match self.stored(Which::Network, now).await? {
                Some(ring) => NetworkKeyring::from_stored(&ring, configured_id),
                None => Err(KeyError::Stored("no network keyring".into())),
            },
        }
    }

    /// Adds a new current key to keyring `which` and retires the old one; the new `kid`.
    pub async fn rotate(&self, which: Which, now: u64) -> Result<String, KeyError> {
        match self {
            KeySource::Files(dir) => match which {
                Which::Token => keys::rotate(dir, now),
                Which::Network => network_keys::rotate(dir, now),
            },
            KeySource::Store { store, data_dir } => {
                // Rotating a database no tracker started on yet: the first keyring is
                // made (imported) in the same job, then rotated.
                let first = which.candidate(data_dir, now)?;
                let ring = store
                    .update_keyring(which.record(), move |old| {
                        let mut ring = old.unwrap_or(first);
                        keys::rotate_stored(&mut ring, now);
                        Ok(ring)
                    })
                    .await?;
                Ok(ring.current)
            }
        }
    }

    /// Keeps `tx` on the current keyring until `cancel`: reloads it when its file
    /// changes (sled) or its stored version moves (PostgreSQL).
    pub async fn watch<T, L, S>(
        self,
        which: Which,
        load_file: L,
        from_stored: S,
        tx: watch::Sender<Arc<T>>,
        cancel: CancellationToken,
    ) -> Result<(), KeyError>
    where
        L: Fn(&Path) -> Result<T, KeyError>,
        S: Fn(&StoredKeyring) -> Result<T, KeyError>,
    {
        let mut tick = tokio::time::interval(POLL_EVERY);
        match self {
            KeySource::Files(dir) => {
                let path = match which {
                    Which::Token => keys::keyring_path(&dir),
                    Which::Network => network_keys::keyring_path(&dir),
                };
                let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                let mut last = modified(&path);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                    let now = modified(&path);
                    if now != last {
                        match load_file(&dir) {
                            Ok(ring) => {
                                tracing::info!(file = %path.display(), "keyring reloaded");
                                tx.send_replace(Arc::new(ring));
                                last = now;
                            }
                            Err(err) => {
                                tracing::warn!(%err, "keyring changed but cannot be loaded yet")
                            }
                        }
                    }
                }
            }
            KeySource::Store { store, .. } => {
                // Unknown at first: the first tick loads the stored keyring again, so a
                // rotation between the start's load and this task is never missed.
                let mut last: Option<u64> = None;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                    let stored = match read_keyring(&store, which).await {
                        Ok(stored) => stored,
                        Err(err) => {
                            tracing::warn!(%err, ?which, "cannot read the keyring in the database");
                            continue;
                        }
                    };
                    let Some(stored) = stored else { continue };
                    if Some(stored.version) == last {
                        continue;
                    }
                    match from_stored(&stored) {
                        Ok(ring) => {
                            tracing::info!(?which, kid = %stored.current, version = stored.version, "keyring reloaded from the database");
                            tx.send_replace(Arc::new(ring));
                            last = Some(stored.version);
                        }
                        Err(err) => {
                            tracing::warn!(%err, ?which, "the keyring in the database cannot be loaded")
                        }
                    }
                }
            }
        }
    }
}

/// The stored keyring, read off the async worker (a PostgreSQL read blocks).
async fn read_keyring(store: &Store, which: Which) -> Result<Option<StoredKeyring>, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.keyring(which.record()))
        .await
        .map_err(|e| StoreError::Db(format!("keyring read panicked: {e}")))?
}

/// `migrate` from sled: the data directory's keyring files become the source store's
/// `signing_keys` records (replacing what an earlier migrate put there, where the files
/// changed since), so the copy carries them to the destination like every other record
/// and replicas with other data directories sign with the same keys. Answers how many
/// keyrings were written.
pub async fn store_file_keyrings(store: &Store, data_dir: &Path) -> Result<usize, KeyError> {
    let mut written = 0;
    for which in [Which::Token, Which::Network] {
        let from_files = match which {
            Which::Token => keys::stored_from_dir(&keys::keys_dir(data_dir))?,
            Which::Network => network_keys::stored_from_files(data_dir)?,
        };
        let Some(mut files) = from_files else {
            continue;
        };
        if let Some(stored) = store.keyring(which.record())? {
            files.version = stored.version;
            if stored == files {
                continue;
            }
        }
        store
            .update_keyring(which.record(), move |_| Ok(files))
            .await?;
        written += 1;
    }
    Ok(written)
}

/// `reelnet-tracker rotate-key` / `network rotate-key`: rotates keyring `which` where
/// `config` keeps it. On PostgreSQL it opens the database itself (which needs no running
/// tracker, and several may run): every replica picks the new key up within
/// [`POLL_EVERY`] or so.
pub async fn rotate_configured(
    config: &TrackerConfig,
    which: Which,
    now: u64,
) -> Result<String, KeyError> {
    match config.storage.engine {
        StorageEngine::Sled => {
            KeySource::Files(config.data_dir.clone())
                .rotate(which, now)
                .await
        }
        StorageEngine::Postgres => {
            let engine = config.storage.engine(&config.data_dir)?;
            let (store, writer) = Store::open_engine(&engine)?;
            let source = KeySource::Store {
                store: Box::new(store),
                data_dir: config.data_dir.clone(),
            };
            let writer = tokio::spawn(writer.run());
            let kid = source.rotate(which, now).await;
            // The writer ends once the last store handle is gone.
            drop(source);
            writer
                .await
                .map_err(|e| KeyError::Stored(format!("the store's writer failed: {e}")))??;
            kid
        }
    }
}
