//! The transcoder against real FFmpeg: inputs are generated with the `ffmpeg` CLI, the output
//! is written as HLS (per-track media playlists + a master playlist) and checked end to end
//! with `ffmpeg`/`ffprobe`: it decodes without errors, its duration matches the source, every
//! segment starts with a keyframe at the same time on every track, and segments arrive while
//! the input is still being read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use reelnet_node::ingest::transcode::{
    probe, transcode, LadderConfig, Plan, Rung, Summary, TranscodeError, TranscodeEvent,
};
use reelnet_proto::hls::master_playlist;
use reelnet_proto::{Container, Manifest, MovieId, NodeId, SegmentEntry, SegmentHash, TrackKind};

fn ffmpeg(args: &[&str]) -> bool {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    if !out.status.success() {
        eprintln!("ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

fn gen(dir: &Path, name: &str, args: &[&str]) -> String {
    let path = dir.join(name);
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().unwrap().to_owned();
    all.push(&p);
    assert!(ffmpeg(&all), "could not generate {name}");
    p
}

fn rung(name: &str, height: u32, video_bitrate: u32) -> Rung {
    Rung {
        name: name.into(),
        height,
        video_bitrate,
        audio_bitrate: 64_000,
    }
}

fn small_ladder(container: Container) -> LadderConfig {
    LadderConfig {
        rungs: vec![rung("360p", 360, 600_000), rung("240p", 240, 300_000)],
        segment_secs: 4,
        container,
        preset: "veryfast".into(),
    }
}

#[derive(Default)]
struct Track {
    init: Option<Vec<u8>>,
    segments: Vec<(PathBuf, u32)>,
}

struct Outcome {
    plan: Plan,
    summary: Summary,
    out: PathBuf,
    tracks: Vec<Track>,
    /// Source position (s) reported when the first media segment arrived.
    first_segment_at: Option<f64>,
    last_position: f64,
}

fn run(input: &str, config: &LadderConfig, out: &Path) -> Result<Outcome, TranscodeError> {
    let plan = probe(input, config)?;
    for r in &plan.renditions {
        r.validate().expect("rendition passes proto validation");
    }
    let cancel = AtomicBool::new(false);
    let mut tracks: Vec<Track> = (0..plan.renditions.len())
        .map(|_| Track::default())
        .collect();
    let mut position = 0.0f64;
    let mut first_segment_at = None;
    let ext = config.container.segment_extension();
    for (i, _) in plan.renditions.iter().enumerate() {
        std::fs::create_dir_all(out.join(format!("t{i}"))).unwrap();
    }
    let summary = transcode(input, config, &plan, &cancel, &mut |ev| {
        match ev {
            TranscodeEvent::Init { track, bytes } => {
                assert!(tracks[track].init.is_none(), "one init per track");
                assert!(tracks[track].segments.is_empty(), "init before segments");
                std::fs::write(out.join(format!("t{track}/init.mp4")), &bytes).unwrap();
                tracks[track].init = Some(bytes);
            }
            TranscodeEvent::Segment {
                track,
                index,
                bytes,
                duration_ms,
            } => {
                let t = &mut tracks[track];
                assert_eq!(index as usize, t.segments.len(), "segments in order");
                assert!((1..=60_000).contains(&duration_ms));
                assert!(!bytes.is_empty());
                first_segment_at.get_or_insert(position);
                let path = out.join(format!("t{track}/seg{index}.{ext}"));
                std::fs::write(&path, &bytes).unwrap();
                t.segments.push((path, duration_ms));
            }
            TranscodeEvent::Progress { position_s, .. } => {
                assert!(position_s >= position - 1e-9, "progress moves forward");
                position = position_s;
            }
        }
        Ok(())
    })?;
    // Playlists.
    let fmp4 = config.container == Container::Fmp4;
    for (i, t) in tracks.iter().enumerate() {
        let target = t
            .segments
            .iter()
            .map(|s| s.1)
            .max()
            .unwrap_or(1000)
            .div_ceil(1000);
        let mut pl = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        );
        if fmp4 {
            assert!(t.init.is_some(), "fMP4 track {i} has an init segment");
            pl.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        }
        for (n, (_, d)) in t.segments.iter().enumerate() {
            pl.push_str(&format!(
                "#EXTINF:{:.3},\nseg{n}.{ext}\n",
                f64::from(*d) / 1000.0
            ));
        }
        pl.push_str("#EXT-X-ENDLIST\n");
        std::fs::write(out.join(format!("t{i}/index.m3u8")), pl).unwrap();
    }
    // The master playlist as every node writes it, from the manifest this plan makes.
    let manifest = manifest_of(&plan, &tracks, config);
    manifest
        .validate()
        .expect("the plan makes a valid manifest");
    let master = master_playlist(&manifest, |i, _| Some(format!("t{i}/index.m3u8")));
    std::fs::write(out.join("master.m3u8"), master).unwrap();
    assert_eq!(
        summary.segments_per_track,
        tracks
            .iter()
            .map(|t| t.segments.len() as u32)
            .collect::<Vec<_>>()
    );
    Ok(Outcome {
        plan,
        summary,
        out: out.to_owned(),
        tracks,
        first_segment_at,
        last_position: position,
    })
}

/// The complete manifest of a transcode (segment hashes of the files written).
fn manifest_of(plan: &Plan, tracks: &[Track], config: &LadderConfig) -> Manifest {
    let entry = |bytes: &[u8], duration_ms: u32| SegmentEntry {
        hash: SegmentHash::of(bytes),
        duration_ms,
        size: bytes.len() as u32,
    };
    let mut out = plan.empty_tracks();
    for (m, t) in out.iter_mut().zip(tracks) {
        m.init = t.init.as_deref().map(|b| entry(b, 0));
        m.segments = t
            .segments
            .iter()
            .map(|(p, d)| entry(&std::fs::read(p).unwrap(), *d))
            .collect();
    }
    Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::from_tmdb(1),
        title: "test".into(),
        year: None,
        origin: NodeId([1; 32]),
        ingest_id: [0; 16],
        seq: 1,
        created_at: 0,
        container: config.container,
        target_duration_ms: config.segment_secs * 1000,
        tracks: out,
        complete: true,
        meta: Default::default(),
    }
}

/// Indices of the video tracks.
fn video_tracks(plan: &Plan) -> Vec<usize> {
    (0..plan.kinds.len())
        .filter(|i| plan.kinds[*i] == TrackKind::Video)
        .collect()
}

/// Decodes a playlist end to end; returns its duration per ffprobe.
fn decode_clean(playlist: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(playlist)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}: {err}",
        playlist.display()
    );
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(playlist)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe duration of {}: {s:?}", playlist.display()))
}

