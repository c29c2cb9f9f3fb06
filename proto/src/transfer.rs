//! Frames of the QUIC segment protocol, without any I/O.
//!
//! One request per bidirectional stream: the client writes a [`SegmentRequest`] frame; the
//! server answers with a [`ResponseHeader`] frame, then the segment's outboard (exactly
//! [`outboard_len`](crate::outboard::outboard_len)`(length)` bytes: one BLAKE3 chaining value
//! per 16 KiB group, none for a segment of one group or less), then exactly `length` raw
//! bytes. The client checks the outboard against `hash` (and the manifest's hash) before
//! reading the body, then checks each 16 KiB group as it arrives, so it can pass verified
//! bytes on while the rest is still in flight ([`crate::outboard`]).
//!
//! Version 2 of the protocol (ALPN `reelnet/segment/2`, libp2p `/reelnet/segment/2`) added
//! the outboard; version 1 sent the body straight after the header.
//! A client whose check fails tells the server on a unidirectional stream ([`CorruptReport`]).
//!
//! A frame is a 4-byte big-endian body length followed by the bincode body. The decoders
//! take whatever bytes have arrived and return `Ok(None)` until a whole frame is there, so
//! the caller owns the reading; a length prefix above the frame limit is rejected as soon as
//! its four bytes arrive, before waiting for (or buffering) the body.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_REQUEST_FRAME, MAX_RESPONSE_HEADER};
use crate::error::{DecodeError, EncodeError};
use crate::ids::{ManifestId, SegmentHash};

/// ALPN protocol id of the segment service.
pub const SEGMENT_ALPN: &[u8] = b"reelnet/segment/2";

/// libp2p protocol name of the same segment service carried over a libp2p connection (the
/// fallback for peers whose QUIC address cannot be reached, e.g. behind a NAT).
pub const SEGMENT_P2P_PROTOCOL_NAME: &str = "/reelnet/segment/2";

/// Largest [`P2pSegmentRequest`] body: the segment request and the requester's membership
/// certificate (QUIC carries the certificate in its TLS handshake; libp2p's noise does not).
pub const MAX_P2P_REQUEST_FRAME: usize =
    MAX_REQUEST_FRAME + crate::membership::MAX_SIGNED_CERTIFICATE_BYTES + 16;

/// Length of a frame's length prefix.
pub use crate::codec::FRAME_PREFIX_LEN;

/// Largest segment body a response may announce: 32 MiB. A segment of a few seconds at even
/// 40 Mbit/s is well under this; a larger `length` is refused before reading the body.
pub const MAX_SEGMENT_BYTES: u64 = 32 << 20;

/// Which segment of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SegmentRef {
    /// The track's init segment.
    Init,
    /// Media segment by position in the track.
    Index(u32),
    /// Init or media segment by content hash.
    Hash(SegmentHash),
}

/// "Send me this segment of this manifest."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentRequest {
    /// The manifest the segment belongs to.
    pub manifest: ManifestId,
    /// Track index in the manifest.
    pub track: u16,
    /// Which segment.
    pub segment: SegmentRef,
}

/// Outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The body follows.
    Ok,
    /// The node does not have that segment (or manifest).
    NotFound,
    /// The node is overloaded; try another provider.
    Busy,
    /// The request was malformed or names a segment the manifest does not have.
    BadRequest,
    /// The node failed (e.g. a stored segment failed its hash check).
    Internal,
    /// The requester may not have this segment (a premium rendition asked by an open
    /// member of the network).
    Forbidden,
}

/// Precedes a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResponseHeader {
    /// Outcome.
    pub status: Status,
    /// Bytes of body that follow: at most [`MAX_SEGMENT_BYTES`], and 0 unless `Ok`.
    pub length: u64,
    /// BLAKE3 of the body (all zero unless `Ok`).
    pub hash: SegmentHash,
}

impl ResponseHeader {
    /// A success header for a body of `length` bytes hashing to `hash`.
    pub fn ok(length: u64, hash: SegmentHash) -> Self {
        Self {
            status: Status::Ok,
            length,
            hash,
        }
    }

    /// A failure header: no body.
    pub fn error(status: Status) -> Self {
        Self {
            status,
            length: 0,
            hash: SegmentHash([0; 32]),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.length > MAX_SEGMENT_BYTES {
            return Err(format!(
                "response length {} exceeds {MAX_SEGMENT_BYTES}",
                self.length
            ));
        }
        if self.status != Status::Ok && self.length != 0 {
            return Err(format!(
                "{:?} response with a {}-byte body",
                self.status, self.length
            ));
        }
        Ok(())
    }
}

/// A request as a length-prefixed frame.
pub fn encode_request(req: &SegmentRequest) -> Result<Vec<u8>, EncodeError> {
    codec::encode_frame::<_, MAX_REQUEST_FRAME>(req)
}

/// Decodes a request frame from the front of `buf`. `Ok(None)`: need more bytes.
/// `Ok(Some((request, consumed)))`: a request and how many bytes of `buf` it used.
pub fn decode_request(buf: &[u8]) -> Result<Option<(SegmentRequest, usize)>, DecodeError> {
    let Some((body, used)) = codec::split_frame::<MAX_REQUEST_FRAME>(buf)? else {
        return Ok(None);
    };
    let req = codec::decode::<SegmentRequest, MAX_REQUEST_FRAME>(body)?;
    Ok(Some((req, used)))
}

/// "The bytes you sent me for this request failed their hash": sent by a receiver on a
/// unidirectional stream of the same connection (the only use of unidirectional streams in
/// the protocol), so the sender re-checks its stored copy. A sender may skip re-hashing what
/// it serves because every receiver verifies every byte; this report is what closes the loop:
/// the sender reads its copy again with the hash check, and drops (and re-fetches) it if bad.
/// There is no answer; the receiver has already moved on to another provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CorruptReport {
    /// The request whose answer failed.
    pub request: SegmentRequest,
    /// The hash the bytes should have had (the manifest's).
    pub expected: SegmentHash,
}

