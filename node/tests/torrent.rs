//! Torrent ingest source against a real librqbit swarm on loopback: a seeding session made
//! here, and `TorrentInput` downloading from it. No DHT, trackers, LSD or UPnP: nothing leaves
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use librqbit::{CreateTorrentOptions, ListenerOptions, ManagedTorrent, Session, SessionOptions};
use reelnet_node::ingest::torrent::{TorrentError, TorrentInput, TorrentOptions, TorrentSpec};

const MIB: usize = 1024 * 1024;
const PIECE: u32 = 256 * 1024;

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Seeder {
    session: Arc<Session>,
    handle: Arc<ManagedTorrent>,
    addr: SocketAddr,
    torrent_bytes: Vec<u8>,
    info_hash: String,
}

impl Seeder {
    /// Seeds `path` (a file or a directory) from a loopback-only session.
    async fn start(session_dir: &Path, path: &Path, upload_bps: Option<u32>) -> Seeder {
        let session = Session::new_with_opts(
            session_dir.to_owned(),
            SessionOptions {
                dht: None,
                disable_trackers: true,
                disable_local_service_discovery: true,
                listen: Some(ListenerOptions {
                    listen_addr: (Ipv4Addr::LOCALHOST, 0).into(),
                    enable_upnp_port_forwarding: false,
                    ..Default::default()
                }),
                ratelimits: librqbit::limits::LimitsConfig {
                    upload_bps: upload_bps.and_then(NonZeroU32::new),
                    download_bps: None,
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let addr = session.listen_addr().unwrap();
        let (torrent, handle) = session
            .create_and_serve_torrent(
                path,
                CreateTorrentOptions {
                    piece_length: Some(PIECE),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        handle.wait_until_completed().await.unwrap();
        Seeder {
            session,
            handle,
            addr,
            torrent_bytes: torrent.as_bytes().unwrap().to_vec(),
            info_hash: torrent.info_hash().as_string(),
        }
    }

    fn write_torrent(&self, dir: &Path) -> PathBuf {
        let p = dir.join("movie.torrent");
        std::fs::write(&p, &self.torrent_bytes).unwrap();
        p
    }

    fn magnet_with_peer(&self) -> String {
        format!(
            "magnet:?xt=urn:btih:{}&x.pe={}",
            self.info_hash,
            self.addr.to_string().replace(':', "%3A")
        )
    }

    fn uploaded(&self) -> u64 {
        self.handle.stats().uploaded_bytes
    }

    async fn stop(self) {
        self.session.stop().await;
    }
}

fn opts(download_dir: &Path, peers: Vec<SocketAddr>) -> TorrentOptions {
    TorrentOptions {
        download_dir: download_dir.to_owned(),
        peers,
        use_dht_and_trackers: false,
        listen_port: None,
        metadata_timeout: Duration::from_secs(10),
        ..TorrentOptions::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get_range(url: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = client().get(url);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    req.send().await.unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
}

async fn expect_range(url: &str, data: &[u8], range: &str, start: usize, end_incl: usize) {
    let resp = get_range(url, Some(range)).await;
    assert_eq!(resp.status(), 206, "{range}");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(
        header(&resp, "content-range"),
        format!("bytes {start}-{end_incl}/{}", data.len()),
        "{range}"
    );
    assert_eq!(
        header(&resp, "content-length"),
        (end_incl - start + 1).to_string()
    );
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[start..=end_incl], "{range}: bytes differ");
}

/// Full fetch and Range semantics through a `.torrent` file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torrent_file_serves_exact_bytes_and_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = pseudo_random(12 * MIB + 12345, 1);
    let src = seed_dir.join("Big.Movie.2020.mkv");
    std::fs::write(&src, &data).unwrap();
    let seeder = Seeder::start(&seed_dir, &src, None).await;
    let torrent = seeder.write_torrent(tmp.path());

    let t0 = Instant::now();
    let input = TorrentInput::open(
        TorrentSpec::File(torrent),
        opts(&tmp.path().join("dl"), vec![seeder.addr]),
    )
    .await
    .unwrap();
    eprintln!("open: {:?}", t0.elapsed());
    assert_eq!(input.file_name(), "Big.Movie.2020.mkv");
    assert_eq!(input.file_len(), data.len() as u64);
    assert_eq!(input.info_hash(), seeder.info_hash);
    let url = input.url().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let token = url.rsplit('/').next().unwrap();
    assert!(token.len() >= 32, "token too short: {token}");

    // Whole file, no Range.
    let resp = get_range(&url, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(header(&resp, "content-length"), data.len().to_string());
    assert_eq!(header(&resp, "content-type"), "video/x-matroska");
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), data.len());
    assert!(body[..] == data[..], "full body differs");
    eprintln!("full read: {:?}", t0.elapsed());

    let len = data.len();
    expect_range(&url, &data, "bytes=1000-1999", 1000, 1999).await;
    expect_range(
        &url,
        &data,
        &format!("bytes={}-", len - 100),
        len - 100,
        len - 1,
    )
    .await;
    expect_range(&url, &data, "bytes=0-", 0, len - 1).await;
    expect_range(&url, &data, "bytes=-500", len - 500, len - 1).await;
    // Last byte beyond the end is clamped.
    expect_range(
        &url,
        &data,
        &format!("bytes={}-{}", len - 10, len + 1000),
        len - 10,
        len - 1,
    )
    .await;
    // A range across a piece boundary.
    let b = PIECE as usize;
    expect_range(
        &url,
        &data,
        &format!("bytes={}-{}", b - 7, b + 7),
        b - 7,
        b + 7,
    )
    .await;

    // Out of range → 416 with the length.
    let resp = get_range(&url, Some(&format!("bytes={len}-"))).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(header(&resp, "content-range"), format!("bytes */{len}"));

    // HEAD: headers only.
    let resp = client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), len.to_string());

    // Anything but the token is 404; other methods 405.
    let base = url.trim_end_matches(token);
    for path in ["", "x", &token[..token.len() - 1], &format!("{token}/x")] {
        let resp = get_range(&format!("{base}{path}"), None).await;
        assert_eq!(resp.status(), 404, "/{path}");
    }
    let resp = client().post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    tokio::time::timeout(Duration::from_secs(10), input.wait_until_finished())
        .await
        .unwrap()
        .unwrap();
    let p = input.progress();
    assert!(p.finished);
    assert_eq!(p.downloaded_bytes, len as u64);
    assert_eq!(p.total_bytes, len as u64);
    input.shutdown().await;
    seeder.stop().await;
    eprintln!("total: {:?}", t0.elapsed());
}

/// A magnet link with the seeder in `x.pe`, no `--peer`: metadata comes from the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn magnet_link_resolves_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = pseudo_random(5 * MIB + 77, 2);
    let src = seed_dir.join("clip.mp4");
    std::fs::write(&src, &data).unwrap();
    let seeder = Seeder::start(&seed_dir, &src, None).await;

    let t0 = Instant::now();
    let input = TorrentInput::open(
        TorrentSpec::Magnet(seeder.magnet_with_peer()),
        opts(&tmp.path().join("dl"), vec![]),
    )
    .await
    .unwrap();
    eprintln!("magnet open: {:?}", t0.elapsed());
    assert_eq!(input.file_name(), "clip.mp4");
    assert_eq!(input.file_len(), data.len() as u64);

    let resp = get_range(input.url(), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "video/mp4");
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[..], "magnet body differs");
    let len = data.len();
    expect_range(input.url(), &data, "bytes=1000-1999", 1000, 1999).await;
    expect_range(
        input.url(),
        &data,
        &format!("bytes={}-", len - 100),
        len - 100,
        len - 1,
    )
    .await;
    let resp = get_range(input.url(), Some(&format!("bytes={}-", len + 5))).await;
    assert_eq!(resp.status(), 416);

