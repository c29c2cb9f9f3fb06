//! Segment outboards (verified streaming, `/reelnet/segment/2` answers) from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::outboard::{group_range, outboard_len, Outboard};
use reelnet_proto::SegmentHash;

fuzz_target!(|data: &[u8]| {
    // 4 bytes of size (so sizes stay small enough to matter), 32 of root, then the outboard.
    let Some((head, rest)) = data.split_first_chunk::<36>() else {
        return;
    };
    let size = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
    let mut root = [0u8; 32];
    root.copy_from_slice(&head[4..]);
    let root = SegmentHash(root);
    if let Ok(ob) = Outboard::decode(rest, size, &root) {
        assert_eq!(rest.len(), outboard_len(size));
        assert_eq!(ob.to_bytes(), rest);
        let (s, e) = group_range(size, 0);
        let zeros = vec![0u8; e - s];
        let _ = ob.verify_group(&root, 0, &zeros);
        let _ = ob.verify_group(&root, usize::MAX, &zeros);
    }
});
