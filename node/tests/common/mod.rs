//! A harness for tests with real `reelnet-node` processes on loopback.
//!
//! [`Cluster::start`] starts N nodes, each with its own temporary data directory, its
//! gateway and QUIC service on port 0 (the addresses read from what the node prints and
//! reports; a restarted node binds the same ports again, so it comes back at the same
//! addresses), its p2p port picked before start (see [`TestNode::p2p_port`]), node 1 as
//! everyone's bootstrap peer, mdns off, and an optional extra TOML snippet (e.g. [`FAST`]); it waits
//! for `/healthz` on each. A [`TestNode`] talks to its node's loopback admin API through the
//! `admin.json` the node writes in its data directory ([`TestNode::status`],
//! [`TestNode::ingest`]), can be killed with SIGKILL ([`TestNode::kill9`]), stopped with
//! SIGTERM ([`TestNode::terminate`]) and restarted on the same data directory. Each node's
//! log goes to `node-N.log` beside the data directories ([`TestNode::log_tail`] for
//! assertion messages). [`make_movie`] makes a small H.264/AAC test movie with the ffmpeg
//! CLI.
//!
//! Include with `mod common;`. The tracker binary, when a test needs it, is
//! [`tracker_bin`] (built by the workspace test run).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reelnet_node::admin::{AdminInfo, Status};
use reelnet_node::ingest::job::{IngestProgress, JobState};

pub use reelnet_testkit::wait_for;

pub const NODE_BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");

/// The tracker binary (built beside the node binary by the workspace test run).
pub fn tracker_bin() -> PathBuf {
    Path::new(NODE_BIN).with_file_name("reelnet-tracker")
}

/// Settings for quick tests: records live 4 s and are republished every second (a killed
/// node leaves the placement within ~4 s), 2-second segments, one 240p rung.
pub const FAST: &str = r#"
[p2p]
record_ttl_secs = 4
republish_secs = 1

[ingest]
segment_secs = 2
preset = "ultrafast"

[[ingest.rungs]]
name = "240p"
height = 240
video_bitrate = 300000
audio_bitrate = 64000
"#;

/// A loopback TCP port that was free a moment ago (racy; see [`reelnet_testkit::free_port`]).
/// Only for ports that must be known before a process starts.
pub fn free_tcp_port() -> u16 {
    reelnet_testkit::free_port()
}

