//! State every tracker replica on one database must agree on (README, "Running several
//! tracker replicas"): the signing keyrings (PostgreSQL engine), OAuth authorization codes,
//! pending device authorizations, passkey ceremonies in flight and the replay guard of
//! node-signed requests.
//!
//! Single use across replicas comes from the writer: each change here is one writer job,
//! and on PostgreSQL every batch runs under the writers' advisory lock in a READ COMMITTED
//! transaction, so a job's reads (each statement a new snapshot, taken after the lock)
//! see everything another replica committed before it. A take (read, check, mark used)
//! in one job is therefore atomic across processes, exactly as it is inside one. The
//! replay guard is the exception that needs no writer: [`Store::claim_once`] is a single
//! insert-if-absent statement, atomic by itself, so the (synchronous) check of a node's
//! signed request costs one statement and no wait for a group commit.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::kv::Tree;
use super::{codec, Store, StoreError, Trees};

/// One key of a keyring, secret included (the database holds the signing secrets: see the
/// README's operator section on protecting its backups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub created_at: u64,
    pub retired_at: Option<u64>,
    /// The 32-byte ed25519 secret.
    pub secret: Vec<u8>,
}

/// A keyring as the store keeps it (tree `signing_keys`, under [`TOKEN_KEYRING`] or
/// [`NETWORK_KEYRING`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKeyring {
    /// Raised by every change: replicas reload the keyring when it moves.
    pub version: u64,
    /// The `kid` that signs now.
    pub current: String,
    pub keys: Vec<StoredKey>,
    /// The network id made on first start (network keyring only; a configured
    /// `[network] id` wins over it).
    pub network_id: Option<String>,
}

/// The token (JWT) keyring's key in `signing_keys`.
pub const TOKEN_KEYRING: &[u8] = b"token";
/// The network keyring's key in `signing_keys`.
pub const NETWORK_KEYRING: &[u8] = b"network";

/// The trees of short-lived shared records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// blake3(code) → OAuth authorization code record.
    OauthCodes,
    /// blake3(device code) → pending device authorization.
    Devices,
    /// user code (8 letters) → blake3(device code).
    DeviceUserCodes,
    /// blake3(ceremony id) → passkey ceremony in flight.
    PasskeyCeremonies,
}

impl Shared {
    fn tree(self, t: &Trees) -> &Tree {
        match self {
            Shared::OauthCodes => &t.oauth_codes,
            Shared::Devices => &t.devices,
            Shared::DeviceUserCodes => &t.device_user_codes,
            Shared::PasskeyCeremonies => &t.passkey_ceremonies,
        }
    }
}

/// What an [`Store::update_shared`] closure does to the record.
#[derive(Debug)]
pub enum Change<T> {
    Keep,
    Put(T),
    Remove,
}

impl Store {
    /// The stored keyring under `which` ([`TOKEN_KEYRING`], [`NETWORK_KEYRING`]).
    pub fn keyring(&self, which: &'static [u8]) -> Result<Option<StoredKeyring>, StoreError> {
        match self.trees.signing_keys.get(which)? {
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
            None => Ok(None),
        }
    }

    /// Stores `candidate` under `which` unless a keyring is there already; answers the one
    /// stored. Two replicas starting at once on an empty database end with one keyring.
    pub async fn init_keyring(
        &self,
        which: &'static [u8],
        candidate: StoredKeyring,
    ) -> Result<StoredKeyring, StoreError> {
        self.write(move |t| match t.signing_keys.get(which)? {
            Some(raw) => codec::decode(&raw),
            None => {
                t.signing_keys.insert(which, codec::encode(&candidate)?)?;
                Ok(candidate)
            }
        })
        .await
    }

    /// Changes the keyring under `which` with `f` (given the stored one) and raises its
    /// version; answers the new keyring.
    pub async fn update_keyring<F>(
        &self,
        which: &'static [u8],
        f: F,
    ) -> Result<StoredKeyring, StoreError>
    where
        F: FnOnce(Option<StoredKeyring>) -> Result<StoredKeyring, StoreError> + Send + 'static,
    {
        self.write(move |t| {
            let old: Option<StoredKeyring> = match t.signing_keys.get(which)? {
                Some(raw) => Some(codec::decode(&raw)?),
                None => None,
            };
            let version = old.as_ref().map_or(0, |k| k.version);
            let mut new = f(old)?;
            new.version = version + 1;
            t.signing_keys.insert(which, codec::encode(&new)?)?;
            Ok(new)
        })
        .await
    }

