//! The device grant (RFC 8628): pending device authorizations in memory (one owner,
//! bounded), by the hash of their device code and by their user code.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;

use crate::store::UserId;

/// How long a device authorization waits for the viewer, seconds.
pub const DEVICE_TTL_SECS: u64 = 600;
/// The polling interval a device starts with, seconds (`slow_down` adds 5).
pub const POLL_INTERVAL_SECS: u64 = 5;
/// Most pending device authorizations at once.
pub const MAX_DEVICES: usize = 10_000;
/// User-code letters: consonants only (no vowels: no words; no 0/O, 1/I/L, 5/S, 2/Z).
const ALPHABET: &[u8] = b"BCDFGHJKMNPQRTVWXY";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    Pending,
    Approved(UserId),
    Denied,
    /// Its tokens were handed out.
    Done,
}

#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub device_name: String,
    /// The node the tokens are to be bound to.
    pub resource: Option<String>,
    pub expires_at: u64,
    pub interval: u64,
    pub last_poll: Option<u64>,
    pub state: DeviceState,
}

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    Pending,
    SlowDown,
    Denied,
    Expired,
    Unknown,
    /// Approved by `user`: hand out tokens (the entry is now done).
    Approved {
        user: UserId,
        device_name: String,
        resource: Option<String>,
    },
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<[u8; 32], DeviceEntry>,
    /// Normalised user code (8 letters) → device code hash.
    by_user_code: HashMap<String, [u8; 32]>,
}

/// The pending device authorizations.
#[derive(Default)]
pub struct Devices {
    inner: Mutex<Inner>,
}

fn key(code: &str) -> [u8; 32] {
    *blake3::hash(code.as_bytes()).as_bytes()
}

/// A user code as typed, normalised to its 8 letters (`None`: cannot be one).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (letters.len() == 8 && letters.bytes().all(|b| ALPHABET.contains(&b))).then_some(letters)
}

/// `ABCDEFGH` → `ABCD-EFGH`.
pub fn display_user_code(letters: &str) -> String {
    format!("{}-{}", &letters[..4], &letters[4..])
}

impl Devices {
    /// Starts a device authorization; (device code, user code `XXXX-XXXX`), or `None` when
    /// full.
    pub fn start(
        &self,
        device_name: String,
        resource: Option<String>,
        now: u64,
    ) -> Option<(String, String)> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.by_hash.len() >= MAX_DEVICES {
            inner.purge(now);
            if inner.by_hash.len() >= MAX_DEVICES {
                return None;
            }
        }
        let letters = loop {
            let l: String = (0..8)
                .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
                .collect();
            if !inner.by_user_code.contains_key(&l) {
                break l;
            }
        };
        let device_code =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let hash = key(&device_code);
        let user_code = display_user_code(&letters);
        inner.by_user_code.insert(letters, hash);
        inner.by_hash.insert(
            hash,
            DeviceEntry {
                user_code: user_code.clone(),
                device_name,
                resource,
                expires_at: now + DEVICE_TTL_SECS,
                interval: POLL_INTERVAL_SECS,
                last_poll: None,
                state: DeviceState::Pending,
            },
        );
        Some((device_code, user_code))
    }

    /// The pending authorization with user code `letters` (normalised).
    pub fn lookup(&self, letters: &str, now: u64) -> Option<DeviceEntry> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let hash = inner.by_user_code.get(letters)?;
        inner
            .by_hash
            .get(hash)
            .filter(|e| e.expires_at > now && e.state == DeviceState::Pending)
            .cloned()
    }

    /// Approves (for `user`) or denies the pending authorization `letters`; `false` when
    /// there is none.
    pub fn decide(&self, letters: &str, user: UserId, allow: bool, now: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(hash) = inner.by_user_code.get(letters).copied() else {
            return false;
        };
        match inner.by_hash.get_mut(&hash) {
            Some(e) if e.expires_at > now && e.state == DeviceState::Pending => {
                e.state = if allow {
                    DeviceState::Approved(user)
                } else {
                    DeviceState::Denied
                };
                true
            }
            _ => false,
        }
    }

    /// A device's poll with `device_code` at `now`.
    pub fn poll(&self, device_code: &str, now: u64) -> Poll {
        if device_code.is_empty() || device_code.len() > 128 {
            return Poll::Unknown;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = inner.by_hash.get_mut(&key(device_code)) else {
            return Poll::Unknown;
        };
        if e.expires_at <= now || e.state == DeviceState::Done {
            return Poll::Expired;
        }
        let too_soon = e.last_poll.is_some_and(|t| now < t + e.interval);
        e.last_poll = Some(now);
        if too_soon {
            e.interval += 5;
            return Poll::SlowDown;
        }
        match e.state.clone() {
            DeviceState::Pending => Poll::Pending,
            DeviceState::Denied => Poll::Denied,
            DeviceState::Done => Poll::Expired,
            DeviceState::Approved(user) => {
                e.state = DeviceState::Done;
                Poll::Approved {
                    user,
                    device_name: e.device_name.clone(),
                    resource: e.resource.clone(),
                }
            }
        }
    }
}

impl Inner {
    fn purge(&mut self, now: u64) {
        self.by_hash.retain(|_, e| e.expires_at > now);
        let live = &self.by_hash;
        self.by_user_code.retain(|_, h| live.contains_key(h));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn codes_polls_and_expiry() {
        let d = Devices::default();
        let now = 100;
        let (dc, uc) = d.start("tv".into(), None, now).unwrap();
        assert_eq!(uc.len(), 9);
        let letters = normalize_user_code(&uc.to_lowercase()).unwrap();
        assert!(d.lookup(&letters, now).is_some());
        assert_eq!(d.poll(&dc, now), Poll::Pending);
        assert_eq!(d.poll(&dc, now + 1), Poll::SlowDown);
        // The interval grew to 10 s.
        assert_eq!(d.poll(&dc, now + 9), Poll::SlowDown);
        assert_eq!(d.poll(&dc, now + 30), Poll::Pending);
        assert!(d.decide(&letters, UserId([2; 16]), true, now + 31));
        assert!(matches!(d.poll(&dc, now + 50), Poll::Approved { .. }));
        assert_eq!(d.poll(&dc, now + 70), Poll::Expired);
        assert!(d.lookup(&letters, now + 70).is_none());
        let (dc2, uc2) = d.start("cli".into(), None, now).unwrap();
        let l2 = normalize_user_code(&uc2).unwrap();
        assert!(!d.decide(&l2, UserId([2; 16]), true, now + DEVICE_TTL_SECS));
        assert_eq!(d.poll(&dc2, now + DEVICE_TTL_SECS), Poll::Expired);
        assert!(normalize_user_code("AAAA-AAAA").is_none());
        assert!(normalize_user_code("BCD").is_none());
    }
}
