//! The tracker's network document (`/.well-known/reelnet-network.json`, read by every node),
//! enrollment requests and answers, and hex-encoded certificates and bindings (HTTP headers,
//! JSON fields) from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::binding::SignedBinding;
use reelnet_proto::membership::{
    CertificateResponse, EnrollRequest, NetworkDocument, RevocationsDocument, SignedCertificate,
};

fn round_trips<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(serde_json::from_slice::<T>(&json).unwrap(), value);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = serde_json::from_slice::<NetworkDocument>(data) {
        if let Ok((trust, signed)) = doc.trust(1_800_000_000) {
            // A document that verifies describes a list that verifies again.
            assert!(trust.verify_revocations(&signed, 1_800_000_000).is_ok());
        }
    }
    round_trips::<NetworkDocument>(data);
    round_trips::<RevocationsDocument>(data);
    round_trips::<EnrollRequest>(data);
    round_trips::<CertificateResponse>(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cert) = SignedCertificate::from_hex(s) {
            assert_eq!(SignedCertificate::from_hex(&cert.to_hex()).unwrap(), cert);
            let _ = cert.unverified();
        }
        if let Ok(b) = SignedBinding::from_hex(s) {
            assert_eq!(SignedBinding::from_hex(&b.to_hex()).unwrap(), b);
            let _ = b.unverified();
        }
    }
});
