//! Subtitles and seek thumbnails against real FFmpeg: an MKV made with the `ffmpeg` CLI
//! holding a SubRip English stream, an ASS French (forced) stream, a PGS stream (a `.sup`
//! written here) and a VobSub (dvdsub) stream made from it, plus a Latin-1 `Movie.es.srt`
//! beside it. The transcoder's WebVTT segments must carry every cue at its source time
//! (±100 ms) in every segment it overlaps, with an `X-TIMESTAMP-MAP` that matches the video
//! segments' real timestamps; the image streams are reported as not supported; thumbnail
//! sheets are JPEGs of the expected size whose tile `k` shows the frame at `k × interval`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use reelnet_node::ingest::sidecar::{find_sidecars, load_sidecars};
use reelnet_node::ingest::transcode::{
    probe, probe_subtitles, transcode_with, Extras, LadderConfig, Rung, ThumbnailConfig,
    ThumbnailLayout, TranscodeEvent,
};
use reelnet_proto::Container;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PGS (`.sup`) file: one 64×16 opaque white box shown from `start` to `end` seconds.
fn pgs_sup(start: f64, end: f64) -> Vec<u8> {
    fn seg(out: &mut Vec<u8>, pts: u32, kind: u8, data: &[u8]) {
        out.extend_from_slice(b"PG");
        out.extend_from_slice(&pts.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let (w, h) = (64u16, 16u16);
    let mut out = Vec::new();
    let pts = (start * 90_000.0) as u32;
    let mut pcs = Vec::new();
    pcs.extend_from_slice(&320u16.to_be_bytes());
    pcs.extend_from_slice(&180u16.to_be_bytes());
    pcs.extend_from_slice(&[0x10, 0, 1, 0x80, 0, 0, 1]);
    pcs.extend_from_slice(&[0, 0, 0, 0]); // object 0, window 0, not cropped
    pcs.extend_from_slice(&10u16.to_be_bytes());
    pcs.extend_from_slice(&150u16.to_be_bytes());
    seg(&mut out, pts, 0x16, &pcs);
    let mut wds = vec![1, 0];
    for v in [10u16, 150, w, h] {
        wds.extend_from_slice(&v.to_be_bytes());
    }
    seg(&mut out, pts, 0x17, &wds);
    seg(&mut out, pts, 0x14, &[0, 0, 1, 235, 128, 128, 255]);
    let mut rle = Vec::new();
    for _ in 0..h {
        rle.extend_from_slice(&[0x00, 0xC0 | ((w >> 8) as u8 & 0x3f), w as u8, 1, 0x00, 0x00]);
    }
    let mut ods = vec![0, 0, 0, 0xC0];
    let len = rle.len() as u32 + 4;
    ods.extend_from_slice(&len.to_be_bytes()[1..]);
    ods.extend_from_slice(&w.to_be_bytes());
    ods.extend_from_slice(&h.to_be_bytes());
    ods.extend_from_slice(&rle);
    seg(&mut out, pts, 0x15, &ods);
    seg(&mut out, pts, 0x80, &[]);
    // Clear at `end`.
    let pts = (end * 90_000.0) as u32;
    let mut pcs = Vec::new();
    pcs.extend_from_slice(&320u16.to_be_bytes());
    pcs.extend_from_slice(&180u16.to_be_bytes());
    pcs.extend_from_slice(&[0x10, 0, 2, 0x00, 0, 0, 0]);
    seg(&mut out, pts, 0x16, &pcs);
    let mut wds = vec![1, 0];
    for v in [10u16, 150, w, h] {
        wds.extend_from_slice(&v.to_be_bytes());
    }
    seg(&mut out, pts, 0x17, &wds);
    seg(&mut out, pts, 0x80, &[]);
    out
}

const SRT_EN: &str = "1\n00:00:01,000 --> 00:00:02,500\nHello <i>there</i>\n\n2\n00:00:03,500 --> 00:00:04,500\nAcross the first boundary\n\n3\n00:00:09,000 --> 00:00:10,000\nNine & ten\n";

const ASS_FR: &str = "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 180\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:05.00,0:00:06.00,Default,,0,0,0,,{\\i1}Bonjour{\\i0} {\\pos(10,10)}le monde\nDialogue: 0,0:00:07.50,0:00:08.50,Default,,0,0,0,,{\\b1}Deux{\\b0}\\Nsegments\n";

/// `HH:MM:SS.mmm` → ms.
fn vtt_ms(s: &str) -> i64 {
    let (hms, ms) = s.split_once('.').unwrap();
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    ((p[0] * 60 + p[1]) * 60 + p[2]) * 1000 + ms.parse::<i64>().unwrap()
}

/// The cues of one WebVTT segment: (start ms, end ms, text), after checking the header.
fn cues_of(seg: &str) -> Vec<(i64, i64, String)> {
    let mut blocks = seg.split("\n\n");
    let header = blocks.next().unwrap();
    assert_eq!(
        header.trim_end(),
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000"
    );
    blocks
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let (timing, text) = b.split_once('\n').unwrap();
            let (a, z) = timing.split_once(" --> ").unwrap();
            (vtt_ms(a), vtt_ms(z), text.trim_end().to_owned())
        })
        .collect()
}

