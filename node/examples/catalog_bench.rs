//! Catalog benchmark helper (driven by `scripts/bench-catalog.sh`; release builds only).
//!
//! `catalog_bench flood BUDGET_MIB` — a catalog with membership checks (an in-process
//! network: network key, enrolled members built on proto) holding an honest library of 50
//! bound movies, then flooded with 10 000 manifests from one member and 100 manifests from
//! each of 100 members (every manifest a 2-track, 200-segment ingest, as gossip would
//! deliver them). Prints the process RSS before and after, the catalog's own estimate, what
//! was evicted, and whether every honest movie is still listed. `BUDGET_MIB` = 0: no
//! budget to speak of (the reference: what the flood costs unbounded).
//!
//! `catalog_bench query MOVIES` — a real gateway (warp routes over a catalog) listing
//! MOVIES movies held by 20 nodes; prints p50/p99 of `GET /api/v1/catalog` (first page),
//! a search, one movie's detail and an image lookup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common_gateway/mod.rs"]
mod common_gateway;
#[path = "../tests/common_membership/mod.rs"]
mod common_membership;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reelnet_node::catalog::{Catalog, CatalogConfig};
use reelnet_proto::membership::RoleName;
use reelnet_proto::{
    CatalogRecord, Container, Held, Manifest, MovieId, NodeId, Rendition, SegmentEntry,
    SegmentHash, SignedCatalogRecord, SignedManifest, Track,
};
use tokio_util::sync::CancellationToken;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn key(a: u8, b: u8) -> SigningKey {
    let mut bytes = [7u8; 32];
    bytes[0] = a;
    bytes[1] = b;
    SigningKey::from_bytes(&bytes)
}

fn manifest(
    k: &SigningKey,
    movie: &str,
    ingest: u32,
    title: &str,
    segments: u32,
) -> SignedManifest {
    let track = |name: &str, height: u32, salt: u8| Track {
        kind: reelnet_proto::manifest::TrackKind::Video,
        media: None,
        rendition: Rendition {
            name: name.into(),
            width: height * 16 / 9,
            height,
            bandwidth: 1_000_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate_milli: 25_000,
        },
        init: None,
        segments: (0..segments)
            .map(|i| SegmentEntry {
                hash: SegmentHash::of(
                    &[&i.to_le_bytes()[..], &ingest.to_le_bytes(), &[salt]].concat(),
                ),
                duration_ms: 4000,
                size: 500_000,
            })
            .collect(),
    };
    let mut ingest_id = [0u8; 16];
    ingest_id[..4].copy_from_slice(&ingest.to_le_bytes());
    let m = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::new(movie).unwrap(),
        title: title.into(),
        year: Some(2026),
        origin: NodeId::from_verifying_key(&k.verifying_key()),
        ingest_id,
        seq: 1,
        created_at: 1,
        container: Container::MpegTs,
        target_duration_ms: 4000,
        tracks: vec![track("720p", 720, 1), track("360p", 360, 2)],
        complete: true,
        meta: reelnet_proto::MovieMeta {
            poster: Some(SegmentHash::of(movie.as_bytes())),
            ..Default::default()
        },
    };
    SignedManifest::sign(&m, k).unwrap()
}

fn record(k: &SigningKey, held: &[&SignedManifest], cert: Vec<u8>) -> SignedCatalogRecord {
    let now = reelnet_node::unix_now();
    let r = CatalogRecord {
        node: NodeId::from_verifying_key(&k.verifying_key()),
        quic_addr: "127.0.0.1:9".into(),
        gateway_url: "http://127.0.0.1:9".into(),
        held: held
            .iter()
            .map(|m| Held {
                manifest: m.id(),
                movie: m.verify().unwrap().movie,
                complete: true,
                ranges: vec![],
            })
            .collect(),
        seq: 1,
        issued_at: now,
        expires_at: now + 3600,
        replica: true,
        certificate: cert,
    };
    SignedCatalogRecord::sign(&r, k).unwrap()
}

