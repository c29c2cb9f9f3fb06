//! `health` subcommands of the binaries: one GET of a `/healthz`, for container health
//! checks (the runtime image has no curl) and service monitors. Exit 0 on 200.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: {status} (expected 200 OK)")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// `http://ADDR/healthz` for a server listening on `listen`, reached over loopback when it
/// listens on every address (`0.0.0.0` / `[::]`).
pub fn local_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/healthz")
}

/// GETs `url` (giving up after `timeout`): `Ok` on 200 OK.
pub async fn check(url: &str, timeout: Duration) -> Result<(), HealthError> {
    let request = |source| HealthError::Request {
        url: url.to_owned(),
        source,
    };
    let res = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(request)?
        .get(url)
        .send()
        .await
        .map_err(request)?;
    match res.status() {
        reqwest::StatusCode::OK => Ok(()),
        status => Err(HealthError::Status {
            url: url.to_owned(),
            status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_reached_over_loopback() {
        let url = |a: &str| local_url(a.parse().unwrap_or(SocketAddr::from(([1, 1, 1, 1], 1))));
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("[::]:80"), "http://[::1]:80/healthz");
        assert_eq!(url("127.0.0.2:7070"), "http://127.0.0.2:7070/healthz");
    }
}
