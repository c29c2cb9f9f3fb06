//! Account rules that every part below the HTTP layer shares: what a valid email, password
//! and display name are, password hashing (argon2id), the tier a user has right now, and
//! the audience of every access token. Pure functions: no store, no `Api`, so
//! [`crate::accounts`], [`crate::billing`], [`crate::requests`], [`crate::rooms`] and the
//! offline commands in [`crate::users`] all use them without importing each other.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use reelnet_proto::Tier;

use crate::error::ApiError;
use crate::store::User;

/// The audience of every access token.
pub const AUDIENCE: &str = "reelnet";

const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 256;
const MAX_NAME: usize = 64;

/// The tier a user has right now (premium lapses at its end date).
pub fn effective_tier(user: &User, now: u64) -> Tier {
    match (user.tier, user.tier_until) {
        (Tier::Premium, Some(until)) if until <= now => Tier::Free,
        (tier, _) => tier,
    }
}

/// Normalises and checks an email address.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let bad = || ApiError::bad_request("invalid_email", "that is not a valid email address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    email.parse::<lettre::Address>().map_err(|_| bad())?;
    Ok(email)
}

/// Checks a new password's length (the rule registration and reset apply).
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("the password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(ApiError::bad_request(
            "invalid_password",
            format!("the password may have at most {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// Trims and checks a display name.
pub fn check_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("the display name must have 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Hashes a password with argon2id (blocking; call from a blocking thread).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub(crate) fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" A@Example.org ").ok().as_deref(),
            Some("a@example.org")
        );
        for bad in [
            "", "a", "a@b", "a@@b.c", "@b.c", "a b@c.d", "a@.b", "a@b..c", "a@b.c.",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_passwords() {
        assert!(check_name("  ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert_eq!(check_name(" Ann ").ok().as_deref(), Some("Ann"));
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
    }

    #[test]
    fn argon2_round_trip() {
        let Ok(h) = hash_password("correct horse battery") else {
            panic!("hash failed")
        };
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong horse battery", &h));
    }
}
