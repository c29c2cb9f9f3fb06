//! Watch-party WebSocket frames (text frames from any signed-in browser) from untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_tracker::rooms::ClientFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
            // JSON has no NaN or infinity; a number too large for f64 is refused, not
            // turned into infinity, so positions and clocks are always finite.
            match frame {
                ClientFrame::Ping { t0, rtt } => {
                    assert!(t0.is_finite() && rtt.is_none_or(f64::is_finite));
                }
                ClientFrame::Play { position } | ClientFrame::Pause { position } => {
                    assert!(position.is_none_or(f64::is_finite));
                }
                ClientFrame::Seek { position } => assert!(position.is_finite()),
                _ => {}
            }
        }
    }
});
