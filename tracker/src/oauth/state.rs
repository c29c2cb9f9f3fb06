//! The protocol's in-memory state, on its own so that the API handle that holds it does
//! not import the protocol (which takes the handle).

use crate::metrics::{ReasonLabels, Refusals};

/// Every counted refusal reason (docs/signin.md), shown at 0 before the first.
pub const REFUSAL_REASONS: &[&str] = &[
    "bad_verifier",
    "code_reused",
    "code_expired",
    "unknown_code",
    "wrong_client",
    "bad_redirect_uri",
    "unknown_client",
    "refresh_reused",
    "refresh_revoked",
    "wrong_audience",
    "node_token_on_account_route",
    "credentials_through_proxy",
    "device_code_guess",
    "bad_csrf",
];

/// The protocol's in-memory state: refusal counters (codes and pending devices live in
/// the store, shared by every replica: [`codes`], [`device`]).
pub struct OauthState {
    pub(crate) refused: Refusals,
}

impl Default for OauthState {
    fn default() -> Self {
        let refused = Refusals::default();
        for reason in REFUSAL_REASONS {
            let _ = refused.get_or_create(&ReasonLabels { reason });
        }
        Self { refused }
    }
}
