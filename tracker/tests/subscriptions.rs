//! Subscriptions against a real tracker process and a real SMTP server: the signed billing
//! webhook (good, bad, missing and stale signatures; idempotency per event id), expiry
//! taking effect without a restart, the three subscription emails, and the offline
//! `admin set-tier` command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{access, split, wait_for, Tracker};
use reelnet_tracker::billing::sign;
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "whsec_test_secret";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn hook(t: &Tracker, body: &Value, signature: Option<String>) -> (u16, Value) {
    let raw = serde_json::to_vec(body).unwrap();
    let mut req = t
        .http
        .post(t.url("/api/v1/billing/webhook"))
        .header("content-type", "application/json")
        .body(raw);
    if let Some(s) = signature {
        req = req.header("Reelnet-Signature", s);
    }
    split(req.send().await.unwrap()).await
}

async fn signed(t: &Tracker, body: &Value) -> (u16, Value) {
    let raw = serde_json::to_vec(body).unwrap();
    hook(t, body, Some(sign(SECRET.as_bytes(), now(), &raw))).await
}

fn token_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn token_tier(token: &str) -> String {
    token_claims(token)["tier"].as_str().unwrap().to_owned()
}

async fn login(t: &Tracker, email: &str) -> Value {
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn subscription(t: &Tracker, token: &str) -> Value {
    let (s, b) = t
        .call(Method::GET, "/api/v1/me/subscription", token, None)
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Waits until the subscription worker has made a complete pass that began after this call
/// and everything it queued has been delivered, without a fixed sleep: a sentinel account
/// gets a period ending in 5 s (within `expiry_warning_secs`), and the first pass that sees
/// it emails it. Done twice: the second sentinel's period starts after the first one's email
/// arrived, so its email comes from a later pass that began after the earlier one had ended,
/// and the one mail sender delivers in queue order.
async fn worker_passes(t: &Tracker, tag: &str) {
    for i in 1..=2 {
        let email = format!("sentinel-{tag}-{i}@example.org");
        let (s, b) = t
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": "a long password", "display_name": "Sentinel"}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
        let (s, b) = signed(
            t,
            &json!({"id": format!("evt_{tag}_{i}"), "type": "subscription.activated",
                "data": {"email": email, "tier": "premium", "until": now() + 5}}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        // Verification and "started" were queued before the webhook answered; the third
        // email ("about to expire", or "expired" if the pass came late) is the worker's.
        wait_for(
            "a worker pass to email the sentinel",
            Duration::from_secs(30),
            || async { (t.smtp().count_to(&email) >= 3).then_some(()) },
        )
        .await;
    }
}

fn extra() -> String {
    format!(
        "[billing]\nwebhook_secret = \"{SECRET}\"\ncheck_interval_secs = 1\nexpiry_warning_secs = 6\n"
    )
}

#[tokio::test]
async fn webhook_signatures_replay_and_idempotency() {
    let t = Tracker::start_with(&extra()).await;
    let email = "payer@example.org";
    let token = access(&t.user(email, "a long password").await);
    let sub = subscription(&t, &token).await;
    assert_eq!(sub["tier"], "free");
    assert_eq!(sub["status"], "none");
    assert!(sub["premium_features"]
        .as_array()
        .unwrap()
        .contains(&json!("top_renditions")));

    let until = now() + 30 * 24 * 3600;
    let event = json!({"id": "evt_1", "type": "subscription.activated",
        "data": {"email": email, "tier": "premium", "until": until}});
    let raw = serde_json::to_vec(&event).unwrap();

    // Missing, malformed, wrong-key, wrong-body and stale signatures change nothing.
    let (s, b) = hook(&t, &event, None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("bad_signature")),
        "{b}"
    );
    let (s, b) = hook(&t, &event, Some("t=abc,v1=zz".into())).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("bad_signature")),
        "{b}"
    );
    let (s, b) = hook(&t, &event, Some(sign(b"wrong secret", now(), &raw))).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("bad_signature")),
        "{b}"
    );
    let other = serde_json::to_vec(&json!({"id": "evt_1"})).unwrap();
    let (s, b) = hook(&t, &event, Some(sign(SECRET.as_bytes(), now(), &other))).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("bad_signature")),
        "{b}"
    );
    let (s, b) = hook(&t, &event, Some(sign(SECRET.as_bytes(), now() - 301, &raw))).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("stale_signature")),
        "{b}"
    );
    assert_eq!(subscription(&t, &token).await["tier"], "free");

    // A good one applies; the same event again (a provider's retry) is acknowledged once.
    let (s, b) = signed(&t, &event).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("applied")), "{b}");
    let (s, b) = signed(&t, &event).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("duplicate")), "{b}");
    let sub = subscription(&t, &token).await;
    assert_eq!(sub["tier"], "premium");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["until"], until);
    let claims = token_claims(&access(&login(&t, email).await));
    assert_eq!(claims["tier"], "premium");
    // Nodes cap premium playback at the end of the period: the token names it.
    assert_eq!(claims["tier_until"], until, "{claims}");
    t.smtp()
        .wait_for_link(email, "premium subscription has started", "/account")
        .await;
    worker_passes(&t, "started").await;
    // verification + started, nothing for the duplicate or from the worker
    assert_eq!(t.smtp().count_to(email), 2);

    // Unknown accounts are not recorded (the provider's retry after sign-up applies).
    let ghost = json!({"id": "evt_2", "type": "subscription.activated",
        "data": {"email": "ghost@example.org", "until": until}});
    let (s, b) = signed(&t, &ghost).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("unknown_account")),
        "{b}"
    );

    // Unknown event kinds are acknowledged and ignored; cancel ends premium at once.
    let (s, b) = signed(
        &t,
        &json!({"id": "evt_3", "type": "invoice.paid", "data": {"email": email}}),
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ignored")), "{b}");
    let (s, b) = signed(
        &t,
        &json!({"id": "evt_4", "type": "subscription.canceled", "data": {"email": email}}),
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("applied")), "{b}");
    assert_eq!(subscription(&t, &token).await["tier"], "free");
    t.smtp()
        .wait_for_link(email, "subscription was canceled", "/account")
        .await;

    // Malformed JSON with a valid signature: 400, nothing recorded.
    let junk = b"{not json".to_vec();
    let r = t
        .http
        .post(t.url("/api/v1/billing/webhook"))
        .header("Reelnet-Signature", sign(SECRET.as_bytes(), now(), &junk))
        .body(junk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn premium_expires_without_restart_with_emails() {
    let t = Tracker::start_with(&extra()).await;
    let email = "short@example.org";
    let token = access(&t.user(email, "a long password").await);
    let until = now() + 5;
    let (s, b) = signed(
        &t,
        &json!({"id": "evt_short", "type": "subscription.activated",
            "data": {"email": email, "tier": "premium", "until": until}}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let premium = login(&t, email).await;
    assert_eq!(token_tier(&access(&premium)), "premium");
    // The premium access token does not outlive the period.
    assert!(premium["expires_in"].as_u64().unwrap() <= 5, "{premium}");
    t.smtp()
        .wait_for_link(email, "premium subscription is about to expire", "/account")
        .await;
    while now() <= until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sub = subscription(&t, &token).await;
    assert_eq!(
        (sub["tier"].as_str(), sub["status"].as_str()),
        (Some("free"), Some("expired"))
    );
    let claims = token_claims(&access(&login(&t, email).await));
    assert_eq!(claims["tier"], "free");
    assert!(claims.get("tier_until").is_none(), "{claims}");
    t.smtp()
        .wait_for_link(email, "premium subscription has expired", "/account")
        .await;
    worker_passes(&t, "expired").await;
    // verification, started, about to expire, expired: each once.
    assert_eq!(t.smtp().count_to(email), 4);
}

#[tokio::test]
async fn admin_set_tier_offline() {
    let mut t = Tracker::start_with(&extra()).await;
    let email = "gift@example.org";
    let token = access(&t.user(email, "a long password").await);

    // While the tracker runs sled's database is locked: refused, nothing changed. (On
    // PostgreSQL there is no such lock: the command is applied.)
    let out = std::process::Command::new(common::TRACKER_BIN)
        .arg("--config")
        .arg(&t.config)
        .args([
            "admin",
            "set-tier",
            email,
            "premium",
            "--until",
            "2099-12-31",
        ])
        .output()
        .unwrap();
    if t.pg.is_none() {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    } else {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert!(t.terminate().success());
    let bad = std::process::Command::new(common::TRACKER_BIN)
        .arg("--config")
        .arg(&t.config)
        .args(["admin", "set-tier", email, "premium", "--until", "someday"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let out = std::process::Command::new(common::TRACKER_BIN)
        .arg("--config")
        .arg(&t.config)
        .args([
            "admin",
            "set-tier",
            email,
            "premium",
            "--until",
            "2099-12-31",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2099-12-31 23:59"));
    t.spawn().await;
    let sub = subscription(&t, &token).await;
    assert_eq!(sub["tier"], "premium");
    assert_eq!(sub["until"], 4_102_444_799u64);
    // The worker sends the "started" email the command could not.
    t.smtp()
        .wait_for_link(email, "premium subscription has started", "/account")
        .await;
}
