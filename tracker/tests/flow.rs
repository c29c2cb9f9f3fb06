//! The whole account flow against a real tracker process and a real SMTP server:
//! register → email → verify → login → watch later → progress → resume → refresh → logout,
//! and password reset by email.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{access, Tracker};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn register_verify_login_lists_refresh_logout() {
    // No grace for a second use of a refresh token (tested with one in tests/oauth.rs).
    let t = Tracker::start_with("[oauth]\nrefresh_grace_secs = 0\n").await;
    let email = "viewer@example.org";

    // Register: stored unverified, a verification email goes out. The answer says
    // nothing about the account (it is the same for a taken address).
    let (s, b) = t
        .post(
            "/api/v1/auth/register",
            json!({"email": "Viewer@Example.org", "password": "a long password", "display_name": "Vi"}),
        )
        .await;
    assert_eq!((s, &b), (202, &json!({"status": "accepted"})), "{b}");

    // Unverified accounts can sign in; their token says so. The first account is an
    // ordinary user: nobody becomes admin by registering first.
    let (s, early) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{early}");
    assert_eq!(early["user"]["email_verified"], false);
    assert_eq!(early["user"]["role"], "user");

    // Follow the link from the delivered email.
    let link = t
        .smtp()
        .wait_for_link(email, "Confirm your reelnet account", "/verify?token=")
        .await;
    assert!(
        link.starts_with("http://127.0.0.1:9/verify?token="),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let (s, b) = t
        .post("/api/v1/auth/verify", json!({ "token": token }))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["email_verified"], true);
    // Single use.
    let (s, b) = t
        .post("/api/v1/auth/verify", json!({ "token": token }))
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"], "invalid_token");
    let (s, _) = t
        .post("/api/v1/auth/verify", json!({ "token": "made-up" }))
        .await;
    assert_eq!(s, 400);

    // Re-registering answers exactly as a new registration does (who has an account is
    // not revealed); the owner gets a mail instead and the account is unchanged.
    let (s, b) = t
        .post(
            "/api/v1/auth/register",
            json!({"email": email, "password": "another password", "display_name": "X"}),
        )
        .await;
    assert_eq!((s, &b), (202, &json!({"status": "accepted"})), "{b}");
    let notice = t
        .smtp()
        .wait_for_link(
            email,
            "Someone tried to create a reelnet account with your address",
            "/reset-password",
        )
        .await;
    assert!(notice.ends_with("/reset-password"), "{notice}");
    let (s, _) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "another password"}),
        )
        .await;
    assert_eq!(s, 401, "the second registration changed nothing");

    // Login.
    let (s, login) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{login}");
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    let at = access(&login);
    // The access token names its key and is EdDSA.
    let header = at.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let (_, jwks) = common::split(
        t.http
            .get(t.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);

    let (s, me) = t.call(Method::GET, "/api/v1/me", &at, None).await;
    assert_eq!(s, 200);
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["display_name"], "Vi");
    let (s, me) = t
        .call(
            Method::PATCH,
            "/api/v1/me",
            &at,
            Some(json!({"display_name": "Vivian"})),
        )
        .await;
    assert_eq!((s, me["display_name"].as_str()), (200, Some("Vivian")));

    // Watch later: add two, idempotent add, ordered by when added, idempotent remove.
    let (s, _) = t
        .call(Method::PUT, "/api/v1/me/watchlist/tmdb-603", &at, None)
        .await;
    assert_eq!(s, 201);
    let (s, _) = t
        .call(
            Method::PUT,
            "/api/v1/me/watchlist/local-0123456789abcdef",
            &at,
            None,
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = t
        .call(Method::PUT, "/api/v1/me/watchlist/tmdb-603", &at, None)
        .await;
    assert_eq!(s, 200);
    let (s, list) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(s, 200);
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["movie_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tmdb-603", "local-0123456789abcdef"]);
    for _ in 0..2 {
        let (s, _) = t
            .call(Method::DELETE, "/api/v1/me/watchlist/tmdb-603", &at, None)
            .await;
        assert_eq!(s, 204);
    }
    let (_, list) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Progress and resume.
    let (s, p) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-603",
            &at,
            Some(json!({"position_s": 1234.5, "duration_s": 7200.0, "timestamp_ms": 2_000})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["applied"], true);
    // An older write never overwrites a newer one.
    let (s, p) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-603",
            &at,
            Some(json!({"position_s": 10.0, "duration_s": 7200.0, "timestamp_ms": 1_000})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["applied"], false);
    assert_eq!(p["position_s"], 1234.5);
    let (s, p) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-603", &at, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["resume_at"], 1234.5);
    assert_eq!(p["finished"], false);
    // A second movie, then finish the first: finished has no resume point.
    t.call(
        Method::PUT,
        "/api/v1/me/progress/tmdb-550",
        &at,
        Some(json!({"position_s": 60.0, "duration_s": 8000.0})),
    )
    .await;
    let (_, p) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-603",
            &at,
            Some(json!({"position_s": 7150.0, "duration_s": 7200.0})),
        )
        .await;
    assert_eq!(p["finished"], true);
    assert!(p["resume_at"].is_null());
    let (s, _) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-999", &at, None)
        .await;
    assert_eq!(s, 404);

    // History: newest first, paged.
    let (s, h) = t
        .call(Method::GET, "/api/v1/me/history?limit=1", &at, None)
        .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["items"][0]["movie_id"], "tmdb-603");
    let cursor = h["next_cursor"].as_str().unwrap();
    let (_, h2) = t
        .call(
            Method::GET,
            &format!("/api/v1/me/history?limit=1&cursor={cursor}"),
            &at,
            None,
        )
        .await;
    assert_eq!(h2["items"][0]["movie_id"], "tmdb-550");
    assert!(h2["next_cursor"].is_null(), "{h2}");

    // Refresh rotates; reusing the old refresh token revokes the whole family.
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    let (s, l2) = t
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r1 }))
        .await;
    assert_eq!(s, 200, "{l2}");
    let r2 = l2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let (s, _) = t.call(Method::GET, "/api/v1/me", &access(&l2), None).await;
    assert_eq!(s, 200);
    let (s, b) = t
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r1 }))
        .await;
    assert_eq!(s, 401);
    assert_eq!(b["error"], "refresh_reused");
    let (s, _) = t
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r2 }))
        .await;
    assert_eq!(
        s, 401,
        "the family is revoked, so the newest token dies too"
    );
    // And so do its access tokens, at once.
    let (s, b) = t.call(Method::GET, "/api/v1/me", &at, None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("session_ended")),
        "{b}"
    );
    let (s, fresh) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{fresh}");
    let at = access(&fresh);

    // Logout revokes the family of a fresh login.
    let (_, l3) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    let r3 = l3["refresh_token"].as_str().unwrap();
    let (s, _) = t
        .post("/api/v1/auth/logout", json!({ "refresh_token": r3 }))
        .await;
    assert_eq!(s, 204);
    let (s, _) = t
        .post("/api/v1/auth/logout", json!({ "refresh_token": r3 }))
        .await;
    assert_eq!(s, 204);
    let (s, _) = t
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r3 }))
        .await;
    assert_eq!(s, 401);

    // Delete the account: data and sign-in are gone.
    let (s, _) = t.call(Method::DELETE, "/api/v1/me", &at, None).await;
    assert_eq!(s, 204);
    let (s, _) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(s, 401);
    let (s, _) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn password_reset_by_email() {
    let t = Tracker::start().await;
    let email = "forgetful@example.org";
    let login = t.user(email, "first password").await;
    let r = login["refresh_token"].as_str().unwrap().to_owned();

    // Unknown addresses get the same answer and no mail.
    let (s, _) = t
        .post(
            "/api/v1/auth/password-reset",
            json!({"email": "nobody@example.org"}),
        )
        .await;
    assert_eq!(s, 202);
    let (s, _) = t
        .post("/api/v1/auth/password-reset", json!({"email": email}))
        .await;
    assert_eq!(s, 202);
    let link = t
        .smtp()
        .wait_for_link(
            email,
            "Reset your reelnet password",
            "/reset-password?token=",
        )
        .await;
    let token = link.split("token=").nth(1).unwrap();
    let (s, b) = t
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("weak_password")));
    let (s, b) = t
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "password": "second password"}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = t
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "password": "third password!"}),
        )
        .await;
    assert_eq!(s, 400, "reset links are single use");
    // Old sessions are signed out, the old password is gone, the new one works.
    let (s, _) = t
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r }))
        .await;
    assert_eq!(s, 401);
    let (s, _) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "first password"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "second password"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(t.smtp().count_to("nobody@example.org"), 0);
}

