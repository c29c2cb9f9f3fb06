//! HTTPS from the runtime crate against real parts: certificate files on disk that change
//! under a running server, and a real ACME CA (Pebble, started by the test) validating
//! HTTP-01 challenges on the redirect listener and renewing short-lived certificates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reelnet_runtime::metrics::Registry;
use reelnet_runtime::serve;
use reelnet_runtime::tls::{self, AcmeChallenge, AcmeConfig, Tls, TlsConfig, TlsMetrics};
use reelnet_testkit::pebble::{Pebble, PebbleOptions};
use reelnet_testkit::wait_for;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The certificate tasks' logs in the test output (shown for a failing test).
    let _ = tracing_subscriber::fmt()
        .with_env_filter("reelnet_runtime=debug,instant_acme=debug")
        .with_test_writer()
        .try_init();
}

/// A test CA and leaf certificates it signs for `localhost`.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf for `localhost`: (cert PEM, key PEM, cert DER).
    fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// The app under test: says hello and who is calling.
fn app() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    serve::remote().map(|peer: Option<SocketAddr>| {
        format!(
            "hello {}",
            peer.map(|p| p.ip().to_string()).unwrap_or_default()
        )
    })
}

async fn serve_https(tls: Tls, stop: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve::serve_tls_until(listener, app(), tls, stop));
    addr
}

/// A client that trusts only `root` and reaches `name` at `addr`. Every [`Probe::fetch`]
/// is a new client: a new connection and no TLS session to resume, so it sees the
/// certificate served now (a resumed session would show the one it began with).
struct Probe {
    root: String,
    name: String,
    addr: SocketAddr,
}

impl Probe {
    fn new(root: &str, name: &str, addr: SocketAddr) -> Probe {
        Probe {
            root: root.to_owned(),
            name: name.to_owned(),
            addr,
        }
    }

    /// The leaf certificate the server presented, with the answer's HSTS header and body.
    async fn fetch(&self, url: &str) -> Option<(Vec<u8>, Option<String>, String)> {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.root.as_bytes()).unwrap())
            .resolve(&self.name, self.addr)
            .tls_info(true)
            .build()
            .unwrap();
        let res = client.get(url).send().await.ok()?;
        let leaf = res
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .map(<[u8]>::to_vec)?;
        let hsts = res
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_owned());
        Some((leaf, hsts, res.text().await.ok()?))
    }
}

