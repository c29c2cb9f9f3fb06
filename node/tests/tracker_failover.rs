//! A node with two tracker replicas (`[tracker] url = [A, B]`), over real parts: a
//! PostgreSQL started by the test, two `reelnet-tracker` processes on one database (each
//! with its own data directory; they share the signing and network keys through the
//! database), one node on
//! loopback, and a viewer signed in through the node the way a browser does (the node's
//! `/auth/login`, the tracker's sign-in and consent pages, the node's callback and
//! `/auth/session`).
//!
//! - Before anything fails the viewer reads and writes watch-later and progress through
//!   the node (all on A).
//! - A is killed with SIGKILL. Every one of the viewer's next requests through the node is
//!   answered 2xx (none is in flight at the kill, so none may fail): the first one finds A
//!   gone and is sent again to B within the same request; the node moves to B once
//!   (`reelnet_tracker_switches_total 1`, `reelnet_tracker_replica 1`). What was written
//!   on A is read back through B (one database), and the session refresh works on B.
//! - The node restarted with the dead A still first in its list comes up, serves the
//!   viewer, and, once A is back, its probe moves it back to A.
//!
//! Needs PostgreSQL (scripts/setup.sh installs it): without it the test fails, it does not
//! skip. Needs the tracker binary beside the node binary (`cargo build -p reelnet-tracker`;
//! the workspace test run builds it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tracker/tests/common/browser.rs"]
mod browser;

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::Browser;
use reelnet_node::config::NodeConfig;
use reelnet_node::Node;
use serde_json::{json, Value};

const ISSUER: &str = "test-tracker";
const EMAIL: &str = "viewer@example.org";
const PASSWORD: &str = "a long password for the viewer";

fn tracker_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_reelnet-node")).with_file_name("reelnet-tracker");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p reelnet-tracker`",
        bin.display()
    );
    bin
}

/// One `reelnet-tracker` process on the shared database.
struct Replica {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    url: String,
    child: Option<Child>,
}

