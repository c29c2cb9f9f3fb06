//! Real-world sources against real FFmpeg (issue 18, part A): inputs are generated with the
//! `ffmpeg` CLI, transcoded by the node's transcoder into HLS (media playlists per track and
//! the master playlist every node writes, `reelnet_proto::hls`), and checked with
//! `ffmpeg`/`ffprobe`: every audio stream is its own rendition with its language, channels
//! and name, HDR10 is tone-mapped to SDR BT.709, interlaced video comes out progressive,
//! and a rotated source is turned the way the FFmpeg CLI turns it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use reelnet_node::ingest::transcode::{probe, transcode, LadderConfig, Plan, Rung, TranscodeEvent};
use reelnet_proto::hls::master_playlist;
use reelnet_proto::{
    Container, Manifest, MediaInfo, MovieId, NodeId, SegmentEntry, SegmentHash, TrackKind,
};

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

/// Runs ffmpeg and returns its stderr (filters such as idet and psnr log there).
fn ffmpeg_log(args: &[&str]) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg {args:?}: {err}");
    err
}

fn ffprobe(args: &[&str], file: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe {args:?} {}", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ladder(rungs: &[(&str, u32, u32)]) -> LadderConfig {
    LadderConfig {
        rungs: rungs
            .iter()
            .map(|(name, height, video_bitrate)| Rung {
                name: (*name).into(),
                height: *height,
                video_bitrate: *video_bitrate,
                audio_bitrate: 96_000,
            })
            .collect(),
        segment_secs: 4,
        container: Container::Fmp4,
        preset: "ultrafast".into(),
    }
}

struct Out {
    plan: Plan,
    dir: PathBuf,
    master: String,
}

impl Out {
    fn playlist(&self, track: usize) -> PathBuf {
        self.dir.join(format!("t{track}/index.m3u8"))
    }

    fn track(&self, name: &str) -> usize {
        self.plan
            .renditions
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no track {name}: {:?}", self.plan.renditions))
    }
}

/// A track's init segment and (bytes, duration ms) of its media segments.
type TrackBytes = (Option<Vec<u8>>, Vec<(Vec<u8>, u32)>);

/// Transcodes `input` into `dir`: per-track media playlists (`t{i}/index.m3u8`) and the
/// master playlist of the manifest the plan makes (`master.m3u8`).
fn run(input: &str, config: &LadderConfig, dir: &Path) -> Out {
    let plan = probe(input, config).unwrap();
    let mut tracks: Vec<TrackBytes> = vec![(None, Vec::new()); plan.renditions.len()];
    transcode(input, config, &plan, &AtomicBool::new(false), &mut |ev| {
        match ev {
            TranscodeEvent::Init { track, bytes } => tracks[track].0 = Some(bytes),
            TranscodeEvent::Segment {
                track,
                bytes,
                duration_ms,
                ..
            } => tracks[track].1.push((bytes, duration_ms)),
            TranscodeEvent::Progress { .. } => {}
        }
        Ok(())
    })
    .unwrap();
    let entry = |bytes: &[u8], duration_ms: u32| SegmentEntry {
        hash: SegmentHash::of(bytes),
        duration_ms,
        size: bytes.len() as u32,
    };
    let mut manifest_tracks = plan.empty_tracks();
    for (i, (init, segments)) in tracks.iter().enumerate() {
        let t = dir.join(format!("t{i}"));
        std::fs::create_dir_all(&t).unwrap();
        let init = init.as_deref().expect("fMP4 tracks have an init segment");
        std::fs::write(t.join("init.mp4"), init).unwrap();
        let mut pl = String::from(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:5\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n",
        );
        for (n, (bytes, d)) in segments.iter().enumerate() {
            std::fs::write(t.join(format!("s{n}.m4s")), bytes).unwrap();
            pl.push_str(&format!(
                "#EXTINF:{:.3},\ns{n}.m4s\n",
                f64::from(*d) / 1000.0
            ));
        }
        pl.push_str("#EXT-X-ENDLIST\n");
        std::fs::write(t.join("index.m3u8"), pl).unwrap();
        manifest_tracks[i].init = Some(entry(init, 0));
        manifest_tracks[i].segments = segments.iter().map(|(b, d)| entry(b, *d)).collect();
    }
    let manifest = Manifest {
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
        tracks: manifest_tracks,
        complete: true,
        meta: Default::default(),
    };
    manifest
        .validate()
        .expect("the plan makes a valid manifest");
    let master = master_playlist(&manifest, |i, _| Some(format!("t{i}/index.m3u8")));
    std::fs::write(dir.join("master.m3u8"), &master).unwrap();
    Out {
        plan,
        dir: dir.to_owned(),
        master,
    }
}

/// Decodes a playlist end to end without a single error; returns ffprobe's duration.
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
    ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        playlist,
    )
    .trim()
    .parse()
    .unwrap()
}

/// `key=value` pairs of the first stream ffprobe selects.
fn stream_info(file: &Path, select: &str) -> String {
    ffprobe(
        &[
            "-select_streams",
            select,
            "-show_entries",
            "stream=codec_name,channels,pix_fmt,width,height,color_primaries,color_transfer,color_space,field_order",
            "-of",
            "default=nw=1",
        ],
        file,
    )
}

