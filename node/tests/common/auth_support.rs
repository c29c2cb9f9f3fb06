//! Support for the gateway's auth/proxy tests: a real SMTP server (Python's aiosmtpd, from
//! `$REELNET_PYTHON` as set by scripts/env.sh) writing to a Maildir, a real tracker started
//! in-process (`reelnet_tracker::Tracker::bind`), and a real node (`reelnet_node::Node::bind`)
//! on loopback with a temporary data directory. Include with
//! `#[path = "common/auth_support.rs"] mod auth_support;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reelnet_node::config::NodeConfig;
use reelnet_node::Node;
use reelnet_tracker::config::{SmtpTls, TrackerConfig};
use reelnet_tracker::Tracker;
use serde_json::{json, Value};

pub const ISSUER: &str = "test-tracker";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server on loopback that stores every message in a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
}

impl Smtp {
    pub fn start(dir: &Path) -> Smtp {
        let python = std::env::var("REELNET_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let maildir = dir.join("maildir");
        let port = free_port();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start aiosmtpd with {python} ({e}); run scripts/setup.sh")
            });
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start; is it installed for {python}? (scripts/setup.sh)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            port,
            maildir,
            child,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    /// Waits for a message to `to` and returns the link in it that contains `needle`.
    pub async fn wait_for_link(&self, to: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for msg in self.messages() {
                let unfolded = msg
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                if !unfolded.contains(&format!("To: {to}")) {
                    continue;
                }
                if let Some(link) = unfolded
                    .split_whitespace()
                    .find(|w| w.starts_with("http") && w.contains(needle))
                {
                    return link.to_owned();
                }
            }
            assert!(Instant::now() < deadline, "no email to {to}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tracker running in this process, with its SMTP server.
pub struct TestTracker {
    pub dir: tempfile::TempDir,
    pub smtp: Smtp,
    pub url: String,
    tracker: Option<Tracker>,
}

impl TestTracker {
    pub async fn start() -> TestTracker {
        Self::start_with(|_| {}).await
    }

    /// Like [`start`](Self::start), with `adjust` changing the config first.
    pub async fn start_with(adjust: impl FnOnce(&mut TrackerConfig)) -> TestTracker {
        let dir = tempfile::tempdir().unwrap();
        let smtp = Smtp::start(dir.path());
        let mut config = TrackerConfig {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
            issuer: ISSUER.to_owned(),
            web_url: "http://127.0.0.1:9".to_owned(),
            ..TrackerConfig::default()
        };
        config.smtp.port = smtp.port;
        config.smtp.tls = SmtpTls::None;
        adjust(&mut config);
        let tracker = Tracker::bind(config).await.unwrap();
        let url = format!("http://{}", tracker.addr());
        TestTracker {
            dir,
            smtp,
            url,
            tracker: Some(tracker),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the tracker and waits until its port is closed.
    pub async fn stop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.shutdown();
            t.join().await;
        }
    }

    /// The tracker's signing keys as on disk (to sign test tokens with its real key).
    pub fn keyring(&self) -> reelnet_tracker::keys::Keyring {
        reelnet_tracker::keys::Keyring::load(&self.data_dir(), 3600).unwrap()
    }
}

impl Drop for TestTracker {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.shutdown();
        }
    }
}

/// A node running in this process, its gateway on a known loopback port.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub http: reqwest::Client,
    node: Option<Node>,
}

impl TestNode {
    pub fn config(dir: &Path, tracker_url: &str) -> NodeConfig {
        let port = free_port();
        let mut config = NodeConfig {
            data_dir: dir.to_owned(),
            ..NodeConfig::default()
        };
        config.gateway.listen = format!("127.0.0.1:{port}").parse().unwrap();
        config.p2p.listen = "/ip4/127.0.0.1/tcp/0".to_owned();
        config.p2p.mdns = false;
        config.quic.listen = "127.0.0.1:0".parse().unwrap();
        config.tracker.url = tracker_url.to_owned();
        config.tracker.issuer = ISSUER.to_owned();
        config
    }

    /// Starts a node whose data directory `prepare` may fill first (e.g. with a manifest).
    pub async fn start_with(tracker_url: &str, prepare: impl FnOnce(&Path)) -> TestNode {
        Self::start_configured(tracker_url, prepare, |_| {}).await
    }

    /// Like [`start_with`](Self::start_with), with `adjust` changing the config first.
    pub async fn start_configured(
        tracker_url: &str,
        prepare: impl FnOnce(&Path),
        adjust: impl FnOnce(&mut NodeConfig),
    ) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let mut config = Self::config(dir.path(), tracker_url);
        adjust(&mut config);
        let node = Node::bind(config).await.unwrap();
        TestNode {
            url: format!("http://{}", node.gateway_addr()),
            dir,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            node: Some(node),
        }
    }

    pub async fn start(tracker_url: &str) -> TestNode {
        Self::start_with(tracker_url, |_| {}).await
    }

    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown();
            n.join().await;
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        split(req.send().await.unwrap()).await
    }

    /// Registers through the node; when `verify`, follows the emailed link (through the
    /// node too). Signs in and returns the login body.
    pub async fn user(&self, smtp: &Smtp, email: &str, verify: bool) -> Value {
        let (s, b) = self
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": PASSWORD, "display_name": "Tester"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        if verify {
            let link = smtp.wait_for_link(email, "/verify?token=").await;
            let token = link.split("token=").nth(1).unwrap();
            let (s, b) = self
                .post("/api/v1/auth/verify", json!({ "token": token }))
                .await;
            assert_eq!(s, 200, "{b}");
        }
        self.login(email).await
    }

    pub async fn login(&self, email: &str) -> Value {
        let (s, b) = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown();
        }
    }
}

pub async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

pub fn access(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}