/// (pts of the first video packet, keyframe flags of all video packets) of one segment,
/// probed on its own (after the init segment for fMP4).
fn probe_segment(init: Option<&[u8]>, seg: &Path, scratch: &Path) -> (f64, Vec<bool>) {
    let file = match init {
        Some(init) => {
            let mut bytes = init.to_vec();
            bytes.extend(std::fs::read(seg).unwrap());
            let p = scratch.join("probe.mp4");
            std::fs::write(&p, bytes).unwrap();
            p
        }
        None => seg.to_owned(),
    };
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut first = None;
    let mut pts = Vec::new();
    let mut keys = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split(',');
        let t: f64 = f.next().unwrap().parse().unwrap();
        let flags = f.next().unwrap_or("");
        pts.push(t);
        keys.push(flags.contains('K'));
        first.get_or_insert(t);
    }
    let min = pts.iter().cloned().fold(f64::INFINITY, f64::min);
    (min, keys)
}

/// Video tracks: equal segment counts and durations, every segment starts with its only
/// keyframe at the same pts on every track.
fn check_alignment(o: &Outcome, container: Container) {
    let video = video_tracks(&o.plan);
    let n = o.tracks[video[0]].segments.len();
    for &t in &video {
        assert_eq!(o.tracks[t].segments.len(), n, "segment counts differ");
        let d0: Vec<u32> = o.tracks[video[0]].segments.iter().map(|s| s.1).collect();
        let d: Vec<u32> = o.tracks[t].segments.iter().map(|s| s.1).collect();
        assert_eq!(d, d0, "segment durations differ between tracks");
    }
    for i in 0..n {
        let mut starts = Vec::new();
        for &t in &video {
            let init = match container {
                Container::Fmp4 => o.tracks[t].init.as_deref(),
                Container::MpegTs => None,
            };
            let (start, keys) = probe_segment(init, &o.tracks[t].segments[i].0, &o.out);
            assert!(!keys.is_empty(), "track {t} segment {i} has video");
            assert!(
                keys[0],
                "track {t} segment {i} starts with a keyframe: {keys:?}"
            );
            if !o.plan.remux[t] {
                assert_eq!(
                    keys.iter().filter(|k| **k).count(),
                    1,
                    "one keyframe per segment"
                );
            }
            starts.push(start);
        }
        for s in &starts {
            assert!(
                (s - starts[0]).abs() < 0.002,
                "segment {i} starts differ: {starts:?}"
            );
        }
    }
}

