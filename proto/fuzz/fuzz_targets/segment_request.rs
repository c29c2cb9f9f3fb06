//! QUIC segment request frames from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::{decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((request, used))) = decode_request(data) {
        assert!(used <= data.len());
        assert_eq!(encode_request(&request).unwrap(), &data[..used]);
    }
});
