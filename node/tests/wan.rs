//! The WAN testnet (`testnet/wan.sh`) is what it claims to be, checked from inside its
//! namespaces with real traffic: home nodes reach the public nodes; nothing on the public
//! segment can open a connection to a home node (not at the router's WAN address, not at the
//! LAN address even with a route to it); routers 1 and 2 map a home socket to the same public
//! port for every destination (endpoint-independent) and router 3 to a new one per
//! destination (symmetric), so bare UDP hole punching works between routers 1 and 2 and
//! never with router 3; the viewer's link has ≥ 35 ms RTT and carries no more than its
//! shaper allows in either direction; `down` leaves no namespace, link or nft table behind,
//! and a second `down` is fine. On the same testnet (one `up`), the node's own NAT traversal
//! (issue 17): see [`nat_traversal_chain`].
//!
//! Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2, nft and python3; without the
//! privileges the test fails and says so rather than passing silently. Every run uses its own
//! namespace prefix and data directory; a drop guard tears everything down, even on panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NODE_BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");
/// The viewer link's configured rate (WAN_RATE) and the bound its measured throughput must
/// stay under (a quarter more, for timer slack in the measurement).
const LINK_MBIT: f64 = 20.0;
const LINK_BOUND_MBIT: f64 = 25.0;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A WAN testnet; `wan.sh down` on drop.
struct Wan {
    dir: tempfile::TempDir,
    prefix: String,
    helpers: Vec<Child>,
}

