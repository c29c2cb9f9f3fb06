//! Movie metadata end to end with real parts: in-process nodes (`Node::bind`) on 127.0.0.1
//! that ingest small movies made by the FFmpeg CLI through the admin API, a TMDb stand-in (a
//! warp server answering TMDb-shaped JSON and real PNG bytes, reached through the node's real
//! TMDb client), a second node joined by bootstrap that fetches images from the first and
//! verifies them, and a peer that serves wrong image bytes. Search, paging, availability
//! and the error contract run against a gateway whose catalog is fed signed manifests.
//! Last, `node/openapi.yaml` is checked against the routes the gateway answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common_gateway;
#[path = "common_membership/mod.rs"]
mod common_membership;
use common_membership::MembershipTracker;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reelnet_node::config::{
    ContainerName, GatewayConfig, IngestConfig, MetadataConfig, NodeConfig, P2pConfig, QuicConfig,
    RungConfig, TrackerLink,
};
use reelnet_node::{admin, Node};
use reelnet_proto::{
    CatalogRecord, Container, Held, Manifest, MovieId, MovieMeta, NodeId, Rendition, SegmentEntry,
    SegmentHash, SegmentRange, SignedCatalogRecord, SignedManifest, Track,
};
use serde_json::{json, Value};
use warp::Filter;

// ---------------------------------------------------------------------------------------
// Media and servers

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

/// A real PNG of one colour, `w`x`h`.
fn make_png(path: &Path, color: &str, w: u32, h: u32) -> Vec<u8> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("color={color}:s={w}x{h}"),
        "-frames:v",
        "1",
        path.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    bytes
}

/// A 3-second 320x240 H.264/AAC clip.
fn make_clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=3",
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
        "-shortest",
        path.to_str().unwrap(),
    ]);
    path
}

async fn serve<F>(routes: F) -> String
where
    F: Filter<Error = warp::Rejection> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(std::future::pending::<()>())
            .run()
            .await;
    });
    format!("http://{addr}")
}

/// A TMDb stand-in: `/3/movie/603?api_key=test-key` and `/t/p/{size}/{file}` images.
struct Tmdb {
    url: String,
    movie_hits: Arc<AtomicUsize>,
    image_hits: Arc<AtomicUsize>,
}

const API_KEY: &str = "test-key";

async fn tmdb_stand_in(poster: Vec<u8>, backdrop: Vec<u8>, down: bool) -> Tmdb {
    let movie_hits = Arc::new(AtomicUsize::new(0));
    let image_hits = Arc::new(AtomicUsize::new(0));
    let movie = {
        let hits = movie_hits.clone();
        warp::path!("3" / "movie" / u64)
            .and(warp::query::<HashMap<String, String>>())
            .map(move |id: u64, q: HashMap<String, String>| {
                hits.fetch_add(1, Ordering::SeqCst);
                let status = if down {
                    500
                } else if q.get("api_key").map(String::as_str) != Some(API_KEY) {
                    401
                } else if id != 603 {
                    404
                } else {
                    200
                };
                let body = json!({
                    "id": 603,
                    "title": "The Matrix",
                    "release_date": "1999-03-30",
                    "overview": "A hacker learns what the world really is.",
                    "genres": [{"id": 28, "name": "Action"}, {"id": 878, "name": "Science Fiction"}],
                    "runtime": 136,
                    "poster_path": "/poster.png",
                    "backdrop_path": "/backdrop.png",
                    "vote_average": 8.2
                });
                warp::reply::with_status(
                    warp::reply::json(&body),
                    warp::http::StatusCode::from_u16(status).unwrap(),
                )
            })
    };
    let images = {
        let hits = image_hits.clone();
        warp::path!("t" / "p" / String / String).map(move |size: String, file: String| {
            hits.fetch_add(1, Ordering::SeqCst);
            let bytes = match (size.as_str(), file.as_str()) {
                ("w500", "poster.png") => poster.clone(),
                ("w1280", "backdrop.png") => backdrop.clone(),
                _ => Vec::new(),
            };
            let status = if bytes.is_empty() { 404 } else { 200 };
            warp::http::Response::builder()
                .status(status)
                .header("content-type", "image/png")
                .body(bytes)
                .unwrap()
        })
    };
    let url = serve(movie.or(images)).await;
    Tmdb {
        url,
        movie_hits,
        image_hits,
    }
}

