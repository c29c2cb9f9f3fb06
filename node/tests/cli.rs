//! The `reelnet-node` binary as operators and scripts use it: `--help`, `--version`, a bad
//! config refused with the file and key named, and a start in a fresh data directory that
//! answers `/healthz`, keeps its identity across restarts and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");

/// Waits (20 s at most) for `needle` in the file at `path` (a child's output) and answers
/// what follows it on that line.
fn wait_line(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(rest) = reelnet_testkit::line_after(path, 0, needle) {
            return rest;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}: {}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "--p2p",
        "--quic",
        "--tracker",
        "--bootstrap",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[gateway]\nlisten = 8080\n", "gateway.listen"),
        ("[quic]\nlisten = \"not an address\"\n", "quic.listen"),
        ("[storage]\nreplication = 0\n", "storage.replication"),
        ("[tracker]\nurl = \"ftp://x\"\n", "tracker.url"),
        ("[p2p]\nbootstrp = []\n", "bootstrp"),
        ("data_dir = [1,\n", "TOML"),
        // The shared secret is gone; the message points to invites.
        ("[requests]\nnode_secret = \"s3cret\"\n", "--invite"),
        (
            "[tracker]\nmembership_refresh_secs = 60\n",
            "tracker.membership_refresh_secs",
        ),
    ] {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("node.toml"), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
    }
    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

fn healthz(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn start_and_stop(data: &std::path::Path) -> String {
    // On port 0: the node prints the address it got.
    let out_path = data.with_extension("stdout");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--p2p", "/ip4/127.0.0.1/tcp/0", "--quic", "127.0.0.1:0"])
        .args([
            "--tracker",
            "http://127.0.0.1:9",
            "--bootstrap",
            "/ip4/127.0.0.1/tcp/1",
        ])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = wait_line(&out_path, "listening: gateway http://");
    let port = printed
        .split_whitespace()
        .next()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {printed:?}"))
        .port();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(r) = healthz(port) {
            break r;
        }
        assert!(Instant::now() < deadline, "node did not answer /healthz");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM should stop the node cleanly: {status}"
    );
    let node_id = body
        .split("\"node_id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    node_id.to_owned()
}

#[test]
fn starts_in_a_fresh_data_dir_and_keeps_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node-data");
    let first = start_and_stop(&data);
    assert_eq!(first.len(), 64);
    assert!(data.join("node.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key must not be readable by others");
    }
    assert_eq!(start_and_stop(&data), first, "same data dir, same node id");
}

/// `reelnet-node seed` makes a `.torrent` for a local file and seeds it on loopback; an
/// ingest of that `.torrent` with `--peer` gets the file from it (public DHT and trackers are
/// off, so the seeder is the only source) and publishes a movie. A missing file is refused
/// with its name; SIGTERM stops the seeder cleanly.
#[test]
fn seed_serves_a_torrent_that_ingest_reads() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let movie = dir.path().join("Seeded.Movie.2026.mp4");
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=640x360:rate=25:duration=8")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=8",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&movie)
        .output()
        .expect("ffmpeg CLI (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(BIN)
        .args(["seed", "/nonexistent/movie.mkv", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/movie.mkv"));

    // On port 0: the seeder says where it listens ("seeding 1 file(s) on ADDR; ...").
    let torrents = dir.path().join("torrents");
    let seed_err = dir.path().join("seed.stderr");
    let mut seeder = Command::new(BIN)
        .arg("seed")
        .arg(&movie)
        .args(["--listen", "127.0.0.1:0", "--torrent-dir"])
        .arg(&torrents)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&seed_err).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(seeder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let torrent = std::path::PathBuf::from(line.trim());
    assert_eq!(torrent, torrents.join("Seeded.Movie.2026.mp4.torrent"));
    let said = wait_line(&seed_err, "file(s) on ");
    let port = said
        .split(';')
        .next()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no seeder address in {said:?}"))
        .port();
    assert!(
        std::fs::read(&torrent).unwrap().starts_with(b"d"),
        "a bencoded torrent"
    );

    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "[p2p]\nmdns = false\n[ingest]\npublic_torrents = false\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .arg("ingest")
        .arg(&torrent)
        .args(["--peer", &format!("127.0.0.1:{port}"), "--direct"])
        .args(["--title", "Seeded Movie", "--year", "2026"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ingest from the seeder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ingested Seeded Movie as movie"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(120));
    // The download went through the torrent into the node's download directory.
    let downloads = dir.path().join("node/downloads");
    assert!(downloads.exists(), "no torrent download directory");

    Command::new("kill")
        .arg(seeder.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = seeder.try_wait().unwrap() {
            assert!(status.success(), "seeder exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "seeder ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
