//! The billing webhook's `Reelnet-Signature` header and body from untrusted bytes: the header
//! is the input up to the first newline, the body the rest. Parsing never panics, and only a
//! header carrying the right MAC over this body verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_tracker::billing_signature::{sign, verify};

const SECRET: &[u8] = b"fuzz-webhook-secret";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if verify(SECRET, Some(header), body, NOW, 300).is_ok() {
        // Only possible when the fuzzer reproduced a real MAC: check it against `sign`.
        let ts = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("t=")?.parse::<u64>().ok())
            .unwrap();
        let good = sign(SECRET, ts, body);
        let mac = good.split_once("v1=").unwrap().1;
        assert!(header.contains(mac));
    }
    // A correct signature for this body always verifies.
    verify(SECRET, Some(&sign(SECRET, NOW, body)), body, NOW, 300).unwrap();
});
