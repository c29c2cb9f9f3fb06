//! What the tracker's own pages keep: browser sessions (the `__Host-reelnet_session`
//! cookie, stored by its hash) and passkeys (WebAuthn credentials, per user).

use serde::{Deserialize, Serialize};

use super::{codec, Store, StoreError, Trees, UserId};

/// A signed-in browser on the tracker's pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserSession {
    pub user: UserId,
    pub created_at: u64,
    /// The last time the user typed their password or used a passkey in this session.
    pub auth_time: u64,
    pub expires_at: u64,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// A passkey: the credential as `webauthn-rs` serialises it (JSON), and when it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeyRecord {
    /// `webauthn_rs::prelude::Passkey` as JSON.
    pub json: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

fn remove_session(t: &Trees, hash: &[u8]) -> Result<(), StoreError> {
    if let Some(raw) = t.browser_sessions.remove(hash)? {
        if let Ok(rec) = codec::decode::<BrowserSession>(&raw) {
            t.user_browser_sessions.remove(rec.user.key(hash))?;
        }
    }
    Ok(())
}

impl Store {
    /// Stores a new browser session under the hash of its cookie.
    pub async fn put_browser_session(
        &self,
        hash: [u8; 32],
        rec: BrowserSession,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(&rec)?;
        self.write(move |t| {
            t.browser_sessions.insert(hash, bytes)?;
            t.user_browser_sessions.insert(rec.user.key(&hash), [])?;
            Ok(())
        })
        .await
    }

    /// The browser session with this cookie hash (expired or not: the caller checks).
    pub fn browser_session(&self, hash: &[u8; 32]) -> Result<Option<BrowserSession>, StoreError> {
        match self.trees.browser_sessions.get(hash)? {
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
            None => Ok(None),
        }
    }

    /// Sets a session's `auth_time` (a password or passkey was just checked in it).
    pub async fn touch_browser_session_auth(
        &self,
        hash: [u8; 32],
        auth_time: u64,
    ) -> Result<(), StoreError> {
        self.write(move |t| {
            let Some(raw) = t.browser_sessions.get(hash)? else {
                return Ok(());
            };
            let mut rec: BrowserSession = codec::decode(&raw)?;
            rec.auth_time = auth_time;
            t.browser_sessions.insert(hash, codec::encode(&rec)?)?;
            Ok(())
        })
        .await
    }

    /// Ends one browser session.
    pub async fn delete_browser_session(&self, hash: [u8; 32]) -> Result<(), StoreError> {
        self.write(move |t| remove_session(t, &hash)).await
    }

    /// Ends every browser session of `user` except `keep`.
    pub async fn delete_user_browser_sessions(
        &self,
        user: UserId,
        keep: Option<[u8; 32]>,
    ) -> Result<usize, StoreError> {
        self.write(move |t| {
            let keys: Vec<_> = t
                .user_browser_sessions
                .scan_prefix(user.0)
                .keys()
                .collect::<Result<_, _>>()?;
            let mut gone = 0;
            for k in keys {
                let hash = &k[16..];
                if keep.is_some_and(|h| h[..] == *hash) {
                    continue;
                }
                t.browser_sessions.remove(hash)?;
                t.user_browser_sessions.remove(&k)?;
                gone += 1;
            }
            Ok(gone)
        })
        .await
    }

    /// Removes everything the pages keep for `user` (sessions and passkeys).
    pub async fn delete_user_pages(&self, user: UserId) -> Result<(), StoreError> {
        self.delete_user_browser_sessions(user, None).await?;
        self.write(move |t| {
            let keys: Vec<_> = t
                .passkeys
                .scan_prefix(user.0)
                .keys()
                .collect::<Result<_, _>>()?;
            for k in keys {
                t.passkeys.remove(k)?;
            }
            Ok(())
        })
        .await
    }

