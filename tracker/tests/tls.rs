//! The tracker over HTTPS (`[http.tls]` with certificate files): a tracker in this process
//! (`Tracker::bind`, real sockets on loopback), a client that trusts only the test CA, the
//! HSTS header, the certificate metrics and the plain-HTTP redirect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use reelnet_runtime::tls::TlsConfig;
use reelnet_tracker::config::TrackerConfig;

#[tokio::test]
async fn tracker_serves_https_from_certificate_files_and_redirects_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    // A test CA and a certificate for localhost it signed.
    let (ca_pem, cert_pem, key_pem) = common::test_ca("localhost");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();

    let redirect = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect_addr = redirect.local_addr().unwrap();
    drop(redirect);
    let mut config = TrackerConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        issuer: "test-tracker".to_owned(),
        ..TrackerConfig::default()
    };
    config.smtp.port = 9;
    config.http.tls = Some(TlsConfig {
        cert: Some(cert_path),
        key: Some(key_path),
        redirect_listen: Some(redirect_addr),
        ..TlsConfig::default()
    });
    config
        .validate(std::path::Path::new("tracker.toml"))
        .unwrap();
    let tracker = reelnet_tracker::Tracker::bind(config).await.unwrap();
    let port = tracker.addr().port();
    let origin = format!("https://localhost:{port}");
    // With certificate files and no public_url, the origin is the bound address over https.
    let public = format!("https://127.0.0.1:{port}");
    assert_eq!(tracker.api().config().public_origin(), public);

    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("localhost", tracker.addr())
        .tls_info(true)
        .build()
        .unwrap();
    let res = client
        .get(format!("{origin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let leaf = res
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec);
    let cert_der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
    };
    assert_eq!(leaf.as_deref(), Some(cert_der.as_ref()));
    let jwks = client
        .get(format!("{origin}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    let metrics = client
        .get(format!("{origin}/metrics"))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("reelnet_tls_cert_expiry_seconds "))
        .unwrap_or_else(|| panic!("no expiry gauge in {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(expiry > 24 * 3600, "{expiry}");

    // Plain HTTP is not served on the HTTPS port...
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success()));
    // ...but redirected from the redirect listener, path and query kept.
    let res = plain
        .get(format!(
            "http://{redirect_addr}/authorize?client_id=a&state=b"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        format!("{public}/authorize?client_id=a&state=b")
    );
    tracker.shutdown();
    tracker.join().await;
}
