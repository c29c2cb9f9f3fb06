//! The tracker at rest, with the real binary started under `umask 022`: its data directory,
//! key directories and database directory are 0700 and its keys, tokens, secrets and
//! database files 0600; its answers carry nosniff and a CSP; an `?access_token=` (in the
//! URL and in the Referer the request span records) is not in its debug log; and a key or
//! token file that group or others can read makes it refuse to start, naming the file and
//! the chmod.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reelnet_testkit::{file_mode as mode, set_file_mode as set_mode};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_reelnet-tracker");
/// A token-shaped secret that must never reach the log.
const SECRET: &str = "eyJhbGciOiJFZERTQSJ9.dHJhY2tlci1zZWNyZXQ.QXRSZXN0U2lnbmF0dXJl";

/// The tracker binary started by `sh` after `umask 022`, logging at debug level to `log`.
fn start(data: &Path, log: &Path, out: &Path) -> Child {
    Command::new("sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\"", BIN])
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_addr(out: &Path, log: &Path) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(a) = reelnet_testkit::line_after(out, 0, "reelnet-tracker listening: http://") {
            if let Ok(addr) = a.trim().parse() {
                return addr;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the tracker did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 GET with a Referer; the status line and headers (lowercased names).
fn get(addr: std::net::SocketAddr, target: &str, referer: &str) -> (String, Vec<(String, String)>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nReferer: {referer}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

fn stop(mut child: Child) {
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Starting fails, and the log names `file` and the chmod that fixes it.
fn refused(data: &Path, log: &Path, out: &Path, file: &Path) {
    let child = start(data, log, out);
    let status = child.wait_with_output().unwrap().status;
    assert!(!status.success(), "started with {} open", file.display());
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        text.contains(&file.display().to_string()) && text.contains("chmod 600"),
        "the refusal does not name {} and the chmod:\n{text}",
        file.display()
    );
}

#[test]
fn modes_headers_and_logs_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let data = dir.path().join("tracker-data");
    let (log, out) = (
        dir.path().join("tracker.log"),
        dir.path().join("tracker.out"),
    );

    let child = start(&data, &log, &out);
    let addr = wait_addr(&out, &log);
    for target in [
        format!("/api/v1/me?access_token={SECRET}"),
        format!("/api/v1/rooms/r1/ws?access_token={SECRET}"),
        "/healthz".to_owned(),
    ] {
        let (status, headers) = get(
            addr,
            &target,
            &format!("http://node/room/r1?access_token={SECRET}"),
        );
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            find("x-content-type-options"),
            Some("nosniff"),
            "{target}: {status}"
        );
        assert!(
            find("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")),
            "{target}: {headers:?}"
        );
    }

    assert_eq!(mode(&data), 0o700, "data directory");
    for d in ["keys", "network-keys", "db"] {
        assert_eq!(mode(&data.join(d)), 0o700, "{d}");
    }
    let mut keys = 0;
    for d in ["keys", "network-keys"] {
        for entry in std::fs::read_dir(data.join(d)).unwrap() {
            let path = entry.unwrap().path();
            keys += usize::from(path.extension().is_some_and(|e| e == "key"));
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(keys, 2, "one token key and one network key");
    for secret in ["operator.json", "billing_webhook_secret"] {
        assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
    }
    for entry in std::fs::read_dir(data.join("db")).unwrap() {
        let entry = entry.unwrap();
        let m = mode(&entry.path());
        if entry.file_type().unwrap().is_dir() {
            assert_eq!(m, 0o700, "{}", entry.path().display());
        } else {
            assert_eq!(m & 0o077, 0, "{} is {m:o}", entry.path().display());
        }
    }
    stop(child);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("access_token=REDACTED"),
        "the request span's referer was not logged, so this test proves nothing:\n{text}"
    );
    assert!(!text.contains(SECRET), "the token is in the log:\n{text}");

    // Keys and the operator token open to others: refused, each with its file named.
    let key = std::fs::read_dir(data.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap();
    set_mode(&key, 0o644);
    refused(&data, &log, &out, &key);
    set_mode(&key, 0o600);
    let operator = data.join("operator.json");
    set_mode(&operator, 0o640);
    refused(&data, &log, &out, &operator);
    set_mode(&operator, 0o600);
    // Fixed as told, it starts; a data directory someone opened up is narrowed again.
    set_mode(&data, 0o755);
    let child = start(&data, &log, &out);
    wait_addr(&out, &log);
    assert_eq!(mode(&data), 0o700);
    stop(child);
}
