//! Passkeys (WebAuthn, `webauthn-rs`): the relying party is the tracker (RP id = its
//! `public_url`'s host, origin = its `public_url`), so a passkey works only on the
//! tracker's own origin and no node can phish it. The ceremonies' pending state is kept in
//! the store for [`CEREMONY_SECS`] (tree `passkey_ceremonies`, by the hash of the ceremony
//! id; the state as JSON), so a ceremony started at one tracker replica finishes at any
//! other, once; credentials are stored per user ([`crate::store::pages::PasskeyRecord`]).
//!
//! WebAuthn does not allow an IP address as RP id: with a `public_url` such as
//! `http://127.0.0.1:7070` passkeys are off (the pages say so); `http://localhost:7070` or
//! a real host name work.

use std::net::IpAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::StatusCode;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::{next_of, Answer, Handled, Pages, Req, Session};
use crate::clock::now_secs;
use crate::store::pages::PasskeyRecord;
use crate::store::shared::{Change, Shared};
use crate::store::{Store, StoreError, UserId};

/// How long a ceremony may take, seconds.
const CEREMONY_SECS: u64 = 300;
/// Most ceremonies pending at once (older ones are dropped beyond it).
const MAX_PENDING: usize = 10_000;

#[derive(Serialize, Deserialize)]
enum Pending {
    Register(UserId, Box<PasskeyRegistration>),
    Login(UserId, Box<PasskeyAuthentication>),
}

/// The relying party and the ceremonies in flight.
pub(super) struct Passkeys {
    webauthn: Option<Webauthn>,
    why_not: Option<String>,
}

impl Passkeys {
    pub fn new(origin: &str, host: &str) -> Self {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let built = if bare.parse::<IpAddr>().is_ok() {
            Err(format!(
                "Passkeys need this tracker's address to be a host name (such as localhost), not an IP address; it is {origin}."
            ))
        } else {
            Url::parse(origin)
                .map_err(|e| e.to_string())
                .and_then(|url| {
                    WebauthnBuilder::new(bare, &url)
                        .and_then(|b| b.rp_name("reelnet").build())
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| format!("Passkeys are not available on this tracker ({e})."))
        };
        match built {
            Ok(w) => Self {
                webauthn: Some(w),
                why_not: None,
            },
            Err(why) => {
                tracing::info!(%why, "passkeys off");
                Self {
                    webauthn: None,
                    why_not: Some(why),
                }
            }
        }
    }

    /// Why passkeys cannot be used here (`None`: they can).
    pub fn unavailable(&self) -> Option<String> {
        self.why_not.clone()
    }
}

/// A ceremony in flight as stored: when it ends, and its state as JSON (webauthn-rs's
/// state types are made for serde_json).
#[derive(Serialize, Deserialize)]
pub(crate) struct Ceremony {
    expires_at: u64,
    json: String,
}

fn ceremony_key(id: &str) -> Vec<u8> {
    blake3::hash(id.as_bytes()).as_bytes().to_vec()
}

/// Keeps `p` under a new ceremony id (answered); `None` when too many are in flight.
async fn put(store: &Store, p: Pending, now: u64) -> Result<Option<String>, StoreError> {
    if store.count_shared(Shared::PasskeyCeremonies)? >= MAX_PENDING {
        purge(store, now).await?;
        if store.count_shared(Shared::PasskeyCeremonies)? >= MAX_PENDING {
            return Ok(None);
        }
    }
    let json = serde_json::to_string(&p)
        .map_err(|e| StoreError::Corrupt(format!("a passkey ceremony: {e}")))?;
    let (id, _) = crate::accounts::new_secret();
    let record = Ceremony {
        expires_at: now + CEREMONY_SECS,
        json,
    };
    store
        .update_shared(
            Shared::PasskeyCeremonies,
            ceremony_key(&id),
            move |_: Option<Ceremony>| (Change::Put(record), ()),
        )
        .await?;
    Ok(Some(id))
}

/// Takes (once, at whichever replica) the ceremony `id` if it has not ended by `now`.
async fn take(store: &Store, id: &str, now: u64) -> Result<Option<Pending>, StoreError> {
    if id.is_empty() || id.len() > 128 {
        return Ok(None);
    }
    let taken = store
        .update_shared(
            Shared::PasskeyCeremonies,
            ceremony_key(id),
            |c: Option<Ceremony>| match c {
                Some(c) => (Change::Remove, Some(c)),
                None => (Change::Keep, None),
            },
        )
        .await?;
    Ok(taken
        .filter(|c| c.expires_at > now)
        .and_then(|c| serde_json::from_str(&c.json).ok()))
}

/// Removes ceremonies that ended before `now`; answers how many.
pub(crate) async fn purge(store: &Store, now: u64) -> Result<usize, StoreError> {
    store
        .purge_shared(Shared::PasskeyCeremonies, move |c: &Ceremony| {
            c.expires_at <= now
        })
        .await
}

fn internal(e: StoreError) -> Answer {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &e.to_string(),
    )
}

