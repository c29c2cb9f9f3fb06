//! Signed manifest envelopes and bare manifest bodies from untrusted bytes.
//!
//! Decoding must never panic, and anything that decodes must re-encode to exactly the input
//! (decoders accept canonical encodings only), so the content hash names the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::codec::{self, MAX_MANIFEST_BYTES};
use reelnet_proto::hls;
use reelnet_proto::manifest::{MANIFEST_VERSION, MANIFEST_VERSION_V1};
use reelnet_proto::{Manifest, ManifestId, SignedManifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedManifest::decode(data) {
        assert_eq!(signed.encode(), data);
        assert_eq!(signed.id(), ManifestId::of_signed_bytes(data));
        if let Ok(manifest) = signed.verify() {
            // v1 bodies decode into the v2 type; only v2 re-encodes to the same bytes.
            if manifest.version == MANIFEST_VERSION {
                let again = codec::encode::<_, MAX_MANIFEST_BYTES>(&manifest).unwrap();
                assert_eq!(again, signed.manifest_bytes());
            }
        }
    }
    // The body decoder directly (v1 and v2), since forged signatures stop `verify` after
    // decoding.
    if let Ok(manifest) = Manifest::decode(data) {
        if manifest.version != MANIFEST_VERSION_V1 {
            let again = codec::encode::<_, MAX_MANIFEST_BYTES>(&manifest).unwrap();
            assert_eq!(again, data);
        }
        if manifest.validate().is_ok() {
            // Playlists of any valid manifest are generated without panicking.
            let _ = hls::master_playlist(&manifest, |i, _| Some(i.to_string()));
            for i in 0..manifest.tracks.len() {
                let _ = hls::media_playlist(&manifest, i as u16, |s, _| s.hash.to_string());
            }
        }
        let _ = (manifest.duration_ms(), manifest.segment_count());
    }
});
