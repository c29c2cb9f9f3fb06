//! libp2p segment request frames (`/reelnet/segment/2`) from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::{decode_p2p_request, encode_p2p_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((request, used))) = decode_p2p_request(data) {
        assert!(used <= data.len());
        assert_eq!(encode_p2p_request(&request).unwrap(), &data[..used]);
    }
});
