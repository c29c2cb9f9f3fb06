//! HLS playlists generated from a manifest, so any node that holds the manifest writes the
//! same playlists. Pure text generation: where the URIs point (and which query, such as a
//! playback token, they carry) is the caller's choice.

use std::fmt::Write;

use crate::manifest::{Container, Manifest, SegmentEntry, Track};

/// The master playlist: one variant per track for which `variant_uri` returns a URI (a
/// caller filters renditions, e.g. by the viewer's tier, by returning `None`).
pub fn master_playlist(
    manifest: &Manifest,
    variant_uri: impl Fn(u16, &Track) -> Option<String>,
) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, track) in manifest.tracks.iter().enumerate() {
        let Ok(index) = u16::try_from(i) else { break };
        let Some(uri) = variant_uri(index, track) else {
            continue;
        };
        let r = &track.rendition;
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", r.bandwidth.max(1));
        if !r.is_audio_only() {
            let _ = write!(out, ",RESOLUTION={}x{}", r.width, r.height);
        }
        if !r.codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", r.codecs);
        }
        if r.frame_rate_milli > 0 {
            let _ = write!(
                out,
                ",FRAME-RATE={:.3}",
                f64::from(r.frame_rate_milli) / 1000.0
            );
        }
        let _ = write!(out, "\n{uri}\n");
    }
    out
}

/// The media playlist of one track: EVENT while the manifest is growing, VOD with
/// `#EXT-X-ENDLIST` once it is complete. `segment_uri(entry, is_init)` names each segment.
/// `None` when the track does not exist.
pub fn media_playlist(
    manifest: &Manifest,
    track: u16,
    segment_uri: impl Fn(&SegmentEntry, bool) -> String,
) -> Option<String> {
    let t = manifest.tracks.get(usize::from(track))?;
    // EXTINF values rounded to the nearest integer must not exceed the target duration.
    let longest_ms = t
        .segments
        .iter()
        .map(|s| s.duration_ms)
        .chain([manifest.target_duration_ms])
        .max()
        .unwrap_or(0);
    let target = longest_ms.div_ceil(1000).max(1);
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        if manifest.complete { "VOD" } else { "EVENT" }
    );
    if let (Container::Fmp4, Some(init)) = (manifest.container, &t.init) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", segment_uri(init, true));
    }
    for seg in &t.segments {
        let _ = write!(
            out,
            "#EXTINF:{:.3},\n{}\n",
            f64::from(seg.duration_ms) / 1000.0,
            segment_uri(seg, false)
        );
    }
    if manifest.complete {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MovieId, NodeId, SegmentHash};
    use crate::manifest::Rendition;

    fn manifest(complete: bool) -> Manifest {
        let seg = |n: u8, ms| SegmentEntry {
            hash: SegmentHash::of(&[n]),
            duration_ms: ms,
            size: 10,
        };
        let track = |name: &str, h: u32, bw: u32| Track {
            rendition: Rendition {
                name: name.into(),
                width: h * 16 / 9,
                height: h,
                bandwidth: bw,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                frame_rate_milli: 30_000,
            },
            init: Some(seg(0, 1)),
            segments: vec![seg(1, 4000), seg(2, 4400), seg(3, 1500)],
        };
        Manifest {
            version: 1,
            movie: MovieId::from_tmdb(603),
            title: "The Matrix".into(),
            year: Some(1999),
            origin: NodeId([1; 32]),
            ingest_id: [2; 16],
            seq: 3,
            created_at: 0,
            container: Container::Fmp4,
            target_duration_ms: 4000,
            tracks: vec![track("720p", 720, 3_000_000), track("360p", 360, 800_000)],
            complete,
            meta: Default::default(),
        }
    }

    #[test]
    fn master_lists_chosen_variants() {
        let m = manifest(true);
        let text = master_playlist(&m, |i, _| (i == 1).then(|| format!("v{i}.m3u8?t=x")));
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.contains("BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=30.000\nv1.m3u8?t=x\n"));
        assert!(!text.contains("720"));
    }

    #[test]
    fn media_playlist_event_then_vod() {
        let uri = |s: &SegmentEntry, init: bool| {
            format!("{}{}", s.hash, if init { ".mp4" } else { ".m4s" })
        };
        let event = media_playlist(&manifest(false), 0, uri).unwrap_or_default();
        assert!(event.contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
        assert!(!event.contains("ENDLIST"));
        // 4.4 s rounds to 4, but the target must cover ceil(4.4) = 5.
        assert!(event.contains("#EXT-X-TARGETDURATION:5\n"));
        assert!(event.contains("#EXT-X-MAP:URI=\""));
        assert!(event.contains("#EXTINF:4.400,\n"));
        let vod = media_playlist(&manifest(true), 0, uri).unwrap_or_default();
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.ends_with("#EXT-X-ENDLIST\n"));
        assert!(media_playlist(&manifest(true), 5, uri).is_none());
    }
}
