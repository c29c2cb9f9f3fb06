//! `reelnet-tracker migrate --to`: a sled tracker with every kind of record its API and
//! CLI make is stopped and moved into a real PostgreSQL (counts printed and equal), back
//! into a new sled database byte for byte, and a tracker on each serves the same data.
//! A destination that holds records, a running tracker and a wrong URL are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{access, postgres_storage, start_postgres, Tracker};
use reelnet_tracker::store::kv::Entry;
use reelnet_tracker::store::{Durability, Engine, Store};
use reqwest::Method;
use serde_json::json;

/// sled, even when the suite runs with `REELNET_TEST_STORE=postgres`.
const SLED: &str = "[storage]\nengine = \"sled\"\n";
const ROOMS: &str = "[rooms]\npremium_only = false\n";
const PASSWORD: &str = "a long password";

/// The per-tree counts `migrate` printed: tree → (source, destination).
fn counts(out: &str) -> BTreeMap<String, (u64, u64)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [tree, s, d] => Some((tree.to_string(), (s.parse().ok()?, d.parse().ok()?))),
                _ => None,
            }
        })
        .collect()
}

/// Every (tree, key, value) of the sled store in `dir` (no tracker may have it open).
fn sled_entries(dir: &std::path::Path) -> Vec<(&'static str, Entry)> {
    let engine = Engine::Sled {
        dir: dir.to_owned(),
        durability: Durability::Fsync,
    };
    let (store, _writer) = Store::open_engine(&engine).unwrap();
    store.entries().unwrap()
}

/// Signs in and checks the records made before the move are served.
async fn serves_the_same(t: &Tracker, room_id: &str) {
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": "mover@example.org", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["tier"], "premium", "{b}");
    let at = access(&b);
    let (s, list) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list[0]["movie_id"], "tmdb-603", "{list}");
    let (s, p) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-603", &at, None)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["resume_at"], 1234.5, "{p}");
    let (s, h) = t.call(Method::GET, "/api/v1/me/history", &at, None).await;
    assert_eq!(s, 200, "{h}");
    assert!(h.to_string().contains("tmdb-603"), "{h}");
    let (s, prefs) = t
        .call(Method::GET, "/api/v1/me/preferences", &at, None)
        .await;
    assert_eq!(s, 200, "{prefs}");
    assert_eq!(prefs["audio_language"], "ja", "{prefs}");
    let (s, r) = t
        .call(Method::GET, &format!("/api/v1/rooms/{room_id}"), &at, None)
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, reqs) = t.call(Method::GET, "/api/v1/requests", &at, None).await;
    assert_eq!(s, 200, "{reqs}");
    assert!(reqs.to_string().contains("603"), "{reqs}");
    let (ok, out, err) = t.cli(&["node", "list"]);
    assert!(ok && out.contains("roles=edge"), "{out}{err}");
}