    /// The record under `key` in `tree`, as committed.
    pub fn get_shared<T: DeserializeOwned>(
        &self,
        tree: Shared,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match tree.tree(&self.trees).get(key)? {
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
            None => Ok(None),
        }
    }

    /// Reads the record under `key` in `tree`, lets `f` decide what becomes of it, and
    /// applies that: one writer job, atomic across replicas (see the module docs).
    pub async fn update_shared<T, R, F>(
        &self,
        tree: Shared,
        key: Vec<u8>,
        f: F,
    ) -> Result<R, StoreError>
    where
        T: Serialize + DeserializeOwned,
        R: Send + 'static,
        F: FnOnce(Option<T>) -> (Change<T>, R) + Send + 'static,
    {
        self.write(move |t| {
            let tree = tree.tree(t);
            let old = match tree.get(&key)? {
                Some(raw) => Some(codec::decode(&raw)?),
                None => None,
            };
            let (change, answer) = f(old);
            match change {
                Change::Keep => {}
                Change::Put(v) => tree.insert(&key, codec::encode(&v)?)?,
                Change::Remove => {
                    tree.remove(&key)?;
                }
            }
            Ok(answer)
        })
        .await
    }

    /// How many records `tree` holds.
    pub fn count_shared(&self, tree: Shared) -> Result<usize, StoreError> {
        tree.tree(&self.trees).len()
    }

    /// Removes every record of `tree` that `dead` picks (and every unreadable one);
    /// answers how many went.
    pub async fn purge_shared<T, F>(&self, tree: Shared, dead: F) -> Result<usize, StoreError>
    where
        T: DeserializeOwned,
        F: Fn(&T) -> bool + Send + 'static,
    {
        self.write(move |t| {
            let tree = tree.tree(t);
            let mut gone = Vec::new();
            for item in tree.iter() {
                let (key, raw) = item?;
                match codec::decode::<T>(&raw) {
                    Ok(v) if !dead(&v) => {}
                    _ => gone.push(key),
                }
            }
            for key in &gone {
                tree.remove(key)?;
            }
            Ok(gone.len())
        })
        .await
    }

    /// Records the replay key of a node-signed request, valid until `until` (unix
    /// seconds); `false` when it was recorded before (by this replica or another): a
    /// replay. One atomic statement, no writer job (see the module docs).
    pub fn claim_once(&self, key: [u8; 32], until: u64) -> Result<bool, StoreError> {
        self.trees.node_replays.insert_new(key, until.to_be_bytes())
    }

