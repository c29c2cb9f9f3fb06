//! The gateway's authentication, `/play` and tracker proxy over real parts: a real tracker
//! (in-process `reelnet_tracker::Tracker`, sled, its own signing keys, a real SMTP server for
//! the verification mail) and a real node (`reelnet_node::Node::bind`) on loopback, talked to
//! over HTTP. Movies are made known by writing a signed manifest (and its segment) into the
//! node's store before it starts; the node's publisher announces it to its catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/auth_support.rs"]
mod auth_support;
#[path = "common_membership/mod.rs"]
mod common_membership;

use std::path::Path;
use std::time::{Duration, Instant};

use auth_support::*;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reelnet_node::gateway::token::PlaybackTokens;
use reelnet_proto::{
    Claims, Container, Manifest, MovieId, Rendition, Role, SegmentEntry, SignedManifest, Tier,
    Track,
};
use serde_json::json;
use tokio_tungstenite::tungstenite;

fn movie() -> MovieId {
    MovieId::from_tmdb(603)
}

/// Stores one segment and a complete signed manifest of [`movie`] in `dir` (as an ingest
/// would), signed with the node key the node will start with.
fn hold_movie(dir: &Path) {
    let key = reelnet_node::identity::load_or_create(dir).unwrap();
    let store = reelnet_node::store::Store::open(dir).unwrap();
    let bytes = b"a tiny MPEG-TS segment stand-in".repeat(10);
    let (hash, _) = store.put_segment(&bytes, None).unwrap();
    let m = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: movie(),
        title: "The Matrix".into(),
        year: Some(1999),
        origin: reelnet_node::identity::node_id(&key),
        ingest_id: [3; 16],
        seq: 1,
        created_at: reelnet_node::unix_now(),
        container: Container::MpegTs,
        target_duration_ms: 4000,
        tracks: vec![Track {
            kind: reelnet_proto::manifest::TrackKind::Video,
            media: None,
            rendition: Rendition {
                name: "360p".into(),
                width: 640,
                height: 360,
                bandwidth: 800_000,
                codecs: "avc1.64001e".into(),
                frame_rate_milli: 25_000,
            },
            init: None,
            segments: vec![SegmentEntry {
                hash,
                duration_ms: 4000,
                size: bytes.len() as u32,
            }],
        }],
        complete: true,
        meta: Default::default(),
    };
    store
        .put_manifest(&SignedManifest::sign(&m, &key).unwrap())
        .unwrap();
}

/// Claims of a token for `node` (`aud = reelnet-node:<its id>`, the only audience it takes).
fn claims(node: &TestNode, sub: &str, verified: bool) -> Claims {
    let now = reelnet_node::unix_now();
    Claims {
        sub: sub.into(),
        email: "x@example.org".into(),
        tier: Tier::Free,
        tier_until: None,
        email_verified: verified,
        role: Role::User,
        exp: now + 600,
        iat: now,
        iss: ISSUER.into(),
        aud: reelnet_proto::claims::node_audience(&node.node_id),
        jti: "test".into(),
        sid: None,
        scope: None,
    }
}

/// Signs `claims` with a fresh key that no tracker knows, naming `kid`.
fn sign_foreign(claims: &Claims, kid: &str) -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

async fn play(node: &TestNode, id: &str, bearer: Option<&str>) -> (u16, serde_json::Value) {
    node.get(&format!("/api/v1/movies/{id}/play"), bearer).await
}

