//! Support for the gateway's auth/proxy tests: a real SMTP server ([`Smtp`], from
//! `reelnet-testkit`: Python's aiosmtpd from `$REELNET_PYTHON` as set by scripts/env.sh)
//! writing to a Maildir, a real tracker started in-process
//! (`reelnet_tracker::Tracker::bind`), and a real node (`reelnet_node::Node::bind`) on
//! loopback with a temporary data directory, both bound to port 0. Include with
//! `#[path = "common/auth_support.rs"] mod auth_support;`.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use reelnet_node::config::NodeConfig;
use reelnet_node::Node;
use reelnet_tracker::config::{SmtpTls, TrackerConfig};
use reelnet_tracker::Tracker;
use serde_json::{json, Value};

pub use reelnet_testkit::{access, split, wait_for, Smtp};

pub const ISSUER: &str = "test-tracker";
pub const PASSWORD: &str = "correct horse battery staple";

/// The data directory of every tracker started here, by URL (so nodes can join).
fn trackers() -> &'static std::sync::Mutex<std::collections::HashMap<String, PathBuf>> {
    static T: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        std::sync::OnceLock::new();
    T.get_or_init(Default::default)
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
        // Tests register many accounts from 127.0.0.1.
        config.auth.registrations_per_address_per_hour = 10_000;
        config.auth.reset_requests_per_address_per_hour = 10_000;
        config.auth.resends_per_address_per_hour = 10_000;
        config.auth.mails_per_address_per_hour = 10_000;
        adjust(&mut config);
        let data_dir = config.data_dir.clone();
        let tracker = Tracker::bind(config).await.unwrap();
        let url = format!("http://{}", tracker.addr());
        trackers().lock().unwrap().insert(url.clone(), data_dir);
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

    /// Adds a verified admin through the running tracker (what `reelnet-tracker user add
    /// --admin --verified` does): nobody becomes admin by registering first.
    pub async fn add_admin(&self, email: &str) {
        let config = TrackerConfig {
            data_dir: self.data_dir(),
            ..TrackerConfig::default()
        };
        let out = reelnet_tracker::operator::run(
            &config,
            reelnet_tracker::operator::NodeCommand::AddUser(
                reelnet_tracker::users::AddUserRequest {
                    email: email.to_owned(),
                    password: PASSWORD.to_owned(),
                    display_name: None,
                    verified: true,
                    admin: true,
                },
            ),
        )
        .await;
        assert!(out.is_ok(), "adding an admin: {out:?}");
    }

    /// Stops the tracker and waits until its port is closed.
    pub async fn stop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.shutdown();
            t.join().await;
        }
    }

    /// The running tracker's API (what its pages call: tests stand in for the sign-in and
    /// consent pages with it).
    pub fn api(&self) -> &reelnet_tracker::api::Api {
        self.tracker.as_ref().expect("the tracker is running").api()
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

/// Registers `email` at the tracker's own JSON API (never through a node: credentials are
/// typed only at the tracker); when `verify`, follows the emailed link there too.
pub async fn register_at_tracker(tracker_url: &str, smtp: &Smtp, email: &str, verify: bool) {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{tracker_url}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Tester"}))
        .send()
        .await
        .unwrap();
    let (s, b) = split(r).await;
    assert_eq!(s, 202, "{b}");
    if verify {
        let link = smtp.wait_for_link(email, "", "/verify?token=").await;
        let token = link.split("token=").nth(1).unwrap();
        let r = http
            .post(format!("{tracker_url}/api/v1/auth/verify"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap();
        let (s, b) = split(r).await;
        assert_eq!(s, 200, "{b}");
    }
}

/// A JSON login at the tracker. `resource`: the node id the token is for (a node token,
/// `aud = reelnet-node:<id>`); `None`: a network token (which nodes refuse).
pub async fn login_at_tracker(tracker_url: &str, email: &str, resource: Option<&str>) -> Value {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(node) = resource {
        body["resource"] = json!(node);
    }
    let r = reqwest::Client::new()
        .post(format!("{tracker_url}/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s, b) = split(r).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// The node id a gateway reports in `/healthz`.
pub async fn node_id_of(gateway_url: &str) -> String {
    let h: Value = reqwest::get(format!("{gateway_url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    h["node_id"].as_str().unwrap().to_owned()
}

/// A node running in this process, its gateway on a loopback port it bound (port 0).
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub http: reqwest::Client,
    /// The tracker URL the node was started with (a front of the tracker in some tests).
    pub tracker_url: String,
    /// This node's id (its OAuth client id; its tokens' audience is `reelnet-node:<id>`).
    pub node_id: String,
    node: Option<Node>,
}

impl TestNode {
    pub fn config(dir: &Path, tracker_url: &str) -> NodeConfig {
        let mut config = NodeConfig {
            data_dir: dir.to_owned(),
            ..NodeConfig::default()
        };
        config.gateway.listen = "127.0.0.1:0".parse().unwrap();
        config.p2p.listen = "/ip4/127.0.0.1/tcp/0".to_owned();
        config.p2p.mdns = false;
        config.quic.listen = "127.0.0.1:0".parse().unwrap();
        config.tracker.url = tracker_url.into();
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
        // A node of a tracker started here joins its network (replica and ingest).
        let data_dir = trackers().lock().unwrap().get(tracker_url).cloned();
        if let Some(data_dir) = data_dir {
            config = super::common_membership::join(
                config,
                &data_dir,
                tracker_url,
                &[
                    reelnet_proto::membership::RoleName::Replica,
                    reelnet_proto::membership::RoleName::Ingest,
                ],
            )
            .await;
        }
        adjust(&mut config);
        let node = Node::bind(config).await.unwrap();
        TestNode {
            url: format!("http://{}", node.gateway_addr()),
            tracker_url: tracker_url.to_owned(),
            node_id: node.node_id().to_string(),
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

    /// Registers at the tracker (never through the node); when `verify`, follows the
    /// emailed link there. Signs in at the tracker for a token of this node and returns
    /// the login body.
    pub async fn user(&self, smtp: &Smtp, email: &str, verify: bool) -> Value {
        register_at_tracker(&self.tracker_url, smtp, email, verify).await;
        self.login(email).await
    }

    /// A JSON login at the tracker with `resource` = this node: a token only this node
    /// accepts (and the tracker only through this node's proxy).
    pub async fn login(&self, email: &str) -> Value {
        login_at_tracker(&self.tracker_url, email, Some(&self.node_id)).await
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown();
        }
    }
}
