//! Serving a warp filter on a listener that is already bound (so port 0 reports the real
//! port before anything is advertised), until a token is cancelled; requests in flight
//! then finish before the future returns.
//!
//! Plain HTTP goes through warp's own server. HTTPS ([`serve_tls_until`]) cannot: warp 0.4
//! has no TLS, so each accepted connection is handshaken with tokio-rustls and served by
//! hyper-util's HTTP/1.1 + HTTP/2 builder calling [`warp::service`], with the same graceful
//! shutdown (stop accepting, let the connections finish their requests). warp's own
//! remote-address extension is private to warp, so handlers read the peer address through
//! [`remote`], which works under both servers. [`redirect_filter`] is what the plain-HTTP
//! side answers when HTTPS is on: a redirect to the same path on the HTTPS origin, and
//! ACME HTTP-01 answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::http::{header, HeaderValue, Method, Response, StatusCode};
use warp::Filter;

use crate::shutdown::{Shutdown, Stage};
use crate::tls::{Tls, ACME_TLS_ALPN};

/// Serves `filter` on `listener` until `stop` is cancelled and the requests in flight
/// are answered. Spawn it through [`Shutdown::spawn`], or use [`spawn_http`].
pub async fn serve_until<F>(listener: TcpListener, filter: F, stop: CancellationToken)
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    warp::serve(filter)
        .incoming(listener)
        .graceful(async move { stop.cancelled().await })
        .run()
        .await;
}

/// Spawns a server for `filter` in the [`Stage::Http`] stage of `shutdown`: it stops
/// accepting when shutdown is triggered and is waited for before workers are stopped.
pub fn spawn_http<F>(
    shutdown: &Shutdown,
    name: &'static str,
    listener: TcpListener,
    filter: F,
) -> tokio::task::JoinHandle<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let stop = shutdown.token(Stage::Http);
    shutdown.spawn(Stage::Http, name, async move {
        serve_until(listener, filter, stop).await;
        Ok::<(), std::convert::Infallible>(())
    })
}

/// The peer address of a connection served by [`serve_tls_until`] (a request extension).
#[derive(Clone, Copy, Debug)]
struct PeerAddr(SocketAddr);

/// The remote address of the connection a request came on, under [`serve_until`] or
/// [`serve_tls_until`]. Use it instead of `warp::addr::remote()`, which only knows warp's
/// own server.
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>()
        .and(warp::addr::remote())
        .map(|peer: Option<PeerAddr>, warp: Option<SocketAddr>| peer.map(|p| p.0).or(warp))
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `filter` over HTTPS on `listener` with the certificate `tls` holds, until `stop`
/// is cancelled and the requests in flight are answered. Every answer carries the HSTS
/// header (unless turned off). A TLS-ALPN-01 validation connection ends after its
/// handshake.
pub async fn serve_tls_until<F>(listener: TcpListener, filter: F, tls: Tls, stop: CancellationToken)
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let hsts = tls.hsts().cloned();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::debug!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, hsts, filter) = (acceptor.clone(), hsts.clone(), filter.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%err, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            if stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                tracing::debug!(%peer, "answered a TLS-ALPN-01 validation");
                return;
            }
            let svc = hyper_util::service::TowerToHyperService::new(warp::service(filter));
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    let answer = hyper::service::Service::call(&svc, req);
                    let hsts = hsts.clone();
                    async move {
                        let mut res = answer.await?;
                        if let Some(value) = hsts {
                            res.headers_mut()
                                .insert(header::STRICT_TRANSPORT_SECURITY, value);
                        }
                        Ok::<_, Infallible>(res)
                    }
                },
            );
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc);
            if let Err(err) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%err, %peer, "HTTPS connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Spawns an HTTPS server for `filter` in the [`Stage::Http`] stage of `shutdown`, like
/// [`spawn_http`].
pub fn spawn_https<F>(
    shutdown: &Shutdown,
    name: &'static str,
    listener: TcpListener,
    filter: F,
    tls: Tls,
) -> tokio::task::JoinHandle<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let stop = shutdown.token(Stage::Http);
    shutdown.spawn(Stage::Http, name, async move {
        serve_tls_until(listener, filter, tls, stop).await;
        Ok::<(), std::convert::Infallible>(())
    })
}

/// What the plain-HTTP listener answers when HTTPS is on: ACME HTTP-01 challenges
/// (`/.well-known/acme-challenge/{token}`) while an order waits for them, and for anything
/// else a redirect to the same path and query on `https_origin` (`https://host[:port]`,
/// taken from the config, never from the request's Host header): 301 for GET and HEAD,
/// 308 (method and body kept) for the rest.
pub fn redirect_filter(
    https_origin: String,
    tls: Tls,
) -> impl Filter<Extract = (Response<String>,), Error = Infallible> + Clone {
    let origin = https_origin.trim_end_matches('/').to_owned();
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            move |method: Method, path: warp::path::FullPath, query: String| {
                let path = path.as_str();
                if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
                    if let Some(answer) = tls.http01(token) {
                        let mut res = Response::new(answer);
                        res.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/octet-stream"),
                        );
                        return res;
                    }
                }
                let location = if query.is_empty() {
                    format!("{origin}{path}")
                } else {
                    format!("{origin}{path}?{query}")
                };
                let status = if method == Method::GET || method == Method::HEAD {
                    StatusCode::MOVED_PERMANENTLY
                } else {
                    StatusCode::PERMANENT_REDIRECT
                };
                let mut res = Response::new(String::new());
                *res.status_mut() = status;
                match HeaderValue::from_str(&location) {
                    Ok(value) => {
                        res.headers_mut().insert(header::LOCATION, value);
                    }
                    Err(_) => *res.status_mut() = StatusCode::BAD_REQUEST,
                }
                res
            },
        )
}

/// Spawns the plain-HTTP redirect server of [`redirect_filter`] on `listener`.
pub fn spawn_redirect(
    shutdown: &Shutdown,
    listener: TcpListener,
    https_origin: String,
    tls: Tls,
) -> tokio::task::JoinHandle<()> {
    spawn_http(
        shutdown,
        "https-redirect",
        listener,
        redirect_filter(https_origin, tls),
    )
}