/// A corruption report as a length-prefixed frame.
pub fn encode_report(report: &CorruptReport) -> Result<Vec<u8>, EncodeError> {
    codec::encode_frame::<_, MAX_REQUEST_FRAME>(report)
}

/// Decodes a corruption report frame from the front of `buf`, like [`decode_request`].
pub fn decode_report(buf: &[u8]) -> Result<Option<(CorruptReport, usize)>, DecodeError> {
    let Some((body, used)) = codec::split_frame::<MAX_REQUEST_FRAME>(buf)? else {
        return Ok(None);
    };
    let report = codec::decode::<CorruptReport, MAX_REQUEST_FRAME>(body)?;
    Ok(Some((report, used)))
}

/// A segment request over libp2p (`/reelnet/segment/2`): the same [`SegmentRequest`] as over
/// QUIC plus the requester's membership certificate. The answer is the same as over QUIC: a
/// [`ResponseHeader`] frame, the outboard, then exactly `length` raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct P2pSegmentRequest {
    /// What is asked for.
    pub request: SegmentRequest,
    /// The requester's [`SignedCertificate`](crate::membership::SignedCertificate) wire
    /// bytes (empty without membership).
    pub certificate: Vec<u8>,
}

/// A libp2p segment request as a length-prefixed frame.
pub fn encode_p2p_request(req: &P2pSegmentRequest) -> Result<Vec<u8>, EncodeError> {
    codec::encode_frame::<_, MAX_P2P_REQUEST_FRAME>(req)
}

/// Decodes a libp2p segment request frame from the front of `buf`, like [`decode_request`].
pub fn decode_p2p_request(buf: &[u8]) -> Result<Option<(P2pSegmentRequest, usize)>, DecodeError> {
    let Some((body, used)) = codec::split_frame::<MAX_P2P_REQUEST_FRAME>(buf)? else {
        return Ok(None);
    };
    let req = codec::decode::<P2pSegmentRequest, MAX_P2P_REQUEST_FRAME>(body)?;
    Ok(Some((req, used)))
}

/// A response header as a length-prefixed frame. Refuses a header a peer would reject.
pub fn encode_response_header(header: &ResponseHeader) -> Result<Vec<u8>, EncodeError> {
    header.check().map_err(EncodeError::Invalid)?;
    codec::encode_frame::<_, MAX_RESPONSE_HEADER>(header)
}

/// Decodes a response header frame from the front of `buf`, like [`decode_request`].
/// Rejects a `length` above [`MAX_SEGMENT_BYTES`] and a body on a non-`Ok` status.
pub fn decode_response_header(buf: &[u8]) -> Result<Option<(ResponseHeader, usize)>, DecodeError> {
    let Some((body, used)) = codec::split_frame::<MAX_RESPONSE_HEADER>(buf)? else {
        return Ok(None);
    };
    let header = codec::decode::<ResponseHeader, MAX_RESPONSE_HEADER>(body)?;
    header.check().map_err(DecodeError::Invalid)?;
    Ok(Some((header, used)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn corrupt_report_roundtrip() {
        let report = CorruptReport {
            request: SegmentRequest {
                manifest: ManifestId([3; 32]),
                track: 1,
                segment: SegmentRef::Hash(SegmentHash([4; 32])),
            },
            expected: SegmentHash([4; 32]),
        };
        let frame = encode_report(&report).unwrap();
        assert_eq!(decode_report(&frame).unwrap(), Some((report, frame.len())));
        assert_eq!(decode_report(&frame[..frame.len() - 1]).unwrap(), None);
        let huge = u32::try_from(MAX_REQUEST_FRAME + 1).unwrap().to_be_bytes();
        assert!(decode_report(&huge).is_err());
    }

    #[test]
    fn p2p_request_roundtrip_and_limit() {
        let req = P2pSegmentRequest {
            request: SegmentRequest {
                manifest: ManifestId([7; 32]),
                track: 2,
                segment: SegmentRef::Index(9),
            },
            certificate: vec![1; 300],
        };
        let frame = encode_p2p_request(&req).unwrap();
        assert_eq!(
            decode_p2p_request(&frame).unwrap(),
            Some((req.clone(), frame.len()))
        );
        // Need more bytes until the frame is whole.
        assert_eq!(decode_p2p_request(&frame[..frame.len() - 1]).unwrap(), None);
        // A prefix above the limit is refused as soon as it arrives.
        let huge = u32::try_from(MAX_P2P_REQUEST_FRAME + 1)
            .unwrap()
            .to_be_bytes();
        assert!(decode_p2p_request(&huge).is_err());
        // A certificate too large for the frame cannot be encoded.
        let big = P2pSegmentRequest {
            certificate: vec![0; MAX_P2P_REQUEST_FRAME],
            ..req
        };
        assert!(encode_p2p_request(&big).is_err());
    }
}
