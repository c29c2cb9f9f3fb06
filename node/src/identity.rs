//! The node's ed25519 identity: created on first start in the data directory and reused after.
//! The same key is the libp2p identity and signs manifests and catalog records, so it must
//! never change for a data directory and never leave it.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use reelnet_proto::NodeId;

/// The node key's file name in the data directory.
pub const KEY_FILE: &str = "node.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot access key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is corrupt: expected 32 bytes, found {len}")]
    Corrupt { path: PathBuf, len: usize },
    #[error(transparent)]
    Exposed(#[from] reelnet_runtime::fs::PrivateFileError),
}

/// Loads the node key from `data_dir`, creating it (mode 0600) on first start.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, IdentityError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    // A key group or others may read is refused (like ssh), with the chmod that fixes it.
    match reelnet_runtime::fs::read_private(&path)? {
        Some(bytes) => {
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
        None => {
            reelnet_runtime::fs::create_private_dir(data_dir).map_err(io)?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            // Written to a temporary file and renamed, so a crash never leaves half a key.
            reelnet_runtime::fs::write_private(&path, &key.to_bytes()).map_err(io)?;
            Ok(key)
        }
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

    #[cfg(unix)]
    #[test]
    fn key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Exposed(_)), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn corrupt_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        reelnet_runtime::fs::write_private(&dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(IdentityError::Corrupt { len: 5, .. })
        ));
    }
}
