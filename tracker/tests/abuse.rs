//! The tracker under abuse, against the real process: a flood of password hashes stays
//! bounded (503/429, never a hang, memory bounded) and the tracker signs people in after
//! it; a parallel burst of wrong passwords gets exactly as many guesses as a serial run; a
//! stranger attacking an account from many addresses (named by the operator's trusted
//! reverse proxy) does not lock its owner out; credentials that come through a member
//! node's proxy are refused before anything is counted (docs/signin.md); account mails to
//! one address are rate-limited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::Tracker;
use reelnet_proto::membership::{viewer_auth_path, NODE_AUTH_HEADER, VIEWER_ADDR_HEADER};
use serde_json::{json, Value};

/// The config of a tracker behind the operator's own reverse proxy on 127.0.0.1 (its
/// `X-Forwarded-For` names the client).
const BEHIND_PROXY: &str = "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n";

/// POSTs `body` to `path` for the client at `client` as the operator's trusted reverse
/// proxy names it (`X-Forwarded-For`), or directly when `client` is `None`.
async fn post_as(
    t: &Tracker,
    http: &reqwest::Client,
    client: Option<&str>,
    path: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut req = http
        .post(t.url(path))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(120));
    if let Some(client) = client {
        req = req.header("x-forwarded-for", client);
    }
    let res = req
        .body(bytes)
        .send()
        .await
        .expect("answered (never hangs)");
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, retry, body)
}

/// Peak resident memory of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn tally(statuses: &[u16]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for s in statuses {
        *m.entry(*s).or_default() += 1;
    }
    m
}

