//! Network membership: certificates the tracker signs with the network key, the signed
//! revocation list, the enrollment proof and the signature a node puts on its requests to
//! the tracker.
//!
//! A [`Certificate`] binds `{network_id, node, roles, open, origins, issued_at, not_after,
//! serial, kid}` under a network key (ed25519, `kid` names it). It lives at most
//! [`MAX_CERT_LIFETIME_SECS`]; nodes renew well before. A [`Trust`] is what a verifier
//! knows about its network (its id, the published keys and the newest revocation list);
//! [`Trust::check`] is the one place a certificate is judged. Everything here is decoded
//! with the codec's limits and verified before it is read, like manifests and records.

use std::collections::HashSet;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{DecodeError, ProtoError};
use crate::ids::NodeId;
use crate::sign;

/// Context prefix for membership certificate signatures.
pub const CERTIFICATE_CONTEXT: &[u8] = b"reelnet/membership-certificate/v1\0";
/// Context prefix for revocation list signatures.
pub const REVOCATIONS_CONTEXT: &[u8] = b"reelnet/revocations/v1\0";
/// Context prefix for a node's proof of possession at enrollment.
pub const ENROLL_CONTEXT: &[u8] = b"reelnet/enroll/v1\0";
/// Context prefix for a node's signature on a request to the tracker.
pub const NODE_REQUEST_CONTEXT: &[u8] = b"reelnet/node-request/v1\0";

/// Longest certificate lifetime (`not_after - issued_at`): 7 days.
pub const MAX_CERT_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Largest encoded certificate body.
pub const MAX_CERTIFICATE_BYTES: usize = 4096;
/// Largest signed certificate (body + envelope).
pub const MAX_SIGNED_CERTIFICATE_BYTES: usize =
    MAX_CERTIFICATE_BYTES + codec::SIGNED_ENVELOPE_OVERHEAD;
/// Longest network id.
pub const MAX_NETWORK_ID_LEN: usize = 64;
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;
/// Most gateway origins in a certificate.
pub const MAX_ORIGINS: usize = 8;
/// Longest gateway origin.
pub const MAX_ORIGIN_LEN: usize = 256;
/// Most node ids on a revocation list. A revoked node leaves the list once every
/// certificate it held has expired, so this bounds revocations per week, not forever.
pub const MAX_REVOKED: usize = 8192;
/// Largest encoded revocation list body.
pub const MAX_REVOCATIONS_BYTES: usize = MAX_REVOKED * 33 + 256;
/// Largest signed revocation list.
pub const MAX_SIGNED_REVOCATIONS_BYTES: usize =
    MAX_REVOCATIONS_BYTES + codec::SIGNED_ENVELOPE_OVERHEAD;
/// The clock skew tolerated between any two machines of a network (clocks of
/// community-run machines drift): 5 minutes, either way. Every time check between two
/// machines allows it — `issued_at` may be this far in the future, `not_after` this far in
/// the past — and it is stated, with every other time check, in `docs/clock-skew.md`.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// What every such check allows: the promised skew plus 30 s for transit time and
/// whole-second rounding, so that at exactly 5 minutes of skew a message that took a
/// moment to arrive still passes.
pub const SKEW_TOLERANCE_SECS: u64 = MAX_CLOCK_SKEW_SECS + 30;
/// How old (or how far in the future) a node's request signature may be: the skew
/// tolerance (the tracker remembers each signature for twice this, so none is replayed).
pub const NODE_REQUEST_WINDOW_SECS: u64 = SKEW_TOLERANCE_SECS;
/// The HTTP header carrying a node's request signature.
pub const NODE_AUTH_HEADER: &str = "reelnet-node-auth";
/// The HTTP header in which a member node's gateway tells the tracker the address of the
/// viewer it forwards a request for. The tracker believes it only together with a
/// [`NODE_AUTH_HEADER`] signed over [`viewer_auth_path`] (so it is bound to the request
/// and to the node that vouches for it); from anyone else the socket address counts.
pub const VIEWER_ADDR_HEADER: &str = "reelnet-viewer-addr";

/// The `path` a node signs (with [`node_auth_header`]) when it forwards a request for the
/// viewer at `viewer`: the request's path with the address bound to it. `#` never occurs
/// in a request path, so a signature over a plain path cannot pass for one of these.
pub fn viewer_auth_path(path: &str, viewer: &str) -> String {
    format!("{path}#viewer={viewer}")
}

/// What a member may do. A set: a certificate lists one or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

/// One role, as operators and JSON name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Holds a share of the library under placement.
    Replica,
    /// May originate manifests and claim movie requests.
    Ingest,
    /// Fetches and serves viewers only.
    Edge,
}

impl RoleName {
    const ALL: [RoleName; 3] = [RoleName::Replica, RoleName::Ingest, RoleName::Edge];

    fn bit(self) -> u8 {
        match self {
            RoleName::Replica => 1,
            RoleName::Ingest => 2,
            RoleName::Edge => 4,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Replica => "replica",
            RoleName::Ingest => "ingest",
            RoleName::Edge => "edge",
        }
    }
}

