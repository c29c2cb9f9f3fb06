//! The one place that turns `proto` values into bytes and back.
//!
//! Everything on the wire is bincode 2 (`config::standard()`: little endian, varint integers)
//! through serde. Every decoder here is meant to face untrusted peers, so [`decode`]:
//!
//! 1. rejects input longer than the type's maximum before doing any work,
//! 2. decodes with a bincode limit of the same size, so a length prefix inside the input
//!    (a string or vector claiming 2^40 bytes) fails instead of allocating,
//! 3. rejects trailing bytes, and
//! 4. rejects non-canonical encodings (re-encodes and compares), so a value has exactly one
//!    encoding — signed bytes and content hashes then name values, not byte accidents.
//!
//! Framed protocols (the QUIC segment protocol in [`transfer`](crate::transfer), catalog sync
//! in [`sync`](crate::sync)) send a 4-byte big-endian body length before each body; the
//! frame helpers here check that length against the type's limit as soon as its four bytes
//! are there, before any body byte is read or buffered.
//!
//! The limits are constants here so the node, the tracker and the fuzz targets agree on them.

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{DecodeError, EncodeError};

/// Largest encoded [`Manifest`](crate::Manifest).
///
/// 4 MiB. `Manifest::validate` caps segments at 20 000 per track and
/// [`MAX_TOTAL_SEGMENTS`](crate::manifest::MAX_TOTAL_SEGMENTS) = 80 000 over all tracks; a
/// segment entry is at most 40 bytes (32-byte hash, 3-byte duration, 5-byte size), so the
/// segments take at most 3.2 MB and the bounded strings the rest. Any manifest that passes
/// validation therefore fits (signing re-checks it anyway).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Bytes a signed envelope adds around its body: a varint length (at most 9 bytes) and a
/// 64-byte signature, rounded up.
pub const SIGNED_ENVELOPE_OVERHEAD: usize = 80;

/// Largest encoded [`SignedManifest`](crate::SignedManifest).
pub const MAX_SIGNED_MANIFEST_BYTES: usize = MAX_MANIFEST_BYTES + SIGNED_ENVELOPE_OVERHEAD;

/// Largest encoded [`CatalogRecord`](crate::CatalogRecord): 256 KiB.
///
/// Sized from the validation bounds: 1024 held manifests of at most ~102 bytes each plus
/// 8192 segment ranges of at most 13 bytes each plus the address strings is about 210 KB.
/// Note gossipsub's default `max_transmit_size` is 64 KiB; a node gossiping large records
/// must raise it.
pub const MAX_CATALOG_RECORD_BYTES: usize = 256 << 10;

/// Largest encoded [`SignedCatalogRecord`](crate::SignedCatalogRecord).
pub const MAX_SIGNED_CATALOG_RECORD_BYTES: usize =
    MAX_CATALOG_RECORD_BYTES + SIGNED_ENVELOPE_OVERHEAD;

/// Largest body of a [`SegmentRequest`](crate::SegmentRequest) frame (without its 4-byte
/// prefix). A request encodes to at most ~75 bytes; 1 KiB leaves room to grow.
pub const MAX_REQUEST_FRAME: usize = 1024;

/// Largest body of a [`ResponseHeader`](crate::ResponseHeader) frame (without its 4-byte
/// prefix). A header encodes to at most ~45 bytes.
pub const MAX_RESPONSE_HEADER: usize = 256;

/// Length of a frame's length prefix (a big-endian `u32` body length).
pub const FRAME_PREFIX_LEN: usize = 4;

type LimitedConfig<const N: usize> = Configuration<LittleEndian, Varint, Limit<N>>;

fn config<const N: usize>() -> LimitedConfig<N> {
    config::standard().with_limit::<N>()
}

