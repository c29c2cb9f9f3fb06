//! A full disk, with real `reelnet-node` processes on loopback (see `common/mod.rs`).
//!
//! Two nodes, replication 2, a tracker. Node 2 first ingests a short movie ("held"), which
//! it keeps serving throughout. Then node 2 runs out of room twice:
//! 1. **ENOSPC** (as root): node 2's segment directory is a small tmpfs, filled up with a
//!    filler file. Skipped, with a message, when the test does not run as root.
//! 2. **Quota**: node 2's quota is lowered (admin API) to just above what it holds.
//!
//! Each time, while full: node 2's replication of a new movie from node 1 and a new ingest
//! on node 2 fail cleanly (the ingest's job says why; `reelnet_store_full_total{kind}`
//! counts the refused writes), nothing partial is left in the store (no temporary files,
//! no outboard without its segment, every file hashes to its name, no manifest of the
//! failed ingest), and node 2 still plays the movie it holds. Then room returns (the filler
//! removed, the quota raised) and node 2 recovers by itself, without a restart: the
//! replication completes and a new ingest works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{decode_whole, make_movie, master_url, merge_toml, wait_for, Cluster, TestNode, FAST};
use reelnet_node::admin::Status;
use reelnet_node::ingest::job::{IngestProgress, JobState};
use reelnet_proto::SegmentHash;

const PASSWORD: &str = "correct horse battery staple";

/// A tmpfs mounted for the test; unmounted (lazily, so a node still holding it open
/// cannot keep it) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes on `at` (root only; `None` otherwise).
    fn mount(at: &Path, size: u64) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs on {}", at.display());
        Some(Tmpfs(at.to_owned()))
    }

    /// Free bytes on it.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `reelnet_store_full_total{kind="<kind>"}` from the node's `/metrics`.
async fn full_total(n: &TestNode, kind: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", n.gateway_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("reelnet_store_full_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

fn complete(s: &Status, movie: &str) -> bool {
    s.manifests
        .iter()
        .any(|m| m.movie_id == movie && m.total_segments > 0 && m.held_segments == m.total_segments)
}

/// Waits until job `id` on `n` ends; returns its progress.
async fn job_end(n: &TestNode, id: u64) -> IngestProgress {
    wait_for(
        "the ingest job to end",
        Duration::from_secs(120),
        || async {
            let p = n.job(id).await;
            matches!(p.state, JobState::Done | JobState::Failed).then_some(p)
        },
    )
    .await
    .0
}

/// What is wrong in `n`'s segment store, if anything: a temporary file, an outboard
/// without its segment, a segment file that does not hash to its name, or a store that
/// counts other bytes than the segments on disk.
async fn store_problem(n: &TestNode) -> Option<String> {
    let dir = n.data_dir.join("segments");
    let mut bytes_on_disk = 0u64;
    for shard in std::fs::read_dir(&dir).unwrap() {
        let shard = shard.unwrap().path();
        if !shard.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&shard).unwrap() {
            let path = f.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.ends_with(".tmp") {
                return Some(format!("a temporary file: {}", path.display()));
            }
            if let Some(seg) = name.strip_suffix(".obao") {
                if !shard.join(seg).is_file() {
                    return Some(format!(
                        "an outboard without its segment: {}",
                        path.display()
                    ));
                }
                continue;
            }
            let Ok(data) = std::fs::read(&path) else {
                continue; // removed meanwhile
            };
            if SegmentHash::of(&data).to_string() != name {
                return Some(format!("{} does not hash to its name", path.display()));
            }
            bytes_on_disk += data.len() as u64;
        }
    }
    let used = n.status().await.store.used_bytes;
    (used != bytes_on_disk)
        .then(|| format!("the store counts {used} bytes, the segments on disk are {bytes_on_disk}"))
}

/// Nothing partial in `n`'s segment store. Writes retried meanwhile (placement keeps
/// trying) may show a temporary file for a moment: what is checked is that the store is
/// found clean within a few seconds, which a file left behind never is.
async fn check_store_clean(n: &TestNode) {
    let mut last = String::new();
    let clean = wait_for_clean(n, &mut last).await;
    assert!(clean, "the store is not clean: {last}");
}