/// One `reelnet-node` process (or a stopped one that can be restarted).
pub struct TestNode {
    /// 1-based position in the cluster.
    pub index: usize,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    /// The gateway's address: port 0 until the first start, then the port it got.
    pub gateway: SocketAddr,
    /// The libp2p TCP port, picked before the first start ([`free_tcp_port`], racy): other
    /// nodes bootstrap from it and the node reports it only in its log.
    pub p2p_port: u16,
    /// The QUIC service's address: port 0 until the first start, then the port it got.
    pub quic: SocketAddr,
    pub bootstrap: Vec<String>,
    /// The node id, known after the first start.
    pub node_id: String,
    /// A command the node runs under (e.g. `faketime -f +5m`), empty for none.
    pub wrapper: Vec<String>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl TestNode {
    /// Prepares (does not start) node `index` under `root` with `extra_toml` appended to
    /// the base config.
    pub fn new(root: &Path, index: usize, bootstrap: Vec<String>, extra_toml: &str) -> Self {
        let data_dir = root.join(format!("node-{index}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let config_path = root.join(format!("node-{index}.toml"));
        let base = "[p2p]\nmdns = false\n";
        std::fs::write(&config_path, merge_toml(base, extra_toml)).unwrap();
        Self {
            index,
            log_path: root.join(format!("node-{index}.log")),
            data_dir,
            config_path,
            gateway: SocketAddr::from(([127, 0, 0, 1], 0)),
            p2p_port: free_tcp_port(),
            quic: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap,
            node_id: String::new(),
            wrapper: Vec::new(),
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// The node's libp2p address, for `--bootstrap`.
    pub fn p2p_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port)
    }

    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Starts the process and waits until `/healthz` answers (30 s at most). The first start
    /// binds the gateway and QUIC service to port 0 and learns their addresses (the line the
    /// node prints, its own catalog record); later starts bind the same ports again.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.index);
        let _ = std::fs::remove_file(self.data_dir.join("admin.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let from = log.metadata().unwrap().len();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(NODE_BIN);
                c
            }
            None => Command::new(NODE_BIN),
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.gateway.to_string())
            .arg("--quic")
            .arg(self.quic.to_string())
            .arg("--p2p")
            .arg(self.p2p_addr());
        for b in &self.bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        // Its own process group: a wrapper (`env … faketime … reelnet-node`) forks the
        // node, so signals go to the whole group or the node outlives the test.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let log_path = self.log_path.clone();
        let printed = reelnet_testkit::read_line_after(
            &log_path,
            from,
            "listening: gateway http://",
            Duration::from_secs(30),
            || self.is_running(),
        )
        .await;
        self.gateway = printed
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("node {}: no address in {printed:?}", self.index));
        let url = format!("{}/healthz", self.gateway_url());
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    let v: serde_json::Value = r.json().await.unwrap();
                    self.node_id = v["node_id"].as_str().unwrap().to_owned();
                    if self.admin_info().is_some() {
                        break;
                    }
                }
            }
            if !self.is_running() {
                panic!(
                    "node {} exited during start-up:\n{}",
                    self.index,
                    self.log_tail(40)
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "node {} did not become healthy:\n{}",
                self.index,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.quic.port() == 0 {
            // The QUIC address the node got: its own record (published at once) names it.
            let what = format!("node {} to list its own record", self.index);
            let (quic, _) = wait_for(&what, Duration::from_secs(30), || async {
                let s = self.try_status().await.ok()?;
                let me = s.live_nodes.iter().find(|n| n.node_id == self.node_id)?;
                me.quic_addr.parse::<SocketAddr>().ok()
            })
            .await;
            self.quic = quic;
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(&c, "-KILL");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (10 s at most, then SIGKILL) for the process to exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(&c, "-TERM");
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    signal_group(&c, "-KILL");
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.wait();
        }
    }

    /// Stops (SIGTERM) if running, then starts again on the same data directory and ports.
    pub async fn restart(&mut self) {
        self.terminate();
        self.start().await;
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The admin API's URL and token, from `admin.json`.
    pub fn admin_info(&self) -> Option<AdminInfo> {
        reelnet_node::admin::read_info(&self.data_dir)
    }

    fn admin(&self) -> AdminInfo {
        self.admin_info()
            .unwrap_or_else(|| panic!("node {} has no admin.json", self.index))
    }

    /// `GET /admin/v1/status`.
    pub async fn status(&self) -> Status {
        self.try_status()
            .await
            .unwrap_or_else(|e| panic!("node {} status: {e}", self.index))
    }

    /// `GET /admin/v1/status`, or why not.
    pub async fn try_status(&self) -> Result<Status, String> {
        let info = self.admin_info().ok_or("no admin.json")?;
        let res = self
            .http
            .get(format!("{}/admin/v1/status", info.url))
            .bearer_auth(&info.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("status {}", res.status()));
        }
        res.json().await.map_err(|e| e.to_string())
    }

    /// A stored signed manifest, verified (`GET /admin/v1/manifests/{id}`).
    pub async fn manifest(
        &self,
        id: &str,
    ) -> Option<(reelnet_proto::SignedManifest, reelnet_proto::Manifest)> {
        let info = self.admin();
        let res = self
            .http
            .get(format!("{}/admin/v1/manifests/{id}", info.url))
            .bearer_auth(&info.token)
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 404 {
            return None;
        }
        let bytes = res.error_for_status().unwrap().bytes().await.unwrap();
        let signed = reelnet_proto::SignedManifest::decode(&bytes).unwrap();
        let manifest = signed.verify().unwrap();
        Some((signed, manifest))
    }

    /// Hands an ingest job for `file` to the node; returns the job id.
    pub async fn ingest(&self, file: &Path, title: &str) -> u64 {
        let info = self.admin();
        let res = self
            .http
            .post(format!("{}/admin/v1/ingest", info.url))
            .bearer_auth(&info.token)
            .json(&serde_json::json!({
                "source": file.to_str().unwrap(),
                "title": title,
                "year": 2026,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202, "ingest refused");
        let v: serde_json::Value = res.json().await.unwrap();
        v["id"].as_u64().unwrap()
    }

    /// A job's progress.
    pub async fn job(&self, id: u64) -> IngestProgress {
        let info = self.admin();
        self.http
            .get(format!("{}/admin/v1/ingest/{id}", info.url))
            .bearer_auth(&info.token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Ingests `file` and waits (up to `limit`) until the job is done; panics if it fails.
    pub async fn ingest_and_wait(
        &self,
        file: &Path,
        title: &str,
        limit: Duration,
    ) -> IngestProgress {
        let id = self.ingest(file, title).await;
        let (p, _) = wait_for("ingest job to finish", limit, || async {
            let p = self.job(id).await;
            matches!(p.state, JobState::Done | JobState::Failed).then_some(p)
        })
        .await;
        assert_eq!(p.state, JobState::Done, "ingest failed: {:?}", p.error);
        p
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to the process group `child` leads (every node starts
/// in its own group: see [`TestNode::start`]).
fn signal_group(child: &std::process::Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{}", child.id())])
        .status();
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Appends `extra` to `base`, merging a table both define (so `[p2p]` may appear in both).
pub fn merge_toml(base: &str, extra: &str) -> String {
    let mut doc: toml::Table = base.parse().expect("base TOML parses");
    let extra: toml::Table = extra.parse().expect("extra TOML parses");
    for (k, v) in extra {
        match (doc.get_mut(&k), v) {
            (Some(toml::Value::Table(t)), toml::Value::Table(e)) => t.extend(e),
            (_, v) => {
                doc.insert(k, v);
            }
        }
    }
    toml::to_string(&doc).unwrap()
}

/// The network a cluster's nodes join: a tracker they enroll with (every node needs a
/// membership certificate to take part).
pub struct Network {
    pub url: String,
    /// A config naming the tracker's data directory, for `reelnet-tracker node …`.
    pub config: PathBuf,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Network {
    /// Starts a `reelnet-tracker` process (port 0) with `extra` TOML in its config.
    pub async fn start(extra: &str) -> Network {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tracker.toml");
        std::fs::write(
            &config,
            merge_toml(
                &format!(
                    "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nissuer = \"test-tracker\"\n[auth]\nregistrations_per_address_per_hour = 10000\nmails_per_address_per_hour = 10000\n",
                    dir.path().join("data")
                ),
                extra,
            ),
        )
        .unwrap();
        let log_path = dir.path().join("tracker.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(tracker_bin())
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let printed = reelnet_testkit::read_line_after(
            &log_path,
            0,
            "reelnet-tracker listening: ",
            Duration::from_secs(30),
            || child.try_wait().ok().flatten().is_none(),
        )
        .await;
        Network {
            url: printed.trim().to_owned(),
            config,
            child: Some(child),
            _dir: Some(dir),
        }
    }

    /// A tracker running in this test's process, by its data directory and URL.
    pub fn of(data_dir: &Path, url: &str) -> Network {
        let config = data_dir.with_extension("operator.toml");
        std::fs::write(&config, format!("data_dir = {data_dir:?}\n")).unwrap();
        Network {
            url: url.to_owned(),
            config,
            child: None,
            _dir: None,
        }
    }

    /// Runs `reelnet-tracker --config <this> ARGS`: success, stdout, stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(tracker_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A one-use invite for `roles`.
    pub fn invite(&self, roles: &[&str]) -> String {
        let mut args = vec!["node", "invite"];
        for r in roles {
            args.extend(["--role", r]);
        }
        let (ok, out, err) = self.cli(&args);
        assert!(ok, "node invite: {out}{err}");
        out.lines().last().unwrap().trim().to_owned()
    }

    /// Config joining this network with a fresh invite of `roles`; membership refreshed
    /// every second.
    pub fn join_toml(&self, roles: &[&str]) -> String {
        format!(
            "[tracker]\nurl = \"{}\"\ninvite = \"{}\"\nmembership_refresh_secs = 1\n",
            self.url,
            self.invite(roles)
        )
    }
}

/// A member of a [`Network`] running in the test process (for a fetcher or a swarm of the
/// test's own): its key and membership; keep it alive while it is used.
pub struct InProcessMember {
    pub key: ed25519_dalek::SigningKey,
    pub membership: reelnet_node::membership::Membership,
    _dir: tempfile::TempDir,
    cancel: tokio_util::sync::CancellationToken,
}

impl Drop for InProcessMember {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Network {
    /// Enrolls a fresh key in this network with `roles`, in this process.
    pub async fn member(&self, roles: &[&str]) -> InProcessMember {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let dir = tempfile::tempdir().unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut mc = reelnet_node::membership::MembershipConfig::new(&self.url, dir.path());
        mc.invite = Some(self.invite(roles));
        let (membership, _t) =
            reelnet_node::membership::Membership::start(mc, key.clone(), cancel.clone()).await;
        assert!(
            membership.own().is_some(),
            "{:?}",
            membership.state().problem
        );
        InProcessMember {
            key,
            membership,
            _dir: dir,
            cancel,
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// N nodes on loopback in one network; node 1 is everyone's bootstrap peer.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
    pub network: Network,
}

impl Cluster {
    /// Starts a tracker and `n` nodes (replica and ingest members) with `extra_toml` (for
    /// all) and waits until each is healthy.
    pub async fn start(n: usize, extra_toml: &str) -> Self {
        Self::start_with(n, |_| extra_toml.to_owned()).await
    }

    /// Like [`start`](Self::start) with a config snippet per node (`index` is 1-based).
    pub async fn start_with(n: usize, extra: impl Fn(usize) -> String) -> Self {
        Self::start_in(Network::start("").await, n, extra).await
    }

    /// Like [`start_with`](Self::start_with) in `network`. A node whose snippet has no
    /// `invite` joins as a replica and ingest member.
    pub async fn start_in(network: Network, n: usize, extra: impl Fn(usize) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes: Vec<TestNode> = Vec::new();
        for i in 1..=n {
            let bootstrap = nodes
                .first()
                .map(|n| vec![n.p2p_addr()])
                .unwrap_or_default();
            let own = extra(i);
            let snippet = if own.contains("invite") {
                own
            } else {
                merge_toml(&network.join_toml(&["replica", "ingest"]), &own)
            };
            let mut node = TestNode::new(dir.path(), i, bootstrap, &snippet);
            node.start().await;
            nodes.push(node);
        }
        Self {
            dir,
            nodes,
            network,
        }
    }

    /// Waits until every running node sees `n` live nodes (itself included).
    pub async fn wait_live(&self, n: usize, limit: Duration) -> Duration {
        let (_, took) = wait_for(
            &format!("every node to see {n} live nodes"),
            limit,
            || async {
                for node in &self.nodes {
                    if node.child.is_none() {
                        continue;
                    }
                    match node.try_status().await {
                        Ok(s) if s.live_nodes.len() == n => {}
                        _ => return None,
                    }
                }
                Some(())
            },
        )
        .await;
        took
    }

    pub fn node(&self, index: usize) -> &TestNode {
        &self.nodes[index - 1]
    }

    pub fn node_mut(&mut self, index: usize) -> &mut TestNode {
        &mut self.nodes[index - 1]
    }

    /// Every node's log tail, for assertion messages.
    pub fn logs(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.index, n.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `dir/name`: a `secs`-second H.264/AAC movie, `height` lines high (16:9), 25 fps,
/// a keyframe every 2 s.
pub fn make_movie(dir: &Path, name: &str, secs: u32, height: u32) -> PathBuf {
    let path = dir.join(name);
    let width = (height * 16 / 9) & !1;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={width}x{height}:rate=25:duration={secs}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "300k",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-movflags",
        "+faststart",
        path.to_str().unwrap(),
    ]);
    path
}

/// The playback URL `base`'s `/play` gives the holder of `access` for `movie`.
pub async fn master_url(base: &str, access: &str, movie: &str) -> String {
    let play: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/movies/{movie}/play"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    play["master_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no master_url: {play}"))
        .to_owned()
}

/// Decodes every frame of the first video and audio stream at `url` (e.g. a playback
/// URL) with the ffmpeg CLI; answers the seconds decoded, or ffmpeg's messages when it
/// failed or reported decode errors.
pub async fn decode_whole(url: &str) -> Result<f64, String> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", url])
        .args(["-map", "0:v:0", "-map", "0:a:0"])
        .args(["-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .await
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!("ffmpeg ({}): {stderr}", out.status));
    }
    let progress = String::from_utf8_lossy(&out.stdout);
    let decoded_us: u64 = progress
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse().ok())
        .next()
        .unwrap_or(0);
    Ok(decoded_us as f64 / 1e6)
}