#[tokio::test]
async fn rotated_key_keeps_old_tokens_valid_and_signs_new_ones() {
    let t = Tracker::start().await;
    let login = t.user("rot@example.org", "rotation password").await;
    let old = access(&login);
    let old_kid = kid(&old);
    let out = std::process::Command::new(common::TRACKER_BIN)
        .arg("--config")
        .arg(&t.config)
        .arg("rotate-key")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running tracker picks the new key up without a restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, jwks) = common::split(
            t.http
                .get(t.url("/.well-known/jwks.json"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if jwks["keys"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "JWKS never showed the new key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, _) = t.call(Method::GET, "/api/v1/me", &old, None).await;
    assert_eq!(s, 200, "a token signed by the retired key still verifies");
    let (_, fresh) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": "rot@example.org", "password": "rotation password"}),
        )
        .await;
    assert_ne!(kid(&access(&fresh)), old_kid);
    let (s, _) = t
        .call(Method::GET, "/api/v1/me", &access(&fresh), None)
        .await;
    assert_eq!(s, 200);
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let v: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// The movie ids in a history page, newest first.
fn history_ids(h: &serde_json::Value) -> Vec<String> {
    h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["movie_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn watchlist_and_progress_caps() {
    let t = Tracker::start_with("[library]\nwatchlist_max = 3\nprogress_max = 3\n").await;
    let at = access(&t.user("capped@example.org", "a long password").await);
    let put = |path: String, body: Option<serde_json::Value>| {
        let (t, at) = (&t, &at);
        async move { t.call(Method::PUT, &path, at, body).await }
    };

    // Watch later: full at 3 (409 watchlist_full); adding one already there still answers
    // 200; after a removal there is room again.
    for id in 1..=3 {
        let (s, b) = put(format!("/api/v1/me/watchlist/tmdb-{id}"), None).await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = put("/api/v1/me/watchlist/tmdb-4".into(), None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("watchlist_full")),
        "{b}"
    );
    let (s, _) = put("/api/v1/me/watchlist/tmdb-2".into(), None).await;
    assert_eq!(s, 200);
    let (s, _) = t
        .call(Method::DELETE, "/api/v1/me/watchlist/tmdb-2", &at, None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = put("/api/v1/me/watchlist/tmdb-4".into(), None).await;
    assert_eq!(s, 201);
    let (_, list) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");

    // In parallel, another user's adds cannot pass the cap either.
    let par = access(&t.user("parallel@example.org", "a long password").await);
    let answers = futures::future::join_all((0..12).map(|i| {
        let (t, par) = (&t, &par);
        async move {
            t.call(
                Method::PUT,
                &format!("/api/v1/me/watchlist/tmdb-{}", 100 + i),
                par,
                None,
            )
            .await
        }
    }))
    .await;
    let added = answers.iter().filter(|(s, _)| *s == 201).count();
    let full = answers
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"] == "watchlist_full")
        .count();
    assert_eq!((added, full), (3, 9), "{answers:?}");

    // Progress: the fourth movie evicts the one watched longest ago (never refused).
    let progress = |id: u32, ts: u64| {
        put(
            format!("/api/v1/me/progress/tmdb-{id}"),
            Some(json!({"position_s": 60.0, "duration_s": 6000.0, "timestamp_ms": ts})),
        )
    };
    for (id, ts) in [(1, 1_000), (2, 2_000), (3, 3_000)] {
        let (s, p) = progress(id, ts).await;
        assert_eq!((s, &p["applied"]), (200, &json!(true)), "{p}");
    }
    // Watching movie 1 again makes it the newest: updating an entry evicts nothing.
    let (s, _) = progress(1, 4_000).await;
    assert_eq!(s, 200);
    let (_, h) = t.call(Method::GET, "/api/v1/me/history", &at, None).await;
    assert_eq!(history_ids(&h), ["tmdb-1", "tmdb-3", "tmdb-2"]);
    let (s, p) = progress(4, 5_000).await;
    assert_eq!((s, &p["applied"]), (200, &json!(true)), "{p}");
    let (s, b) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-2", &at, None)
        .await;
    assert_eq!((s, b["error"].as_str()), (404, Some("no_progress")), "{b}");
    let (_, h) = t.call(Method::GET, "/api/v1/me/history", &at, None).await;
    assert_eq!(history_ids(&h), ["tmdb-4", "tmdb-1", "tmdb-3"]);

    // Many new movies at once: all saved, and the user still holds exactly the cap (the
    // older entries went first; which three of the new ones remain depends on the order
    // the writes arrived in).
    let answers =
        futures::future::join_all((10..20).map(|id| progress(id, 10_000 + u64::from(id)))).await;
    assert!(
        answers
            .iter()
            .all(|(s, p)| *s == 200 && p["applied"] == true),
        "{answers:?}"
    );
    let (_, h) = t.call(Method::GET, "/api/v1/me/history", &at, None).await;
    let ids = history_ids(&h);
    assert_eq!(ids.len(), 3, "{h}");
    let new: Vec<String> = (10..20).map(|id| format!("tmdb-{id}")).collect();
    assert!(ids.iter().all(|id| new.contains(id)), "{h}");
    for id in [1, 3, 4] {
        let (s, _) = t
            .call(
                Method::GET,
                &format!("/api/v1/me/progress/tmdb-{id}"),
                &at,
                None,
            )
            .await;
        assert_eq!(s, 404, "tmdb-{id}");
    }
}
