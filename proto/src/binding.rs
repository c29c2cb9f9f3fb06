//! Movie bindings: which source is canonical for a movie id.
//!
//! Any `ingest` member can sign a manifest for any movie id, so a manifest's own claim is
//! not enough to decide what a viewer sees under `tmdb-603`. The tracker keeps one
//! [`Binding`] per bound movie: movie id → source lineage, the origin node and the
//! `ingest_id` of one ingest (every version that origin publishes of that ingest belongs to
//! the lineage). It signs each binding with the network key; `version` grows with every
//! binding the tracker makes or changes, network-wide, so a node asks for "everything after
//! version N" and a newer binding of a movie replaces an older one. Nodes fetch bindings
//! from the tracker and gossip them; [`Trust::verify_binding`](crate::membership::Trust)
//! is the one place a binding is judged.

use ed25519_dalek::{Signature, SigningKey};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{DecodeError, ProtoError};
use crate::ids::{ManifestId, MovieId, NodeId};
use crate::membership::{check_label, MembershipError, Trust, MAX_KID_LEN, MAX_NETWORK_ID_LEN};
use crate::sign;

/// Context prefix for binding signatures.
pub const BINDING_CONTEXT: &[u8] = b"reelnet/movie-binding/v1\0";
/// Largest encoded binding.
pub const MAX_BINDING_BYTES: usize = 512;
/// Largest signed binding on the wire.
pub const MAX_SIGNED_BINDING_BYTES: usize = MAX_BINDING_BYTES + 128;
/// Most bindings in one page of `GET /api/v1/network/bindings`.
pub const MAX_BINDINGS_PER_PAGE: usize = 1000;

/// Where a movie's canonical source is. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    /// The network.
    pub network_id: String,
    /// The movie.
    pub movie: MovieId,
    /// The lineage: its origin node…
    pub origin: NodeId,
    /// …and the ingest (every version of it).
    pub ingest_id: [u8; 16],
    /// The manifest (a complete version of the lineage) the binding was made for.
    pub manifest: ManifestId,
    /// Grows with every binding the tracker makes or changes (network-wide).
    pub version: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// The network key that signed it.
    pub kid: String,
}

impl Binding {
    /// Checks labels.
    pub fn validate(&self) -> Result<(), ProtoError> {
        check_label("network_id", &self.network_id, MAX_NETWORK_ID_LEN)?;
        check_label("kid", &self.kid, MAX_KID_LEN)?;
        if self.version == 0 {
            return Err(ProtoError::invalid(
                "movie binding",
                "version must be positive",
            ));
        }
        Ok(())
    }

    /// True if a manifest from `origin` with `ingest_id` belongs to the bound lineage.
    pub fn covers(&self, origin: &NodeId, ingest_id: &[u8; 16]) -> bool {
        self.origin == *origin && self.ingest_id == *ingest_id
    }
}

/// A binding as it travels: canonical body bytes plus the network key's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBinding {
    body: Vec<u8>,
    signature: Signature,
}

impl SignedBinding {
    /// Validates, encodes and signs `binding` with the network key named by its `kid`.
    pub fn sign(binding: &Binding, key: &SigningKey) -> Result<Self, ProtoError> {
        binding.validate()?;
        let body = codec::encode::<_, MAX_BINDING_BYTES>(binding)?;
        let signature = sign::sign(key, BINDING_CONTEXT, &body);
        Ok(Self { body, signature })
    }

    /// The binding, decoded and validated but NOT verified (for choosing the key and for
    /// showing it). Use [`Trust::verify_binding`] before trusting it.
    pub fn unverified(&self) -> Result<Binding, ProtoError> {
        let b: Binding = codec::decode::<_, MAX_BINDING_BYTES>(&self.body)?;
        b.validate()?;
        Ok(b)
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        sign::encode_envelope(&self.body, &self.signature)
    }

    /// Parses the wire encoding (at most [`MAX_SIGNED_BINDING_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (body, signature) =
            sign::decode_envelope::<MAX_SIGNED_BINDING_BYTES>(bytes, MAX_BINDING_BYTES)?;
        Ok(Self { body, signature })
    }

    /// Lowercase hex of the wire encoding (JSON).
    pub fn to_hex(&self) -> String {
        hex::encode(self.encode())
    }

    /// Parses [`SignedBinding::to_hex`]'s output.
    pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
        if s.len() > 2 * MAX_SIGNED_BINDING_BYTES {
            return Err(DecodeError::TooLarge {
                len: s.len() as u64 / 2,
                max: MAX_SIGNED_BINDING_BYTES as u64,
            });
        }
        let bytes = hex::decode(s).map_err(|_| DecodeError::Malformed("not hex".to_owned()))?;
        Self::decode(&bytes)
    }
}