impl Wan {
    fn script(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("testnet/wan.sh"))
            .args(args)
            .current_dir(repo())
            .env("TESTNET_DIR", self.dir.path())
            .env("NETNS_PREFIX", &self.prefix)
            .env("NODE_BIN", NODE_BIN)
            .env("WAN_RATE", format!("{LINK_MBIT}mbit"))
            .env("WAN_DELAY_MS", "20")
            .env("WAN_LOSS", "0.5")
            .env("MESH_WAIT_SECS", "30")
            // The NAT chain's movie: short and small (a 360p ladder), on home1; three
            // copies so home2 (behind the other endpoint-independent NAT) always pulls it.
            .env("DEMO_SECONDS", "10")
            .env("DEMO_SIZE", "640x360")
            .env("WAN_REPLICATION", "3");
        let tracker = Path::new(NODE_BIN).with_file_name("reelnet-tracker");
        if tracker.is_file() {
            cmd.env("TRACKER_BIN", tracker);
        }
        cmd.output().unwrap()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.script(args);
        assert!(
            out.status.success(),
            "testnet/wan.sh {args:?} failed:\n{}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `python3 -c CODE ARGS...` in NAME's namespace.
    fn py(&self, name: &str, code: &str, args: &[&str]) -> Output {
        let mut all = vec!["exec", name, "python3", "-c", code];
        all.extend_from_slice(args);
        self.script(&all)
    }

    /// Starts `python3 -c CODE ARGS...` in NAME's namespace and leaves it running.
    fn spawn_py(&mut self, name: &str, code: &str, args: &[&str]) {
        let child = Command::new("bash")
            .arg(repo().join("testnet/wan.sh"))
            .args(["exec", name, "python3", "-c", code])
            .args(args)
            .current_dir(repo())
            .env("TESTNET_DIR", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.helpers.push(child);
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["tracker", "pub1", "home1", "home3", "wanlink"] {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            all += &format!("\n--- {name}.log (last lines) ---\n");
            for line in tail.into_iter().rev() {
                all += line;
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        for c in &mut self.helpers {
            let _ = c.kill();
            let _ = c.wait();
        }
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "wan.sh down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn require_netns(prefix: &str) {
    let probe = format!("{prefix}-probe");
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(out) if out.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
        }
        Ok(out) => panic!(
            "the WAN testnet test needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) to create network \
             namespaces, and `ip netns add` was refused: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("the WAN testnet test needs iproute2's `ip` command: {e}"),
    }
}

/// Tries a TCP connection to HOST PORT (timeout 1.5 s); prints "open" or the error.
const CONNECT: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(1.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("open")
except OSError as e:
    print("closed", type(e).__name__, e)
"#;

/// A UDP echo: answers every datagram with the sender's "ip:port" as it saw it.
const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(f"{peer[0]}:{peer[1]}".encode(), peer)
"#;

/// From one UDP socket bound to LOCAL_PORT, asks each echo (host:port args) how it sees us;
/// prints one "ip:port" line per echo (retrying a lost datagram).
const UDP_ASK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(0.5)
for target in sys.argv[2:]:
    host, port = target.split(":")
    for attempt in range(20):
        s.sendto(b"who am i", (host, int(port)))
        try:
            data, _ = s.recvfrom(2048)
            print(data.decode())
            break
        except socket.timeout:
            continue
    else:
        print("no answer")
"#;

/// A TCP sink on HOST PORT: accepts one connection, reads to EOF, prints
/// "bytes seconds" between the first and last byte received.
const TCP_SINK: &str = r#"
import socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
while True:
    c, _ = l.accept()
    n, first, last = 0, None, None
    while True:
        b = c.recv(262144)
        if not b:
            break
        now = time.monotonic()
        if first is None:
            first = now
        n += len(b)
        last = now
    try:
        c.sendall(f"{n} {(last or 0) - (first or 0):.6f}".encode())
    except OSError:
        pass
    c.close()
"#;

/// Sends as fast as it can to a TCP_SINK at HOST PORT for SECS seconds, then prints the
/// sink's "bytes seconds".
const TCP_SEND: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
buf = b"x" * 65536
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())
"#;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn port_of(mapping: &str) -> u16 {
    mapping
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not an ip:port answer: {mapping:?}"))
}

/// Waits (polling) until a python server in NAME's namespace answers a TCP connect on PORT,
/// or (for UDP) just until the process had time to bind: the UDP asker retries anyway.
fn wait_tcp(wan: &Wan, name: &str, host: &str, port: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if stdout(&wan.py(name, CONNECT, &[host, port])) == "open" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {host}:{port} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Transfer rate in Mbit/s from SENDER to a sink in RECEIVER at HOST:PORT over ~1.5 s.
fn measure(wan: &mut Wan, sender: &str, receiver: &str, host: &str, port: &str) -> f64 {
    wan.spawn_py(receiver, TCP_SINK, &[host, port]);
    // The sink's accept also answers a bare connect (and then reports 0 bytes): poll with
    // connects from the receiver's own namespace, which does not touch the link.
    wait_tcp(wan, receiver, host, port);
    let out = wan.py(sender, TCP_SEND, &[host, port, "1.5"]);
    let text = stdout(&out);
    let mut parts = text.split_whitespace();
    let bytes: f64 = parts.next().and_then(|b| b.parse().ok()).unwrap_or(0.0);
    let secs: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    assert!(
        bytes > 1e6 && secs > 0.5,
        "the {sender} -> {receiver} transfer moved {bytes} bytes in {secs} s ({text:?}, {})",
        String::from_utf8_lossy(&out.stderr)
    );
    bytes * 8.0 / secs / 1e6
}

/// Node NAME's status JSON (`wan.sh status`).
fn status(wan: &Wan, name: &str) -> Value {
    serde_json::from_str(&wan.run(&["status", name])).unwrap()
}

/// One sample of node NAME's /metrics (fetched inside its namespace), `metric{labels}` → value.
fn metric(wan: &Wan, name: &str, ip: &str, series: &str) -> f64 {
    let text = wan.run(&[
        "exec",
        name,
        "curl",
        "-fsS",
        "-m",
        "5",
        &format!("http://{ip}:8080/metrics"),
    ]);
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} on {name}'s /metrics"))
}

/// Polls CHECK every 200 ms until it returns Some, or panics with WHAT after SECS.
fn poll<T>(secs: u64, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what} not within {secs} s; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Issue 17's chain with the node's own NAT traversal: every home node enrolled, is
/// reported unreachable (AutoNAT v2: private) and holds a relay reservation; home1 and
/// home2 (endpoint-independent NATs) hole-punch to each other (DCUtR); a movie ingested on
/// home1 only is pulled by home2 over that direct connection (bytes counted on the direct
/// path, none relayed), and home3 (symmetric NAT) never gets a direct connection by
/// punching.
fn nat_traversal_chain(wan: &Wan, addr: &dyn Fn(&str) -> String) {
    let homes = ["home1", "home2", "home3"];
    for home in homes {
        let st = status(wan, home);
        assert_eq!(
            st["membership"]["member"], true,
            "{home} not enrolled: {st}"
        );
    }
    for home in homes {
        poll(
            45,
            &format!("{home} private with a relay reservation"),
            || {
                let nat = status(wan, home)["nat"].clone();
                if nat["reachability"] == "private" && nat["relay_reservations"] == 1 {
                    Ok(())
                } else {
                    Err(nat.to_string())
                }
            },
        );
        let relay = status(wan, home)["nat"]["relay"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            relay.contains(&format!("/ip4/{}/", addr("pub1")))
                || relay.contains(&format!("/ip4/{}/", addr("pub2"))),
            "{home}'s relay is not a public node: {relay}"
        );
    }
    for home in ["home1", "home2"] {
        poll(45, &format!("{home}'s hole punch"), || {
            let n = metric(
                wan,
                home,
                &addr(home),
                "reelnet_p2p_hole_punch_total{result=\"success\"}",
            );
            if n >= 1.0 {
                Ok(())
            } else {
                Err(format!("{n} successes"))
            }
        });
    }

    // A movie only home nodes hold: ingested on home1, pulled by home2 straight from home1.
    let demo = wan.run(&["demo"]);
    eprintln!("{demo}");
    let movie = status(wan, "home1")["manifests"][0]["movie_id"]
        .as_str()
        .unwrap()
        .to_owned();
    poll(90, "home2 holding the movie", || {
        let st = status(wan, "home2");
        let held = st["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["movie_id"] == movie.as_str() && m["complete"] == true);
        if held {
            Ok(())
        } else {
            Err(st["manifests"].to_string())
        }
    });
    let path = |p: &str| format!("reelnet_segment_fetch_bytes_total{{path=\"{p}\"}}");
    let direct = metric(wan, "home2", &addr("home2"), &path("libp2p_direct"));
    let relayed = metric(wan, "home2", &addr("home2"), &path("libp2p_relayed"));
    let served = metric(
        wan,
        "home1",
        &addr("home1"),
        "reelnet_p2p_direct_bytes_total",
    );
    eprintln!("home2 pulled {direct} bytes direct, {relayed} relayed; home1 sent {served} direct");
    assert!(
        direct > 100_000.0,
        "home2 pulled {direct} bytes on the direct path"
    );
    assert_eq!(relayed, 0.0, "home2 pulled segments through the relay");
    assert!(
        served >= direct,
        "home1 sent {served} direct bytes, home2 got {direct}"
    );
    // The symmetric NAT: DCUtR never succeeds for home3.
    let punched = metric(
        wan,
        "home3",
        &addr("home3"),
        "reelnet_p2p_hole_punch_total{result=\"success\"}",
    );
    assert_eq!(punched, 0.0, "home3 (symmetric NAT) hole-punched");
}

fn host_links() -> String {
    stdout(&Command::new("ip").args(["-o", "link"]).output().unwrap())
        .lines()
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn wan_testnet_has_nat_routers_and_a_shaped_viewer_link() {
    let prefix = format!("w{}", std::process::id() % 10_000_000);
    require_netns(&prefix);
    let links_before = host_links();
    let mut wan = Wan {
        dir: tempfile::tempdir().unwrap(),
        prefix: prefix.clone(),
        helpers: Vec::new(),
    };
    let up = wan.run(&["up"]);
    eprintln!("{up}");
    let info: Value = serde_json::from_str(&wan.run(&["info"])).unwrap();
    let addr = |n: &str| info["addresses"][n].as_str().unwrap().to_owned();
    assert_eq!(info["prefix"], prefix.as_str());
    assert_eq!(info["nat"]["r3"], "symmetric");

    // Home nodes reach the public nodes (through their NAT), and each other's router only
    // the way any public host would.
    for k in 1..=3 {
        let home = format!("home{k}");
        for public in ["pub1", "pub2"] {
            let url = format!("http://{}:8080/healthz", addr(public));
            let out = wan.script(&["exec", &home, "curl", "-fsS", "-m", "5", &url]);
            assert!(
                out.status.success(),
                "{home} cannot reach {public}'s gateway ({url}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // Nothing from the public side gets in. Positive control first: the home node's ports
    // answer inside its LAN (from its router), so "closed" below is the NAT's doing.
    for k in 1..=3 {
        let home_ip = addr(&format!("home{k}"));
        let router = format!("r{k}");
        let router_wan = addr(&router);
        for port in ["8080", "4001"] {
            assert_eq!(
                stdout(&wan.py(&router, CONNECT, &[&home_ip, port])),
                "open",
                "home{k}'s port {port} does not answer even inside its LAN"
            );
            let from_pub = stdout(&wan.py("pub1", CONNECT, &[&router_wan, port]));
            assert!(
                from_pub.starts_with("closed"),
                "pub1 opened a connection to router {router}'s WAN address {router_wan}:{port}"
            );
        }
        // Even a public host that routes the LAN prefix to the router gets nowhere: the
        // router forwards only what its LAN started.
        let lan = format!("198.18.{}.0/24", 10 + k);
        wan.run(&[
            "exec",
            "pub1",
            "ip",
            "route",
            "add",
            &lan,
            "via",
            &router_wan,
        ]);
        let direct = stdout(&wan.py("pub1", CONNECT, &[&home_ip, "8080"]));
        wan.run(&["exec", "pub1", "ip", "route", "del", &lan]);
        assert!(
            direct.starts_with("closed"),
            "pub1 reached home{k}'s LAN address {home_ip}:8080 through {router}: {direct}"
        );
    }

    // NAT mapping: one home socket, two public destinations.
    for public in ["pub1", "pub2"] {
        wan.spawn_py(public, UDP_ECHO, &[&addr(public), "9999"]);
    }
    let targets = [
        format!("{}:9999", addr("pub1")),
        format!("{}:9999", addr("pub2")),
    ];
    for k in 1..=3 {
        let local_port = (41000 + k).to_string();
        let out = wan.py(
            &format!("home{k}"),
            UDP_ASK,
            &[&local_port, &targets[0], &targets[1]],
        );
        let seen: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        assert_eq!(seen.len(), 2, "home{k}'s UDP probe: {seen:?} {out:?}");
        for s in &seen {
            assert!(
                s.starts_with(&format!("{}:", addr(&format!("r{k}")))),
                "home{k} was seen as {s}, not behind its router's WAN address"
            );
        }
        let (a, b) = (port_of(&seen[0]), port_of(&seen[1]));
        if k == 3 {
            assert_ne!(
                a, b,
                "router 3 (symmetric) mapped both destinations to port {a}"
            );
        } else {
            assert_eq!(
                a, b,
                "router {k} (endpoint-independent) mapped one socket to two ports"
            );
            assert_eq!(
                a.to_string(),
                local_port,
                "router {k} did not keep the port"
            );
        }
        eprintln!("home{k} seen as {} and {}", seen[0], seen[1]);
    }

    // Hole punching with bare UDP through a rendezvous on pub1: it works between the two
    // endpoint-independent NATs and never with the symmetric one (whose mapping toward the
    // peer differs from the one the rendezvous saw).
    let punch: Value =
        serde_json::from_str(&wan.run(&["punch", "--attempts", "3", "--window-ms", "500"]))
            .unwrap();
    eprintln!("hole punching: {punch}");
    for pair in punch["pairs"].as_array().unwrap() {
        let want = if pair["pair"] == "home1-home2" { 3 } else { 0 };
        assert_eq!(pair["successes"], want, "hole punching {pair}");
    }

    nat_traversal_chain(&wan, &addr);

    // The viewer's link: RTT ≥ 35 ms (20 ms each way), throughput within the shaper's rate
    // both ways.
    let ping = wan.script(&[
        "exec",
        "viewer",
        "ping",
        "-c",
        "10",
        "-i",
        "0.2",
        "-W",
        "2",
        &addr("pub1"),
    ]);
    let text = stdout(&ping);
    let min_rtt: f64 = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no RTT from the viewer's ping: {text}"));
    eprintln!("viewer -> pub1 min RTT {min_rtt} ms");
    assert!(
        min_rtt >= 35.0,
        "the viewer's RTT is {min_rtt} ms, not ~40 ms"
    );
    let down = measure(&mut wan, "pub1", "viewer", &addr("viewer"), "9100");
    let up_rate = measure(&mut wan, "viewer", "pub2", &addr("pub2"), "9101");
    eprintln!("viewer link: {down:.1} Mbit/s down, {up_rate:.1} Mbit/s up (shaped to {LINK_MBIT})");
    for (what, rate) in [("download", down), ("upload", up_rate)] {
        assert!(
            rate < LINK_BOUND_MBIT,
            "the viewer's {what} ran at {rate:.1} Mbit/s, above the {LINK_MBIT} Mbit/s shaper"
        );
    }

    // Teardown leaves nothing, and a second down is fine.
    for c in &mut wan.helpers {
        let _ = c.kill();
        let _ = c.wait();
    }
    wan.helpers.clear();
    wan.run(&["down"]);
    wan.run(&["down"]);
    let netns = stdout(&Command::new("ip").args(["netns", "list"]).output().unwrap());
    assert!(
        !netns.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces left after down: {netns}"
    );
    assert_eq!(host_links(), links_before, "host links changed");
    let tables = stdout(
        &Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap(),
    );
    assert!(
        !tables.contains("table ip wan"),
        "nft tables left: {tables}"
    );
}