/// Encodes `value`, failing if the result is longer than `N` bytes (no peer would accept it).
pub fn encode<T: Serialize, const N: usize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let bytes = bincode::serde::encode_to_vec(value, config::<N>())
        .map_err(|e| EncodeError::Bincode(e.to_string()))?;
    if bytes.len() > N {
        return Err(EncodeError::TooLarge {
            len: bytes.len() as u64,
            max: N as u64,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one canonical `T` from all of `bytes`, which may be at most `N` bytes.
pub fn decode<T: Serialize + DeserializeOwned, const N: usize>(
    bytes: &[u8],
) -> Result<T, DecodeError> {
    if bytes.len() > N {
        return Err(DecodeError::TooLarge {
            len: bytes.len() as u64,
            max: N as u64,
        });
    }
    let (value, used): (T, usize) =
        bincode::serde::decode_from_slice(bytes, config::<N>()).map_err(map_decode_error::<N>)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    // Canonical check: the only encoding of `value` is the one we were given.
    let again = bincode::serde::encode_to_vec(&value, config::<N>())
        .map_err(|e| DecodeError::Malformed(format!("re-encoding failed: {e}")))?;
    if again != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Encodes `value` as one frame: its body length as a 4-byte big-endian prefix, then the
/// body, which may be at most `N` bytes (like [`encode`]).
pub fn encode_frame<T: Serialize, const N: usize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    // Encode straight behind a placeholder prefix: bodies may be megabytes, no second copy.
    let mut out = vec![0u8; FRAME_PREFIX_LEN];
    bincode::serde::encode_into_std_write(value, &mut out, config::<N>())
        .map_err(|e| EncodeError::Bincode(e.to_string()))?;
    let len = out.len() - FRAME_PREFIX_LEN;
    let too_large = EncodeError::TooLarge {
        len: len as u64,
        max: N as u64,
    };
    if len > N {
        return Err(too_large);
    }
    let prefix = u32::try_from(len).map_err(|_| too_large)?.to_be_bytes();
    out[..FRAME_PREFIX_LEN].copy_from_slice(&prefix);
    Ok(out)
}

/// The body length a frame's prefix announces; refused when it is above `N`, so a caller
/// reading from a stream learns it before reading (or allocating for) the body.
pub fn frame_body_len<const N: usize>(
    prefix: [u8; FRAME_PREFIX_LEN],
) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > N {
        return Err(DecodeError::TooLarge {
            len: len as u64,
            max: N as u64,
        });
    }
    Ok(len)
}

/// Splits one frame off the front of `buf`: `Ok(None)` if more bytes are needed, else the
/// body and the number of bytes consumed (prefix included). A prefix above `N` is an error
/// as soon as its four bytes are in `buf`.
pub fn split_frame<const N: usize>(buf: &[u8]) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(prefix) = buf.first_chunk::<FRAME_PREFIX_LEN>() else {
        return Ok(None);
    };
    let len = frame_body_len::<N>(*prefix)?;
    let end = FRAME_PREFIX_LEN + len;
    Ok(buf.get(FRAME_PREFIX_LEN..end).map(|body| (body, end)))
}

fn map_decode_error<const N: usize>(e: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        B::LimitExceeded => DecodeError::LimitExceeded { max: N as u64 },
        // serde's `Error::custom`, raised by our validating `Deserialize` impls.
        B::OtherString(reason) => DecodeError::Invalid(reason),
        other => DecodeError::Malformed(other.to_string()),
    }
}

/// Appends `n` in bincode's standard varint form (used to build signed envelopes without a
/// fallible encoder call; tested against bincode).
pub(crate) fn put_varint(out: &mut Vec<u8>, n: u64) {
    if n < 251 {
        out.push(n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(251);
        out.extend_from_slice(&n.to_le_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(252);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn varint_matches_bincode() {
        for n in [
            0u64,
            1,
            250,
            251,
            255,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let mut ours = Vec::new();
            put_varint(&mut ours, n);
            let theirs = bincode::serde::encode_to_vec(n, config::standard()).unwrap();
            assert_eq!(ours, theirs, "n = {n}");
        }
    }

    #[test]
    fn rejects_non_canonical_varint() {
        // 5 encoded as 251 + u16 LE: bincode may accept it, we must not.
        let r = decode::<u64, 16>(&[251, 5, 0]);
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn rejects_trailing_and_oversized() {
        assert_eq!(
            decode::<u8, 16>(&[1, 2]),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            decode::<u8, 1>(&[1, 2]),
            Err(DecodeError::TooLarge { len: 2, max: 1 })
        );
        assert_eq!(decode::<u32, 16>(&[]), Err(DecodeError::Truncated));
    }

    #[test]
    fn huge_claimed_string_length_is_refused() {
        let mut bytes = Vec::new();
        put_varint(&mut bytes, 1 << 40);
        bytes.extend_from_slice(b"abc");
        assert_eq!(
            decode::<String, 64>(&bytes),
            Err(DecodeError::LimitExceeded { max: 64 })
        );
    }

    #[test]
    fn frames() {
        let frame = encode_frame::<String, 16>(&"abc".to_owned()).unwrap();
        assert_eq!(frame, [0, 0, 0, 4, 3, b'a', b'b', b'c']);
        assert_eq!(split_frame::<16>(&frame[..3]), Ok(None));
        assert_eq!(split_frame::<16>(&frame[..7]), Ok(None));
        let mut more = frame.clone();
        more.push(9);
        assert_eq!(split_frame::<16>(&more), Ok(Some((&frame[4..], 8))));
        assert_eq!(
            split_frame::<3>(&frame[..4]),
            Err(DecodeError::TooLarge { len: 4, max: 3 })
        );
        assert_eq!(frame_body_len::<16>([0, 0, 0, 16]), Ok(16));
        assert_eq!(
            frame_body_len::<16>([255; 4]),
            Err(DecodeError::TooLarge {
                len: u32::MAX as u64,
                max: 16
            })
        );
        assert!(matches!(
            encode_frame::<String, 3>(&"abc".to_owned()),
            Err(EncodeError::TooLarge { len: 4, max: 3 })
        ));
    }

    #[test]
    fn encode_refuses_over_limit() {
        let s = "x".repeat(100);
        assert!(matches!(
            encode::<String, 50>(&s),
            Err(EncodeError::TooLarge { max: 50, .. })
        ));
    }
}
