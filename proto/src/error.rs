//! Error types for everything in `proto`.
//!
//! Two layers, because callers handle them differently:
//!
//! - [`DecodeError`] / [`EncodeError`] describe a failure of the wire format itself (too many
//!   bytes, truncated, trailing garbage, a value the format forbids). A network handler maps
//!   a `DecodeError` to "reject the message and count it against the peer".
//! - [`ProtoError`] covers the checks above the wire format: bad ids, hash mismatches, bad
//!   signatures, expired records, semantically invalid manifests.
//!
//! Every message names what was wrong so a log line is enough to find the culprit.
//!
//! This module imports nothing from the rest of the crate (every other module imports it):
//! errors that name a node or a segment carry its 32 bytes as an [`IdBytes`], which prints
//! exactly like the id (64 lowercase hex characters). `ids` converts its types into it and
//! compares them with it.

use std::fmt;

/// The 32 bytes of a [`NodeId`](crate::NodeId) or [`SegmentHash`](crate::SegmentHash) inside
/// an error, shown as 64 lowercase hex characters like the id itself. Compares equal to the
/// id it was made from (`err_field == node_id`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdBytes(pub [u8; 32]);

impl fmt::Display for IdBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for IdBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdBytes({self})")
    }
}

/// A byte string could not be decoded into a `proto` type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input (or a frame's length prefix) is longer than the type allows; nothing was
    /// decoded. Checked before any decoding work.
    #[error("input is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Length of the input or the length claimed by a frame prefix.
        len: u64,
        /// The type's maximum encoded size.
        max: u64,
    },
    /// A length inside the input claims more than the decode limit allows (for example a
    /// string claiming 2^40 bytes); rejected before allocating.
    #[error("a length inside the input exceeds the decode limit of {max} bytes")]
    LimitExceeded {
        /// The decode limit that was in force.
        max: u64,
    },
    /// The input ended before the value was complete.
    #[error("input is truncated")]
    Truncated,
    /// The value decoded but did not use all of the input.
    #[error("{extra} trailing bytes after the value")]
    TrailingBytes {
        /// Number of unused bytes.
        extra: usize,
    },
    /// The value decoded but its bytes are not the canonical encoding (for example an
    /// over-long integer); only the canonical form is accepted so that one value has one
    /// encoding and one hash.
    #[error("input is not in canonical encoding")]
    NonCanonical,
    /// The bytes do not follow the format (bad enum tag, bad bool, invalid UTF-8, ...).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The bytes follow the format but a value is not allowed (bad `MovieId`, a frame with
    /// an impossible length, ...).
    #[error("invalid value: {0}")]
    Invalid(String),
}

/// A value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoding would exceed the type's size limit, so no peer would accept it.
    #[error("encoded value is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Encoded length.
        len: u64,
        /// The type's maximum encoded size.
        max: u64,
    },
    /// The value is not allowed on the wire (for example a response header with a body
    /// length above `MAX_SEGMENT_BYTES`).
    #[error("refusing to encode an invalid value: {0}")]
    Invalid(String),
    /// bincode reported an error.
    #[error("bincode: {0}")]
    Bincode(String),
}

/// Any failure of a `proto` check: parsing, hashing, signing, verifying, validating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// See [`DecodeError`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`EncodeError`].
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A string is not a valid `MovieId`.
    #[error("invalid movie id {input:?}: {reason}")]
    InvalidMovieId {
        /// The rejected input, truncated to 80 characters.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A string is not 64 lowercase hex characters.
    #[error("invalid {what}: expected 64 lowercase hex characters")]
    InvalidHex {
        /// Which id type was being parsed.
        what: &'static str,
    },
    /// 32 bytes that are not a valid ed25519 public key.
    #[error("node id {0} is not a valid ed25519 public key")]
    InvalidKey(IdBytes),
    /// Bytes do not hash to the expected value: the data is corrupt or forged and must not
    /// be stored or served.
    #[error("segment hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The hash named by the manifest or request.
        expected: IdBytes,
        /// The hash of the bytes actually received.
        actual: IdBytes,
    },
    /// The signature does not verify against the claimed signer.
    #[error("bad signature (claimed signer {signer})")]
    BadSignature {
        /// The node the content claims to come from.
        signer: IdBytes,
    },
    /// The signing key is not the node named in the content.
    #[error("signing key {key} does not match the content's node {claimed}")]
    SignerMismatch {
        /// Node id of the key used to sign.
        key: IdBytes,
        /// Node id written in the content.
        claimed: IdBytes,
    },
    /// A record's expiry has passed.
    #[error("record expired at {expires_at} (now {now})")]
    Expired {
        /// The record's `expires_at`.
        expires_at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// A record was issued further in the future than clock skew explains.
    #[error("record issued at {issued_at}, in the future (now {now})")]
    NotYetValid {
        /// The record's `issued_at`.
        issued_at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The content decoded but breaks a rule of its type (bounds, charset, consistency).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which type or field.
        what: &'static str,
        /// Which rule was broken.
        reason: String,
    },
}

impl ProtoError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