// The p2p port of a node another one bootstraps from: picked before the node starts (an
// in-process node does not report its libp2p address), so racy.
use reelnet_testkit::free_port;

/// An in-process node's config: loopback everywhere, a one-rung ladder, TMDb at `tmdb`.
fn node_config(
    dir: &Path,
    tmdb: Option<&str>,
    p2p_port: u16,
    bootstrap: Vec<String>,
    public_url: Option<String>,
) -> NodeConfig {
    let metadata = match tmdb {
        Some(url) => MetadataConfig {
            tmdb_api_key: API_KEY.into(),
            tmdb_api_url: format!("{url}/3"),
            tmdb_image_url: format!("{url}/t/p"),
        },
        None => MetadataConfig::default(),
    };
    NodeConfig {
        data_dir: dir.to_owned(),
        // Port 0: the catalog record advertises the port the gateway got.
        gateway: GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url,
            ..GatewayConfig::default()
        },
        p2p: P2pConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{p2p_port}"),
            bootstrap,
            mdns: false,
            ..P2pConfig::default()
        },
        quic: QuicConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise: None,
        },
        tracker: TrackerLink {
            url: "http://127.0.0.1:9".into(),
            ..TrackerLink::default()
        },
        ingest: IngestConfig {
            segment_secs: 1,
            container: ContainerName::Fmp4,
            preset: "ultrafast".into(),
            rungs: vec![RungConfig {
                name: "240p".into(),
                height: 240,
                video_bitrate: 300_000,
                audio_bitrate: 64_000,
            }],
            public_torrents: false,
            ..IngestConfig::default()
        },
        metadata,
        ..NodeConfig::default()
    }
}

