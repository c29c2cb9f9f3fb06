//! Test harness: starts a real `reelnet-tracker` process on loopback (port 0; the address
//! is read from what it prints) with its own data directory, and a real SMTP server
//! ([`Smtp`], from `reelnet-testkit`) writing to a Maildir.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use reelnet_testkit::{access, split, wait_for, Smtp};

pub mod browser;
pub mod ws;

/// Per-address limits loose enough for tests that register many accounts from 127.0.0.1
/// (each is set only when `extra` does not set it; tests of the limits set their own).
const TEST_LIMITS: &[(&str, u32)] = &[
    ("registrations_per_address_per_hour", 10_000),
    ("reset_requests_per_address_per_hour", 10_000),
    ("resends_per_address_per_hour", 10_000),
    ("reset_confirms_per_address", 10_000),
    ("mails_per_address_per_hour", 10_000),
];

/// `extra` with [`TEST_LIMITS`] added to its `[auth]` table (made when it has none).
pub fn with_test_limits(extra: &str) -> String {
    let keys: String = TEST_LIMITS
        .iter()
        .filter(|(k, _)| !extra.contains(&format!("{k} =")))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    match extra.find("[auth]\n") {
        Some(i) => format!("{}[auth]\n{keys}{}", &extra[..i], &extra[i + 7..]),
        None => format!("{extra}\n[auth]\n{keys}"),
    }
}

/// A running tracker process.
pub struct Tracker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    pub config: PathBuf,
    pub smtp: Option<Smtp>,
    child: Option<Child>,
    pub http: reqwest::Client,
    /// The PostgreSQL the tracker keeps its records in (`[storage] engine = "postgres"`),
    /// when it was started on one.
    pub pg: Option<reelnet_testkit::postgres::Postgres>,
}

/// `[storage]` of a tracker on the PostgreSQL at `url`. The timeouts leave room for a
/// loaded test machine (a statement or a pool wait running out answers 503, which tests of
/// other things do not expect); a stopped server is refused at once anyway.
pub fn postgres_storage(url: &str) -> String {
    format!(
        "\n[storage]\nengine = \"postgres\"\nurl = \"{url}\"\npool_size = 8\nconnect_timeout_secs = 5\nstatement_timeout_secs = 10\n"
    )
}

/// A test PostgreSQL (the failure says how to install one).
pub async fn start_postgres() -> reelnet_testkit::postgres::Postgres {
    reelnet_testkit::postgres::Postgres::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start a test PostgreSQL (run scripts/setup.sh): {e}"))
}

