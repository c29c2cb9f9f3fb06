//! The network signing keys: separate from the token keys, in `<data_dir>/network-keys/`
//! with the same layout (`<kid>.key` files, `keyring.json`). `reelnet-tracker network
//! rotate-key` adds a new current key; a retired key stays published (and verifying) until
//! every certificate it signed has expired ([`MAX_CERT_LIFETIME_SECS`] after it was
//! retired). The network id lives beside them in `network_id` unless the config names one.
//! With the PostgreSQL engine both live in the database instead ([`crate::keysource`]).

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use reelnet_proto::binding::{Binding, SignedBinding};
use reelnet_proto::membership::{
    Certificate, NetworkKey, PublishedKey, Revocations, SignedCertificate, SignedRevocations,
    Trust, MAX_CERT_LIFETIME_SECS,
};
use reelnet_proto::{NodeId, ProtoError};

use crate::keys::{self, KeyError, KeyMeta, StoredKeyring};

/// The directory of the network keys.
pub fn network_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("network-keys")
}

/// The file whose change means the network keyring changed.
pub fn keyring_path(data_dir: &Path) -> PathBuf {
    network_dir(data_dir).join("keyring.json")
}

/// Adds a new current network key and retires the old one; returns the new `kid`.
pub fn rotate(data_dir: &Path, now: u64) -> Result<String, KeyError> {
    keys::rotate_in(&network_dir(data_dir), now)
}

/// The network's keys and id.
pub struct NetworkKeyring {
    network_id: String,
    keys: Vec<(KeyMeta, SigningKey)>,
    current: usize,
}

fn network_id(data_dir: &Path, configured: &str) -> Result<String, KeyError> {
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    let path = network_dir(data_dir).join("network_id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = new_network_id();
            reelnet_runtime::fs::write_private(&path, id.as_bytes()).map_err(|source| {
                KeyError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            Ok(id)
        }
        Err(source) => Err(KeyError::Io { path, source }),
    }
}

/// The data directory's network keyring (keys and, when it has one, the network id) as a
/// store record; `None` when it holds no keyring.
pub(crate) fn stored_from_files(data_dir: &Path) -> Result<Option<StoredKeyring>, KeyError> {
    let dir = network_dir(data_dir);
    let Some(mut ring) = keys::stored_from_dir(&dir)? else {
        return Ok(None);
    };
    let id_file = dir.join("network_id");
    ring.network_id = match std::fs::read_to_string(&id_file) {
        Ok(id) if !id.trim().is_empty() => Some(id.trim().to_owned()),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(KeyError::Io {
                path: id_file,
                source,
            })
        }
    };
    Ok(Some(ring))
}

/// A first network keyring for the database: the data directory's (keys and network id)
/// when it has one, else a new key; a new network id where none was kept.
pub(crate) fn stored_candidate(data_dir: &Path, now: u64) -> Result<StoredKeyring, KeyError> {
    let mut ring = stored_from_files(data_dir)?.unwrap_or_else(|| keys::new_stored(now));
    if ring.network_id.is_none() {
        ring.network_id = Some(new_network_id());
    }
    Ok(ring)
}

fn new_network_id() -> String {
    format!("reelnet-{}", hex::encode(rand::random::<[u8; 6]>()))
}

impl NetworkKeyring {
    /// Loads the keyring, creating the first key (and the network id) on first start.
    pub fn load_or_create(
        data_dir: &Path,
        configured_id: &str,
        now: u64,
    ) -> Result<Self, KeyError> {
        let dir = network_dir(data_dir);
        reelnet_runtime::fs::create_private_dir(&dir).map_err(|source| KeyError::Io {
            path: dir.clone(),
            source,
        })?;
        if !keys::exists_in(&dir)? {
            keys::rotate_in(&dir, now)?;
        }
        Self::load(data_dir, configured_id)
    }

    /// Loads the keyring as it is on disk.
    pub fn load(data_dir: &Path, configured_id: &str) -> Result<Self, KeyError> {
        let (keys, current) = keys::read_keys(&network_dir(data_dir))?;
        Ok(Self {
            network_id: network_id(data_dir, configured_id)?,
            keys,
            current,
        })
    }

    /// The keyring as the store keeps it (PostgreSQL engine); a configured id wins over
    /// the stored one.
    pub fn from_stored(ring: &StoredKeyring, configured_id: &str) -> Result<Self, KeyError> {
        let network_id = if configured_id.is_empty() {
            ring.network_id.clone().ok_or_else(|| {
                KeyError::Stored("the network keyring has no network id: set [network] id".into())
            })?
        } else {
            configured_id.to_owned()
        };
        let (keys, current) = keys::stored_keys(ring)?;
        Ok(Self {
            network_id,
            keys,
            current,
        })
    }