impl std::str::FromStr for RoleName {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        RoleName::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ProtoError::invalid(
                    "role",
                    format!(
                        "{:?} is not a role (replica, ingest or edge)",
                        s.chars().take(40).collect::<String>()
                    ),
                )
            })
    }
}

impl Roles {
    const MASK: u8 = 7;

    /// The set of `names`.
    pub fn of(names: &[RoleName]) -> Self {
        Roles(names.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// True if `role` is in the set.
    pub fn has(self, role: RoleName) -> bool {
        self.0 & role.bit() != 0
    }

    /// True if the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Only the roles both sets have (a node's own settings can only narrow its
    /// certificate's roles).
    pub fn intersect(self, other: Roles) -> Roles {
        Roles(self.0 & other.0)
    }

    /// The roles, in a fixed order.
    pub fn names(self) -> Vec<RoleName> {
        RoleName::ALL.into_iter().filter(|r| self.has(*r)).collect()
    }

    /// `replica,ingest` — for logs and CLIs.
    pub fn to_list(self) -> String {
        let names: Vec<&str> = self.names().iter().map(|r| r.as_str()).collect();
        names.join(",")
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.names().serialize(s)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Vec::<RoleName>::deserialize(d).map(|n| Roles::of(&n))
        } else {
            let bits = u8::deserialize(d)?;
            if bits & !Roles::MASK != 0 {
                return Err(serde::de::Error::custom("unknown role bits"));
            }
            Ok(Roles(bits))
        }
    }
}

/// A membership certificate. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The network it is valid in.
    pub network_id: String,
    /// The member.
    pub node: NodeId,
    /// What it may do.
    pub roles: Roles,
    /// Issued by open enrollment (anyone can get one): never served premium renditions
    /// node-to-node.
    pub open: bool,
    /// The node's gateway origins (`https://host[:port]`), given at enrollment.
    pub origins: Vec<String>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds after which it is void.
    pub not_after: u64,
    /// Unique per certificate the tracker issues.
    pub serial: u64,
    /// The network key that signed it.
    pub kid: String,
}

impl Certificate {
    /// Checks bounds and formats (not time, not the signature).
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("membership certificate", reason));
        check_label("network_id", &self.network_id, MAX_NETWORK_ID_LEN)?;
        check_label("kid", &self.kid, MAX_KID_LEN)?;
        if self.roles.is_empty() {
            return bad("no roles".to_owned());
        }
        if self.origins.len() > MAX_ORIGINS {
            return bad(format!(
                "{} origins (max {MAX_ORIGINS})",
                self.origins.len()
            ));
        }
        for o in &self.origins {
            check_origin(o)?;
        }
        if self.issued_at >= self.not_after {
            return bad("issued_at is not before not_after".to_owned());
        }
        if self.not_after - self.issued_at > MAX_CERT_LIFETIME_SECS {
            return bad(format!(
                "lifetime {} s exceeds {MAX_CERT_LIFETIME_SECS} s",
                self.not_after - self.issued_at
            ));
        }
        Ok(())
    }

    /// Seconds of validity left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.not_after.saturating_sub(now)
    }
}

pub(crate) fn check_label(what: &str, s: &str, max: usize) -> Result<(), ProtoError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "membership certificate",
            format!("{what}: 1 to {max} characters of [A-Za-z0-9._-]"),
        ))
    }
}

/// Checks a gateway origin: `http(s)://host[:port]`, no path, printable ASCII.
pub fn check_origin(origin: &str) -> Result<(), ProtoError> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let ok = origin.len() <= MAX_ORIGIN_LEN
        && rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@']))
        && origin.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "origin",
            format!(
                "{:?} must be http(s)://host[:port] without a path, at most {MAX_ORIGIN_LEN} bytes",
                origin.chars().take(80).collect::<String>()
            ),
        ))
    }
}

/// A certificate as it travels: canonical body bytes plus the network key's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCertificate {
    body: Vec<u8>,
    signature: Signature,
}

impl SignedCertificate {
    /// Validates, encodes and signs `cert` with the network key named by `cert.kid`.
    pub fn sign(cert: &Certificate, key: &SigningKey) -> Result<Self, ProtoError> {
        cert.validate()?;
        let body = codec::encode::<_, MAX_CERTIFICATE_BYTES>(cert)?;
        let signature = sign::sign(key, CERTIFICATE_CONTEXT, &body);
        Ok(Self { body, signature })
    }

    /// The certificate, decoded and validated but NOT verified: only for choosing the key
    /// and for showing it. Use [`Trust::check`] before trusting it.
    pub fn unverified(&self) -> Result<Certificate, ProtoError> {
        let cert: Certificate = codec::decode::<_, MAX_CERTIFICATE_BYTES>(&self.body)?;
        cert.validate()?;
        Ok(cert)
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        sign::encode_envelope(&self.body, &self.signature)
    }

