//! The device grant (RFC 8628): pending device authorizations in the store (tree
//! `devices` by the hash of their device code, `device_user_codes` by their user code;
//! shared by every tracker replica on one database, bounded). Every step is one writer job
//! on the record ([`Store::update_shared`]): an approval given at one replica is handed
//! out once, by whichever replica the device polls.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::shared::{Change, Shared};
use crate::store::{Store, StoreError, UserId};

/// How long a device authorization waits for the viewer, seconds.
pub const DEVICE_TTL_SECS: u64 = 600;
/// The polling interval a device starts with, seconds (`slow_down` adds 5).
pub const POLL_INTERVAL_SECS: u64 = 5;
/// Most pending device authorizations at once.
pub const MAX_DEVICES: usize = 10_000;
/// User-code letters: consonants only (no vowels: no words; no 0/O, 1/I/L, 5/S, 2/Z).
const ALPHABET: &[u8] = b"BCDFGHJKMNPQRTVWXY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceState {
    Pending,
    Approved(UserId),
    Denied,
    /// Its tokens were handed out.
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

fn key(code: &str) -> Vec<u8> {
    blake3::hash(code.as_bytes()).as_bytes().to_vec()
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

/// Starts a device authorization; (device code, user code `XXXX-XXXX`), or `None` when
/// full.
pub async fn start(
    store: &Store,
    device_name: String,
    resource: Option<String>,
    now: u64,
) -> Result<Option<(String, String)>, StoreError> {
    if store.count_shared(Shared::Devices)? >= MAX_DEVICES {
        purge(store, now).await?;
        if store.count_shared(Shared::Devices)? >= MAX_DEVICES {
            return Ok(None);
        }
    }
    let device_code =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = key(&device_code);
    // The user code is claimed first (a fresh one until it is free), then the entry is
    // stored: a lookup by user code never finds a half-made authorization for long, and
    // never another device's.
    let letters = loop {
        let l: String = (0..8)
            .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
            .collect();
        let h = hash.clone();
        let claimed = store
            .update_shared(
                Shared::DeviceUserCodes,
                l.clone().into_bytes(),
                move |old: Option<Vec<u8>>| match old {
                    Some(_) => (Change::Keep, false),
                    None => (Change::Put(h), true),
                },
            )
            .await?;
        if claimed {
            break l;
        }
    };
    let user_code = display_user_code(&letters);
    let entry = DeviceEntry {
        user_code: user_code.clone(),
        device_name,
        resource,
        expires_at: now + DEVICE_TTL_SECS,
        interval: POLL_INTERVAL_SECS,
        last_poll: None,
        state: DeviceState::Pending,
    };
    store
        .update_shared(Shared::Devices, hash, move |_: Option<DeviceEntry>| {
            (Change::Put(entry), ())
        })
        .await?;
    Ok(Some((device_code, user_code)))
}

/// The hash of the device code user code `letters` names.
fn hash_of(store: &Store, letters: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store.get_shared(Shared::DeviceUserCodes, letters.as_bytes())
}

/// The pending authorization with user code `letters` (normalised).
pub fn lookup(store: &Store, letters: &str, now: u64) -> Result<Option<DeviceEntry>, StoreError> {
    let Some(hash) = hash_of(store, letters)? else {
        return Ok(None);
    };
    Ok(store
        .get_shared::<DeviceEntry>(Shared::Devices, &hash)?
        .filter(|e| e.expires_at > now && e.state == DeviceState::Pending))
}

/// Approves (for `user`) or denies the pending authorization `letters`; `false` when
/// there is none.
pub async fn decide(
    store: &Store,
    letters: &str,
    user: UserId,
    allow: bool,
    now: u64,
) -> Result<bool, StoreError> {
    let Some(hash) = hash_of(store, letters)? else {
        return Ok(false);
    };
    store
        .update_shared(
            Shared::Devices,
            hash,
            move |e: Option<DeviceEntry>| match e {
                Some(mut e) if e.expires_at > now && e.state == DeviceState::Pending => {
                    e.state = if allow {
                        DeviceState::Approved(user)
                    } else {
                        DeviceState::Denied
                    };
                    (Change::Put(e), true)
                }
                _ => (Change::Keep, false),
            },
        )
        .await
}

/// A device's poll with `device_code` at `now`.
pub async fn poll(store: &Store, device_code: &str, now: u64) -> Result<Poll, StoreError> {
    if device_code.is_empty() || device_code.len() > 128 {
        return Ok(Poll::Unknown);
    }
    store
        .update_shared(
            Shared::Devices,
            key(device_code),
            move |e: Option<DeviceEntry>| {
                let Some(mut e) = e else {
                    return (Change::Keep, Poll::Unknown);
                };
                if e.expires_at <= now || e.state == DeviceState::Done {
                    return (Change::Keep, Poll::Expired);
                }
                let too_soon = e.last_poll.is_some_and(|t| now < t + e.interval);
                e.last_poll = Some(now);
                if too_soon {
                    e.interval += 5;
                    return (Change::Put(e), Poll::SlowDown);
                }
                let answer = match e.state.clone() {
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
                };
                (Change::Put(e), answer)
            },
        )
        .await
}

/// Removes expired authorizations and their user codes; answers how many went.
pub async fn purge(store: &Store, now: u64) -> Result<usize, StoreError> {
    let n = store
        .purge_shared(Shared::Devices, move |e: &DeviceEntry| e.expires_at <= now)
        .await?;
    // A user code whose authorization is gone (or never got stored) goes too.
    let live = store.clone();
    store
        .purge_shared(Shared::DeviceUserCodes, move |h: &Vec<u8>| {
            !matches!(
                live.get_shared::<DeviceEntry>(Shared::Devices, h),
                Ok(Some(_))
            )
        })
        .await?;
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::testing::engine_tests;

    async fn codes_polls_and_expiry(store: Store) {
        let d = &store;
        let now = 100;
        let (dc, uc) = start(d, "tv".into(), None, now).await.unwrap().unwrap();
        assert_eq!(uc.len(), 9);
        let letters = normalize_user_code(&uc.to_lowercase()).unwrap();
        assert!(lookup(d, &letters, now).unwrap().is_some());
        assert_eq!(poll(d, &dc, now).await.unwrap(), Poll::Pending);
        assert_eq!(poll(d, &dc, now + 1).await.unwrap(), Poll::SlowDown);
        // The interval grew to 10 s.
        assert_eq!(poll(d, &dc, now + 9).await.unwrap(), Poll::SlowDown);
        assert_eq!(poll(d, &dc, now + 30).await.unwrap(), Poll::Pending);
        assert!(decide(d, &letters, UserId([2; 16]), true, now + 31)
            .await
            .unwrap());
        assert!(matches!(
            poll(d, &dc, now + 50).await.unwrap(),
            Poll::Approved { .. }
        ));
        assert_eq!(poll(d, &dc, now + 70).await.unwrap(), Poll::Expired);
        assert!(lookup(d, &letters, now + 70).unwrap().is_none());
        let (dc2, uc2) = start(d, "cli".into(), None, now).await.unwrap().unwrap();
        let l2 = normalize_user_code(&uc2).unwrap();
        assert!(
            !decide(d, &l2, UserId([2; 16]), true, now + DEVICE_TTL_SECS)
                .await
                .unwrap()
        );
        assert_eq!(
            poll(d, &dc2, now + DEVICE_TTL_SECS).await.unwrap(),
            Poll::Expired
        );
        assert_eq!(purge(d, now + DEVICE_TTL_SECS).await.unwrap(), 2);
        assert!(hash_of(d, &l2).unwrap().is_none(), "its user code went too");
        assert!(normalize_user_code("AAAA-AAAA").is_none());
        assert!(normalize_user_code("BCD").is_none());
    }
    engine_tests!(devices, codes_polls_and_expiry);
}