async fn wait_for_clean(n: &TestNode, last: &mut String) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match store_problem(n).await {
            None => return true,
            Some(p) => *last = p,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Ingests `file` on `n` while it is full: the job fails, says there is no room, and
/// leaves no manifest of its movie behind.
async fn ingest_fails_for_room(n: &TestNode, file: &Path, title: &str) {
    let id = n.ingest(file, title).await;
    let p = job_end(n, id).await;
    assert_eq!(p.state, JobState::Failed, "{p:?}");
    let error = p.error.clone().unwrap_or_default();
    assert!(error.contains("no room"), "a clear error: {error}");
    if let Some(movie) = &p.movie_id {
        let s = n.status().await;
        assert!(
            !s.manifests.iter().any(|m| &m.movie_id == movie),
            "the failed ingest left a manifest"
        );
    }
    println!("ingest while full failed cleanly: {error}");
}

/// A token for `node` from the tracker (the account is made with the tracker's CLI).
async fn access_token(cluster: &Cluster, node: &TestNode) -> String {
    let email = "viewer@example.test";
    let (ok, out, err) =
        cluster
            .network
            .cli(&["user", "add", email, "--password", PASSWORD, "--verified"]);
    assert!(ok, "user add: {out}{err}");
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", cluster.network.url))
        .json(&serde_json::json!({
            "email": email, "password": PASSWORD, "resource": node.node_id,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {login}"))
        .to_owned()
}

/// `node` still plays `movie` (every frame decoded from its playback URL).
async fn plays(cluster: &Cluster, node: &TestNode, access: &str, movie: &str, secs: u32) {
    let master = master_url(&node.gateway_url(), access, movie).await;
    let decoded = decode_whole(&master)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs(30)));
    assert!(
        (decoded - f64::from(secs)).abs() < 1.0,
        "decoded {decoded:.2} s of {secs} s"
    );
}

async fn set_quota(n: &TestNode, bytes: u64) {
    let info = n.admin_info().unwrap();
    let res = reqwest::Client::new()
        .put(format!("{}/admin/v1/storage/quota", info.url))
        .bearer_auth(&info.token)
        .json(&serde_json::json!({ "quota_bytes": bytes }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// One round: while node 2 is full, node 1 ingests `title` (node 2 must fail to replicate
/// it) and node 2 tries to ingest another movie; then `make_room` and node 2 recovers.
/// `secs`: the length of the two new movies (segments are content-addressed: movies of one
/// length made by `make_movie` are the same bytes, so each round uses its own lengths).
async fn full_round(
    cluster: &Cluster,
    kind: &str,
    tag: &str,
    secs: (u32, u32),
    (access, held): (&str, &str),
    make_room: impl std::future::Future<Output = ()>,
) {
    let (one, two) = (cluster.node(1), cluster.node(2));
    let before = full_total(two, kind).await;
    let movie = make_movie(
        cluster.dir.path(),
        &format!("Far.{tag}.2026.mp4"),
        secs.0,
        240,
    );
    let far = one
        .ingest_and_wait(&movie, &format!("Far {tag}"), Duration::from_secs(120))
        .await
        .movie_id
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while full_total(two, kind).await <= before {
        if std::time::Instant::now() > deadline {
            let s = two.status().await;
            panic!(
                "node 2 did not fail storing a replica ({kind} full): store {:?}, manifests {:?}\n{}",
                s.store,
                s.manifests,
                two.log_tail(60)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!complete(&two.status().await, &far), "cannot be complete");
    check_store_clean(two).await;
    let own = make_movie(
        cluster.dir.path(),
        &format!("Own.{tag}.2026.mp4"),
        secs.1,
        240,
    );
    ingest_fails_for_room(two, &own, &format!("Own {tag}")).await;
    check_store_clean(two).await;
    println!("{kind} full: replication and ingest failed cleanly");
    plays(cluster, two, access, held, 4).await;
    println!("{kind} full: node 2 still plays what it holds");

    make_room.await;
    wait_for(
        "node 2 to complete the replica by itself",
        Duration::from_secs(60),
        || async { complete(&two.try_status().await.ok()?, &far).then_some(()) },
    )
    .await;
    two.ingest_and_wait(&own, &format!("Own {tag}"), Duration::from_secs(120))
        .await;
    check_store_clean(two).await;
    println!("{kind}: room returned, node 2 recovered without a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_or_quota_fails_jobs_cleanly_keeps_playback_and_recovers_by_itself() {
    let mut cluster = Cluster::start(
        2,
        &merge_toml(
            FAST,
            "[storage]\nreplication = 2\n[tracker]\nissuer = \"test-tracker\"\n",
        ),
    )
    .await;
    // Node 2's segments on a small tmpfs (root), mounted while it is stopped.
    let segments = cluster.node(2).data_dir.join("segments");
    cluster.node_mut(2).terminate();
    let _ = std::fs::remove_dir_all(&segments);
    let tmpfs = Tmpfs::mount(&segments, 16 << 20);
    if tmpfs.is_none() {
        println!("SKIPPED the ENOSPC round: not root (cannot mount a tmpfs); the quota round runs");
        std::fs::create_dir_all(&segments).unwrap();
    }
    cluster.node_mut(2).start().await;
    cluster.wait_live(2, Duration::from_secs(30)).await;

    let held_file = make_movie(cluster.dir.path(), "Held.2026.mp4", 4, 240);
    let held = cluster
        .node(2)
        .ingest_and_wait(&held_file, "Held", Duration::from_secs(120))
        .await
        .movie_id
        .unwrap();
    let access = access_token(&cluster, cluster.node(2)).await;
    plays(&cluster, cluster.node(2), &access, &held, 4).await;

    if let Some(fs) = &tmpfs {
        // Fill the tmpfs up to 48 KiB of free space: less than any media segment.
        let filler = fs.0.join("filler");
        let fill = fs.free().saturating_sub(48 << 10);
        std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
        let filler_path = filler.clone();
        full_round(
            &cluster,
            "disk",
            "Enospc",
            (10, 12),
            (&access, &held),
            async move {
                std::fs::remove_file(&filler_path).unwrap();
            },
        )
        .await;
    }

    // The quota: just above what node 2 holds now.
    let two = cluster.node(2);
    let used = two.status().await.store.used_bytes;
    set_quota(two, used + (48 << 10)).await;
    full_round(
        &cluster,
        "quota",
        "Quota",
        (14, 16),
        (&access, &held),
        set_quota(two, 50 << 30),
    )
    .await;

    cluster.node_mut(2).terminate();
    drop(tmpfs);
}
