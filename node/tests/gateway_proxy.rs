//! The tracker proxy's confinement and what it vouches for, over real processes: a real
//! tracker (in-process `reelnet_tracker::Tracker`, with its SMTP server) and a member node
//! (`reelnet_node::Node::bind`) on loopback.
//!
//! - Path escapes (plain, percent-encoded, double-encoded, backslashes, absolute-form) are
//!   written by hand over a `TcpStream` (HTTP clients normalise paths) and get 400 from the
//!   node; a recording front between the node and the tracker shows that none of them is
//!   forwarded, while ordinary requests still are.
//! - Credential routes (`/api/v1/auth/*`) are refused by the node (403
//!   `credentials_at_tracker`) and never reach the tracker; every forwarded request
//!   (WebSocket upgrades included) carries the node's signature over its method, path and
//!   query and body, which verifies the way the tracker checks it; a new movie request
//!   carries the viewer's address signed instead.
//! - A watch party through the node: a too-large frame and a frame flood end the offending
//!   connection (1009, 1008) while the party goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
#[path = "common_membership/mod.rs"]
mod common_membership;
#[path = "common/front.rs"]
mod front;

use std::time::{Duration, Instant};

use auth_support::*;
use front::{Front, Seen};
use futures::{SinkExt, StreamExt};
use reelnet_proto::membership::{viewer_auth_path, NodeAuth, NODE_AUTH_HEADER, VIEWER_ADDR_HEADER};
use reelnet_proto::NodeId;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// One request the front saw.
/// A node of `tracker`'s network whose tracker URL is `via` (a front of that tracker).
async fn member_node_via(tracker: &TestTracker, via: &str) -> TestNode {
    let joined = common_membership::join(
        TestNode::config(std::path::Path::new("unused"), via),
        &tracker.data_dir(),
        via,
        &[
            reelnet_proto::membership::RoleName::Replica,
            reelnet_proto::membership::RoleName::Ingest,
        ],
    )
    .await;
    let node = TestNode::start_configured(
        via,
        |_| {},
        |c| {
            c.tracker.invite = joined.tracker.invite.clone();
            c.tracker.membership_refresh_secs = 1;
        },
    )
    .await;
    wait_member(&node).await;
    node
}

/// Waits until the node holds its certificate; returns its id.
async fn wait_member(node: &TestNode) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, h) = node.get("/healthz", None).await;
        if s == 200 && h["membership"]["member"] == true {
            return h["node_id"].as_str().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "never became a member: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `request_line` (`METHOD TARGET`) with `extra` header lines to the node as written
/// (no normalisation) and returns the status and body.
async fn raw(node: &TestNode, request_line: &str, extra: &str) -> (u16, String) {
    let addr = node.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("{request_line} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the node answers")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn path_escapes_are_refused_and_never_forwarded() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;
    // What a successful escape would show: the tracker's own /metrics.
    let metrics = reqwest::get(format!("{}/metrics", tracker.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("reelnet_tracker_requests"), "{metrics}");

    let addr = node.url.trim_start_matches("http://");
    let absolute = format!("GET http://{addr}/api/v1/../../metrics");
    let escapes = [
        "GET /api/v1/../../metrics",
        "GET /api/v1/me/../../../metrics",
        "GET /api/v1/./../../metrics",
        "GET /api/v1/%2e%2e/%2e%2e/metrics",
        "GET /api/v1/%2E%2E/%2E%2E/metrics",
        "GET /api/v1/.%2e/.%2e/metrics",
        "GET /api/v1/..%2f..%2fmetrics",
        "GET /api/v1/..%2F..%2Fmetrics",
        "GET /api/v1/%252e%252e/%252e%252e/metrics",
        "GET /api/v1/%252e%252e%252f%252e%252e%252fmetrics",
        "GET /api/v1/..\\..\\metrics",
        "GET /api/v1/..%5c..%5cmetrics",
        "GET /api/v1//..//..//metrics",
        "GET /api/v1/me%00/../../metrics",
        "POST /api/v1/auth/../../metrics",
        absolute.as_str(),
    ];
    for line in escapes {
        let (status, body) = raw(&node, line, "").await;
        assert_eq!(status, 400, "{line}: {body}");
        assert!(body.contains("\"bad_path\""), "{line}: {body}");
        assert!(!body.contains("reelnet_tracker"), "{line}: {body}");
    }
    // A WebSocket upgrade on an escaping path: the same 400, no upgrade to the tracker.
    let ws_headers = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (status, body) = raw(
        &node,
        "GET /api/v1/rooms/%2e%2e/%2e%2e/%2e%2e/metrics",
        ws_headers,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"bad_path\""), "{body}");

    // Ordinary requests still go through: a query cannot move the path, and a sign-in works.
    let (status, body) = raw(&node, "GET /api/v1/me?x=/../../metrics", "").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing_token"), "{body}");
    let login = node.user(&tracker.smtp, "alice@example.org", true).await;
    let (s, me) = node.get("/api/v1/me", Some(&access(&login))).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["email"], "alice@example.org");

    // The tracker saw only clean paths under /api/v1 (and the network's own routes the
    // node's membership uses), never one of the escapes.
    let seen = front.seen();
    assert!(seen.iter().any(|s| s.path == "/api/v1/me"), "{seen:?}");
    for s in &seen {
        assert!(
            !s.path.contains("..") && !s.path.contains('%') && !s.path.contains('\\'),
            "forwarded: {s:?}"
        );
        assert_ne!(s.path, "/metrics", "forwarded: {s:?}");
    }
}

