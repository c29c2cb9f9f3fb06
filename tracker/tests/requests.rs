//! Movie requests against a real tracker process and a real SMTP server: duplicates join,
//! node claims with leases that lapse and pass to another node, progress, done/failed
//! with emails and notifications to every requester, quota, and admin actions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{access, split, wait_for, Member, Tracker};
use reqwest::Method;
use serde_json::{json, Value};

async fn node(t: &Tracker, path: &str, m: Option<&Member>, body: Value) -> (u16, Value) {
    t.node_post(path, m, body).await
}

async fn mine(t: &Tracker, token: &str) -> Vec<Value> {
    let (s, b) = t.call(Method::GET, "/api/v1/requests", token, None).await;
    assert_eq!(s, 200, "{b}");
    b.as_array().unwrap().clone()
}

#[tokio::test]
async fn requests_claims_leases_and_notifications() {
    // The node's gateway is a configured trusted proxy here, so its X-Forwarded-Host
    // names the node in the "ready" links.
    let t = Tracker::start_with(
        "[requests]\nlease_secs = 2\nfree_per_month = 2\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    )
    .await;
    // Two ingest members (enrolled with invites) and an edge member.
    let n1 = t.member(&["ingest", "replica"]).await;
    let n2 = t.member(&["ingest"]).await;
    let edge = t.member(&["edge"]).await;
    // An admin, made by the operator (nobody becomes admin by registering first).
    let admin = access(&t.admin("alice@example.org", "a long password").await);
    let bob = access(&t.user("bob@example.org", "a long password").await);

    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
    let (s, a1) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 603, "title": "The Matrix", "year": 1999, "magnet": magnet})),
        )
        .await;
    assert_eq!((s, a1["state"].as_str()), (201, Some("open")), "{a1}");
    // Bob asks through a node (the gateway proxy adds X-Forwarded-*): joins, 200.
    let r = t
        .http
        .post(t.url("/api/v1/requests"))
        .bearer_auth(&bob)
        .header("X-Forwarded-Host", "node-b.example:8081")
        .header("X-Forwarded-Proto", "http")
        .json(&json!({"tmdb_id": 603}))
        .send()
        .await
        .unwrap();
    let (s, b1) = split(r).await;
    assert_eq!(s, 200, "{b1}");
    assert_eq!(b1["id"], a1["id"]);
    assert_eq!(b1["requesters"], 2);
    // Asking twice does not count twice.
    let (s, again) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 603})),
        )
        .await;
    assert_eq!((s, again["requesters"].as_u64()), (200, Some(2)), "{again}");
    // Bad input changes nothing.
    for bad in [
        json!({"tmdb_id": 0}),
        json!({"tmdb_id": 5, "magnet": "http://x"}),
        json!({"tmdb_id": 5, "torrent_base64": "!!!"}),
        json!({"tmdb_id": "x"}),
        json!({"tmdb_id": 5, "extra": 1}),
    ] {
        let (s, b) = t
            .call(Method::POST, "/api/v1/requests", &bob, Some(bad.clone()))
            .await;
        assert_eq!(s, 400, "{bad} -> {b}");
    }
    assert_eq!(mine(&t, &bob).await.len(), 1);

    // Node routes need a member's signature, of an ingest member, naming itself.
    let claim = json!({"node_id": n1.id});
    let (s, b) = node(&t, "/api/v1/requests/claim", None, claim.clone()).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("node_auth_required")),
        "{b}"
    );
    let network_id = t.network().await.network_id;
    let stranger = Member::stranger(&network_id);
    let (s, b) = node(
        &t,
        "/api/v1/requests/claim",
        Some(&stranger),
        json!({"node_id": stranger.id}),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_a_member")), "{b}");
    let (s, b) = node(
        &t,
        "/api/v1/requests/claim",
        Some(&edge),
        json!({"node_id": edge.id}),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("missing_role")), "{b}");
    let (s, b) = node(&t, "/api/v1/requests/claim", Some(&n2), claim.clone()).await;
    assert_eq!(s, 400, "a node may not claim in another's name: {b}");
    // The claim, and the same signed request replayed: refused.
    let bytes = serde_json::to_vec(&claim).unwrap();
    let header = n1.auth("POST", "/api/v1/requests/claim", &bytes);
    let send = || {
        t.http
            .post(t.url("/api/v1/requests/claim"))
            .header("content-type", "application/json")
            .header("reelnet-node-auth", &header)
            .body(bytes.clone())
            .send()
    };
    let (s, c1) = split(send().await.unwrap()).await;
    let (replay, b) = split(send().await.unwrap()).await;
    assert_eq!(
        (replay, b["error"].as_str()),
        (401, Some("replayed")),
        "{b}"
    );
    assert_eq!(s, 200, "{c1}");
    assert_eq!(c1["magnet"], magnet);
    assert_eq!(c1["tmdb_id"], 603);
    let id = c1["id"].as_str().unwrap().to_owned();
    let tok1 = c1["claim_token"].as_str().unwrap().to_owned();
    // Nothing else to claim.
    let (s, _) = node(
        &t,
        "/api/v1/requests/claim",
        Some(&n2),
        json!({"node_id": n2.id}),
    )
    .await;
    assert_eq!(s, 204);

    let progress = format!("/api/v1/requests/{id}/progress");
    let (s, b) = node(
        &t,
        &progress,
        Some(&n1),
        json!({"claim_token": "nope", "state": "downloading", "percent": 10.0}),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("lease_lost")), "{b}");
    // Renewing keeps it past the lease length.
    for pct in [10.0, 25.0, 40.0] {
        let (s, b) = node(
            &t,
            &progress,
            Some(&n1),
            json!({"claim_token": tok1, "state": "downloading", "percent": pct}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let r = &mine(&t, &bob).await[0];
    assert_eq!(
        (r["state"].as_str(), r["percent"].as_f64()),
        (Some("downloading"), Some(40.0))
    );

    // node-1 goes silent: the lease lapses, the request reads open, node-2 takes it over.
    let (_, took) = wait_for(
        "the silent node's lease to lapse",
        Duration::from_secs(15),
        || async { (mine(&t, &bob).await[0]["state"] == "open").then_some(()) },
    )
    .await;
    println!("the lease lapsed {took:?} after the last renewal's pause");
    let (s, c2) = node(
        &t,
        "/api/v1/requests/claim",
        Some(&n2),
        json!({"node_id": n2.id}),
    )
    .await;
    assert_eq!(s, 200, "{c2}");
    assert_eq!(c2["id"].as_str(), Some(id.as_str()));
    let tok2 = c2["claim_token"].as_str().unwrap().to_owned();
    let (s, b) = node(
        &t,
        &progress,
        Some(&n1),
        json!({"claim_token": tok1, "state": "downloading", "percent": 50.0}),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("lease_lost")), "{b}");
    let (s, b) = node(
        &t,
        &progress,
        Some(&n2),
        json!({"claim_token": tok2, "state": "transcoding", "percent": 90.0}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = node(
        &t,
        &format!("/api/v1/requests/{id}/done"),
        Some(&n2),
        json!({"claim_token": tok2, "movie_id": "tmdb-603", "manifest": "abc"}),
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("ready")), "{b}");
    assert_eq!(mine(&t, &admin).await[0]["movie_id"], "tmdb-603");

    // Both requesters are told, each with a link to the node they used.
    let link = t
        .smtp()
        .wait_for_link("bob@example.org", "is ready to watch", "/movie/")
        .await;
    assert_eq!(link, "http://node-b.example:8081/movie/tmdb-603");
    let link = t
        .smtp()
        .wait_for_link("alice@example.org", "is ready to watch", "/movie/")
        .await;
    assert_eq!(link, "http://127.0.0.1:9/movie/tmdb-603");
    let (s, n) = t
        .call(Method::GET, "/api/v1/me/notifications", &bob, None)
        .await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n[0]["kind"], "request_ready");
    assert_eq!(n[0]["link"], "http://node-b.example:8081/movie/tmdb-603");

    // A finished request: asking again starts a new one.
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &bob,
            Some(json!({"tmdb_id": 603})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_ne!(b["id"], a1["id"]);

    // Quota: bob (free, 2 per 30 days) has asked twice (joining counts).
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &bob,
            Some(json!({"tmdb_id": 604})),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (429, Some("quota_exceeded")),
        "{b}"
    );
    let (s, sub) = t
        .call(Method::GET, "/api/v1/me/subscription", &bob, None)
        .await;
    assert_eq!((s, sub["requests_used"].as_u64()), (200, Some(2)), "{sub}");

    // Failure: claimed, failed with a reason, everyone told; admin retries and rejects.
    let (s, c3) = node(
        &t,
        "/api/v1/requests/claim",
        Some(&n1),
        json!({"node_id": n1.id}),
    )
    .await;
    assert_eq!(s, 200, "{c3}");
    let id3 = c3["id"].as_str().unwrap().to_owned();
    let (s, b) = node(
        &t,
        &format!("/api/v1/requests/{id3}/failed"),
        Some(&n1),
        json!({"claim_token": c3["claim_token"], "reason": "no seeders"}),
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("failed")), "{b}");
    t.smtp()
        .wait_for_link("bob@example.org", "could not be fulfilled", "/requests")
        .await;
    let r = mine(&t, &bob).await;
    assert_eq!(
        (r[0]["state"].as_str(), r[0]["reason"].as_str()),
        (Some("failed"), Some("no seeders"))
    );

    let (s, b) = t
        .call(Method::GET, "/api/v1/admin/requests", &bob, None)
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("not_admin")), "{b}");
    let (s, all) = t
        .call(Method::GET, "/api/v1/admin/requests", &admin, None)
        .await;
    assert_eq!((s, all.as_array().unwrap().len()), (200, 2), "{all}");
    let retry = format!("/api/v1/admin/requests/{id3}/retry");
    let (s, b) = t.call(Method::POST, &retry, &bob, None).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = t.call(Method::POST, &retry, &admin, None).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("open")), "{b}");
    let (s, b) = t.call(Method::POST, &retry, &admin, None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("invalid_state")),
        "{b}"
    );
    let (s, b) = t
        .call(
            Method::POST,
            &format!("/api/v1/admin/requests/{id3}/reject"),
            &admin,
            Some(json!({"reason": "not available"})),
        )
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("rejected")), "{b}");
    let (s, _) = node(
        &t,
        "/api/v1/requests/claim",
        Some(&n1),
        json!({"node_id": n1.id}),
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/admin/requests/999999/approve",
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 404, "{b}");
}

