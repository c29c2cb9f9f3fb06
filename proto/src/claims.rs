//! JWT claims shared by the tracker (which issues access tokens) and nodes (which check
//! them before serving playback).
//!
//! Only the claim set lives here; signing and verifying (EdDSA via `jsonwebtoken`) happen in
//! the binaries, which know the keys and the configured issuer. Fields added after the first
//! release carry `#[serde(default)]` so tokens issued before them still parse.

use serde::{Deserialize, Serialize};

/// The `aud` of every reelnet access token.
pub const ACCESS_TOKEN_AUDIENCE: &str = "reelnet";

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
    /// Audience, [`ACCESS_TOKEN_AUDIENCE`].
    pub aud: String,
    /// Unique token id, for revocation.
    pub jti: String,
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
}
