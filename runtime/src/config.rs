//! TOML config loading shared by the node and the tracker: the first problem is reported
//! with the file, the dotted key path and, where TOML knows it, the line and column, e.g.
//! ``bad config file n.toml: key `gateway.listen` (line 2, column 10): invalid type``.

use std::path::{Path, PathBuf};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config file {path}: key `{key}`{at}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        at: String,
        message: String,
    },
}

/// Reads and parses the TOML file at `path` into `T`.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Parses TOML into `T`, reporting the dotted key path (or the line, for a syntax error)
/// of the first problem. `path` only names the source in the error.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let at = inner.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {column})")
        });
        ConfigError::Invalid {
            path: path.to_owned(),
            key: if key == "." {
                "(TOML syntax)".to_owned()
            } else {
                key
            },
            at: at.unwrap_or_default(),
            message: inner.message().trim().to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Conf {
        server: Server,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        port: u16,
    }

    fn err(text: &str) -> String {
        parse_toml::<Conf>(Path::new("c.toml"), text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn wrong_type_names_file_key_and_line() {
        let e = err("\n[server]\nport = \"x\"\n");
        assert!(e.contains("c.toml"), "{e}");
        assert!(e.contains("`server.port`"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn unknown_key_and_syntax_are_named() {
        assert!(err("[server]\nprot = 1\n").contains("prot"));
        assert!(err("[server\n").contains("(TOML syntax)"));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let e = load_toml::<Conf>(Path::new("/nonexistent/c.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("cannot read config file"), "{e}");
    }
}
