//! Account rules that every part below the HTTP layer shares: what a valid email, password
//! and display name are, password hashing (argon2id), the tier a user has right now, and
//! the audience of every access token. Pure functions: no store, no `Api`, so
//! [`crate::accounts`], [`crate::billing`], [`crate::requests`], [`crate::rooms`] and the
//! offline commands in [`crate::users`] all use them without importing each other.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

thread_local! {
    /// argon2's working memory (about 19 MiB with the default parameters), kept per
    /// thread and reused: allocating it for every hash left each freed copy in a malloc
    /// arena, so a burst of hashes grew the tracker by hundreds of MiB. Hashing runs on
    /// the fixed set of threads of [`crate::hashing::HashGate`], so the memory is that
    /// many copies.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Computes an argon2 output into `out` with this thread's reusable working memory.
fn argon2_into(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let need = params.block_count();
        if blocks.len() != need {
            *blocks = vec![Block::default(); need];
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..])
    })
}

/// Hashes a password with argon2id (blocking; call from a blocking thread).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(ApiError::internal)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&argon, &params, password.as_bytes(), salt_raw, &mut out)
        .map_err(ApiError::internal)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(ApiError::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(ApiError::internal)?),
    };
    Ok(hash.to_string())
}

pub(crate) fn password_matches(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let version = hash
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if argon2_into(&argon, &params, password.as_bytes(), salt_raw, &mut out).is_err() {
        return false;
    }
    // `Output`'s comparison is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == *expected)
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
        // Hashes stored by the stock hasher (earlier versions) still verify, and ours
        // verify with it: the same PHC strings.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let stock = Argon2::default()
            .hash_password(b"stock password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(password_matches("stock password", &stock));
        assert!(!password_matches("stock passwore", &stock));
        let parsed = PasswordHash::new(&h).ok();
        assert!(parsed.is_some_and(|p| Argon2::default()
            .verify_password(b"correct horse battery", &p)
            .is_ok()));
        assert!(!password_matches("x", "not a phc string"));
    }
}