fn limit_key(addr: &str) -> String {
    format!("passkey-login:addr:{addr}")
}

fn err(status: StatusCode, code: &str, message: &str) -> Answer {
    Answer::json(status, &json!({ "error": code, "message": message }))
}

/// Same origin and the CSRF header: the session's token, or before sign-in the
/// double-submit cookie's.
fn check(pages: &Pages, req: &Req, session: Option<&Session>) -> Result<(), Answer> {
    if pages.csrf_ok(req, session, req.csrf_header.as_deref().unwrap_or("")) {
        Ok(())
    } else {
        pages.api().oauth_refused("bad_csrf");
        Err(err(
            StatusCode::FORBIDDEN,
            "bad_csrf",
            "reload the page and try again",
        ))
    }
}

/// A signed-in ceremony: the session (else 401), then [`check`].
fn signed_in(pages: &Pages, req: &Req) -> Result<Session, Answer> {
    let Some(s) = pages.session(req) else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "not_signed_in",
            "sign in first",
        ));
    };
    check(pages, req, Some(&s))?;
    Ok(s)
}

/// A ceremony just started: its state kept (`pending`) under a new id, and the options
/// for the browser.
async fn ceremony<O: serde::Serialize, S, E: std::fmt::Display>(
    pages: &Pages,
    started: Result<(O, S), E>,
    pending: impl FnOnce(S) -> Pending,
) -> Answer {
    match started {
        Ok((options, state)) => match put(pages.api().store(), pending(state), now_secs()).await {
            Ok(Some(id)) => Answer::json(
                StatusCode::OK,
                &json!({ "ceremony": id, "options": options }),
            ),
            Ok(None) => err(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many passkey ceremonies in progress; try again in a minute",
            ),
            Err(e) => internal(e),
        },
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "passkey_failed",
            &e.to_string(),
        ),
    }
}

fn webauthn(pages: &Pages) -> Result<&Webauthn, Answer> {
    pages.inner.passkeys.webauthn.as_ref().ok_or_else(|| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "passkeys_unavailable",
            pages
                .inner
                .passkeys
                .why_not
                .as_deref()
                .unwrap_or("passkeys are off"),
        )
    })
}

fn user_passkeys(
    pages: &Pages,
    user: &UserId,
) -> Result<Vec<(Vec<u8>, PasskeyRecord, Passkey)>, Answer> {
    let list = pages.api().store().passkeys(user).map_err(|e| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        )
    })?;
    Ok(list
        .into_iter()
        .filter_map(|(id, rec)| {
            let pk: Passkey = serde_json::from_str(&rec.json).ok()?;
            Some((id, rec, pk))
        })
        .collect())
}