fn total_s(t: &Track) -> f64 {
    t.segments.iter().map(|s| f64::from(s.1)).sum::<f64>() / 1000.0
}

fn check_all(o: &Outcome, container: Container, source_s: f64, segment_s: f64) {
    for (i, t) in o.tracks.iter().enumerate() {
        let total = total_s(t);
        assert!(
            (total - source_s).abs() <= segment_s,
            "track {i}: segments sum to {total} s, source {source_s} s"
        );
        let probed = decode_clean(&o.out.join(format!("t{i}/index.m3u8")));
        assert!(
            (probed - source_s).abs() <= segment_s,
            "track {i}: ffprobe says {probed} s, source {source_s} s"
        );
    }
    decode_clean(&o.out.join("master.m3u8"));
    if !video_tracks(&o.plan).is_empty() {
        check_alignment(o, container);
    }
}

#[test]
fn ladder_from_720p_is_progressive_aligned_and_playable() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(
        dir.path(),
        "src.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
        ],
    );
    let config = small_ladder(Container::Fmp4);
    let started = std::time::Instant::now();
    let o = run(&input, &config, dir.path()).unwrap();
    eprintln!(
        "720p → 360p/240p, 20 s: {:?} in {:?}; first segment at source position {:?} s",
        o.summary,
        started.elapsed(),
        o.first_segment_at
    );
    let names: Vec<_> = o
        .plan
        .renditions
        .iter()
        .map(|r| (r.name.as_str(), r.width, r.height))
        .collect();
    assert_eq!(
        names,
        [("360p", 640, 360), ("240p", 426, 240), ("a0-und", 0, 0)]
    );
    assert_eq!(
        o.plan.kinds,
        [TrackKind::Video, TrackKind::Video, TrackKind::Audio]
    );
    assert_eq!(o.plan.remux, [false, false, false]);
    assert!(
        o.plan.renditions[0].codecs.starts_with("avc1.64"),
        "{}",
        o.plan.renditions[0].codecs
    );
    assert!(!o.plan.renditions[0].codecs.contains("mp4a"));
    assert_eq!(o.plan.renditions[2].codecs, "mp4a.40.2");
    assert_eq!(o.plan.audio_copy, Some(false));
    for t in &o.tracks[..2] {
        let d: Vec<u32> = t.segments.iter().map(|s| s.1).collect();
        assert_eq!(d, [4000, 4000, 4000, 4000, 4000]);
    }
    // The audio track is cut on the same multiples, to within an AAC frame.
    let d: Vec<u32> = o.tracks[2].segments.iter().map(|s| s.1).collect();
    // (The source's audio is 8 ms longer than its video: that may be a sixth, tiny segment.)
    assert!((5..=6).contains(&d.len()), "{d:?}");
    assert!(d[..4].iter().all(|ms| ms.abs_diff(4000) <= 25), "{d:?}");
    let first = o.first_segment_at.unwrap();
    assert!(
        first <= 5.0,
        "first segment arrived at source position {first} s"
    );
    assert!(o.last_position > 15.0);
    check_all(&o, Container::Fmp4, 20.0, 4.0);
}

#[test]
fn h264_aac_source_at_a_rung_is_remuxed_fmp4() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(
        dir.path(),
        "src.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
        ],
    );
    let config = small_ladder(Container::Fmp4);
    let o = run(&input, &config, dir.path()).unwrap();
    eprintln!("remux: {:?}", o.summary);
    assert_eq!(o.plan.remux, [true, false, true]);
    assert_eq!(o.plan.audio_copy, Some(true));
    assert!(
        o.plan.renditions[0].codecs.starts_with("avc1.42"),
        "{}",
        o.plan.renditions[0].codecs
    );
    check_all(&o, Container::Fmp4, 10.0, 4.0);
}

