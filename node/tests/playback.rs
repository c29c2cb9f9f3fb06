//! Playback end to end with real processes: a real tracker (with its SMTP server), two
//! `reelnet-node` processes, a movie ingested on node 1 with the real transcoder, and a
//! user who signs up, verifies and signs in through node 2, asks node 2 for a playback URL
//! and decodes the whole movie from it with the `ffmpeg` CLI — although node 2 held none of
//! it at the start: every segment comes from node 1 over QUIC, verified, through node 2's
//! gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
mod common;
#[path = "common_membership/mod.rs"]
mod common_membership;

use std::time::Duration;

use common::{decode_whole, make_movie, master_url, wait_for, Cluster, FAST};
use serde_json::Value;

const SECS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_a_whole_movie_through_a_node_that_held_none_of_it() {
    let tracker = auth_support::TestTracker::start().await;
    // Replication 1: the origin alone is responsible, so node 2 holds nothing unless a
    // viewer pulls it through.
    let extra = format!(
        "{FAST}\n[tracker]\nurl = \"{}\"\nissuer = \"{}\"\n\n[storage]\nreplication = 1\n",
        tracker.url,
        auth_support::ISSUER
    );
    let network = common::Network::of(&tracker.data_dir(), &tracker.url);
    let cluster = Cluster::start_in(network, 2, |_| extra.clone()).await;
    cluster.wait_live(2, Duration::from_secs(20)).await;
    let (one, two) = (cluster.node(1), cluster.node(2));

    let movie_file = make_movie(cluster.dir.path(), "movie.mp4", SECS, 240);
    one.ingest_and_wait(&movie_file, "Playback Test", Duration::from_secs(120))
        .await;
    // Wait until node 2 knows the finished manifest (an EVENT playlist of an earlier,
    // growing version would make ffmpeg start near its live edge).
    let catalog_url = format!("{}/api/v1/catalog", two.gateway_url());
    let (movie_id, _) = wait_for(
        "node 2 to know the complete movie",
        Duration::from_secs(20),
        || async {
            let page: Value = reqwest::get(&catalog_url).await.ok()?.json().await.ok()?;
            let first = page["results"].get(0)?;
            (first["availability"]["state"] == "complete")
                .then(|| first["id"].as_str().map(str::to_owned))
                .flatten()
        },
    )
    .await;
    let held = |s: &reelnet_node::admin::Status| {
        s.manifests.iter().map(|m| m.held_segments).sum::<usize>()
    };
    assert_eq!(held(&two.status().await), 0, "node 2 holds nothing yet");

    // Sign up and verify at the tracker (credentials never go through a node), sign in
    // there for a token of node 2.
    let http = reqwest::Client::new();
    let base = two.gateway_url();
    let email = "viewer@example.test";
    auth_support::register_at_tracker(&tracker.url, &tracker.smtp, email, true).await;
    let node_two = auth_support::node_id_of(&base).await;
    let login = auth_support::login_at_tracker(&tracker.url, email, Some(&node_two)).await;
    let access = login["access_token"].as_str().unwrap();

    let master = master_url(&base, access, &movie_id).await;
    assert!(master.starts_with(&base), "{master}");

    // Decode every frame of the whole movie from the playback URL.
    let decoded = decode_whole(&master)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    eprintln!("decoded {decoded:.2} s of the {SECS} s movie through node 2");
    assert!(
        (decoded - f64::from(SECS)).abs() < 1.0,
        "decoded {decoded:.2} s of a {SECS} s movie"
    );

    // Every byte came from the peer; the segments are now cached on node 2.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        counter("reelnet_segment_bytes_served_total{source=\"peer\"}") > 0,
        "{metrics}"
    );
    assert_eq!(
        counter("reelnet_segment_bytes_served_total{source=\"local\"}"),
        0,
        "{metrics}"
    );
    assert!(two.status().await.store.cache_bytes > 0 || held(&two.status().await) > 0);
}
