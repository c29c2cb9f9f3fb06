//! Identifiers: movies, segments, nodes and manifests.
//!
//! - [`MovieId`] is a validated string that is safe in a URL path segment and a file name:
//!   `^[a-z0-9][a-z0-9-]{0,63}$`. It is checked on every construction, including serde
//!   deserialization, so a value like `"../x"` can never exist as a `MovieId`.
//! - [`SegmentHash`], [`NodeId`] and [`ManifestId`] are 32-byte values shown as 64 lowercase
//!   hex characters. They serialize as 32 raw bytes in bincode and as hex strings in
//!   human-readable formats (JSON), so they read well in the HTTP API and stay compact on
//!   the wire.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{IdBytes, ProtoError};

/// Longest `MovieId`, in bytes.
pub const MAX_MOVIE_ID_LEN: usize = 64;

/// A stable movie identifier: `tmdb-<id>` when the TMDb id is known, otherwise
/// `local-<16 hex>` derived from the title and year.
///
/// Matches `^[a-z0-9][a-z0-9-]{0,63}$`: no slashes, dots, uppercase or empty strings, so it
/// can be used directly in `/hls/{movie_id}/...` and as a directory name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MovieId(String);

impl MovieId {
    /// Parses and validates a movie id.
    pub fn new(s: impl Into<String>) -> Result<Self, ProtoError> {
        let s = s.into();
        match check_movie_id(&s) {
            Ok(()) => Ok(Self(s)),
            Err(reason) => Err(ProtoError::InvalidMovieId {
                input: s.chars().take(80).collect(),
                reason,
            }),
        }
    }

    /// The id of a movie known to TMDb: `tmdb-603`.
    pub fn from_tmdb(tmdb_id: u64) -> Self {
        // At most 5 + 20 characters of [a-z0-9-]: always valid.
        Self(format!("tmdb-{tmdb_id}"))
    }

    /// The id of a movie without a TMDb id: `local-` followed by the first 16 hex characters
    /// of BLAKE3 over `"<normalised title>|<year>"` (empty after `|` when the year is
    /// unknown). The title is lowercased and runs of whitespace collapse to one space, so
    /// `"The  Matrix"` and `"the matrix "` name the same movie.
    pub fn derive(title: &str, year: Option<u16>) -> Self {
        let title = title
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let year = year.map(|y| y.to_string()).unwrap_or_default();
        let hash = blake3::hash(format!("{title}|{year}").as_bytes());
        Self(format!("local-{}", hex::encode(&hash.as_bytes()[..8])))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_movie_id(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    let Some(first) = bytes.first() else {
        return Err("empty");
    };
    if bytes.len() > MAX_MOVIE_ID_LEN {
        return Err("longer than 64 characters");
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err("must start with a-z or 0-9");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("only a-z, 0-9 and '-' are allowed");
    }
    Ok(())
}

impl fmt::Display for MovieId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MovieId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MovieId({})", self.0)
    }
}

impl FromStr for MovieId {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for MovieId {
    type Error = ProtoError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for MovieId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for MovieId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MovieId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// Implements hex `Display`/`Debug`/`FromStr`, byte accessors and the dual serde form
/// (raw bytes in binary formats, hex in human-readable ones) for a `[u8; 32]` newtype.
macro_rules! hex_id32 {
    ($name:ident, $what:literal) => {
        impl $name {
            /// The 32 raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl From<$name> for IdBytes {
            fn from(id: $name) -> Self {
                IdBytes(id.0)
            }
        }

        impl PartialEq<$name> for IdBytes {
            fn eq(&self, other: &$name) -> bool {
                self.0 == other.0
            }
        }

        impl PartialEq<IdBytes> for $name {
            fn eq(&self, other: &IdBytes) -> bool {
                self.0 == other.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 64];
                // Cannot fail: the buffer is exactly twice the input length.
                if hex::encode_to_slice(self.0, &mut buf).is_err() {
                    return Err(fmt::Error);
                }
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ProtoError;
            /// Accepts exactly 64 lowercase hex characters (the canonical form).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = ProtoError::InvalidHex { what: $what };
                if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(err);
                }
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| err)?;
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map(Self)
                }
            }
        }
    };
}

