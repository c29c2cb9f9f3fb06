//! HLS playlists generated from a manifest, so any node that holds the manifest writes the
//! same playlists. Pure text generation: where the URIs point (and which query, such as a
//! playback token, they carry) is the caller's choice.

use std::fmt::Write;

use crate::manifest::{Container, Manifest, MediaInfo, SegmentEntry, Track, TrackKind};

/// `CHARACTERISTICS` of a described-video audio rendition.
pub const DESCRIBES_VIDEO: &str = "public.accessibility.describes-video";
/// `CHARACTERISTICS` of SDH subtitles.
pub const TRANSCRIBES_DIALOG: &str =
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

/// The master playlist. `variant_uri` is asked for every track and a caller filters
/// tracks (e.g. video rungs by the viewer's tier) by returning `None`.
///
/// - Audio tracks become `EXT-X-MEDIA:TYPE=AUDIO` lines in their group, subtitle tracks
///   `EXT-X-MEDIA:TYPE=SUBTITLES`; thumbnail tracks are not listed (the gateway serves
///   their WebVTT index separately).
/// - Every video rung gets one `EXT-X-STREAM-INF` per audio group (groups in the order
///   of their first track), with `AUDIO`, the group's codec added to `CODECS` and its
///   highest bandwidth added to `BANDWIDTH`; `SUBTITLES` when a subtitle rendition is
///   listed. Without audio tracks (v1 manifests: audio muxed in) a rung is listed alone.
/// - Without video rungs (an audio-only source) each audio group's variant is its default
///   (else first) rendition.
pub fn master_playlist(
    manifest: &Manifest,
    variant_uri: impl Fn(u16, &Track) -> Option<String>,
) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let listed: Vec<(u16, &Track, String)> = manifest
        .tracks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let i = u16::try_from(i).ok()?;
            Some((i, t, variant_uri(i, t)?))
        })
        .collect();
    // Audio groups in order of appearance: (group, codecs, bandwidth, variant uri).
    let mut groups: Vec<(&str, &str, u32, &str)> = Vec::new();
    let mut subtitle_group: Option<&str> = None;
    for (_, track, uri) in &listed {
        let Some(media) = &track.media else { continue };
        match track.kind {
            TrackKind::Audio => {
                write_media(&mut out, "AUDIO", media, uri);
                let bw = track.rendition.bandwidth;
                match groups.iter_mut().find(|g| g.0 == media.group) {
                    Some(g) => {
                        g.2 = g.2.max(bw);
                        if media.default {
                            g.3 = uri;
                        }
                    }
                    None => groups.push((&media.group, &track.rendition.codecs, bw, uri)),
                }
            }
            TrackKind::Subtitles => {
                write_media(&mut out, "SUBTITLES", media, uri);
                subtitle_group.get_or_insert(&media.group);
            }
            TrackKind::Video | TrackKind::Thumbnails(_) => {}
        }
    }
    // Every audio group offers every language (HLS authoring rule; hls.js lists only the
    // playing group's tracks): a stream with no rendition in a group (a stereo-only source
    // in the surround group) is listed there with its rendition from the first group.
    if groups.len() > 1 {
        let audio: Vec<(&MediaInfo, &str)> = listed
            .iter()
            .filter(|(_, t, _)| t.kind == TrackKind::Audio)
            .filter_map(|(_, t, uri)| Some((t.media.as_ref()?, uri.as_str())))
            .collect();
        let first = groups[0].0;
        for (group, _, _, _) in groups.iter().skip(1) {
            let members: Vec<&MediaInfo> = audio
                .iter()
                .filter(|(m, _)| m.group == *group)
                .map(|(m, _)| *m)
                .collect();
            let has_default = members.iter().any(|m| m.default);
            for (m, uri) in audio.iter().filter(|(m, _)| m.group == first) {
                let present = members
                    .iter()
                    .any(|o| o.name == m.name && o.language == m.language);
                if !present {
                    let mut copy = (*m).clone();
                    copy.group = (*group).to_owned();
                    copy.default = m.default && !has_default;
                    write_media(&mut out, "AUDIO", &copy, uri);
                }
            }
        }
    }
    let subs = subtitle_group
        .map(|g| format!(",SUBTITLES=\"{g}\""))
        .unwrap_or_default();
    let videos: Vec<&(u16, &Track, String)> =
        listed.iter().filter(|(_, t, _)| t.is_video()).collect();
    if videos.is_empty() {
        for (group, codecs, bandwidth, uri) in &groups {
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{codecs}\",AUDIO=\"{group}\"{subs}\n{uri}\n",
                bandwidth.max(&1)
            );
        }
        return out;
    }
    for (_, track, uri) in videos {
        let r = &track.rendition;
        let muxed = r.is_audio_only() || groups.is_empty();
        let audio: Vec<Option<&(&str, &str, u32, &str)>> = if muxed {
            vec![None]
        } else {
            groups.iter().map(Some).collect()
        };
        for group in audio {
            let bandwidth = r.bandwidth.saturating_add(group.map_or(0, |g| g.2)).max(1);
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth}");
            if !r.is_audio_only() {
                let _ = write!(out, ",RESOLUTION={}x{}", r.width, r.height);
            }
            match group {
                Some((_, codecs, _, _)) => {
                    let _ = write!(out, ",CODECS=\"{},{codecs}\"", r.codecs);
                }
                None => {
                    let _ = write!(out, ",CODECS=\"{}\"", r.codecs);
                }
            }
            if r.frame_rate_milli > 0 {
                let _ = write!(
                    out,
                    ",FRAME-RATE={:.3}",
                    f64::from(r.frame_rate_milli) / 1000.0
                );
            }
            if let Some((g, _, _, _)) = group {
                let _ = write!(out, ",AUDIO=\"{g}\"");
            }
            let _ = write!(out, "{subs}\n{uri}\n");
        }
    }
    out
}