    /// Removes browser sessions that expired at or before `now`; how many went.
    pub async fn purge_expired_browser_sessions(&self, now: u64) -> Result<usize, StoreError> {
        self.write(move |t| {
            let mut dead = Vec::new();
            for item in t.browser_sessions.iter() {
                let (key, raw) = item?;
                match codec::decode::<BrowserSession>(&raw) {
                    Ok(rec) if rec.expires_at > now => {}
                    _ => dead.push(key),
                }
            }
            for key in &dead {
                remove_session(t, key)?;
                // An unreadable record has no index entry we can find; drop the record.
                t.browser_sessions.remove(key)?;
            }
            Ok(dead.len())
        })
        .await
    }

    /// Stores (or replaces) a passkey of `user` under its credential id.
    pub async fn put_passkey(
        &self,
        user: UserId,
        cred_id: Vec<u8>,
        rec: PasskeyRecord,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(&rec)?;
        self.write(move |t| {
            t.passkeys.insert(user.key(&cred_id), bytes)?;
            Ok(())
        })
        .await
    }

    /// `user`'s passkeys: (credential id, record).
    pub fn passkeys(&self, user: &UserId) -> Result<Vec<(Vec<u8>, PasskeyRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.passkeys.scan_prefix(user.0) {
            let (key, raw) = item?;
            out.push((key[16..].to_vec(), codec::decode(&raw)?));
        }
        Ok(out)
    }

    /// Removes one passkey of `user`; whether it existed.
    pub async fn delete_passkey(&self, user: UserId, cred_id: Vec<u8>) -> Result<bool, StoreError> {
        self.write(move |t| Ok(t.passkeys.remove(user.key(&cred_id))?.is_some()))
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    async fn sessions_are_indexed_by_user_and_end_together(store: Store) {
        let (a, b) = (UserId([1; 16]), UserId([2; 16]));
        let rec = |user, expires_at| BrowserSession {
            user,
            created_at: 1,
            auth_time: 1,
            expires_at,
            csrf: "c".into(),
        };
        store
            .put_browser_session([1; 32], rec(a, 100))
            .await
            .unwrap();
        store
            .put_browser_session([2; 32], rec(a, 100))
            .await
            .unwrap();
        store
            .put_browser_session([3; 32], rec(b, 100))
            .await
            .unwrap();
        store
            .put_browser_session([4; 32], rec(b, 10))
            .await
            .unwrap();
        store.touch_browser_session_auth([1; 32], 50).await.unwrap();
        assert_eq!(
            store.browser_session(&[1; 32]).unwrap().unwrap().auth_time,
            50
        );
        assert_eq!(
            store
                .delete_user_browser_sessions(a, Some([1; 32]))
                .await
                .unwrap(),
            1
        );
        assert!(store.browser_session(&[1; 32]).unwrap().is_some());
        assert!(store.browser_session(&[2; 32]).unwrap().is_none());
        assert!(store.browser_session(&[3; 32]).unwrap().is_some());
        assert_eq!(store.purge_expired_browser_sessions(50).await.unwrap(), 1);
        assert!(store.browser_session(&[4; 32]).unwrap().is_none());

        let pk = PasskeyRecord {
            json: "{}".into(),
            created_at: 1,
            last_used_at: None,
        };
        store.put_passkey(a, vec![9, 9], pk.clone()).await.unwrap();
        store.put_passkey(b, vec![8], pk).await.unwrap();
        assert_eq!(store.passkeys(&a).unwrap().len(), 1);
        store.delete_user_pages(a).await.unwrap();
        assert!(store.passkeys(&a).unwrap().is_empty());
        assert!(store.browser_session(&[1; 32]).unwrap().is_none());
        assert_eq!(store.passkeys(&b).unwrap().len(), 1);
    }
    crate::store::testing::engine_tests!(
        sessions_are_indexed_by_user_and_end_together,
        super::sessions_are_indexed_by_user_and_end_together
    );
}
