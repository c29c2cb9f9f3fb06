//! Ingest-time movie metadata: what an ingest says about its movie beyond the source.
//!
//! [`MovieFields`] is the one set of movie fields an ingest names: the `reelnet-node ingest`
//! flags (clap flattens it), the admin API's JSON (serde flattens it into
//! [`IngestRequest`](super::job::IngestRequest)) and the sidecar JSON file
//! ([`MovieFields::load_sidecar`]) all use it. [`resolve`] merges the flags over the sidecar,
//! checks and stores the images ([`check_image`]: PNG, JPEG or WebP, at most
//! [`MAX_IMAGE_BYTES`]) and validates the result against the manifest's limits, giving the
//! [`MovieMeta`] the ingest signs into its manifest. The image checks are shared with the
//! TMDb cache (`metadata`) and the image route (`gateway::images`).

use std::io::Read;
use std::path::{Path, PathBuf};

use reelnet_proto::{MovieMeta, SegmentHash};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Largest image (poster or backdrop) accepted from a file, TMDb or a peer: 8 MiB.
pub const MAX_IMAGE_BYTES: usize = 8 << 20;
/// Largest sidecar JSON file.
pub const MAX_SIDECAR_BYTES: u64 = 64 << 10;

/// The image formats a poster or backdrop may have, told apart by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Webp,
}

impl ImageKind {
    /// The format of `bytes`, from their first bytes; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    /// The HTTP `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }
}

/// Checks that `bytes` are a PNG, JPEG or WebP image of at most [`MAX_IMAGE_BYTES`].
pub fn check_image(bytes: &[u8]) -> Result<ImageKind, String> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "{} bytes is more than the {MAX_IMAGE_BYTES}-byte limit for images",
            bytes.len()
        ));
    }
    ImageKind::sniff(bytes).ok_or_else(|| "not a PNG, JPEG or WebP image".to_owned())
}

/// Why an ingest's metadata could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Image { path: PathBuf, message: String },
    #[error("metadata file {path}: {message}")]
    Sidecar { path: PathBuf, message: String },
    #[error("movie metadata: {0}")]
    Invalid(String),
    #[error("storing an image: {0}")]
    Store(#[from] StoreError),
}

/// Reads and checks an image file ([`check_image`]).
pub fn read_image(path: &Path) -> Result<Vec<u8>, MetaError> {
    let io = |source| MetaError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    check_image(&bytes).map_err(|message| MetaError::Image {
        path: path.to_owned(),
        message,
    })?;
    Ok(bytes)
}

/// What an ingest says about its movie, every field optional: the `ingest` command's flags,
/// the admin API's JSON keys (flattened into the request) and the sidecar file's keys
/// (`{ "title", "year", "overview", "genres", "runtime_min", "tmdb_id", "poster",
/// "backdrop" }`; image paths relative to the file's directory). The doc comments below are
/// the `--help` text of the flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct MovieFields {
    /// Movie title (default: from the file name).
    #[arg(long)]
    pub title: Option<String>,
    /// Release year.
    #[arg(long)]
    pub year: Option<u16>,
    /// Plot summary (at most 4 KiB).
    #[arg(long)]
    pub overview: Option<String>,
    /// A genre (repeatable, at most 16).
    #[arg(long = "genre", value_name = "G")]
    pub genres: Vec<String>,
    /// Running time, minutes.
    #[arg(long = "runtime", value_name = "MIN")]
    pub runtime_min: Option<u16>,
    /// TMDb id; becomes the movie id `tmdb-N`.
    #[arg(long)]
    pub tmdb_id: Option<u64>,
    /// Poster image: PNG, JPEG or WebP, at most 8 MiB.
    #[arg(long, value_name = "IMAGE")]
    pub poster: Option<PathBuf>,
    /// Backdrop image: PNG, JPEG or WebP, at most 8 MiB.
    #[arg(long, value_name = "IMAGE")]
    pub backdrop: Option<PathBuf>,
}

