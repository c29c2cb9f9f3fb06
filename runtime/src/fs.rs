//! Private files and directories, whatever the umask: data directories 0700, keys, secrets
//! and tokens 0600 (on Unix).
//!
//! - [`create_private_dir`] makes a directory (and any missing parents) 0700, and narrows an
//!   existing one to 0700.
//! - [`write_private`] replaces a file atomically (temporary file, fsync, rename) with mode
//!   0600, so a crash leaves the old content or the new one, never half a key.
//! - [`read_private`] and [`check_private`] refuse a secret file that group or others may
//!   read or write, the way ssh refuses such a key: the error names the file and the
//!   `chmod` that fixes it. Nothing is read from an exposed file.
//! - [`restrict_tree`] narrows a directory tree someone else created (sled's database) to
//!   0700 directories and 0600 files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A secret file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds a secret but is accessible by group or others (mode {mode:04o}); \
         refusing to use it. Run `chmod 600 {path}` (and check nobody else copied it)"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

impl PrivateFileError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Exposed { path, .. } => path,
        }
    }
}

impl From<PrivateFileError> for std::io::Error {
    fn from(err: PrivateFileError) -> Self {
        match err {
            PrivateFileError::Io { source, .. } => source,
            exposed @ PrivateFileError::Exposed { .. } => {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, exposed)
            }
        }
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Creates `path` (and any missing parents) with mode 0700; an existing directory whose
/// mode lets group or others in is narrowed to 0700 (logged).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    #[cfg(unix)]
    {
        let mode = mode_of(&std::fs::metadata(path)?);
        if mode & 0o077 != 0 {
            set_mode(path, 0o700)?;
            tracing::info!(path = %path.display(), old = format!("{mode:04o}"), "narrowed the data directory's mode to 0700");
        }
    }
    Ok(())
}

/// Opens `path` for writing, created 0600 (truncated if it exists, and narrowed to 0600 if
/// it was wider).
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    // `mode` only applies when the file is created (and the umask may narrow it further,
    // which is fine); a leftover file keeps its mode unless it is set here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Writes `bytes` to `path` durably and atomically, readable only by this user.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = open_private(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Fails if `path` exists and group or others may read, write or execute it. `Ok(false)`
/// when it does not exist.
pub fn check_private(path: &Path) -> Result<bool, PrivateFileError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(PrivateFileError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    #[cfg(unix)]
    {
        let mode = mode_of(&meta);
        if mode & 0o077 != 0 {
            return Err(PrivateFileError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(true)
}

/// Reads a secret file after [`check_private`]; `Ok(None)` when it does not exist.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, PrivateFileError> {
    if !check_private(path)? {
        return Ok(None);
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PrivateFileError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Narrows `dir` and everything below it to 0700 directories and 0600 files (symlinks are
/// left alone). For trees another library creates, such as sled's database directory.
pub fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            set_mode(&d, 0o700)?;
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    let mode = mode_of(&entry.metadata()?);
                    if mode & 0o077 != 0 {
                        set_mode(&entry.path(), mode & 0o700)?;
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        mode_of(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn written_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_leftover_wide_temporary_file_does_not_widen_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        std::fs::write(path.with_extension("tmp"), b"old").unwrap();
        set_mode(&path.with_extension("tmp"), 0o666).unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn exposed_secret_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        assert!(read_private(&path).unwrap().is_none());
        write_private(&path, b"k").unwrap();
        assert_eq!(read_private(&path).unwrap().unwrap(), b"k");
        for wide in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            set_mode(&path, wide).unwrap();
            let err = read_private(&path).unwrap_err();
            assert!(matches!(err, PrivateFileError::Exposed { mode, .. } if mode == wide));
            let text = err.to_string();
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(text.contains(&format!("{wide:04o}")), "{text}");
        }
        set_mode(&path, 0o400).unwrap();
        assert!(check_private(&path).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_and_trees() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&base.path().join("a")), 0o700);
        set_mode(&dir, 0o755).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let tree = base.path().join("db");
        std::fs::create_dir_all(tree.join("blobs")).unwrap();
        set_mode(&tree, 0o755).unwrap();
        set_mode(&tree.join("blobs"), 0o755).unwrap();
        std::fs::write(tree.join("conf"), b"x").unwrap();
        set_mode(&tree.join("conf"), 0o644).unwrap();
        std::fs::write(tree.join("blobs/1"), b"x").unwrap();
        set_mode(&tree.join("blobs/1"), 0o664).unwrap();
        restrict_tree(&tree).unwrap();
        assert_eq!(mode(&tree), 0o700);
        assert_eq!(mode(&tree.join("blobs")), 0o700);
        assert_eq!(mode(&tree.join("conf")), 0o600);
        assert_eq!(mode(&tree.join("blobs/1")), 0o600);
    }
}
