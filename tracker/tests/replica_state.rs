//! Stateless tracker replicas: two `reelnet-tracker` processes, each with its own data
//! directory, on one PostgreSQL started by the test (README, "Running several tracker
//! replicas"). Both start at once on an empty database and publish one JWKS and one
//! network; a viewer signs in at one and refreshes and calls the API at the other; an
//! OAuth code issued by one is redeemed once at the other and never again at either; a
//! device authorization started at one is known to the other; `rotate-key` and
//! `network rotate-key` against the database reach both; a node's signed request
//! replayed to the other replica is refused; a node revoked at one has its watch-party
//! sockets closed at the other.
//!
//! PostgreSQL only (several processes cannot share a sled database); it fails, never
//! skips, when PostgreSQL is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{access, postgres_storage, start_postgres, wait_for, Member, Tracker};
use reqwest::Method;
use serde_json::{json, Value};

/// The gateway origin the test node enrolls with (nothing listens there).
const NODE_ORIGIN: &str = "http://127.0.0.1:9";
const PASSWORD: &str = "a long password";

async fn jwks(t: &Tracker) -> Value {
    let r = t
        .http
        .get(t.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let (s, b) = common::split(r).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// The `kid`s a JWKS publishes, sorted.
fn kids(jwks: &Value) -> Vec<String> {
    let mut k: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A signed, form-encoded request of `m` to the token endpoint of `t`.
async fn token_request(t: &Tracker, m: &Member, form: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_urlencoded::to_string(form).unwrap();
    let path = reelnet_proto::oauth::TOKEN_PATH;
    let r = t
        .http
        .post(t.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("reelnet-node-auth", m.auth("POST", path, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    common::split(r).await
}

/// Signs `email` in at `t`'s pages, consents to `m` (unless it did before) and answers (code, verifier,
/// redirect URI) of an authorization-code flow with PKCE.
async fn code_from(t: &Tracker, m: &Member, email: &str) -> (String, String, String) {
    let verifier = "v".repeat(20) + &hex::encode(rand::random::<[u8; 16]>());
    let redirect_uri = reelnet_proto::oauth::redirect_uri(NODE_ORIGIN);
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", m.id.as_str()),
        ("redirect_uri", &redirect_uri),
        ("state", "s"),
        (
            "code_challenge",
            &reelnet_proto::oauth::s256_challenge(&verifier),
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let b = Browser::new(&t.base);
    let next = format!("/oauth/authorize?{query}");
    let p = b.sign_in(email, PASSWORD, &next).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let consent = b.get(&next).await;
    // Consented before: straight back to the node with a code.
    let back = if consent.status == 302 {
        consent.location().unwrap()
    } else {
        assert_eq!(consent.status, 200, "{}", consent.body);
        let p = b.consent(&consent, "allow").await;
        assert_eq!(p.status, 303, "{}", p.body);
        p.location().unwrap()
    };
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    (code, verifier, redirect_uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_share_keys_sessions_codes_and_replay_guard() {
    let pg = start_postgres().await;
    let url = pg.create_database("replicas").await.unwrap();
    let storage = postgres_storage(&url);

    // (a) Both start at once on an empty database: one keyring, one network.
    let (a, b) = tokio::join!(Tracker::start_with(&storage), Tracker::start_with(&storage));
    assert_ne!(a.data_dir(), b.data_dir());
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(kids(&ja), kids(&jb), "one JWKS: {ja} {jb}");
    assert_eq!(ja, jb);
    assert_eq!(kids(&ja).len(), 1, "{ja}");
    let (na, nb) = (a.network().await, b.network().await);
    assert_eq!(na.network_id, nb.network_id);
    assert_eq!(
        serde_json::to_value(&na.keys).unwrap(),
        serde_json::to_value(&nb.keys).unwrap()
    );
    // The secrets are in the database, not in either data directory.
    for t in [&a, &b] {
        assert!(!t.data_dir().join("keys/keyring.json").exists());
        assert!(!t.data_dir().join("network-keys/keyring.json").exists());
    }

    // (b) Signed in at A; the token works at B, B refreshes A's session, and the
    // refreshed token works at A.
    let email = "replica@example.org";
    let login = a.user(email, PASSWORD).await;
    let (s, me) = b
        .call(Method::GET, "/api/v1/me", &access(&login), None)
        .await;
    assert_eq!((s, me["email"].as_str()), (200, Some(email)), "{me}");
    let (s, refreshed) = b
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(s, 200, "{refreshed}");
    let (s, _) = a
        .call(Method::GET, "/api/v1/me", &access(&refreshed), None)
        .await;
    assert_eq!(s, 200);

    // (c) A code issued at A is redeemed at B once; a second redemption at A or B fails,
    // and ends the session the first one started.
    let m = a.member_with_origins(&["replica"], &[NODE_ORIGIN]).await;
    let (code, verifier, redirect_uri) = code_from(&a, &m, email).await;
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", m.id.as_str()),
    ];
    let (s, tokens) = token_request(&b, &m, &redeem).await;
    assert_eq!(s, 200, "{tokens}");
    for (again, name) in [(&a, "A"), (&b, "B")] {
        let (s, e) = token_request(again, &m, &redeem).await;
        assert_eq!(s, 400, "second redemption at {name}: {e}");
        assert!(e.to_string().contains("already redeemed"), "{name}: {e}");
    }
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (s, e) = token_request(
        &a,
        &m,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_ne!(
        s, 200,
        "the twice-redeemed code's session still refreshes: {e}"
    );

    // A device authorization started at A is pending (not unknown) at B.
    let r = a
        .http
        .post(a.url(reelnet_proto::oauth::DEVICE_AUTHORIZATION_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=reelnet-cli&device_name=tv")
        .send()
        .await
        .unwrap();
    let (s, grant) = common::split(r).await;
    assert_eq!(s, 200, "{grant}");
    let poll = serde_urlencoded::to_string([
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", grant["device_code"].as_str().unwrap()),
        ("client_id", "reelnet-cli"),
    ])
    .unwrap();
    let r = b
        .http
        .post(b.url(reelnet_proto::oauth::TOKEN_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(poll)
        .send()
        .await
        .unwrap();
    let (s, e) = common::split(r).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("authorization_pending")),
        "{e}"
    );

    // (e) A node's signed request, replayed to the other replica: refused.
    let path = "/api/v1/nodes/renew";
    let body = b"{}".to_vec();
    let header = m.auth("POST", path, &body);
    let send = |t: &Tracker| {
        t.http
            .post(t.url(path))
            .header("content-type", "application/json")
            .header("reelnet-node-auth", &header)
            .body(body.clone())
            .send()
    };
    let (s, r) = common::split(send(&a).await.unwrap()).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = common::split(send(&b).await.unwrap()).await;
    assert_eq!((s, r["error"].as_str()), (401, Some("replayed")), "{r}");

    // (d) rotate-key against the database: both replicas publish the new key, sign with
    // it, and accept each other's tokens; the old key still verifies.
    let old_kid = kid(&access(&login));
    let (ok, out, err) = b.cli(&["rotate-key"]);
    assert!(ok, "{out}{err}");
    let new_kid = out
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert_ne!(new_kid, old_kid);
    for t in [&a, &b] {
        let want = {
            let mut k = vec![old_kid.clone(), new_kid.clone()];
            k.sort();
            k
        };
        wait_for("the new key in the JWKS", Duration::from_secs(20), || {
            let want = want.clone();
            async move { (kids(&jwks(t).await) == want).then_some(()) }
        })
        .await;
    }
    let fresh = a.login(email, PASSWORD).await;
    assert_eq!(kid(&access(&fresh)), new_kid);
    let (s, _) = b
        .call(Method::GET, "/api/v1/me", &access(&fresh), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = b
        .call(Method::GET, "/api/v1/me", &access(&refreshed), None)
        .await;
    assert_eq!(s, 200, "a token of the retired key still verifies");

    // The same for the network key.
    let (ok, out, err) = a.cli(&["network", "rotate-key"]);
    assert!(ok, "{out}{err}");
    for t in [&a, &b] {
        wait_for(
            "the new network key published",
            Duration::from_secs(20),
            || async { (t.network().await.keys.len() == 2).then_some(()) },
        )
        .await;
    }
    let (na, nb) = (a.network().await, b.network().await);
    assert_eq!(
        serde_json::to_value(&na.keys).unwrap(),
        serde_json::to_value(&nb.keys).unwrap()
    );

    // (f) A node revoked at A: the watch-party socket a viewer opened through it at B
    // closes too (B notices the revocation in the database within a second or so).
    let (code, verifier, redirect_uri) = code_from(&a, &m, email).await;
    let (s, tokens) = token_request(
        &a,
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
            ("client_id", m.id.as_str()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    let node_token = tokens["access_token"].as_str().unwrap();
    // Hosting a party is for premium accounts (the default config).
    let (ok, out, err) = b.cli(&["admin", "set-tier", email, "premium"]);
    assert!(ok, "{out}{err}");
    let host = b.login(email, PASSWORD).await;
    let (s, room) = common::ws::create(&b, &access(&host), "tmdb-603").await;
    assert_eq!(s, 201, "{room}");
    let path = format!(
        "/api/v1/rooms/{}/ws?access_token={node_token}",
        room["id"].as_str().unwrap()
    );
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{}{path}", b.port),
    )
    .unwrap();
    req.headers_mut().insert(
        "reelnet-node-auth",
        m.auth("GET", &path, b"").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    common::ws::expect(&mut ws, "welcome").await;
    let (ok, out, err) = a.cli(&["node", "revoke", &m.id]);
    assert!(ok, "{out}{err}");
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = None;
        while let Some(frame) = common::ws::next(&mut ws, Duration::from_secs(60)).await {
            last = Some(frame);
        }
        last
    })
    .await
    .expect("the socket at B stays open after the node was revoked at A");
    let last = last.unwrap_or_default();
    assert_eq!(last["code"].as_str(), Some("node_revoked"), "{last}");
    drop((a, b));
    drop(pg);
}
