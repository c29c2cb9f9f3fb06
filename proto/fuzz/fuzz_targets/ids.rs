//! Movie, node, manifest and segment ids as they arrive in URL paths, query strings and
//! JSON: parsing never panics, and whatever parses prints back to exactly its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::{ManifestId, MovieId, NodeId, SegmentHash};

fn canonical<T: std::str::FromStr + std::fmt::Display>(s: &str) {
    if let Ok(id) = s.parse::<T>() {
        assert_eq!(id.to_string(), s);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = s.parse::<MovieId>() {
        assert_eq!(id.as_str(), s);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<MovieId>(&json).unwrap(), id);
    }
    canonical::<NodeId>(s);
    canonical::<ManifestId>(s);
    canonical::<SegmentHash>(s);
    let _ = serde_json::from_str::<MovieId>(s);
    let _ = serde_json::from_str::<NodeId>(s);
});