    // The same magnet via --peer (bare link) works too.
    let input2 = TorrentInput::open(
        TorrentSpec::Magnet(format!("magnet:?xt=urn:btih:{}", seeder.info_hash)),
        opts(&tmp.path().join("dl2"), vec![seeder.addr]),
    )
    .await
    .unwrap();
    expect_range(input2.url(), &data, "bytes=4096-8191", 4096, 8191).await;

    input.shutdown().await;
    input2.shutdown().await;
    seeder.stop().await;
}

/// Reads start long before the download ends, in playback order and at a seek target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_start_before_download_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = pseudo_random(32 * MIB, 3);
    let src = seed_dir.join("long.ts");
    std::fs::write(&src, &data).unwrap();
    // 4 MiB/s: the whole file needs ~8 s.
    let seeder = Seeder::start(&seed_dir, &src, Some(4 * MIB as u32)).await;
    let torrent = seeder.write_torrent(tmp.path());

    let t0 = Instant::now();
    let input = TorrentInput::open(
        TorrentSpec::File(torrent),
        opts(&tmp.path().join("dl"), vec![seeder.addr]),
    )
    .await
    .unwrap();
    let opened = t0.elapsed();

    // First MiB, streamed.
    let resp = get_range(input.url(), Some("bytes=0-1048575")).await;
    assert_eq!(resp.status(), 206);
    let body = resp.bytes().await.unwrap();
    let first_mib = t0.elapsed();
    assert!(body[..] == data[..MIB]);
    let p = input.progress();
    eprintln!(
        "open {opened:?}, first MiB {first_mib:?}, progress {}/{}",
        p.downloaded_bytes, p.total_bytes
    );
    assert!(
        !p.finished,
        "download already finished: not a streaming test"
    );
    assert!(p.downloaded_bytes < p.total_bytes);

    // Seek to the end (an MP4 moov atom): its pieces are fetched ahead of the rest.
    let len = data.len();
    let from = len - MIB;
    let resp = get_range(input.url(), Some(&format!("bytes={from}-"))).await;
    assert_eq!(resp.status(), 206);
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[from..]);
    let p = input.progress();
    eprintln!(
        "last MiB {:?}, progress {}/{}",
        t0.elapsed(),
        p.downloaded_bytes,
        p.total_bytes
    );
    assert!(!p.finished, "download finished before the seek was served");

    // Clients that go away mid-body release their stream: more abandoned requests than
    // there are stream slots must not wedge the server.
    for i in 0..10 {
        let resp = tokio::time::timeout(Duration::from_secs(5), get_range(input.url(), None))
            .await
            .unwrap_or_else(|_| panic!("request {i} got no response: stream slots leaked"));
        assert_eq!(resp.status(), 200);
        drop(resp);
    }

    // A reader blocked on missing pieces does not hold up shutdown; its body ends in error.
    let url = input.url().to_owned();
    let reader = tokio::spawn(async move {
        let resp = get_range(&url, None).await;
        resp.bytes().await.map(|b| b.len())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!input.progress().finished);
    let t = Instant::now();
    input.shutdown().await;
    let stop = t.elapsed();
    let read = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    eprintln!("shutdown with a blocked reader: {stop:?}; reader got {read:?}");
    assert!(read.is_err(), "an incomplete body must not look complete");
    assert!(stop < Duration::from_secs(4), "shutdown took {stop:?}");
    seeder.stop().await;
}