/// BLAKE3 hash of one segment's bytes (media or init segment). Segments are addressed by
/// it; anyone who stores or serves a segment checks it first with [`SegmentHash::verify`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentHash(pub [u8; 32]);
hex_id32!(SegmentHash, "segment hash");

impl SegmentHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Checks that `bytes` hash to `self`; on mismatch the bytes must be dropped.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), ProtoError> {
        let actual = Self::of(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(ProtoError::HashMismatch {
                expected: (*self).into(),
                actual: actual.into(),
            })
        }
    }
}

impl From<blake3::Hash> for SegmentHash {
    /// For hashes computed incrementally with `blake3::Hasher` while bytes stream in.
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

/// A node's identity: its ed25519 public key. Signs the node's manifests and catalog
/// records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub [u8; 32]);
hex_id32!(NodeId, "node id");

impl NodeId {
    /// The id of the node owning `key`.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    /// The public key, if these bytes are a valid ed25519 point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, ProtoError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| ProtoError::InvalidKey((*self).into()))
    }

    /// The first 8 hex characters, for log lines and UIs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

/// A manifest's name: BLAKE3 of the [`SignedManifest`](crate::SignedManifest)'s encoded
/// bytes. A re-signed (grown) manifest has a new id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManifestId(pub [u8; 32]);
hex_id32!(ManifestId, "manifest id");

impl ManifestId {
    /// The id of a signed manifest given its encoded bytes, as received. Because decoding
    /// accepts only canonical encodings, this equals `SignedManifest::id()` of the decoded
    /// value.
    pub fn of_signed_bytes(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn movie_id_rules() {
        for ok in ["tmdb-603", "a", "0", "a-", &"a".repeat(64)] {
            assert!(MovieId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            "Abc",
            "-a",
            "a.b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(MovieId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn movie_id_constructors() {
        assert_eq!(MovieId::from_tmdb(603).as_str(), "tmdb-603");
        assert_eq!(
            MovieId::from_tmdb(u64::MAX),
            MovieId::new(MovieId::from_tmdb(u64::MAX).to_string()).unwrap()
        );
        let a = MovieId::derive("The  Matrix\t", Some(1999));
        let b = MovieId::derive(" the matrix", Some(1999));
        assert_eq!(a, b);
        assert_ne!(a, MovieId::derive("The Matrix", None));
        assert!(a.as_str().starts_with("local-"));
        assert_eq!(a.as_str().len(), 6 + 16);
        assert_eq!(MovieId::new(a.to_string()).unwrap(), a);
        let expected = blake3::hash(b"the matrix|1999");
        assert_eq!(&a.as_str()[6..], &hex::encode(expected.as_bytes())[..16]);
    }

    #[test]
    fn hex_ids() {
        let h = SegmentHash::of(b"hello");
        let s = h.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<SegmentHash>().unwrap(), h);
        assert!(s.to_uppercase().parse::<SegmentHash>().is_err());
        assert!(s[..63].parse::<SegmentHash>().is_err());
        assert!(format!("{s}0").parse::<ManifestId>().is_err());
        assert!(format!("{:?}", h).starts_with("SegmentHash("));
        let n = NodeId([7; 32]);
        assert_eq!(n.short(), "07070707");
    }

    #[test]
    fn errors_show_ids_as_the_ids_do() {
        let (h, other) = (SegmentHash::of(b"a"), SegmentHash::of(b"b"));
        let err = h.verify(b"b").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("segment hash mismatch: expected {h}, got {other}")
        );
        assert!(matches!(
            err,
            ProtoError::HashMismatch { expected, actual } if expected == h && actual == other
        ));
        let n = NodeId([7; 32]);
        assert_eq!(
            ProtoError::InvalidKey(n.into()).to_string(),
            format!("node id {n} is not a valid ed25519 public key")
        );
        assert_eq!(
            ProtoError::BadSignature { signer: n.into() }.to_string(),
            format!("bad signature (claimed signer {n})")
        );
        assert_eq!(format!("{:?}", IdBytes::from(n)), format!("IdBytes({n})"));
    }
}