    /// Parses the wire encoding (at most [`MAX_SIGNED_CERTIFICATE_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (body, signature) =
            sign::decode_envelope::<MAX_SIGNED_CERTIFICATE_BYTES>(bytes, MAX_CERTIFICATE_BYTES)?;
        Ok(Self { body, signature })
    }

    /// Lowercase hex of the wire encoding (HTTP headers, JSON, files).
    pub fn to_hex(&self) -> String {
        hex::encode(self.encode())
    }

    /// Parses [`SignedCertificate::to_hex`]'s output.
    pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
        if s.len() > 2 * MAX_SIGNED_CERTIFICATE_BYTES {
            return Err(DecodeError::TooLarge {
                len: s.len() as u64 / 2,
                max: MAX_SIGNED_CERTIFICATE_BYTES as u64,
            });
        }
        let bytes = hex::decode(s).map_err(|_| DecodeError::Malformed("not hex".to_owned()))?;
        Self::decode(&bytes)
    }
}

/// Why a certificate or a revocation list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Not decodable or breaks a bound.
    #[error("malformed: {0}")]
    Malformed(#[from] ProtoError),
    /// Issued for another network.
    #[error("issued for network {found:?}, this is {expected:?}")]
    WrongNetwork {
        /// Ours.
        expected: String,
        /// The certificate's.
        found: String,
    },
    /// Issued to another node.
    #[error("issued to node {found}, presented by {expected}")]
    WrongNode {
        /// Who presented it.
        expected: NodeId,
        /// Who it names.
        found: NodeId,
    },
    /// Signed by a key this network does not publish (or no longer accepts).
    #[error("signed with unknown or retired network key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past `not_after`.
    #[error("expired at {not_after} (now {now})")]
    Expired {
        /// The certificate's end.
        not_after: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// Issued in the future.
    #[error("issued at {issued_at}, in the future (now {now})")]
    NotYetValid {
        /// The certificate's start.
        issued_at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// On the revocation list.
    #[error("node {0} is revoked")]
    Revoked(NodeId),
    /// Valid, but without the role this needs.
    #[error("node {node} lacks the {role} role (has {has})")]
    MissingRole {
        /// The member.
        node: NodeId,
        /// What was needed.
        role: &'static str,
        /// What it has.
        has: String,
    },
}

/// One published network key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkKey {
    /// Its id.
    pub kid: String,
    /// The public key.
    pub public: VerifyingKey,
    /// When it stops being accepted (a retired key: the end of the last certificate it
    /// can have signed); `None` for the current key.
    pub not_after: Option<u64>,
}

/// What a verifier knows about its network: see [`Trust::check`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trust {
    /// The network's id.
    pub network_id: String,
    /// Every published key.
    pub keys: Vec<NetworkKey>,
    /// Revoked nodes (from the newest verified revocation list).
    pub revoked: HashSet<NodeId>,
    /// That list's serial (0: none yet).
    pub revocation_serial: u64,
}

impl Trust {
    pub(crate) fn key(&self, kid: &str, now: u64) -> Option<&NetworkKey> {
        self.keys.iter().find(|k| {
            k.kid == kid
                && k.not_after
                    .is_none_or(|t| t.saturating_add(SKEW_TOLERANCE_SECS) > now)
        })
    }

    /// Judges `signed` as presented by `node` at `now`: decodes and validates it, checks
    /// it is for this network and this node, signed by a key this network publishes,
    /// inside its validity window and not revoked.
    pub fn check(
        &self,
        signed: &SignedCertificate,
        node: &NodeId,
        now: u64,
    ) -> Result<Certificate, MembershipError> {
        let cert = signed.unverified()?;
        if cert.network_id != self.network_id {
            return Err(MembershipError::WrongNetwork {
                expected: self.network_id.clone(),
                found: cert.network_id,
            });
        }
        if cert.node != *node {
            return Err(MembershipError::WrongNode {
                expected: *node,
                found: cert.node,
            });
        }
        let key = self
            .key(&cert.kid, now)
            .ok_or_else(|| MembershipError::UnknownKey(cert.kid.clone()))?;
        let msg = [CERTIFICATE_CONTEXT, signed.body.as_slice()].concat();
        key.public
            .verify_strict(&msg, &signed.signature)
            .map_err(|_| MembershipError::BadSignature)?;
        if cert.not_after.saturating_add(SKEW_TOLERANCE_SECS) <= now {
            return Err(MembershipError::Expired {
                not_after: cert.not_after,
                now,
            });
        }
        if cert.issued_at > now.saturating_add(SKEW_TOLERANCE_SECS) {
            return Err(MembershipError::NotYetValid {
                issued_at: cert.issued_at,
                now,
            });
        }
        if self.revoked.contains(node) {
            return Err(MembershipError::Revoked(*node));
        }
        Ok(cert)
    }

    /// [`Trust::check`], then requires `role`.
    pub fn check_role(
        &self,
        signed: &SignedCertificate,
        node: &NodeId,
        role: RoleName,
        now: u64,
    ) -> Result<Certificate, MembershipError> {
        let cert = self.check(signed, node, now)?;
        require_role(&cert, role)?;
        Ok(cert)
    }

