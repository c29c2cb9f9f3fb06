//! `GET/PUT /api/v1/me/preferences` against a real tracker process: defaults before any
//! save, a durable round trip (also across kill -9), validation, authentication, and the
//! record removed with the account (checked in the tracker's own database afterwards).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{access, Tracker};
use reelnet_tracker::store::{Store, UserId};
use reqwest::Method;
use serde_json::{json, Value};

const PREFS: &str = "/api/v1/me/preferences";

fn defaults() -> Value {
    json!({
        "audio_language": null,
        "subtitle_language": null,
        "subtitles": "off",
        "subtitle_size": "m",
        "subtitle_background": true,
    })
}

#[tokio::test]
async fn defaults_round_trip_and_survive_kill9() {
    let mut t = Tracker::start().await;
    let at = access(&t.user("prefs@example.org", "a long password").await);

    let (s, b) = t.call(Method::GET, PREFS, &at, None).await;
    assert_eq!((s, &b), (200, &defaults()), "{b}");

    let wanted = json!({
        "audio_language": "de",
        "subtitle_language": "fr-CA",
        "subtitles": "on",
        "subtitle_size": "l",
        "subtitle_background": false,
    });
    let (s, b) = t.call(Method::PUT, PREFS, &at, Some(wanted.clone())).await;
    assert_eq!((s, &b), (200, &wanted), "{b}");
    let (s, b) = t.call(Method::GET, PREFS, &at, None).await;
    assert_eq!((s, &b), (200, &wanted), "{b}");

    // Acknowledged means durable: no chance to flush, still there.
    t.kill9();
    t.spawn().await;
    let (s, b) = t.call(Method::GET, PREFS, &at, None).await;
    assert_eq!((s, &b), (200, &wanted), "after kill -9: {b}");

    // PUT replaces: fields left out take their defaults.
    let (s, b) = t
        .call(
            Method::PUT,
            PREFS,
            &at,
            Some(json!({"subtitles": "forced_only", "audio_language": "ja"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut expect = defaults();
    expect["subtitles"] = json!("forced_only");
    expect["audio_language"] = json!("ja");
    assert_eq!(b, expect);
    let (_, b) = t.call(Method::GET, PREFS, &at, None).await;
    assert_eq!(b, expect);

    // Each user has their own.
    let other = access(&t.user("other@example.org", "a long password").await);
    let (s, b) = t.call(Method::GET, PREFS, &other, None).await;
    assert_eq!((s, &b), (200, &defaults()), "{b}");
}

#[tokio::test]
async fn invalid_preferences_are_refused_and_change_nothing() {
    let t = Tracker::start().await;
    let at = access(&t.user("strict@example.org", "a long password").await);
    let saved = json!({
        "audio_language": "en-US",
        "subtitle_language": null,
        "subtitles": "on",
        "subtitle_size": "s",
        "subtitle_background": true,
    });
    let (s, _) = t.call(Method::PUT, PREFS, &at, Some(saved.clone())).await;
    assert_eq!(s, 200);

    let long = "a".repeat(36);
    let cases = [
        (json!({"audio_language": "d e"}), "invalid_preferences"),
        (json!({"audio_language": ""}), "invalid_preferences"),
        (json!({"subtitle_language": long}), "invalid_preferences"),
        (json!({"subtitle_language": "en_US"}), "invalid_preferences"),
        (json!({"subtitle_language": "x-<b>"}), "invalid_preferences"),
        (json!({"audio_language": 7}), "invalid_json"),
        (json!({"subtitles": "sometimes"}), "invalid_json"),
        (json!({"subtitle_size": "xxl"}), "invalid_json"),
        (json!({"subtitle_background": "yes"}), "invalid_json"),
        (json!({"volume": 11}), "invalid_json"),
        (json!(["de"]), "invalid_json"),
    ];
    for (body, code) in cases {
        let (s, b) = t.call(Method::PUT, PREFS, &at, Some(body.clone())).await;
        assert_eq!((s, b["error"].as_str()), (400, Some(code)), "{body}: {b}");
    }
    // A body that is not JSON at all.
    let r = t
        .http
        .put(t.url(PREFS))
        .bearer_auth(&at)
        .header("content-type", "application/json")
        .body("{\"subtitles\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (s, b) = t.call(Method::GET, PREFS, &at, None).await;
    assert_eq!(
        (s, &b),
        (200, &saved),
        "a refused write changed nothing: {b}"
    );
}

#[tokio::test]
async fn unauthenticated_callers_are_refused() {
    let t = Tracker::start().await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"subtitles": "on"}))),
    ] {
        let mut req = t.http.request(method.clone(), t.url(PREFS));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let (s, b) = common::split(req.send().await.unwrap()).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (401, Some("missing_token")),
            "{method}: {b}"
        );
        let (s, b) = t.call(method.clone(), PREFS, "not-a-token", body).await;
        assert_eq!(s, 401, "{method} with a bad token: {b}");
    }
}

#[tokio::test]
async fn deleted_with_the_account() {
    let mut t = Tracker::start().await;
    let gone = t.user("leaving@example.org", "a long password").await;
    let stays = t.user("staying@example.org", "a long password").await;
    let gone_id = UserId::parse(gone["user"]["id"].as_str().unwrap()).unwrap();
    let stays_id = UserId::parse(stays["user"]["id"].as_str().unwrap()).unwrap();
    for login in [&gone, &stays] {
        let (s, b) = t
            .call(
                Method::PUT,
                PREFS,
                &access(login),
                Some(json!({"audio_language": "de", "subtitles": "on"})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    let (s, b) = t
        .call(Method::DELETE, "/api/v1/me", &access(&gone), None)
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = t.call(Method::GET, PREFS, &access(&gone), None).await;
    assert_eq!(s, 401);

    // In the database itself: the deleted account's record is gone, the other one's kept.
    let status = t.terminate();
    assert!(status.success(), "{status:?}");
    let (store, _writer) = Store::open_engine(&t.store_engine()).unwrap();
    assert_eq!(store.preferences(&gone_id).unwrap(), None);
    let kept = store.preferences(&stays_id).unwrap().expect("kept");
    assert_eq!(kept.audio_language.as_deref(), Some("de"));
}
