//! A movie request fulfilled by the network, end to end with real parts: a tracker (with a
//! real SMTP server on loopback), two `reelnet-node` processes that both claim requests, and
//! a local torrent seed (`reelnet-node seed`, throttled so the ingest takes a while).
//!
//! A user signs up through node 2 and requests a movie with a `.torrent`; a node claims it
//! and starts downloading and transcoding; that node is killed with SIGKILL half-way; its
//! lease lapses and the other node claims the request and finishes it; the user gets the
//! "ready" email (with a link to the movie on node 2, the node they used) and an in-app
//! notification; the killed node comes back holding nothing of the finished movie, and
//! the user decodes the whole movie through it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
mod common;
#[path = "common_membership/mod.rs"]
mod common_membership;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{decode_whole, make_movie, master_url, wait_for, Cluster, FAST, NODE_BIN};
use serde_json::{json, Value};

const SECS: u32 = 24;
const TMDB_ID: u64 = 4242;

/// `reelnet-node seed` as a child process, killed on drop.
struct Seed(Child);

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_claimed_survives_its_node_dying_and_is_played_elsewhere() {
    let tracker = auth_support::TestTracker::start_with(|c| {
        c.requests.lease_secs = 3;
    })
    .await;

    // The movie, seeded slowly from a local torrent swarm.
    let seed_dir = tempfile::tempdir().unwrap();
    let movie = make_movie(seed_dir.path(), "requested.mp4", SECS, 240);
    let size = std::fs::metadata(&movie).unwrap().len();
    let torrent_dir = seed_dir.path().join("torrents");
    // About 12 s for the whole file: long enough to kill the first claimer half-way.
    let kibps = (size / 1024 / 12).max(16);
    // On port 0: the seeder says where it listens ("seeding 1 file(s) on ADDR; ...").
    let seed_log = seed_dir.path().join("seed.log");
    let mut seed = Seed(
        Command::new(NODE_BIN)
            .arg("seed")
            .arg(&movie)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--torrent-dir")
            .arg(&torrent_dir)
            .args(["--piece-kib", "32", "--upload-kibps", &kibps.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&seed_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let said = reelnet_testkit::read_line_after(
        &seed_log,
        0,
        "file(s) on ",
        Duration::from_secs(30),
        || seed.0.try_wait().ok().flatten().is_none(),
    )
    .await;
    let seed_port = said
        .split(';')
        .next()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no seeder address in {said:?}"))
        .port();
    let torrent_file = torrent_dir.join("requested.mp4.torrent");
    let (torrent, _) = wait_for("the seed's .torrent", Duration::from_secs(30), || async {
        std::fs::read(&torrent_file).ok()
    })
    .await;

    // No `[ingest] allow_private_sources`: the request's .torrent names no tracker or peer;
    // the loopback seeder comes from the nodes' own `torrent_peers` (the operator's word),
    // which the private-address guard spares (its blocklist leaves that address out).
    let extra = format!(
        "{FAST}\n[tracker]\nurl = \"{}\"\nissuer = \"{}\"\n\n[storage]\nreplication = 1\n\n\
         [requests]\nenabled = true\npoll_secs = 1\n\
         min_headroom_bytes = 0\ntorrent_peers = [\"127.0.0.1:{seed_port}\"]\n",
        tracker.url,
        auth_support::ISSUER
    );
    let network = common::Network::of(&tracker.data_dir(), &tracker.url);
    let mut cluster = Cluster::start_in(network, 2, |_| extra.clone()).await;
    cluster.wait_live(2, Duration::from_secs(20)).await;

    // A verified user asks through node 2; an admin made by the operator (nobody is admin
    // by registering first) watches the claims.
    let http = reqwest::Client::new();
    let base = cluster.node(2).gateway_url();
    let email = "asker@example.test";
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    // Credentials only at the tracker: register and verify there, sign in there for a
    // token of node 2 (the one the requests go through).
    auth_support::register_at_tracker(&tracker.url, &tracker.smtp, email, true).await;
    let node_two = auth_support::node_id_of(&base).await;
    let login = auth_support::login_at_tracker(&tracker.url, email, Some(&node_two)).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let access = access.as_str();
    tracker.add_admin("ops@example.test").await;
    // Network administration is at the tracker, with a network token (admin scope).
    let ops = auth_support::login_at_tracker(&tracker.url, "ops@example.test", None).await;
    let admin_access = ops["access_token"].as_str().unwrap().to_owned();

    let (s, created) = call(
        post.clone(),
        "/api/v1/requests",
        Some(access),
        Some(json!({
            "tmdb_id": TMDB_ID,
            "title": "The Requested Movie",
            "year": 2026,
            "torrent_base64": base64::engine::general_purpose::STANDARD.encode(&torrent),
        })),
    )
    .await;
    assert_eq!(s, 201, "{created}");

    let my_request = || async {
        let (s, list) = call(get.clone(), "/api/v1/requests", Some(access), None).await;
        assert_eq!(s, 200, "{list}");
        list[0].clone()
    };
    let claimer = || async {
        let r = http
            .get(format!("{}/api/v1/admin/requests", tracker.url))
            .bearer_auth(&admin_access)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let list = r.json::<Value>().await.unwrap_or(Value::Null);
        assert_eq!(s, 200, "{list}");
        list[0]["node"].as_str().map(str::to_owned)
    };

    // A node claims it and gets some way into the movie.
    let (first, _) = wait_for(
        "a node to claim the request and get under way",
        Duration::from_secs(60),
        || async {
            let r = my_request().await;
            let under_way = matches!(r["state"].as_str(), Some("downloading" | "transcoding"))
                && r["percent"].as_f64().unwrap_or(0.0) >= 10.0;
            if r["state"] == "ready" || r["state"] == "failed" {
                panic!("the request ended before the claimer could be stopped: {r}");
            }
            if under_way {
                claimer().await
            } else {
                None
            }
        },
    )
    .await;
    let before_kill = my_request().await;
    let first_index = cluster
        .nodes
        .iter()
        .position(|n| n.node_id == first)
        .unwrap_or_else(|| panic!("claimer {first} is not one of the nodes"))
        + 1;
    let other_index = 3 - first_index;
    eprintln!(
        "node {first_index} claimed the request; killing it at {} {:.0} %",
        before_kill["state"], before_kill["percent"]
    );
    cluster.node_mut(first_index).kill9();

    // Its lease lapses; the other node claims the request and finishes it.
    let (ready, took) = wait_for(
        "the other node to finish the request",
        Duration::from_secs(150),
        || async {
            let r = my_request().await;
            assert_ne!(r["state"], "failed", "{r}\n{}", cluster.logs(40));
            (r["state"] == "ready").then_some(r)
        },
    )
    .await;
    eprintln!("ready {:.1} s after the kill", took.as_secs_f64());
    assert_eq!(
        claimer().await.as_deref(),
        Some(cluster.node(other_index).node_id.as_str()),
        "the other node finished it"
    );
    let movie_id = format!("tmdb-{TMDB_ID}");
    assert_eq!(ready["movie_id"], movie_id.as_str(), "{ready}");

    // The "ready" email links to the movie on the node the user asked through; the same
    // message is an in-app notification.
    let link = tracker
        .smtp
        .wait_for_link(email, "", &format!("/movie/{movie_id}"))
        .await;
    assert_eq!(link, format!("{base}/movie/{movie_id}"));
    let (s, notes) = call(get.clone(), "/api/v1/me/notifications", Some(access), None).await;
    assert_eq!(s, 200, "{notes}");
    assert_eq!(notes[0]["kind"], "request_ready", "{notes}");
    assert_eq!(notes[0]["link"], link.as_str(), "{notes}");

    // The killed node comes back; it holds none of the finished movie, and the user plays
    // the whole movie through it.
    cluster.node_mut(first_index).start().await;
    cluster.wait_live(2, Duration::from_secs(30)).await;
    let back = cluster.node(first_index);
    let back_url = back.gateway_url();
    let catalog_url = format!("{back_url}/api/v1/catalog");
    wait_for(
        "the restarted node to know the complete movie",
        Duration::from_secs(30),
        || async {
            let page: Value = reqwest::get(&catalog_url).await.ok()?.json().await.ok()?;
            let m = page["results"]
                .as_array()?
                .iter()
                .find(|m| m["id"] == movie_id.as_str())?
                .clone();
            (m["availability"]["state"] == "complete").then_some(())
        },
    )
    .await;
    let finisher = cluster.node(other_index).node_id.clone();
    let held_by_back = back
        .status()
        .await
        .manifests
        .iter()
        .filter(|m| m.movie_id == movie_id && m.origin == finisher)
        .map(|m| m.held_segments)
        .sum::<usize>();
    assert_eq!(held_by_back, 0, "the restarted node holds none of it");
    // Its own half-published ingest died with it and was forgotten at start, so the
    // network lists no ingest that will never grow again.
    let own_partial: Vec<_> = back
        .status()
        .await
        .manifests
        .into_iter()
        .filter(|m| m.origin == back.node_id && !m.complete)
        .collect();
    assert!(own_partial.is_empty(), "{own_partial:?}");

    // Tokens are bound to their node: the viewer signs in for the node they watch on.
    let back_login = auth_support::login_at_tracker(&tracker.url, email, Some(&back.node_id)).await;
    let back_access = back_login["access_token"].as_str().unwrap();
    let master = master_url(&back_url, back_access, &movie_id).await;
    let decoded = decode_whole(&master)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(40)));
    assert!(
        (decoded - f64::from(SECS)).abs() < 1.0,
        "decoded {decoded:.2} s of a {SECS} s movie"
    );
}
