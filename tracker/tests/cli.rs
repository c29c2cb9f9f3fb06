//! The `reelnet-tracker` binary: `--help`, `--version`, and a bad config refused with the
//! file and the key named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
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
