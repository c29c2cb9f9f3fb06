//! Rot at rest with real `reelnet-node` processes on loopback (see `common/mod.rs`): a
//! flipped bit in a stored segment or manifest is caught when read (or by the background
//! scrub when nobody reads it), the bad copy is dropped and counted in `/metrics`
//! (`reelnet_store_corrupt_total{kind}`), and placement fetches a good copy from the other
//! node. No peer ever gets the bad bytes.
//!
//! Two nodes, replication 2: node 1 ingests a short movie (the origin), node 2 is its
//! replica. Node 1 runs without the scrub (so its rot is found by a read: a peer's fetch
//! and the report it sends back), node 2 with a fast scrub.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{make_movie, merge_toml, wait_for, Cluster, TestNode, FAST};
use reelnet_node::admin::Status;
use reelnet_node::store::Store;
use reelnet_node::transfer::{AttemptError, FetchError, FetchRequest, Fetcher, FetcherConfig};
use reelnet_proto::{ManifestId, NodeId, SegmentHash, SegmentRef, SegmentRequest};

fn node_id(n: &TestNode) -> NodeId {
    n.node_id.parse().unwrap()
}

fn segment_path(n: &TestNode, hash: &SegmentHash) -> PathBuf {
    let hex = hash.to_string();
    n.data_dir.join("segments").join(&hex[..2]).join(hex)
}

fn flip_bit(path: &PathBuf) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x08;
    std::fs::write(path, &bytes).unwrap();
}

/// `reelnet_store_corrupt_total{kind="<kind>"}` from the node's `/metrics` (0 if absent).
async fn corrupt_total(n: &TestNode, kind: &str) -> Option<u64> {
    let text = reqwest::get(format!("{}/metrics", n.gateway_url()))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("reelnet_store_corrupt_total{{kind=\"{kind}\"}} ");
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// Waits until `n` counts at least `want` corrupt copies of `kind`.
async fn wait_corrupt(n: &TestNode, kind: &str, want: u64) {
    wait_for(
        &format!("node {} to count {want} corrupt {kind}", n.index),
        Duration::from_secs(30),
        || async move { corrupt_total(n, kind).await.filter(|v| *v >= want) },
    )
    .await;
}

/// Waits until `n` holds a good copy of `hash` on disk again.
async fn wait_good_copy(n: &TestNode, hash: &SegmentHash) {
    let path = segment_path(n, hash);
    wait_for(
        &format!("node {} to hold a good copy of {hash} again", n.index),
        Duration::from_secs(30),
        || {
            let path = path.clone();
            async move {
                let bytes = std::fs::read(&path).ok()?;
                (SegmentHash::of(&bytes) == *hash).then_some(())
            }
        },
    )
    .await;
}

fn complete(s: &Status, movie: &str) -> bool {
    s.manifests.iter().any(|m| {
        m.movie_id == movie
            && m.responsible
            && m.total_segments > 0
            && m.held_segments == m.total_segments
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotten_segments_and_manifests_are_caught_dropped_counted_and_fetched_again() {
    let mut cluster = Cluster::start_with(2, |i| {
        let scrub = if i == 1 { 0 } else { 256 << 20 };
        merge_toml(
            FAST,
            &format!("[storage]\nreplication = 2\nscrub_bytes_per_sec = {scrub}\n"),
        )
    })
    .await;
    cluster.wait_live(2, Duration::from_secs(30)).await;
    let movie = make_movie(cluster.dir.path(), "Rot.Test.2026.mp4", 12, 240);
    let p = cluster
        .node(1)
        .ingest_and_wait(&movie, "Rot Test", Duration::from_secs(120))
        .await;
    let movie_id = p.movie_id.unwrap();
    let manifest_id: ManifestId = p.manifest_id.unwrap().parse().unwrap();
    let (_, manifest) = cluster
        .node(1)
        .manifest(&manifest_id.to_string())
        .await
        .unwrap();
    let replica = cluster.node(2);
    wait_for(
        "node 2 to hold the movie",
        Duration::from_secs(60),
        || async {
            let s = replica.try_status().await.ok()?;
            complete(&s, &movie_id).then_some(())
        },
    )
    .await;
    let segments = &manifest.tracks[0].segments;
    assert!(segments.len() >= 3, "a multi-segment movie");

    // 1. Read path and report-back: a bit flips in the origin's copy of segment 1. A peer
    //    fetching it from the origin alone gets a hash failure, never the bytes; its report
    //    makes the origin re-check and drop its copy, and the origin's placement fetches a
    //    good one back from the replica.
    let origin = cluster.node(1);
    let seg = segments[1];
    flip_bit(&segment_path(origin, &seg.hash));
    let viewer = cluster.network.member(&["edge"]).await;
    let fetcher = Fetcher::with_membership(
        Some(&viewer.key),
        FetcherConfig {
            attempt_timeout: Duration::from_secs(5),
            ..FetcherConfig::default()
        },
        Some(&viewer.membership),
    )
    .unwrap();
    let want = FetchRequest {
        request: SegmentRequest {
            manifest: manifest_id,
            track: 0,
            segment: SegmentRef::Index(1),
        },
        expected: seg.hash,
        size: Some(u64::from(seg.size)),
    };
    let only_origin = [(node_id(origin), origin.quic)];
    match fetcher.fetch_request(&only_origin, &want).await {
        Err(FetchError::AllFailed(f)) => assert!(
            matches!(
                f[0].1,
                AttemptError::HashMismatch { .. } | AttemptError::BadGroup { .. }
            ),
            "{:?}",
            f[0].1
        ),
        other => panic!("the rotten copy must not be accepted: {other:?}"),
    }
    wait_corrupt(origin, "segment", 1).await;
    wait_good_copy(origin, &seg.hash).await;
    let bytes = fetcher.fetch_request(&only_origin, &want).await.unwrap();
    assert_eq!(SegmentHash::of(&bytes), seg.hash);
    println!("origin: rot caught by a peer's read, reported, dropped and fetched again");

    // 2. Scrub: a bit flips in the replica's copy of segment 2, which nobody reads.
    let seg = segments[2];
    flip_bit(&segment_path(replica, &seg.hash));
    wait_corrupt(replica, "segment", 1).await;
    wait_good_copy(replica, &seg.hash).await;
    println!("replica: rot nobody read found by the scrub, dropped and fetched again");

    // 3. A manifest record: a bit flips in the replica's stored manifest (written while the
    //    node is stopped, as the store's own flush would leave it). The node catches it
    //    when it reads its manifests at start, drops it, and placement stores a good copy
    //    from the catalog again.
    let replica = cluster.node_mut(2);
    replica.terminate();
    {
        let store = Store::open(&replica.data_dir).unwrap();
        let mut raw = store.manifest_record(&manifest_id).unwrap().unwrap();
        let at = raw.len() / 3;
        raw[at] ^= 0x20;
        store.inject_manifest_record(&manifest_id, &raw).unwrap();
    }
    replica.start().await;
    let replica = cluster.node(2);
    wait_corrupt(replica, "manifest", 1).await;
    wait_for(
        "node 2 to hold the manifest and every segment again",
        Duration::from_secs(60),
        || {
            let movie = &movie_id;
            async move {
                let s = replica.try_status().await.ok()?;
                complete(&s, movie).then_some(())
            }
        },
    )
    .await;
    let (signed, _) = replica.manifest(&manifest_id.to_string()).await.unwrap();
    assert_eq!(signed.id(), manifest_id);
}
