//! reelnet's shared types and wire formats.
//!
//! Everything two reelnet processes exchange is defined here, once: ids ([`ids`]), the
//! bincode codec and its size limits ([`codec`]), signed manifests ([`manifest`]) and
//! catalog records ([`catalog`]) with their signing envelope ([`sign`]), the QUIC segment
//! protocol's frames ([`transfer`]) and verified streaming of segments ([`outboard`]), the catalog sync frames ([`sync`]), the JWT claims
//! ([`claims`]), network membership (certificates, revocations, node request signatures:
//! [`membership`]) and the JSON bodies of the tracker's node-facing request routes
//! ([`requests`]).
//!
//! The crate does no I/O and needs no async runtime, so the node, the tracker and the fuzz
//! targets all use the same code. The rule for untrusted bytes: decode with the functions
//! here (they enforce size limits, reject trailing and non-canonical bytes), then `verify`
//! (signature, bounds, time) before reading anything.

pub mod binding;
pub mod catalog;
pub mod claims;
pub mod codec;
pub mod error;
pub mod hls;
pub mod ids;
pub mod lang;
pub mod manifest;
pub mod membership;
pub mod oauth;
pub mod outboard;
pub mod requests;
pub mod sign;
pub mod subtitles;
pub mod sync;
pub mod transfer;

pub use catalog::{CatalogRecord, Held, SegmentRange, SignedCatalogRecord};
pub use claims::{Claims, Role, Tier, ACCESS_TOKEN_AUDIENCE, MAX_TOKEN_BYTES};
pub use codec::{
    MAX_CATALOG_RECORD_BYTES, MAX_MANIFEST_BYTES, MAX_REQUEST_FRAME, MAX_RESPONSE_HEADER,
    MAX_SIGNED_CATALOG_RECORD_BYTES, MAX_SIGNED_MANIFEST_BYTES,
};
pub use error::{DecodeError, EncodeError, IdBytes, ProtoError};
pub use ids::{ManifestId, MovieId, NodeId, SegmentHash};
pub use manifest::{
    Container, Manifest, MediaInfo, MovieMeta, Rendition, SegmentEntry, SignedManifest,
    ThumbnailGrid, Track, TrackKind,
};
pub use outboard::Outboard;
pub use transfer::{
    decode_p2p_request, decode_report, decode_request, decode_response_header, encode_p2p_request,
    encode_report, encode_request, encode_response_header, CorruptReport, P2pSegmentRequest,
    ResponseHeader, SegmentRef, SegmentRequest, Status, MAX_SEGMENT_BYTES,
};
