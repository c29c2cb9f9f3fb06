//! Membership certificates, revocation lists, movie bindings and node auth headers from
//! untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::binding::SignedBinding;
use reelnet_proto::membership::{NodeAuth, SignedCertificate, SignedRevocations, Trust};
use reelnet_proto::NodeId;

fuzz_target!(|data: &[u8]| {
    let trust = Trust {
        network_id: "fuzz".into(),
        ..Trust::default()
    };
    if let Ok(signed) = SignedCertificate::decode(data) {
        assert_eq!(signed.encode(), data);
        if let Ok(cert) = signed.unverified() {
            let _ = trust.check(&signed, &cert.node, 1_800_000_000);
        }
        let _ = trust.check(&signed, &NodeId([0; 32]), 0);
    }
    if let Ok(list) = SignedRevocations::decode(data) {
        assert_eq!(list.encode(), data);
        let _ = trust.verify_revocations(&list, 1_800_000_000);
    }
    if let Ok(b) = SignedBinding::decode(data) {
        assert_eq!(b.encode(), data);
        let _ = b.unverified();
        let _ = trust.verify_binding(&b, 1_800_000_000);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(auth) = NodeAuth::parse(s) {
            let _ = auth.verify(&NodeId([1; 32]), "POST", "/", b"", auth.timestamp);
        }
    }
});
