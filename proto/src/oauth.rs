//! Sign-in through the tracker (OAuth 2.0 authorization code with PKCE, RFC 6749/7636/9700;
//! device grant, RFC 8628): what the tracker (authorization server) and a node's gateway
//! (a confidential client whose `client_id` is its node id) must agree on.
//!
//! The node's gateway sends the browser to [`AUTHORIZE_PATH`] on the tracker, gets it back
//! at [`CALLBACK_PATH`] on one of the gateway origins in its membership certificate, and
//! redeems the code at [`TOKEN_PATH`] with a request signed by its node key
//! (`Reelnet-Node-Auth`, as every node request). See `docs/signin.md` for the whole design.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The tracker's authorization endpoint (a page on the tracker's origin).
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// The tracker's token endpoint (`application/x-www-form-urlencoded` in, JSON out).
pub const TOKEN_PATH: &str = "/oauth/token";
/// The tracker's revocation endpoint (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// The tracker's device authorization endpoint (RFC 8628).
pub const DEVICE_AUTHORIZATION_PATH: &str = "/oauth/device_authorization";
/// The tracker's page where a viewer types a device's code.
pub const DEVICE_PAGE_PATH: &str = "/device";
/// The authorization-server metadata (RFC 8414).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The one redirect path a node may use: its redirect URIs are `<gateway origin>` +
/// this, for the origins in its certificate.
pub const CALLBACK_PATH: &str = "/auth/callback";

/// `grant_type` of a code redemption.
pub const GRANT_CODE: &str = "authorization_code";
/// `grant_type` of a refresh.
pub const GRANT_REFRESH: &str = "refresh_token";
/// `grant_type` of a device-code poll.
pub const GRANT_DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The `client_id` of public clients (scripts, CLIs, TVs) in the device grant.
pub const PUBLIC_CLIENT_ID: &str = "reelnet-cli";

/// Shortest and longest PKCE verifier (RFC 7636 §4.1).
pub const VERIFIER_MIN: usize = 43;
pub const VERIFIER_MAX: usize = 128;
/// Longest `state` a client may send (it comes back verbatim).
pub const MAX_STATE_LEN: usize = 512;

/// The redirect URI of gateway origin `origin` (`https://host[:port]`, no trailing slash).
pub fn redirect_uri(origin: &str) -> String {
    format!("{}{CALLBACK_PATH}", origin.trim_end_matches('/'))
}

/// Whether `verifier` is a valid PKCE code verifier: 43–128 characters of
/// `[A-Za-z0-9-._~]`.
pub fn verifier_is_valid(verifier: &str) -> bool {
    (VERIFIER_MIN..=VERIFIER_MAX).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 code challenge of `verifier`: `BASE64URL(SHA256(verifier))`, unpadded.
pub fn s256_challenge(verifier: &str) -> String {
    let digest = sha2::Sha256::digest(verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `challenge` is a well-formed S256 challenge (43 base64url characters).
pub fn challenge_is_valid(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Whether `verifier` matches `challenge` (S256 only; the comparison does not stop at
/// the first differing byte).
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    if !verifier_is_valid(verifier) {
        return false;
    }
    crate::sign::ct_eq(s256_challenge(verifier).as_bytes(), challenge.as_bytes())
}

/// A successful token endpoint answer (RFC 6749 §5.1), with the account it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    #[serde(default)]
    pub refresh_expires_in: u64,
    /// Granted scopes, space-separated (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The account, as `GET /api/v1/me` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<serde_json::Value>,
}

/// An error from the token, revocation or device endpoints (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `authorization_pending`, `slow_down`,
    /// `access_denied`, `expired_token`.
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verifier_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(challenge_is_valid(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn bad_verifiers() {
        let challenge = s256_challenge(&"a".repeat(43));
        assert!(!verifier_matches(
            &"a".repeat(42),
            &s256_challenge(&"a".repeat(42))
        ));
        assert!(!verifier_matches(&"b".repeat(43), &challenge));
        assert!(!verifier_matches(
            &format!("{}!", "a".repeat(43)),
            &challenge
        ));
        assert!(!verifier_is_valid(&"a".repeat(129)));
        assert!(!challenge_is_valid("short"));
        assert_eq!(
            redirect_uri("https://n.example/"),
            "https://n.example/auth/callback"
        );
    }
}