fn write_media(out: &mut String, kind: &str, media: &MediaInfo, uri: &str) {
    let mut name = media.name.clone();
    if media.has(MediaInfo::COMMENTARY) && !name.to_ascii_lowercase().contains("commentary") {
        name.push_str(" (Commentary)");
    }
    let yes = |b: bool| if b { "YES" } else { "NO" };
    let _ = write!(
        out,
        "#EXT-X-MEDIA:TYPE={kind},GROUP-ID=\"{}\",NAME=\"{name}\"",
        media.group
    );
    if let Some(lang) = &media.language {
        let _ = write!(out, ",LANGUAGE=\"{lang}\"");
    }
    // DEFAULT=YES requires AUTOSELECT=YES.
    let _ = write!(
        out,
        ",DEFAULT={},AUTOSELECT={}",
        yes(media.default),
        yes(media.default || media.autoselect)
    );
    if kind == "SUBTITLES" {
        let _ = write!(out, ",FORCED={}", yes(media.forced));
    } else {
        let _ = write!(out, ",CHANNELS=\"{}\"", media.channels);
    }
    let mut characteristics = Vec::new();
    if media.has(MediaInfo::DESCRIBES_VIDEO) {
        characteristics.push(DESCRIBES_VIDEO);
    }
    if media.has(MediaInfo::HEARING_IMPAIRED) {
        characteristics.push(TRANSCRIBES_DIALOG);
    }
    if !characteristics.is_empty() {
        let _ = write!(out, ",CHARACTERISTICS=\"{}\"", characteristics.join(","));
    }
    let _ = writeln!(out, ",URI=\"{uri}\"");
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
    // Subtitle and thumbnail tracks have no init segment, so no EXT-X-MAP.
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
            kind: crate::manifest::TrackKind::Video,
            media: None,
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
            version: crate::manifest::MANIFEST_VERSION,
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

    #[test]
    fn master_lists_audio_and_subtitle_renditions() {
        use crate::manifest::{MediaInfo, AUDIO_GROUP_STEREO};
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let mut m = crate::manifest::tests::typed(&key);
        // A second stereo rendition: commentary, and a described-video one.
        let mut comm = m.tracks[1].clone();
        comm.rendition.name = "a-comm-2".into();
        comm.rendition.bandwidth = 96_000;
        comm.media = Some(MediaInfo {
            name: "Director".into(),
            characteristics: MediaInfo::COMMENTARY | MediaInfo::DESCRIBES_VIDEO,
            ..m.tracks[1].media.clone().unwrap()
        });
        m.tracks.insert(2, comm);
        if let Some(media) = m.tracks[1].media.as_mut() {
            media.default = true;
            media.autoselect = false;
        }
        m.validate().unwrap();
        let text = master_playlist(&m, |i, t| Some(format!("{}/{i}.m3u8", t.rendition.name)));
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-stereo\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"a-en-2/1.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-stereo\",NAME=\"Director (Commentary)\",LANGUAGE=\"en\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",CHARACTERISTICS=\"public.accessibility.describes-video\",URI=\"a-comm-2/2.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-surround\",NAME=\"Deutsch\",LANGUAGE=\"de\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"6\",URI=\"a-de-6/3.m3u8\"\n\
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI=\"sub-en/4.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-surround\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"a-en-2/1.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-surround\",NAME=\"Director (Commentary)\",LANGUAGE=\"en\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",CHARACTERISTICS=\"public.accessibility.describes-video\",URI=\"a-comm-2/2.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=256000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"aud-stereo\",SUBTITLES=\"subs\"\n360p/0.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=256000,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"aud-surround\",SUBTITLES=\"subs\"\n360p/0.m3u8\n"
        );
        // The surround group offers every language too: the stereo-only English streams are
        // listed there with their stereo renditions.
        assert!(!text.contains("thumbs"));
        // A viewer's filter still drops rungs; an audio-only movie lists its groups.
        let none = master_playlist(&m, |i, t| (!t.is_video()).then(|| format!("{i}")));
        assert!(none.contains(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\",AUDIO=\"{AUDIO_GROUP_STEREO}\",SUBTITLES=\"subs\"\n1\n"
        )));
        // Subtitle media playlists have no EXT-X-MAP and name .vtt segments.
        let vtt = media_playlist(&m, 4, |s, _| format!("{}.vtt", s.hash)).unwrap();
        assert!(!vtt.contains("EXT-X-MAP") && vtt.contains(".vtt\n"));
    }
}
