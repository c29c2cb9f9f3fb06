//! Verified access tokens, remembered until they expire.
//!
//! Checking a bearer token's EdDSA signature costs about 35 µs, a large share of a durable
//! progress write (docs/benchmarks.md, "Tracker: durable progress writes"). A client sends
//! the same access token on every request for its lifetime, so the outcome of the pure
//! checks — signature, issuer, expiry, which key signed it — is kept here, keyed by the
//! BLAKE3 hash of the token (the token itself is never stored).
//!
//! What the cache does not remember is checked on every request by the caller, as before:
//! the session (`sid`: sign-out and revocation act at once), the audience rules, and the
//! account. A hit is re-checked against the clock (the same 5 s leeway as a full
//! verification) and against the current keyring (a key that retired past its grace stops
//! its tokens at once). Only successes are cached.
//!
//! Bounded: at `capacity` entries, expired ones are dropped, and if that is not enough the
//! whole map is cleared (the next requests verify again). One lock around a map: the
//! lookup is on every request's path and takes well under a microsecond, so an actor round
//! trip would cost more than the check it saves (the same shape as [`crate::limiter`]).
//!
//! Per replica (several trackers on one database each keep their own): it caches only
//! the pure checks, which give the same answer at every replica with the same keyring.

use std::collections::HashMap;
use std::sync::Mutex;

use reelnet_proto::Claims;

/// The leeway on `exp`, seconds (as [`crate::keys::Keyring`]'s verification).
const LEEWAY_SECS: u64 = 5;

struct Entry {
    claims: Claims,
    kid: String,
}

/// See the module docs.
pub struct TokenCache {
    capacity: usize,
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0: off).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn key(token: &str) -> [u8; 32] {
        *blake3::hash(token.as_bytes()).as_bytes()
    }

    /// The claims of `token` if it was verified before, has not expired at `now`, and its
    /// key (`kid`) is still accepted (`key_usable`).
    pub fn get(
        &self,
        token: &str,
        now: u64,
        key_usable: impl FnOnce(&str) -> bool,
    ) -> Option<Claims> {
        if self.capacity == 0 {
            return None;
        }
        let key = Self::key(token);
        let mut map = self.map.lock().ok()?;
        let entry = map.get(&key)?;
        if entry.claims.exp.saturating_add(LEEWAY_SECS) <= now || !key_usable(&entry.kid) {
            map.remove(&key);
            return None;
        }
        Some(entry.claims.clone())
    }

    /// Remembers that `token` verified to `claims`, signed by key `kid`.
    pub fn insert(&self, token: &str, kid: String, claims: &Claims, now: u64) {
        if self.capacity == 0 || claims.exp.saturating_add(LEEWAY_SECS) <= now {
            return;
        }
        let key = Self::key(token);
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| e.claims.exp.saturating_add(LEEWAY_SECS) > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                claims: claims.clone(),
                kid,
            },
        );
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        serde_json::from_value(serde_json::json!({
            "sub": "u", "email": "a@b.c", "tier": "free", "exp": exp, "iat": 0,
            "iss": "t", "aud": "reelnet", "jti": "j"
        }))
        .unwrap()
    }

    #[test]
    fn hit_until_expiry_then_miss() {
        let c = TokenCache::new(10);
        c.insert("tok", "k1".into(), &claims(100), 50);
        assert_eq!(c.get("tok", 60, |_| true).unwrap().exp, 100);
        assert!(c.get("other", 60, |_| true).is_none());
        // within the leeway, then past it (and the entry is gone)
        assert!(c.get("tok", 104, |_| true).is_some());
        assert!(c.get("tok", 105, |_| true).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn a_retired_key_stops_its_cached_tokens() {
        let c = TokenCache::new(10);
        c.insert("tok", "k1".into(), &claims(100), 50);
        assert!(c.get("tok", 60, |kid| kid == "k2").is_none());
        assert!(c.get("tok", 60, |_| true).is_none(), "dropped on the miss");
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(3);
        for i in 0..3 {
            c.insert(&format!("t{i}"), "k".into(), &claims(100 + i), 50);
        }
        assert_eq!(c.len(), 3);
        // full of live tokens: cleared, then the new one goes in
        c.insert("t9", "k".into(), &claims(200), 60);
        assert_eq!(c.len(), 1);
        // full with expired ones: only those go
        c.insert("a", "k".into(), &claims(70), 60);
        c.insert("b", "k".into(), &claims(300), 60);
        c.insert("c", "k".into(), &claims(300), 90);
        assert_eq!(c.len(), 3);
        assert!(c.get("a", 90, |_| true).is_none());
        assert!(c.get("t9", 90, |_| true).is_some());
    }

    #[test]
    fn off_when_capacity_is_zero() {
        let c = TokenCache::new(0);
        c.insert("tok", "k".into(), &claims(100), 50);
        assert!(c.get("tok", 60, |_| true).is_none());
    }
}
