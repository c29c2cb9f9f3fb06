//! Bad input and hostile tokens against a real tracker process: every case is refused with
//! a JSON error and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{access, Tracker};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The tracker's current signing key, read from its data directory (sled) or its
/// database (PostgreSQL, where every replica's keys are).
fn tracker_key(t: &Tracker) -> (String, ed25519_dalek::SigningKey) {
    if t.pg.is_some() {
        let (store, _writer) =
            reelnet_tracker::store::Store::open_engine(&t.store_engine()).unwrap();
        let ring = store
            .keyring(reelnet_tracker::store::shared::TOKEN_KEYRING)
            .unwrap()
            .unwrap();
        let key = ring.keys.iter().find(|k| k.kid == ring.current).unwrap();
        let secret: [u8; 32] = key.secret.as_slice().try_into().unwrap();
        return (ring.current, ed25519_dalek::SigningKey::from_bytes(&secret));
    }
    let ring: Value =
        serde_json::from_slice(&std::fs::read(t.data_dir().join("keys/keyring.json")).unwrap())
            .unwrap();
    let kid = ring["current"].as_str().unwrap().to_owned();
    let secret: [u8; 32] = std::fs::read(t.data_dir().join(format!("keys/{kid}.key")))
        .unwrap()
        .try_into()
        .unwrap();
    (kid, ed25519_dalek::SigningKey::from_bytes(&secret))
}

fn sign(kid: &str, key: &ed25519_dalek::SigningKey, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.to_owned());
    let der = key.to_pkcs8_der().unwrap();
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

