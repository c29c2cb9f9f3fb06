//! The tracker's token signing keys.
//!
//! Keys live in `<data_dir>/keys/`: one `<kid>.key` file (the 32-byte ed25519 secret, mode
//! 0600) per key and `keyring.json` naming the current key and when older ones were retired.
//! The first start creates a key; `reelnet-tracker rotate-key` adds a new current key and
//! retires the old one, which stays in the JWKS and keeps verifying until every token it
//! signed has expired. A running tracker notices the change without a restart.
//!
//! With the PostgreSQL engine the keyring lives in the database instead (tree
//! `signing_keys`, shared by every replica; see [`crate::keysource`]): [`StoredKeyring`]
//! is its record, and [`Keyring::from_stored`] builds the same keyring from it.
//!
//! Verification is strict: the algorithm is pinned to EdDSA, the `kid` must name a key we
//! publish, and `exp`, `iss` and `aud` are required and checked.

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reelnet_proto::Claims;
use serde::{Deserialize, Serialize};

pub use crate::store::shared::{StoredKey, StoredKeyring};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot sign a token: {0}")]
    Sign(String),
    #[error(transparent)]
    Exposed(#[from] reelnet_runtime::fs::PrivateFileError),
    #[error("the keyring in the database is unusable: {0}")]
    Stored(String),
    #[error("cannot read or write the keyring in the database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("token has expired")]
    Expired,
    #[error("token is invalid: {0}")]
    Invalid(String),
}

/// One key's entry in `keyring.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyMeta {
    pub kid: String,
    pub created_at: u64,
    pub retired_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyringFile {
    current: String,
    keys: Vec<KeyMeta>,
}

struct Key {
    meta: KeyMeta,
    public: [u8; 32],
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The keys a tracker signs with and accepts.
pub struct Keyring {
    keys: Vec<Key>,
    current: usize,
    /// How long a retired key stays valid: the longest a token it signed can live.
    grace_secs: u64,
}

const KEYRING_FILE: &str = "keyring.json";
/// Longest token accepted before parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The directory of the token signing keys.
pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

/// The file whose change means the keyring changed.
pub fn keyring_path(data_dir: &Path) -> PathBuf {
    keys_dir(data_dir).join(KEYRING_FILE)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    reelnet_runtime::fs::write_private(path, bytes).map_err(io_err(path))
}

fn new_key(dir: &Path, now: u64) -> Result<KeyMeta, KeyError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let public = signing.verifying_key().to_bytes();
    let kid = hex::encode(&blake3::hash(&public).as_bytes()[..8]);
    write_private(&dir.join(format!("{kid}.key")), &signing.to_bytes())?;
    Ok(KeyMeta {
        kid,
        created_at: now,
        retired_at: None,
    })
}

fn save_file(dir: &Path, file: &KeyringFile) -> Result<(), KeyError> {
    let path = dir.join(KEYRING_FILE);
    let json = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_private(&path, &json)
}

fn load_file(dir: &Path) -> Result<Option<KeyringFile>, KeyError> {
    let path = dir.join(KEYRING_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KeyError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyError::Io { path, source: e }),
    }
}

/// A keyring of one new key (a first start on an empty database).
pub(crate) fn new_stored(now: u64) -> StoredKeyring {
    let mut ring = StoredKeyring {
        version: 0,
        current: String::new(),
        keys: Vec::new(),
        network_id: None,
    };
    rotate_stored(&mut ring, now);
    ring
}

/// Adds a new current key to `ring` and retires the previous one; returns the new `kid`.
pub(crate) fn rotate_stored(ring: &mut StoredKeyring, now: u64) -> String {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let kid = hex::encode(&blake3::hash(&signing.verifying_key().to_bytes()).as_bytes()[..8]);
    for k in &mut ring.keys {
        if k.retired_at.is_none() {
            k.retired_at = Some(now);
        }
    }
    ring.keys.push(StoredKey {
        kid: kid.clone(),
        created_at: now,
        retired_at: None,
        secret: signing.to_bytes().to_vec(),
    });
    ring.current = kid.clone();
    kid
}

/// The keyring in the key directory `dir` as a store record (`None`: `dir` holds none),
/// for importing a data directory's keys into the database.
pub(crate) fn stored_from_dir(dir: &Path) -> Result<Option<StoredKeyring>, KeyError> {
    if !exists_in(dir)? {
        return Ok(None);
    }
    let (keys, current) = read_keys(dir)?;
    Ok(Some(StoredKeyring {
        version: 0,
        current: keys[current].0.kid.clone(),
        keys: keys
            .into_iter()
            .map(|(m, k)| StoredKey {
                kid: m.kid,
                created_at: m.created_at,
                retired_at: m.retired_at,
                secret: k.to_bytes().to_vec(),
            })
            .collect(),
        network_id: None,
    }))
}

