//! Authorization codes: 256-bit random, kept in the store by their hash (tree
//! `oauth_codes`, shared by every tracker replica on one database), valid for
//! [`CODE_TTL_SECS`], single use, bound to the client, the redirect URI, the user and the
//! PKCE challenge. A redeemed code is remembered a while longer: redeeming it again
//! revokes the session the first redemption started.
//!
//! Each step (issue, redeem, started) is one writer job reading and changing the code's
//! record ([`Store::update_shared`]), so a code issued by one replica is redeemed exactly
//! once whichever replicas the redemptions reach. Expired records are removed by the
//! token sweeper ([`purge`]).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::shared::{Change, Shared};
use crate::store::{Store, StoreError, UserId};

/// How long a code may be redeemed, seconds.
pub const CODE_TTL_SECS: u64 = 60;
/// How long a redeemed or expired code is remembered (to catch a second redemption).
const REMEMBER_SECS: u64 = 600;
/// Most codes kept at once.
pub const MAX_CODES: usize = 50_000;

/// What a code was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub user: UserId,
    pub challenge: String,
    pub auth_time: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum State {
    Fresh,
    /// Redeemed; its session is being started (`reused`: a second redemption came
    /// meanwhile).
    Redeeming {
        reused: bool,
    },
    /// Redeemed; the session it started.
    Redeemed([u8; 16]),
}

/// A code as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    grant: CodeGrant,
    state: State,
}

/// Why a code was refused (each is a counted reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    UnknownCode,
    CodeExpired,
    /// Redeemed before; the family it started (if already known) must be revoked.
    CodeReused(Option<[u8; 16]>),
    WrongClient,
    BadRedirectUri,
    BadVerifier,
}

impl CodeRefusal {
    /// The counted reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownCode => "unknown_code",
            Self::CodeExpired => "code_expired",
            Self::CodeReused(_) => "code_reused",
            Self::WrongClient => "wrong_client",
            Self::BadRedirectUri => "bad_redirect_uri",
            Self::BadVerifier => "bad_verifier",
        }
    }
}

fn key(code: &str) -> Vec<u8> {
    blake3::hash(code.as_bytes()).as_bytes().to_vec()
}

/// Stores `grant` under a new code and returns the code; `None` when the store is full.
pub async fn issue(
    store: &Store,
    grant: CodeGrant,
    now: u64,
) -> Result<Option<String>, StoreError> {
    if store.count_shared(Shared::OauthCodes)? >= MAX_CODES {
        purge(store, now).await?;
        if store.count_shared(Shared::OauthCodes)? >= MAX_CODES {
            return Ok(None);
        }
    }
    let bytes: [u8; 32] = rand::random();
    let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let record = CodeRecord {
        grant,
        state: State::Fresh,
    };
    store
        .update_shared(
            Shared::OauthCodes,
            key(&code),
            move |_: Option<CodeRecord>| (Change::Put(record), ()),
        )
        .await?;
    Ok(Some(code))
}

/// Redeems `code` for `client_id` with `redirect_uri` and `verifier` at `now`. A
/// refusal other than reuse leaves the code as it was.
pub async fn redeem(
    store: &Store,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    now: u64,
) -> Result<Result<CodeGrant, CodeRefusal>, StoreError> {
    if code.is_empty() || code.len() > 128 {
        return Ok(Err(CodeRefusal::UnknownCode));
    }
    let (client_id, redirect_uri, verifier) = (
        client_id.to_owned(),
        redirect_uri.to_owned(),
        verifier.to_owned(),
    );
    store
        .update_shared(Shared::OauthCodes, key(code), move |entry| match entry {
            None => (Change::Keep, Err(CodeRefusal::UnknownCode)),
            Some(mut entry) => {
                match redeem_entry(&mut entry, &client_id, &redirect_uri, &verifier, now) {
                    Ok(grant) => (Change::Put(entry), Ok(grant)),
                    Err(CodeRefusal::CodeReused(f)) => {
                        (Change::Put(entry), Err(CodeRefusal::CodeReused(f)))
                    }
                    Err(refusal) => (Change::Keep, Err(refusal)),
                }
            }
        })
        .await
}

fn redeem_entry(
    entry: &mut CodeRecord,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    now: u64,
) -> Result<CodeGrant, CodeRefusal> {
    match &mut entry.state {
        State::Fresh => {}
        State::Redeeming { reused } => {
            *reused = true;
            return Err(CodeRefusal::CodeReused(None));
        }
        State::Redeemed(family) => return Err(CodeRefusal::CodeReused(Some(*family))),
    }
    if entry.grant.expires_at <= now {
        return Err(CodeRefusal::CodeExpired);
    }
    if entry.grant.client_id != client_id {
        return Err(CodeRefusal::WrongClient);
    }
    if entry.grant.redirect_uri != redirect_uri {
        return Err(CodeRefusal::BadRedirectUri);
    }
    if !reelnet_proto::oauth::verifier_matches(verifier, &entry.grant.challenge) {
        return Err(CodeRefusal::BadVerifier);
    }
    entry.state = State::Redeeming { reused: false };
    Ok(entry.grant.clone())
}

