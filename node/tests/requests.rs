//! The node's request claimer against a real tracker (in-process, real HTTP on loopback)
//! and a real node: a node with `[requests] enabled` claims an open request, keeps its
//! lease alive with progress reports well past the lease length while the ingest runs,
//! and when the node stops, the lease lapses and the request is open again for another
//! node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
#[path = "common_membership/mod.rs"]
mod common_membership;

use std::time::{Duration, Instant};

use auth_support::{Smtp, TestNode, ISSUER};
use reelnet_node::Node;
use reelnet_tracker::config::{SmtpTls, TrackerConfig};
use reelnet_tracker::Tracker;
use serde_json::{json, Value};

async fn state(http: &reqwest::Client, base: &str, token: &str) -> Value {
    let r = http
        .get(format!("{base}/api/v1/requests"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v[0].clone()
}

#[tokio::test]
async fn a_node_claims_renews_and_releases_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let data = dir.path().join("tracker");
    reelnet_tracker::users::add_user(
        &data,
        reelnet_tracker::users::AddUserRequest {
            email: "asker@example.org".into(),
            password: "a long password".into(),
            display_name: None,
            verified: true,
            admin: true,
        },
    )
    .await
    .unwrap();
    let mut config = TrackerConfig {
        data_dir: data,
        listen: "127.0.0.1:0".parse().unwrap(),
        issuer: ISSUER.to_owned(),
        ..TrackerConfig::default()
    };
    config.smtp.port = smtp.port;
    config.smtp.tls = SmtpTls::None;
    config.requests.lease_secs = 2;
    let tracker_config = config.clone();
    let tracker = Tracker::bind(config).await.unwrap();
    let base = format!("http://{}", tracker.addr());
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "asker@example.org", "password": "a long password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    // A magnet nobody seeds (no DHT or trackers on a test node): the ingest waits for
    // metadata, and the node must keep the claim alive meanwhile.
    let r = http
        .post(format!("{base}/api/v1/requests"))
        .bearer_auth(&token)
        .json(&json!({"tmdb_id": 4242, "title": "Nobody Seeds This",
            "magnet": "magnet:?xt=urn:btih:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let node_dir = tempfile::tempdir().unwrap();
    let mut node_config = TestNode::config(node_dir.path(), &base);
    node_config.requests.enabled = true;
    // The node joins the network with an invite made through the running tracker.
    let made = reelnet_tracker::operator::run(
        &tracker_config,
        reelnet_tracker::operator::NodeCommand::Invite(reelnet_tracker::network::InviteRequest {
            roles: vec![reelnet_proto::membership::RoleName::Ingest],
            uses: Some(1),
            ttl_secs: Some(600),
        }),
    )
    .await
    .unwrap();
    let reelnet_tracker::operator::NodeOutput::Invite(invite) = made else {
        panic!("not an invite: {made:?}")
    };
    node_config.tracker.invite = invite.token;
    node_config.requests.poll_secs = 1;
    node_config.requests.min_headroom_bytes = 0;
    let node = Node::bind(node_config).await.unwrap();
    let node_id = node.node_id().to_string();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = state(&http, &base, &token).await;
        if s["state"] != "open" {
            break;
        }
        assert!(Instant::now() < deadline, "the node never claimed: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin: Value = http
        .get(format!("{base}/api/v1/admin/requests"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin[0]["node"], node_id.as_str(), "{admin}");

    // Three lease lengths later it is still held (progress reports renew it).
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = state(&http, &base, &token).await;
        assert!(
            matches!(
                s["state"].as_str(),
                Some("claimed" | "downloading" | "transcoding")
            ),
            "lease not renewed: {s}"
        );
    }

    // The node stops: the lease lapses and the request is open for another node.
    node.shutdown();
    node.join().await;
    let (_, took) =
        auth_support::wait_for("the lease to lapse", Duration::from_secs(15), || async {
            (state(&http, &base, &token).await["state"] == "open").then_some(())
        })
        .await;
    println!("the lease lapsed {took:?} after the node stopped");
    // An unsigned claim is refused; the request waits for a member.
    let claimed = http
        .post(format!("{base}/api/v1/requests/claim"))
        .json(&json!({"node_id": "another-node"}))
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status().as_u16(), 401);
    tracker.shutdown();
    tracker.join().await;
}
