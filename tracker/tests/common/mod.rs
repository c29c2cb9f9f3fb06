//! Test harness: starts a real `reelnet-tracker` process on a free loopback port with its
//! own data directory, and a real SMTP server (Python's aiosmtpd) writing to a Maildir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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

    /// Waits for a message to `to` whose subject contains `subject` and returns the
    /// link in it that contains `needle`, decoded from quoted-printable if need be.
    pub async fn wait_for_link(&self, to: &str, subject: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for msg in self.messages() {
                let unfolded = msg
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                if !unfolded.contains(&format!("To: {to}")) || !unfolded.contains(subject) {
                    continue;
                }
                if let Some(link) = unfolded
                    .split_whitespace()
                    .find(|w| w.starts_with("http") && w.contains(needle))
                {
                    return link.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no email to {to} about {subject:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.contains(&format!("To: {to}")))
            .count()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
}

pub const TRACKER_BIN: &str = env!("CARGO_BIN_EXE_reelnet-tracker");

impl Tracker {
    /// Starts a tracker with an SMTP server and `extra` TOML appended to its config.
    pub async fn start_with(extra: &str) -> Tracker {
        let dir = tempfile::tempdir().unwrap();
        let smtp = Smtp::start(dir.path());
        let port = free_port();
        let config = dir.path().join("tracker.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nissuer = \"test-tracker\"\nweb_url = \"http://127.0.0.1:9\"\n{extra}\n[smtp]\nport = {}\ntls = \"none\"\n",
                dir.path().join("data"),
                smtp.port
            ),
        )
        .unwrap();
        let mut t = Tracker {
            dir,
            port,
            base: format!("http://127.0.0.1:{port}"),
            config,
            smtp: Some(smtp),
            child: None,
            http: reqwest::Client::new(),
        };
        t.spawn().await;
        t
    }

    pub async fn start() -> Tracker {
        Self::start_with("").await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// (Re)starts the process and waits until it answers.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tracker.log"))
            .unwrap();
        let child = Command::new(TRACKER_BIN)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
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

    /// Registers, verifies through the emailed link, and signs in; returns the login body.
    pub async fn user(&self, email: &str, password: &str) -> Value {
        let (s, b) = self
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": password, "display_name": "Tester"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let link = self
            .smtp()
            .wait_for_link(email, "Confirm your reelnet account", "/verify?token=")
            .await;
        let token = link.split("token=").nth(1).unwrap();
        let (s, b) = self
            .post("/api/v1/auth/verify", json!({ "token": token }))
            .await;
        assert_eq!(s, 200, "{b}");
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

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
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