/// `s`'s path with its query, as the tracker sees (and checks) it.
fn signed_path(s: &Seen) -> String {
    if s.query.is_empty() {
        s.path.clone()
    } else {
        format!("{}?{}", s.path, s.query)
    }
}

#[tokio::test]
async fn credentials_stay_at_the_tracker_and_every_forwarded_request_is_signed() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;
    let node_id = wait_member(&node).await;
    // Registered and signed in at the tracker (through the front, not the node).
    let login = node.user(&tracker.smtp, "bob@example.org", true).await;
    let token = access(&login);
    let before = front.seen().len();

    // Credential routes through the node: refused there, whatever the client claims.
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/verify",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/auth/refresh",
    ] {
        let res = node
            .http
            .post(format!("{}{path}", node.url))
            .header(VIEWER_ADDR_HEADER, "198.51.100.66")
            .header(NODE_AUTH_HEADER, "v1.forged")
            .json(&json!({"email": "bob@example.org", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let (s, b) = split(res).await;
        assert_eq!(s, 403, "{path}: {b}");
        assert_eq!(b["error"], "credentials_at_tracker", "{path}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains("/auth/login"),
            "{b}"
        );
    }
    // A WebSocket upgrade there too.
    let ws_headers = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (s, b) = raw(&node, "GET /api/v1/auth/login", ws_headers).await;
    assert_eq!(s, 403, "{b}");

    // Ordinary requests: signed by the node over the method, the path bound to the
    // viewer's address, and the body; what a client puts in the node's headers is dropped.
    let res = node
        .http
        .get(format!("{}/api/v1/me?x=1&y=two", node.url))
        .bearer_auth(&token)
        .header(NODE_AUTH_HEADER, "v1.forged")
        .header(VIEWER_ADDR_HEADER, "198.51.100.66")
        .send()
        .await
        .unwrap();
    let (s, me) = split(res).await;
    assert_eq!(s, 200, "{me}");
    let res = node
        .http
        .post(format!("{}/api/v1/nothing/here", node.url))
        .header("content-type", "application/json")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // A WebSocket upgrade: signed as GET with no body.
    let ws_url = format!(
        "{}/api/v1/wsprobe?room=r1",
        node.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(first.to_text().unwrap(), "ok");
    // A new movie request carries the viewer's address, signed with it.
    let res = node
        .http
        .post(format!("{}/api/v1/requests", node.url))
        .bearer_auth(&token)
        .header(VIEWER_ADDR_HEADER, "198.51.100.66")
        .json(&json!({"tmdb_id": 1, "title": "x"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().as_u16() >= 200, "{}", res.status());

    let seen = front.seen()[before..].to_vec();
    assert!(
        seen.iter().all(|s| !s.path.starts_with("/api/v1/auth/")),
        "a credential route was forwarded: {seen:?}"
    );
    let now = reelnet_node::unix_now();
    let mut checked = 0;
    for s in seen.iter().filter(|s| {
        ["/api/v1/me", "/api/v1/nothing/here", "/api/v1/wsprobe"].contains(&s.path.as_str())
    }) {
        // Bound to the viewer's address (the socket peer, not what the client sent), never
        // a signature over the plain path: that is what the node's own requests carry.
        let viewer = s.headers[VIEWER_ADDR_HEADER].to_str().unwrap();
        assert_eq!(viewer, "127.0.0.1", "{s:?}");
        let header = s.headers[NODE_AUTH_HEADER].to_str().unwrap();
        let parsed = NodeAuth::parse(header).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let method = s.method.as_str();
        parsed
            .verify(
                &node_id,
                method,
                &viewer_auth_path(&s.path, viewer),
                &s.body,
                now,
            )
            .unwrap_or_else(|e| panic!("{s:?}: {e}"));
        for plain in [s.path.clone(), signed_path(s)] {
            assert!(parsed
                .verify(&node_id, method, &plain, &s.body, now)
                .is_err());
        }
        // Bound to the body.
        assert!(parsed
            .verify(
                &node_id,
                method,
                &viewer_auth_path(&s.path, viewer),
                b"other",
                now
            )
            .is_err());
        checked += 1;
    }
    assert_eq!(checked, 3, "{seen:?}");
    let me = seen.iter().find(|s| s.path == "/api/v1/me").unwrap();
    assert_eq!(me.query, "x=1&y=two");
    let ws = seen.iter().find(|s| s.path == "/api/v1/wsprobe").unwrap();
    assert_eq!(ws.query, "room=r1");
    assert!(ws.body.is_empty());

    let req = seen
        .iter()
        .find(|s| s.path == "/api/v1/requests")
        .expect("the movie request was forwarded");
    let viewer = req.headers[VIEWER_ADDR_HEADER].to_str().unwrap();
    assert_eq!(viewer, "127.0.0.1", "{req:?}");
    let parsed = NodeAuth::parse(req.headers[NODE_AUTH_HEADER].to_str().unwrap()).unwrap();
    parsed
        .verify(
            &node_id,
            "POST",
            &viewer_auth_path(&req.path, viewer),
            &req.body,
            now,
        )
        .unwrap();
    assert!(parsed
        .verify(
            &node_id,
            "POST",
            &viewer_auth_path(&req.path, "198.51.100.66"),
            &req.body,
            now
        )
        .is_err());
    // X-Forwarded-For is still sent, for logs: the peer.
    assert_eq!(me.headers["x-forwarded-for"], "127.0.0.1");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(node: &TestNode, room: &str, token: &str) -> Ws {
    let url = format!(
        "{}/api/v1/rooms/{room}/ws?access_token={token}",
        node.url.replace("http://", "ws://")
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next frame of type `ty`, skipping others (5 s at most).
async fn expect(ws: &mut Ws, ty: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == ty {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no {ty} frame: {other:?}"),
        }
    }
}

/// Reads until the connection ends (5 s at most): the close code the proxy sent (if the
/// close frame arrived before the connection went) and the text frames before it.
async fn until_closed(ws: &mut Ws) -> (Option<u16>, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => frames.push(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (frame.map(|f| u16::from(f.code)), frames)
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return (None, frames),
            Err(_) => panic!("the connection was not closed; got {frames:?}"),
        }
    }
}

#[tokio::test]
async fn room_frames_too_large_or_too_fast_end_that_connection_only() {
    let tracker = TestTracker::start_with(|c| c.rooms.premium_only = false).await;
    let node = TestNode::start(&tracker.url).await;
    let host = access(&node.user(&tracker.smtp, "host@example.org", true).await);
    let guest = access(&node.user(&tracker.smtp, "guest@example.org", true).await);
    let res = node
        .http
        .post(format!("{}/api/v1/rooms", node.url))
        .bearer_auth(&host)
        .json(&json!({"movie_id": "tmdb-603"}))
        .send()
        .await
        .unwrap();
    let (s, room) = split(res).await;
    assert_eq!(s, 201, "{room}");
    let id = room["id"].as_str().unwrap();

    // A party through the node.
    let mut h = connect(&node, id, &host).await;
    expect(&mut h, "welcome").await;
    let mut g = connect(&node, id, &guest).await;
    expect(&mut g, "welcome").await;
    send(&mut h, json!({"type": "play", "position": 0.0})).await;
    assert_eq!(expect(&mut g, "state").await["state"]["playing"], true);
    expect(&mut h, "state").await;

    // A frame above the limit (8 KiB; a chat line is at most 500 characters) ends the
    // guest's connection with 1009 — the node cuts it, the tracker never reads it.
    let mut big = connect(&node, id, &guest).await;
    expect(&mut big, "welcome").await;
    let text = "x".repeat(9 << 10);
    send(&mut big, json!({"type": "chat", "text": text})).await;
    let (code, frames) = until_closed(&mut big).await;
    assert_eq!(code, Some(1009), "after {frames:?}");
    assert!(
        frames
            .iter()
            .all(|f| f["type"] != "chat" && f["type"] != "error"),
        "the tracker got the frame: {frames:?}"
    );

    // A flood (burst 20, 10 a second) ends it with 1008 after about the burst.
    let mut flood = connect(&node, id, &guest).await;
    expect(&mut flood, "welcome").await;
    for i in 0..200 {
        let ping = Message::Text(json!({"type": "ping", "t0": i as f64}).to_string().into());
        if flood.send(ping).await.is_err() {
            break;
        }
    }
    let (code, frames) = until_closed(&mut flood).await;
    assert_eq!(code, Some(1008), "after {frames:?}");
    // About the burst gets through (more if the node reads slowly and the bucket refills
    // meanwhile), far from all 200.
    let pongs = frames.iter().filter(|f| f["type"] == "pong").count();
    assert!(pongs <= 60, "{pongs} pings reached the tracker");

    // The party goes on for everyone else.
    send(&mut h, json!({"type": "pause", "position": 1.0})).await;
    assert_eq!(expect(&mut g, "state").await["state"]["playing"], false);
    assert_eq!(expect(&mut h, "state").await["state"]["playing"], false);
    send(&mut g, json!({"type": "chat", "text": "still here"})).await;
    assert_eq!(expect(&mut h, "chat").await["text"], "still here");
}
