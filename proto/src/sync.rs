//! Frames of the catalog sync protocol (`/reelnet/catalog-sync/1`), without any I/O.
//!
//! A node that connects to a peer asks it for its whole catalog instead of waiting for the
//! next round of gossip: it sends a [`SyncRequest`] and gets one page, a [`SyncResponse`].
//! Pages are bounded ([`SYNC_PAGE_BYTES`] of encoded items, at least one item) and
//! [`SyncResponse::next`] names where the next one starts, so no message grows with the size
//! of the network.
//!
//! A frame is a 4-byte big-endian body length followed by the bincode body (the framing in
//! [`codec`]). Both frames come from untrusted peers, so the usual rules hold: the length
//! prefix is checked against the frame's limit before the body is read
//! ([`SyncFrame::body_len`]), the decoder is bounded by the same limit, and trailing or
//! non-canonical bytes are refused. Every item inside a response is decoded again with its
//! own limit and verified (`SignedCatalogRecord::decode`, `SignedManifest::decode`) before
//! use.
//!
//! The node's libp2p codec is a thin adapter over [`SyncFrame`]: read the prefix, ask
//! `body_len`, read that many bytes, `decode_body`; write `encode_frame`.

use serde::{Deserialize, Serialize};

use crate::codec::{self, FRAME_PREFIX_LEN};
use crate::error::{DecodeError, EncodeError};
use crate::ids::{ManifestId, NodeId};

/// The libp2p protocol name of catalog sync.
pub const SYNC_PROTOCOL_NAME: &str = "/reelnet/catalog-sync/2";

/// Target size of one page (the encoded items; a page holds at least one item, and one
/// manifest may be up to [`MAX_SIGNED_MANIFEST_BYTES`](crate::MAX_SIGNED_MANIFEST_BYTES)).
pub const SYNC_PAGE_BYTES: usize = 16 << 20;

/// Largest [`SyncRequest`] body (without its 4-byte prefix): the cursor (at most 34 bytes)
/// and the requester's membership certificate.
pub const MAX_SYNC_REQUEST_BYTES: usize = 256 + crate::membership::MAX_SIGNED_CERTIFICATE_BYTES;

/// Largest [`SyncResponse`] body (without its 4-byte prefix): a full page plus room for the
/// one item that may overshoot it and the varint lengths.
pub const MAX_SYNC_RESPONSE_BYTES: usize = SYNC_PAGE_BYTES + (4 << 20);

/// Where a paged sync continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncCursor {
    /// Records of nodes after this id, then all manifests.
    RecordsAfter(NodeId),
    /// Manifests after this id.
    ManifestsAfter(ManifestId),
}

/// "Send me your catalog, starting at `after`" (`None`: from the beginning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Where the page starts; `None` for the first page.
    pub after: Option<SyncCursor>,
    /// The requester's membership certificate
    /// ([`SignedCertificate`](crate::membership::SignedCertificate) wire bytes): members
    /// answer only members.
    pub certificate: Vec<u8>,
}

/// One page of a peer's catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Encoded `SignedCatalogRecord`s.
    pub records: Vec<Vec<u8>>,
    /// Encoded `SignedManifest`s.
    pub manifests: Vec<Vec<u8>>,
    /// Ask again with this cursor for the next page; `None` on the last page.
    pub next: Option<SyncCursor>,
}

/// A catalog sync frame ([`SyncRequest`] or [`SyncResponse`]) and its limit.
pub trait SyncFrame: Sized {
    /// Largest body, without the prefix.
    const MAX_BODY: usize;

    /// The body length a frame's prefix announces; an error (before anything else is read)
    /// when it is above [`Self::MAX_BODY`].
    fn body_len(prefix: [u8; FRAME_PREFIX_LEN]) -> Result<usize, DecodeError>;

    /// Decodes exactly one canonical value from a whole body (the bytes after the prefix).
    fn decode_body(body: &[u8]) -> Result<Self, DecodeError>;