/// The keys of a stored keyring, and the index of the current one.
pub(crate) fn stored_keys(
    ring: &StoredKeyring,
) -> Result<(Vec<(KeyMeta, SigningKey)>, usize), KeyError> {
    let mut keys = Vec::with_capacity(ring.keys.len());
    for k in &ring.keys {
        let secret: [u8; 32] = k.secret.as_slice().try_into().map_err(|_| {
            KeyError::Stored(format!(
                "key {}: expected 32 bytes, found {}",
                k.kid,
                k.secret.len()
            ))
        })?;
        let meta = KeyMeta {
            kid: k.kid.clone(),
            created_at: k.created_at,
            retired_at: k.retired_at,
        };
        keys.push((meta, SigningKey::from_bytes(&secret)));
    }
    let current = keys
        .iter()
        .position(|(m, _)| m.kid == ring.current)
        .ok_or_else(|| KeyError::Stored(format!("current key {} is not listed", ring.current)))?;
    Ok((keys, current))
}

/// Adds a new current key and retires the previous one; returns the new `kid`.
pub fn rotate(data_dir: &Path, now: u64) -> Result<String, KeyError> {
    rotate_in(&keys_dir(data_dir), now)
}

/// [`rotate`] for the key directory `dir` (the network keyring keeps its own).
pub(crate) fn rotate_in(dir: &Path, now: u64) -> Result<String, KeyError> {
    let dir = dir.to_owned();
    reelnet_runtime::fs::create_private_dir(&dir).map_err(io_err(&dir))?;
    let mut file = load_file(&dir)?.unwrap_or(KeyringFile {
        current: String::new(),
        keys: Vec::new(),
    });
    let meta = new_key(&dir, now)?;
    for k in &mut file.keys {
        if k.retired_at.is_none() {
            k.retired_at = Some(now);
        }
    }
    file.current = meta.kid.clone();
    file.keys.push(meta);
    save_file(&dir, &file)?;
    Ok(file.current)
}

/// Every key in `dir` with its metadata, and the index of the current one.
pub(crate) fn read_keys(dir: &Path) -> Result<(Vec<(KeyMeta, SigningKey)>, usize), KeyError> {
    let ring_path = dir.join(KEYRING_FILE);
    let file = load_file(dir)?.ok_or_else(|| KeyError::Corrupt {
        path: ring_path.clone(),
        reason: "missing".to_owned(),
    })?;
    let mut keys = Vec::new();
    for meta in file.keys {
        let path = dir.join(format!("{}.key", meta.kid));
        // A key others may read is refused, like ssh refuses one.
        let bytes = reelnet_runtime::fs::read_private(&path)?.ok_or_else(|| KeyError::Io {
            path: path.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Corrupt {
            path: path.clone(),
            reason: format!("expected 32 bytes, found {}", bytes.len()),
        })?;
        keys.push((meta, SigningKey::from_bytes(&secret)));
    }
    let current = keys
        .iter()
        .position(|(m, _)| m.kid == file.current)
        .ok_or_else(|| KeyError::Corrupt {
            path: ring_path,
            reason: format!("current key {} is not listed", file.current),
        })?;
    Ok((keys, current))
}

/// Fails if any `*.key` file in `dir` (a key directory; missing is fine) is open to group
/// or others.
pub fn check_key_files(dir: &Path) -> Result<(), KeyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(KeyError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "key") {
            reelnet_runtime::fs::check_private(&path)?;
        }
    }
    Ok(())
}

/// True if `dir` holds a keyring.
pub(crate) fn exists_in(dir: &Path) -> Result<bool, KeyError> {
    Ok(load_file(dir)?.is_some())
}

impl Keyring {
    /// Loads the keyring, creating the first key on first start.
    pub fn load_or_create(data_dir: &Path, grace_secs: u64, now: u64) -> Result<Self, KeyError> {
        let dir = keys_dir(data_dir);
        if load_file(&dir)?.is_none() {
            rotate(data_dir, now)?;
        }
        Self::load(data_dir, grace_secs)
    }

    /// Loads the keyring as it is on disk.
    pub fn load(data_dir: &Path, grace_secs: u64) -> Result<Self, KeyError> {
        let (loaded, current) = read_keys(&keys_dir(data_dir))?;
        Self::from_keys(loaded, current, grace_secs)
    }

    /// The keyring as the store keeps it (PostgreSQL engine).
    pub fn from_stored(ring: &StoredKeyring, grace_secs: u64) -> Result<Self, KeyError> {
        let (loaded, current) = stored_keys(ring)?;
        Self::from_keys(loaded, current, grace_secs)
    }

    fn from_keys(
        loaded: Vec<(KeyMeta, SigningKey)>,
        current: usize,
        grace_secs: u64,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (meta, signing) in loaded {
            let der = signing
                .to_pkcs8_der()
                .map_err(|e| KeyError::Stored(format!("key {}: {e}", meta.kid)))?;
            let public = signing.verifying_key().to_bytes();
            keys.push(Key {
                meta,
                public,
                encoding: EncodingKey::from_ed_der(der.as_bytes()),
                decoding: DecodingKey::from_ed_der(&public),
            });
        }
        Ok(Self {
            keys,
            current,
            grace_secs,
        })
    }

    /// The `kid` tokens are signed with now.
    pub fn current_kid(&self) -> &str {
        &self.keys[self.current].meta.kid
    }