    /// Forgets replay keys whose window ended before `now`; answers how many.
    pub async fn purge_replays(&self, now: u64) -> Result<usize, StoreError> {
        self.write(move |t| {
            let mut gone = Vec::new();
            for item in t.node_replays.iter() {
                let (key, raw) = item?;
                let until = <[u8; 8]>::try_from(raw.as_slice()).map_or(0, u64::from_be_bytes);
                if until <= now {
                    gone.push(key);
                }
            }
            for key in &gone {
                t.node_replays.remove(key)?;
            }
            Ok(gone.len())
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::testing::engine_tests;
    use super::*;

    fn ring(kid: &str) -> StoredKeyring {
        StoredKeyring {
            version: 1,
            current: kid.into(),
            keys: vec![StoredKey {
                kid: kid.into(),
                created_at: 1,
                retired_at: None,
                secret: vec![7; 32],
            }],
            network_id: None,
        }
    }

    /// The first keyring stored wins; an update raises the version; a replay key is
    /// claimed once and forgotten after its window; an update is a take.
    async fn keyrings_takes_and_replays(store: Store) {
        assert!(store.keyring(TOKEN_KEYRING).unwrap().is_none());
        let (a, b) = tokio::join!(
            store.init_keyring(TOKEN_KEYRING, ring("a")),
            store.init_keyring(TOKEN_KEYRING, ring("b"))
        );
        assert_eq!(a.unwrap(), b.unwrap(), "one keyring");
        let first = store.keyring(TOKEN_KEYRING).unwrap().unwrap();
        let new = store
            .update_keyring(TOKEN_KEYRING, |old| {
                let mut k = old.unwrap();
                k.current = "c".into();
                Ok(k)
            })
            .await
            .unwrap();
        assert_eq!(new.version, first.version + 1);
        assert_eq!(store.keyring(TOKEN_KEYRING).unwrap().unwrap().current, "c");
        assert!(store.keyring(NETWORK_KEYRING).unwrap().is_none());

        assert!(store.claim_once([1; 32], 100).unwrap());
        assert!(!store.claim_once([1; 32], 200).unwrap());
        assert!(store.claim_once([2; 32], 300).unwrap());
        assert_eq!(store.purge_replays(150).await.unwrap(), 1);
        assert_eq!(store.purge_replays(150).await.unwrap(), 0);
        assert!(!store.claim_once([2; 32], 300).unwrap());

        fn take(v: Option<u64>) -> (Change<u64>, Option<u64>) {
            match v {
                Some(n) => (Change::Remove, Some(n)),
                None => (Change::Keep, None),
            }
        }
        store
            .update_shared(Shared::OauthCodes, vec![9], |_: Option<u64>| {
                (Change::Put(5u64), ())
            })
            .await
            .unwrap();
        assert_eq!(store.count_shared(Shared::OauthCodes).unwrap(), 1);
        let (x, y) = tokio::join!(
            store.update_shared(Shared::OauthCodes, vec![9], take),
            store.update_shared(Shared::OauthCodes, vec![9], take)
        );
        let mut got = [x.unwrap(), y.unwrap()];
        got.sort();
        assert_eq!(got, [None, Some(5)], "taken once");
        store
            .update_shared(Shared::Devices, vec![1], |_: Option<u64>| {
                (Change::Put(10u64), ())
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .purge_shared(Shared::Devices, |v: &u64| *v < 20)
                .await
                .unwrap(),
            1
        );
        assert!(store
            .get_shared::<u64>(Shared::Devices, &[1])
            .unwrap()
            .is_none());
    }
    engine_tests!(shared, keyrings_takes_and_replays);

    /// Two stores on one PostgreSQL database (two writers, two pools: replicas as the
    /// database sees them): every record is taken exactly once when both take it at the
    /// same moment, one keyring wins, and a replay key is claimed once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_on_one_database_take_each_record_once() {
        use super::super::testing::{pg_options, TestEngine, TestStore};
        use super::super::Engine;
        let a = TestStore::open(TestEngine::Postgres).await;
        let url = a.pg.as_ref().unwrap().url();
        let (b, b_writer) = Store::open_engine(&Engine::Postgres(pg_options(&url))).unwrap();
        let b_writer = tokio::spawn(b_writer.run());
        let (sa, sb) = (a.store.clone(), b.clone());
        let (ka, kb) = tokio::join!(
            sa.init_keyring(NETWORK_KEYRING, ring("a")),
            sb.init_keyring(NETWORK_KEYRING, ring("b"))
        );
        assert_eq!(ka.unwrap(), kb.unwrap(), "one keyring");
        fn take(v: Option<u64>) -> (Change<u64>, Option<u64>) {
            match v {
                Some(n) => (Change::Remove, Some(n)),
                None => (Change::Keep, None),
            }
        }
        for i in 0u64..40 {
            let key = i.to_be_bytes().to_vec();
            sa.update_shared(Shared::OauthCodes, key.clone(), move |_: Option<u64>| {
                (Change::Put(i), ())
            })
            .await
            .unwrap();
            // B sees A's committed write, and of two takes at once exactly one wins.
            assert_eq!(
                sb.get_shared::<u64>(Shared::OauthCodes, &key).unwrap(),
                Some(i)
            );
            let (x, y) = tokio::join!(
                sa.update_shared(Shared::OauthCodes, key.clone(), take),
                sb.update_shared(Shared::OauthCodes, key.clone(), take)
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x.is_some() != y.is_some(), "record {i}: {x:?} {y:?}");
            let (x, y) = tokio::join!(
                tokio::task::spawn_blocking({
                    let s = sa.clone();
                    move || s.claim_once([i as u8; 32], 10)
                }),
                tokio::task::spawn_blocking({
                    let s = sb.clone();
                    move || s.claim_once([i as u8; 32], 10)
                })
            );
            let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
            assert!(x != y, "replay key {i} claimed {x} {y}");
        }
        drop((sa, sb, b));
        b_writer.await.unwrap().unwrap();
        a.close().await;
    }
}
