//! Signed manifest envelopes and bare manifest bodies from untrusted bytes.
//!
//! Decoding must never panic, and anything that decodes must re-encode to exactly the input
//! (decoders accept canonical encodings only), so the content hash names the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::codec::{self, MAX_MANIFEST_BYTES};
use reelnet_proto::{Manifest, ManifestId, SignedManifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedManifest::decode(data) {
        assert_eq!(signed.encode(), data);
        assert_eq!(signed.id(), ManifestId::of_signed_bytes(data));
        if let Ok(manifest) = signed.verify() {
            let again = codec::encode::<_, MAX_MANIFEST_BYTES>(&manifest).unwrap();
            assert_eq!(again, signed.manifest_bytes());
        }
    }
    // The body decoder directly, since forged signatures stop `verify` after decoding.
    if let Ok(manifest) = codec::decode::<Manifest, MAX_MANIFEST_BYTES>(data) {
        let again = codec::encode::<_, MAX_MANIFEST_BYTES>(&manifest).unwrap();
        assert_eq!(again, data);
        let _ = manifest.validate();
        let _ = (manifest.duration_ms(), manifest.segment_count());
    }
});
