//! Signing and the signed envelope shared by manifests and catalog records.
//!
//! A signed object travels as an envelope `{ body: Vec<u8>, signature: [u8; 64] }` in
//! bincode. The body is the canonical bincode encoding of the inner value; the signature is
//! ed25519 over `context || body`, where the context is a per-type, NUL-terminated label.
//! The context makes a signature valid for one kind of object only: a catalog record's
//! signature can never be replayed as a manifest's, even if the bytes happened to decode as
//! both. Verification uses `verify_strict` (rejects non-canonical signatures and weak keys),
//! so one body has one accepted signature per key.

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::codec::{self, put_varint};
use crate::error::{DecodeError, ProtoError};
use crate::ids::NodeId;

/// Context prefix for manifest signatures.
pub const MANIFEST_CONTEXT: &[u8] = b"reelnet/manifest/v1\0";

/// Context prefix for catalog record signatures.
pub const CATALOG_RECORD_CONTEXT: &[u8] = b"reelnet/catalog-record/v1\0";

fn message(context: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(context.len() + body.len());
    msg.extend_from_slice(context);
    msg.extend_from_slice(body);
    msg
}

/// Signs `body` under `context`.
pub(crate) fn sign(key: &SigningKey, context: &[u8], body: &[u8]) -> Signature {
    key.sign(&message(context, body))
}

/// Checks `signature` over `body` under `context` against `signer`'s key.
pub(crate) fn verify(
    signer: &NodeId,
    context: &[u8],
    body: &[u8],
    signature: &Signature,
) -> Result<(), ProtoError> {
    let key = signer.verifying_key()?;
    key.verify_strict(&message(context, body), signature)
        .map_err(|_| ProtoError::BadSignature {
            signer: (*signer).into(),
        })
}

/// Fails unless `key` belongs to `claimed`.
pub(crate) fn check_signer(key: &SigningKey, claimed: &NodeId) -> Result<(), ProtoError> {
    let key = NodeId::from_verifying_key(&key.verifying_key());
    if key == *claimed {
        Ok(())
    } else {
        Err(ProtoError::SignerMismatch {
            key: key.into(),
            claimed: (*claimed).into(),
        })
    }
}

/// The wire form of a signed object.
#[derive(Serialize, Deserialize)]
struct Envelope {
    body: Vec<u8>,
    signature: Signature,
}

/// Encodes an envelope. Written by hand so it cannot fail; equal to bincode's encoding of
/// [`Envelope`] (tested).
pub(crate) fn encode_envelope(body: &[u8], signature: &Signature) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + codec::SIGNED_ENVELOPE_OVERHEAD);
    put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out.extend_from_slice(&signature.to_bytes());
    out
}

/// Decodes an envelope of at most `N` bytes whose body is at most `max_body` bytes.
pub(crate) fn decode_envelope<const N: usize>(
    bytes: &[u8],
    max_body: usize,
) -> Result<(Vec<u8>, Signature), DecodeError> {
    let env: Envelope = codec::decode::<Envelope, N>(bytes)?;
    if env.body.len() > max_body {
        return Err(DecodeError::TooLarge {
            len: env.body.len() as u64,
            max: max_body as u64,
        });
    }
    Ok((env.body, env.signature))
}

/// Whether `a` and `b` are equal, in a time that depends only on their lengths (for
/// secrets and their hashes: tokens, PKCE verifiers, cookie bindings).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_bincode() {
        let sig = Signature::from_bytes(&[9; 64]);
        for len in [0usize, 1, 250, 251, 70_000] {
            let env = Envelope {
                body: vec![3; len],
                signature: sig,
            };
            let ours = encode_envelope(&env.body, &env.signature);
            let theirs = codec::encode::<_, { 1 << 20 }>(&env).unwrap();
            assert_eq!(ours, theirs);
            let (body, s) = decode_envelope::<{ 1 << 20 }>(&ours, len).unwrap();
            assert_eq!((body, s), (env.body, sig));
        }
    }

    #[test]
    fn contexts_separate() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let id = NodeId::from_verifying_key(&key.verifying_key());
        let sig = sign(&key, MANIFEST_CONTEXT, b"body");
        assert!(verify(&id, MANIFEST_CONTEXT, b"body", &sig).is_ok());
        assert!(verify(&id, CATALOG_RECORD_CONTEXT, b"body", &sig).is_err());
        assert!(verify(&id, MANIFEST_CONTEXT, b"bodz", &sig).is_err());
    }
}
