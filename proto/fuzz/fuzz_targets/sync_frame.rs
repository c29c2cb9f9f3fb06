//! Catalog sync frames (requests and response pages) from untrusted bytes.
//!
//! Decoding must never panic; anything that decodes must re-encode to exactly the bytes it
//! came from (canonical encodings only), and a frame's body is never longer than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::codec::FRAME_PREFIX_LEN;
use reelnet_proto::sync::{SyncFrame, SyncRequest, SyncResponse};

fn check<T: SyncFrame + PartialEq + std::fmt::Debug>(data: &[u8]) {
    // As a framed stream prefix, the way the node's adapter sees it.
    if let Ok(Some((value, used))) = T::decode_frame(data) {
        assert!(used >= FRAME_PREFIX_LEN && used <= data.len());
        assert!(used - FRAME_PREFIX_LEN <= T::MAX_BODY);
        assert_eq!(value.encode_frame().unwrap(), &data[..used]);
    }
    // As a whole body (after the adapter has read `body_len` bytes).
    if let Ok(value) = T::decode_body(data) {
        let frame = value.encode_frame().unwrap();
        assert_eq!(&frame[FRAME_PREFIX_LEN..], data);
        assert_eq!(T::decode_frame(&frame), Ok(Some((value, frame.len()))));
    }
    if let Some(prefix) = data.first_chunk::<FRAME_PREFIX_LEN>() {
        if let Ok(len) = T::body_len(*prefix) {
            assert!(len <= T::MAX_BODY);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check::<SyncRequest>(data);
    check::<SyncResponse>(data);
});