/// Polls `/play` until it answers 200 (the node's publisher announces the stored manifest
/// to its catalog at start).
async fn play_ok(node: &TestNode, bearer: &str, limit: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (s, b) = play(node, movie().as_str(), Some(bearer)).await;
        if s == 200 {
            return b;
        }
        assert!(start.elapsed() < limit, "play never succeeded: {s} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn proxy_round_trip_play_and_tracker_outage() {
    let mut tracker = TestTracker::start().await;
    let node = TestNode::start_with(&tracker.url, hold_movie).await;

    // Register and verify at the tracker, sign in there for a token of this node; `me`
    // through the node.
    let login = node.user(&tracker.smtp, "alice@example.org", true).await;
    let token = access(&login);
    let (s, me) = node.get("/api/v1/me", Some(&token)).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(me["email_verified"], true);
    let (s, b) = node.get("/api/v1/me", None).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(
        b["error"], "missing_token",
        "the tracker's own error comes back: {b}"
    );
    // Query strings and PUT bodies go through: a watch-later round trip.
    let res = node
        .http
        .put(format!("{}/api/v1/me/watchlist/tmdb-603", node.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (s, list) = node.get("/api/v1/me/watchlist", Some(&token)).await;
    assert_eq!(s, 200, "{list}");
    assert!(list.to_string().contains("tmdb-603"), "{list}");
    // The JWKS is proxied too, and matches the tracker's.
    let (s, jwks) = node.get("/.well-known/jwks.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(jwks["keys"][0]["kid"], tracker.keyring().current_kid());
    // Oversized bodies are refused by the node, not passed on.
    let big = vec![b'x'; 9 << 20];
    let res = node
        .http
        .post(format!("{}/api/v1/requests", node.url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    // /play for a known movie.
    let body = play_ok(&node, &token, Duration::from_secs(15)).await;
    assert_eq!(body["movie_id"], "tmdb-603");
    let master = body["master_url"].as_str().unwrap();
    let prefix = format!("{}/hls/tmdb-603/master.m3u8?token=", node.url);
    assert!(master.starts_with(&prefix), "{master}");
    let exp = body["expires_at"].as_u64().unwrap();
    let now = reelnet_node::unix_now();
    assert!(exp >= now + 7200 - 5 && exp <= now + 7200 + 5, "{exp}");
    assert!(body.get("premium_until").is_none(), "a free viewer: {body}");
    // The token in it is this node's playback token for that movie and user.
    let playback = &master[prefix.len()..];
    let tokens = PlaybackTokens::load_or_create(node.dir.path(), 7200).unwrap();
    let grant = tokens.verify(playback, &movie(), now).unwrap();
    assert_eq!(grant.user, me["id"].as_str().unwrap());
    assert_eq!(grant.exp, exp);
    assert!(matches!(
        tokens.verify(playback, &MovieId::from_tmdb(604), now),
        Err(reelnet_node::gateway::token::TokenError::WrongMovie)
    ));

    // 404 for a movie the network does not have, 400 for a bad id.
    let (s, b) = play(&node, "tmdb-999999", Some(&token)).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")), "{b}");
    let (s, b) = play(&node, "Not..Valid", Some(&token)).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_movie_id")), "{b}");

    // Metrics count proxied requests.
    let text = node
        .http
        .get(format!("{}/metrics", node.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"reelnet_http_requests_total{route="proxy",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="play",status="200""#), "{text}");

    // The tracker goes down: proxied calls get 503, but a token whose key is cached still
    // verifies, so playback can start.
    tracker.stop().await;
    let (s, b) = node.get("/api/v1/me", Some(&token)).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "tracker_unavailable");
    // Credentials are refused by the node itself, tracker or not.
    let (s, b) = node
        .post(
            "/api/v1/auth/login",
            json!({"email": "alice@example.org", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("credentials_at_tracker")),
        "{b}"
    );
    let (s, b) = play(&node, movie().as_str(), Some(&token)).await;
    assert_eq!(s, 200, "cached key must keep verifying: {b}");
    // ...while tokens under unknown keys are still refused (and quickly).
    let started = Instant::now();
    let forged = sign_foreign(&claims(&node, "someone", true), "not-a-kid");
    let (s, _) = play(&node, movie().as_str(), Some(&forged)).await;
    assert_eq!(s, 401);
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// How many JWKS requests the tracker has answered (from its `/metrics`).
async fn jwks_served(tracker_url: &str) -> u64 {
    let text = reqwest::get(format!("{tracker_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("reelnet_tracker_requests_total{")
                && l.contains("route=\"/.well-known/jwks.json\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn play_refuses_bad_tokens() {
    let tracker = TestTracker::start().await;
    let node = TestNode::start_with(&tracker.url, hold_movie).await;
    let id = movie();
    let ring = tracker.keyring();
    let kid = ring.current_kid().to_owned();

    // A good token signed by the tracker's real key works (sanity check for the rest).
    let good = ring.sign(&claims(&node, "u-good", true)).unwrap();
    play_ok(&node, &good, Duration::from_secs(15)).await;

    let unauthorized = |what: &'static str| {
        move |(s, b): (u16, serde_json::Value)| {
            assert_eq!(s, 401, "{what}: {b}");
            assert_eq!(b["error"], "unauthorized", "{what}: {b}");
        }
    };
    unauthorized("missing")(play(&node, id.as_str(), None).await);
    unauthorized("garbage")(play(&node, id.as_str(), Some("garbage")).await);
    unauthorized("three garbage parts")(play(&node, id.as_str(), Some("a.b.c")).await);
    let res = node
        .http
        .get(format!("{}/api/v1/movies/{id}/play", node.url))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .unwrap();
    unauthorized("basic scheme")(split(res).await);
    let huge = "a".repeat(9000);
    unauthorized("huge")(play(&node, id.as_str(), Some(&huge)).await);

    let mut c = claims(&node, "u", true);
    // Past exp by more than the clock-skew leeway (300 s).
    c.exp = reelnet_node::unix_now() - reelnet_node::gateway::auth::LEEWAY_SECS - 60;
    let expired = ring.sign(&c).unwrap();
    unauthorized("expired")(play(&node, id.as_str(), Some(&expired)).await);

    let mut c = claims(&node, "u", true);
    c.aud = "somebody-else".into();
    let wrong_aud = ring.sign(&c).unwrap();
    unauthorized("wrong audience")(play(&node, id.as_str(), Some(&wrong_aud)).await);
    // A network token (a script's, from the tracker's own sign-in) and a token issued
    // through another node: refused, each saying why.
    let mut c = claims(&node, "u", true);
    c.aud = reelnet_proto::claims::ACCESS_TOKEN_AUDIENCE.into();
    let network = ring.sign(&c).unwrap();
    let (s, b) = play(&node, id.as_str(), Some(&network)).await;
    unauthorized("network token")((s, b.clone()));
    assert!(
        b["message"].as_str().unwrap().contains("network token"),
        "{b}"
    );
    let mut c = claims(&node, "u", true);
    c.aud = reelnet_proto::claims::node_audience("some-other-node");
    let other = ring.sign(&c).unwrap();
    let (s, b) = play(&node, id.as_str(), Some(&other)).await;
    unauthorized("another node's token")((s, b.clone()));
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("another node (some-other-node)"),
        "{b}"
    );

    let mut c = claims(&node, "u", true);
    c.iss = "another-tracker".into();
    let wrong_iss = ring.sign(&c).unwrap();
    unauthorized("wrong issuer")(play(&node, id.as_str(), Some(&wrong_iss)).await);

    // Another key claiming the tracker's kid: bad signature.
    let forged = sign_foreign(&claims(&node, "u", true), &kid);
    unauthorized("another key, real kid")(play(&node, id.as_str(), Some(&forged)).await);
    // Another key under a kid nobody publishes: unknown key, even after the refetch.
    let forged_kid = sign_foreign(&claims(&node, "u", true), "deadbeefdeadbeef");
    unauthorized("forged kid")(play(&node, id.as_str(), Some(&forged_kid)).await);
    // Many forged kids in a row are refused without hammering the tracker (one refetch per
    // 10 s at most): counted on the tracker's side rather than inferred from a time bound
    // (the time is reported).
    let fetched_before = jwks_served(&tracker.url).await;
    let started = Instant::now();
    for i in 0..20 {
        let t = sign_foreign(&claims(&node, "u", true), &format!("forged-{i}"));
        unauthorized("forged kids")(play(&node, id.as_str(), Some(&t)).await);
    }
    let took = started.elapsed();
    let refetches = jwks_served(&tracker.url).await - fetched_before;
    println!("20 forged kids refused in {took:?} with {refetches} JWKS refetch(es)");
    assert!(
        refetches <= 1 + took.as_secs() / 10,
        "{refetches} JWKS refetches in {took:?}"
    );

    // Tampered payload of a real token.
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut c = claims(&node, "u-good", true);
    c.role = Role::Admin;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    unauthorized("tampered")(play(&node, id.as_str(), Some(&tampered)).await);
    // alg=none with the real kid.
    let none = format!(
        "{}.{}.",
        b64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)),
        b64.encode(serde_json::to_vec(&claims(&node, "u", true)).unwrap())
    );
    unauthorized("alg none")(play(&node, id.as_str(), Some(&none)).await);

    // 403 for an account whose email is not verified: a real login of a real account.
    let login = node.user(&tracker.smtp, "bob@example.org", false).await;
    let (s, b) = play(&node, id.as_str(), Some(&access(&login))).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"], "email_not_verified");
}

#[tokio::test]
async fn node_picks_up_rotated_tracker_keys() {
    let tracker = TestTracker::start().await;
    let node = TestNode::start_with(&tracker.url, hold_movie).await;
    let login = node.user(&tracker.smtp, "carol@example.org", true).await;
    let old = access(&login);
    play_ok(&node, &old, Duration::from_secs(15)).await;
    let old_kid = tracker.keyring().current_kid().to_owned();

    // `reelnet-tracker rotate-key` does exactly this; the running tracker reloads within 1 s.
    let new_kid =
        reelnet_tracker::keys::rotate(&tracker.data_dir(), reelnet_node::unix_now()).unwrap();
    assert_ne!(new_kid, old_kid);
    let start = Instant::now();
    let new = loop {
        let t = access(&node.login("carol@example.org").await);
        let header = jsonwebtoken::decode_header(&t).unwrap();
        if header.kid.as_deref() == Some(new_kid.as_str()) {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "tracker kept the old key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The node has not seen the new kid; the first token naming it triggers a refetch
    // (rate-limited to one per 10 s since the last fetch, so allow for that).
    let body = play_ok(&node, &new, Duration::from_secs(20)).await;
    assert_eq!(body["movie_id"], "tmdb-603");
    // The retired key is still published for its grace period, so old tokens still play.
    let (s, b) = play(&node, movie().as_str(), Some(&old)).await;
    assert_eq!(s, 200, "{b}");
}

/// WebSocket proxying. The tracker has no WebSocket route yet (watch-party rooms will add
/// one), so a small warp WebSocket echo server on loopback stands in for the tracker here;
/// it also echoes the headers of plain HTTP requests, to check what the proxy forwards.
#[tokio::test]
async fn websocket_and_headers_are_proxied() {
    use warp::Filter;
    let echo_ws = warp::path!("api" / "v1" / "rooms" / String / "ws")
        .and(warp::ws())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .map(
            |room: String, ws: warp::ws::Ws, query: String, auth: Option<String>| {
                ws.on_upgrade(move |socket| async move {
                    let (mut tx, mut rx) = socket.split();
                    let hello = format!(
                        "room={room} query={query} auth={}",
                        auth.unwrap_or_default()
                    );
                    let _ = tx.send(warp::ws::Message::text(hello)).await;
                    while let Some(Ok(msg)) = rx.next().await {
                        if msg.is_close() {
                            break;
                        }
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                })
            },
        );
    let echo_http = warp::path!("api" / "v1" / "echo")
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(|headers: warp::http::HeaderMap, query: String| {
            let h: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                .collect();
            warp::reply::json(&json!({"headers": h, "query": query}))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stand_in = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = {
        let stop = stop.clone();
        tokio::spawn(
            warp::serve(echo_ws.or(echo_http))
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run(),
        )
    };

    let node = TestNode::start(&stand_in).await;
    let ws_url = format!(
        "{}/api/v1/rooms/r1/ws?since=5",
        node.url.replace("http://", "ws://")
    );
    let mut req =
        tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str()).unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer abc".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(
        first.to_text().unwrap(),
        "room=r1 query=since=5 auth=Bearer abc"
    );
    ws.send(tungstenite::Message::Text("hello".into()))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        "hello"
    );
    // Binary frames up to the size limit (`[gateway] ws_max_message_bytes`, 8 KiB) go
    // through both ways.
    let blob: Vec<u8> = (0..=255u8).cycle().take(8 << 10).collect();
    ws.send(tungstenite::Message::Binary(blob.clone().into()))
        .await
        .unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back.into_data().as_ref(), blob.as_slice());
    ws.close(None).await.unwrap();

    // Plain HTTP: end-to-end headers forwarded, hop-by-hop dropped, X-Forwarded-* added.
    let res = node
        .http
        .get(format!("{}/api/v1/echo?a=1&b=two", node.url))
        .header("authorization", "Bearer xyz")
        .header("cookie", "session=1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["query"], "a=1&b=two");
    let h = &b["headers"];
    assert_eq!(h["authorization"], "Bearer xyz");
    assert_eq!(h["cookie"], "session=1");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        h["x-forwarded-host"],
        node.url.trim_start_matches("http://")
    );
    assert!(h.get("x-hop").is_none(), "{h}");

    // A stand-in that is gone: 503 for HTTP and for WebSocket upgrades.
    stop.cancel();
    server.await.unwrap();
    let (s, b) = node.get("/api/v1/echo", None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (503, Some("tracker_unavailable")),
        "{b}"
    );
    let err = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .err()
        .unwrap();
    match err {
        tungstenite::Error::Http(res) => assert_eq!(res.status(), 503),
        other => panic!("expected an HTTP 503 refusal, got {other}"),
    }
}

/// `/api/v1/tmdb/search` against a TMDb stand-in (a warp server answering TMDb-shaped
/// JSON through the node's real client): signed-in users only, matches marked with whether
/// the network has them, hostile fields cleaned, answers reused, and a node without a key
/// says so instead of failing.
#[tokio::test]
async fn tmdb_search_marks_what_the_network_already_has() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use warp::Filter;

    let tracker = TestTracker::start().await;
    let searches = Arc::new(AtomicUsize::new(0));
    let tmdb = {
        let searches = searches.clone();
        warp::path!("3" / "search" / "movie")
            .and(warp::query::<HashMap<String, String>>())
            .map(move |q: HashMap<String, String>| {
                searches.fetch_add(1, Ordering::SeqCst);
                assert_eq!(q.get("api_key").map(String::as_str), Some("search-key"));
                assert_eq!(q.get("include_adult").map(String::as_str), Some("false"));
                let body = if q.get("query").map(String::as_str) == Some("matrix") {
                    json!({"page": 1, "results": [
                        {"id": 603, "title": "The Matrix", "release_date": "1999-03-30",
                         "overview": "A hacker learns the truth.", "poster_path": "/m.jpg"},
                        {"id": 604, "title": "The Matrix\u{0007} Reloaded", "release_date": "2003",
                         "overview": "x".repeat(2000), "poster_path": "/../../etc/passwd"},
                        {"id": 0, "title": "No id"},
                        {"id": 605, "title": "   "}
                    ]})
                } else {
                    json!({"page": 1, "results": []})
                };
                warp::reply::json(&body)
            })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tmdb_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        warp::serve(tmdb)
            .incoming(listener)
            .graceful(std::future::pending::<()>())
            .run()
            .await;
    });
    let api = format!("{tmdb_url}/3");
    let images = format!("{tmdb_url}/t/p");
    let mut node = TestNode::start_configured(&tracker.url, hold_movie, |c| {
        c.metadata.tmdb_api_key = "search-key".into();
        c.metadata.tmdb_api_url = api;
        c.metadata.tmdb_image_url = images;
    })
    .await;
    let token = tracker
        .keyring()
        .sign(&claims(&node, "u-search", false))
        .unwrap();
    // The node's publisher announces the held movie to its catalog.
    play_ok(
        &node,
        &tracker
            .keyring()
            .sign(&claims(&node, "u-play", true))
            .unwrap(),
        Duration::from_secs(10),
    )
    .await;

    let (s, b) = node.get("/api/v1/tmdb/search?q=matrix", None).await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = node
        .get("/api/v1/tmdb/search?q=matrix", Some("not-a-jwt"))
        .await;
    assert_eq!(s, 401);
    let (s, b) = node.get("/api/v1/tmdb/search?q=%20", Some(&token)).await;
    assert_eq!(s, 400, "{b}");
    let long = "a".repeat(101);
    let (s, _) = node
        .get(&format!("/api/v1/tmdb/search?q={long}"), Some(&token))
        .await;
    assert_eq!(s, 400);

    let (s, page) = node
        .get("/api/v1/tmdb/search?q=Matrix%20", Some(&token))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["enabled"], true);
    let results = page["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{page}");
    assert_eq!(results[0]["tmdb_id"], 603);
    assert_eq!(results[0]["movie_id"], "tmdb-603");
    assert_eq!(results[0]["title"], "The Matrix");
    assert_eq!(results[0]["year"], 1999);
    assert_eq!(results[0]["on_network"], true);
    assert_eq!(
        results[0]["poster_url"],
        format!("{tmdb_url}/t/p/w185/m.jpg").as_str()
    );
    assert_eq!(results[1]["tmdb_id"], 604);
    assert_eq!(results[1]["title"], "The Matrix Reloaded");
    assert_eq!(results[1]["year"], 2003);
    assert_eq!(results[1]["on_network"], false);
    assert_eq!(results[1]["poster_url"], serde_json::Value::Null);
    assert_eq!(
        results[1]["overview"].as_str().unwrap().chars().count(),
        300
    );
    // The same query (any case or spacing) is answered from memory.
    let (s, _) = node.get("/api/v1/tmdb/search?q=matrix", Some(&token)).await;
    assert_eq!(s, 200);
    assert_eq!(searches.load(Ordering::SeqCst), 1);
    node.stop().await;

    // Without a TMDb key the node says so.
    let mut plain = TestNode::start(&tracker.url).await;
    // (The first node's token is refused here: tokens are bound to their node.)
    let (s, _) = plain
        .get("/api/v1/tmdb/search?q=matrix", Some(&token))
        .await;
    assert_eq!(s, 401);
    let token = tracker
        .keyring()
        .sign(&claims(&plain, "u-search", false))
        .unwrap();
    let (s, page) = plain
        .get("/api/v1/tmdb/search?q=matrix", Some(&token))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page, json!({"enabled": false, "results": []}));
    plain.stop().await;
}

/// `/play` for premium viewers: the playback token lives the configured 2 h, its premium
/// renditions end with the premium period the access token names (`tier_until`), and the
/// node refuses a playback token that has expired or that outlives its configured lifetime.
#[tokio::test]
async fn playback_tokens_are_bounded_by_ttl_and_premium_period() {
    let tracker = TestTracker::start().await;
    let node = TestNode::start_with(&tracker.url, hold_movie).await;
    let ring = tracker.keyring();
    let tokens = PlaybackTokens::load_or_create(node.dir.path(), 7200).unwrap();
    let prefix = format!("{}/hls/tmdb-603/master.m3u8?token=", node.url);
    let playback = |body: &serde_json::Value| {
        let url = body["master_url"].as_str().unwrap();
        assert!(url.starts_with(&prefix), "{url}");
        url[prefix.len()..].to_owned()
    };
    let premium = |sub: &str, until: Option<u64>| {
        let mut c = claims(&node, sub, true);
        c.tier = Tier::Premium;
        c.tier_until = until;
        ring.sign(&c).unwrap()
    };

    // Premium until 100 s from now: the token lives 2 h, its premium part 100 s.
    let now = reelnet_node::unix_now();
    let body = play_ok(
        &node,
        &premium("p-ending", Some(now + 100)),
        Duration::from_secs(15),
    )
    .await;
    let exp = body["expires_at"].as_u64().unwrap();
    assert!(exp >= now + 7200 && exp <= now + 7200 + 5, "{body}");
    assert_eq!(body["premium_until"].as_u64(), Some(now + 100), "{body}");
    let token = playback(&body);
    // Checked at the time it is now: the token was issued a moment after `now`.
    let grant = tokens
        .verify(&token, &movie(), reelnet_node::unix_now())
        .unwrap();
    assert_eq!(
        (grant.tier, grant.premium_until),
        (Tier::Premium, now + 100)
    );
    // At the end of the period the token grants the free tier, until it expires.
    let grant = tokens.verify(&token, &movie(), now + 100).unwrap();
    assert_eq!(grant.tier, Tier::Free);
    assert_eq!(
        tokens.verify(&token, &movie(), exp),
        Err(reelnet_node::gateway::token::TokenError::Expired)
    );

    // Open-ended premium: premium for the token's whole life.
    let body = play_ok(&node, &premium("p-open", None), Duration::from_secs(15)).await;
    assert_eq!(body["premium_until"], body["expires_at"], "{body}");
    // A period that has ended (the tracker would not sign this; a node must not trust the
    // tier alone): a free token.
    let now = reelnet_node::unix_now();
    let body = play_ok(
        &node,
        &premium("p-ended", Some(now - 1)),
        Duration::from_secs(15),
    )
    .await;
    assert!(body.get("premium_until").is_none(), "{body}");
    let grant = tokens.verify(&playback(&body), &movie(), now).unwrap();
    assert_eq!(grant.tier, Tier::Free);

    // Over HTTP: a valid token plays, an expired one and one that outlives the node's
    // configured lifetime (minted with a longer one) are refused.
    let master = |token: &str| {
        let url = format!("{prefix}{token}");
        let http = node.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(master(&token).await, 200);
    let c = claims(&node, "u-expired", true);
    let (expired, _) = tokens.issue_at(&c, &movie(), now - 7300, 7200).unwrap();
    assert_eq!(master(&expired).await, 403);
    let long = PlaybackTokens::load_or_create(node.dir.path(), 86_400).unwrap();
    let (too_long, too_long_exp) = long.issue(&c, &movie(), 86_400).unwrap();
    assert!(too_long_exp > now + 7200);
    assert_eq!(master(&too_long).await, 403);
    assert_eq!(
        tokens.verify(&too_long, &movie(), now),
        Err(reelnet_node::gateway::token::TokenError::TooLong)
    );
    // Issuing never exceeds the configured lifetime either.
    let (_, capped) = tokens.issue_at(&c, &movie(), now, 86_400).unwrap();
    assert_eq!(capped, now + 7200);
}
