//! The operator console's node views (`/api/v1/console/*`) over real parts: a real tracker
//! (in-process, its own keys, a real SMTP server for verification mail) and a real node on
//! loopback, talked to over HTTP with node tokens from the tracker's JSON login.
//!
//! Who gets in: a network admin (tracker admin role) and an account named in the node's
//! `operators.json`; a viewer gets 403 from every console route, no token 401, a network
//! token (not issued for this node) 401. What they see: the status, the metrics history,
//! jobs started from a file path (ingested to done, with its tracks), a magnet job cancelled,
//! and bad sources refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
#[path = "common_membership/mod.rs"]
mod common_membership;

use std::path::{Path, PathBuf};
use std::time::Duration;

use auth_support::*;
use serde_json::{json, Value};

/// Every console route: method, path, body.
fn routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/api/v1/console/access", None),
        ("GET", "/api/v1/console/status", None),
        ("GET", "/api/v1/console/history", None),
        ("GET", "/api/v1/console/jobs", None),
        (
            "POST",
            "/api/v1/console/jobs",
            Some(json!({"source": "magnet:?xt=urn:btih:0000000000000000000000000000000000000000"})),
        ),
        (
            "POST",
            "/api/v1/console/jobs/torrent",
            Some(json!("d4:infod6:lengthi1eee")),
        ),
        ("POST", "/api/v1/console/jobs/1/cancel", None),
    ]
}