#[test]
fn every_audio_stream_is_a_rendition() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("movie.mkv");
    // English AAC stereo (default), German AC-3 5.1, English FLAC commentary.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=550:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=660:sample_rate=44100",
        "-t",
        "8",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-map",
        "3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a:0",
        "aac",
        "-ac:a:0",
        "2",
        "-c:a:1",
        "ac3",
        "-ac:a:1",
        "6",
        "-c:a:2",
        "flac",
        "-ac:a:2",
        "2",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=ger",
        "-metadata:s:a:1",
        "title=Deutsch",
        "-metadata:s:a:2",
        "language=eng",
        "-metadata:s:a:2",
        "title=Director's commentary",
        "-disposition:a:0",
        "default",
        "-disposition:a:1",
        "0",
        "-disposition:a:2",
        "comment",
        input.to_str().unwrap(),
    ]);
    let o = run(
        input.to_str().unwrap(),
        &ladder(&[("180p", 180, 300_000), ("144p", 144, 200_000)]),
        dir.path(),
    );
    let names: Vec<(&str, TrackKind)> = o
        .plan
        .renditions
        .iter()
        .zip(&o.plan.kinds)
        .map(|(r, k)| (r.name.as_str(), *k))
        .collect();
    assert_eq!(
        names,
        [
            ("180p", TrackKind::Video),
            ("144p", TrackKind::Video),
            ("a0-en", TrackKind::Audio),
            ("a1-de", TrackKind::Audio),
            ("a2-en", TrackKind::Audio),
            ("a1-de-51", TrackKind::Audio),
        ]
    );
    let media = |name: &str| -> MediaInfo { o.plan.media[o.track(name)].clone().unwrap() };
    assert!(media("a0-en").default && media("a0-en").autoselect);
    assert_eq!(media("a1-de").name, "Deutsch");
    assert!(!media("a1-de").default);
    assert!(media("a2-en").has(MediaInfo::COMMENTARY) && !media("a2-en").autoselect);
    assert_eq!(media("a1-de-51").channels, 6);
    assert_eq!(
        o.plan.remux,
        [true, false, true, false, false, false],
        "AAC-LC stereo is copied, the rest encoded"
    );
    let text = &o.master;
    eprintln!("{text}");
    for line in [
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-stereo\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"t2/index.m3u8\"",
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-stereo\",NAME=\"Deutsch\",LANGUAGE=\"de\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"t3/index.m3u8\"",
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-stereo\",NAME=\"Director's commentary\",LANGUAGE=\"en\",DEFAULT=NO,AUTOSELECT=NO,CHANNELS=\"2\",URI=\"t4/index.m3u8\"",
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-surround\",NAME=\"Deutsch\",LANGUAGE=\"de\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"6\",URI=\"t5/index.m3u8\"",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}");
    }
    let variants: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF"))
        .collect();
    assert_eq!(variants.len(), 4, "two rungs × two audio groups");
    assert!(variants
        .iter()
        .all(|v| v.contains(",mp4a.40.2\"") && v.contains("AUDIO=\"aud-")));
    // Every rendition decodes end to end and lasts the source's 8 s.
    for i in 0..o.plan.renditions.len() {
        let d = decode_clean(&o.playlist(i));
        assert!((d - 8.0).abs() < 0.5, "track {i} lasts {d} s");
    }
    decode_clean(&o.dir.join("master.m3u8"));
    // Video rungs carry no audio; audio renditions have their channel counts.
    for v in [0, 1] {
        assert_eq!(
            ffprobe(
                &[
                    "-select_streams",
                    "a",
                    "-show_entries",
                    "stream=index",
                    "-of",
                    "csv=p=0"
                ],
                &o.playlist(v),
            )
            .trim(),
            "",
            "video rung {v} has no audio"
        );
    }
    for (name, channels) in [("a0-en", 2), ("a1-de", 2), ("a2-en", 2), ("a1-de-51", 6)] {
        let info = stream_info(&o.playlist(o.track(name)), "a:0");
        assert!(
            info.contains("codec_name=aac") && info.contains(&format!("channels={channels}\n")),
            "{name}: {info}"
        );
    }
    // The German renditions carry the German stream (550 Hz), the commentary its own (660 Hz).
    for (name, hz) in [
        ("a0-en", 440.0),
        ("a1-de", 550.0),
        ("a1-de-51", 550.0),
        ("a2-en", 660.0),
    ] {
        let f = dominant_hz(&o.playlist(o.track(name)));
        assert!((f - hz).abs() < 15.0, "{name}: {f} Hz, expected {hz}");
    }
}