#[tokio::test]
async fn per_node_claim_limit_and_approval_flow() {
    let t = Tracker::start_with(
        "[requests]\nrequire_approval = true\n[network]\nmax_claims_per_node = 1\n",
    )
    .await;
    let admin = access(&t.admin("root@example.org", "a long password").await);
    let n1 = t.member(&["ingest"]).await;
    let n2 = t.member(&["ingest"]).await;
    let (s, r) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 77})),
        )
        .await;
    assert_eq!((s, r["state"].as_str()), (201, Some("pending")), "{r}");
    let (s, b) = t
        .call(
            Method::POST,
            &format!(
                "/api/v1/admin/requests/{}/approve",
                r["id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("open")), "{b}");
    // A second open request; node 1 may hold one claim at a time.
    let (s, r2) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 78})),
        )
        .await;
    assert_eq!(s, 201, "{r2}");
    t.call(
        Method::POST,
        &format!(
            "/api/v1/admin/requests/{}/approve",
            r2["id"].as_str().unwrap()
        ),
        &admin,
        None,
    )
    .await;
    let claim = |m: &Member| json!({"node_id": m.id});
    let (s, b) = node(&t, "/api/v1/requests/claim", Some(&n1), claim(&n1)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = node(&t, "/api/v1/requests/claim", Some(&n1), claim(&n1)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (429, Some("too_many_claims")),
        "{b}"
    );
    let (s, b) = node(&t, "/api/v1/requests/claim", Some(&n2), claim(&n2)).await;
    assert_eq!(s, 200, "another node takes the second: {b}");
}

