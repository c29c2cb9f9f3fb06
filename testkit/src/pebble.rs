//! A real ACME CA for tests: Let's Encrypt's Pebble (Debian's `pebble` package) with
//! `pebble-challtestsrv` as its DNS server, every name resolving to 127.0.0.1, so a test can
//! order certificates for made-up names and have their challenges really validated against
//! servers on loopback.
//!
//! Pebble needs fixed ports in its config (its API, its management API, and the ports it
//! validates HTTP-01 and TLS-ALPN-01 on), so they are picked free just before it starts
//! ([`crate::free_port`]); the server under test then binds [`Pebble::http_port`] /
//! [`Pebble::tls_port`]. Pebble's own HTTPS certificate is made here (the package ships none):
//! trust [`Pebble::api_root`] to talk to its directory. Certificates it issues chain to
//! [`Pebble::issuing_root`], new at every start, fetched from its management port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a test wants Pebble.
#[derive(Debug, Clone, Default)]
pub struct PebbleOptions {
    /// Lifetime of issued certificates, seconds (Pebble's default: about 5 years).
    pub validity_secs: Option<u64>,
    /// `PEBBLE_VA_ALWAYS_VALID=1`: skip challenge validation.
    pub always_valid: bool,
}

/// A running Pebble and its DNS server; both are killed on drop.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// PEM file of the certificate Pebble's API serves (give it as `ca_root`).
    pub api_root: PathBuf,
    /// PEM of the root that issued certificates chain to.
    pub issuing_root: String,
    /// The port Pebble validates HTTP-01 challenges on.
    pub http_port: u16,
    /// The port Pebble validates TLS-ALPN-01 challenges on.
    pub tls_port: u16,
    /// Pebble's log.
    pub log: PathBuf,
    children: Vec<Child>,
}

fn udp_free_port() -> u16 {
    // The DNS server listens on UDP and TCP: a port free on both.
    loop {
        let port = crate::free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Pebble {
    /// Starts pebble-challtestsrv (DNS only) and Pebble with their files under `dir`, and
    /// waits until Pebble's management API hands out its issuing root.
    pub async fn start(dir: &Path, opts: PebbleOptions) -> Pebble {
        std::fs::create_dir_all(dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let api_root = dir.join("pebble-api.pem");
        std::fs::write(&api_root, cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-api.key"), key.serialize_pem()).unwrap();
        let (listen, management, http_port, tls_port, dns, dns_management) = (
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
            udp_free_port(),
            crate::free_port(),
        );
        let mut pebble = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": api_root,
            "privateKey": dir.join("pebble-api.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(secs) = opts.validity_secs {
            pebble["certificateValidityPeriod"] = secs.into();
        }
        let config = dir.join("pebble-config.json");
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&serde_json::json!({ "pebble": pebble })).unwrap(),
        )
        .unwrap();
        let log = dir.join("pebble.log");
        let out = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
        };
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(out())
            .stderr(out())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start pebble-challtestsrv ({e}); run scripts/setup.sh (Debian package pebble)")
            });
        let mut cmd = Command::new("pebble");
        cmd.arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}"), "-strict=false"])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(out())
            .stderr(out());
        if opts.always_valid {
            cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        let server = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start pebble ({e}); run scripts/setup.sh (Debian package pebble)")
        });
        let mut started = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            api_root,
            issuing_root: String::new(),
            http_port,
            tls_port,
            log,
            children: vec![dns_server, server],
        };
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        let roots = format!("https://127.0.0.1:{management}/roots/0");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&roots).send().await {
                if r.status().is_success() {
                    started.issuing_root = r.text().await.unwrap();
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Pebble did not start; its log:\n{}",
                std::fs::read_to_string(&started.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        started
    }

    /// Pebble's log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