    /// Decodes a frame from the front of `buf`. `Ok(None)`: more bytes are needed.
    /// `Ok(Some((value, consumed)))`: the value and how many bytes of `buf` it used.
    fn decode_frame(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError>;

    /// The value as a frame (prefix and body); refused when the body would exceed
    /// [`Self::MAX_BODY`], since no peer would accept it.
    fn encode_frame(&self) -> Result<Vec<u8>, EncodeError>;
}

macro_rules! sync_frame {
    ($ty:ty, $max:expr) => {
        impl SyncFrame for $ty {
            const MAX_BODY: usize = $max;

            fn body_len(prefix: [u8; FRAME_PREFIX_LEN]) -> Result<usize, DecodeError> {
                codec::frame_body_len::<{ $max }>(prefix)
            }

            fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
                codec::decode::<Self, { $max }>(body)
            }

            fn decode_frame(buf: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
                let Some((body, used)) = codec::split_frame::<{ $max }>(buf)? else {
                    return Ok(None);
                };
                Ok(Some((Self::decode_body(body)?, used)))
            }

            fn encode_frame(&self) -> Result<Vec<u8>, EncodeError> {
                codec::encode_frame::<Self, { $max }>(self)
            }
        }
    };
}

sync_frame!(SyncRequest, MAX_SYNC_REQUEST_BYTES);
sync_frame!(SyncResponse, MAX_SYNC_RESPONSE_BYTES);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::put_varint;

    fn response() -> SyncResponse {
        SyncResponse {
            records: vec![vec![1, 2, 3]],
            manifests: vec![vec![4; 300], Vec::new()],
            next: Some(SyncCursor::ManifestsAfter(ManifestId([9; 32]))),
        }
    }

    #[test]
    fn round_trip() {
        for req in [
            SyncRequest {
                after: None,
                certificate: Vec::new(),
            },
            SyncRequest {
                after: Some(SyncCursor::RecordsAfter(NodeId([0xff; 32]))),
                certificate: Vec::new(),
            },
            SyncRequest {
                after: Some(SyncCursor::ManifestsAfter(ManifestId([1; 32]))),
                certificate: vec![5; 300],
            },
        ] {
            let frame = req.encode_frame().unwrap();
            assert!(
                frame.len() <= FRAME_PREFIX_LEN + 37 + req.certificate.len(),
                "{}",
                frame.len()
            );
            assert_eq!(
                SyncRequest::decode_frame(&frame),
                Ok(Some((req, frame.len())))
            );
        }
        for res in [response(), SyncResponse::default()] {
            let frame = res.encode_frame().unwrap();
            let body_len = SyncResponse::body_len(*frame.first_chunk().unwrap()).unwrap();
            assert_eq!(body_len, frame.len() - FRAME_PREFIX_LEN);
            assert_eq!(
                SyncResponse::decode_body(&frame[FRAME_PREFIX_LEN..]),
                Ok(res.clone())
            );
            // A second frame behind the first is left alone.
            let mut two = frame.clone();
            two.extend_from_slice(&frame);
            assert_eq!(
                SyncResponse::decode_frame(&two),
                Ok(Some((res, frame.len())))
            );
        }
    }

    #[test]
    fn wire_format_is_unchanged() {
        // Option tag, enum variant index, then the 32 raw id bytes.
        let req = SyncRequest {
            after: Some(SyncCursor::ManifestsAfter(ManifestId([7; 32]))),
            certificate: Vec::new(),
        };
        let mut expected = vec![0, 0, 0, 35, 1, 1];
        expected.extend_from_slice(&[7; 32]);
        expected.push(0);
        assert_eq!(req.encode_frame().unwrap(), expected);
        assert_eq!(
            SyncRequest {
                after: None,
                certificate: Vec::new()
            }
            .encode_frame()
            .unwrap(),
            [0, 0, 0, 2, 0, 0]
        );
        assert_eq!(
            SyncResponse::default().encode_frame().unwrap(),
            [0, 0, 0, 3, 0, 0, 0]
        );
    }

    #[test]
    fn oversize_prefix_is_refused_before_the_body() {
        // Only the four prefix bytes are there: refused now, not after waiting for the body.
        let prefix = u32::MAX.to_be_bytes();
        let too_large = DecodeError::TooLarge {
            len: u32::MAX as u64,
            max: MAX_SYNC_RESPONSE_BYTES as u64,
        };
        assert_eq!(SyncResponse::body_len(prefix), Err(too_large.clone()));
        assert_eq!(SyncResponse::decode_frame(&prefix), Err(too_large));
        let just_over = (MAX_SYNC_REQUEST_BYTES as u32 + 1).to_be_bytes();
        assert!(matches!(
            SyncRequest::decode_frame(&just_over),
            Err(DecodeError::TooLarge { .. })
        ));
        assert_eq!(
            SyncRequest::body_len((MAX_SYNC_REQUEST_BYTES as u32).to_be_bytes()),
            Ok(MAX_SYNC_REQUEST_BYTES)
        );
        // A whole body that is too long is refused before decoding, too.
        assert!(matches!(
            SyncRequest::decode_body(&[0; MAX_SYNC_REQUEST_BYTES + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn huge_inner_lengths_fail_without_allocating() {
        // A body claiming 2^40 records, then one item claiming 2^40 bytes.
        for claims in [vec![1u64 << 40], vec![1, 1 << 40]] {
            let mut body = Vec::new();
            for n in claims {
                put_varint(&mut body, n);
            }
            body.extend_from_slice(&[0; 8]);
            let r = SyncResponse::decode_body(&body);
            assert!(
                matches!(
                    r,
                    Err(DecodeError::LimitExceeded { .. } | DecodeError::Truncated)
                ),
                "{r:?}"
            );
        }
    }

    #[test]
    fn truncation_needs_more_bytes_or_fails() {
        let frame = response().encode_frame().unwrap();
        for cut in 0..frame.len() {
            assert_eq!(SyncResponse::decode_frame(&frame[..cut]), Ok(None), "{cut}");
            if cut >= FRAME_PREFIX_LEN {
                // The body alone, cut short.
                assert!(
                    SyncResponse::decode_body(&frame[FRAME_PREFIX_LEN..cut]).is_err(),
                    "{cut}"
                );
            }
        }
        // A prefix that announces fewer bytes than the value needs.
        let mut short = frame.clone();
        short[..FRAME_PREFIX_LEN].copy_from_slice(&((frame.len() - 5) as u32).to_be_bytes());
        assert_eq!(
            SyncResponse::decode_frame(&short),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn trailing_and_non_canonical_bytes_are_refused() {
        let frame = SyncRequest {
            after: None,
            certificate: Vec::new(),
        }
        .encode_frame()
        .unwrap();
        let mut body = frame[FRAME_PREFIX_LEN..].to_vec();
        body.push(0);
        assert_eq!(
            SyncRequest::decode_body(&body),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        // The same trailing byte inside the frame (the prefix counts it).
        let mut framed = vec![0, 0, 0, body.len() as u8];
        framed.extend_from_slice(&body);
        assert_eq!(
            SyncRequest::decode_frame(&framed),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        // Zero records written as a 3-byte varint (251, 0, 0) instead of one byte.
        assert_eq!(
            SyncResponse::decode_body(&[251, 0, 0, 0, 0]),
            Err(DecodeError::NonCanonical)
        );
        // An option tag that is neither 0 nor 1, an unknown cursor variant.
        assert!(SyncRequest::decode_body(&[2]).is_err());
        let mut bad_variant = vec![1, 2];
        bad_variant.extend_from_slice(&[0; 32]);
        assert!(SyncRequest::decode_body(&bad_variant).is_err());
    }

    #[test]
    fn encode_refuses_a_body_over_the_limit() {
        let res = SyncResponse {
            records: vec![vec![0; MAX_SYNC_RESPONSE_BYTES]],
            manifests: Vec::new(),
            next: None,
        };
        assert!(matches!(
            res.encode_frame(),
            Err(EncodeError::TooLarge { max, .. }) if max == MAX_SYNC_RESPONSE_BYTES as u64
        ));
    }
}