#[derive(Deserialize)]
struct Finish<T> {
    ceremony: String,
    credential: T,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginStart {
    email: String,
}

/// `POST /passkeys/register/start` (signed in, CSRF header, recent sign-in).
pub(super) async fn register_start(pages: Pages, req: Req, _body: Bytes) -> Handled {
    let s = signed_in(&pages, &req)?;
    if !pages.recent(&s) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "reauth_required",
            "you signed in a while ago: sign in again before adding a passkey",
        ));
    }
    let w = webauthn(&pages)?;
    let exclude = user_passkeys(&pages, &s.user.id)?
        .iter()
        .map(|(_, _, pk)| pk.cred_id().clone())
        .collect();
    let started = w.start_passkey_registration(
        Uuid::from_bytes(s.user.id.0),
        &s.user.email,
        &s.user.display_name,
        Some(exclude),
    );
    Ok(ceremony(&pages, started, |state| {
        Pending::Register(s.user.id, Box::new(state))
    })
    .await)
}

/// `POST /passkeys/register/finish`
pub(super) async fn register_finish(pages: Pages, req: Req, body: Bytes) -> Handled {
    let s = signed_in(&pages, &req)?;
    let w = webauthn(&pages)?;
    let f = serde_json::from_slice::<Finish<RegisterPublicKeyCredential>>(&body).map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "not a passkey registration",
        )
    })?;
    let unknown = || err(StatusCode::BAD_REQUEST, "unknown_ceremony", "start again");
    let taken = take(pages.api().store(), &f.ceremony, now_secs())
        .await
        .map_err(internal)?;
    let Some(Pending::Register(user, state)) = taken else {
        return Err(unknown());
    };
    if user != s.user.id {
        return Err(unknown());
    }
    let pk = w
        .finish_passkey_registration(&f.credential, &state)
        .map_err(|e| err(StatusCode::BAD_REQUEST, "passkey_refused", &e.to_string()))?;
    let json = serde_json::to_string(&pk).map_err(|e| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        )
    })?;
    let rec = PasskeyRecord {
        json,
        created_at: now_secs(),
        last_used_at: None,
    };
    let stored = pages
        .api()
        .store()
        .put_passkey(user, pk.cred_id().as_ref().to_vec(), rec)
        .await;
    Ok(match stored {
        Ok(()) => {
            tracing::info!(user = %user, "passkey added");
            Answer::json(StatusCode::OK, &json!({ "status": "added" }))
        }
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    })
}

/// `POST /passkeys/login/start {email}` (CSRF header).
pub(super) async fn login_start(pages: Pages, req: Req, body: Bytes) -> Handled {
    check(&pages, &req, pages.session(&req).as_ref())?;
    // Never through a node (its viewer addresses would get fresh allowances below).
    let src = pages.direct_source(&req, &body)?;
    let w = webauthn(&pages)?;
    let start = serde_json::from_slice::<LoginStart>(&body).map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "send {\"email\": …}",
        )
    })?;
    // Ceremonies started per address are limited like failed sign-ins (a finished one is
    // handed back): asking which emails have passkeys is not free.
    let auth = &pages.api().config().auth;
    if let Err(wait) = pages.api().inner.limiter.take(
        &limit_key(&src.addr),
        auth.max_failures_per_address,
        std::time::Duration::from_secs(auth.failure_window_secs),
    ) {
        let e = crate::error::ApiError::rate_limited(wait);
        return Err(err(e.status, e.code, &e.message).retry_after(&e));
    }
    let none = || {
        err(
            StatusCode::BAD_REQUEST,
            "no_passkey",
            "no passkey for this email; sign in with the password",
        )
    };
    let Ok(email) = crate::accounts::normalize_email(&start.email) else {
        return Err(none());
    };
    let Ok(Some(uid)) = pages.api().store().user_id_by_email(&email) else {
        return Err(none());
    };
    let keys = user_passkeys(&pages, &uid)?;
    if keys.is_empty() {
        return Err(none());
    }
    let creds: Vec<Passkey> = keys.into_iter().map(|(_, _, pk)| pk).collect();
    let started = w.start_passkey_authentication(&creds);
    Ok(ceremony(&pages, started, |state| {
        Pending::Login(uid, Box::new(state))
    })
    .await)
}