impl Trust {
    /// Verifies a binding against this network's keys: decodes and validates it, checks
    /// the network, the key (published, not retired) and the signature, and that it was not
    /// issued in the future.
    pub fn verify_binding(
        &self,
        signed: &SignedBinding,
        now: u64,
    ) -> Result<Binding, MembershipError> {
        let b = signed.unverified()?;
        if b.network_id != self.network_id {
            return Err(MembershipError::WrongNetwork {
                expected: self.network_id.clone(),
                found: b.network_id,
            });
        }
        let key = self
            .key(&b.kid, now)
            .ok_or_else(|| MembershipError::UnknownKey(b.kid.clone()))?;
        let msg = [BINDING_CONTEXT, signed.body.as_slice()].concat();
        key.public
            .verify_strict(&msg, &signed.signature)
            .map_err(|_| MembershipError::BadSignature)?;
        if b.issued_at > now.saturating_add(crate::membership::SKEW_TOLERANCE_SECS) {
            return Err(MembershipError::NotYetValid {
                issued_at: b.issued_at,
                now,
            });
        }
        Ok(b)
    }
}

/// `GET /api/v1/network/bindings?after=N`: the bindings with a version above `N`, lowest
/// version first, at most [`MAX_BINDINGS_PER_PAGE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingsPage {
    /// Hex of each [`SignedBinding`].
    pub bindings: Vec<String>,
    /// The highest binding version the tracker has.
    pub version: u64,
    /// More pages follow (ask again with `after` = the last binding's version).
    pub more: bool,
}

/// `POST /api/v1/nodes/ingests` (node-signed): an `ingest` member announces a complete
/// ingest it originated. The tracker records it (so an admin can bind the movie to it) and
/// binds the movie to it when the movie is unbound and no other node holds a request for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestAnnouncement {
    /// Hex of the [`SignedManifest`](crate::SignedManifest) wire encoding.
    pub manifest: String,
}

/// The tracker's answer to an [`IngestAnnouncement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementResult {
    /// Hex of the movie's current [`SignedBinding`], if it is bound (to this ingest or
    /// another).
    pub binding: Option<String>,
    /// The movie is bound to the announced ingest's lineage.
    pub bound_here: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::membership::NetworkKey;

    fn trust(key: &SigningKey) -> Trust {
        Trust {
            network_id: "net".into(),
            keys: vec![NetworkKey {
                kid: "k1".into(),
                public: key.verifying_key(),
                not_after: None,
            }],
            ..Trust::default()
        }
    }

    fn binding() -> Binding {
        Binding {
            network_id: "net".into(),
            movie: MovieId::from_tmdb(603),
            origin: NodeId::from_verifying_key(&SigningKey::from_bytes(&[9; 32]).verifying_key()),
            ingest_id: [4; 16],
            manifest: ManifestId::of_signed_bytes(b"m"),
            version: 3,
            issued_at: 1000,
            kid: "k1".into(),
        }
    }

    #[test]
    fn signed_binding_roundtrips_and_verifies() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let b = binding();
        let signed = SignedBinding::sign(&b, &key).unwrap();
        let back = SignedBinding::from_hex(&signed.to_hex()).unwrap();
        assert_eq!(trust(&key).verify_binding(&back, 1000).unwrap(), b);
        assert!(b.covers(&b.origin, &[4; 16]));
        assert!(!b.covers(&b.origin, &[5; 16]));
    }

    #[test]
    fn forged_foreign_and_future_bindings_are_refused() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let t = trust(&key);
        let forged = SignedBinding::sign(&binding(), &other).unwrap();
        assert_eq!(
            t.verify_binding(&forged, 1000),
            Err(MembershipError::BadSignature)
        );
        let mut b = binding();
        b.kid = "k9".into();
        let unknown = SignedBinding::sign(&b, &key).unwrap();
        assert!(matches!(
            t.verify_binding(&unknown, 1000),
            Err(MembershipError::UnknownKey(_))
        ));
        let mut b = binding();
        b.network_id = "other".into();
        let foreign = SignedBinding::sign(&b, &key).unwrap();
        assert!(matches!(
            t.verify_binding(&foreign, 1000),
            Err(MembershipError::WrongNetwork { .. })
        ));
        let mut b = binding();
        b.issued_at = 10_000;
        let future = SignedBinding::sign(&b, &key).unwrap();
        assert!(matches!(
            t.verify_binding(&future, 1000),
            Err(MembershipError::NotYetValid { .. })
        ));
        // Clock skew: a checker 300 s behind the tracker takes it, one further behind than
        // the tolerance does not; a checker ahead always does (bindings do not expire).
        let skew = crate::membership::MAX_CLOCK_SKEW_SECS;
        let tol = crate::membership::SKEW_TOLERANCE_SECS;
        assert!(t.verify_binding(&future, 10_000 - skew).is_ok());
        assert!(t.verify_binding(&future, 10_000 + skew).is_ok());
        assert!(matches!(
            t.verify_binding(&future, 10_000 - tol - 1),
            Err(MembershipError::NotYetValid { .. })
        ));
        let mut b = binding();
        b.version = 0;
        assert!(SignedBinding::sign(&b, &key).is_err());
        assert!(SignedBinding::from_hex("zz").is_err());
        assert!(SignedBinding::from_hex(&"00".repeat(MAX_SIGNED_BINDING_BYTES + 1)).is_err());
    }
}