    /// Verifies a revocation list against this network's keys.
    pub fn verify_revocations(
        &self,
        signed: &SignedRevocations,
        now: u64,
    ) -> Result<Revocations, MembershipError> {
        let list: Revocations =
            codec::decode::<_, MAX_REVOCATIONS_BYTES>(&signed.body).map_err(ProtoError::from)?;
        list.validate()?;
        if list.network_id != self.network_id {
            return Err(MembershipError::WrongNetwork {
                expected: self.network_id.clone(),
                found: list.network_id,
            });
        }
        let key = self
            .key(&list.kid, now)
            .ok_or_else(|| MembershipError::UnknownKey(list.kid.clone()))?;
        let msg = [REVOCATIONS_CONTEXT, signed.body.as_slice()].concat();
        key.public
            .verify_strict(&msg, &signed.signature)
            .map_err(|_| MembershipError::BadSignature)?;
        if list.issued_at > now.saturating_add(SKEW_TOLERANCE_SECS) {
            return Err(MembershipError::NotYetValid {
                issued_at: list.issued_at,
                now,
            });
        }
        Ok(list)
    }

    /// Takes a verified list if it is newer than the one held; true if it was.
    pub fn apply_revocations(&mut self, list: &Revocations) -> bool {
        if list.serial <= self.revocation_serial && self.revocation_serial != 0 {
            return false;
        }
        self.revocation_serial = list.serial;
        self.revoked = list.revoked.iter().copied().collect();
        true
    }
}

/// Fails unless `cert` has `role`.
pub fn require_role(cert: &Certificate, role: RoleName) -> Result<(), MembershipError> {
    if cert.roles.has(role) {
        Ok(())
    } else {
        Err(MembershipError::MissingRole {
            node: cert.node,
            role: role.as_str(),
            has: cert.roles.to_list(),
        })
    }
}

/// The network's list of revoked nodes. `serial` grows with every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    /// The network.
    pub network_id: String,
    /// Grows with every change.
    pub serial: u64,
    /// Revoked nodes, sorted, no duplicates.
    pub revoked: Vec<NodeId>,
    /// Unix seconds.
    pub issued_at: u64,
    /// The network key that signed it.
    pub kid: String,
}

impl Revocations {
    /// Checks bounds, order and labels.
    pub fn validate(&self) -> Result<(), ProtoError> {
        check_label("network_id", &self.network_id, MAX_NETWORK_ID_LEN)?;
        check_label("kid", &self.kid, MAX_KID_LEN)?;
        if self.revoked.len() > MAX_REVOKED {
            return Err(ProtoError::invalid(
                "revocation list",
                format!("{} nodes (max {MAX_REVOKED})", self.revoked.len()),
            ));
        }
        if self.revoked.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProtoError::invalid(
                "revocation list",
                "nodes must be sorted without duplicates",
            ));
        }
        Ok(())
    }
}

/// A revocation list as it travels (tracker JSON and gossip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRevocations {
    body: Vec<u8>,
    signature: Signature,
}

impl SignedRevocations {
    /// Validates, encodes and signs `list` with the network key named by `list.kid`.
    pub fn sign(list: &Revocations, key: &SigningKey) -> Result<Self, ProtoError> {
        list.validate()?;
        let body = codec::encode::<_, MAX_REVOCATIONS_BYTES>(list)?;
        let signature = sign::sign(key, REVOCATIONS_CONTEXT, &body);
        Ok(Self { body, signature })
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        sign::encode_envelope(&self.body, &self.signature)
    }

    /// Parses the wire encoding (at most [`MAX_SIGNED_REVOCATIONS_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (body, signature) =
            sign::decode_envelope::<MAX_SIGNED_REVOCATIONS_BYTES>(bytes, MAX_REVOCATIONS_BYTES)?;
        Ok(Self { body, signature })
    }

    /// Rebuilds the signed list from its JSON fields (`signature` is 128 hex characters).
    pub fn from_parts(list: &Revocations, signature_hex: &str) -> Result<Self, ProtoError> {
        list.validate()?;
        let body = codec::encode::<_, MAX_REVOCATIONS_BYTES>(list)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(signature_hex, &mut sig)
            .map_err(|_| ProtoError::invalid("revocation list", "signature: 128 hex characters"))?;
        Ok(Self {
            body,
            signature: Signature::from_bytes(&sig),
        })
    }

    /// The signature, hex.
    pub fn signature_hex(&self) -> String {
        hex::encode(self.signature.to_bytes())
    }
}

