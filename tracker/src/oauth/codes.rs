//! Authorization codes: 256-bit random, kept in memory by their hash (one owner, bounded),
//! valid for [`CODE_TTL_SECS`], single use, bound to the client, the redirect URI, the user
//! and the PKCE challenge. A redeemed code is remembered a while longer: redeeming it again
//! revokes the session the first redemption started.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;

use crate::store::UserId;

/// How long a code may be redeemed, seconds.
pub const CODE_TTL_SECS: u64 = 60;
/// How long a redeemed or expired code is remembered (to catch a second redemption).
const REMEMBER_SECS: u64 = 600;
/// Most codes kept at once.
pub const MAX_CODES: usize = 50_000;

/// What a code was issued for.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub user: UserId,
    pub challenge: String,
    pub auth_time: u64,
    pub expires_at: u64,
}

#[derive(Debug)]
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

#[derive(Debug)]
struct Entry {
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

/// The code store.
#[derive(Default)]
pub struct Codes {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

fn key(code: &str) -> [u8; 32] {
    *blake3::hash(code.as_bytes()).as_bytes()
}

impl Codes {
    /// Stores `grant` under a new code and returns the code; `None` when the store is full.
    pub fn issue(&self, grant: CodeGrant, now: u64) -> Option<String> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CODES {
            map.retain(|_, e| e.grant.expires_at + REMEMBER_SECS > now);
            if map.len() >= MAX_CODES {
                return None;
            }
        }
        let bytes: [u8; 32] = rand::random();
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        map.insert(
            key(&code),
            Entry {
                grant,
                state: State::Fresh,
            },
        );
        Some(code)
    }

    /// Redeems `code` for `client_id` with `redirect_uri` and `verifier` at `now`. A
    /// refusal other than reuse leaves the code as it was.
    pub fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        now: u64,
    ) -> Result<CodeGrant, CodeRefusal> {
        if code.is_empty() || code.len() > 128 {
            return Err(CodeRefusal::UnknownCode);
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = map.get_mut(&key(code)) else {
            return Err(CodeRefusal::UnknownCode);
        };
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
    pub fn started(&self, code: &str, family: [u8; 16]) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&key(code)) {
            Some(entry) => {
                let reused = matches!(entry.state, State::Redeeming { reused: true });
                entry.state = State::Redeemed(family);
                reused
            }
            None => false,
        }
    }

    /// How many codes are kept.
    pub fn count(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
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

    #[test]
    fn single_use_bound_and_expiring() {
        let codes = Codes::default();
        let v = "v".repeat(43);
        let now = 1_000;
        let code = codes.issue(grant(now, &v), now).unwrap();
        let uri = "https://a.example/auth/callback";
        // Wrong client, URI, verifier (or none): refused, the code still works after.
        assert_eq!(
            codes.redeem(&code, "b", uri, &v, now).unwrap_err(),
            CodeRefusal::WrongClient
        );
        assert_eq!(
            codes
                .redeem(&code, "a", "https://b.example/auth/callback", &v, now)
                .unwrap_err(),
            CodeRefusal::BadRedirectUri
        );
        assert_eq!(
            codes
                .redeem(&code, "a", uri, &"w".repeat(43), now)
                .unwrap_err(),
            CodeRefusal::BadVerifier
        );
        assert_eq!(
            codes.redeem(&code, "a", uri, "", now).unwrap_err(),
            CodeRefusal::BadVerifier
        );
        assert_eq!(
            codes.redeem("nope", "a", uri, &v, now).unwrap_err(),
            CodeRefusal::UnknownCode
        );
        let g = codes.redeem(&code, "a", uri, &v, now + 1).unwrap();
        assert_eq!(g.user, UserId([1; 16]));
        // A second redemption while the session is being started: reported to `started`.
        assert_eq!(
            codes.redeem(&code, "a", uri, &v, now + 2).unwrap_err(),
            CodeRefusal::CodeReused(None)
        );
        assert!(codes.started(&code, [7; 16]));
        assert_eq!(
            codes.redeem(&code, "a", uri, &v, now + 3).unwrap_err(),
            CodeRefusal::CodeReused(Some([7; 16]))
        );

        // Expiry, with time injected.
        let late = codes.issue(grant(now, &v), now).unwrap();
        assert_eq!(
            codes
                .redeem(&late, "a", uri, &v, now + CODE_TTL_SECS)
                .unwrap_err(),
            CodeRefusal::CodeExpired
        );
        assert!(codes
            .redeem(&late, "a", uri, &v, now + CODE_TTL_SECS - 1)
            .is_ok());
        assert_eq!(codes.count(), 2);
    }
}