async fn flood(budget_mib: usize) {
    let net = common_membership::TestNetwork::new();
    let cancel = CancellationToken::new();
    let me = key(1, 1);
    let membership = net
        .membership(
            &me,
            Some(net.cert(&me, &[RoleName::Replica], false)),
            &cancel,
        )
        .await;
    let unbounded = budget_mib == 0;
    let config = if unbounded {
        CatalogConfig {
            budget_bytes: usize::MAX,
            max_bytes_per_origin: usize::MAX,
            max_manifests_per_origin: usize::MAX,
            ..CatalogConfig::default()
        }
    } else {
        CatalogConfig {
            budget_bytes: budget_mib << 20,
            ..CatalogConfig::default()
        }
    };
    let (catalog, _t) = Catalog::start_with(config, Some(membership.clone()), cancel.clone());
    let join = |k: &SigningKey| {
        let cert = net
            .cert(k, &[RoleName::Ingest, RoleName::Replica], false)
            .encode();
        record(k, &[], cert)
    };
    // The honest library: 50 movies of one origin, bound by the tracker.
    let honest = key(2, 2);
    catalog.offer_record(join(&honest)).await.unwrap();
    let mut library = Vec::new();
    for i in 0..50u32 {
        let m = manifest(&honest, &format!("tmdb-{}", 1 + i), i, "Honest", 200);
        catalog.offer_manifest(m.clone()).await.unwrap();
        membership
            .offer_binding(&net.binding(&m, u64::from(i) + 1).encode())
            .await;
        library.push(m);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_mib();
    let started = Instant::now();
    let one = key(3, 3);
    catalog.offer_record(join(&one)).await.unwrap();
    for i in 0..10_000u32 {
        let m = manifest(&one, &format!("tmdb-{}", 100_000 + i), i, "Flood", 200);
        catalog.offer_manifest(m).await.unwrap();
    }
    for n in 0..100u8 {
        let k = key(10 + n, 9);
        catalog.offer_record(join(&k)).await.unwrap();
        for i in 0..100u32 {
            let m = manifest(
                &k,
                &format!("tmdb-{}", 200_000 + u32::from(n) * 100 + i),
                i,
                "Sybil",
                200,
            );
            catalog.offer_manifest(m).await.unwrap();
        }
    }
    let took = started.elapsed();
    let after = rss_mib();
    let stats = catalog.stats().await.unwrap();
    let listed = catalog.movies().await.unwrap();
    let kept = library
        .iter()
        .filter(|m| {
            let id = m.id();
            listed
                .iter()
                .any(|x| x.manifests.iter().any(|s| s.id == id))
        })
        .count();
    let budget = if unbounded {
        "none".to_owned()
    } else {
        format!("{budget_mib} MiB")
    };
    println!(
        "flood (budget {budget}): 20 000 manifests from 101 members in {:.1} s; RSS {before:.0} MiB before -> {after:.0} MiB after (+{:.0} MiB); catalog estimate {:.0} MiB, {} manifests kept, {} evicted; honest movies listed {kept}/50",
        took.as_secs_f64(),
        after - before,
        stats.bytes as f64 / 1048576.0,
        stats.manifests,
        stats.evicted,
    );
    cancel.cancel();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn query(movies: usize) {
    let gw = common_gateway::Gateway::start().await;
    let per_node = movies.div_ceil(20).clamp(1, 1000);
    let mut first = None;
    for n in 0..20u8 {
        let k = key(50 + n, 5);
        let mut held = Vec::new();
        for i in 0..per_node {
            let idx = usize::from(n) * per_node + i;
            if idx >= movies {
                break;
            }
            let title = format!("Movie number {idx} the sequel");
            let m = manifest(&k, &format!("tmdb-{}", 1 + idx), idx as u32, &title, 20);
            gw.catalog.offer_manifest(m.clone()).await.unwrap();
            first.get_or_insert_with(|| format!("tmdb-{}", 1 + idx));
            held.push(m);
        }
        for chunk in held.chunks(1000) {
            let refs: Vec<&SignedManifest> = chunk.iter().collect();
            gw.catalog
                .offer_record(record(&k, &refs, Vec::new()))
                .await
                .unwrap();
        }
    }
    let stats = gw.catalog.stats().await.unwrap();
    let one = first.unwrap();
    let image = SegmentHash::of(one.as_bytes());
    let paths = [
        ("catalog, first page", "/api/v1/catalog".to_owned()),
        ("catalog search", "/api/v1/catalog?q=number%2042".to_owned()),
        ("one movie", format!("/api/v1/movies/{one}")),
        (
            "image lookup (not held: index + peers)",
            format!("/images/{image}"),
        ),
    ];
    println!(
        "query ({movies} movies, {} manifests in the catalog):",
        stats.manifests
    );
    for (name, path) in paths {
        let url = format!("{}{path}", gw.url);
        // Warm up (the first listing is built once per change).
        let _ = gw.client.get(&url).send().await.unwrap().bytes().await;
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let res = gw.client.get(&url).send().await.unwrap();
            let _ = res.bytes().await;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "  {name:<42} p50 {:>8.2} ms  p99 {:>8.2} ms",
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("flood") => flood(args.get(2).and_then(|v| v.parse().ok()).unwrap_or(64)).await,
        Some("query") => query(args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10_000)).await,
        _ => eprintln!("usage: catalog_bench flood BUDGET_MIB | query MOVIES"),
    }
}
