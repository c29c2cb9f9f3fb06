//! Ingest end to end with real parts: a two-minute movie made by FFmpeg, seeded in a
//! multi-file torrent with two sidecar subtitle files by a real librqbit session on loopback (upload-throttled so the download takes a while), ingested
//! by a running `reelnet-node` through `reelnet-node ingest movie.torrent --peer ...`.
//! The result must be a complete, signed HLS ladder that FFmpeg decodes end to end, whose
//! first segments were playable before the download ended, with the sidecars as WebVTT
//! tracks; broken inputs fail cleanly and
//! leave no manifest behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use librqbit::{CreateTorrentOptions, ListenerOptions, Session, SessionOptions};
use reelnet_node::store::Store;
use reelnet_proto::{hls, Container, MovieId, TrackKind};

const BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");
const SECONDS: u32 = 120;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 2-minute 854x480 H.264/AAC test movie with a keyframe every 4 s.
fn make_movie(dir: &Path) -> PathBuf {
    let path = dir.join("Test.Pattern.2026.mp4");
    let secs = SECONDS.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=854x480:rate=25:duration={secs}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "100",
        "-keyint_min",
        "100",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "900k",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-movflags",
        "+faststart",
        path.to_str().unwrap(),
    ]);
    path
}

/// `hh:mm:ss.mmm` → milliseconds.
fn vtt_ms(t: &str) -> i64 {
    let mut parts = t.trim().split(':').rev();
    let sec: f64 = parts.next().unwrap().parse().unwrap();
    let min: i64 = parts.next().map_or(0, |m| m.parse().unwrap());
    let hour: i64 = parts.next().map_or(0, |h| h.parse().unwrap());
    (hour * 3600 + min * 60) * 1000 + (sec * 1000.0).round() as i64
}

/// Seeds `file` (a file or a folder) from a librqbit session on loopback, uploading at most `bps`.
async fn seed(file: &Path, state: &Path, bps: u32) -> (Arc<Session>, Vec<u8>, SocketAddr) {
    let session = Session::new_with_opts(
        state.to_owned(),
        SessionOptions {
            dht: None,
            disable_trackers: true,
            listen: Some(ListenerOptions {
                listen_addr: "127.0.0.1:0".parse().unwrap(),
                ..ListenerOptions::default()
            }),
            ratelimits: librqbit::limits::LimitsConfig {
                upload_bps: NonZeroU32::new(bps),
                ..Default::default()
            },
            ..SessionOptions::default()
        },
    )
    .await
    .unwrap();
    let (torrent, _handle) = session
        .create_and_serve_torrent(
            file,
            CreateTorrentOptions {
                piece_length: Some(256 * 1024),
                ..CreateTorrentOptions::default()
            },
        )
        .await
        .unwrap();
    let addr = session.listen_addr().unwrap();
    (session, torrent.as_bytes().unwrap().to_vec(), addr)
}

struct RunningNode {
    child: std::process::Child,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_config(dir: &Path) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        "[p2p]\nmdns = false\n[ingest]\npublic_torrents = false\n",
    )
    .unwrap();
    path
}

fn start_node(data: &Path, config: &Path) -> RunningNode {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--p2p",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "node did not start: {line}");
    RunningNode { child }
}

