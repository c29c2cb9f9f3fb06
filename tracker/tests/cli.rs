//! The `reelnet-tracker` binary: `--help`, `--version`, a bad config refused with the
//! file and the key named, and the offline `user add` / `user set-role` commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_reelnet-tracker");

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--config", "--data-dir", "--listen", "rotate-key"] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("listen = \"nowhere\"\n", "listen"),
        (
            "[auth]\naccess_ttl_secs = \"soon\"\n",
            "auth.access_ttl_secs",
        ),
        ("[auth]\naccess_ttl_secs = 1\n", "auth.access_ttl_secs"),
        ("[smtp]\ntls = \"maybe\"\n", "smtp.tls"),
        ("[smtp]\nfrom = \"not an address\"\n", "smtp.from"),
        ("[http]\nmax_body = 5\n", "max_body"),
    ] {
        let path = dir.path().join("tracker.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("tracker.toml") && err.contains(key),
            "{text}: {err}"
        );
    }
}

#[test]
fn sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // On port 0: the tracker prints the address it got.
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("stdout");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let addr = loop {
        if let Some(a) = reelnet_testkit::line_after(&out, 0, "reelnet-tracker listening: http://")
        {
            break a.parse::<std::net::SocketAddr>().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tracker did not say where it listens"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "tracker did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        dir.path().join("keys/keyring.json").exists(),
        "signing key made on first start"
    );
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn user_cmd(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("user")
        .args(args)
        .output()
        .unwrap()
}

/// `user add` works through a running tracker (operator.json) and, with it stopped, in its
/// database; duplicates and weak passwords are refused either way.
#[tokio::test]
async fn offline_user_add_then_login() {
    let mut t = common::Tracker::start().await;
    let pw_file = t.dir.path().join("pw.txt");
    std::fs::write(&pw_file, "demo-password-1\n").unwrap();
    let pw = pw_file.to_str().unwrap();
    let email = "demo@reelnet.local";

    // While the tracker runs, the command goes through it.
    let out = user_cmd(
        &t.config,
        &[
            "add",
            "online@reelnet.local",
            "--password-file",
            pw,
            "--verified",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": "online@reelnet.local", "password": "demo-password-1"}),
        )
        .await;
    assert_eq!((s, b["user"]["role"].as_str()), (200, Some("user")), "{b}");
    let out = user_cmd(
        &t.config,
        &[
            "add",
            "Online@Reelnet.local",
            "--password",
            "another-password",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    t.terminate();

    let out = user_cmd(
        &t.config,
        &["add", "weak@reelnet.local", "--password", "short"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least"));

    let out = user_cmd(
        &t.config,
        &[
            "add",
            email,
            "--password-file",
            pw,
            "--verified",
            "--admin",
            "--name",
            "Demo",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added demo@reelnet.local"));
    let out = user_cmd(
        &t.config,
        &[
            "add",
            "Demo@Reelnet.local",
            "--password",
            "another-password",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = user_cmd(
        &t.config,
        &[
            "add",
            "other@reelnet.local",
            "--password",
            "other-password-2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    t.spawn().await;
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": email, "password": "demo-password-1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["email_verified"], true);
    assert_eq!(b["user"]["role"], "admin");
    assert_eq!(b["user"]["display_name"], "Demo");
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": "other@reelnet.local", "password": "other-password-2"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["email_verified"], false);
    assert_eq!(b["user"]["role"], "user");
    t.terminate();

    let out = user_cmd(&t.config, &["set-role", email, "user"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user_cmd(&t.config, &["set-role", "nobody@reelnet.local", "admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account"));
    t.spawn().await;
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": email, "password": "demo-password-1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["role"], "user");
}

/// `admin bootstrap` prints a single-use link; the account registered with it is the first
/// admin; the link works once, and no second link is made once there is an admin.
#[tokio::test]
async fn admin_bootstrap_link_makes_the_first_admin_once() {
    let t = common::Tracker::start().await;
    // An early registrant is an ordinary user.
    let early = t.user("early@example.org", "a long password").await;
    assert_eq!(early["user"]["role"], "user");

    let (ok, out, err) = t.cli(&["admin", "bootstrap", "--ttl", "1h"]);
    assert!(ok, "{out}{err}");
    let link = out.lines().last().unwrap().trim().to_owned();
    assert!(
        // The tracker's own registration page, not a node's.
        link.starts_with(&format!("{}/register?bootstrap=", t.base)),
        "{out}"
    );
    let token = link.split("bootstrap=").nth(1).unwrap();
    let register = |email: &str| {
        serde_json::json!({"email": email, "password": "a long password",
            "display_name": "Root", "bootstrap": token})
    };
    // A taken address does not use the link up.
    let (s, b) = t
        .post("/api/v1/auth/register", register("early@example.org"))
        .await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = t
        .post("/api/v1/auth/register", register("root@example.org"))
        .await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": "root@example.org", "password": "a long password"}),
        )
        .await;
    assert_eq!((s, b["user"]["role"].as_str()), (200, Some("admin")), "{b}");
    // Once only.
    let (s, b) = t
        .post("/api/v1/auth/register", register("second@example.org"))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_bootstrap")),
        "{b}"
    );
    // Hostile callers of the operator routes: nobody, an ordinary user, and an admin
    // session asking for a bootstrap link (the operator token only).
    let (s, login) = t
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": "root@example.org", "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{login}");
    let root = common::access(&login);
    let user = common::access(&early);
    let add = serde_json::json!({"email": "sneaky@example.org", "password": "a long password", "admin": true});
    let (s, _) = t.post("/api/v1/admin/users", add.clone()).await;
    assert_eq!(s, 401);
    let (s, r) = t
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/users",
            &user,
            Some(add.clone()),
        )
        .await;
    assert_eq!((s, r["error"].as_str()), (403, Some("not_admin")), "{r}");
    let (s, r) = t
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/bootstrap",
            &root,
            Some(serde_json::json!({"ttl_secs": 60})),
        )
        .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (403, Some("operator_only")),
        "{r}"
    );
    let (s, r) = t
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/users",
            &root,
            Some(add),
        )
        .await;
    assert_eq!(
        (s, r["role"].as_str()),
        (201, Some("admin")),
        "an admin may: {r}"
    );
    // There is an admin now: no more links.
    let (ok, out, err) = t.cli(&["admin", "bootstrap"]);
    assert!(!ok, "{out}");
    assert!(err.contains("already has an admin"), "{err}");
}
