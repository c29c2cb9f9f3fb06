//! Nothing acknowledged is lost: clients write progress and watch-later entries in a loop,
//! the tracker is killed with SIGKILL mid-stream, restarted, and every acknowledged write
//! is there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{access, wait_for, Tracker};
use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

/// A writer's last acknowledged position and its acknowledged watch-later entries.
type Acked = (f64, Vec<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let mut t = Tracker::start().await;
    let token = access(&t.user("durable@example.org", "durable password").await);
    let base = t.base.clone();
    const WRITERS: usize = 8;
    // Per writer: the last acknowledged position and the watch-later entries acknowledged.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::new(Mutex::new(vec![(0.0, Vec::new()); WRITERS]));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (token, base, acked) = (token.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 1u32.. {
                let pos = f64::from(i);
                let res = http
                    .put(format!("{base}/api/v1/me/progress/tmdb-{}", 1000 + w))
                    .bearer_auth(&token)
                    .json(&json!({"position_s": pos, "duration_s": 80000.0}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => acked.lock().await[w].0 = pos,
                    Ok(r) => {
                        eprintln!("writer {w}: {}", r.status());
                        break;
                    }
                    Err(_) => break, // the tracker is gone
                }
                if i % 10 == 0 {
                    let movie = format!("local-{w:02}{i:014}");
                    let res = http
                        .put(format!("{base}/api/v1/me/watchlist/{movie}"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => acked.lock().await[w].1.push(movie),
                        _ => break,
                    }
                }
            }
        }));
    }
    // Kill mid-stream once the writers have made real progress (polled: how long that takes
    // depends on the machine's load; it is reported).
    let (_, took) = wait_for(
        "the writers to get 100 positions acknowledged",
        Duration::from_secs(60),
        || async {
            let total: f64 = acked.lock().await.iter().map(|(p, _)| p).sum();
            (total > 100.0).then_some(())
        },
    )
    .await;
    println!("killing the tracker after {took:?} of writes");
    t.kill9();
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    let total: f64 = acked.iter().map(|(p, _)| p).sum();
    assert!(
        total > 50.0,
        "the writers made too little progress to mean anything: {total}"
    );

    t.spawn().await;
    let (_, list) = t
        .call(Method::GET, "/api/v1/me/watchlist", &token, None)
        .await;
    let listed: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["movie_id"].as_str().unwrap().to_owned())
        .collect();
    for (w, (pos, movies)) in acked.iter().enumerate() {
        let (s, p) = t
            .call(
                Method::GET,
                &format!("/api/v1/me/progress/tmdb-{}", 1000 + w),
                &token,
                None,
            )
            .await;
        assert_eq!(
            s, 200,
            "writer {w} acknowledged {pos} but nothing is stored"
        );
        let stored = p["position_s"].as_f64().unwrap();
        assert!(
            stored >= *pos,
            "writer {w}: acknowledged {pos}, stored {stored}"
        );
        for m in movies {
            assert!(
                listed.contains(m),
                "acknowledged watch-later entry {m} is lost"
            );
        }
    }
    eprintln!(
        "acknowledged {total} progress writes and {} watch-later entries before SIGKILL; all present",
        acked.iter().map(|(_, m)| m.len()).sum::<usize>()
    );
}
