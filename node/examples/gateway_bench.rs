//! Gateway benchmark helper (driven by `scripts/bench-gateway.sh`; release builds only).
//!
//! `gateway_bench serve DIR [SEGMENTS] [SEGMENT_BYTES] [HOT_CACHE_MIB]` — a real gateway (catalog, store,
//! QUIC fetcher, warp routes) on 127.0.0.1 holding one movie of SEGMENTS media segments of
//! about SEGMENT_BYTES each; writes `DIR/gateway_paths.txt` (one tokened segment path per
//! line), `DIR/nginx_paths.txt` (the same files' paths in the store's segment directory,
//! for nginx) and `DIR/serve.env` (`GATEWAY_URL`, `SEGMENTS_DIR`), then serves until
//! stdin closes.
//!
//! `gateway_bench latency [SEGMENTS] [SEGMENT_BYTES]` — time to first body byte and total
//! time of segment GETs, sequentially, p50/p99 of each: (a) hot-cache hits (second request
//! of each segment on a gateway holding them), (b) local disk hits (first request on that
//! gateway: read and verified group by group while streaming), (c) peer-held segments (a
//! gateway holding none of them fetches each from a peer's QUIC segment server on loopback,
//! streaming verified groups as they arrive), and the differences of the p50s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common_gateway/mod.rs"]
mod common_gateway;

use std::time::{Duration, Instant};

use common_gateway::{Gateway, Library, Provider};
use reelnet_proto::MovieId;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn library(segments: usize, bytes: usize) -> Library {
    Library::sized(42, MovieId::from_tmdb(603), true, segments, [bytes, 64_000])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

async fn serve(dir: &std::path::Path, segments: usize, bytes: usize, hot_mib: usize) {
    let lib = library(segments, bytes);
    let gw = Gateway::start_with_hot_cache(hot_mib).await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let token = gw.token(&lib.manifest.movie);
    let mut gateway_paths = String::new();
    let mut nginx_paths = String::new();
    let segments_dir = gw
        .store
        .segment_path(&lib.manifest.tracks[0].segments[0].hash);
    let segments_root = segments_dir.parent().unwrap().parent().unwrap().to_owned();
    for i in 0..segments {
        let (hash, url) = gw.media_url(&lib, 0, i, &token);
        gateway_paths.push_str(url.strip_prefix(&gw.url).unwrap());
        gateway_paths.push('\n');
        let path = gw.store.segment_path(&hash);
        nginx_paths.push('/');
        nginx_paths.push_str(path.strip_prefix(&segments_root).unwrap().to_str().unwrap());
        nginx_paths.push('\n');
    }
    std::fs::write(dir.join("gateway_paths.txt"), gateway_paths).unwrap();
    std::fs::write(dir.join("nginx_paths.txt"), nginx_paths).unwrap();
    std::fs::write(
        dir.join("serve.env"),
        format!(
            "GATEWAY_URL={}\nSEGMENTS_DIR={}\n",
            gw.url,
            segments_root.display()
        ),
    )
    .unwrap();
    eprintln!("serving {} at {}", segments, gw.url);
    // Serve until stdin closes.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await;
    gw.stop().await;
}

async fn timed_get(client: &reqwest::Client, url: &str) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let mut res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    let mut first = None;
    let mut len = 0;
    while let Some(chunk) = res.chunk().await.unwrap() {
        first.get_or_insert_with(|| start.elapsed());
        len += chunk.len();
    }
    (first.unwrap_or_default(), start.elapsed(), len)
}

async fn latency(segments: usize, bytes: usize) {
    let lib = library(segments, bytes);
    let peer = Provider::holding(11, &lib);
    let local = Gateway::start().await;
    local.hold(&lib);
    local.announce_self(&lib).await;
    let remote = Gateway::start().await;
    remote.announce(&peer, &lib, 1).await;
    let client = reqwest::Client::new();
    // Warm both paths (connections, QUIC handshake) on segment 0, measure the rest.
    for gw in [&local, &remote] {
        let token = gw.token(&lib.manifest.movie);
        let (_, url) = gw.media_url(&lib, 0, 0, &token);
        timed_get(&client, &url).await;
    }
    let mut results = Vec::new();
    for (name, gw) in [
        ("disk hit", &local),
        ("hot hit", &local),
        ("peer-held", &remote),
    ] {
        let token = gw.token(&lib.manifest.movie);
        let mut ttfb = Vec::new();
        let mut total = Vec::new();
        for i in 1..segments {
            let (_, url) = gw.media_url(&lib, 0, i, &token);
            let (f, t, len) = timed_get(&client, &url).await;
            assert!(len >= bytes);
            ttfb.push(f);
            total.push(t);
        }
        ttfb.sort();
        total.sort();
        println!(
            "{name:<10} n={} ttfb p50={:.2} ms p99={:.2} ms | total p50={:.2} ms p99={:.2} ms",
            total.len(),
            percentile(&ttfb, 0.5).as_secs_f64() * 1e3,
            percentile(&ttfb, 0.99).as_secs_f64() * 1e3,
            percentile(&total, 0.5).as_secs_f64() * 1e3,
            percentile(&total, 0.99).as_secs_f64() * 1e3,
        );
        results.push((percentile(&ttfb, 0.5), percentile(&total, 0.5)));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (disk, hot, peer) = (results[0], results[1], results[2]);
    println!(
        "peer_ttfb_minus_disk_ttfb_p50_ms={:.2}",
        ms(peer.0) - ms(disk.0)
    );
    println!(
        "peer_ttfb_minus_hot_ttfb_p50_ms={:.2}",
        ms(peer.0) - ms(hot.0)
    );
    println!("peer_minus_local_p50_ms={:.2}", ms(peer.1) - ms(disk.1));
    println!("peer_total_p50_ms={:.2}", ms(peer.1));
    local.stop().await;
    remote.stop().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let dir = std::path::PathBuf::from(args.get(2).expect("serve DIR"));
            serve(
                &dir,
                arg(&args, 3, 64),
                arg(&args, 4, 2 << 20),
                arg(&args, 5, 256),
            )
            .await
        }
        Some("latency") => latency(arg(&args, 2, 64), arg(&args, 3, 2 << 20)).await,
        _ => {
            eprintln!(
                "usage: gateway_bench serve DIR [SEGMENTS] [BYTES] [HOT_MIB] | latency [SEGMENTS] [BYTES]"
            );
            std::process::exit(2);
        }
    }
}
