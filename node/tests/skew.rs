//! Clock skew with real processes (see `common/mod.rs` and `docs/clock-skew.md`): a
//! tracker and node 1 on the machine's clock, node 2 under libfaketime (Debian's
//! `faketime`) 5 minutes ahead — or behind. The network keeps working: node 2 enrolls and
//! its membership certificate is accepted by itself and by node 1 (catalog records carry
//! it, QUIC mutual TLS checks it), both nodes see each other's catalog records (gossip both
//! ways), each replicates the other's ingest segment by segment over QUIC, and a viewer
//! signed in at the tracker plays through node 2 with a token node 2 accepts.
//!
//! `FAKETIME_DONT_FAKE_MONOTONIC=1`: only the wall clock is shifted (the one every stamp
//! and check uses); tokio's timers run on the monotonic clock, which skew does not touch.
//! Without the `faketime` program the test fails saying to run `scripts/setup.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{decode_whole, make_movie, master_url, merge_toml, Cluster, Network, TestNode, FAST};
use reelnet_node::admin::Status;

const PASSWORD: &str = "correct horse battery staple";
const SECS: u32 = 4;

fn complete(s: &Status, movie: &str) -> bool {
    s.manifests
        .iter()
        .any(|m| m.movie_id == movie && m.total_segments > 0 && m.held_segments == m.total_segments)
}

/// `reelnet_node_start_time_seconds` from the node's `/metrics`: its own clock at start.
async fn start_time(n: &TestNode) -> i64 {
    let text = reqwest::get(format!("{}/metrics", n.gateway_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("reelnet_node_start_time_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

fn unix_now() -> i64 {
    i64::try_from(reelnet_node::unix_now()).unwrap()
}

async fn skewed_network_works(offset: &str, offset_secs: i64) {
    let probe = std::process::Command::new("faketime")
        .args(["-f", offset, "true"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "the faketime program is missing: run scripts/setup.sh (Debian package faketime)"
    );
    let extra = merge_toml(
        FAST,
        "[storage]\nreplication = 2\n[tracker]\nissuer = \"test-tracker\"\n",
    );
    let mut cluster = Cluster::start_in(Network::start("").await, 1, |_| extra.clone()).await;
    let snippet = merge_toml(&cluster.network.join_toml(&["replica", "ingest"]), &extra);
    let mut two = TestNode::new(
        cluster.dir.path(),
        2,
        vec![cluster.node(1).p2p_addr()],
        &snippet,
    );
    two.wrapper = [
        "env",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
        "faketime",
        "-f",
        offset,
    ]
    .map(String::from)
    .to_vec();
    two.start().await;
    cluster.nodes.push(two);
    let (one, two) = (cluster.node(1), cluster.node(2));

    // The skew is real: node 2's own clock, as it reports its start.
    let seen = start_time(two).await - unix_now();
    assert!(
        (seen - offset_secs).abs() < 60,
        "node 2's clock is {seen} s off, expected about {offset_secs} s"
    );
    println!("node 2 runs {seen} s off the tracker's and node 1's clock");

    // Membership: node 2 enrolled (its proof's timestamp and its certificate passed).
    let s2 = two.status().await;
    assert!(s2.membership.member, "{:?}", s2.membership.problem);
    // Catalog gossip both ways: each sees the other's record (with its certificate).
    cluster.wait_live(2, Duration::from_secs(30)).await;
    println!("catalog records and certificates accepted both ways");

    // Segments node to node over QUIC, both ways: each replicates the other's ingest.
    let from_two = make_movie(cluster.dir.path(), "Skew.Two.2026.mp4", SECS, 240);
    let movie_two = two
        .ingest_and_wait(&from_two, "Skew Two", Duration::from_secs(120))
        .await
        .movie_id
        .unwrap();
    let from_one = make_movie(cluster.dir.path(), "Skew.One.2026.mp4", SECS, 240);
    let movie_one = one
        .ingest_and_wait(&from_one, "Skew One", Duration::from_secs(120))
        .await
        .movie_id
        .unwrap();
    for (node, movie, what) in [
        (one, &movie_two, "node 1 to replicate node 2's movie"),
        (two, &movie_one, "node 2 to replicate node 1's movie"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let done = match node.try_status().await {
                Ok(s) => complete(&s, movie),
                Err(_) => false,
            };
            if done {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after 60 s: {what}\n--- node 1 log ---\n{}\n--- node 2 log ---\n{}",
                one.log_tail(40),
                two.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("segments fetched node to node both ways");

    // A viewer signs in at the tracker for node 2 and plays there: node 2 accepts the
    // token the tracker stamped on its own clock.
    let email = "skew@example.test";
    let (ok, out, err) =
        cluster
            .network
            .cli(&["user", "add", email, "--password", PASSWORD, "--verified"]);
    assert!(ok, "user add: {out}{err}");
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", cluster.network.url))
        .json(&serde_json::json!({
            "email": email, "password": PASSWORD, "resource": two.node_id,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {login}"));
    for movie in [&movie_one, &movie_two] {
        let master = master_url(&two.gateway_url(), access, movie).await;
        let decoded = decode_whole(&master)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
        assert!((decoded - f64::from(SECS)).abs() < 1.0, "decoded {decoded}");
    }
    println!("signed in, token accepted and both movies played through node 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_five_minutes_ahead_keeps_working() {
    skewed_network_works("+5m", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_five_minutes_behind_keeps_working() {
    skewed_network_works("-5m", -300).await;
}