#[tokio::test]
async fn a_sled_tracker_moves_to_postgres_and_back_unchanged() {
    let mut t = Tracker::start_with(&format!("{SLED}{ROOMS}")).await;
    let sled_config = std::fs::read_to_string(&t.config).unwrap();
    // Every kind of record the API and the CLI make.
    let at = access(&t.user("mover@example.org", PASSWORD).await);
    t.watch_later_and_progress(&at).await;
    let (s, b) = t
        .call(
            Method::PUT,
            "/api/v1/me/preferences",
            &at,
            Some(json!({"subtitles": "forced_only", "audio_language": "ja"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
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
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &at,
            Some(json!({"tmdb_id": 603, "title": "The Matrix", "year": 1999})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    t.member(&["edge"]).await;
    t.invite(&["replica"], 2, "24h");
    assert!(t.terminate().success(), "{}", t.log());
    let (ok, out, err) = t.cli(&["admin", "set-tier", "mover@example.org", "premium"]);
    assert!(ok, "{out}{err}");

    // sled → PostgreSQL: a line per record kind, equal counts, every kind made above.
    let pg = start_postgres().await;
    let (ok, out, err) = t.cli(&["migrate", "--to", &pg.url()]);
    assert!(ok, "{out}{err}");
    let first = counts(&out);
    assert_eq!(
        first.len(),
        reelnet_tracker::store::TREE_NAMES.len() + 1,
        "{out}"
    );
    for (tree, (s, d)) in &first {
        assert_eq!(s, d, "{tree}: {out}");
    }
    for tree in [
        "users",
        "emails",
        "refresh",
        "families",
        "watchlist",
        "progress",
        "history",
        "preferences",
        "rooms",
        "requests",
        "open_requests",
        "invites",
        "nodes",
    ] {
        assert!(first[tree].0 > 0, "no {tree} records: {out}");
    }
    // The key files (token and network) travel as records: replicas on PostgreSQL with
    // other data directories sign with the same keys.
    assert_eq!(first["signing_keys"], (2, 2), "{out}");

    // PostgreSQL → a new sled database where the tracker keeps its own (the original is
    // set aside): byte for byte what the original held.
    let original = t.dir.path().join("original-db");
    std::fs::rename(t.data_dir().join("db"), &original).unwrap();
    let pg_config = sled_config.replace(SLED, &postgres_storage(&pg.url()));
    std::fs::write(&t.config, &pg_config).unwrap();
    let new_sled = t.data_dir().join("db");
    let (ok, out, err) = t.cli(&["migrate", "--to", &format!("sled:{}", new_sled.display())]);
    assert!(ok, "{out}{err}");
    assert_eq!(counts(&out), first, "{out}");
    let before = sled_entries(&original);
    assert_eq!(before.len() as u64, first["total"].0);
    assert!(
        before == sled_entries(&new_sled),
        "the round trip changed records"
    );

    // A tracker on PostgreSQL serves it, and then one on the new sled database.
    t.spawn().await;
    serves_the_same(&t, &room_id).await;
    assert!(t.terminate().success(), "{}", t.log());
    std::fs::write(&t.config, &sled_config).unwrap();
    t.spawn().await;
    serves_the_same(&t, &room_id).await;
}

#[tokio::test]
async fn a_running_tracker_a_full_destination_and_a_wrong_url_are_refused() {
    let mut t = Tracker::start_with(SLED).await;
    t.user("first@example.org", PASSWORD).await;
    let pg = start_postgres().await;
    let url = pg.create_database("dest").await.unwrap();

    // sled's lock: the tracker must be stopped.
    let (ok, out, err) = t.cli(&["migrate", "--to", &url]);
    assert!(!ok, "{out}");
    assert!(err.contains("is the tracker running"), "{err}");
    assert!(t.terminate().success());

    let (ok, out, err) = t.cli(&["migrate", "--to", &url]);
    assert!(ok, "{out}{err}");
    let client = pg.connect("dest").await.unwrap();
    let rows = || async {
        let n: i64 = client
            .query_one("SELECT count(*) FROM kv", &[])
            .await
            .unwrap()
            .get(0);
        n
    };
    let copied = rows().await;
    assert_eq!(copied as u64, counts(&out)["total"].1);

    // Into a database that holds records: refused, nothing written.
    t.spawn().await;
    t.user("second@example.org", PASSWORD).await;
    assert!(t.terminate().success());
    let (ok, out, err) = t.cli(&["migrate", "--to", &url]);
    assert!(!ok, "{out}");
    assert!(err.contains("already holds"), "{err}");
    assert_eq!(rows().await, copied);

    // A wrong password, a server that is not there, a target that is neither engine.
    let wrong = url.replace(pg.password(), "wrongpass");
    let (ok, _, err) = t.cli(&["migrate", "--to", &wrong]);
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrongpass"), "{err}");
    let (ok, _, err) = t.cli(&["migrate", "--to", "postgres://u:p@127.0.0.1:1/db"]);
    assert!(!ok);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let (ok, _, err) = t.cli(&["migrate", "--to", "mysql://u:p@host/db"]);
    assert!(!ok);
    assert!(err.contains("sled:DIR"), "{err}");
}