/// The message a node signs to prove it holds its key when enrolling.
pub fn enroll_message(network_id: &str, invite: &str, node: &NodeId, timestamp: u64) -> Vec<u8> {
    let mut m = ENROLL_CONTEXT.to_vec();
    for part in [network_id.as_bytes(), invite.as_bytes(), node.as_bytes()] {
        m.extend_from_slice(&(part.len() as u32).to_le_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&timestamp.to_le_bytes());
    m
}

/// Signs the enrollment proof with the node key (hex signature).
pub fn sign_enroll(key: &SigningKey, network_id: &str, invite: &str, timestamp: u64) -> String {
    use ed25519_dalek::Signer;
    let node = NodeId::from_verifying_key(&key.verifying_key());
    hex::encode(
        key.sign(&enroll_message(network_id, invite, &node, timestamp))
            .to_bytes(),
    )
}

/// Checks an enrollment proof.
pub fn verify_enroll(
    node: &NodeId,
    network_id: &str,
    invite: &str,
    timestamp: u64,
    signature_hex: &str,
) -> Result<(), ProtoError> {
    let sig = parse_signature(signature_hex)?;
    node.verifying_key()?
        .verify_strict(&enroll_message(network_id, invite, node, timestamp), &sig)
        .map_err(|_| ProtoError::BadSignature {
            signer: (*node).into(),
        })
}

fn parse_signature(hex_sig: &str) -> Result<Signature, ProtoError> {
    let mut sig = [0u8; 64];
    hex::decode_to_slice(hex_sig, &mut sig)
        .map_err(|_| ProtoError::invalid("signature", "128 hex characters"))?;
    Ok(Signature::from_bytes(&sig))
}

/// The message a node signs for one request to the tracker: method, path (with query),
/// time, a random nonce (so two equal requests in one second differ), and the BLAKE3 of
/// the body.
pub fn node_request_message(
    method: &str,
    path: &str,
    timestamp: u64,
    nonce: &[u8; 16],
    body: &[u8],
) -> Vec<u8> {
    let mut m = NODE_REQUEST_CONTEXT.to_vec();
    m.extend_from_slice(nonce);
    for part in [method.as_bytes(), path.as_bytes()] {
        m.extend_from_slice(&(part.len() as u32).to_le_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&timestamp.to_le_bytes());
    m.extend_from_slice(blake3::hash(body).as_bytes());
    m
}

/// The [`NODE_AUTH_HEADER`] value for a request:
/// `v1.<certificate hex>.<unix secs>.<nonce hex>.<signature hex>`. `nonce` must be random
/// (the tracker refuses a signature it has seen).
pub fn node_auth_header(
    key: &SigningKey,
    cert: &SignedCertificate,
    method: &str,
    path: &str,
    timestamp: u64,
    nonce: [u8; 16],
    body: &[u8],
) -> String {
    use ed25519_dalek::Signer;
    let sig = key.sign(&node_request_message(method, path, timestamp, &nonce, body));
    format!(
        "v1.{}.{timestamp}.{}.{}",
        cert.to_hex(),
        hex::encode(nonce),
        hex::encode(sig.to_bytes())
    )
}

/// A parsed [`NODE_AUTH_HEADER`] (not verified).
#[derive(Debug, Clone)]
pub struct NodeAuth {
    /// The node's certificate.
    pub certificate: SignedCertificate,
    /// When it signed.
    pub timestamp: u64,
    nonce: [u8; 16],
    signature: Signature,
}

impl NodeAuth {
    /// Parses the header value.
    pub fn parse(value: &str) -> Result<Self, ProtoError> {
        let bad = || {
            ProtoError::invalid(
                "node auth header",
                "expected v1.<cert>.<time>.<nonce>.<sig>",
            )
        };
        if value.len() > 2 * MAX_SIGNED_CERTIFICATE_BYTES + 200 {
            return Err(bad());
        }
        let mut parts = value.split('.');
        if parts.next() != Some("v1") {
            return Err(bad());
        }
        let cert = parts.next().ok_or_else(bad)?;
        let ts = parts.next().ok_or_else(bad)?;
        let nonce_hex = parts.next().ok_or_else(bad)?;
        let sig = parts.next().ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        let mut nonce = [0u8; 16];
        hex::decode_to_slice(nonce_hex, &mut nonce).map_err(|_| bad())?;
        Ok(Self {
            certificate: SignedCertificate::from_hex(cert)?,
            timestamp: ts.parse().map_err(|_| bad())?,
            nonce,
            signature: parse_signature(sig)?,
        })
    }

    /// Checks the signature over this request by the certificate's node, and the time
    /// window. The certificate itself is judged by the caller with [`Trust::check`].
    pub fn verify(
        &self,
        node: &NodeId,
        method: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), ProtoError> {
        if self.timestamp.abs_diff(now) > NODE_REQUEST_WINDOW_SECS {
            return Err(ProtoError::invalid(
                "node auth header",
                format!(
                    "signed at {}, more than {NODE_REQUEST_WINDOW_SECS} s from now ({now}); check the node's clock",
                    self.timestamp
                ),
            ));
        }
        node.verifying_key()?
            .verify_strict(
                &node_request_message(method, path, self.timestamp, &self.nonce, body),
                &self.signature,
            )
            .map_err(|_| ProtoError::BadSignature {
                signer: (*node).into(),
            })
    }

    /// A digest identifying this exact signature (for replay detection).
    pub fn replay_key(&self) -> [u8; 32] {
        *blake3::hash(&self.signature.to_bytes()).as_bytes()
    }
}

/// `GET /.well-known/reelnet-network.json`: the network's keys and revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDocument {
    /// The network's id.
    pub network_id: String,
    /// Every key that still verifies certificates.
    pub keys: Vec<PublishedKey>,
    /// The current revocation list.
    pub revocations: RevocationsDocument,
}

/// One key in a [`NetworkDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// Key id.
    pub kid: String,
    /// The ed25519 public key, 64 hex characters.
    pub public_key: String,
    /// When a retired key stops verifying; `null` for the current key.
    pub not_after: Option<u64>,
}

