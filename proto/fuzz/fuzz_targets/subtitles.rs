//! Sidecar subtitle files come from torrents: every format's parser must take any bytes
//! without panicking, stay within its limits, and produce well-formed WebVTT segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelnet_proto::subtitles::{
    ass_event_to_vtt, parse_sidecar, parse_sidecar_name, vtt_segment, SubtitleFormat,
    MAX_CUES,
};

fuzz_target!(|data: &[u8]| {
    for format in [SubtitleFormat::Srt, SubtitleFormat::WebVtt, SubtitleFormat::Ass] {
        if let Ok(cues) = parse_sidecar(data, format) {
            assert!(!cues.is_empty() && cues.len() <= MAX_CUES);
            for c in &cues {
                assert!(c.start_ms >= 0 && c.end_ms > c.start_ms);
                assert!(!c.text.contains("\n\n") && !c.text.contains("-->"));
            }
            let seg = vtt_segment(&cues, 0, 10_000, 90_000);
            assert!(seg.starts_with("WEBVTT\n"));
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = ass_event_to_vtt(&text);
    let _ = parse_sidecar_name(&text, "Movie");
});