/// The first video pts (s) of an fMP4 segment, as ffprobe reads init + segment.
fn first_pts(init: &[u8], seg: &[u8], scratch: &Path) -> f64 {
    let p = scratch.join("probe.mp4");
    std::fs::write(&p, [init, seg].concat()).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min)
}

/// Mean luma of each tile of a JPEG sheet (decoded to gray by the ffmpeg CLI); checks the
/// sheet's size.
fn tile_lumas(jpeg: &[u8], l: &ThumbnailLayout, scratch: &Path) -> Vec<f64> {
    let (tw, th) = (usize::from(l.tile_width), usize::from(l.tile_height));
    let (cols, rows) = (usize::from(l.columns), usize::from(l.rows));
    let src = scratch.join("sheet.jpg");
    std::fs::write(&src, jpeg).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mjpeg,{},{}", tw * cols, th * rows)
    );
    let raw = scratch.join("sheet.gray");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        raw.to_str().unwrap(),
    ]);
    let px = std::fs::read(&raw).unwrap();
    assert_eq!(px.len(), tw * cols * th * rows);
    let mut out = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let mut sum = 0u64;
            // The tile's centre half, away from JPEG ringing at the edges.
            for y in th / 4..th * 3 / 4 {
                for x in tw / 4..tw * 3 / 4 {
                    sum += u64::from(px[(r * th + y) * tw * cols + c * tw + x]);
                }
            }
            out.push(sum as f64 / ((th / 2) * (tw / 2)) as f64);
        }
    }
    out
}