    /// The network's id.
    pub fn network_id(&self) -> &str {
        &self.network_id
    }

    /// The current key's id.
    pub fn current_kid(&self) -> &str {
        &self.keys[self.current].0.kid
    }

    fn not_after(meta: &KeyMeta) -> Option<u64> {
        meta.retired_at
            .map(|at| at.saturating_add(MAX_CERT_LIFETIME_SECS))
    }

    /// Keys still verifying at `now`.
    pub fn published(&self, now: u64) -> Vec<PublishedKey> {
        self.keys
            .iter()
            .filter(|(m, _)| Self::not_after(m).is_none_or(|t| t > now))
            .map(|(m, k)| PublishedKey {
                kid: m.kid.clone(),
                public_key: hex::encode(k.verifying_key().to_bytes()),
                not_after: Self::not_after(m),
            })
            .collect()
    }

    /// The trust a verifier of this network has (keys only; revocations are the store's).
    pub fn trust(&self, now: u64) -> Trust {
        Trust {
            network_id: self.network_id.clone(),
            keys: self
                .keys
                .iter()
                .filter(|(m, _)| Self::not_after(m).is_none_or(|t| t > now))
                .map(|(m, k)| NetworkKey {
                    kid: m.kid.clone(),
                    public: k.verifying_key(),
                    not_after: Self::not_after(m),
                })
                .collect(),
            ..Trust::default()
        }
    }

    /// Signs `cert` with the current key (its `network_id` and `kid` are set here).
    pub fn sign_certificate(&self, mut cert: Certificate) -> Result<SignedCertificate, ProtoError> {
        let (meta, key) = &self.keys[self.current];
        cert.network_id = self.network_id.clone();
        cert.kid = meta.kid.clone();
        SignedCertificate::sign(&cert, key)
    }

    /// Signs `binding` with the current key (its `network_id` and `kid` are set here).
    /// Bindings are signed when served, so a retired key never signs what nodes fetch.
    pub fn sign_binding(&self, mut binding: Binding) -> Result<SignedBinding, ProtoError> {
        let (meta, key) = &self.keys[self.current];
        binding.network_id = self.network_id.clone();
        binding.kid = meta.kid.clone();
        SignedBinding::sign(&binding, key)
    }

    /// Signs the revocation list.
    pub fn sign_revocations(
        &self,
        serial: u64,
        mut revoked: Vec<NodeId>,
        now: u64,
    ) -> Result<(Revocations, SignedRevocations), ProtoError> {
        let (meta, key) = &self.keys[self.current];
        revoked.sort();
        revoked.dedup();
        let list = Revocations {
            network_id: self.network_id.clone(),
            serial,
            revoked,
            issued_at: now,
            kid: meta.kid.clone(),
        };
        let signed = SignedRevocations::sign(&list, key)?;
        Ok((list, signed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reelnet_proto::membership::{RoleName, Roles};

    #[test]
    fn rotation_keeps_old_certificates_valid_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000;
        let ring = NetworkKeyring::load_or_create(dir.path(), "", now).unwrap();
        let id = ring.network_id().to_owned();
        assert!(id.starts_with("reelnet-"));
        let node = NodeId([7; 32]);
        let node = NodeId::from_verifying_key(&SigningKey::from_bytes(&node.0).verifying_key());
        let cert = Certificate {
            network_id: String::new(),
            node,
            roles: Roles::of(&[RoleName::Replica]),
            open: false,
            origins: vec![],
            issued_at: now,
            not_after: now + MAX_CERT_LIFETIME_SECS,
            serial: 1,
            kid: String::new(),
        };
        let old = ring.sign_certificate(cert.clone()).unwrap();
        rotate(dir.path(), now + 10).unwrap();
        let ring = NetworkKeyring::load(dir.path(), "").unwrap();
        assert_eq!(ring.network_id(), id, "the id survives a reload");
        assert_eq!(ring.published(now + 10).len(), 2);
        let trust = ring.trust(now + 20);
        assert!(trust.check(&old, &node, now + 20).is_ok());
        let new = ring.sign_certificate(cert).unwrap();
        assert!(trust.check(&new, &node, now + 20).is_ok());
        // Once every certificate the old key signed has expired, it is gone.
        let later = now + 10 + MAX_CERT_LIFETIME_SECS;
        assert_eq!(ring.published(later).len(), 1);
    }
}
