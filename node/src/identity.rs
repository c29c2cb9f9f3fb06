//! The node's ed25519 identity: created on first start in the data directory and reused after.
//! The same key is the libp2p identity and signs manifests and catalog records, so it must
//! never change for a data directory and never leave it.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use reelnet_proto::NodeId;

const KEY_FILE: &str = "node.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot access key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is corrupt: expected 32 bytes, found {len}")]
    Corrupt { path: PathBuf, len: usize },
}

/// Loads the node key from `data_dir`, creating it (mode 0600) on first start.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, IdentityError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let secret: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| IdentityError::Corrupt {
                        path: path.clone(),
                        len: bytes.len(),
                    })?;
            Ok(SigningKey::from_bytes(&secret))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            // Written to a temporary file and renamed, so a crash never leaves half a key.
            reelnet_runtime::fs::write_private(&path, &key.to_bytes()).map_err(io)?;
            Ok(key)
        }
        Err(err) => Err(io(err)),
    }
}

/// The public identity of a key.
pub fn node_id(key: &SigningKey) -> NodeId {
    NodeId::from_verifying_key(&key.verifying_key())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn corrupt_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(IdentityError::Corrupt { len: 5, .. })
        ));
    }
}