    fn usable(&self, now: u64) -> impl Iterator<Item = &Key> {
        let grace = self.grace_secs;
        self.keys.iter().filter(move |k| match k.meta.retired_at {
            None => true,
            Some(at) => at.saturating_add(grace) > now,
        })
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let key = &self.keys[self.current];
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.meta.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// Verifies an access token strictly.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: u64,
    ) -> Result<Claims, TokenError> {
        self.verify_with(token, issuer, Some(audience), now)
    }

    /// Like [`Keyring::verify`], for a token of any audience (the caller judges `aud`).
    pub fn verify_any_audience(
        &self,
        token: &str,
        issuer: &str,
        now: u64,
    ) -> Result<Claims, TokenError> {
        self.verify_with(token, issuer, None, now)
    }

    /// Like [`Keyring::verify_any_audience`], also naming the key that signed the token
    /// (for [`crate::token_cache::TokenCache`]).
    pub fn verify_any_audience_kid(
        &self,
        token: &str,
        issuer: &str,
        now: u64,
    ) -> Result<(Claims, String), TokenError> {
        self.verify_kid(token, issuer, None, now)
    }

    /// Whether a token signed by key `kid` is still accepted at `now`.
    pub fn accepts_kid(&self, kid: &str, now: u64) -> bool {
        self.usable(now).any(|k| k.meta.kid == kid)
    }

    fn verify_with(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
        now: u64,
    ) -> Result<Claims, TokenError> {
        self.verify_kid(token, issuer, audience, now)
            .map(|(c, _)| c)
    }

    fn verify_kid(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
        now: u64,
    ) -> Result<(Claims, String), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("algorithm must be EdDSA".to_owned()));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .usable(now)
            .find(|k| k.meta.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                other => TokenError::Invalid(format!("{other:?}")),
            },
        )?;
        Ok((data.claims, kid))
    }

    /// The JSON Web Key Set of every key that still verifies.
    pub fn jwks(&self, now: u64) -> serde_json::Value {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let keys: Vec<_> = self
            .usable(now)
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.meta.kid,
                    "x": b64.encode(k.public),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reelnet_proto::{Role, Tier};

    fn claims(now: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            email: "a@b.c".into(),
            tier: Tier::Free,
            tier_until: None,
            email_verified: true,
            role: Role::User,
            exp: now + 60,
            iat: now,
            iss: "iss".into(),
            aud: "reelnet".into(),
            jti: "j".into(),
            sid: None,
            scope: None,
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn sign_verify_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        let ring = Keyring::load_or_create(dir.path(), 900, t).unwrap();
        let old = ring.sign(&claims(t)).unwrap();
        assert_eq!(ring.verify(&old, "iss", "reelnet", t).unwrap().sub, "u1");
        assert!(matches!(
            ring.verify(&old, "other", "reelnet", t),
            Err(TokenError::Invalid(_))
        ));
        assert!(ring.verify(&old, "iss", "other", t).is_err());

        let new_kid = rotate(dir.path(), t).unwrap();
        let ring = Keyring::load(dir.path(), 900).unwrap();
        assert_eq!(ring.current_kid(), new_kid);
        // The old key still verifies within its grace period and is still published...
        assert!(ring.verify(&old, "iss", "reelnet", t).is_ok());
        assert_eq!(ring.jwks(t)["keys"].as_array().unwrap().len(), 2);
        // ...and stops once every token it signed must have expired.
        assert!(matches!(
            ring.verify(&old, "iss", "reelnet", t + 901),
            Err(TokenError::UnknownKey)
        ));
        assert_eq!(ring.jwks(t + 901)["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn forged_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        let ring = Keyring::load_or_create(dir.path(), 900, t).unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = b64.encode(serde_json::to_vec(&claims(t)).unwrap());
        // alg none
        let none = format!("{}.{body}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(ring.verify(&none, "iss", "reelnet", t).is_err());
        // HS256 keyed with the public key (algorithm confusion)
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(ring.current_kid().to_owned());
        let hs = jsonwebtoken::encode(
            &h,
            &claims(t),
            &EncodingKey::from_secret(&ring.keys[0].public),
        )
        .unwrap();
        assert!(ring.verify(&hs, "iss", "reelnet", t).is_err());
        // expired
        let mut c = claims(t);
        c.exp = t - 100;
        let expired = ring.sign(&c).unwrap();
        assert!(matches!(
            ring.verify(&expired, "iss", "reelnet", t),
            Err(TokenError::Expired)
        ));
        // tampered payload
        let good = ring.sign(&claims(t)).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims(t);
        c.role = Role::Admin;
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert!(ring.verify(&tampered, "iss", "reelnet", t).is_err());
        // another tracker's key with our kid
        let other_dir = tempfile::tempdir().unwrap();
        let other = Keyring::load_or_create(other_dir.path(), 900, t).unwrap();
        let foreign = other.sign(&claims(t)).unwrap();
        assert!(ring.verify(&foreign, "iss", "reelnet", t).is_err());
    }
}