fn metric(registry: &Registry, line_start: &str) -> u64 {
    let text = reelnet_runtime::metrics::render(registry);
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn file_certificates_reload_without_restart_and_a_bad_pair_keeps_the_old_one() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = Ca::new();
    let (first, first_key, first_der) = ca.leaf();
    std::fs::write(&cert, &first).unwrap();
    std::fs::write(&key, &first_key).unwrap();
    let config = TlsConfig {
        cert: Some(cert.clone()),
        key: Some(key.clone()),
        hsts_max_age_secs: 600,
        ..TlsConfig::default()
    };
    let metrics = TlsMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let stop = CancellationToken::new();
    let (tls, task) = tls::start(&config, "http.tls", dir.path(), metrics, stop.clone()).unwrap();
    let addr = serve_https(tls, stop.clone()).await;
    let url = format!("https://localhost:{}/", addr.port());
    let client = Probe::new(&ca.pem, "localhost", addr);

    let (leaf, hsts, body) = client.fetch(&url).await.unwrap();
    assert_eq!(leaf, first_der);
    assert_eq!(hsts.as_deref(), Some("max-age=600"));
    assert_eq!(body, "hello 127.0.0.1", "the handler sees the peer address");
    assert!(metric(&registry, "reelnet_tls_cert_expiry_seconds ") > 3600);

    // A new pair, written in place: served without a restart.
    let (second, second_key, second_der) = ca.leaf();
    std::fs::write(&key, &second_key).unwrap();
    std::fs::write(&cert, &second).unwrap();
    wait_for(
        "the new certificate to be served",
        Duration::from_secs(20),
        || async {
            client
                .fetch(&url)
                .await
                .filter(|(leaf, ..)| *leaf == second_der)
        },
    )
    .await;

    // A certificate whose key is not beside it: refused, the second pair stays.
    let (third, _, third_der) = ca.leaf();
    std::fs::write(&cert, &third).unwrap();
    wait_for(
        "the bad pair to be tried",
        Duration::from_secs(20),
        || async {
            (metric(
                &registry,
                "reelnet_tls_cert_reloads_total{result=\"error\"} ",
            ) >= 1)
                .then_some(())
        },
    )
    .await;
    let (leaf, ..) = client.fetch(&url).await.expect("still serving");
    assert_eq!(leaf, second_der);
    assert_ne!(leaf, third_der);

    // Garbage is refused too, and so is a missing file.
    std::fs::write(&key, "not a key").unwrap();
    wait_for(
        "the garbage to be tried",
        Duration::from_secs(20),
        || async {
            (metric(
                &registry,
                "reelnet_tls_cert_reloads_total{result=\"error\"} ",
            ) >= 2)
                .then_some(())
        },
    )
    .await;
    assert_eq!(client.fetch(&url).await.unwrap().0, second_der);

    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_bad_pair_at_start_is_a_clear_error() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert_pem, _, _) = ca.leaf();
    let (_, other_key, _) = ca.leaf();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, other_key).unwrap();
    let config = TlsConfig {
        cert: Some(cert),
        key: Some(key.clone()),
        ..TlsConfig::default()
    };
    let err = tls::start(
        &config,
        "http.tls",
        dir.path(),
        TlsMetrics::default(),
        CancellationToken::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not go with the key"), "{err}");
    std::fs::remove_file(&key).unwrap();
    let err = tls::start(
        &config,
        "http.tls",
        dir.path(),
        TlsMetrics::default(),
        CancellationToken::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("k.pem"), "{err}");
}

fn acme_config(pebble: &Pebble, domain: &str, challenge: AcmeChallenge) -> AcmeConfig {
    AcmeConfig {
        domains: vec![domain.to_owned()],
        directory: pebble.directory.clone(),
        contact: vec!["ops@reelnet.test".to_owned()],
        challenge,
        ca_root: Some(pebble.api_root.clone()),
        ..AcmeConfig::default()
    }
}

fn mode(path: &Path) -> u32 {
    reelnet_testkit::file_mode(path)
}

