//! One binary serves the site: a `reelnet-node` started without `--web-dir` serves the web
//! app embedded at build time (`node/build.rs` embeds `web/dist`) — `/` is the app's
//! `index.html` with its script tag, a bundle under `/assets/` comes with its content type
//! and a year of immutable caching, a client-side route gets `index.html`, and `/../` style
//! paths are refused. A binary built before the web app serves, instead, a page that says
//! how to build it (503), never an empty site: which of the two this build is follows from
//! whether `web/dist/index.html` existed when it was built, and each branch is checked.
//! With `--web-dir` the node serves that directory instead. `reelnet-node health` exits 0
//! against a running node and 1 when nothing answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reelnet_node::gateway::site::{Site, IMMUTABLE, REVALIDATE};

const BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");

/// A node on loopback (port 0 everywhere, no tracker, no peers); `web_dir` when given.
struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(root: &Path, name: &str, web_dir: Option<&Path>) -> Self {
        let data = root.join(name);
        let config = root.join(format!("{name}.toml"));
        std::fs::write(&config, "[p2p]\nmdns = false\n").unwrap();
        let out = root.join(format!("{name}.out"));
        let log = root.join(format!("{name}.log"));
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--p2p", "/ip4/127.0.0.1/tcp/0", "--quic", "127.0.0.1:0"])
            .args(["--tracker", "http://127.0.0.1:9"])
            .args(["--bootstrap", "/ip4/127.0.0.1/tcp/1"]);
        if let Some(dir) = web_dir {
            cmd.arg("--web-dir").arg(dir);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(rest) = reelnet_testkit::line_after(&out, 0, "listening: gateway http://") {
                if let Some(addr) = rest
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                {
                    break addr.port();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the node did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, port }
    }

    fn get(&self, target: &str) -> Answer {
        self.request(target, "")
    }

    /// One raw HTTP/1.1 GET (the path is sent as is: no client normalises `..` away).
    fn request(&self, target: &str, extra_headers: &str) -> Answer {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{target}: no header end in {raw:?}"));
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn health(&self) -> serde_json::Value {
        let a = self.get("/healthz");
        assert_eq!(a.status, 200);
        serde_json::from_slice(&a.body).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `/../` style paths: refused with 400 `bad_path`, never the app's shell.
fn refuses_traversal(node: &Node) {
    for target in [
        "/../Cargo.toml",
        "/assets/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/assets/..%2f..%2fCargo.toml",
        "//etc/passwd",
    ] {
        let a = node.get(target);
        assert_eq!(a.status, 400, "{target}: {}", a.text());
        assert!(a.text().contains("bad_path"), "{target}: {}", a.text());
    }
}

/// The first `src="/assets/…"` of the page.
fn first_asset(index: &str) -> String {
    let start = index
        .find("src=\"/assets/")
        .unwrap_or_else(|| panic!("no /assets/ script in {index}"))
        + "src=\"".len();
    let end = index[start..].find('"').unwrap() + start;
    index[start..end].to_owned()
}

#[test]
fn a_node_without_web_dir_serves_the_site_embedded_at_build_time() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "embedded", None);
    let dist = Path::new(Site::embedded_from());
    let built = Site::embedded_is_built();
    // The build looked at the app on disk: it embeds it exactly when it was there (and
    // Cargo re-runs the build when it appears or changes, so the two agree now).
    assert_eq!(
        dist.join("index.html").is_file(),
        built,
        "web app at {} and this build disagree",
        dist.display()
    );
    let health = node.health();
    let root = node.get("/");
    assert!(root
        .header("content-security-policy")
        .contains("script-src 'self'"));

    if built {
        assert_eq!(health["web"]["source"], "embedded", "{health}");
        assert_eq!(health["web"]["build"].as_str().map(str::len), Some(16));
        let index = Site::embedded_file("index.html").unwrap();
        assert_eq!(
            std::fs::read(dist.join("index.html")).unwrap(),
            index,
            "the embedded index.html is not the one in {}",
            dist.display()
        );
        assert_eq!(root.status, 200, "{}", root.text());
        assert_eq!(root.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(root.header("cache-control"), REVALIDATE);
        assert_eq!(root.body, index);
        let page = root.text();
        assert!(page.contains("<script type=\"module\""), "{page}");
        assert!(page.contains("id=\"root\""), "{page}");

        // The app's bundle: its content type, cached for good, the embedded bytes.
        let asset = first_asset(&page);
        let a = node.get(&asset);
        assert_eq!(a.status, 200, "{asset}");
        assert_eq!(
            a.header("content-type"),
            "text/javascript; charset=utf-8",
            "{asset}"
        );
        assert_eq!(a.header("cache-control"), IMMUTABLE);
        assert_eq!(
            Some(a.body.as_slice()),
            Site::embedded_file(asset.trim_start_matches('/'))
        );
        assert_eq!(
            a.body,
            std::fs::read(dist.join(asset.trim_start_matches('/'))).unwrap()
        );
        // Revalidation of the shell: 304 on its ETag.
        let etag = root.header("etag").to_owned();
        assert!(etag.starts_with('"'), "{etag:?}");
        let again = node.request("/", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());

        // Client-side routes get the shell; a missing bundle does not.
        for route in ["/movie/42", "/watch/m1", "/history", "/room/abc/"] {
            let a = node.get(route);
            assert_eq!((a.status, a.body.as_slice()), (200, index), "{route}");
        }
        let missing = node.get("/assets/index-missing.js");
        assert_eq!(missing.status, 404);
        // The other files of the build: manifest and service worker, revalidated.
        let manifest = node.get("/manifest.webmanifest");
        assert_eq!(manifest.status, 200);
        assert_eq!(manifest.header("content-type"), "application/manifest+json");
        assert_eq!(node.get("/sw.js").header("cache-control"), REVALIDATE);
    } else {
        // Built before the web app: loudly not a site.
        assert_eq!(health["web"]["source"], "not_built", "{health}");
        for route in ["/", "/movie/42"] {
            let a = node.get(route);
            assert_eq!(a.status, 503, "{route}");
            assert_eq!(a.header("content-type"), "text/html; charset=utf-8");
            assert_eq!(a.header("cache-control"), "no-store");
            let page = a.text();
            assert!(page.contains("npm ci &amp;&amp; npm run build"), "{page}");
            assert!(!page.contains("<script"), "{page}");
        }
        assert_eq!(node.get("/assets/index.js").status, 404);
    }
    refuses_traversal(&node);

    // `reelnet-node health`: against this node (by URL, and from the listen address, an
    // unspecified one meaning loopback), and against a port nothing answers on.
    let url = format!("http://127.0.0.1:{}/healthz", node.port);
    let ok = Command::new(BIN)
        .args(["health", "--url", &url])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let listen = format!("0.0.0.0:{}", node.port);
    let ok = Command::new(BIN)
        .args(["--listen", &listen, "health"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/healthz", closed.local_addr().unwrap());
    drop(closed);
    let bad = Command::new(BIN)
        .args(["health", "--timeout", "2", "--url", &dead])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let not_health = format!("http://127.0.0.1:{}/assets/index-missing.js", node.port);
    let bad = Command::new(BIN)
        .args(["health", "--url", &not_health])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
}

#[test]
fn web_dir_overrides_the_embedded_app() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>dev build</title><script type=\"module\" src=\"/assets/dev-1.js\"></script>",
    )
    .unwrap();
    std::fs::write(web.join("assets/dev-1.js"), "console.log('dev');").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not for the web").unwrap();
    let node = Node::start(dir.path(), "dir", Some(&web));

    assert_eq!(node.health()["web"]["source"], "dir");
    for route in ["/", "/movie/42"] {
        let a = node.get(route);
        assert_eq!(a.status, 200, "{route}");
        assert!(a.text().contains("dev build"), "{route}: {}", a.text());
        assert_eq!(a.header("cache-control"), REVALIDATE);
    }
    let a = node.get("/assets/dev-1.js");
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "console.log('dev');");
    assert_eq!(a.header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(a.header("cache-control"), IMMUTABLE);
    assert_eq!(node.get("/assets/gone.js").status, 404);
    refuses_traversal(&node);
    let a = node.get("/../secret.txt");
    assert!(!a.text().contains("not for the web"));
}
