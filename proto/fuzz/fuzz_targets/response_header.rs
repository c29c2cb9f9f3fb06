//! QUIC segment response header frames from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::{decode_response_header, encode_response_header, MAX_SEGMENT_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((header, used))) = decode_response_header(data) {
        assert!(used <= data.len());
        assert!(header.length <= MAX_SEGMENT_BYTES);
        assert_eq!(encode_response_header(&header).unwrap(), &data[..used]);
    }
});
