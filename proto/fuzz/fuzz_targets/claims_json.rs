//! JWT claim sets (the JSON payload of a token) from untrusted bytes, size-checked first as
//! callers must.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::{Claims, MAX_TOKEN_BYTES};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_TOKEN_BYTES {
        return;
    }
    if let Ok(claims) = serde_json::from_slice::<Claims>(data) {
        let json = serde_json::to_vec(&claims).unwrap();
        assert_eq!(serde_json::from_slice::<Claims>(&json).unwrap(), claims);
    }
});