/// 500 parallel registrations, each from its own viewer address (so no per-address limit
/// stops them and every one would hash), then 500 parallel reset confirmations of one
/// valid link: the hash gate answers what it cannot take with 503 + Retry-After at once,
/// memory stays bounded (unbounded, 500 argon2 hashes would need about 9.5 GiB), and the
/// tracker signs people in afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_password_hashes_stays_bounded_and_the_tracker_keeps_working() {
    let t = Tracker::start_with(&format!(
        "{BEHIND_PROXY}[auth]\nhash_concurrency = 2\nhash_queue = 8\n"
    ))
    .await;
    let member = Arc::new(t.member(&["edge"]).await);
    let owner = "owner@example.org";
    t.user(owner, "the owners password").await;
    let before = peak_rss_kib(t.pid());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500u32 {
        let http = http.clone();
        let viewer = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        let body = json!({"email": format!("flood{i}@example.org"),
            "password": "a long password", "display_name": "Flood"});
        let base = t.base.clone();
        tasks.spawn(async move {
            let path = "/api/v1/auth/register";
            let bytes = serde_json::to_vec(&body).unwrap();
            let res = http
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .header("x-forwarded-for", &viewer)
                .timeout(Duration::from_secs(120))
                .body(bytes)
                .send()
                .await
                .expect("answered (never hangs)");
            let retry = res.headers().get("retry-after").is_some();
            (res.status().as_u16(), retry)
        });
    }
    let mut statuses = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (s, retry) = r.unwrap();
        if s == 503 || s == 429 {
            assert!(retry, "{s} carries Retry-After");
        }
        statuses.push(s);
    }
    let counts = tally(&statuses);
    eprintln!(
        "registrations: {counts:?}; peak RSS now {} KiB",
        peak_rss_kib(t.pid())
    );
    assert!(
        counts.keys().all(|s| [202, 429, 503].contains(s)),
        "{counts:?}"
    );
    assert!(counts.get(&503).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get(&202).copied().unwrap_or(0) >= 10, "{counts:?}");

    // One valid reset link, confirmed 500 times at once.
    let (s, _, b) = post_as(
        &t,
        &http,
        None,
        "/api/v1/auth/password-reset",
        &json!({"email": owner}),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let link = t
        .smtp()
        .wait_for_link(
            owner,
            "Reset your reelnet password",
            "/reset-password?token=",
        )
        .await;
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500u32 {
        let (http, base, token) = (http.clone(), t.base.clone(), token.clone());
        tasks.spawn(async move {
            let res = http
                .post(format!("{base}/api/v1/auth/password-reset/confirm"))
                .json(&json!({"token": token, "password": format!("new password {i:04}")}))
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("answered (never hangs)");
            (res.status().as_u16(), i)
        });
    }
    let mut statuses = Vec::new();
    let mut winner = None;
    while let Some(r) = tasks.join_next().await {
        let (s, i) = r.unwrap();
        if s == 204 {
            winner = Some(format!("new password {i:04}"));
        }
        statuses.push(s);
    }
    let counts = tally(&statuses);
    eprintln!("reset confirms: {counts:?}");
    assert!(
        counts.keys().all(|s| [204, 400, 429, 503].contains(s)),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&204).copied(),
        Some(1),
        "the link works once: {counts:?}"
    );

    let after = peak_rss_kib(t.pid());
    eprintln!("tracker peak RSS: {before} KiB before, {after} KiB after the floods");
    // Two hashing threads with ~19 MiB of argon2 memory each; allow for 1000 connections
    // and the allocator — far below the gigabytes an unbounded flood needs (measured:
    // +9 MiB).
    assert!(
        after < before + 128 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );

    // The tracker still signs people in.
    let (s, _, b) = post_as(
        &t,
        &http,
        None,
        "/api/v1/auth/login",
        &json!({"email": "flood0@example.org", "password": "wrong password!"}),
    )
    .await;
    assert!(s == 401 || s == 429, "{s} {b}");
    let winner = winner.unwrap();
    // Never through a member node's proxy (refused before any hash)...
    let path = "/api/v1/auth/login";
    let bytes = serde_json::to_vec(&json!({"email": owner, "password": winner})).unwrap();
    let r = http
        .post(t.url(path))
        .header("content-type", "application/json")
        .header(VIEWER_ADDR_HEADER, "192.0.2.1")
        .header(
            NODE_AUTH_HEADER,
            member.auth("POST", &viewer_auth_path(path, "192.0.2.1"), &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap();
    let (s, b) = common::split(r).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("credentials_at_tracker")),
        "{b}"
    );
    // ... but at the tracker.
    let (s, _, b) = post_as(
        &t,
        &http,
        Some("192.0.2.1"),
        "/api/v1/auth/login",
        &json!({"email": owner, "password": winner}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

/// 50 wrong passwords at once from one address get exactly as many guesses as 50 in a row
/// (the limit per account and address, 5): every attempt is counted before its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_burst_of_wrong_passwords_counts_every_attempt() {
    let t = Tracker::start().await;
    let email = "burst@example.org";
    t.user(email, "the right password").await;
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (http, base) = (http.clone(), t.base.clone());
        tasks.spawn(async move {
            http.post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"email": email, "password": format!("wrong guess {i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(r) = tasks.join_next().await {
        statuses.push(r.unwrap());
    }
    let counts = tally(&statuses);
    assert_eq!(counts.get(&401).copied(), Some(5), "{counts:?}");
    assert_eq!(counts.get(&429).copied(), Some(45), "{counts:?}");
    // The guesses are used up for this address, even with the right password.
    let (s, _, _) = post_as(
        &t,
        &http,
        None,
        "/api/v1/auth/login",
        &json!({"email": email, "password": "the right password"}),
    )
    .await;
    assert_eq!(s, 429);
}

/// An attacker failing logins on an account from many addresses does not lock its owner
/// out: the owner's known address signs in at once, a new one waits at most the backoff
/// cap (not the 15-minute window), and the attacker's addresses stay limited. Logins that
/// come through a member node's proxy are refused (403 `credentials_at_tracker`) and count
/// for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stranger_cannot_lock_out_the_owner() {
    let t = Tracker::start_with(&format!(
        "{BEHIND_PROXY}[auth]\naccount_backoff_max_secs = 30\n"
    ))
    .await;
    let member = t.member(&["edge"]).await;
    let email = "target@example.org";
    let password = "owners own password";
    t.user(email, password).await;
    let http = reqwest::Client::new();
    let login = |pw: &str| json!({"email": email, "password": pw});

    // The owner signs in from home.
    let home = "198.51.100.20";
    let (s, _, b) = post_as(
        &t,
        &http,
        Some(home),
        "/api/v1/auth/login",
        &login(password),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    // An attacker tries from 20 addresses, 5 wrong guesses each (in parallel).
    let mut refused = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..20 {
        for g in 0..5 {
            let viewer = format!("203.0.113.{a}");
            let body = login(&format!("guess {a} {g}"));
            let bytes = serde_json::to_vec(&body).unwrap();
            let path = "/api/v1/auth/login";
            let (http, base) = (http.clone(), t.base.clone());
            tasks.spawn(async move {
                http.post(format!("{base}{path}"))
                    .header("content-type", "application/json")
                    .header("x-forwarded-for", viewer)
                    .body(bytes)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            401 => {}
            // Refused before any hash: the limits, or the hash queue.
            429 | 503 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "the account's backoff spaced the attack out");

    // The owner, from home: signed in at once.
    let (s, _, b) = post_as(
        &t,
        &http,
        Some(home),
        "/api/v1/auth/login",
        &login(password),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // From a new address: in, or asked to wait at most the cap — never the whole window.
    let (s, retry, b) = post_as(
        &t,
        &http,
        Some("192.0.2.77"),
        "/api/v1/auth/login",
        &login(password),
    )
    .await;
    match s {
        200 => {}
        429 => {
            let wait: u64 = retry.unwrap().parse().unwrap();
            assert!(wait <= 30, "waits {wait} s");
        }
        _ => panic!("{s} {b}"),
    }

    // Through a member node's proxy — signed or not, naming any viewer — a login is
    // refused before anything is checked or counted.
    let other = "other@example.org";
    t.user(other, "other password x").await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = http
            .post(t.url("/api/v1/auth/login"))
            .header(VIEWER_ADDR_HEADER, format!("192.0.2.{i}"))
            .header(NODE_AUTH_HEADER, "v1.00.1.00.00")
            .json(&json!({"email": other, "password": format!("wrong {i}")}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![403; 6]);
    let bytes =
        serde_json::to_vec(&json!({"email": other, "password": "other password x"})).unwrap();
    let path = "/api/v1/auth/login";
    let r = http
        .post(t.url(path))
        .header("content-type", "application/json")
        .header(VIEWER_ADDR_HEADER, "192.0.2.200")
        .header(
            NODE_AUTH_HEADER,
            member.auth("POST", &viewer_auth_path(path, "192.0.2.200"), &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap();
    let (s, b) = common::split(r).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("credentials_at_tracker")),
        "{b}"
    );
    // None of those counted: the account signs in at the tracker at once.
    let (s, _, b) = post_as(
        &t,
        &http,
        None,
        "/api/v1/auth/login",
        &json!({"email": other, "password": "other password x"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

/// Reset and verification mails to one address are limited per hour; the requests are
/// answered the same either way.
#[tokio::test]
async fn account_mails_to_one_address_are_rate_limited() {
    let t = Tracker::start_with("[auth]\nmails_per_address_per_hour = 3\n").await;
    let email = "inbox@example.org";
    t.user(email, "a long password").await; // one verification mail
    for _ in 0..5 {
        let (s, b) = t
            .post("/api/v1/auth/password-reset", json!({"email": email}))
            .await;
        assert_eq!(s, 202, "{b}");
    }
    // A sentinel mail to another address, queued after all of those: once it arrives, every
    // mail for `email` that was going to be sent has been.
    t.user("sentinel@example.org", "a long password").await;
    assert_eq!(
        t.smtp().count_to(email),
        3,
        "1 verification + 2 resets, then held back"
    );
}

/// Per-address limits on registration, reset requests and resends answer 429 with
/// Retry-After.
#[tokio::test]
async fn registration_and_reset_requests_are_limited_per_address() {
    let t = Tracker::start_with(
        "[auth]\nregistrations_per_address_per_hour = 2\nreset_requests_per_address_per_hour = 2\nresends_per_address_per_hour = 2\n",
    )
    .await;
    for (path, body) in [
        (
            "/api/v1/auth/register",
            json!({"email": "r{}@example.org", "password": "a long password", "display_name": "R"}),
        ),
        (
            "/api/v1/auth/password-reset",
            json!({"email": "r{}@example.org"}),
        ),
        (
            "/api/v1/auth/resend-verification",
            json!({"email": "r{}@example.org"}),
        ),
    ] {
        let mut statuses = Vec::new();
        for i in 0..3 {
            let body: Value =
                serde_json::from_str(&body.to_string().replace("{}", &i.to_string())).unwrap();
            let r = t.http.post(t.url(path)).json(&body).send().await.unwrap();
            if r.status() == 429 {
                assert!(r.headers().get("retry-after").is_some());
            }
            statuses.push(r.status().as_u16());
        }
        assert_eq!(statuses, vec![202, 202, 429], "{path}");
    }
}