#[tokio::test]
async fn acme_http01_on_the_redirect_listener_and_redirects() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(&dir.path().join("pebble"), PebbleOptions::default()).await;
    let domain = "http01.reelnet.test";
    // Pebble validates HTTP-01 on its configured port: the redirect listener is there.
    let redirect = TcpListener::bind(("127.0.0.1", pebble.http_port))
        .await
        .unwrap();
    let config = TlsConfig {
        acme: Some(acme_config(&pebble, domain, AcmeChallenge::Http01)),
        redirect_listen: Some(redirect.local_addr().unwrap()),
        ..TlsConfig::default()
    };
    let metrics = TlsMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let data = dir.path().join("data");
    let stop = CancellationToken::new();
    let (tls, task) = tls::start(&config, "http.tls", &data, metrics, stop.clone()).unwrap();
    assert!(tls.current_leaf().is_none(), "nothing stored yet");
    let addr = serve_https(tls.clone(), stop.clone()).await;
    let origin = format!("https://{domain}:{}", addr.port());
    tokio::spawn(serve::serve_until(
        redirect,
        serve::redirect_filter(origin.clone(), tls.clone()),
        stop.clone(),
    ));

    let client = Probe::new(&pebble.issuing_root, domain, addr);
    let (leaf, hsts, body) = wait_for(
        "a certificate from Pebble",
        Duration::from_secs(60),
        || async { client.fetch(&format!("{origin}/")).await },
    )
    .await
    .0;
    assert_eq!(body, "hello 127.0.0.1");
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    assert_eq!(Some(leaf.clone()), tls.current_leaf().map(|c| c.to_vec()));
    assert_eq!(
        metric(&registry, "reelnet_acme_orders_total{result=\"ok\"} "),
        1
    );
    assert!(
        pebble
            .log_text()
            .contains(&format!("validate w/ HTTP: http://{domain}:")),
        "Pebble validated the challenge itself: {}",
        pebble.log_text()
    );
    for file in ["account.json", "cert.pem", "key.pem"] {
        assert_eq!(mode(&data.join("acme").join(file)), 0o600, "{file}");
    }

    // Plain HTTP: a redirect to the same path and query on the HTTPS origin.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let http = format!("http://127.0.0.1:{}", pebble.http_port);
    let res = plain
        .get(format!("{http}/movies/42?t=9&x=%20"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        format!("{origin}/movies/42?t=9&x=%20")
    );
    let res = plain
        .post(format!("{http}/api/v1/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], format!("{origin}/api/v1/login"));
    // No pending order: a challenge path is redirected like any other.
    let res = plain
        .get(format!("{http}/.well-known/acme-challenge/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);

    // A restart reuses the stored account and certificate: served at once, no new order.
    stop.cancel();
    task.await.unwrap();
    let metrics = TlsMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let stop = CancellationToken::new();
    let (tls, task) = tls::start(&config, "http.tls", &data, metrics, stop.clone()).unwrap();
    assert_eq!(tls.current_leaf().map(|c| c.to_vec()), Some(leaf));
    assert!(metric(&registry, "reelnet_tls_cert_expiry_seconds ") > 24 * 3600);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        metric(&registry, "reelnet_acme_orders_total{result=\"ok\"} "),
        0
    );
}

#[tokio::test]
async fn acme_renews_a_short_lived_certificate_without_restart() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    // Validation is not under test here (the other tests validate for real).
    let pebble = Pebble::start(
        &dir.path().join("pebble"),
        PebbleOptions {
            validity_secs: Some(10),
            always_valid: true,
        },
    )
    .await;
    let domain = "renew.reelnet.test";
    let config = TlsConfig {
        acme: Some(AcmeConfig {
            // Longer than the lifetime: renewal at half life.
            renew_before_secs: 3600,
            ..acme_config(&pebble, domain, AcmeChallenge::TlsAlpn01)
        }),
        ..TlsConfig::default()
    };
    let metrics = TlsMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let stop = CancellationToken::new();
    let (tls, task) = tls::start(&config, "http.tls", dir.path(), metrics, stop.clone()).unwrap();
    let addr = serve_https(tls, stop.clone()).await;
    let url = format!("https://{domain}:{}/", addr.port());
    let client = Probe::new(&pebble.issuing_root, domain, addr);
    let first = wait_for("a first certificate", Duration::from_secs(60), || async {
        client.fetch(&url).await.map(|(leaf, ..)| leaf)
    })
    .await
    .0;
    let (_, end) = tls::validity(&first).unwrap();
    let (start, _) = tls::validity(&first).unwrap();
    assert!(end - start <= 11, "Pebble honoured the short lifetime");
    let second = wait_for("a renewed certificate", Duration::from_secs(60), || async {
        client
            .fetch(&url)
            .await
            .map(|(leaf, ..)| leaf)
            .filter(|leaf| *leaf != first)
    })
    .await
    .0;
    let serial = |der: &[u8]| {
        x509_parser::parse_x509_certificate(der)
            .unwrap()
            .1
            .raw_serial()
            .to_vec()
    };
    assert_ne!(serial(&first), serial(&second));
    assert!(metric(&registry, "reelnet_acme_orders_total{result=\"ok\"} ") >= 2);
    stop.cancel();
    task.await.unwrap();
}