#[tokio::test]
async fn hostile_tokens_are_refused() {
    let t = Tracker::start().await;
    let login = t.user("tok@example.org", "token password").await;
    let good = access(&login);
    let sub = login["user"]["id"].as_str().unwrap().to_owned();
    let (kid, key) = tracker_key(&t);
    let claims = |exp: u64, iss: &str, aud: &str| {
        json!({"sub": sub, "email": "tok@example.org", "tier": "free", "email_verified": true,
               "role": "admin", "exp": exp, "iat": now(), "iss": iss, "aud": aud, "jti": "x"})
    };

    // Control: a token we sign with the tracker's own key and right claims is accepted,
    // so the refusals below are about the one thing each case changes.
    let control = sign(&kid, &key, &claims(now() + 60, "test-tracker", "reelnet"));
    assert_eq!(
        t.call(Method::GET, "/api/v1/me", &control, None).await.0,
        200
    );

    let mut cases: Vec<(&str, String)> = Vec::new();
    cases.push((
        "expired",
        sign(&kid, &key, &claims(now() - 120, "test-tracker", "reelnet")),
    ));
    cases.push((
        "wrong issuer",
        sign(&kid, &key, &claims(now() + 60, "evil", "reelnet")),
    ));
    cases.push((
        "wrong audience",
        sign(&kid, &key, &claims(now() + 60, "test-tracker", "other")),
    ));
    let mut no_exp = claims(now() + 60, "test-tracker", "reelnet");
    no_exp.as_object_mut().unwrap().remove("exp");
    cases.push(("no exp", sign(&kid, &key, &no_exp)));
    let mut no_aud = claims(now() + 60, "test-tracker", "reelnet");
    no_aud.as_object_mut().unwrap().remove("aud");
    cases.push(("no aud", sign(&kid, &key, &no_aud)));
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    cases.push((
        "wrong key, our kid",
        sign(
            &kid,
            &stranger,
            &claims(now() + 60, "test-tracker", "reelnet"),
        ),
    ));
    let body =
        B64.encode(serde_json::to_vec(&claims(now() + 60, "test-tracker", "reelnet")).unwrap());
    cases.push((
        "alg none",
        format!("{}.{body}.", B64.encode(br#"{"alg":"none","typ":"JWT"}"#)),
    ));
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let public = key.verifying_key().to_bytes();
    cases.push((
        "HS256 keyed with the public key",
        jsonwebtoken::encode(
            &hs,
            &claims(now() + 60, "test-tracker", "reelnet"),
            &EncodingKey::from_secret(&public),
        )
        .unwrap(),
    ));
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    cases.push((
        "tampered payload",
        format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&payload).unwrap()),
            parts[2]
        ),
    ));
    cases.push(("garbage", "not.a.token".to_owned()));
    cases.push(("huge", "a".repeat(20_000)));

    for (what, token) in cases {
        let (s, b) = t.call(Method::GET, "/api/v1/me", &token, None).await;
        assert_eq!(s, 401, "{what}: {b}");
        assert!(b["error"].is_string(), "{what}: {b}");
    }
    let (s, b) = common::split(t.http.get(t.url("/api/v1/me")).send().await.unwrap()).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("missing_token")));
    let (s, _) = common::split(
        t.http
            .get(t.url("/api/v1/me"))
            .header("authorization", format!("Basic {good}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bad_bodies_change_nothing() {
    let t = Tracker::start().await;
    let at = access(&t.user("body@example.org", "body password").await);
    let path = "/api/v1/me/progress/tmdb-11";
    let (s, _) = t
        .call(
            Method::PUT,
            path,
            &at,
            Some(json!({"position_s": 100.0, "duration_s": 6000.0})),
        )
        .await;
    assert_eq!(s, 200);

    // One pooled client throughout: after a 413 the server says `Connection: close`, so the
    // client must not reuse that connection for the next request.
    let raw = |body: Vec<u8>| {
        t.http
            .put(t.url(path))
            .bearer_auth(&at)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let bad: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed", b"{\"position_s\": 5".to_vec(), 400),
        (
            "wrong types",
            br#"{"position_s": "five", "duration_s": 6000}"#.to_vec(),
            400,
        ),
        (
            "unknown field",
            br#"{"position_s": 5, "duration_s": 6000, "admin": true}"#.to_vec(),
            400,
        ),
        (
            "negative",
            br#"{"position_s": -5, "duration_s": 6000}"#.to_vec(),
            400,
        ),
        (
            "beyond the end",
            br#"{"position_s": 9000, "duration_s": 6000}"#.to_vec(),
            400,
        ),
        (
            "future clock",
            format!(
                r#"{{"position_s": 5, "duration_s": 6000, "timestamp_ms": {}}}"#,
                (now() + 3600) * 1000
            )
            .into_bytes(),
            400,
        ),
        ("not json", b"\xff\xfe\x00".to_vec(), 400),
        (
            "oversized",
            {
                let mut v = br#"{"position_s": 5, "duration_s": 6000, "pad": ""#.to_vec();
                v.extend(std::iter::repeat_n(b'a', 70 * 1024));
                v.extend(br#""}"#);
                v
            },
            413,
        ),
    ];
    for (what, body, want) in bad {
        let (s, b) = common::split(raw(body).await.unwrap()).await;
        assert_eq!(s, want, "{what}: {b}");
        assert!(
            b["error"].is_string() && b["message"].is_string(),
            "{what}: {b}"
        );
    }
    let (_, p) = t.call(Method::GET, path, &at, None).await;
    assert_eq!(p["position_s"], 100.0, "nothing changed");

    // Traversal and malformed ids never reach storage.
    for id in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "UPPER",
        "a%00b",
        &"x".repeat(65),
    ] {
        let (s, b) = t
            .call(
                Method::PUT,
                &format!("/api/v1/me/watchlist/{id}"),
                &at,
                None,
            )
            .await;
        // 405: the client itself resolved `..` and hit another route.
        assert!(matches!(s, 400 | 404 | 405), "{id}: {s} {b}");
    }
    let (_, list) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(list, json!([]));

    // Registration input is checked.
    for (body, code) in [
        (
            json!({"email": "not-an-email", "password": "long enough pw", "display_name": "A"}),
            "invalid_email",
        ),
        (
            json!({"email": "x@example.org", "password": "short", "display_name": "A"}),
            "weak_password",
        ),
        (
            json!({"email": "x@example.org", "password": "long enough pw", "display_name": ""}),
            "invalid_name",
        ),
        (
            json!({"email": "x@example.org", "password": "long enough pw", "display_name": "x".repeat(200)}),
            "invalid_name",
        ),
        (json!({"email": "x@example.org"}), "invalid_json"),
    ] {
        let (s, b) = t.post("/api/v1/auth/register", body).await;
        assert_eq!((s, b["error"].as_str()), (400, Some(code)), "{b}");
    }
    let (s, _) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": "x@example.org", "password": "long enough pw"}),
        )
        .await;
    assert_eq!(
        s, 401,
        "no account was created by the refused registrations"
    );
}

#[tokio::test]
async fn users_only_see_their_own_data() {
    let t = Tracker::start().await;
    let a = access(&t.user("alice@example.org", "alice password").await);
    let b = access(&t.user("bob@example.org", "bob's password").await);
    t.call(Method::PUT, "/api/v1/me/watchlist/tmdb-1", &a, None)
        .await;
    t.call(
        Method::PUT,
        "/api/v1/me/progress/tmdb-1",
        &a,
        Some(json!({"position_s": 50.0, "duration_s": 5000.0})),
    )
    .await;
    let (_, wl) = t.call(Method::GET, "/api/v1/me/watchlist", &b, None).await;
    assert_eq!(wl, json!([]));
    let (s, _) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-1", &b, None)
        .await;
    assert_eq!(s, 404);
    let (_, h) = t.call(Method::GET, "/api/v1/me/history", &b, None).await;
    assert_eq!(h["items"], json!([]));
    // Bob deleting his account leaves Alice's data alone.
    assert_eq!(t.call(Method::DELETE, "/api/v1/me", &b, None).await.0, 204);
    let (_, wl) = t.call(Method::GET, "/api/v1/me/watchlist", &a, None).await;
    assert_eq!(wl.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let t = Tracker::start().await;
    t.user("target@example.org", "right password").await;
    for _ in 0..5 {
        let (s, _) = t
            .post(
                "/api/v1/auth/login",
                json!({"email": "target@example.org", "password": "wrong password"}),
            )
            .await;
        assert_eq!(s, 401);
    }
    // Locked now, even with the right password, and told how long to wait.
    let r = t
        .http
        .post(t.url("/api/v1/auth/login"))
        .json(&json!({"email": "target@example.org", "password": "right password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
    // Per address: many accounts guessed from one client get blocked too.
    for i in 0..15 {
        let (s, _) = t
            .post(
                "/api/v1/auth/login",
                json!({"email": format!("u{i}@example.org"), "password": "guess guess"}),
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": "fresh@example.org", "password": "guess guess"}),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (429, Some("rate_limited")));
}