impl MovieFields {
    /// Reads a sidecar file (at most [`MAX_SIDECAR_BYTES`]; unknown keys are an error) and
    /// makes its image paths absolute.
    pub fn load_sidecar(path: &Path) -> Result<Self, MetaError> {
        let bad = |message: String| MetaError::Sidecar {
            path: path.to_owned(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|source| MetaError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut text = Vec::new();
        file.take(MAX_SIDECAR_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        if text.len() as u64 > MAX_SIDECAR_BYTES {
            return Err(bad(format!("larger than {MAX_SIDECAR_BYTES} bytes")));
        }
        let mut sidecar: Self = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for image in [&mut sidecar.poster, &mut sidecar.backdrop]
            .into_iter()
            .flatten()
        {
            if image.is_relative() {
                *image = dir.join(&*image);
            }
        }
        Ok(sidecar)
    }

    /// These fields over `fallback`'s: each field that is unset here (no genres counts as
    /// unset) is taken from `fallback`.
    pub fn or(self, fallback: Self) -> Self {
        Self {
            title: self.title.or(fallback.title),
            year: self.year.or(fallback.year),
            overview: self.overview.or(fallback.overview),
            genres: if self.genres.is_empty() {
                fallback.genres
            } else {
                self.genres
            },
            runtime_min: self.runtime_min.or(fallback.runtime_min),
            tmdb_id: self.tmdb_id.or(fallback.tmdb_id),
            poster: self.poster.or(fallback.poster),
            backdrop: self.backdrop.or(fallback.backdrop),
        }
    }
}

/// Resolves an ingest's metadata: loads its sidecar (`meta_file`), lets `fields` override
/// it, checks and stores the images, and validates the result against the manifest's
/// limits. Returns the merged fields (for the title, year and TMDb id) and the validated
/// [`MovieMeta`], whose images are in the store under its hashes. Blocking (file reads,
/// store writes).
pub fn resolve(
    store: &Store,
    fields: &MovieFields,
    meta_file: Option<&Path>,
) -> Result<(MovieFields, MovieMeta), MetaError> {
    let sidecar = match meta_file {
        Some(path) => MovieFields::load_sidecar(path)?,
        None => MovieFields::default(),
    };
    let merged = fields.clone().or(sidecar);
    let mut unique: Vec<String> = Vec::new();
    for g in &merged.genres {
        let g = g.trim().to_owned();
        if !g.is_empty() && !unique.iter().any(|u| u.eq_ignore_ascii_case(&g)) {
            unique.push(g);
        }
    }
    let store_image = |path: Option<&PathBuf>| -> Result<Option<SegmentHash>, MetaError> {
        let Some(path) = path else { return Ok(None) };
        let bytes = read_image(path)?;
        let (hash, _) = store.put_segment(&bytes, None)?;
        Ok(Some(hash))
    };
    let poster = store_image(merged.poster.as_ref())?;
    let backdrop = store_image(merged.backdrop.as_ref())?;
    let meta = MovieMeta {
        overview: merged
            .overview
            .clone()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        genres: unique,
        runtime_min: merged.runtime_min,
        poster,
        backdrop,
        tmdb_id: merged.tmdb_id,
        expected_duration_ms: None,
    };
    meta.validate()
        .map_err(|e| MetaError::Invalid(e.to_string()))?;
    Ok((merged, meta))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn images_are_sniffed() {
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageKind::Png)
        );
        assert_eq!(
            ImageKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(
            ImageKind::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageKind::Webp)
        );
        assert_eq!(ImageKind::sniff(b"\0\0\0\x18ftypiso5"), None);
        assert_eq!(ImageKind::sniff(b"RIFF"), None);
        assert!(check_image(&vec![0xFF; MAX_IMAGE_BYTES + 1]).is_err());
    }

    #[test]
    fn flags_override_the_sidecar() {
        let flags = MovieFields {
            title: Some("Flag".into()),
            genres: vec![],
            ..MovieFields::default()
        };
        let sidecar = MovieFields {
            title: Some("Sidecar".into()),
            year: Some(1999),
            genres: vec!["Drama".into()],
            ..MovieFields::default()
        };
        let merged = flags.or(sidecar);
        assert_eq!(merged.title.as_deref(), Some("Flag"));
        assert_eq!(merged.year, Some(1999));
        assert_eq!(merged.genres, vec!["Drama".to_owned()]);
    }

    #[test]
    fn sidecar_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(
            &path,
            r#"{"title": "T", "poster": "p.png", "genres": ["A"]}"#,
        )
        .unwrap();
        let s = MovieFields::load_sidecar(&path).unwrap();
        assert_eq!(s.title.as_deref(), Some("T"));
        assert_eq!(s.poster, Some(dir.path().join("p.png")));
        std::fs::write(&path, r#"{"title": "T", "source": "x"}"#).unwrap();
        assert!(matches!(
            MovieFields::load_sidecar(&path),
            Err(MetaError::Sidecar { .. })
        ));
    }
}