/// Records the session a redemption of `code` started; `true` when the code was
/// redeemed again meanwhile (the caller revokes that session).
pub async fn started(store: &Store, code: &str, family: [u8; 16]) -> Result<bool, StoreError> {
    store
        .update_shared(
            Shared::OauthCodes,
            key(code),
            move |entry: Option<CodeRecord>| match entry {
                Some(mut entry) => {
                    let reused = matches!(entry.state, State::Redeeming { reused: true });
                    entry.state = State::Redeemed(family);
                    (Change::Put(entry), reused)
                }
                None => (Change::Keep, false),
            },
        )
        .await
}

/// Removes codes past their remembering time; answers how many went.
pub async fn purge(store: &Store, now: u64) -> Result<usize, StoreError> {
    store
        .purge_shared(Shared::OauthCodes, move |e: &CodeRecord| {
            e.grant.expires_at + REMEMBER_SECS <= now
        })
        .await
}

/// How many codes are kept.
pub fn count(store: &Store) -> usize {
    store.count_shared(Shared::OauthCodes).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::testing::engine_tests;
    use reelnet_proto::oauth::s256_challenge;

    fn grant(now: u64, verifier: &str) -> CodeGrant {
        CodeGrant {
            client_id: "a".into(),
            redirect_uri: "https://a.example/auth/callback".into(),
            user: UserId([1; 16]),
            challenge: s256_challenge(verifier),
            auth_time: now,
            expires_at: now + CODE_TTL_SECS,
        }
    }

    async fn single_use_bound_and_expiring(store: Store) {
        let s = &store;
        let v = "v".repeat(43);
        let now = 1_000;
        let code = issue(s, grant(now, &v), now).await.unwrap().unwrap();
        let uri = "https://a.example/auth/callback";
        let r = |code: String, client: &'static str, uri: String, v: String, at: u64| async move {
            redeem(s, &code, client, &uri, &v, at).await.unwrap()
        };
        // Wrong client, URI, verifier (or none): refused, the code still works after.
        assert_eq!(
            r(code.clone(), "b", uri.into(), v.clone(), now)
                .await
                .unwrap_err(),
            CodeRefusal::WrongClient
        );
        assert_eq!(
            r(
                code.clone(),
                "a",
                "https://b.example/auth/callback".into(),
                v.clone(),
                now
            )
            .await
            .unwrap_err(),
            CodeRefusal::BadRedirectUri
        );
        assert_eq!(
            r(code.clone(), "a", uri.into(), "w".repeat(43), now)
                .await
                .unwrap_err(),
            CodeRefusal::BadVerifier
        );
        assert_eq!(
            r(code.clone(), "a", uri.into(), String::new(), now)
                .await
                .unwrap_err(),
            CodeRefusal::BadVerifier
        );
        assert_eq!(
            r("nope".into(), "a", uri.into(), v.clone(), now)
                .await
                .unwrap_err(),
            CodeRefusal::UnknownCode
        );
        let g = r(code.clone(), "a", uri.into(), v.clone(), now + 1)
            .await
            .unwrap();
        assert_eq!(g.user, UserId([1; 16]));
        // A second redemption while the session is being started: reported to `started`.
        assert_eq!(
            r(code.clone(), "a", uri.into(), v.clone(), now + 2)
                .await
                .unwrap_err(),
            CodeRefusal::CodeReused(None)
        );
        assert!(started(s, &code, [7; 16]).await.unwrap());
        assert_eq!(
            r(code.clone(), "a", uri.into(), v.clone(), now + 3)
                .await
                .unwrap_err(),
            CodeRefusal::CodeReused(Some([7; 16]))
        );

        // Expiry, with time injected.
        let late = issue(s, grant(now, &v), now).await.unwrap().unwrap();
        assert_eq!(
            r(
                late.clone(),
                "a",
                uri.into(),
                v.clone(),
                now + CODE_TTL_SECS
            )
            .await
            .unwrap_err(),
            CodeRefusal::CodeExpired
        );
        assert!(r(late, "a", uri.into(), v.clone(), now + CODE_TTL_SECS - 1)
            .await
            .is_ok());
        assert_eq!(count(s), 2);
        // Remembered a while after expiry, then swept.
        assert_eq!(
            purge(s, now + CODE_TTL_SECS + REMEMBER_SECS - 1)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            purge(s, now + CODE_TTL_SECS + REMEMBER_SECS).await.unwrap(),
            2
        );
        assert_eq!(count(s), 0);

        // Two redemptions at once: exactly one wins.
        let code = issue(s, grant(now, &v), now).await.unwrap().unwrap();
        let (a, b) = tokio::join!(
            r(code.clone(), "a", uri.into(), v.clone(), now + 1),
            r(code, "a", uri.into(), v.clone(), now + 1)
        );
        assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "{a:?} {b:?}");
    }
    engine_tests!(codes, single_use_bound_and_expiring);
}