/// The revocation list in a [`NetworkDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationsDocument {
    /// Grows with every change.
    pub serial: u64,
    /// Revoked node ids.
    pub revoked: Vec<NodeId>,
    /// Unix seconds.
    pub issued_at: u64,
    /// The key that signed it.
    pub kid: String,
    /// ed25519 over the list's canonical encoding, 128 hex characters.
    pub signature: String,
}

impl RevocationsDocument {
    /// The JSON form of a signed list.
    pub fn of(list: &Revocations, signed: &SignedRevocations) -> Self {
        Self {
            serial: list.serial,
            revoked: list.revoked.clone(),
            issued_at: list.issued_at,
            kid: list.kid.clone(),
            signature: signed.signature_hex(),
        }
    }
}

impl NetworkDocument {
    /// Most keys a document may list.
    pub const MAX_KEYS: usize = 64;

    /// The [`Trust`] this document describes, its revocation list verified.
    pub fn trust(&self, now: u64) -> Result<(Trust, SignedRevocations), MembershipError> {
        check_label("network_id", &self.network_id, MAX_NETWORK_ID_LEN)?;
        if self.keys.len() > Self::MAX_KEYS {
            return Err(ProtoError::invalid("network document", "too many keys").into());
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            check_label("kid", &k.kid, MAX_KID_LEN)?;
            let mut public = [0u8; 32];
            hex::decode_to_slice(&k.public_key, &mut public).map_err(|_| {
                ProtoError::invalid("network document", "public_key: 64 hex characters")
            })?;
            let public = VerifyingKey::from_bytes(&public).map_err(|_| {
                ProtoError::invalid("network document", "public_key is not an ed25519 key")
            })?;
            keys.push(NetworkKey {
                kid: k.kid.clone(),
                public,
                not_after: k.not_after,
            });
        }
        let mut trust = Trust {
            network_id: self.network_id.clone(),
            keys,
            ..Trust::default()
        };
        let r = &self.revocations;
        let list = Revocations {
            network_id: self.network_id.clone(),
            serial: r.serial,
            revoked: r.revoked.clone(),
            issued_at: r.issued_at,
            kid: r.kid.clone(),
        };
        let signed = SignedRevocations::from_parts(&list, &r.signature)?;
        let list = trust.verify_revocations(&signed, now)?;
        trust.apply_revocations(&list);
        Ok((trust, signed))
    }
}

/// `POST /api/v1/nodes/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The invite token (empty for open enrollment, where the network allows it).
    pub invite: String,
    /// The node's id (its public key).
    pub node_id: NodeId,
    /// Unix seconds when the proof was made.
    pub timestamp: u64,
    /// [`sign_enroll`] over the network id, the invite, the node id and the time.
    pub proof: String,
    /// The node's gateway origins.
    #[serde(default)]
    pub origins: Vec<String>,
}