#[test]
fn mpegts_segments_with_remux() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(
        dir.path(),
        "src.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "9",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
    );
    let config = LadderConfig {
        rungs: vec![rung("240p", 240, 300_000), rung("144p", 144, 150_000)],
        ..small_ladder(Container::MpegTs)
    };
    let o = run(&input, &config, dir.path()).unwrap();
    assert_eq!(o.plan.remux, [true, false, true]);
    assert!(o.tracks.iter().all(|t| t.init.is_none()));
    check_all(&o, Container::MpegTs, 9.0, 4.0);
}

#[test]
fn audio_only_sources() {
    let dir = tempfile::tempdir().unwrap();
    // AAC in m4a: copied.
    let m4a = gen(
        dir.path(),
        "a.m4a",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "9",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
        ],
    );
    let out = dir.path().join("m4a");
    let o = run(&m4a, &LadderConfig::default(), &out).unwrap();
    assert_eq!(o.plan.renditions.len(), 1);
    let r = &o.plan.renditions[0];
    assert_eq!((r.width, r.height, r.codecs.as_str()), (0, 0, "mp4a.40.2"));
    assert_eq!(o.plan.audio_copy, Some(true));
    check_all(&o, Container::Fmp4, 9.0, 4.0);
    // FLAC: encoded to AAC.
    let flac = gen(
        dir.path(),
        "a.flac",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "6",
        ],
    );
    let out = dir.path().join("flac");
    let o = run(&flac, &LadderConfig::default(), &out).unwrap();
    assert_eq!(o.plan.audio_copy, Some(false));
    assert_eq!(o.plan.renditions[0].codecs, "mp4a.40.2");
    check_all(&o, Container::Fmp4, 6.0, 4.0);
}

#[test]
fn video_without_audio_and_odd_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(
        dir.path(),
        "odd.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=854x480:rate=24",
            "-t",
            "6",
            "-vf",
            "scale=853:479,setsar=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv444p",
        ],
    );
    let o = run(&input, &LadderConfig::default(), dir.path()).unwrap();
    let sizes: Vec<_> = o
        .plan
        .renditions
        .iter()
        .map(|r| (r.name.as_str(), r.width, r.height))
        .collect();
    assert_eq!(
        sizes,
        [("360p", 642, 360)],
        "never above the 479-line source"
    );
    assert!(!o.plan.renditions[0].codecs.contains("mp4a"));
    assert_eq!(o.plan.audio_copy, None);
    check_all(&o, Container::Fmp4, 6.0, 4.0);

    // Smaller than every rung: one rendition at the source size, rounded to even.
    let tiny = gen(
        dir.path(),
        "tiny.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=200x113:rate=15",
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv444p",
        ],
    );
    let out = dir.path().join("tiny");
    let o = run(&tiny, &LadderConfig::default(), &out).unwrap();
    let sizes: Vec<_> = o
        .plan
        .renditions
        .iter()
        .map(|r| (r.width, r.height))
        .collect();
    assert_eq!(sizes, [(200, 112)]);
    assert_eq!(o.plan.remux, [false]);
    check_all(&o, Container::Fmp4, 5.0, 4.0);
}

#[test]
fn variable_frame_rate_is_cut_on_time() {
    let dir = tempfile::tempdir().unwrap();
    // 30 fps for 1.5 s, then 10 fps.
    let input = gen(
        dir.path(),
        "vfr.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300",
            "-t",
            "10",
            "-vf",
            "select='lt(n,45)+not(mod(n,3))'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-force_key_frames",
            "expr:gte(t,n_forced)",
            "-c:a",
            "aac",
        ],
    );
    let config = LadderConfig {
        rungs: vec![rung("240p", 240, 300_000), rung("144p", 144, 150_000)],
        ..small_ladder(Container::Fmp4)
    };
    let o = run(&input, &config, dir.path()).unwrap();
    // Not remuxed: the mkv's H.264 is remuxable at 240p, so check the VFR path there too.
    let d: Vec<u32> = o.tracks[1].segments.iter().map(|s| s.1).collect();
    assert_eq!(d.len(), 3, "{d:?}");
    assert!(d[..2].iter().all(|ms| (3900..=4400).contains(ms)), "{d:?}");
    check_all(&o, Container::Fmp4, 10.0, 4.0);
}

