//! Movie bindings (one canonical source per movie) against a real tracker process: ingest
//! announcements bind unbound movies and nothing else, the signed bindings page (verified
//! with the network document's keys) and its paging, `movie bind|list` through the running
//! tracker and while it is stopped, requests for bound movies, done reports that bind, and a
//! claim held by another node that defers an announcement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{access, Member, Tracker};
use reelnet_proto::binding::{Binding, SignedBinding};
use reelnet_proto::membership::NetworkDocument;
use reelnet_proto::{
    Container, Manifest, MovieId, NodeId, Rendition, SegmentEntry, SegmentHash, SignedManifest,
    Track,
};
use reqwest::Method;
use serde_json::{json, Value};

/// A manifest of `movie` signed by `m`'s key (origin `m`, unless `origin` says otherwise).
fn manifest(m: &Member, movie: &str, ingest: u8, complete: bool) -> SignedManifest {
    let origin = NodeId::from_verifying_key(&m.key.verifying_key());
    let man = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::new(movie).unwrap(),
        title: format!("Movie {movie}"),
        year: Some(1999),
        origin,
        ingest_id: [ingest; 16],
        seq: 1,
        created_at: reelnet_runtime::clock::unix_secs(),
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
                hash: SegmentHash::of(&[ingest]),
                duration_ms: 4000,
                size: 10,
            }],
        }],
        complete,
        meta: Default::default(),
    };
    SignedManifest::sign(&man, &m.key).unwrap()
}

async fn announce(t: &Tracker, m: &Member, signed: &SignedManifest) -> (u16, Value) {
    t.node_post(
        "/api/v1/nodes/ingests",
        Some(m),
        json!({ "manifest": hex::encode(signed.encode()) }),
    )
    .await
}

