//! The node at rest and in the browser, with the real binary started under `umask 022`:
//! its data directory is 0700 and its keys, tokens and database files 0600; the web app
//! and the API on its gateway carry the Content-Security-Policy and the other security
//! headers; an `?access_token=` that went through the node (to a tracker that cannot be
//! reached, so the proxy logs the failed URL) is not in its log; and a key file that
//! group or others can read makes it refuse to start, naming the file and the chmod.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reelnet_testkit::{file_mode as mode, set_file_mode};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");
/// A token-shaped secret that must never reach the log.
const SECRET: &str = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXRva2VuLXZhbHVl.QXRSZXN0U2lnbmF0dXJl";

/// The node binary started by `sh` after `umask 022`, logging at debug level to `log`.
fn start(data: &Path, web: &Path, log: &Path, out: &Path) -> Child {
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[p2p]\nmdns = false\n[gateway]\nweb_dir = {:?}\n",
            web.display().to_string()
        ),
    )
    .unwrap();
    Command::new("sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\"", BIN])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--p2p", "/ip4/127.0.0.1/tcp/0", "--quic", "127.0.0.1:0"])
        .args(["--tracker", "http://127.0.0.1:9"])
        .args(["--bootstrap", "/ip4/127.0.0.1/tcp/1"])
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_port(out: &Path, log: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(rest) = reelnet_testkit::line_after(out, 0, "listening: gateway http://") {
            if let Some(addr) = rest
                .split_whitespace()
                .next()
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            {
                return addr.port();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 GET; the status line and headers (lowercased names), and the body.
fn get(port: u16, target: &str) -> (String, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn stop(mut child: Child) {
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should stop the node: {status}");
}

#[test]
fn modes_headers_and_logs_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    // The directory the data directory is made in is left as umask 022 leaves it.
    set_file_mode(dir.path(), 0o755);
    let data = dir.path().join("node-data");
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>reelnet</title><script type=\"module\" src=\"/assets/app.js\"></script>",
    )
    .unwrap();
    std::fs::write(web.join("assets/app.js"), "console.log('hi');").unwrap();
    let (log, out) = (dir.path().join("node.log"), dir.path().join("node.out"));

    let child = start(&data, &web, &log, &out);
    let port = wait_port(&out, &log);

    // The web app, a client-side route (SPA fallback), a script, the API and /healthz:
    // every answer carries the headers.
    for target in ["/", "/movie/42", "/assets/app.js", "/healthz", "/api/v1/me"] {
        let (status, headers, _) = get(port, target);
        let csp = header(&headers, "content-security-policy")
            .unwrap_or_else(|| panic!("{target} ({status}) has no CSP: {headers:?}"));
        for part in [
            "default-src 'self'",
            "script-src 'self';",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "media-src 'self' blob:",
        ] {
            assert!(csp.contains(part), "{target}: CSP {csp:?} lacks {part:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
    }
    let (status, _, body) = get(port, "/");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("/assets/app.js"), "{body}");

    // Through the proxy to a tracker nothing listens at: the failed URL is logged.
    for target in [
        format!("/api/v1/me?access_token={SECRET}"),
        format!("/api/v1/rooms/r1/ws?x=1&access_token={SECRET}"),
        format!("/hls/m1/master.m3u8?token={SECRET}"),
    ] {
        let (status, headers, _) = get(port, &target);
        assert!(!status.contains("200"), "{target}: {status}");
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    }

    // Modes, while it runs.
    assert_eq!(mode(&data), 0o700, "data directory");
    for secret in ["node.key", "playback.key", "admin.json"] {
        assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
    }
    let db = data.join("db");
    assert_eq!(mode(&db), 0o700, "sled directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&db).unwrap() {
        let entry = entry.unwrap();
        let m = mode(&entry.path());
        if entry.file_type().unwrap().is_dir() {
            assert_eq!(m, 0o700, "{}", entry.path().display());
        } else {
            files += 1;
            assert_eq!(m & 0o077, 0, "{} is {m:o}", entry.path().display());
        }
    }
    assert!(files > 0, "sled wrote no files in {}", db.display());
    stop(child);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("tracker proxy: tracker unreachable"),
        "the proxy failure was not logged, so this test proves nothing:\n{text}"
    );
    assert!(text.contains("access_token=REDACTED"), "{text}");
    assert!(!text.contains(SECRET), "the token is in the log:\n{text}");

    // A node key others can read: refused at start, naming the file and the fix.
    let key = data.join("node.key");
    set_file_mode(&key, 0o644);
    let child = start(&data, &web, &log, &out);
    let status = child.wait_with_output().unwrap().status;
    assert!(!status.success(), "started with a 0644 node key");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&key.display().to_string()) && text.contains("chmod 600"),
        "the refusal does not name the file and the chmod:\n{text}"
    );
    // Fixed as told, it starts again with the same key.
    set_file_mode(&key, 0o600);
    // So does a playback key, and a data directory someone opened up is narrowed again.
    set_file_mode(&data.join("playback.key"), 0o640);
    let child = start(&data, &web, &log, &out);
    assert!(!child.wait_with_output().unwrap().status.success());
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("playback.key"));
    set_file_mode(&data.join("playback.key"), 0o600);
    set_file_mode(&data, 0o755);
    let child = start(&data, &web, &log, &out);
    wait_port(&out, &log);
    assert_eq!(mode(&data), 0o700);
    stop(child);
}

#[test]
fn exposed_key_stops_the_offline_ingest_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("node.key"), [7u8; 32]).unwrap();
    set_file_mode(&data.join("node.key"), 0o604);
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "/nonexistent.mkv", "--direct"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node.key") && err.contains("chmod 600") && err.contains("0604"),
        "{err}"
    );
}
