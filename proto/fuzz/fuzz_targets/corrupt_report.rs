//! QUIC corruption report frames (receiver → provider on a unidirectional stream) from
//! untrusted bytes: never a panic, a decoded report is no longer than its input, and it
//! re-encodes to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::{decode_report, encode_report};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((report, used))) = decode_report(data) {
        assert!(used <= data.len());
        assert_eq!(encode_report(&report).unwrap(), &data[..used]);
    }
});