async fn page(t: &Tracker, after: Option<u64>) -> Value {
    let path = match after {
        Some(n) => format!("/api/v1/network/bindings?after={n}"),
        None => "/api/v1/network/bindings".to_owned(),
    };
    let r = t.http.get(t.url(&path)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Every binding of a page, verified with the network document's keys.
fn verified(doc: &NetworkDocument, page: &Value) -> Vec<Binding> {
    let now = reelnet_runtime::clock::unix_secs();
    let (trust, _) = doc.trust(now).unwrap();
    page["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let signed = SignedBinding::from_hex(h.as_str().unwrap()).unwrap();
            trust.verify_binding(&signed, now).unwrap()
        })
        .collect()
}

fn binding_of(doc: &NetworkDocument, hex: &Value) -> Binding {
    let now = reelnet_runtime::clock::unix_secs();
    let (trust, _) = doc.trust(now).unwrap();
    let signed = SignedBinding::from_hex(hex.as_str().unwrap()).unwrap();
    trust.verify_binding(&signed, now).unwrap()
}

fn node_id(m: &Member) -> NodeId {
    m.id.parse().unwrap()
}

fn movies_json(t: &Tracker) -> Value {
    let (ok, out, err) = t.cli(&["movie", "list", "--json"]);
    assert!(ok, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn movie<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["movies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["movie"] == id)
        .unwrap_or_else(|| panic!("{id} is not bound: {list}"))
}

#[tokio::test]
async fn announcements_bind_unbound_movies_and_operators_repoint_them() {
    let mut t = Tracker::start().await;
    let a = t.member(&["ingest", "replica"]).await;
    let b = t.member(&["ingest"]).await;
    let edge = t.member(&["edge"]).await;
    let doc = t.network().await;

    // Nothing bound yet.
    let p = page(&t, None).await;
    assert_eq!(p, json!({"bindings": [], "version": 0, "more": false}));

    // A's complete ingest binds the unbound movie.
    let a603 = manifest(&a, "tmdb-603", 1, true);
    let (s, r) = announce(&t, &a, &a603).await;
    assert_eq!((s, r["bound_here"].as_bool()), (200, Some(true)), "{r}");
    let first = binding_of(&doc, &r["binding"]);
    assert_eq!(first.movie.as_str(), "tmdb-603");
    assert!(first.covers(&node_id(&a), &[1; 16]));
    assert_eq!((first.manifest, first.version), (a603.id(), 1));
    let p = page(&t, Some(0)).await;
    assert_eq!(
        (p["version"].as_u64(), p["more"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(verified(&doc, &p), vec![first.clone()]);

    // B's ingest of the same movie does not re-bind it; the answer names A's binding.
    let b603 = manifest(&b, "tmdb-603", 2, true);
    let (s, r) = announce(&t, &b, &b603).await;
    assert_eq!((s, r["bound_here"].as_bool()), (200, Some(false)), "{r}");
    assert_eq!(binding_of(&doc, &r["binding"]), first);
    // Announcing again changes nothing.
    let (s, r) = announce(&t, &a, &a603).await;
    assert_eq!((s, r["bound_here"].as_bool()), (200, Some(true)), "{r}");
    assert_eq!(page(&t, None).await["version"], 1);

    // Refused: an edge member, a manifest another node signed, an incomplete one, garbage,
    // an unsigned request.
    let e = manifest(&edge, "tmdb-604", 3, true);
    let (s, r) = announce(&t, &edge, &e).await;
    assert_eq!((s, r["error"].as_str()), (403, Some("missing_role")), "{r}");
    let (s, r) = announce(&t, &a, &manifest(&b, "tmdb-604", 4, true)).await;
    assert_eq!((s, r["error"].as_str()), (403, Some("not_origin")), "{r}");
    let (s, r) = announce(&t, &a, &manifest(&a, "tmdb-604", 5, false)).await;
    assert_eq!(
        (s, r["error"].as_str()),
        (400, Some("incomplete_manifest")),
        "{r}"
    );
    for garbage in ["zz", "00", ""] {
        let (s, r) = t
            .node_post(
                "/api/v1/nodes/ingests",
                Some(&a),
                json!({ "manifest": garbage }),
            )
            .await;
        assert_eq!(
            (s, r["error"].as_str()),
            (400, Some("invalid_manifest")),
            "{r}"
        );
    }
    let (s, r) = t
        .node_post("/api/v1/nodes/ingests", Some(&a), json!({"nope": 1}))
        .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = t
        .node_post(
            "/api/v1/nodes/ingests",
            None,
            json!({ "manifest": hex::encode(a603.encode()) }),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (401, Some("node_auth_required")),
        "{r}"
    );
    assert_eq!(page(&t, None).await["version"], 1, "refusals bound nothing");

    // Two more movies: versions 2 and 3; paging with `after`.
    let (s, _) = announce(&t, &a, &manifest(&a, "tmdb-604", 6, true)).await;
    assert_eq!(s, 200);
    let (s, _) = announce(&t, &b, &manifest(&b, "tmdb-605", 7, true)).await;
    assert_eq!(s, 200);
    let p = page(&t, Some(1)).await;
    let got: Vec<(String, u64)> = verified(&doc, &p)
        .iter()
        .map(|b| (b.movie.as_str().to_owned(), b.version))
        .collect();
    assert_eq!(got, vec![("tmdb-604".into(), 2), ("tmdb-605".into(), 3)]);
    assert_eq!(p["version"], 3);
    assert_eq!(
        page(&t, Some(3)).await,
        json!({"bindings": [], "version": 3, "more": false})
    );
    let r = t
        .http
        .get(t.url("/api/v1/network/bindings?after=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // An operator re-points tmdb-603 to B's ingest through the running tracker.
    let b603_id = b603.id().to_string();
    let (ok, out, err) = t.cli(&["movie", "bind", "tmdb-603", "--manifest", &b603_id]);
    assert!(ok, "{out}{err}");
    let p = page(&t, Some(0)).await;
    let all = verified(&doc, &p);
    let versions: Vec<u64> = all.iter().map(|b| b.version).collect();
    assert_eq!(
        versions,
        vec![2, 3, 4],
        "the old version is gone from paging"
    );
    assert!(all[2].covers(&node_id(&b), &[2; 16]));
    assert_eq!(all[2].movie.as_str(), "tmdb-603");
    let list = movies_json(&t);
    assert_eq!(list["version"], 4);
    let m603 = movie(&list, "tmdb-603");
    assert_eq!(m603["how"], "admin", "{m603}");
    assert_eq!(m603["by"], "operator", "{m603}");
    assert_eq!(m603["manifest"], b603_id.as_str());
    assert_eq!(m603["ingests"].as_array().unwrap().len(), 2, "{m603}");
    assert_eq!(movie(&list, "tmdb-604")["how"], "first_ingest");
    // Bad binds change nothing: an unknown manifest, another movie's, a bad movie id.
    let (ok, _, err) = t.cli(&["movie", "bind", "tmdb-603", "--manifest", &"ab".repeat(32)]);
    assert!(!ok, "{err}");
    let (ok, _, err) = t.cli(&["movie", "bind", "tmdb-604", "--manifest", &b603_id]);
    assert!(!ok && err.contains("tmdb-603"), "{err}");
    let (ok, _, err) = t.cli(&["movie", "bind", "Bad_Id", "--manifest", &b603_id]);
    assert!(!ok, "{err}");
    assert_eq!(page(&t, None).await["version"], 4);

    // Metrics: bound movies and announcements by outcome.
    let text = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("reelnet_tracker_bound_movies 3"), "{text}");
    assert!(
        text.contains("reelnet_tracker_ingest_announcements_total{outcome=\"bound\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("reelnet_tracker_ingest_announcements_total{outcome=\"bound_elsewhere\"} 1"),
        "{text}"
    );

    // While the tracker is stopped: bind back to A's ingest and list, from the store.
    t.terminate();
    let a603_id = a603.id().to_string();
    let (ok, out, err) = t.cli(&["movie", "bind", "tmdb-603", "--manifest", &a603_id]);
    assert!(ok, "{out}{err}");
    let list = movies_json(&t);
    assert_eq!(list["version"], 5);
    assert_eq!(movie(&list, "tmdb-603")["origin"], a.id.as_str());
    let (ok, out, _) = t.cli(&["movie", "list"]);
    assert!(
        ok && out.contains("tmdb-603") && out.contains("v5"),
        "{out}"
    );
    t.spawn().await;
    let p = page(&t, Some(4)).await;
    let after = verified(&doc, &p);
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].movie.as_str(), after[0].version), ("tmdb-603", 5));
    assert!(after[0].covers(&node_id(&a), &[1; 16]));
}

#[tokio::test]
async fn requests_defer_to_their_claimant_and_bound_movies_are_not_requested_again() {
    let t = Tracker::start_with("[requests]\nlease_secs = 2\n").await;
    let a = t.member(&["ingest"]).await;
    let b = t.member(&["ingest"]).await;
    let admin = access(&t.admin("alice@example.org", "a long password").await);
    let doc = t.network().await;
    let claim = |m: &Member| json!({ "node_id": m.id });

    // A holds the request for TMDb 900: B's announcement of it does not bind.
    let (s, req) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 900, "title": "Nine Hundred"})),
        )
        .await;
    assert_eq!(s, 201, "{req}");
    let (s, c) = t
        .node_post("/api/v1/requests/claim", Some(&a), claim(&a))
        .await;
    assert_eq!(s, 200, "{c}");
    let b900 = manifest(&b, "tmdb-900", 9, true);
    let (s, r) = announce(&t, &b, &b900).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r, json!({"binding": null, "bound_here": false}));
    assert_eq!(page(&t, None).await["version"], 0);

    // A's lease lapses and B takes the request over; B's done report binds the ingest it
    // announced.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, c) = t
        .node_post("/api/v1/requests/claim", Some(&b), claim(&b))
        .await;
    assert_eq!(s, 200, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let (s, r) = t
        .node_post(
            &format!("/api/v1/requests/{id}/done"),
            Some(&b),
            json!({"claim_token": c["claim_token"], "movie_id": "tmdb-900", "manifest": b900.id().to_string()}),
        )
        .await;
    assert_eq!((s, r["state"].as_str()), (200, Some("ready")), "{r}");
    let p = page(&t, None).await;
    let bound = verified(&doc, &p);
    assert_eq!(bound.len(), 1, "{p}");
    assert_eq!(bound[0].movie.as_str(), "tmdb-900");
    assert!(bound[0].covers(&node_id(&b), &[9; 16]));
    let (s, list) = t
        .call(Method::GET, "/api/v1/admin/movies", &admin, None)
        .await;
    assert_eq!(s, 200, "{list}");
    let m900 = movie(&list, "tmdb-900");
    assert_eq!(
        (m900["how"].as_str(), m900["by"].as_str()),
        (Some("request"), Some(id.as_str())),
        "{m900}"
    );

    // A request for a bound movie answers 409 with its id, and stores nothing.
    let before = t
        .call(Method::GET, "/api/v1/requests", &admin, None)
        .await
        .1;
    let (s, r) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 900})),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str(), r["movie_id"].as_str()),
        (409, Some("already_available"), Some("tmdb-900")),
        "{r}"
    );
    let after = t
        .call(Method::GET, "/api/v1/requests", &admin, None)
        .await
        .1;
    assert_eq!(before, after);
    // Other errors carry no movie id.
    let (s, r) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 0})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(r.get("movie_id").is_none(), "{r}");

    // The claimant's own announcement binds at once, on the request's behalf.
    let (s, _) = t
        .call(
            Method::POST,
            "/api/v1/requests",
            &admin,
            Some(json!({"tmdb_id": 901})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, c) = t
        .node_post("/api/v1/requests/claim", Some(&a), claim(&a))
        .await;
    assert_eq!((s, c["tmdb_id"].as_u64()), (200, Some(901)), "{c}");
    let (s, r) = announce(&t, &a, &manifest(&a, "tmdb-901", 11, true)).await;
    assert_eq!((s, r["bound_here"].as_bool()), (200, Some(true)), "{r}");
    let (_, list) = t
        .call(Method::GET, "/api/v1/admin/movies", &admin, None)
        .await;
    let m901 = movie(&list, "tmdb-901");
    assert_eq!(
        (m901["how"].as_str(), m901["by"].as_str()),
        (Some("request"), c["id"].as_str()),
        "{m901}"
    );
    // An admin re-points over HTTP; another movie's manifest and unknown ones are refused.
    let path = "/api/v1/admin/movies/tmdb-901/bind";
    let (s, r) = t
        .call(
            Method::POST,
            path,
            &admin,
            Some(json!({"manifest": b900.id().to_string()})),
        )
        .await;
    assert_eq!((s, r["error"].as_str()), (409, Some("wrong_movie")), "{r}");
    let (s, r) = t
        .call(
            Method::POST,
            path,
            &admin,
            Some(json!({"manifest": "00".repeat(32)})),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (404, Some("unknown_manifest")),
        "{r}"
    );
    let (s, r) = t
        .call(Method::POST, path, &admin, Some(json!({"manifest": "x"})))
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (400, Some("invalid_manifest")),
        "{r}"
    );
}
