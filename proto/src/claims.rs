//! JWT claims shared by the tracker (which issues access tokens) and nodes (which check
//! them before serving playback).
//!
//! Only the claim set lives here; signing and verifying (EdDSA via `jsonwebtoken`) happen in
//! the binaries, which know the keys and the configured issuer. Fields added after the first
//! release carry `#[serde(default)]` so tokens issued before them still parse.

use serde::{Deserialize, Serialize};

/// The `aud` of a *network* token: one a script, a CLI or a TV got from the tracker
/// directly (JSON login, device grant without a node). The tracker accepts it only when it
/// does not arrive through a member's proxy; nodes never accept it.
pub const ACCESS_TOKEN_AUDIENCE: &str = "reelnet";

/// The prefix of a node audience: `reelnet-node:<node id>`.
pub const NODE_AUDIENCE_PREFIX: &str = "reelnet-node:";

/// The `aud` of tokens issued through node `node_id` (the OAuth client whose id is that
/// node id). Only that node accepts them, and the tracker only through that node's proxy.
pub fn node_audience(node_id: &str) -> String {
    format!("{NODE_AUDIENCE_PREFIX}{node_id}")
}

/// Which node an audience names (`None` for the network audience and anything else).
pub fn audience_node(aud: &str) -> Option<&str> {
    aud.strip_prefix(NODE_AUDIENCE_PREFIX)
        .filter(|id| !id.is_empty())
}

/// Scope: may change the account (password, email, deletion, subscription). Only on
/// network tokens from the tracker's own JSON login (scripts), never on node or device
/// tokens.
pub const SCOPE_ACCOUNT: &str = "account";
/// Scope: may run network-admin actions. Only on network tokens of admin accounts.
pub const SCOPE_ADMIN: &str = "admin";

/// Longest token a caller should accept (an `Authorization` header or query parameter) before
/// handing it to the JWT library: 8 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// Subscription tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Default tier.
    #[default]
    Free,
    /// Unlocks the top renditions, hosting watch parties and more requests per month.
    Premium,
}

/// Account role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A regular account.
    #[default]
    User,
    /// May run admin operations (set tiers, manage requests).
    Admin,
}

/// The claims of a reelnet access token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// The user's email address.
    pub email: String,
    /// Subscription tier at issue time.
    pub tier: Tier,
    /// When the premium period ends, unix seconds: set on premium tokens whose period has
    /// an end (absent on free tokens, on open-ended premium and in older tokens). The
    /// token's own `exp` is capped at it; nodes cap what they grant on its strength
    /// (playback tokens' premium renditions) at it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_until: Option<u64>,
    /// Whether the email address has been verified (absent in older tokens: false).
    #[serde(default)]
    pub email_verified: bool,
    /// Role (absent in older tokens: user).
    #[serde(default)]
    pub role: Role,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Issuer (the tracker's configured URL).
    pub iss: String,
    /// Audience: [`ACCESS_TOKEN_AUDIENCE`] (a network token) or [`node_audience`] (a token
    /// issued through that node).
    pub aud: String,
    /// Unique token id, for revocation.
    pub jti: String,
    /// The session (refresh-token family, hex) this token belongs to: ending the session
    /// makes the tracker refuse its tokens at once (absent in older tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Space-separated scopes ([`SCOPE_ACCOUNT`], [`SCOPE_ADMIN`]); absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Claims {
    /// True for premium subscribers.
    pub fn is_premium(&self) -> bool {
        self.tier == Tier::Premium
    }

    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == scope))
    }

    /// The node this token was issued through (`None` for a network token).
    pub fn node(&self) -> Option<&str> {
        audience_node(&self.aud)
    }
}
