//! The tracker on PostgreSQL (`[storage] engine = "postgres"`), as a real process on a real
//! PostgreSQL started by the test: a viewer's flow survives a restart; a database written
//! by a newer tracker, a wrong password and an unreachable server stop the start with a
//! clear error; a database lost while the tracker runs answers 503 with `Retry-After` (no
//! hang) and the tracker recovers by itself when it is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{access, postgres_storage, start_postgres, test_ca, Tracker, TRACKER_BIN};
use reqwest::Method;
use serde_json::json;

const ROOMS: &str = "[rooms]\npremium_only = false\n";

#[tokio::test]
async fn register_login_progress_watch_later_and_rooms_survive_a_restart() {
    let mut t = Tracker::start_on_postgres(ROOMS).await;
    let login = t.user("pg@example.org", "a long password").await;
    let at = access(&login);
    t.watch_later_and_progress(&at).await;
    let (s, room) = t
        .call(
            Method::POST,
            "/api/v1/rooms",
            &at,
            Some(json!({ "movie_id": "tmdb-603" })),
        )
        .await;
    assert_eq!(s, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();

    // Nothing of it is in the data directory: it is all in PostgreSQL.
    assert!(!t.data_dir().join("db").exists());
    assert!(t.terminate().success(), "{}", t.log());
    t.spawn().await;

    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": "pg@example.org", "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let at = access(&b);
    let (s, list) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list[0]["movie_id"], "tmdb-603", "{list}");
    let (s, p) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-603", &at, None)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["resume_at"], 1234.5);
    let (s, h) = t.call(Method::GET, "/api/v1/me/history", &at, None).await;
    assert_eq!(s, 200, "{h}");
    assert!(h.to_string().contains("tmdb-603"), "{h}");
    let (s, r) = t
        .call(Method::GET, &format!("/api/v1/rooms/{room_id}"), &at, None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["movie_id"], "tmdb-603");

    // The operator commands work against PostgreSQL too, while the tracker runs and not.
    let (ok, out, err) = t.cli(&["node", "invite", "--uses", "2"]);
    assert!(ok, "{out}{err}");
    assert!(t.terminate().success());
    let (ok, out, err) = t.cli(&["node", "list"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = t.cli(&["admin", "set-tier", "pg@example.org", "premium"]);
    assert!(ok, "{out}{err}");
}

/// Runs `reelnet-tracker` with a config whose `[storage]` is `storage`, expecting it to
/// refuse to start; answers its stderr.
fn refused_start(storage: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tracker.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nissuer = \"t\"\nweb_url = \"http://127.0.0.1:9\"\n{storage}",
            dir.path().join("data"),
        ),
    )
    .unwrap();
    let out = Command::new(TRACKER_BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "it started: {stderr}");
    stderr
}

#[tokio::test]
async fn a_newer_schema_a_wrong_password_and_no_database_refuse_the_start() {
    let pg = start_postgres().await;
    // A tracker made the schema; a newer one moved it on.
    let url = pg.create_database("newer").await.unwrap();
    let mut t = Tracker::start_with(&postgres_storage(&url)).await;
    assert!(t.terminate().success());
    let client = pg.connect("newer").await.unwrap();
    client
        .batch_execute("UPDATE reelnet_schema SET version = version + 1")
        .await
        .unwrap();
    let rows_before: i64 = client
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .unwrap()
        .get(0);
    let err = refused_start(&postgres_storage(&url));
    assert!(err.contains("newer than this tracker knows"), "{err}");
    let rows_after: i64 = client
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows_before, rows_after);

    // A wrong password: said, without the password; nothing created in the database.
    let fresh = pg.create_database("fresh").await.unwrap();
    let err = refused_start(&postgres_storage(
        &fresh.replace(pg.password(), "wrongpass"),
    ));
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrongpass"), "{err}");
    let fresh_client = pg.connect("fresh").await.unwrap();
    let made: bool = fresh_client
        .query_one("SELECT to_regclass('reelnet_schema') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!made);

    // A bad URL, and a server that is not there.
    let err = refused_start("[storage]\nengine = \"postgres\"\nurl = \"mysql://x\"\n");
    assert!(err.contains("storage.url"), "{err}");
    pg.stop().await.unwrap();
    let err = refused_start(&postgres_storage(&url));
    assert!(
        err.contains("cannot connect") && err.contains(&pg.host_port()),
        "{err}"
    );
}

async fn put(t: &Tracker, at: &str, ts: u64) -> reqwest::Response {
    t.http
        .put(t.url("/api/v1/me/progress/tmdb-1"))
        .bearer_auth(at)
        .json(&json!({"position_s": ts as f64, "duration_s": 7200.0, "timestamp_ms": ts}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lost_database_answers_503_and_the_tracker_recovers_without_a_restart() {
    let mut t = Tracker::start_on_postgres("").await;
    // A hang fails the test (rather than a timing assertion, which a loaded machine breaks).
    t.http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let at = access(&t.user("lost@example.org", "a long password").await);
    assert_eq!(put(&t, &at, 1_000).await.status(), 200);

    t.pg.as_ref().unwrap().stop().await.unwrap();
    // A write and a read: 503 with Retry-After, not a hang and not a 500.
    let r = put(&t, &at, 2_000).await;
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap_or_default());
    assert!(r.headers().contains_key("retry-after"));
    let r = t
        .http
        .get(t.url("/api/v1/me/progress/tmdb-1"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(t.is_running());

    // Back: the same tracker process writes again.
    t.pg.as_ref().unwrap().start_again().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = put(&t, &at, 3_000).await.status();
        if s == 200 {
            break;
        }
        assert_eq!(s, 503);
        assert!(Instant::now() < deadline, "no recovery: {}", t.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, p) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-1", &at, None)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["position_s"], 3000.0, "{p}");
}

#[tokio::test]
async fn tls_to_postgresql_checks_the_server_certificate() {
    let pg = start_postgres().await;
    let (ca, cert, key) = test_ca("127.0.0.1");
    pg.require_tls(&cert, &key).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (good, other) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&good, &ca).unwrap();
    std::fs::write(&other, test_ca("127.0.0.1").0).unwrap();
    let url = pg.url();
    let with = |url: &str, ca: &std::path::Path| {
        format!(
            "{}ca_file = {:?}\n",
            postgres_storage(url),
            ca.display().to_string()
        )
    };

    // Without TLS the server turns the tracker away: a clear error, no start.
    let err = refused_start(&postgres_storage(&url));
    assert!(
        err.contains("no pg_hba.conf entry") || err.contains("rejects"),
        "{err}"
    );
    // TLS to a server whose certificate this CA did not sign: refused.
    let err = refused_start(&with(&format!("{url}?sslmode=require"), &other));
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // TLS with the right CA: the tracker works.
    let mut t = Tracker::start_with(&with(&format!("{url}?sslmode=require"), &good)).await;
    let login = t.user("tls@example.org", "a long password").await;
    t.watch_later_and_progress(&access(&login)).await;
    assert!(t.terminate().success(), "{}", t.log());
}