/// The dominant frequency of the mono downmix, from zero crossings of one second of audio.
fn dominant_hz(playlist: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(playlist)
        .args([
            "-ss", "2", "-t", "1", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 48_000.0)
}

/// Mean luma (0-255) over every frame, per `signalstats`.
fn mean_luma(file: &Path, extra_filter: &str) -> f64 {
    let vf = format!("{extra_filter}signalstats,metadata=print:key=lavfi.signalstats.YAVG");
    let log = ffmpeg_log(&["-i", file.to_str().unwrap(), "-vf", &vf, "-f", "null", "-"]);
    let values: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split("lavfi.signalstats.YAVG=").nth(1))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert!(!values.is_empty(), "no signalstats in {log}");
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn hdr10_is_tone_mapped_to_sdr_bt709() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hdr.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-t",
        "4",
        "-pix_fmt",
        "yuv420p10le",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        "smpte2084",
        "-colorspace",
        "bt2020nc",
        input.to_str().unwrap(),
    ]);
    let o = run(
        input.to_str().unwrap(),
        &ladder(&[("180p", 180, 300_000)]),
        dir.path(),
    );
    let out = o.playlist(0);
    decode_clean(&out);
    let info = stream_info(&out, "v:0");
    for want in [
        "codec_name=h264",
        "pix_fmt=yuv420p\n",
        "color_primaries=bt709",
        "color_transfer=bt709",
        "color_space=bt709",
    ] {
        assert!(info.contains(want), "{want} not in {info}");
    }
    // What tone mapping makes of this picture, per the FFmpeg CLI with the same chain, and
    // what a plain 10 → 8 bit conversion (PQ code values read as SDR) would show.
    let src = input.as_path();
    let mapped = mean_luma(
        src,
        "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p,",
    );
    let naive = mean_luma(src, "format=yuv420p,");
    let ours = mean_luma(&out, "");
    eprintln!("mean Y: ours {ours:.1}, CLI tone-mapped {mapped:.1}, not tone-mapped {naive:.1}");
    assert!(
        (mapped - naive).abs() > 15.0,
        "the test picture must tell the two apart"
    );
    assert!(
        (ours - mapped).abs() < 6.0,
        "mean Y {ours:.1}: tone-mapped {mapped:.1}, untouched {naive:.1}"
    );
}

/// (interlaced, progressive) frame counts from `idet`'s multi-frame detection.
fn idet(file: &Path) -> (u64, u64) {
    let log = ffmpeg_log(&[
        "-i",
        file.to_str().unwrap(),
        "-vf",
        "idet",
        "-f",
        "null",
        "-",
    ]);
    let line = log
        .lines()
        .find(|l| l.contains("Multi frame detection"))
        .unwrap_or_else(|| panic!("no idet result: {log}"));
    let num = |key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    (num("TFF:") + num("BFF:"), num("Progressive:"))
}

#[test]
fn interlaced_h264_is_deinterlaced() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("interlaced.mkv");
    // 4:2:0 8-bit H.264 at the rung's height: it would be remuxed if it were progressive.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=50",
        "-t",
        "6",
        "-vf",
        "tinterlace=interleave_top,fieldorder=tff",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-flags",
        "+ilme+ildct",
        "-top",
        "1",
        input.to_str().unwrap(),
    ]);
    let (combed, progressive) = idet(&input);
    assert!(
        combed > 10 * progressive.max(1),
        "the source must be interlaced: {combed} vs {progressive}"
    );
    let o = run(
        input.to_str().unwrap(),
        &ladder(&[("240p", 240, 400_000)]),
        dir.path(),
    );
    assert_eq!(o.plan.remux, [false], "interlaced video is not copied");
    let out = o.playlist(0);
    let d = decode_clean(&out);
    assert!((d - 6.0).abs() < 0.5, "{d} s");
    let (combed, progressive) = idet(&out);
    eprintln!("deinterlaced: {combed} interlaced, {progressive} progressive frames");
    assert!(
        progressive > 10 * combed.max(1),
        "output still interlaced: {combed} vs {progressive}"
    );
}

#[test]
fn rotated_source_is_turned_like_the_cli_does() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        plain.to_str().unwrap(),
    ]);
    let input = dir.path().join("rotated.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        input.to_str().unwrap(),
    ]);
    let o = run(
        input.to_str().unwrap(),
        &ladder(&[("240p", 240, 300_000)]),
        dir.path(),
    );
    let r = &o.plan.renditions[0];
    assert_eq!(
        (r.width, r.height),
        (136, 240),
        "portrait at the display aspect"
    );
    assert_eq!(o.plan.remux, [false]);
    let out = o.playlist(0);
    decode_clean(&out);
    let info = stream_info(&out, "v:0");
    assert!(info.contains("width=136\nheight=240"), "{info}");
    // The CLI autorotates on decode: compare the pictures.
    let log = ffmpeg_log(&[
        "-i",
        out.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-filter_complex",
        "[1:v]scale=136:240,format=yuv420p[ref];[0:v][ref]psnr",
        "-f",
        "null",
        "-",
    ]);
    let psnr: f64 = log
        .lines()
        .find_map(|l| l.split("average:").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no psnr: {log}"));
    eprintln!("rotated output vs the CLI's autorotation: PSNR {psnr:.1} dB");
    assert!(psnr > 25.0, "PSNR {psnr} dB: turned the wrong way?");
}