async fn call(
    node: &TestNode,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let url = format!("{}{path}", node.url);
    let mut req = match method {
        "GET" => node.http.get(url),
        _ => node.http.post(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req = match body {
        Some(Value::String(raw)) => req.body(raw.clone()),
        Some(b) => req.json(b),
        None => req,
    };
    split(req.send().await.unwrap()).await
}

/// A 3-second 320x180 H.264/AAC movie.
fn make_movie(dir: &Path) -> PathBuf {
    let path = dir.join("console-clip.mp4");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x180:rate=25:duration=3")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=3",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

async fn job(node: &TestNode, token: &str, id: u64) -> Option<Value> {
    let (s, jobs) = call(node, "GET", "/api/v1/console/jobs", None, Some(token)).await;
    assert_eq!(s, 200, "{jobs}");
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == json!(id))
        .cloned()
}

#[tokio::test]
async fn operators_and_admins_see_the_node_and_run_its_jobs_viewers_get_403() {
    let tracker = TestTracker::start().await;
    // No DHT or public trackers: the magnet below must stay on loopback.
    let node =
        TestNode::start_configured(&tracker.url, |_| {}, |c| c.ingest.public_torrents = false)
            .await;
    tracker.add_admin("admin@example.org").await;
    let admin = access(&node.login("admin@example.org").await);
    let viewer = access(&node.user(&tracker.smtp, "viewer@example.org", true).await);
    let op = access(&node.user(&tracker.smtp, "op@example.org", true).await);
    let network_admin = access(&login_at_tracker(&tracker.url, "admin@example.org", None).await);

    // Nobody without a node token; a viewer (and an operator-to-be) gets 403 everywhere.
    for (method, path, body) in routes() {
        let (s, b) = call(&node, method, path, body.as_ref(), None).await;
        assert_eq!(s, 401, "{method} {path} without a token: {b}");
        let (s, b) = call(&node, method, path, body.as_ref(), Some(&network_admin)).await;
        assert_eq!(s, 401, "{method} {path} with a network token: {b}");
        for token in [&viewer, &op] {
            let (s, b) = call(&node, method, path, body.as_ref(), Some(token)).await;
            assert_eq!(s, 403, "{method} {path}: {b}");
            assert_eq!(b["error"], "not_operator", "{b}");
        }
    }
    // Nothing was started by the refused calls.
    let (s, jobs) = call(&node, "GET", "/api/v1/console/jobs", None, Some(&admin)).await;
    assert_eq!((s, jobs.clone()), (200, json!([])), "{jobs}");

    // The admin is in as admin; an account named on the node's machine as operator.
    let (s, b) = call(&node, "GET", "/api/v1/console/access", None, Some(&admin)).await;
    assert_eq!((s, b["access"].as_str()), (200, Some("admin")), "{b}");
    reelnet_node::operators::add(node.dir.path(), "op@example.org").unwrap();
    let (s, b) = call(&node, "GET", "/api/v1/console/access", None, Some(&op)).await;
    assert_eq!((s, b["access"].as_str()), (200, Some("operator")), "{b}");
    assert_eq!(b["email"], "op@example.org");

    // Status: this node, a member with the roles its invite gave.
    let (s, st) = call(&node, "GET", "/api/v1/console/status", None, Some(&op)).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["node_id"], json!(node.node_id));
    assert_eq!(st["membership"]["member"], json!(true), "{st}");
    let roles = st["membership"]["roles"].as_array().unwrap();
    assert!(roles.contains(&json!("ingest")), "{st}");
    assert!(st["membership"]["not_after"].as_u64().unwrap() > reelnet_node::unix_now());
    assert!(st["https_not_after"].is_null(), "plain HTTP: {st}");
    assert!(st["disk"]["quota_bytes"].as_u64().unwrap() > 0, "{st}");
    let (s, h) = call(&node, "GET", "/api/v1/console/history", None, Some(&op)).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["interval_secs"], json!(10));
    assert_eq!(h["capacity"], json!(360));

    // Bad sources are refused and start nothing.
    let (s, b) = call(
        &node,
        "POST",
        "/api/v1/console/jobs",
        Some(&json!({"source": "/no/such/file.mkv"})),
        Some(&op),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_source")),
        "{b}"
    );
    let (s, b) = call(
        &node,
        "POST",
        "/api/v1/console/jobs",
        Some(&json!({"source": "x", "rm": "-rf"})),
        Some(&op),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_json")), "{b}");
    let (s, b) = call(
        &node,
        "POST",
        "/api/v1/console/jobs/torrent",
        Some(&json!("not a torrent")),
        Some(&op),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_torrent")),
        "{b}"
    );
    let (s, _) = call(
        &node,
        "POST",
        "/api/v1/console/jobs/99/cancel",
        None,
        Some(&op),
    )
    .await;
    assert_eq!(s, 404);

    // A magnet nobody seeds waits for peers until it is cancelled.
    let (s, b) = call(
        &node,
        "POST",
        "/api/v1/console/jobs",
        Some(&json!({"source": "magnet:?xt=urn:btih:1111111111111111111111111111111111111111"})),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let magnet = b["id"].as_u64().unwrap();
    let path = format!("/api/v1/console/jobs/{magnet}/cancel");
    // Without DHT or peers the magnet may also fail on its own before the cancel lands:
    // then the cancel says it had ended (409) and the job says why.
    let (s, b) = call(&node, "POST", &path, None, Some(&admin)).await;
    assert!(s == 200 || s == 409, "{s} {b}");
    let (ended, _) = wait_for("the magnet job to end", Duration::from_secs(20), || async {
        job(&node, &admin, magnet)
            .await
            .filter(|j| j["state"] == "failed")
    })
    .await;
    if s == 200 {
        // Cancelled — or it failed on its own in the same instant the cancel was accepted.
        let error = ended["error"].as_str().unwrap_or_default();
        assert!(
            error == "cancelled" || error.contains("no peers to ask"),
            "{ended}"
        );
    } else {
        assert!(ended["error"].is_string(), "{ended}");
    }
    let (s, b) = call(&node, "POST", &path, None, Some(&admin)).await;
    assert_eq!((s, b["error"].as_str()), (409, Some("finished")), "{b}");

    // A file on the node: ingested to done, its tracks listed.
    let clip = make_movie(node.dir.path());
    let (s, b) = call(
        &node,
        "POST",
        "/api/v1/console/jobs",
        Some(&json!({"source": clip.display().to_string(), "title": "Console Clip", "year": 2026})),
        Some(&op),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_u64().unwrap();
    let (done, _) = wait_for(
        "the file job to finish",
        Duration::from_secs(120),
        || async {
            job(&node, &op, id)
                .await
                .filter(|j| j["state"] == "done" || j["state"] == "failed")
        },
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["title"], "Console Clip");
    assert!(done["position_fraction"].as_f64().unwrap() > 0.9, "{done}");
    let tracks = done["tracks"].as_array().unwrap();
    assert!(tracks.iter().any(|t| t["kind"] == "video"), "{done}");
    assert!(tracks.iter().any(|t| t["kind"] == "audio"), "{done}");
    // Newest first.
    let (_, jobs) = call(&node, "GET", "/api/v1/console/jobs", None, Some(&op)).await;
    assert_eq!(jobs[0]["id"], json!(id));

    // Its replica shows complete in the status.
    let (st, _) = wait_for(
        "the replica in the status",
        Duration::from_secs(20),
        || async {
            let (_, st) = call(&node, "GET", "/api/v1/console/status", None, Some(&op)).await;
            let full = st["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["completeness"] == json!(1.0));
            full.then_some(st)
        },
    )
    .await;
    assert!(st["disk"]["held_bytes"].as_u64().unwrap() > 0, "{st}");

    // Removed from operators.json: 403 again at once.
    reelnet_node::operators::remove(node.dir.path(), "op@example.org").unwrap();
    let (s, _) = call(&node, "GET", "/api/v1/console/status", None, Some(&op)).await;
    assert_eq!(s, 403);
}