/// With a TMDb key the tracker asks TMDb (a warp stand-in on loopback answering TMDb-shaped
/// JSON) about each requested id: unknown ids are refused, known ones take TMDb's title
/// and year over the asker's, and TMDb being down does not block requests.
#[tokio::test]
async fn requests_are_checked_and_titled_by_tmdb() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use warp::Filter;

    let down = Arc::new(AtomicBool::new(false));
    let routes = {
        let down = down.clone();
        warp::path!("3" / "movie" / u64)
            .and(warp::query::<HashMap<String, String>>())
            .map(move |id: u64, q: HashMap<String, String>| {
                let (status, body) = if down.load(Ordering::SeqCst) {
                    (503, json!({"status_message": "down"}))
                } else if q.get("api_key").map(String::as_str) != Some("tracker-key") {
                    (401, json!({"status_message": "bad key"}))
                } else if id == 603 {
                    (
                        200,
                        json!({"id": 603, "title": "The Matrix", "release_date": "1999-03-30"}),
                    )
                } else {
                    (404, json!({"status_message": "not found"}))
                };
                warp::reply::with_status(
                    warp::reply::json(&body),
                    warp::http::StatusCode::from_u16(status).unwrap(),
                )
            })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tmdb_url = format!("http://{}/3", listener.local_addr().unwrap());
    tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(std::future::pending::<()>())
            .run()
            .await;
    });
    let t = Tracker::start_with(&format!(
        "[requests]\nfree_per_month = 10\ntmdb_api_key = \"tracker-key\"\ntmdb_api_url = \"{tmdb_url}\"\n"
    ))
    .await;
    let token = access(&t.user("asker@example.org", "a long password").await);
    let ask = |body: Value| t.call(Method::POST, "/api/v1/requests", &token, Some(body));

    let (s, b) = ask(json!({"tmdb_id": 999_999, "title": "Made Up"})).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("unknown_movie")),
        "{b}"
    );
    let (s, b) = ask(json!({"tmdb_id": 603, "title": "matrix 1080p rip", "year": 2020})).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["title"], "The Matrix");
    assert_eq!(b["year"], 1999);

    down.store(true, Ordering::SeqCst);
    let (s, b) = ask(json!({"tmdb_id": 604, "title": "The Matrix Reloaded"})).await;
    assert_eq!(s, 201, "TMDb down must not block requests: {b}");
    assert_eq!(b["title"], "The Matrix Reloaded");
    assert_eq!(
        mine(&t, &token).await.len(),
        2,
        "the refused id made no request"
    );

    // /metrics counts by route template and status, and lists the open requests.
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "reelnet_tracker_requests_total{method=\"POST\",route=\"/api/v1/requests\",status=\"422\"} 1",
        "reelnet_tracker_requests_total{method=\"POST\",route=\"/api/v1/requests\",status=\"201\"} 2",
        "reelnet_tracker_open_requests 2",
        "reelnet_tracker_users 1",
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
}

#[tokio::test]
async fn parallel_requests_cannot_pass_the_quota() {
    const QUOTA: usize = 3;
    const PARALLEL: usize = 24;
    let t = Tracker::start_with(&format!("[requests]\nfree_per_month = {QUOTA}\n")).await;
    let carol = access(&t.user("carol@example.org", "a long password").await);
    // Every request is for another movie, so each one that passes creates a request.
    let answers = futures::future::join_all((0..PARALLEL).map(|i| {
        let t = &t;
        let carol = &carol;
        async move {
            t.call(
                Method::POST,
                "/api/v1/requests",
                carol,
                Some(json!({"tmdb_id": 5000 + i, "title": format!("Movie {i}")})),
            )
            .await
        }
    }))
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 429 && b["error"] == "quota_exceeded")
        .count();
    assert_eq!((created, refused), (QUOTA, PARALLEL - QUOTA), "{answers:?}");
    assert_eq!(mine(&t, &carol).await.len(), QUOTA);
    let (s, sub) = t
        .call(Method::GET, "/api/v1/me/subscription", &carol, None)
        .await;
    assert_eq!(
        (s, sub["requests_used"].as_u64()),
        (200, Some(QUOTA as u64)),
        "{sub}"
    );
}