/// Polls `check` every 100 ms until it gives `Some`; panics after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hands an ingest to the node on `data_dir` through its admin API and waits for the end.
async fn ingest(data_dir: &Path, req: Value) -> Value {
    let info = admin::read_info(data_dir).expect("the node wrote admin.json");
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/admin/v1/ingest", info.url))
        .bearer_auth(&info.token)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let id = res.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    eventually("the ingest to end", Duration::from_secs(120), || {
        let http = http.clone();
        let (url, token) = (info.url.clone(), info.token.clone());
        async move {
            let p: Value = http
                .get(format!("{url}/admin/v1/ingest/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            matches!(p["state"].as_str(), Some("done" | "failed")).then_some(p)
        }
    })
    .await
}

async fn get_json(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Waits until `base`'s catalog lists `movie` as complete, and returns its card.
async fn wait_complete(base: &str, movie: &str) -> Value {
    eventually(
        &format!("{movie} complete in {base}'s catalog"),
        Duration::from_secs(60),
        || async {
            let (_, page) = get_json(&format!("{base}/api/v1/catalog")).await;
            page["results"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == movie && c["availability"]["state"] == "complete")
                .cloned()
        },
    )
    .await
}

fn url_of(node: &Node) -> String {
    format!("http://{}", node.gateway_addr())
}

/// Starts a node that is a member of `mt`'s network.
async fn bind(mt: &MembershipTracker, config: NodeConfig) -> Result<Node, reelnet_node::NodeError> {
    Node::bind(mt.join(config).await).await
}

async fn stop(node: Node) {
    node.shutdown();
    tokio::time::timeout(Duration::from_secs(20), node.join())
        .await
        .expect("node stops");
}

// ---------------------------------------------------------------------------------------
// TMDb

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmdb_metadata_is_fetched_once_cached_and_served() {
    let mt = MembershipTracker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let poster = make_png(&dir.path().join("tmdb/poster.png"), "red", 200, 300);
    let backdrop = make_png(&dir.path().join("tmdb/backdrop.png"), "blue", 640, 360);
    let tmdb = tmdb_stand_in(poster.clone(), backdrop.clone(), false).await;
    let clip = make_clip(dir.path());
    let data = dir.path().join("node");
    let node = bind(&mt, node_config(&data, Some(&tmdb.url), 0, vec![], None))
        .await
        .unwrap();
    let base = url_of(&node);

    let done = ingest(
        &data,
        json!({ "source": clip, "title": "matrix rip", "tmdb_id": 603, "overview": "from the ingest" }),
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["movie_id"], "tmdb-603");
    wait_complete(&base, "tmdb-603").await;

    let (status, movie) = get_json(&format!("{base}/api/v1/movies/tmdb-603")).await;
    assert_eq!(status, 200, "{movie}");
    assert_eq!(movie["title"], "The Matrix");
    assert_eq!(movie["year"], 1999);
    assert_eq!(
        movie["overview"],
        "A hacker learns what the world really is."
    );
    assert_eq!(movie["genres"], json!(["Action", "Science Fiction"]));
    assert_eq!(movie["runtime_min"], 136);
    assert_eq!(movie["tmdb_id"], 603);
    assert_eq!(movie["renditions"], json!(["240p"]));
    assert!(
        (movie["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.6,
        "{movie}"
    );
    assert_eq!(movie["availability"]["state"], "complete");
    assert_eq!(movie["availability"]["percent"], 100.0);
    assert_eq!(movie["nodes"], 1);
    assert!(movie["added_at"].as_u64().unwrap() > 1_700_000_000);
    let poster_url = format!("/images/{}", SegmentHash::of(&poster));
    let backdrop_url = format!("/images/{}", SegmentHash::of(&backdrop));
    assert_eq!(movie["poster_url"], poster_url.as_str());
    assert_eq!(movie["backdrop_url"], backdrop_url.as_str());

    // The images, with immutable caching headers.
    let res = reqwest::get(format!("{base}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    let etag = format!("\"{}\"", SegmentHash::of(&poster));
    assert_eq!(h["etag"], etag.as_str());
    assert_eq!(res.bytes().await.unwrap().as_ref(), poster.as_slice());
    let res = reqwest::Client::new()
        .get(format!("{base}{poster_url}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = reqwest::get(format!("{base}{backdrop_url}")).await.unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), backdrop.as_slice());

    // Cached: more requests, search included, do not ask TMDb again.
    for _ in 0..3 {
        let (status, _) = get_json(&format!("{base}/api/v1/movies/tmdb-603")).await;
        assert_eq!(status, 200);
    }
    let (_, page) = get_json(&format!("{base}/api/v1/catalog?q=matrx")).await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["results"][0]["title"], "The Matrix");
    assert_eq!(page["results"][0]["poster_url"], poster_url.as_str());
    // The title it was ingested under is searchable too.
    let (_, page) = get_json(&format!("{base}/api/v1/catalog?q=rip")).await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(tmdb.movie_hits.load(Ordering::SeqCst), 1);
    assert_eq!(tmdb.image_hits.load(Ordering::SeqCst), 2);

    // After a restart the cache on disk answers.
    stop(node).await;
    let node = bind(&mt, node_config(&data, Some(&tmdb.url), 0, vec![], None))
        .await
        .unwrap();
    let base = url_of(&node);
    wait_complete(&base, "tmdb-603").await;
    let (_, movie) = get_json(&format!("{base}/api/v1/movies/tmdb-603")).await;
    assert_eq!(movie["title"], "The Matrix");
    assert_eq!(movie["poster_url"], poster_url.as_str());
    let res = reqwest::get(format!("{base}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tmdb.movie_hits.load(Ordering::SeqCst), 1);
    assert_eq!(tmdb.image_hits.load(Ordering::SeqCst), 2);
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmdb_down_falls_back_to_the_manifest_meta() {
    let mt = MembershipTracker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tmdb = tmdb_stand_in(Vec::new(), Vec::new(), true).await;
    let poster = make_png(&dir.path().join("own-poster.png"), "green", 100, 150);
    let clip = make_clip(dir.path());
    let data = dir.path().join("node");
    let node = bind(&mt, node_config(&data, Some(&tmdb.url), 0, vec![], None))
        .await
        .unwrap();
    let base = url_of(&node);
    let done = ingest(
        &data,
        json!({
            "source": clip, "title": "Local Matrix", "year": 1999, "tmdb_id": 603,
            "overview": "Our own words.", "genres": ["Drama", "drama", "Thriller"],
            "runtime_min": 99, "poster": dir.path().join("own-poster.png"),
        }),
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    wait_complete(&base, "tmdb-603").await;

    let (status, movie) = get_json(&format!("{base}/api/v1/movies/tmdb-603")).await;
    assert_eq!(status, 200, "{movie}");
    assert_eq!(movie["title"], "Local Matrix");
    assert_eq!(movie["year"], 1999);
    assert_eq!(movie["overview"], "Our own words.");
    assert_eq!(movie["genres"], json!(["Drama", "Thriller"]));
    assert_eq!(movie["runtime_min"], 99);
    assert_eq!(movie["tmdb_id"], 603);
    assert_eq!(movie["backdrop_url"], Value::Null);
    let poster_url = format!("/images/{}", SegmentHash::of(&poster));
    assert_eq!(movie["poster_url"], poster_url.as_str());
    let res = reqwest::get(format!("{base}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), poster.as_slice());

    // The failure is remembered: TMDb is not asked again at once.
    for _ in 0..3 {
        get_json(&format!("{base}/api/v1/movies/tmdb-603")).await;
        get_json(&format!("{base}/api/v1/catalog?genre=drama")).await;
    }
    let (_, page) = get_json(&format!("{base}/api/v1/catalog?genre=drama")).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["genres"], json!(["Drama", "Thriller"]));
    assert_eq!(tmdb.movie_hits.load(Ordering::SeqCst), 1);
    assert_eq!(tmdb.image_hits.load(Ordering::SeqCst), 0);
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ingest_metadata_is_refused_before_transcoding() {
    let mt = MembershipTracker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path());
    std::fs::write(dir.path().join("fake.png"), b"GIF89a not really").unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        br#"{"title": "x", "colour": "red"}"#,
    )
    .unwrap();
    let data = dir.path().join("node");
    let node = bind(&mt, node_config(&data, None, 0, vec![], None))
        .await
        .unwrap();
    for (req, expect) in [
        (
            json!({ "source": clip, "poster": dir.path().join("fake.png") }),
            "not a PNG",
        ),
        (
            json!({ "source": clip, "meta_file": dir.path().join("bad.json") }),
            "colour",
        ),
        (
            json!({ "source": clip, "overview": "x".repeat(5000) }),
            "overview",
        ),
        (
            json!({ "source": clip, "genres": (0..17).map(|i| format!("g{i}")).collect::<Vec<_>>() }),
            "genres",
        ),
    ] {
        let done = ingest(&data, req).await;
        assert_eq!(done["state"], "failed", "{done}");
        let err = done["error"].as_str().unwrap();
        assert!(err.contains(expect), "{err}");
        assert_eq!(done["segments"], 0, "{done}");
    }
    let (_, page) = get_json(&format!("{}/api/v1/catalog", url_of(&node))).await;
    assert_eq!(page["total"], 0);
    stop(node).await;
}

// ---------------------------------------------------------------------------------------
// Images between nodes

fn write_sidecar(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let poster = make_png(&dir.join("poster.png"), "yellow", 200, 300);
    let backdrop = make_png(&dir.join("art/backdrop.png"), "purple", 320, 180);
    std::fs::write(
        dir.join("movie.json"),
        serde_json::to_vec(&json!({
            "title": "Sidecar Story", "year": 2020,
            "overview": "Told by a JSON file.", "genres": ["Documentary"], "runtime_min": 88,
            "poster": "poster.png", "backdrop": "art/backdrop.png"
        }))
        .unwrap(),
    )
    .unwrap();
    (poster, backdrop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_images_are_fetched_from_the_origin_and_verified() {
    let mt = MembershipTracker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let meta_dir = dir.path().join("meta");
    let (poster, backdrop) = write_sidecar(&meta_dir);
    let clip = make_clip(dir.path());
    let a_port = free_port();
    let a_data = dir.path().join("a");
    let a = bind(&mt, node_config(&a_data, None, a_port, vec![], None))
        .await
        .unwrap();
    let done = ingest(
        &a_data,
        json!({ "source": clip, "meta_file": meta_dir.join("movie.json") }),
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    let movie = done["movie_id"].as_str().unwrap().to_owned();
    assert_eq!(movie, MovieId::derive("Sidecar Story", Some(2020)).as_str());

    let b = bind(
        &mt,
        node_config(
            &dir.path().join("b"),
            None,
            0,
            vec![format!("/ip4/127.0.0.1/tcp/{a_port}")],
            None,
        ),
    )
    .await
    .unwrap();
    let b_url = url_of(&b);
    let card = wait_complete(&b_url, &movie).await;
    assert_eq!(card["title"], "Sidecar Story");
    assert_eq!(card["year"], 2020);
    assert_eq!(card["genres"], json!(["Documentary"]));
    assert_eq!(card["runtime_min"], 88);
    let poster_url = format!("/images/{}", SegmentHash::of(&poster));
    assert_eq!(card["poster_url"], poster_url.as_str());
    let (_, detail) = get_json(&format!("{b_url}/api/v1/movies/{movie}")).await;
    assert_eq!(detail["overview"], "Told by a JSON file.");
    assert_eq!(detail["tmdb_id"], Value::Null);
    let backdrop_url = format!("/images/{}", SegmentHash::of(&backdrop));
    assert_eq!(detail["backdrop_url"], backdrop_url.as_str());

    // B has no copy: it fetches from A, verifies and serves.
    let res = reqwest::get(format!("{b_url}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), poster.as_slice());

    // B stored it: with A gone it still serves it.
    stop(a).await;
    let res = reqwest::get(format!("{b_url}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), poster.as_slice());
    // The backdrop it never fetched is not to be had now.
    let res = reqwest::get(format!("{b_url}{backdrop_url}"))
        .await
        .unwrap();
    assert!(
        res.status() == 502 || res.status() == 404,
        "{}",
        res.status()
    );
    let err: Value = res.json().await.unwrap();
    assert!(err["error"].is_string());
    stop(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_image_bytes_from_a_peer_are_refused() {
    let mt = MembershipTracker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let poster = make_png(&dir.path().join("poster.png"), "orange", 200, 300);
    let impostor = make_png(&dir.path().join("impostor.png"), "black", 200, 300);
    let clip = make_clip(dir.path());

    // A's catalog record points at this server instead of A's real gateway. It serves a
    // valid PNG that is not the one named, until `honest` is set.
    let honest = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicUsize::new(0));
    let evil = {
        let (honest, hits, poster) = (honest.clone(), hits.clone(), poster.clone());
        warp::path!("images" / String).map(move |_hash: String| {
            hits.fetch_add(1, Ordering::SeqCst);
            let bytes = if honest.load(Ordering::SeqCst) {
                poster.clone()
            } else {
                impostor.clone()
            };
            warp::http::Response::builder()
                .header("content-type", "image/png")
                .body(bytes)
                .unwrap()
        })
    };
    let evil_url = serve(evil).await;

    let a_port = free_port();
    let a_data = dir.path().join("a");
    let a = bind(
        &mt,
        node_config(&a_data, None, a_port, vec![], Some(evil_url)),
    )
    .await
    .unwrap();
    let done = ingest(
        &a_data,
        json!({ "source": clip, "title": "Fake Poster", "poster": dir.path().join("poster.png") }),
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    let movie = done["movie_id"].as_str().unwrap().to_owned();
    let b = bind(
        &mt,
        node_config(
            &dir.path().join("b"),
            None,
            0,
            vec![format!("/ip4/127.0.0.1/tcp/{a_port}")],
            None,
        ),
    )
    .await
    .unwrap();
    let b_url = url_of(&b);
    wait_complete(&b_url, &movie).await;
    let poster_url = format!("/images/{}", SegmentHash::of(&poster));

    for _ in 0..2 {
        let res = reqwest::get(format!("{b_url}{poster_url}")).await.unwrap();
        assert_eq!(res.status(), 502);
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "image_unavailable");
    }
    // Nothing bad was kept: B asked again the second time.
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    honest.store(true, Ordering::SeqCst);
    let res = reqwest::get(format!("{b_url}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), poster.as_slice());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Now stored: no more asking.
    let res = reqwest::get(format!("{b_url}{poster_url}")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    stop(b).await;
    stop(a).await;
}

// ---------------------------------------------------------------------------------------
// Search, availability and errors over a catalog fed signed manifests

struct Movie<'a> {
    id: MovieId,
    title: &'a str,
    year: Option<u16>,
    genres: &'a [&'a str],
    complete: bool,
    segments: u32,
    created_at: u64,
    expected_ms: Option<u64>,
}

fn sign_movie(key: &SigningKey, m: &Movie<'_>, salt: u8) -> SignedManifest {
    let manifest = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: m.id.clone(),
        title: m.title.into(),
        year: m.year,
        origin: NodeId::from_verifying_key(&key.verifying_key()),
        ingest_id: [salt; 16],
        seq: 1,
        created_at: m.created_at,
        container: Container::MpegTs,
        target_duration_ms: 4000,
        tracks: vec![Track {
            kind: reelnet_proto::manifest::TrackKind::Video,
            media: None,
            rendition: Rendition {
                name: "720p".into(),
                width: 1280,
                height: 720,
                bandwidth: 3_000_000,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                frame_rate_milli: 25_000,
            },
            init: None,
            segments: (0..m.segments)
                .map(|i| SegmentEntry {
                    hash: SegmentHash::of(&[salt, i as u8, (i >> 8) as u8]),
                    duration_ms: 4000,
                    size: 1000,
                })
                .collect(),
        }],
        complete: m.complete,
        meta: MovieMeta {
            genres: m.genres.iter().map(|g| (*g).to_owned()).collect(),
            expected_duration_ms: m.expected_ms,
            ..MovieMeta::default()
        },
    };
    SignedManifest::sign(&manifest, key).unwrap()
}

fn holder_record(key: &SigningKey, held: Vec<Held>) -> SignedCatalogRecord {
    let now = reelnet_node::unix_now();
    let record = CatalogRecord {
        node: NodeId::from_verifying_key(&key.verifying_key()),
        quic_addr: "127.0.0.1:9".into(),
        gateway_url: "http://127.0.0.1:9".into(),
        held,
        seq: 1,
        issued_at: now,
        expires_at: now + 600,
        replica: true,
        certificate: Vec::new(),
    };
    SignedCatalogRecord::sign(&record, key).unwrap()
}

#[tokio::test]
async fn search_ranks_pages_and_reports_availability() {
    let gw = common_gateway::Gateway::start().await;
    let base = gw.url.clone();
    let origin = SigningKey::from_bytes(&[31; 32]);
    let other = SigningKey::from_bytes(&[32; 32]);
    let movies = [
        Movie {
            id: MovieId::from_tmdb(603),
            title: "The Matrix",
            year: Some(1999),
            genres: &["Action", "Science Fiction"],
            complete: true,
            segments: 10,
            created_at: 1_000,
            expected_ms: None,
        },
        Movie {
            id: MovieId::from_tmdb(604),
            title: "The Matrix Reloaded",
            year: Some(2003),
            genres: &["Action"],
            complete: true,
            segments: 10,
            created_at: 2_000,
            expected_ms: None,
        },
        Movie {
            id: MovieId::from_tmdb(605),
            title: "The Matrix Revolutions",
            year: Some(2003),
            genres: &["Action"],
            // Still ingesting: 5 of an expected 20 segments (4 s each).
            complete: false,
            segments: 5,
            created_at: 3_000,
            expected_ms: Some(80_000),
        },
        Movie {
            id: MovieId::derive("Forrest Gump", Some(1994)),
            title: "Forrest Gump",
            year: Some(1994),
            genres: &["Drama"],
            complete: true,
            segments: 10,
            created_at: 4_000,
            expected_ms: None,
        },
        Movie {
            id: MovieId::derive("Nobody Holds This", None),
            title: "Nobody Holds This",
            year: None,
            genres: &["Horror"],
            complete: true,
            segments: 3,
            created_at: 5_000,
            expected_ms: None,
        },
    ];
    let mut held_by_origin = Vec::new();
    let mut held_by_other = Vec::new();
    for (i, m) in movies.iter().enumerate() {
        let signed = sign_movie(&origin, m, i as u8 + 1);
        gw.catalog.offer_manifest(signed.clone()).await.unwrap();
        let held = Held {
            manifest: signed.id(),
            movie: m.id.clone(),
            complete: m.complete,
            ranges: if m.complete {
                vec![]
            } else {
                vec![SegmentRange {
                    track: 0,
                    start: 0,
                    end: m.segments,
                }]
            },
        };
        match m.title {
            "Nobody Holds This" => {}
            "The Matrix" => {
                held_by_origin.push(held.clone());
                held_by_other.push(held);
            }
            _ => held_by_origin.push(held),
        }
    }
    gw.catalog
        .offer_record(holder_record(&origin, held_by_origin))
        .await
        .unwrap();
    gw.catalog
        .offer_record(holder_record(&other, held_by_other))
        .await
        .unwrap();

    // Browse: newest first, every genre listed.
    let (status, page) = get_json(&format!("{base}/api/v1/catalog")).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[0], movies[4].id.as_str());
    assert_eq!(ids[4], "tmdb-603");
    assert_eq!(
        page["genres"],
        json!(["Action", "Drama", "Horror", "Science Fiction"])
    );
    assert_eq!(
        (page["page"].clone(), page["per_page"].clone()),
        (json!(1), json!(24))
    );

    // Availability and the card's shape.
    let card = |id: &str| {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    let matrix = card("tmdb-603");
    assert_eq!(
        matrix["availability"],
        json!({"state": "complete", "percent": 100.0})
    );
    assert_eq!(matrix["nodes"], 2);
    assert_eq!(matrix["added_at"], 1_000);
    assert_eq!(matrix["runtime_min"], 1, "40 s rounds to 1 minute");
    assert_eq!(matrix["poster_url"], Value::Null);
    let revolutions = card("tmdb-605");
    assert_eq!(revolutions["availability"]["state"], "ingesting");
    assert_eq!(revolutions["availability"]["percent"], 25.0);
    assert_eq!(revolutions["runtime_min"], Value::Null);
    let nobody = card(movies[4].id.as_str());
    assert_eq!(nobody["availability"]["state"], "unavailable");
    assert_eq!(nobody["nodes"], 0);

    // Search: typo-tolerant, prefix-aware, ranked.
    let search = |q: &'static str| {
        let base = base.clone();
        async move {
            let (status, page) = get_json(&format!("{base}/api/v1/catalog?q={q}")).await;
            assert_eq!(status, 200, "{page}");
            page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("matrix").await, ["tmdb-603", "tmdb-604", "tmdb-605"]);
    assert_eq!(search("matirx+reloded").await, ["tmdb-604"]);
    assert_eq!(search("matrix+rev").await, ["tmdb-605"]);
    assert_eq!(search("matrix+2003").await[..2], ["tmdb-604", "tmdb-605"]);
    assert_eq!(search("forest").await, [movies[3].id.as_str()]);
    assert_eq!(search("gum").await, [movies[3].id.as_str()]);
    assert!(search("zebra").await.is_empty());
    // Genre filter, with and without a query.
    let (_, page) = get_json(&format!("{base}/api/v1/catalog?genre=science%20fiction")).await;
    assert_eq!(page["total"], 1);
    let (_, page) = get_json(&format!("{base}/api/v1/catalog?q=the&genre=Action")).await;
    assert_eq!(page["total"], 3);

    // Paging.
    let (_, p2) = get_json(&format!("{base}/api/v1/catalog?page=2&per_page=2")).await;
    assert_eq!(p2["total"], 5);
    assert_eq!(p2["page"], 2);
    assert_eq!(p2["results"].as_array().unwrap().len(), 2);
    assert_eq!(p2["results"][0]["id"], "tmdb-605");
    let (_, p9) = get_json(&format!("{base}/api/v1/catalog?page=9&per_page=2")).await;
    assert_eq!(p9["results"], json!([]));
    let (_, big) = get_json(&format!("{base}/api/v1/catalog?per_page=1000")).await;
    assert_eq!(big["per_page"], 100);
    for bad in [
        "page=0",
        "page=x",
        "per_page=0",
        "per_page=-3",
        "page=99999",
    ] {
        let (status, err) = get_json(&format!("{base}/api/v1/catalog?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(err["error"], "bad_request");
        assert!(err["message"].is_string());
    }

    // One movie.
    let (status, detail) = get_json(&format!("{base}/api/v1/movies/tmdb-605")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["title"], "The Matrix Revolutions");
    assert_eq!(detail["renditions"], json!(["720p"]));
    assert_eq!(detail["duration_s"], 20.0);
    assert_eq!(detail["tmdb_id"], 605);
    assert_eq!(detail["overview"], "");
    let (status, err) = get_json(&format!("{base}/api/v1/movies/tmdb-999")).await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    let (status, err) = get_json(&format!("{base}/api/v1/movies/Not_A_Movie")).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_movie_id")));

    // Images: strict hashes, JSON errors, no traversal, no segments.
    for path in [
        "/images/..%2F..%2Fetc%2Fpasswd",
        "/images/%2e%2e",
        "/images/ABCDEF",
        &format!("/images/{}", "A".repeat(64)),
    ] {
        let (status, text) = common_gateway::raw_get(gw.addr, path).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"error\":\"bad_image_hash\""), "{text}");
    }
    let (status, text) = common_gateway::raw_get(gw.addr, "/images/../../etc/passwd").await;
    assert!(status == 400 || status == 404, "{text}");
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("root:"), "{text}");
    let (status, err) = get_json(&format!("{base}/images/{}", "0".repeat(64))).await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    // A media segment in the store is not an image.
    let (hash, _) = gw
        .store
        .put_segment(b"\0\0\0\x18ftypiso5 not an image", None)
        .unwrap();
    let (status, _) = get_json(&format!("{base}/images/{hash}")).await;
    assert_eq!(status, 404);
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// OpenAPI

#[tokio::test]
async fn every_documented_path_is_answered_by_the_gateway() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_mapping().unwrap();
    let gw = common_gateway::Gateway::start().await;
    let zeros = "0".repeat(64);
    let mut seen = 0;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, item) in paths {
        let path = path.as_str().unwrap();
        for method in item.as_mapping().unwrap().keys() {
            let method = method.as_str().unwrap();
            // The gateway's own routes are GETs, except sign-in's session and logout and the
            // console's job actions.
            let post = (path.starts_with("/auth/") || path.starts_with("/api/v1/console/"))
                && method == "post";
            assert!(method == "get" || post, "{path}: {method}");
            let url = path
                .replace("{movie_id}", "tmdb-603")
                .replace("{manifest_id}", &zeros)
                .replace("{rendition}", "720p")
                .replace("{segment}", &format!("{zeros}.m4s"))
                .replace("{hash}", &zeros)
                .replace("{job_id}", "1");
            assert!(!url.contains('{'), "{path}: unknown parameter");
            let url = format!("{}{url}", gw.url);
            let req = if post {
                http.post(&url).header("origin", gw.url.clone())
            } else {
                http.get(&url)
            };
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            assert!(
                !(status == 404 && body.contains("no such route")),
                "{path}: not routed ({body})"
            );
            assert!(
                !body.contains("tracker_unavailable"),
                "{path}: fell through to the tracker proxy"
            );
            seen += 1;
        }
    }
    assert!(seen >= 9, "only {seen} operations");
    // And a path under the gateway's own prefixes that is not documented is not routed
    // (any other path is the web app's: a client-side route gets its index.html).
    let res = reqwest::get(format!("{}/metrics/nope", gw.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("no such route"));
    gw.stop().await;
}
