//! Movie authority with real processes: a tracker and three nodes. A movie ingested on node
//! 1 is bound to it at the tracker; node 2 then ingests a different clip under the same
//! movie id — every gateway keeps listing and playing the original. An admin re-points the
//! movie to node 2's ingest with `reelnet-tracker movie bind`: a viewer in the middle of
//! the original keeps playing it, new viewers get the new one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{make_movie, wait_for, Cluster, TestNode, FAST};
use reelnet_proto::{Claims, MovieId, Tier};
use serde_json::Value;

/// The movie detail `node` serves for `movie`.
async fn detail(node: &TestNode, movie: &str) -> Option<Value> {
    let url = format!("{}/api/v1/movies/{movie}", node.gateway_url());
    let res = reqwest::get(&url).await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    res.json().await.ok()
}

/// A gauge from `node`'s `/metrics`.
async fn gauge(node: &TestNode, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", node.gateway_url()))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// A playback token of `node` for `movie` (signed with the node's own playback key, as
/// `/play` would after checking an access token).
fn playback_token(node: &TestNode, movie: &str) -> String {
    let tokens =
        reelnet_node::gateway::token::PlaybackTokens::load_or_create(&node.data_dir, 3600).unwrap();
    let now = reelnet_node::unix_now();
    let claims = Claims {
        sub: "viewer".into(),
        email: "viewer@example.test".into(),
        tier: Tier::Free,
        tier_until: None,
        email_verified: true,
        role: Default::default(),
        exp: now + 600,
        iat: now,
        iss: "reelnet-tracker".into(),
        aud: "reelnet".into(),
        jti: "j".into(),
        sid: None,
        scope: None,
    };
    tokens
        .issue(&claims, &MovieId::new(movie).unwrap(), 3600)
        .unwrap()
        .0
}

/// The non-comment lines of a playlist.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

async fn get_text(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_never_replaces_a_bound_movie_and_a_repoint_keeps_viewers_playing() {
    // A short grace for the re-pointed source, so the test also sees it released.
    let extra = format!("{FAST}\n[catalog]\nretired_grace_secs = 5\n");
    let cluster = Cluster::start(3, &extra).await;
    cluster.wait_live(3, Duration::from_secs(30)).await;
    let original_file = make_movie(cluster.dir.path(), "Authority.A.mp4", 8, 240);
    let impostor_file = make_movie(cluster.dir.path(), "Authority.B.mp4", 4, 240);

    // The original: ingested on node 1, bound at the tracker when complete.
    let p = cluster
        .node(1)
        .ingest_and_wait(&original_file, "Authority", Duration::from_secs(120))
        .await;
    let movie = p.movie_id.unwrap();
    let original = p.manifest_id.unwrap();
    wait_for(
        "every node to know the bound original",
        Duration::from_secs(20),
        || {
            let (cluster, movie) = (&cluster, &movie);
            async move {
                for n in &cluster.nodes {
                    gauge(n, "reelnet_bound_movies")
                        .await
                        .filter(|v| *v >= 1.0)?;
                    let d = detail(n, movie).await?;
                    (d["availability"]["state"] == "complete").then_some(())?;
                }
                Some(())
            }
        },
    )
    .await;
    let original_duration = detail(cluster.node(3), &movie).await.unwrap()["duration_s"]
        .as_f64()
        .unwrap();

    // A viewer starts the original on node 3.
    let base = cluster.node(3).gateway_url();
    let token = playback_token(cluster.node(3), &movie);
    let (status, master) = get_text(&format!("{base}/hls/{movie}/master.m3u8?token={token}")).await;
    assert_eq!(status, 200, "{master}");
    assert!(master.contains(&original), "{master}");
    let variant = format!("{base}/hls/{movie}/{}", uris(&master)[0]);
    let (status, playlist) = get_text(&variant).await;
    assert_eq!(status, 200, "{playlist}");
    let segments = uris(&playlist);
    assert!(segments.len() >= 3, "{playlist}");
    let variant_dir = variant.rsplit_once('/').unwrap().0.to_owned();
    let segment_url = |s: &str| {
        if s.starts_with('/') {
            format!("{base}{s}")
        } else {
            format!("{variant_dir}/{s}")
        }
    };
    let (status, body) = get_text(&segment_url(&segments[0])).await;
    assert_eq!(status, 200, "{body}\n{}", cluster.logs(30));

    // Node 2 ingests another clip under the same movie id (same title and year): refused
    // as a source of this movie everywhere; the original keeps its place.
    let p = cluster
        .node(2)
        .ingest_and_wait(&impostor_file, "Authority", Duration::from_secs(120))
        .await;
    assert_eq!(p.movie_id.as_deref(), Some(movie.as_str()));
    let impostor = p.manifest_id.unwrap();
    wait_for(
        "node 2 to refuse its own clip as the movie's source",
        Duration::from_secs(20),
        || {
            let n = cluster.node(2);
            async move {
                gauge(n, "reelnet_catalog_rejected_other_lineage")
                    .await
                    .filter(|v| *v >= 1.0)
            }
        },
    )
    .await;
    for n in &cluster.nodes {
        let d = detail(n, &movie).await.unwrap();
        assert_eq!(
            d["duration_s"].as_f64(),
            Some(original_duration),
            "node {}: {d}",
            n.index
        );
        let (_, m) = get_text(&format!(
            "{}/hls/{movie}/master.m3u8?token={}",
            n.gateway_url(),
            playback_token(n, &movie)
        ))
        .await;
        assert!(
            m.contains(&original) && !m.contains(&impostor),
            "node {}: {m}",
            n.index
        );
    }
    // The tracker kept the binding and knows node 2's ingest.
    let (ok, out, err) = cluster.network.cli(&["movie", "list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let entry = list["movies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["movie"] == movie.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(entry["manifest"], original.as_str(), "{entry}");

    // The admin re-points the movie to node 2's ingest.
    let (ok, out, err) = cluster
        .network
        .cli(&["movie", "bind", &movie, "--manifest", &impostor]);
    assert!(ok, "{out}{err}");
    let mut listed = false;
    for _ in 0..300 {
        let d = detail(cluster.node(3), &movie).await;
        if d.and_then(|d| d["duration_s"].as_f64())
            .is_some_and(|s| s < original_duration)
        {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listed,
        "node 3 never listed the new source\n{}",
        cluster.logs(40)
    );
    // The viewer in the middle of the original keeps playing it: its variant playlist
    // and every remaining segment still come.
    let (status, again) = get_text(&variant).await;
    assert_eq!(status, 200, "{again}");
    for s in &segments[1..] {
        let res = reqwest::get(segment_url(s)).await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "segment {s} of the original");
        assert!(!res.bytes().await.unwrap().is_empty());
    }
    // A new viewer gets the new source.
    let (_, fresh) = get_text(&format!("{base}/hls/{movie}/master.m3u8?token={token}")).await;
    assert!(
        fresh.contains(&impostor) && !fresh.contains(&original),
        "{fresh}"
    );

    // After the grace period the replica that held the original for the network lets it
    // go (its segments become evictable cache); the origin keeps its own ingest.
    wait_for(
        "the original's replica to release it",
        Duration::from_secs(30),
        || {
            let (cluster, original) = (&cluster, &original);
            async move {
                for n in &cluster.nodes[1..] {
                    let s = n.try_status().await.ok()?;
                    if s.manifests.iter().any(|m| &m.id == original && m.released) {
                        return Some(());
                    }
                }
                None
            }
        },
    )
    .await;
    let s = cluster.node(1).status().await;
    assert!(
        s.manifests.iter().any(|m| m.id == original && !m.released),
        "the origin keeps its ingest"
    );
}