fn admin(data: &Path) -> (String, String) {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("admin.json")).unwrap()).unwrap();
    (
        v["url"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// Writes master and media playlists for a stored manifest, pointing at the store's
/// segment files through links with the extensions players expect.
fn write_hls(store: &Store, manifest: &reelnet_proto::Manifest, out: &Path) -> PathBuf {
    for (i, track) in manifest.tracks.iter().enumerate() {
        let ext = track.segment_extension(manifest.container);
        let dir = out.join(format!("t{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let text = hls::media_playlist(manifest, i as u16, |seg, init| {
            let name = if init {
                format!("{}.mp4", seg.hash)
            } else {
                format!("{}.{ext}", seg.hash)
            };
            let link = dir.join(&name);
            if !link.exists() {
                // Reading through the store checks the hash first.
                let bytes = store
                    .read_segment(&seg.hash)
                    .unwrap()
                    .expect("segment stored");
                std::fs::write(&link, bytes).unwrap();
            }
            name
        })
        .unwrap();
        std::fs::write(dir.join("index.m3u8"), text).unwrap();
    }
    let master = hls::master_playlist(manifest, |i, _| Some(format!("t{i}/index.m3u8")));
    let path = out.join("master.m3u8");
    std::fs::write(&path, master).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrent_to_complete_hls_ladder_playable_before_download_ends() {
    let dir = tempfile::tempdir().unwrap();
    // A multi-file torrent as releases come: the movie, a Latin-1 Spanish sidecar beside it
    // and a French one in a Subs folder (the job picks the video and reads the sidecars
    // through the torrent before the movie).
    let release = dir.path().join("Test.Pattern.2026");
    std::fs::create_dir_all(release.join("Subs")).unwrap();
    let movie = make_movie(&release);
    std::fs::write(
        release.join("Test.Pattern.2026.es.srt"),
        b"1\r\n00:00:03,000 --> 00:00:04,500\r\nEl ni\xf1o est\xe1 aqu\xed\r\n",
    )
    .unwrap();
    std::fs::write(
        release.join("Subs").join("Test.Pattern.2026.fr.srt"),
        "1\n00:00:05,000 --> 00:00:06,000\nL'\u{e9}t\u{e9} arrive\n",
    )
    .unwrap();
    let size = std::fs::metadata(&movie).unwrap().len();
    // About 15 s of download for the whole file.
    let bps = u32::try_from(size / 15).unwrap();
    let (seeder, torrent_bytes, seeder_addr) =
        seed(&release, &dir.path().join("seeder"), bps).await;
    let torrent = dir.path().join("movie.torrent");
    std::fs::write(&torrent, &torrent_bytes).unwrap();

    let data = dir.path().join("node");
    let config = node_config(dir.path());
    let node = start_node(&data, &config);

    // The CLI hands the job to the running node and follows it to the end.
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let (data, torrent, config) = (data.clone(), torrent.clone(), config.clone());
        move || {
            Command::new(BIN)
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(&data)
                .arg("ingest")
                .arg(&torrent)
                .args([
                    "--peer",
                    &seeder_addr.to_string(),
                    "--title",
                    "Test Pattern",
                    "--year",
                    "2026",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest failed:\n{stderr}");
    assert!(stderr.contains("handed to the running node"), "{stderr}");
    eprintln!("ingest took {:.1} s", started.elapsed().as_secs_f64());

    // The job's own account: first segments playable before the download ended.
    let (url, token) = admin(&data);
    let jobs: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/admin/v1/ingest"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &jobs[0]["progress"];
    assert_eq!(p["state"], "done", "{p}");
    let first_dl = p["first_playable_downloaded_bytes"].as_u64().unwrap();
    let total = p["total_bytes"].as_u64().unwrap();
    let first_s = p["first_playable_s"].as_f64().unwrap();
    eprintln!(
        "first segments playable after {first_s:.1} s with {first_dl} of {total} bytes downloaded ({:.0}%)",
        first_dl as f64 * 100.0 / total as f64
    );
    assert_eq!(total, size);
    assert!(
        first_dl < total,
        "the first segment must be playable before the download ends"
    );

    // Stop the node (sled admits one process), then read what it stored.
    drop(node);
    seeder.stop().await;
    let store = Store::open(&data).unwrap();
    let movie_id = MovieId::derive("Test Pattern", Some(2026));
    let manifests = store.movie_manifests(&movie_id).unwrap();
    assert_eq!(manifests.len(), 1, "one ingest, one manifest");
    let m = &manifests[0].manifest;
    assert!(m.complete);
    assert_eq!(m.container, Container::Fmp4);
    assert!(manifests[0].signed.verify().is_ok());
    let heights: Vec<(u32, TrackKind)> = m
        .tracks
        .iter()
        .filter(|t| matches!(t.kind, TrackKind::Video | TrackKind::Audio))
        .map(|t| (t.rendition.height, t.kind))
        .collect();
    assert_eq!(
        heights,
        [
            (480, TrackKind::Video),
            (360, TrackKind::Video),
            (0, TrackKind::Audio)
        ],
        "the ladder never goes above the source; the audio is its own rendition"
    );
    // The sidecars of the torrent: one WebVTT track each, language from the file name, the
    // Latin-1 text decoded, cues at their source times.
    let subs: Vec<_> = m
        .tracks
        .iter()
        .filter(|t| t.kind == TrackKind::Subtitles)
        .collect();
    let lang = |t: &reelnet_proto::manifest::Track| {
        t.media
            .as_ref()
            .and_then(|mi| mi.language.clone())
            .unwrap_or_default()
    };
    let mut langs: Vec<String> = subs.iter().map(|t| lang(t)).collect();
    langs.sort();
    assert_eq!(langs, ["es", "fr"], "sidecar subtitle tracks");
    for t in &subs {
        let (start_ms, text) = if lang(t) == "es" {
            (3000i64, "El niño está aquí")
        } else {
            (5000, "L'été arrive")
        };
        let all: String = t
            .segments
            .iter()
            .map(|seg| {
                let b = store.read_segment(&seg.hash).unwrap().expect("stored");
                String::from_utf8(b).expect("WebVTT is UTF-8")
            })
            .collect();
        // `00:00:03.000 --> 00:00:04.500\nEl niño está aquí`: the cue's start, ±100 ms.
        let at = all
            .split("\n\n")
            .find_map(|block| {
                let (timing, body) = block.trim_start().split_once('\n')?;
                let (a, _) = timing.split_once(" --> ")?;
                body.contains(text).then(|| vtt_ms(a))
            })
            .unwrap_or_else(|| panic!("{}: no cue {text:?} in {all}", t.rendition.name));
        assert!(
            (at - start_ms).abs() <= 100,
            "{}: cue at {at} ms, source says {start_ms} ms",
            t.rendition.name
        );
    }
    // Seek thumbnails (default: one every 10 s, 5×5 per sheet): one JPEG sheet.
    let thumbs: Vec<_> = m
        .tracks
        .iter()
        .filter(|t| matches!(t.kind, reelnet_proto::manifest::TrackKind::Thumbnails(_)))
        .collect();
    assert_eq!(thumbs.len(), 1);
    assert_eq!(thumbs[0].segments.len(), 1);
    let sheet = store
        .read_segment(&thumbs[0].segments[0].hash)
        .unwrap()
        .expect("sheet stored");
    assert_eq!(&sheet[..2], &[0xff, 0xd8], "a JPEG");
    for t in m.tracks.iter().filter(|t| t.is_video()) {
        let ms = t.duration_ms();
        let seg = u64::from(m.target_duration_ms);
        assert!(
            ms.abs_diff(u64::from(SECONDS) * 1000) <= seg,
            "{}: {ms} ms of segments for a {SECONDS} s movie",
            t.rendition.name
        );
    }

    // Every rendition decodes end to end.
    let hls_dir = dir.path().join("hls");
    let master = write_hls(&store, m, &hls_dir);
    for i in (0..m.tracks.len()).filter(|i| m.tracks[*i].is_video()) {
        let media = hls_dir.join(format!("t{i}/index.m3u8"));
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i"])
            .arg(&media)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "track {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(&media)
            .output()
            .unwrap();
        let d: f64 = String::from_utf8_lossy(&probe.stdout)
            .trim()
            .parse()
            .unwrap_or(0.0);
        assert!(
            (d - f64::from(SECONDS)).abs() <= 4.5,
            "track {i} probes as {d} s"
        );
    }
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&master)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let codecs = String::from_utf8_lossy(&probe.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs}"
    );
    let master_text = std::fs::read_to_string(&master).unwrap();
    assert!(
        master_text.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-stereo\"")
            && master_text.contains("AUDIO=\"aud-stereo\""),
        "{master_text}"
    );
}

#[test]
fn broken_inputs_fail_cleanly_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path());
    let data = dir.path().join("node");
    // Random bytes named like a movie.
    let junk = dir.path().join("junk.mp4");
    std::fs::write(
        &junk,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    // A real movie cut in half.
    let whole = dir.path().join("whole.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=8",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        whole.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // A torrent file that ends too soon.
    let bad_torrent = dir.path().join("bad.torrent");
    std::fs::write(
        &bad_torrent,
        b"d8:announce35:http://127.0.0.1:1/announce4:infod6:lengthi5",
    )
    .unwrap();

    for source in [&junk, &cut, &bad_torrent, &dir.path().join("missing.mkv")] {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("ingest")
            .arg(source)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{}: accepted\n{stderr}",
            source.display()
        );
        assert!(
            stderr.contains("Error"),
            "{}: no clear error\n{stderr}",
            source.display()
        );
        assert!(
            !stderr.contains("panicked"),
            "{}: panicked\n{stderr}",
            source.display()
        );
    }
    let store = Store::open(&data).unwrap();
    assert!(
        store.all_manifests().unwrap().is_empty(),
        "a failed ingest left a manifest"
    );
}