/// A test CA and a certificate for `name` it signed: (CA PEM, certificate PEM, key PEM).
pub fn test_ca(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

pub const TRACKER_BIN: &str = env!("CARGO_BIN_EXE_reelnet-tracker");

impl Tracker {
    /// Starts a tracker with an SMTP server and `extra` TOML appended to its config. With
    /// `REELNET_TEST_STORE=postgres` in the environment, on a PostgreSQL of its own
    /// (unless `extra` has a `[storage]` table).
    pub async fn start_with(extra: &str) -> Tracker {
        let on_postgres = std::env::var("REELNET_TEST_STORE").is_ok_and(|v| v == "postgres");
        if on_postgres && !extra.contains("[storage]") {
            return Self::start_on_postgres(extra).await;
        }
        Self::start_inner(extra, None).await
    }

    /// Starts a tracker whose records live in a PostgreSQL started for it.
    pub async fn start_on_postgres(extra: &str) -> Tracker {
        let pg = start_postgres().await;
        let extra = format!("{extra}{}", postgres_storage(&pg.url()));
        Self::start_inner(&extra, Some(pg)).await
    }

    /// Starts a tracker on `pg` (kept with it) at `url` (e.g. a several-host URL across a
    /// primary and its standby).
    pub async fn start_on_url(
        extra: &str,
        pg: reelnet_testkit::postgres::Postgres,
        url: &str,
    ) -> Tracker {
        let extra = format!("{extra}{}", postgres_storage(url));
        Self::start_inner(&extra, Some(pg)).await
    }

    async fn start_inner(extra: &str, pg: Option<reelnet_testkit::postgres::Postgres>) -> Tracker {
        let extra = with_test_limits(extra);
        let dir = tempfile::tempdir().unwrap();
        let smtp = Smtp::start(dir.path());
        let config = dir.path().join("tracker.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nissuer = \"test-tracker\"\nweb_url = \"http://127.0.0.1:9\"\n{extra}\n[smtp]\nport = {}\ntls = \"none\"\n",
                dir.path().join("data"),
                smtp.port
            ),
        )
        .unwrap();
        let mut t = Tracker {
            dir,
            port: 0,
            base: String::new(),
            config,
            smtp: Some(smtp),
            child: None,
            http: reqwest::Client::new(),
            pg,
        };
        t.spawn().await;
        t
    }

    /// Starts another tracker process on this one's PostgreSQL (a replica): its own data
    /// directory and port, the same config otherwise, and this one's signing keys. Users
    /// registered through this tracker (its SMTP server) sign in at either.
    pub async fn replica(&self) -> Tracker {
        assert!(self.pg.is_some(), "replicas share a PostgreSQL");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for sub in ["keys", "network-keys"] {
            let from = self.data_dir().join(sub);
            if from.exists() {
                let ok = Command::new("cp")
                    .arg("-a")
                    .arg(&from)
                    .arg(&data)
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
        }
        let ours = std::fs::read_to_string(&self.config).unwrap();
        let config = dir.path().join("tracker.toml");
        let theirs = format!("{:?}", self.data_dir());
        std::fs::write(&config, ours.replacen(&theirs, &format!("{data:?}"), 1)).unwrap();
        let mut t = Tracker {
            dir,
            port: 0,
            base: String::new(),
            config,
            smtp: None,
            child: None,
            http: reqwest::Client::new(),
            pg: None,
        };
        t.spawn().await;
        t
    }

    pub async fn start() -> Tracker {
        Self::start_with("").await
    }

    /// The process id of the running tracker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The storage engine this tracker keeps its records in (to open its store directly
    /// once it is stopped).
    pub fn store_engine(&self) -> reelnet_tracker::store::Engine {
        match &self.pg {
            Some(pg) => reelnet_tracker::store::Engine::Postgres(
                reelnet_tracker::store::kv::postgres::PgOptions {
                    url: pg.url(),
                    pool_size: 2,
                    connect_timeout: Duration::from_secs(5),
                    statement_timeout: Duration::from_secs(5),
                    ca_file: None,
                },
            ),
            None => reelnet_tracker::store::Engine::Sled {
                dir: self.data_dir().join("db"),
                durability: reelnet_tracker::store::Durability::Fsync,
            },
        }
    }

    /// (Re)starts the process and waits until it answers. The first start binds port 0 and
    /// reads the address from the line the tracker prints; a restart binds that port again
    /// (so URLs taken before it stay valid).
    pub async fn spawn(&mut self) {
        let log_path = self.dir.path().join("tracker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let from = log.metadata().unwrap().len();
        let child = Command::new(TRACKER_BIN)
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = reelnet_testkit::read_line_after(
            &log_path,
            from,
            "reelnet-tracker listening: http://",
            Duration::from_secs(30),
            || self.is_running(),
        )
        .await;
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        self.port = addr.port();
        self.base = format!("http://{addr}");
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "tracker did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tracker.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").arg(c.id().to_string()).status();
        c.wait().unwrap()
    }

    pub fn smtp(&self) -> &Smtp {
        self.smtp.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        split(req.send().await.unwrap()).await
    }

    /// Puts tmdb-603 on the watch-later list (201) and saves progress 1234.5 s of 7200 on it
    /// (200): records a restart or a migration must keep.
    pub async fn watch_later_and_progress(&self, token: &str) {
        let (s, b) = self
            .call(
                reqwest::Method::PUT,
                "/api/v1/me/watchlist/tmdb-603",
                token,
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .call(
                reqwest::Method::PUT,
                "/api/v1/me/progress/tmdb-603",
                token,
                Some(json!({"position_s": 1234.5, "duration_s": 7200.0, "timestamp_ms": 2_000})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    /// Registers, verifies through the emailed link, and signs in; returns the login body.
    pub async fn user(&self, email: &str, password: &str) -> Value {
        let (s, b) = self
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": password, "display_name": "Tester"}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
        let link = self
            .smtp()
            .wait_for_link(email, "Confirm your reelnet account", "/verify?token=")
            .await;
        let token = link.split("token=").nth(1).unwrap();
        let (s, b) = self
            .post("/api/v1/auth/verify", json!({ "token": token }))
            .await;
        assert_eq!(s, 200, "{b}");
        self.login(email, password).await
    }

    /// Signs in with a password (answered 200); the login body.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let (s, b) = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }
}

impl Tracker {
    /// Runs `reelnet-tracker ARGS` against this tracker's config; (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(TRACKER_BIN)
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

    /// Makes a verified admin with `reelnet-tracker user add --admin --verified` (through
    /// the running tracker) and signs in; returns the login body.
    pub async fn admin(&self, email: &str, password: &str) -> Value {
        let (ok, out, err) = self.cli(&[
            "user",
            "add",
            email,
            "--password",
            password,
            "--verified",
            "--admin",
        ]);
        assert!(ok, "user add --admin: {out}{err}");
        let b = self.login(email, password).await;
        assert_eq!(b["user"]["role"], "admin", "{b}");
        b
    }
}

/// A node as the tracker sees it: a key and the certificate it enrolled for.
pub struct Member {
    pub key: ed25519_dalek::SigningKey,
    /// The node id, hex.
    pub id: String,
    pub cert: reelnet_proto::membership::SignedCertificate,
}

impl Member {
    /// A node with a valid libp2p/ed25519 identity and a certificate signed by a key of
    /// no network the tracker knows (a stranger or a forger).
    pub fn stranger(network_id: &str) -> Member {
        use reelnet_proto::membership::*;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let node = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key());
        let forger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let now = reelnet_runtime::clock::unix_secs();
        let cert = SignedCertificate::sign(
            &Certificate {
                network_id: network_id.to_owned(),
                node,
                roles: Roles::of(&[RoleName::Ingest, RoleName::Replica]),
                open: false,
                origins: vec![],
                issued_at: now,
                not_after: now + 3600,
                serial: 1,
                kid: "forged".into(),
            },
            &forger,
        )
        .unwrap();
        Member {
            key,
            id: node.to_string(),
            cert,
        }
    }

    /// The signed-request header for `method path` with `body`.
    pub fn auth(&self, method: &str, path: &str, body: &[u8]) -> String {
        reelnet_proto::membership::node_auth_header(
            &self.key,
            &self.cert,
            method,
            path,
            reelnet_runtime::clock::unix_secs(),
            rand::random(),
            body,
        )
    }
}

impl Tracker {
    /// `reelnet-tracker node invite` against this tracker (running or not); the token.
    pub fn invite(&self, roles: &[&str], uses: u32, ttl: &str) -> String {
        let mut cmd = Command::new(TRACKER_BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["node", "invite"]);
        for r in roles {
            cmd.args(["--role", r]);
        }
        cmd.args(["--uses", &uses.to_string(), "--ttl", ttl]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "node invite: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().last().unwrap().trim().to_owned()
    }

    /// The network document.
    pub async fn network(&self) -> reelnet_proto::membership::NetworkDocument {
        self.http
            .get(self.url("/.well-known/reelnet-network.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Enrolls a fresh node key with `invite`: the answer's status and body.
    pub async fn enroll_key(&self, key: &ed25519_dalek::SigningKey, invite: &str) -> (u16, Value) {
        self.enroll_key_with(key, invite, &[]).await
    }

    /// [`Tracker::enroll_key`] naming the node's gateway `origins` (none: left out).
    pub async fn enroll_key_with(
        &self,
        key: &ed25519_dalek::SigningKey,
        invite: &str,
        origins: &[&str],
    ) -> (u16, Value) {
        let doc = self.network().await;
        let now = reelnet_runtime::clock::unix_secs();
        let node = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key());
        let mut body = json!({
            "invite": invite,
            "node_id": node.to_string(),
            "timestamp": now,
            "proof": reelnet_proto::membership::sign_enroll(key, &doc.network_id, invite, now),
        });
        if !origins.is_empty() {
            body["origins"] = json!(origins);
        }
        self.post("/api/v1/nodes/enroll", body).await
    }

    /// A new node enrolled with a fresh invite of `roles`.
    pub async fn member(&self, roles: &[&str]) -> Member {
        self.member_with_origins(roles, &[]).await
    }

    /// A new node enrolled with a fresh invite of `roles` and gateway `origins`.
    pub async fn member_with_origins(&self, roles: &[&str], origins: &[&str]) -> Member {
        let invite = self.invite(roles, 1, "1h");
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let (s, b) = self.enroll_key_with(&key, &invite, origins).await;
        assert_eq!(s, 200, "{b}");
        let cert = reelnet_proto::membership::SignedCertificate::from_hex(
            b["certificate"].as_str().unwrap(),
        )
        .unwrap();
        Member {
            id: reelnet_proto::NodeId::from_verifying_key(&key.verifying_key()).to_string(),
            key,
            cert,
        }
    }

    /// A signed node request (`member` = `None`: unsigned).
    pub async fn node_post(
        &self,
        path: &str,
        member: Option<&Member>,
        body: Value,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(bytes.clone());
        if let Some(m) = member {
            req = req.header("reelnet-node-auth", m.auth("POST", path, &bytes));
        }
        split(req.send().await.unwrap()).await
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