/// `POST /passkeys/login/finish`: signs in like a password would (a new session).
pub(super) async fn login_finish(pages: Pages, req: Req, body: Bytes) -> Handled {
    check(&pages, &req, pages.session(&req).as_ref())?;
    let w = webauthn(&pages)?;
    let f = serde_json::from_slice::<Finish<PublicKeyCredential>>(&body).map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "not a passkey assertion",
        )
    })?;
    let taken = take(pages.api().store(), &f.ceremony, now_secs())
        .await
        .map_err(internal)?;
    let Some(Pending::Login(uid, state)) = taken else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "unknown_ceremony",
            "start again",
        ));
    };
    let result = w
        .finish_passkey_authentication(&f.credential, &state)
        .map_err(|e| {
            tracing::info!(user = %uid, error = %e, "passkey sign-in refused");
            err(
                StatusCode::UNAUTHORIZED,
                "passkey_refused",
                "the passkey was not accepted",
            )
        })?;
    // Keep the authenticator's counter (clone detection) and when it was last used.
    if let Ok(keys) = user_passkeys(&pages, &uid) {
        for (id, mut rec, mut pk) in keys {
            if pk.update_credential(&result).is_some() {
                if let Ok(j) = serde_json::to_string(&pk) {
                    rec.json = j;
                }
                rec.last_used_at = Some(now_secs());
                let _ = pages.api().store().put_passkey(uid, id, rec).await;
            }
        }
    }
    let src = pages.direct_source(&req, &body)?;
    pages.api().inner.limiter.give_back(&limit_key(&src.addr));
    let next = next_of(f.next.as_deref());
    Ok(match pages.start_session(&req, &uid).await {
        Ok(cookie) => Answer::json(StatusCode::OK, &json!({ "redirect": next })).cookie(cookie),
        Err(e) => err(e.status, e.code, &e.message),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_host_name_is_a_relying_party_an_ip_address_is_not() {
        assert!(Passkeys::new("https://tracker.example", "tracker.example")
            .unavailable()
            .is_none());
        assert!(Passkeys::new("http://localhost:7070", "localhost")
            .unavailable()
            .is_none());
        for (origin, host) in [
            ("http://127.0.0.1:7070", "127.0.0.1"),
            ("http://[::1]:7070", "[::1]"),
        ] {
            let why = Passkeys::new(origin, host).unavailable().unwrap();
            assert!(why.contains("not an IP address"), "{why}");
        }
    }

    /// A ceremony is taken once (whichever replica asks: the store's take), and not after
    /// it ended; ended ones are swept.
    async fn ceremonies_are_taken_once(store: Store) {
        let p = Passkeys::new("http://localhost:7070", "localhost");
        let w = p.webauthn.as_ref().unwrap();
        let (_, state) = w
            .start_passkey_registration(Uuid::from_bytes([1; 16]), "a@x", "A", None)
            .unwrap();
        let now = 1_000;
        let pending = || Pending::Register(UserId([1; 16]), Box::new(state.clone()));
        let id = put(&store, pending(), now).await.unwrap().unwrap();
        assert!(matches!(
            take(&store, &id, now + 1).await.unwrap(),
            Some(Pending::Register(..))
        ));
        assert!(take(&store, &id, now + 1).await.unwrap().is_none());
        assert!(take(&store, "made-up", now).await.unwrap().is_none());
        let late = put(&store, pending(), now).await.unwrap().unwrap();
        assert!(take(&store, &late, now + CEREMONY_SECS)
            .await
            .unwrap()
            .is_none());
        put(&store, pending(), now).await.unwrap().unwrap();
        assert_eq!(purge(&store, now + CEREMONY_SECS).await.unwrap(), 1);
    }
    crate::store::testing::engine_tests!(ceremonies, ceremonies_are_taken_once);
}
