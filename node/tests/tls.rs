//! The node's gateway over HTTPS with a certificate from a real ACME CA: Pebble (started
//! here, its DNS answering 127.0.0.1 for every name) validates a TLS-ALPN-01 challenge
//! against the gateway itself, then a client that trusts only Pebble's issuing root reaches
//! the gateway; HSTS on every answer, the certificate metrics on `/metrics`, and plain HTTP
//! on the redirect listener answered with a redirect to the same path and query. A real
//! `reelnet-node` process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use reelnet_testkit::pebble::{Pebble, PebbleOptions};
use reelnet_testkit::{free_port, wait_for};

const NODE_BIN: &str = env!("CARGO_BIN_EXE_reelnet-node");
const DOMAIN: &str = "node.reelnet.test";

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn gateway_gets_a_certificate_from_pebble_by_tls_alpn_and_redirects_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    // Challenges are validated for real (no PEBBLE_VA_ALWAYS_VALID).
    let pebble = Pebble::start(&dir.path().join("pebble"), PebbleOptions::default()).await;
    let data = dir.path().join("node");
    let redirect_port = free_port();
    // Pebble validates TLS-ALPN-01 on its configured port: the gateway listens there.
    let gateway: SocketAddr = ([127, 0, 0, 1], pebble.tls_port).into();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = {data:?}
[p2p]
mdns = false
listen = "/ip4/127.0.0.1/tcp/0"
[quic]
listen = "127.0.0.1:0"
[tracker]
url = "http://127.0.0.1:9"
[gateway]
listen = "{gateway}"
[gateway.tls]
redirect_listen = "127.0.0.1:{redirect_port}"
hsts_max_age_secs = 86400
[gateway.tls.acme]
domains = ["{DOMAIN}"]
directory = "{directory}"
contact = ["ops@reelnet.test"]
challenge = "tls-alpn-01"
ca_root = {ca_root:?}
"#,
            directory = pebble.directory,
            ca_root = pebble.api_root,
        ),
    )
    .unwrap();
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Child(
        Command::new(NODE_BIN)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info,reelnet_runtime::serve=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let printed = reelnet_testkit::read_line_after(
        &log_path,
        0,
        "listening: gateway https://",
        Duration::from_secs(30),
        || child.0.try_wait().ok().flatten().is_none(),
    )
    .await;
    let origin = format!("https://{DOMAIN}:{}", pebble.tls_port);
    assert!(
        printed.contains(&format!("({origin})")),
        "the default public URL is the https origin: {printed}"
    );

    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(pebble.issuing_root.as_bytes()).unwrap(),
        )
        .resolve(DOMAIN, gateway)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let node_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let (res, _) = wait_for(
        "the gateway to serve HTTPS with Pebble's certificate",
        Duration::from_secs(60),
        || async {
            client
                .get(format!("{origin}/healthz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        },
    )
    .await;
    assert_eq!(res.headers()["strict-transport-security"], "max-age=86400");
    let health: serde_json::Value = res.json().await.unwrap();
    assert!(health["node_id"].is_string(), "{health}");
    // Pebble (not told to skip validation) connected to the gateway with ALPN acme-tls/1
    // and accepted the challenge certificate it was shown.
    assert!(
        node_log().contains("answered a TLS-ALPN-01 validation"),
        "{}",
        node_log()
    );
    assert!(
        pebble
            .log_text()
            .contains("set VALID by completed challenge"),
        "{}",
        pebble.log_text()
    );
    assert!(
        node_log().contains("obtained a certificate from the ACME CA"),
        "{}",
        node_log()
    );

    let metrics = client
        .get(format!("{origin}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(metrics.headers().contains_key("strict-transport-security"));
    let text = metrics.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("reelnet_tls_cert_expiry_seconds ") > 24.0 * 3600.0);
    assert_eq!(value("reelnet_acme_orders_total{result=\"ok\"} "), 1.0);
    for file in ["account.json", "cert.pem", "key.pem"] {
        assert_eq!(
            reelnet_testkit::file_mode(&data.join("acme").join(file)),
            0o600,
            "{file}"
        );
    }

    // Plain HTTP on the redirect listener: the same path and query on the https origin.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = plain
        .get(format!(
            "http://127.0.0.1:{redirect_port}/watch/m1?t=42&lang=fr"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        format!("{origin}/watch/m1?t=42&lang=fr")
    );
    assert!(!res.headers().contains_key("strict-transport-security"));
    let res = plain
        .put(format!(
            "http://127.0.0.1:{redirect_port}/api/v1/me/progress"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("{origin}/api/v1/me/progress")
    );
    // And plain HTTP on the HTTPS port gets no answer from the web app.
    assert!(plain
        .get(format!("http://{gateway}/healthz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success()));
    drop(child);
}