#[test]
fn subtitle_streams_sidecars_and_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    std::fs::write(d("en.srt"), SRT_EN).unwrap();
    std::fs::write(d("fr.ass"), ASS_FR).unwrap();
    std::fs::write(d("pgs.sup"), pgs_sup(2.0, 3.0)).unwrap();
    // Luma steps up every second (16 + 8·s), so a tile tells which second it shows.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "nullsrc=s=320x180:r=25:d=14,format=gray,geq=lum='16+8*floor(T)',format=yuv420p",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=14",
        "-i",
        &d("en.srt"),
        "-i",
        &d("fr.ass"),
        // No -fix_sub_duration: the dvdsub encoder then writes a never-ending last packet
        // (the PGS decoder does not know when a picture ends) and the MKV claims to last
        // 49 days, as real files do; the transcoder takes the duration of the picture and
        // sound streams instead of calling the movie truncated.
        "-i",
        &d("pgs.sup"),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2",
        "-map",
        "3",
        "-map",
        "4",
        "-map",
        "4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-c:s:0",
        "srt",
        "-c:s:1",
        "ass",
        "-c:s:2",
        "copy",
        "-c:s:3",
        "dvdsub",
        "-metadata:s:s:0",
        "language=eng",
        "-metadata:s:s:1",
        "language=fre",
        "-disposition:s:1",
        "forced",
        "-metadata:s:s:2",
        "language=ger",
        &d("Movie.mkv"),
    ]);
    // The Spanish sidecar, in Latin-1.
    std::fs::write(
        d("Movie.es.srt"),
        b"1\r\n00:00:12,500 --> 00:00:13,500\r\nEl ni\xf1o est\xe1 aqu\xed\r\n",
    )
    .unwrap();

    let input = d("Movie.mkv");
    let config = LadderConfig {
        rungs: vec![Rung {
            // Below the source's 180 lines: encoded, not remuxed, so frames are decoded.
            name: "144p".into(),
            height: 144,
            video_bitrate: 300_000,
            audio_bitrate: 64_000,
        }],
        segment_secs: 4,
        container: Container::Fmp4,
        preset: "ultrafast".into(),
    };
    let plan = probe(&input, &config).unwrap();
    // The video rung, then the audio rendition(s); subtitles and thumbnails come after.
    assert!(!plan.renditions[0].is_audio_only());
    let base = plan.renditions.len();
    let subs = probe_subtitles(&input).unwrap();
    let langs: Vec<_> = subs
        .tracks
        .iter()
        .map(|t| (t.name.as_str(), t.language.as_deref(), t.forced))
        .collect();
    assert_eq!(
        langs,
        [
            ("subs-en", Some("en"), false),
            ("subs-fr-forced", Some("fr"), true)
        ]
    );
    let unsupported: Vec<_> = subs.unsupported.iter().map(|u| u.codec.as_str()).collect();
    assert_eq!(unsupported, ["pgssub", "dvdsub"], "{:?}", subs.unsupported);
    assert!(subs.unsupported[0].to_string().contains("not supported"));

    let taken: Vec<String> = subs.tracks.iter().map(|t| t.name.clone()).collect();
    let sidecars = load_sidecars(&find_sidecars(Path::new(&input)), "Movie", &taken);
    assert_eq!(sidecars.len(), 1);
    assert_eq!(sidecars[0].language.as_deref(), Some("es"));
    let mut tracks = subs.tracks.clone();
    tracks.extend(sidecars);

    let thumbs = ThumbnailConfig {
        enabled: true,
        interval_s: 2,
        tile_width: 64,
        columns: 3,
        rows: 2,
    };
    let layout = ThumbnailLayout::for_video(&thumbs, 320, 180).unwrap();
    assert_eq!((layout.tile_width, layout.tile_height), (64, 36));
    let extras = Extras {
        subtitles: tracks,
        thumbnails: Some(layout),
    };
    let n = base + 3 + 1;
    let mut segs: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    let mut durations: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut init = None;
    // Subtitle segment i must come right after video segment i (it grows with the video).
    let mut order = Vec::new();
    transcode_with(
        &input,
        &config,
        &plan,
        &extras,
        &AtomicBool::new(false),
        &mut |ev| {
            match ev {
                TranscodeEvent::Init { track: 0, bytes } => init = Some(bytes),
                TranscodeEvent::Init { track, .. } => {
                    assert!(track < base, "init for track {track}")
                }
                TranscodeEvent::Segment {
                    track,
                    index,
                    bytes,
                    duration_ms,
                } => {
                    assert_eq!(index as usize, segs[track].len());
                    segs[track].push(bytes);
                    durations[track].push(duration_ms);
                    order.push((track, index));
                }
                TranscodeEvent::Progress { .. } => {}
            }
            Ok(())
        },
    )
    .unwrap();

    let video = segs[0].len();
    assert!(video >= 3, "{video} video segments");
    for t in base..base + 3 {
        assert_eq!(segs[t].len(), video, "track {t}");
        assert_eq!(durations[t], durations[0], "track {t}");
    }
    for (i, w) in order.windows(4).enumerate() {
        if w[0].0 == 0 {
            assert_eq!(
                &w[1..],
                [(base, w[0].1), (base + 1, w[0].1), (base + 2, w[0].1)],
                "event {i}"
            );
        }
    }

    // The X-TIMESTAMP-MAP claim: local (source) time 0 is MPEG-TS 90000, i.e. the video's
    // muxed timestamps are the source's plus 1 s; segment i starts at the sum of the
    // durations before it.
    let init = init.unwrap();
    let mut start_ms = 0i64;
    for (i, seg) in segs[0].iter().enumerate() {
        let pts = first_pts(&init, seg, dir.path());
        assert!(
            (pts - 1.0 - start_ms as f64 / 1000.0).abs() < 0.05,
            "video segment {i} starts at {pts}, expected {}",
            1.0 + start_ms as f64 / 1000.0
        );
        start_ms += i64::from(durations[0][i]);
    }

    // Cues at their source times (±100 ms), in every segment they overlap.
    let check = |track: usize, want: &[(i64, i64, &str)]| {
        let mut seen: Vec<(i64, i64, String)> = Vec::new();
        let mut seg_start = 0i64;
        for (i, bytes) in segs[track].iter().enumerate() {
            let seg_end = seg_start + i64::from(durations[track][i]);
            let text = std::str::from_utf8(bytes).unwrap();
            for cue in cues_of(text) {
                assert!(
                    cue.0 < seg_end && cue.1 > seg_start,
                    "track {track} segment {i} [{seg_start}, {seg_end}) holds {cue:?}"
                );
                if !seen.contains(&cue) {
                    seen.push(cue);
                }
            }
            for w in want {
                if w.0 < seg_end && w.1 > seg_start {
                    assert!(
                        cues_of(text).iter().any(|c| c.2 == w.2),
                        "track {track} segment {i} lacks {w:?}: {text:?}"
                    );
                }
            }
            seg_start = seg_end;
        }
        assert_eq!(seen.len(), want.len(), "track {track}: {seen:?}");
        for (got, w) in seen.iter().zip(want) {
            assert!(
                (got.0 - w.0).abs() <= 100 && (got.1 - w.1).abs() <= 100,
                "track {track}: {got:?} vs {w:?}"
            );
            assert_eq!(got.2, w.2);
        }
    };
    check(
        base,
        &[
            (1000, 2500, "Hello <i>there</i>"),
            (3500, 4500, "Across the first boundary"),
            (9000, 10000, "Nine &amp; ten"),
        ],
    );
    check(
        base + 1,
        &[
            (5000, 6000, "<i>Bonjour</i> le monde"),
            (7500, 8500, "<b>Deux</b>\nsegments"),
        ],
    );
    check(base + 2, &[(12500, 13500, "El niño está aquí")]);

    // Thumbnails: 14 s at one every 2 s = 7 tiles, 3×2 per sheet → 2 sheets (6 + 1).
    let sheets = &segs[base + 3];
    assert_eq!(sheets.len(), 2);
    assert_eq!(durations[base + 3], [12_000, 2_000]);
    let mut k = 0;
    for sheet in sheets {
        assert_eq!(&sheet[..2], &[0xff, 0xd8], "a JPEG");
        for luma in tile_lumas(sheet, &layout, dir.path()) {
            if k >= 7 {
                assert!(luma < 8.0, "unused tile {k} is black ({luma})");
            } else {
                // The source's luma 16 + 8·s (the tiles keep the source's luma values).
                let want = 16.0 + 8.0 * (2 * k) as f64;
                assert!(
                    (luma - want).abs() < 4.0,
                    "tile {k}: luma {luma}, the frame at {} s has {want}",
                    2 * k
                );
            }
            k += 1;
        }
    }
}