impl Replica {
    /// Writes the config (the keys come from the database: the first replica stores them).
    fn new(db_url: &str) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&data)
            .unwrap();
        let config = dir.path().join("tracker.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nissuer = \"{ISSUER}\"\n\
                 web_url = \"http://127.0.0.1:9\"\n\
                 [storage]\nengine = \"postgres\"\nurl = \"{db_url}\"\npool_size = 4\n\
                 connect_timeout_secs = 5\nstatement_timeout_secs = 10\n\
                 [rooms]\npremium_only = false\n\
                 [smtp]\nport = 9\ntls = \"none\"\n"
            ),
        )
        .unwrap();
        Replica {
            dir,
            config,
            port: 0,
            url: String::new(),
            child: None,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tracker.log")
    }

    /// Starts the process (on the port of its first start, when restarted) and waits for
    /// `/healthz`.
    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let from = log.metadata().unwrap().len();
        let child = Command::new(tracker_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let printed = reelnet_testkit::read_line_after(
            &self.log_path(),
            from,
            "reelnet-tracker listening: http://",
            Duration::from_secs(30),
            || {
                self.child
                    .as_mut()
                    .is_some_and(|c| c.try_wait().ok().flatten().is_none())
            },
        )
        .await;
        let addr: SocketAddr = printed.trim().parse().unwrap();
        self.port = addr.port();
        self.url = format!("http://{addr}");
        let url = format!("{}/healthz", self.url);
        reelnet_testkit::wait_for("the tracker's /healthz", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// `reelnet-tracker --config <this> ARGS` (through the running tracker): stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(tracker_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reelnet-tracker {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A node of the network, in this process, with `trackers` as its replicas.
fn node_config(data_dir: &Path, trackers: &[&str], invite: &str, probe_secs: u64) -> NodeConfig {
    let mut c = NodeConfig {
        data_dir: data_dir.to_owned(),
        ..NodeConfig::default()
    };
    c.gateway.listen = "127.0.0.1:0".parse().unwrap();
    c.p2p.listen = "/ip4/127.0.0.1/tcp/0".to_owned();
    c.p2p.mdns = false;
    c.quic.listen = "127.0.0.1:0".parse().unwrap();
    c.tracker.url =
        reelnet_node::config::TrackerUrls(trackers.iter().map(|u| (*u).to_owned()).collect());
    c.tracker.issuer = ISSUER.to_owned();
    c.tracker.invite = invite.to_owned();
    c.tracker.probe_secs = probe_secs;
    c
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs the viewer in through the node at `node_url` as a browser does; answers the
/// node's browser (its cookie jar holds the refresh cookie) and an access token.
async fn sign_in(node_url: &str, tracker_url: &str) -> (Browser, String) {
    let nb = Browser::new(node_url);
    let p = nb.get("/auth/login?return=/").await;
    assert_eq!(p.status, 302, "{}", p.body);
    let authorize = p.location().unwrap();
    assert!(authorize.starts_with(tracker_url), "{authorize}");
    let tb = Browser::new(tracker_url);
    let p = tb.get(&authorize).await;
    assert_eq!(p.status, 302, "{}", p.body);
    let next = query_param(&p.location().unwrap(), "next").unwrap();
    let p = tb.sign_in(EMAIL, PASSWORD, &next).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let consent = tb.get(&next).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let p = tb.consent(&consent, "allow").await;
    assert_eq!(p.status, 303, "{}", p.body);
    let back = p.location().unwrap();
    assert!(
        back.starts_with(&format!("{node_url}/auth/callback?")),
        "{back}"
    );
    let p = nb.get(&back).await;
    assert_eq!(p.status, 302, "{}", p.body);
    let token = session(&nb).await;
    (nb, token)
}

/// `POST /auth/session` with the browser's refresh cookie: a fresh access token.
async fn session(nb: &Browser) -> String {
    let p = nb.post("/auth/session", &[]).await;
    assert_eq!(p.status, 200, "/auth/session: {}", p.body);
    let body: Value = serde_json::from_str(&p.body).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A viewer's request through the node: (status, body).
async fn call(
    http: &reqwest::Client,
    node_url: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = http
        .request(method, format!("{node_url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// The viewer's stored position in tmdb-603, read through the node (answered 200).
async fn position(http: &reqwest::Client, node_url: &str, token: &str) -> f64 {
    let (s, body) = call(
        http,
        node_url,
        reqwest::Method::GET,
        "/api/v1/me/progress/tmdb-603",
        token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    p["position_s"].as_f64().unwrap_or_else(|| panic!("{p}"))
}

/// The value of the metric line starting with `name ` in the node's `/metrics`.
async fn metric(node_url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{node_url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

async fn wait_member(node_url: &str) {
    let url = format!("{node_url}/healthz");
    reelnet_testkit::wait_for("membership", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let h: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (h["membership"]["member"] == true).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn viewers_notice_nothing_when_the_tracker_replica_in_use_is_killed() {
    let started = Instant::now();
    let pg = reelnet_testkit::postgres::Postgres::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start a test PostgreSQL (run scripts/setup.sh): {e}"));
    let db = pg.url();
    let mut a = Replica::new(&db);
    a.spawn().await;
    let mut b = Replica::new(&db);
    b.spawn().await;
    // The same keys: B publishes A's JWKS and network document.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/reelnet-network.json",
    ] {
        let of = |base: &str| format!("{base}{path}");
        let (ja, jb) = (
            reqwest::get(of(&a.url))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            reqwest::get(of(&b.url))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        assert_eq!(ja, jb, "{path} differs between the replicas");
    }
    a.cli(&["user", "add", EMAIL, "--password", PASSWORD, "--verified"]);
    let invite = a.cli(&["node", "invite", "--role", "edge"]);
    let invite = invite.lines().last().unwrap().trim().to_owned();

    // The node: A first, B second; no probe during the kill (the requests themselves must
    // move it).
    let node_dir = tempfile::tempdir().unwrap();
    let node = Node::bind(node_config(
        node_dir.path(),
        &[&a.url, &b.url],
        &invite,
        300,
    ))
    .await
    .unwrap();
    let gateway = node.gateway_addr();
    let node_url = format!("http://{gateway}");
    wait_member(&node_url).await;
    let (nb, token) = sign_in(&node_url, &a.url).await;
    let http = reqwest::Client::new();
    use reqwest::Method;
    let progress = |at: f64| json!({"position_s": at, "duration_s": 7200.0, "timestamp_ms": (at * 1000.0) as u64});
    let (s, b0) = call(
        &http,
        &node_url,
        Method::PUT,
        "/api/v1/me/watchlist/tmdb-603",
        &token,
        None,
    )
    .await;
    assert_eq!(s, 201, "{b0}");
    let (s, b0) = call(
        &http,
        &node_url,
        Method::PUT,
        "/api/v1/me/progress/tmdb-603",
        &token,
        Some(progress(100.0)),
    )
    .await;
    assert_eq!(s, 200, "{b0}");
    assert_eq!(
        metric(&node_url, "reelnet_tracker_replica").await,
        Some(0.0)
    );
    assert_eq!(
        metric(&node_url, "reelnet_tracker_switches_total").await,
        Some(0.0)
    );

    // A dies. Nothing is in flight: every request after this must be answered 2xx.
    a.kill9();
    let mut answered = Vec::new();
    // First a read of what was written on A: the same database behind B.
    let first = Instant::now();
    let (s, body) = call(
        &http,
        &node_url,
        Method::GET,
        "/api/v1/me/progress/tmdb-603",
        &token,
        None,
    )
    .await;
    let first_ms = first.elapsed().as_secs_f64() * 1000.0;
    answered.push(("GET progress", s, body.clone()));
    if s == 200 {
        let p: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(p["position_s"], 100.0, "{p}");
    }
    for i in 1..=5u32 {
        let movie = format!("tmdb-{}", 700 + i);
        let (s, body) = call(
            &http,
            &node_url,
            Method::PUT,
            &format!("/api/v1/me/watchlist/{movie}"),
            &token,
            None,
        )
        .await;
        answered.push(("PUT watchlist", s, body));
        let at = 100.0 + f64::from(i) * 10.0;
        let (s, body) = call(
            &http,
            &node_url,
            Method::PUT,
            "/api/v1/me/progress/tmdb-603",
            &token,
            Some(progress(at)),
        )
        .await;
        answered.push(("PUT progress", s, body));
        let (s, body) = call(
            &http,
            &node_url,
            Method::GET,
            "/api/v1/me/watchlist",
            &token,
            None,
        )
        .await;
        answered.push(("GET watchlist", s, body.clone()));
        if s == 200 {
            assert!(body.contains(&movie), "{body}");
        }
        let (s, body) = call(
            &http,
            &node_url,
            Method::DELETE,
            &format!("/api/v1/me/watchlist/{movie}"),
            &token,
            None,
        )
        .await;
        answered.push(("DELETE watchlist", s, body));
    }
    let failed: Vec<_> = answered
        .iter()
        .filter(|(_, s, _)| !(200..300).contains(s))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests after the kill failed: {failed:?}",
        failed.len(),
        answered.len()
    );
    assert_eq!(
        metric(&node_url, "reelnet_tracker_replica").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&node_url, "reelnet_tracker_switches_total").await,
        Some(1.0),
        "one switch, however many requests found A dead"
    );
    // The session refresh (the node's refresh cookie, rotated at the tracker) works on B.
    let token = session(&nb).await;
    assert_eq!(position(&http, &node_url, &token).await, 150.0);
    // A watch party, made on B (its record is in the database; B runs it while it lives).
    let (s, body) = call(
        &http,
        &node_url,
        Method::POST,
        "/api/v1/rooms",
        &token,
        Some(json!({"movie_id": "tmdb-603"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let room: Value = serde_json::from_str(&body).unwrap();
    let room = room["id"].as_str().unwrap().to_owned();

    // Restarted with the dead A still first: it comes up and serves (on the same address,
    // the origin its certificate names).
    node.shutdown();
    node.join().await;
    let mut config = node_config(node_dir.path(), &[&a.url, &b.url], "", 1);
    config.gateway.listen = gateway;
    let node = Node::bind(config).await.unwrap();
    wait_member(&node_url).await;
    let (s, body) = call(
        &http,
        &node_url,
        Method::GET,
        "/api/v1/me/watchlist",
        &token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("tmdb-603"), "{body}");
    let token = session(&nb).await;
    let (s, body) = call(
        &http,
        &node_url,
        Method::PUT,
        "/api/v1/me/progress/tmdb-603",
        &token,
        Some(progress(200.0)),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        metric(&node_url, "reelnet_tracker_replica").await,
        Some(1.0)
    );

    // A is back: the probe moves the node back to it.
    a.spawn().await;
    reelnet_testkit::wait_for(
        "the probe's move back to A",
        Duration::from_secs(20),
        || {
            let node_url = node_url.clone();
            async move {
                (metric(&node_url, "reelnet_tracker_replica").await == Some(0.0)).then_some(())
            }
        },
    )
    .await;
    assert_eq!(position(&http, &node_url, &token).await, 200.0);

    // A dies again, with the node on it: the party's WebSocket, opened right after, opens
    // on B (the browser's upgrade is accepted only once the tracker's side is open).
    a.kill9();
    let ws_url = format!(
        "{}/api/v1/rooms/{room}/ws?access_token={token}",
        node_url.replace("http://", "ws://")
    );
    let opened = tokio_tungstenite::connect_async(ws_url).await;
    assert!(
        opened.is_ok(),
        "the watch-party WebSocket: {:?}",
        opened.err()
    );
    drop(opened);
    assert_eq!(
        metric(&node_url, "reelnet_tracker_replica").await,
        Some(1.0)
    );
    node.shutdown();
    node.join().await;
    drop(b);
    println!(
        "tracker failover test: {:.1} s; the first request after the kill (A refused, \
         answered by B) took {first_ms:.1} ms",
        started.elapsed().as_secs_f64(),
    );
}