/// The answer to an enrollment or a renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateResponse {
    /// [`SignedCertificate::to_hex`].
    pub certificate: String,
    /// Its decoded fields, for humans.
    pub roles: Roles,
    /// Unix seconds.
    pub not_after: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn net_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn node_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed.wrapping_add(100); 32])
    }

    fn trust() -> Trust {
        Trust {
            network_id: "testnet".into(),
            keys: vec![NetworkKey {
                kid: "k1".into(),
                public: net_key(1).verifying_key(),
                not_after: None,
            }],
            ..Trust::default()
        }
    }

    fn cert(node: &SigningKey, roles: &[RoleName]) -> Certificate {
        Certificate {
            network_id: "testnet".into(),
            node: NodeId::from_verifying_key(&node.verifying_key()),
            roles: Roles::of(roles),
            open: false,
            origins: vec!["https://node.example:8443".into()],
            issued_at: NOW - 10,
            not_after: NOW + 3600,
            serial: 7,
            kid: "k1".into(),
        }
    }

    #[test]
    fn valid_certificate_round_trips_and_checks() {
        let n = node_key(1);
        let c = cert(&n, &[RoleName::Replica, RoleName::Ingest]);
        let signed = SignedCertificate::sign(&c, &net_key(1)).unwrap();
        let bytes = signed.encode();
        let back = SignedCertificate::decode(&bytes).unwrap();
        assert_eq!(back, signed);
        assert_eq!(
            SignedCertificate::from_hex(&signed.to_hex()).unwrap(),
            signed
        );
        let got = trust()
            .check_role(&back, &c.node, RoleName::Ingest, NOW)
            .unwrap();
        assert_eq!(got, c);
        assert!(matches!(
            trust().check_role(&back, &c.node, RoleName::Edge, NOW),
            Err(MembershipError::MissingRole { .. })
        ));
    }

    #[test]
    fn bad_certificates_are_refused() {
        let n = node_key(1);
        let c = cert(&n, &[RoleName::Edge]);
        let t = trust();
        // Forged: signed by another key under our kid.
        let forged = SignedCertificate::sign(&c, &net_key(2)).unwrap();
        assert_eq!(
            t.check(&forged, &c.node, NOW),
            Err(MembershipError::BadSignature)
        );
        // Another network.
        let mut other = c.clone();
        other.network_id = "elsewhere".into();
        let s = SignedCertificate::sign(&other, &net_key(1)).unwrap();
        assert!(matches!(
            t.check(&s, &c.node, NOW),
            Err(MembershipError::WrongNetwork { .. })
        ));
        // Presented by another node.
        let s = SignedCertificate::sign(&c, &net_key(1)).unwrap();
        let stranger = NodeId::from_verifying_key(&node_key(9).verifying_key());
        assert!(matches!(
            t.check(&s, &stranger, NOW),
            Err(MembershipError::WrongNode { .. })
        ));
        // Expired (beyond the clock-skew tolerance).
        assert!(matches!(
            t.check(&s, &c.node, NOW + 3600 + SKEW_TOLERANCE_SECS),
            Err(MembershipError::Expired { .. })
        ));
        // Unknown kid.
        let mut k = c.clone();
        k.kid = "k9".into();
        let s2 = SignedCertificate::sign(&k, &net_key(1)).unwrap();
        assert!(matches!(
            t.check(&s2, &c.node, NOW),
            Err(MembershipError::UnknownKey(_))
        ));
        // Revoked.
        let mut t2 = t.clone();
        t2.revoked.insert(c.node);
        assert_eq!(
            t2.check(&s, &c.node, NOW),
            Err(MembershipError::Revoked(c.node))
        );
        // Too long a lifetime is refused even at signing.
        let mut long = c.clone();
        long.not_after = long.issued_at + MAX_CERT_LIFETIME_SECS + 1;
        assert!(SignedCertificate::sign(&long, &net_key(1)).is_err());
        // Garbled bytes.
        let mut bytes = s.encode();
        bytes.truncate(bytes.len() - 3);
        assert!(SignedCertificate::decode(&bytes).is_err());
        assert!(SignedCertificate::decode(&vec![0xff; MAX_SIGNED_CERTIFICATE_BYTES + 1]).is_err());
    }

    #[test]
    fn retired_key_verifies_until_its_end() {
        let n = node_key(1);
        let c = cert(&n, &[RoleName::Replica]);
        let s = SignedCertificate::sign(&c, &net_key(1)).unwrap();
        let mut t = trust();
        t.keys[0].not_after = Some(NOW + 100);
        t.keys.push(NetworkKey {
            kid: "k2".into(),
            public: net_key(2).verifying_key(),
            not_after: None,
        });
        assert!(t.check(&s, &c.node, NOW).is_ok());
        // A checker up to 5 minutes ahead still knows the key.
        assert!(t
            .check(&s, &c.node, NOW + 100 + SKEW_TOLERANCE_SECS - 1)
            .is_ok());
        assert!(matches!(
            t.check(&s, &c.node, NOW + 100 + SKEW_TOLERANCE_SECS),
            Err(MembershipError::UnknownKey(_))
        ));
    }

    #[test]
    fn revocations_sign_verify_and_order() {
        let n1 = NodeId::from_verifying_key(&node_key(1).verifying_key());
        let n2 = NodeId::from_verifying_key(&node_key(2).verifying_key());
        let mut revoked = vec![n1, n2];
        revoked.sort();
        let list = Revocations {
            network_id: "testnet".into(),
            serial: 3,
            revoked,
            issued_at: NOW,
            kid: "k1".into(),
        };
        let s = SignedRevocations::sign(&list, &net_key(1)).unwrap();
        let back = SignedRevocations::decode(&s.encode()).unwrap();
        let mut t = trust();
        let got = t.verify_revocations(&back, NOW).unwrap();
        assert!(t.apply_revocations(&got));
        assert!(t.revoked.contains(&n1));
        assert!(!t.apply_revocations(&got), "same serial is not newer");
        let again = SignedRevocations::from_parts(&list, &s.signature_hex()).unwrap();
        assert_eq!(again, s);
        let forged = SignedRevocations::sign(&list, &net_key(2)).unwrap();
        assert_eq!(
            t.verify_revocations(&forged, NOW),
            Err(MembershipError::BadSignature)
        );
        let mut unsorted = list.clone();
        unsorted.revoked.reverse();
        assert!(SignedRevocations::sign(&unsorted, &net_key(1)).is_err());
    }

    #[test]
    fn enroll_proof_and_request_signature() {
        let n = node_key(1);
        let id = NodeId::from_verifying_key(&n.verifying_key());
        let sig = sign_enroll(&n, "testnet", "invite-1", NOW);
        verify_enroll(&id, "testnet", "invite-1", NOW, &sig).unwrap();
        let other = NodeId::from_verifying_key(&node_key(2).verifying_key());
        assert!(verify_enroll(&other, "testnet", "invite-1", NOW, &sig).is_err());
        assert!(verify_enroll(&id, "testnet", "invite-2", NOW, &sig).is_err());

        let c = SignedCertificate::sign(&cert(&n, &[RoleName::Ingest]), &net_key(1)).unwrap();
        let h = node_auth_header(
            &n,
            &c,
            "POST",
            "/api/v1/requests/claim",
            NOW,
            [7; 16],
            b"{}",
        );
        let h2 = node_auth_header(
            &n,
            &c,
            "POST",
            "/api/v1/requests/claim",
            NOW,
            [8; 16],
            b"{}",
        );
        assert_ne!(
            NodeAuth::parse(&h).unwrap().replay_key(),
            NodeAuth::parse(&h2).unwrap().replay_key(),
            "two equal requests in one second are told apart"
        );
        let auth = NodeAuth::parse(&h).unwrap();
        auth.verify(&id, "POST", "/api/v1/requests/claim", b"{}", NOW + 5)
            .unwrap();
        assert!(auth
            .verify(&id, "POST", "/api/v1/requests/claim", b"{ }", NOW)
            .is_err());
        assert!(auth
            .verify(&id, "POST", "/api/v1/requests/1/done", b"{}", NOW)
            .is_err());
        assert!(auth
            .verify(&id, "POST", "/api/v1/requests/claim", b"{}", NOW + 331)
            .is_err());
        assert!(NodeAuth::parse("v1.zz.1.00").is_err());
        assert!(NodeAuth::parse("v1.zz.1.00.00").is_err());
    }

    /// Every check between machines passes at 5 minutes of skew either way (plus the
    /// transit slack) and fails beyond. `now` is the checker's clock; the stamps are the
    /// tracker's or the node's.
    #[test]
    fn five_minutes_of_clock_skew_pass_either_way_and_more_fails() {
        let (skew, tol) = (MAX_CLOCK_SKEW_SECS, SKEW_TOLERANCE_SECS);
        assert_eq!((skew, tol), (300, 330));
        let n = node_key(1);
        let mut c = cert(&n, &[RoleName::Replica]);
        c.issued_at = NOW;
        c.not_after = NOW + 3600;
        let s = SignedCertificate::sign(&c, &net_key(1)).unwrap();
        let t = trust();
        // A fresh certificate at a checker 300 s behind or ahead of the tracker.
        assert!(t.check(&s, &c.node, NOW - skew).is_ok());
        assert!(t.check(&s, &c.node, NOW + skew).is_ok());
        // issued_at: a checker further behind than the tolerance refuses it.
        assert!(t.check(&s, &c.node, NOW - tol).is_ok());
        assert!(matches!(
            t.check(&s, &c.node, NOW - tol - 1),
            Err(MembershipError::NotYetValid { .. })
        ));
        // not_after: a checker 300 s ahead still takes it at its very end; beyond, not.
        assert!(t.check(&s, &c.node, c.not_after + skew).is_ok());
        assert!(matches!(
            t.check(&s, &c.node, c.not_after + tol),
            Err(MembershipError::Expired { .. })
        ));
        // Revocation list issued_at.
        let list = Revocations {
            network_id: "testnet".into(),
            serial: 1,
            revoked: vec![],
            issued_at: NOW,
            kid: "k1".into(),
        };
        let sl = SignedRevocations::sign(&list, &net_key(1)).unwrap();
        assert!(t.verify_revocations(&sl, NOW - skew).is_ok());
        assert!(t.verify_revocations(&sl, NOW + skew).is_ok());
        assert!(matches!(
            t.verify_revocations(&sl, NOW - tol - 1),
            Err(MembershipError::NotYetValid { .. })
        ));
        // A node's request signature, at the tracker: ±300 s pass, beyond the tolerance
        // fail.
        let h = node_auth_header(&n, &s, "POST", "/api/v1/x", NOW, [1; 16], b"");
        let auth = NodeAuth::parse(&h).unwrap();
        let id = c.node;
        for now in [NOW - skew, NOW + skew, NOW - tol, NOW + tol] {
            auth.verify(&id, "POST", "/api/v1/x", b"", now).unwrap();
        }
        for now in [NOW - tol - 1, NOW + tol + 1] {
            assert!(auth.verify(&id, "POST", "/api/v1/x", b"", now).is_err());
        }
    }

    #[test]
    fn roles_json_and_bits() {
        let r = Roles::of(&[RoleName::Ingest, RoleName::Replica]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"["replica","ingest"]"#
        );
        let back: Roles = serde_json::from_str(r#"["ingest","replica"]"#).unwrap();
        assert_eq!(back, r);
        assert!(codec::decode::<Roles, 8>(&[8]).is_err());
        assert_eq!(
            r.intersect(Roles::of(&[RoleName::Ingest])).to_list(),
            "ingest"
        );
    }
}
