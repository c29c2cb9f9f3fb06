//! TLS for the segment service, bound to node keys instead of a CA.
//!
//! Every endpoint presents a self-signed certificate generated (with rcgen) from its ed25519
//! node key. What makes a certificate trusted is not its issuer but its public key:
//!
//! - a **client** dials a [`NodeId`] and accepts the server only if the certificate's
//!   SubjectPublicKeyInfo is exactly that node's ed25519 key; the TLS 1.3 CertificateVerify
//!   signature is then checked with that key, which proves the server holds the node key.
//!   The expected `NodeId` travels in the TLS server name ([`server_name`]), so one client
//!   configuration serves every provider.
//! - a **server** requires a client certificate (mutual TLS) with any ed25519 key and checks
//!   its handshake signature the same way; [`peer_node_id`] then names the peer, which the
//!   server uses for per-peer limits. (A peer can mint new keys, so limits per `NodeId` slow
//!   an abuser down rather than stop it; the global limits stop it.)
//!
//! Membership: a node's certificate also carries its network membership certificate in a
//! private X.509 extension ([`MEMBERSHIP_OID`]). With a membership state (every running
//! node), both verifiers refuse a peer whose extension is missing or does not hold a valid,
//! unrevoked certificate of this network for exactly the key it presents; so a stranger's
//! handshake fails on both sides. [`peer_membership`] reads the peer's certificate after
//! the handshake (e.g. whether it is an open member).
//!
//! Only TLS 1.3 (QUIC requires it) and only the Ed25519 signature scheme are accepted. The
//! ring provider is used explicitly, so nothing depends on a process-wide default provider.

use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use reelnet_proto::membership::{Certificate, SignedCertificate};
use tokio::sync::watch;

use crate::membership::MemberState;
use ed25519_dalek::SigningKey;
use reelnet_proto::transfer::SEGMENT_ALPN;
use reelnet_proto::NodeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } — followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The private OID of the membership extension (1.3.6.1.4.1.59831.1.1).
pub const MEMBERSHIP_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 59831, 1, 1];

/// What a verifier judges peers' membership with (`None`: membership is not checked).
pub type MemberCheck = Option<watch::Receiver<Arc<MemberState>>>;

/// Last DNS label of the server names that carry a node id.
const NAME_SUFFIX: &str = "reelnet";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot encode the node key as PKCS#8: {0}")]
    Pkcs8(String),
    #[error("cannot build the node certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS configuration has no cipher suite usable by QUIC: {0}")]
    Quic(String),
}

/// The ring crypto provider, used for every reelnet TLS configuration.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `key`, and the key as PKCS#8 for rustls.
pub fn node_certificate(
    key: &SigningKey,
    membership: Option<&[u8]>,
) -> Result<(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>), TlsError> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| TlsError::Pkcs8(e.to_string()))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)?;
    let node = NodeId::from_verifying_key(&key.verifying_key());
    let mut params = rcgen::CertificateParams::new(vec![server_name(&node)])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, node.to_string());
    if let Some(bytes) = membership {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                MEMBERSHIP_OID,
                der_octet_string(bytes),
            ));
    }
    let cert = params.self_signed(&key_pair)?;
    Ok((cert.der().clone(), pkcs8))
}

/// The TLS server name a client uses to reach `node`: its 64 hex digits split into two DNS
/// labels (a label holds at most 63 characters), then `reelnet`.
fn der_octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let len = bytes.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(bytes);
    out
}

/// The membership extension's content (the certificate's wire bytes), if present.
pub fn membership_extension(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let oid = x509_parser::oid_registry::Oid::from(MEMBERSHIP_OID).ok()?;
    let ext = parsed.extensions().iter().find(|e| e.oid == oid)?;
    let (rest, inner) = x509_parser::der_parser::der::parse_der_octetstring(ext.value).ok()?;
    if !rest.is_empty() {
        return None;
    }
    inner.as_slice().ok().map(<[u8]>::to_vec)
}

/// The peer's membership certificate as presented in its TLS certificate (checked during
/// the handshake when the endpoint checks membership).
pub fn peer_membership(conn: &quinn::Connection) -> Option<Certificate> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let bytes = membership_extension(certs.first()?)?;
    SignedCertificate::decode(&bytes).ok()?.unverified().ok()
}

/// Refuses a peer that is not a member (when `member` is set).
fn check_member(
    member: &MemberCheck,
    cert: &CertificateDer<'_>,
    node: &NodeId,
) -> Result<(), rustls::Error> {
    let Some(member) = member else {
        return Ok(());
    };
    let state = member.borrow().clone();
    let refuse = |why: String| {
        tracing::warn!(peer = %node.short(), %why, "QUIC peer is not a member; refused");
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    };
    let bytes =
        membership_extension(cert).ok_or_else(|| refuse("no membership certificate".to_owned()))?;
    state
        .check(&bytes, node)
        .map(|_| ())
        .map_err(|e| refuse(e.to_string()))
}

pub fn server_name(node: &NodeId) -> String {
    let hex = node.to_string();
    format!("{}.{}.{NAME_SUFFIX}", &hex[..32], &hex[32..])
}

