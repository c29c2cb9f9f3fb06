//! Who may use this node's console views (`/api/v1/console/*` on the gateway): the accounts
//! named in `<data_dir>/operators.json` (`reelnet-node operator add EMAIL`), plus every
//! network admin (the tracker's admin role in the viewer's node token). Everyone else gets
//! 403. The loopback admin API's random token is never taken on the public gateway.
//!
//! The file is read at each check (it is tiny), so `operator add` on the node's machine
//! works while the node runs, without a restart.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The operators file's name in the data directory.
pub const OPERATORS_FILE: &str = "operators.json";

/// Most operators one node keeps.
pub const MAX_OPERATORS: usize = 256;

/// Why the operators file could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorsError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid operators JSON ({source}); fix or delete it")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("not an email address: {0:?}")]
    BadEmail(String),
    #[error("at most {MAX_OPERATORS} operators")]
    TooMany,
}

/// `operators.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operators {
    /// Lowercased email addresses.
    #[serde(default)]
    pub emails: Vec<String>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(OPERATORS_FILE)
}

fn normalize(email: &str) -> Result<String, OperatorsError> {
    let e = email.trim().to_ascii_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && !e.chars().any(char::is_whitespace);
    if ok {
        Ok(e)
    } else {
        Err(OperatorsError::BadEmail(email.to_owned()))
    }
}

/// Reads the operators file (none yet: no operators).
pub fn load(data_dir: &Path) -> Result<Operators, OperatorsError> {
    let p = path(data_dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|source| OperatorsError::Parse { path: p, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Operators::default()),
        Err(source) => Err(OperatorsError::Io { path: p, source }),
    }
}

fn save(data_dir: &Path, ops: &Operators) -> Result<(), OperatorsError> {
    let p = path(data_dir);
    let bytes = serde_json::to_vec_pretty(ops).map_err(|source| OperatorsError::Parse {
        path: p.clone(),
        source,
    })?;
    reelnet_runtime::fs::write_private(&p, &bytes)
        .map_err(|source| OperatorsError::Io { path: p, source })
}

/// Adds an operator; returns false if it was already there.
pub fn add(data_dir: &Path, email: &str) -> Result<bool, OperatorsError> {
    let email = normalize(email)?;
    let mut ops = load(data_dir)?;
    if ops.emails.contains(&email) {
        return Ok(false);
    }
    if ops.emails.len() >= MAX_OPERATORS {
        return Err(OperatorsError::TooMany);
    }
    ops.emails.push(email);
    save(data_dir, &ops)?;
    Ok(true)
}

/// Removes an operator; returns false if it was not there.
pub fn remove(data_dir: &Path, email: &str) -> Result<bool, OperatorsError> {
    let email = normalize(email)?;
    let mut ops = load(data_dir)?;
    let before = ops.emails.len();
    ops.emails.retain(|e| e != &email);
    if ops.emails.len() == before {
        return Ok(false);
    }
    save(data_dir, &ops)?;
    Ok(true)
}

/// Whether `email` is one of this node's operators (an unreadable file names nobody).
pub fn is_operator(data_dir: &Path, email: &str) -> bool {
    let Ok(email) = normalize(email) else {
        return false;
    };
    match load(data_dir) {
        Ok(ops) => ops.emails.contains(&email),
        Err(err) => {
            tracing::warn!(%err, "operators file unreadable: no operators");
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_and_check() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_operator(dir.path(), "a@example.com"));
        assert!(add(dir.path(), " A@Example.com ").unwrap());
        assert!(!add(dir.path(), "a@example.com").unwrap());
        assert!(is_operator(dir.path(), "a@EXAMPLE.com"));
        assert!(!is_operator(dir.path(), "b@example.com"));
        assert!(matches!(
            add(dir.path(), "not an email"),
            Err(OperatorsError::BadEmail(_))
        ));
        assert!(remove(dir.path(), "a@example.com").unwrap());
        assert!(!is_operator(dir.path(), "a@example.com"));
        std::fs::write(path(dir.path()), b"{oops").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(OperatorsError::Parse { .. })
        ));
        assert!(!is_operator(dir.path(), "a@example.com"));
    }
}