#[test]
fn ten_bit_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("10bit.mkv");
    let ok = ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
        "-t",
        "5",
        "-pix_fmt",
        "yuv420p10le",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-profile:v",
        "high10",
        path.to_str().unwrap(),
    ]);
    if !ok {
        eprintln!("skipping: this libx264 cannot encode 10-bit (high10)");
        return;
    }
    let o = run(
        path.to_str().unwrap(),
        &small_ladder(Container::Fmp4),
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        o.plan.remux,
        [false, false],
        "10-bit H.264 is re-encoded to 8-bit"
    );
    check_all(&o, Container::Fmp4, 5.0, 4.0);
}

#[test]
fn corrupt_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // 240p is a remux of the 426x240 H.264 inputs below; 144p makes the video decode.
    let config = LadderConfig {
        rungs: vec![rung("240p", 240, 300_000), rung("144p", 144, 150_000)],
        ..small_ladder(Container::Fmp4)
    };
    // Random bytes.
    let junk = dir.path().join("junk.mp4");
    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    let err = probe(junk.to_str().unwrap(), &config).unwrap_err();
    eprintln!("junk: {err}");
    // Missing file.
    let err = probe(dir.path().join("nope.mp4").to_str().unwrap(), &config).unwrap_err();
    assert!(matches!(err, TranscodeError::Open { .. }), "{err}");
    // Truncated mp4 (moov at the end, cut off).
    let full = gen(
        dir.path(),
        "full.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=25",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let data = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let err = probe(cut.to_str().unwrap(), &config).unwrap_err();
    eprintln!("truncated: {err}");
    // Truncated with the moov in front: the readable part transcodes or it fails cleanly.
    let fast = gen(
        dir.path(),
        "fast.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=25",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-movflags",
            "+faststart",
        ],
    );
    let data = std::fs::read(&fast).unwrap();
    let cut = dir.path().join("cutfast.mp4");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let err = run(cut.to_str().unwrap(), &config, &dir.path().join("cutfast"))
        .err()
        .expect("a truncated file is an error");
    assert!(matches!(err, TranscodeError::Corrupt(_)), "{err}");
    eprintln!("truncated faststart: {err}");
    // Garbage in the middle of the stream.
    let mut data = std::fs::read(&fast).unwrap();
    let n = data.len();
    for b in &mut data[n / 3..n / 3 + 20_000] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let mangled = dir.path().join("mangled.mp4");
    std::fs::write(&mangled, &data).unwrap();
    match run(
        mangled.to_str().unwrap(),
        &config,
        &dir.path().join("mangled"),
    ) {
        Ok(o) => eprintln!("mangled: {:?}", o.summary),
        Err(e) => eprintln!("mangled: {e}"),
    }
}

#[test]
fn cancel_and_sink_errors_stop_the_transcode() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(
        dir.path(),
        "src.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=25",
            "-t",
            "12",
            "-c:v",
            "mpeg4",
        ],
    );
    let config = LadderConfig {
        rungs: vec![rung("240p", 240, 300_000)],
        ..small_ladder(Container::Fmp4)
    };
    let plan = probe(&input, &config).unwrap();
    let cancel = AtomicBool::new(false);
    let mut segments = 0;
    let err = transcode(&input, &config, &plan, &cancel, &mut |ev| {
        if let TranscodeEvent::Segment { .. } = ev {
            segments += 1;
            cancel.store(true, Ordering::Relaxed);
        }
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, TranscodeError::Cancelled), "{err}");
    assert_eq!(segments, 1);

    let cancel = AtomicBool::new(false);
    let err = transcode(&input, &config, &plan, &cancel, &mut |ev| match ev {
        TranscodeEvent::Segment { .. } => Err(TranscodeError::Sink("disk full".into())),
        _ => Ok(()),
    })
    .unwrap_err();
    assert!(matches!(err, TranscodeError::Sink(_)), "{err}");
}