/// The node a server name produced by [`server_name`] designates.
fn node_of_server_name(name: &ServerName<'_>) -> Option<NodeId> {
    let ServerName::DnsName(dns) = name else {
        return None;
    };
    let mut labels = dns.as_ref().split('.');
    let (a, b, suffix) = (labels.next()?, labels.next()?, labels.next()?);
    if suffix != NAME_SUFFIX || labels.next().is_some() {
        return None;
    }
    format!("{a}{b}").parse().ok()
}

/// The node whose ed25519 key a certificate carries. Fails unless the certificate parses and
/// its SubjectPublicKeyInfo is an Ed25519 key.
pub fn cert_node_id(cert: &CertificateDer<'_>) -> Result<NodeId, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    let bytes: &[u8] = spki.as_ref();
    let key = bytes
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))?;
    let node = NodeId(key);
    node.verifying_key()
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(node)
}

/// The `NodeId` a connection's peer proved during the handshake (its certificate key).
pub fn peer_node_id(conn: &quinn::Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    cert_node_id(certs.first()?).ok()
}

fn ed25519_only() -> Vec<SignatureScheme> {
    vec![SignatureScheme::ED25519]
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic)
}

/// Accepts a server certificate only if it carries the key of the node named in the server
/// name (see the module docs).
#[derive(Debug)]
struct NodeServerVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    member: MemberCheck,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let expected = node_of_server_name(server_name).ok_or_else(|| {
            rustls::Error::General(format!(
                "server name {server_name:?} does not name a reelnet node"
            ))
        })?;
        let actual = cert_node_id(end_entity)?;
        if actual != expected {
            tracing::warn!(%expected, %actual, "peer presented another node's certificate");
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        }
        check_member(&self.member, end_entity, &actual)?;
        // The certificate carries the expected key; rustls next checks the handshake
        // signature with it (verify_tls13_signature below), which proves possession.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ed25519_only()
    }
}

/// Requires a client certificate with an ed25519 key and checks the client's handshake
/// signature with it; any node may connect, and is known by that key.
#[derive(Debug)]
struct NodeClientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    member: MemberCheck,
}

impl ClientCertVerifier for NodeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let node = cert_node_id(end_entity)?;
        check_member(&self.member, end_entity, &node)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ed25519_only()
    }
}

/// The rustls server configuration of a node: its certificate, mutual TLS, the segment ALPN.
pub fn server_crypto(key: &SigningKey) -> Result<rustls::ServerConfig, TlsError> {
    server_crypto_with(key, None)
}

/// The member's own certificate bytes, to present in its TLS certificate.
pub(crate) fn own_membership(member: &MemberCheck) -> Option<Vec<u8>> {
    member.as_ref()?.borrow().own_certificate_bytes()
}

/// [`server_crypto`], presenting this node's membership certificate and refusing clients
/// that are not members (with `member`).
pub fn server_crypto_with(
    key: &SigningKey,
    member: MemberCheck,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let own = own_membership(&member);
    let verifier = Arc::new(NodeClientVerifier {
        algorithms: provider.signature_verification_algorithms,
        member,
    });
    let (cert, pkcs8) = node_certificate(key, own.as_deref())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], pkcs8.into())?;
    config.alpn_protocols = vec![SEGMENT_ALPN.to_vec()];
    Ok(config)
}

/// The rustls client configuration of a node: trusts a server by node key, authenticates
/// with its own certificate, speaks the segment ALPN.
pub fn client_crypto(key: &SigningKey) -> Result<rustls::ClientConfig, TlsError> {
    client_crypto_with(key, None)
}

/// [`client_crypto`], presenting this node's membership certificate and refusing servers
/// that are not members (with `member`).
pub fn client_crypto_with(
    key: &SigningKey,
    member: MemberCheck,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let own = own_membership(&member);
    let verifier = Arc::new(NodeServerVerifier {
        algorithms: provider.signature_verification_algorithms,
        member,
    });
    let (cert, pkcs8) = node_certificate(key, own.as_deref())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], pkcs8.into())?;
    config.alpn_protocols = vec![SEGMENT_ALPN.to_vec()];
    Ok(config)
}

/// [`server_crypto_with`] wrapped for quinn.
pub(crate) fn quic_server_crypto(
    key: &SigningKey,
    member: MemberCheck,
) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
    quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto_with(key, member)?)
        .map_err(|e| TlsError::Quic(e.to_string()))
}

/// [`client_crypto_with`] wrapped for quinn.
pub(crate) fn quic_client_crypto(
    key: &SigningKey,
    member: MemberCheck,
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
    quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto_with(key, member)?)
        .map_err(|e| TlsError::Quic(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn certificate_carries_the_node_key() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let (cert, _) = node_certificate(&key, None).unwrap();
        let node = NodeId::from_verifying_key(&key.verifying_key());
        assert_eq!(cert_node_id(&cert).unwrap(), node);
    }

    #[test]
    fn server_name_round_trips() {
        let node = NodeId([0xab; 32]);
        let name = ServerName::try_from(server_name(&node)).unwrap();
        assert_eq!(node_of_server_name(&name), Some(node));
        let other = ServerName::try_from("example.com").unwrap();
        assert_eq!(node_of_server_name(&other), None);
    }
}
