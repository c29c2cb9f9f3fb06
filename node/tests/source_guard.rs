//! No server-side request forgery through ingest, against real parts: a tracker and a node
//! in process (real HTTP on loopback), a real librqbit seeding session on loopback, real
//! FFmpeg libraries.
//!
//! - A movie request (a user's word) whose magnet or `.torrent` names a tracker or `x.pe`
//!   peer on a loopback or private address fails before the node connects anywhere: a
//!   listener on the named loopback ports sees no connection. With
//!   `[ingest] allow_private_sources = true` the same kind of request (a loopback swarm) is
//!   ingested.
//! - A torrent download bigger than `max_file_bytes`, or than the admitted quota, is refused
//!   before a byte of it is downloaded.
//! - A torrent (or file) holding an HLS playlist or a DASH manifest fails to ingest with
//!   "format not allowed" and fetches nothing: the loopback listener the playlist points at
//!   sees no connection (while `ffprobe` with http allowed does connect to it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
mod common;
#[path = "common_membership/mod.rs"]
mod common_membership;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use auth_support::{wait_for, TestNode, TestTracker, PASSWORD};
use base64::Engine;
use librqbit::{CreateTorrentOptions, ListenerOptions, Session, SessionOptions};
use reelnet_node::config::RungConfig;
use reelnet_node::ingest::job::{self, IngestProgress, IngestRequest};
use reelnet_node::ingest::torrent::{
    Admit, TorrentError, TorrentInput, TorrentOptions, TorrentSpec,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A loopback TCP port that records whether anything connected to it (the kernel completes
/// a loopback handshake into the backlog at once, so `accept` sees any attempt).
struct Watched(TcpListener);

impl Watched {
    fn new() -> Self {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.set_nonblocking(true).unwrap();
        Self(l)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Connections accepted so far (drains the backlog).
    fn connections(&self) -> usize {
        let mut n = 0;
        while self.0.accept().is_ok() {
            n += 1;
        }
        n
    }
}

/// A loopback-only librqbit session seeding `path`.
struct Seeder {
    session: Arc<Session>,
    addr: SocketAddr,
    torrent: Vec<u8>,
    info_hash: String,
}

impl Seeder {
    async fn start(dir: &Path, path: &Path) -> Seeder {
        let session = Session::new_with_opts(
            dir.to_owned(),
            SessionOptions {
                dht: None,
                disable_trackers: true,
                disable_local_service_discovery: true,
                listen: Some(ListenerOptions {
                    listen_addr: (Ipv4Addr::LOCALHOST, 0).into(),
                    enable_upnp_port_forwarding: false,
                    ..Default::default()
                }),
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
                    piece_length: Some(64 * 1024),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        handle.wait_until_completed().await.unwrap();
        Seeder {
            session,
            addr,
            torrent: torrent.as_bytes().unwrap().to_vec(),
            info_hash: torrent.info_hash().as_string(),
        }
    }

    fn write_torrent(&self, dir: &Path) -> PathBuf {
        let p = dir.join("source.torrent");
        std::fs::write(&p, &self.torrent).unwrap();
        p
    }

    async fn stop(self) {
        self.session.stop().await;
    }
}

/// A minimal single-file `.torrent` (bencoded by hand) naming these trackers.
fn torrent_with_trackers(announce: &str, announce_list: &[&str]) -> Vec<u8> {
    let s = |v: &str| format!("{}:{v}", v.len()).into_bytes();
    let mut t = b"d8:announce".to_vec();
    t.extend(s(announce));
    if !announce_list.is_empty() {
        t.extend(b"13:announce-listl");
        for url in announce_list {
            t.push(b'l');
            t.extend(s(url));
            t.push(b'e');
        }
        t.push(b'e');
    }
    t.extend(b"4:infod6:lengthi1000e4:name9:movie.mkv12:piece lengthi16384e6:pieces20:");
    t.extend([0u8; 20]);
    t.extend(b"ee");
    t
}

fn one_rung(config: &mut reelnet_node::config::NodeConfig) {
    config.ingest.segment_secs = 2;
    config.ingest.preset = "ultrafast".into();
    config.ingest.rungs = vec![RungConfig {
        name: "240p".into(),
        height: 240,
        video_bitrate: 300_000,
        audio_bitrate: 64_000,
    }];
    config.ingest.public_torrents = false;
}

/// A tracker and a node that claims movie requests (`allow_private_sources` as given), and
/// a verified user's access token.
async fn network(allow_private: bool) -> (TestTracker, TestNode, String) {
    let tracker = TestTracker::start_with(|c| c.requests.free_per_month = 50).await;
    let node = TestNode::start_configured(
        &tracker.url,
        |_| {},
        |c| {
            one_rung(c);
            c.requests.enabled = true;
            c.requests.poll_secs = 1;
            c.requests.capacity = 4;
            c.requests.min_headroom_bytes = 0;
            c.ingest.allow_private_sources = allow_private;
        },
    )
    .await;
    let http = reqwest::Client::new();
    let email = "asker@example.test";
    let r = http
        .post(format!("{}/api/v1/auth/register", tracker.url))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Asker"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "register: {}", r.status());
    let link = tracker
        .smtp
        .wait_for_link(email, "", "/verify?token=")
        .await;
    let token = link.split("token=").nth(1).unwrap();
    let r = http
        .post(format!("{}/api/v1/auth/verify", tracker.url))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "verify: {}", r.status());
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", tracker.url))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    (tracker, node, access)
}

/// Files a movie request; returns its id.
async fn request(tracker: &TestTracker, access: &str, tmdb_id: u64, source: Value) -> String {
    let mut body = json!({"tmdb_id": tmdb_id, "title": format!("Requested {tmdb_id}")});
    if let (Some(b), Some(s)) = (body.as_object_mut(), source.as_object()) {
        b.extend(s.clone());
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/requests", tracker.url))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// The user's view of request `id`.
async fn state_of(tracker: &TestTracker, access: &str, id: &str) -> Value {
    let list: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/requests", tracker.url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array()
        .and_then(|l| l.iter().find(|r| r["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_failed(tracker: &TestTracker, access: &str, id: &str) -> String {
    let (reason, _) = wait_for("the request to fail", Duration::from_secs(60), || async {
        let r = state_of(tracker, access, id).await;
        assert_ne!(r["state"], "ready", "{r}");
        (r["state"] == "failed").then(|| r["reason"].as_str().unwrap_or("").to_owned())
    })
    .await;
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_naming_private_trackers_or_peers_fail_before_any_connection() {
    let (tracker, _node, access) = network(false).await;
    let peer = Watched::new();
    let announce = Watched::new();
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let magnet = |params: &str| json!({ "magnet": format!("magnet:?xt=urn:btih:{hash}{params}") });
    let b64 = |t: Vec<u8>| json!({ "torrent_base64": base64::engine::general_purpose::STANDARD.encode(t) });
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "x.pe and tr= on loopback",
            magnet(&format!(
                "&tr=http%3A%2F%2F127.0.0.1%3A{}%2Fannounce&x.pe=127.0.0.1%3A{}",
                announce.port(),
                peer.port()
            )),
            "loopback",
        ),
        (
            "x.pe in 10.0.0.0/8",
            magnet("&x.pe=10.11.12.13%3A6881"),
            "private",
        ),
        (
            "x.pe IPv4-mapped loopback",
            magnet(&format!(
                "&x.pe=%5B%3A%3Affff%3A127.0.0.1%5D%3A{}",
                peer.port()
            )),
            "IPv4-mapped",
        ),
        (
            "x.pe on a link-local metadata address",
            magnet("&x.pe=169.254.169.254%3A80"),
            "link-local",
        ),
        (
            "x.pe host name",
            magnet(&format!("&x.pe=localhost%3A{}", peer.port())),
            "ip:port",
        ),
        (
            ".torrent announcing to a name that resolves to loopback",
            b64(torrent_with_trackers(
                &format!("http://localhost:{}/announce", announce.port()),
                &[],
            )),
            "resolves to",
        ),
        (
            ".torrent with a private tracker in its announce-list",
            // A public tracker first (never contacted: the private one refuses the torrent).
            b64(torrent_with_trackers(
                "udp://93.184.215.14:6969",
                &["udp://192.168.1.1:6969"],
            )),
            "private",
        ),
    ];
    let mut ids = Vec::new();
    for (i, (what, source, _)) in cases.iter().enumerate() {
        ids.push(request(&tracker, &access, 9100 + i as u64, source.clone()).await);
        eprintln!("filed: {what}");
    }
    for ((what, _, want), id) in cases.iter().zip(&ids) {
        let reason = wait_failed(&tracker, &access, id).await;
        assert!(
            reason.contains(want) && reason.contains("source refused"),
            "{what}: {reason}"
        );
        eprintln!("{what}: {reason}");
    }
    assert_eq!(peer.connections(), 0, "the node connected to the x.pe peer");
    assert_eq!(
        announce.connections(),
        0,
        "the node connected to the tracker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_private_sources_a_request_from_a_loopback_swarm_is_ingested() {
    let (tracker, _node, access) = network(true).await;
    let dir = tempfile::tempdir().unwrap();
    let movie = common::make_movie(dir.path(), "wanted.mp4", 6, 240);
    let seeder = Seeder::start(&dir.path().join("seed"), &movie).await;
    // The magnet names the loopback seeder (and a loopback tracker, which a test node never
    // contacts: trackers are off without public_torrents).
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce&x.pe=127.0.0.1%3A{}",
        seeder.info_hash,
        seeder.addr.port()
    );
    let id = request(&tracker, &access, 9200, json!({ "magnet": magnet })).await;
    let (ready, took) = wait_for(
        "the request to be ingested",
        Duration::from_secs(120),
        || async {
            let r = state_of(&tracker, &access, &id).await;
            assert_ne!(r["state"], "failed", "{r}");
            (r["state"] == "ready").then_some(r)
        },
    )
    .await;
    assert_eq!(ready["movie_id"], "tmdb-9200", "{ready}");
    eprintln!("ingested from the loopback swarm in {took:?}");
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_over_the_size_cap_or_the_quota_are_refused_before_downloading() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.mkv");
    std::fs::write(&file, vec![7u8; 300_000]).unwrap();
    let seeder = Seeder::start(&dir.path().join("seed"), &file).await;
    let torrent = seeder.write_torrent(dir.path());
    let opts = |sub: &str| TorrentOptions {
        download_dir: dir.path().join(sub),
        peers: vec![seeder.addr],
        metadata_timeout: Duration::from_secs(10),
        ..TorrentOptions::default()
    };
    let downloaded = |sub: &str| -> u64 {
        walk(&dir.path().join(sub))
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum()
    };

    let err = TorrentInput::open(
        TorrentSpec::File(torrent.clone()),
        TorrentOptions {
            max_file_bytes: Some(299_999),
            ..opts("capped")
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TorrentError::TooLarge {
                len: 300_000,
                max: 299_999
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("max_source_bytes"), "{err}");
    assert_eq!(downloaded("capped"), 0);

    // A magnet: the size is known once the metadata came, still before any piece.
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&x.pe=127.0.0.1%3A{}",
        seeder.info_hash,
        seeder.addr.port()
    );
    let err = TorrentInput::open(
        TorrentSpec::Magnet(magnet),
        TorrentOptions {
            admit: Some(Admit::new(|len| {
                Err(format!("{len} bytes do not fit in the disk quota"))
            })),
            ..opts("quota")
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, TorrentError::NotAdmitted { len: 300_000, reason } if reason.contains("quota")),
        "{err}"
    );
    assert_eq!(downloaded("quota"), 0);

    // Through the ingest job: the node's store quota is smaller than the download.
    let mut config = reelnet_node::config::NodeConfig {
        data_dir: dir.path().join("node"),
        ..Default::default()
    };
    one_rung(&mut config);
    config.storage.quota_bytes = 200_000;
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let ctx = Arc::new(reelnet_node::ingest_context(&config).unwrap());
    let p = ingest_fails(&ctx, torrent.to_str().unwrap(), vec![seeder.addr]).await;
    let err = p.error.unwrap_or_default();
    assert!(err.contains("disk quota exceeded"), "{err}");
    assert_eq!(downloaded("node/downloads"), 0);
    assert_eq!(
        ctx.store.usage().reserved_bytes,
        0,
        "the reservation is gone"
    );
    seeder.stop().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
    out
}

/// Runs one operator ingest, which must fail; returns its last progress.
async fn ingest_fails(
    ctx: &Arc<reelnet_node::ingest::job::IngestContext>,
    source: &str,
    peers: Vec<SocketAddr>,
) -> IngestProgress {
    let req = IngestRequest {
        source: source.to_owned(),
        peers,
        ..IngestRequest::default()
    };
    let (tx, rx) = tokio::sync::watch::channel(IngestProgress::default());
    let res = tokio::time::timeout(
        Duration::from_secs(60),
        job::run(ctx.clone(), req, tx, CancellationToken::new()),
    )
    .await
    .expect("the ingest did not end");
    assert!(res.is_err(), "the ingest succeeded");
    let p = rx.borrow().clone();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_and_manifests_in_a_torrent_fail_to_ingest_without_any_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let target = Watched::new();
    let base = format!("http://127.0.0.1:{}", target.port());
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:4.0,\n{base}/segment0.ts\n#EXTINF:4.0,\n{base}/segment1.ts\n#EXT-X-ENDLIST\n"
    );
    let manifest = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" type="static" mediaPresentationDuration="PT8S" minBufferTime="PT2S">
  <BaseURL>{base}/</BaseURL>
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <Representation id="v" bandwidth="300000" codecs="avc1.42c01e" width="426" height="240">
        <BaseURL>video.mp4</BaseURL>
        <SegmentBase indexRange="0-99"><Initialization range="0-99"/></SegmentBase>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#
    );
    let mut config = reelnet_node::config::NodeConfig {
        data_dir: dir.path().join("node"),
        ..Default::default()
    };
    one_rung(&mut config);
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let ctx = Arc::new(reelnet_node::ingest_context(&config).unwrap());

    for (name, body) in [("movie.m3u8", &playlist), ("movie.mpd", &manifest)] {
        let src = dir.path().join(format!("src-{name}"));
        std::fs::create_dir_all(&src).unwrap();
        let file = src.join(name);
        std::fs::write(&file, body).unwrap();

        // Through a torrent (the loopback torrent reader).
        let seeder = Seeder::start(&dir.path().join(format!("seed-{name}")), &file).await;
        let torrent = seeder.write_torrent(&src);
        let p = ingest_fails(&ctx, torrent.to_str().unwrap(), vec![seeder.addr]).await;
        let err = p.error.unwrap_or_default();
        assert!(
            err.contains("format not allowed"),
            "{name} by torrent: {err}"
        );
        seeder.stop().await;

        // As a local file.
        let p = ingest_fails(&ctx, file.to_str().unwrap(), vec![]).await;
        let err = p.error.unwrap_or_default();
        assert!(
            err.contains("format not allowed"),
            "{name} as a file: {err}"
        );
        assert_eq!(
            target.connections(),
            0,
            "{name}: the node fetched from the listener"
        );
    }

    // The playlist really points at the listener: FFmpeg with http allowed and no format
    // whitelist (here the CLI) connects to it.
    let file = dir.path().join("src-movie.m3u8").join("movie.m3u8");
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "2000000"])
        .args(["-protocol_whitelist", "file,http,tcp"])
        .arg(&file)
        .kill_on_drop(true)
        .output();
    let _ = tokio::time::timeout(Duration::from_secs(20), probe).await;
    assert!(
        target.connections() > 0,
        "control: ffprobe did not fetch the playlist's segment"
    );
}