/// A partial download resumes: the second session starts from what the first left on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_download_resumes_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = pseudo_random(16 * MIB, 4);
    let src = seed_dir.join("resume.mkv");
    std::fs::write(&src, &data).unwrap();
    let seeder = Seeder::start(&seed_dir, &src, Some(4 * MIB as u32)).await;
    let torrent = seeder.write_torrent(tmp.path());
    let dl = tmp.path().join("dl");

    let input = TorrentInput::open(
        TorrentSpec::File(torrent.clone()),
        opts(&dl, vec![seeder.addr]),
    )
    .await
    .unwrap();
    assert_eq!(input.progress().downloaded_bytes, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while input.progress().downloaded_bytes < 4 * MIB as u64 {
        assert!(
            Instant::now() < deadline,
            "no progress: {:?}",
            input.progress()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = input.progress();
    assert!(!before.finished);
    input.shutdown().await;
    eprintln!(
        "first run stopped at {}/{}",
        before.downloaded_bytes, before.total_bytes
    );

    let uploaded_before = seeder.uploaded();
    // No peers at all: only the data on disk can account for progress.
    let input = TorrentInput::open(TorrentSpec::File(torrent.clone()), opts(&dl, vec![]))
        .await
        .unwrap();
    let resumed = input.progress();
    eprintln!(
        "after restart: {}/{}",
        resumed.downloaded_bytes, resumed.total_bytes
    );
    assert!(
        resumed.downloaded_bytes >= before.downloaded_bytes,
        "restart lost data: {resumed:?} < {before:?}"
    );
    assert!(!resumed.finished);
    // What is on disk is readable without any peer.
    let resp = get_range(input.url(), Some("bytes=0-65535")).await;
    assert_eq!(resp.status(), 206);
    assert!(resp.bytes().await.unwrap()[..] == data[..65536]);
    input.shutdown().await;

    // Finish with the seeder at full speed: only the missing part is transferred.
    seeder.session.ratelimits.set_upload_bps(None);
    let input = TorrentInput::open(TorrentSpec::File(torrent), opts(&dl, vec![seeder.addr]))
        .await
        .unwrap();
    assert!(input.progress().downloaded_bytes >= before.downloaded_bytes);
    tokio::time::timeout(Duration::from_secs(20), input.wait_until_finished())
        .await
        .unwrap()
        .unwrap();
    let body = get_range(input.url(), None).await.bytes().await.unwrap();
    assert!(body[..] == data[..], "resumed file differs");
    let uploaded = seeder.uploaded() - uploaded_before;
    let missing = data.len() as u64 - before.downloaded_bytes;
    eprintln!("seeder uploaded {uploaded} after restart; {missing} were missing");
    // Allow a few pieces of slack (in-flight requests at shutdown, duplicated blocks).
    assert!(
        uploaded <= missing + 4 * u64::from(PIECE),
        "re-downloaded from zero: uploaded {uploaded}, missing {missing}"
    );
    input.shutdown().await;
    seeder.stop().await;
}

/// Multi-file torrent: the largest *video* file is picked, and only it is downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn picks_largest_video_file_only() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    let content = seed_dir.join("Some Movie (2001)");
    std::fs::create_dir_all(content.join("extras")).unwrap();
    let movie = pseudo_random(3 * MIB + 5, 5);
    std::fs::write(content.join("Some.Movie.2001.mkv"), &movie).unwrap();
    std::fs::write(content.join("extras/disc.iso"), pseudo_random(6 * MIB, 6)).unwrap();
    std::fs::write(content.join("sample.mp4"), pseudo_random(MIB, 7)).unwrap();
    std::fs::write(content.join("info.nfo"), b"hello").unwrap();
    let seeder = Seeder::start(&seed_dir, &content, None).await;
    let torrent = seeder.write_torrent(tmp.path());

    let dl = tmp.path().join("dl");
    let input = TorrentInput::open(TorrentSpec::File(torrent), opts(&dl, vec![seeder.addr]))
        .await
        .unwrap();
    assert_eq!(input.file_name(), "Some.Movie.2001.mkv");
    assert_eq!(input.file_len(), movie.len() as u64);
    let body = get_range(input.url(), None).await.bytes().await.unwrap();
    assert!(body[..] == movie[..]);
    tokio::time::timeout(Duration::from_secs(10), input.wait_until_finished())
        .await
        .unwrap()
        .unwrap();
    // The 6 MiB extra was not downloaded (at most the pieces it shares with the movie).
    let iso = dl.join("Some Movie (2001)/extras/disc.iso");
    let have = std::fs::read(&iso).unwrap_or_default();
    let nonzero = have.iter().filter(|b| **b != 0).count();
    assert!(
        nonzero <= 2 * PIECE as usize,
        "unselected file downloaded: {nonzero} bytes"
    );
    input.shutdown().await;
    seeder.stop().await;
}

/// Bad input fails cleanly, with the right error, and quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_torrents_and_unreachable_magnets_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");

    // Garbage, empty and truncated .torrent files.
    let garbage = tmp.path().join("garbage.torrent");
    std::fs::write(&garbage, pseudo_random(4096, 8)).unwrap();
    let empty = tmp.path().join("empty.torrent");
    std::fs::write(&empty, b"").unwrap();
    let not_a_dict = tmp.path().join("list.torrent");
    std::fs::write(&not_a_dict, b"li1ei2ee").unwrap();
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let src = seed_dir.join("x.mkv");
    std::fs::write(&src, pseudo_random(MIB, 9)).unwrap();
    let seeder = Seeder::start(&seed_dir, &src, None).await;
    let truncated = tmp.path().join("truncated.torrent");
    std::fs::write(
        &truncated,
        &seeder.torrent_bytes[..seeder.torrent_bytes.len() / 2],
    )
    .unwrap();
    // Well-formed bencode, but a file path that climbs out of the download dir.
    let traversal = tmp.path().join("traversal.torrent");
    let mut t = b"d4:infod5:filesld6:lengthi10e4:pathl2:..4:evileee4:name1:x\
                  12:piece lengthi16384e6:pieces20:"
        .to_vec();
    t.extend_from_slice(&[7u8; 20]);
    t.extend_from_slice(b"ee");
    std::fs::write(&traversal, &t).unwrap();
    for path in [&garbage, &empty, &not_a_dict, &truncated, &traversal] {
        let err = TorrentInput::open(TorrentSpec::File(path.clone()), opts(&dl, vec![]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TorrentError::BadTorrent(_)),
            "{path:?}: {err:?}"
        );
        eprintln!("{}: {err}", path.display());
    }
    let err = TorrentInput::open(
        TorrentSpec::File(tmp.path().join("missing.torrent")),
        opts(&dl, vec![]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TorrentError::Io { .. }), "{err:?}");

    // Malformed magnets.
    for link in [
        "magnet:?xt=urn:btih:zzzz",
        "magnet:?dn=nothing",
        "http://example.invalid/x.torrent",
        "not a link",
    ] {
        let err = TorrentInput::open(TorrentSpec::Magnet(link.into()), opts(&dl, vec![]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TorrentError::BadTorrent(_)),
            "{link}: {err:?}"
        );
    }

    // A valid magnet and nobody to ask: fails at once.
    let magnet = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    let t0 = Instant::now();
    let err = TorrentInput::open(TorrentSpec::Magnet(magnet.clone()), opts(&dl, vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, TorrentError::Metadata(_)), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    // A peer that accepts connections but never answers: bounded by metadata_timeout.
    let silent = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut o = opts(&dl, vec![silent_addr]);
    o.metadata_timeout = Duration::from_millis(1500);
    let t0 = Instant::now();
    let err = TorrentInput::open(TorrentSpec::Magnet(magnet), o)
        .await
        .unwrap_err();
    let took = t0.elapsed();
    eprintln!("silent peer: {err} after {took:?}");
    assert!(matches!(err, TorrentError::MetadataTimeout(_)), "{err:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    holder.abort();
    seeder.stop().await;
}

/// The real consumer: FFmpeg's http protocol reads an MP4 whose `moov` atom is at the end
/// (it seeks there with a Range request) while the download is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ffprobe_reads_mp4_with_moov_at_end_while_downloading() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let src = seed_dir.join("moov-at-end.mp4");
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=30:size=640x360:rate=25")
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M"])
        .args(["-pix_fmt", "yuv420p", "-y"])
        .arg(&src)
        .status()
        .await
        .expect("ffmpeg CLI");
    assert!(status.success());
    let data = std::fs::read(&src).unwrap();
    let moov = data.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = data.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov > mdat, "test file must have moov after mdat");

    // 512 KiB/s: the file takes several seconds; ffprobe needs the start and the end.
    let seeder = Seeder::start(&seed_dir, &src, Some(512 * 1024)).await;
    let torrent = seeder.write_torrent(tmp.path());
    let input = TorrentInput::open(
        TorrentSpec::File(torrent),
        opts(&tmp.path().join("dl"), vec![seeder.addr]),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration,format_name",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(input.url())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .await
        .expect("ffprobe CLI");
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p = input.progress();
    eprintln!(
        "ffprobe in {took:?}: {stdout:?} {:?}; progress {}/{}",
        String::from_utf8_lossy(&out.stderr),
        p.downloaded_bytes,
        p.total_bytes
    );
    assert!(out.status.success());
    assert!(stdout.contains("format_name=mov,mp4"), "{stdout}");
    let duration: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 30.0).abs() < 0.5, "duration {duration}");
    assert!(
        !p.finished,
        "download finished before ffprobe: not a streaming test"
    );
    input.shutdown().await;
    seeder.stop().await;
}
