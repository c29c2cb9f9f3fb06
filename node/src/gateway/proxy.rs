//! The tracker proxy: everything under `/api/v1/` that the node does not answer itself,
//! and `/.well-known/jwks.json`, is passed to the tracker, so the browser talks to one
//! origin. Method, path, query, body (≤ [`MAX_BODY_BYTES`], 413 beyond) and end-to-end
//! headers go through; hop-by-hop headers are dropped; `X-Forwarded-For`,
//! `X-Forwarded-Host` and `X-Forwarded-Proto` are added. The tracker's status, headers and
//! body come back, the body streamed. Redirects are passed on, not followed.
//!
//! A WebSocket upgrade under `/api/v1/` is first opened to the tracker at the same path;
//! only then is the browser's upgrade accepted, and frames are piped both ways until
//! either side closes or the node shuts down.
//!
//! A tracker that cannot be reached (or times out) gives 503 `tracker_unavailable`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;
use warp::filters::path::FullPath;
use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use super::play::error_reply;
use super::GatewayState;

/// Largest request body passed to the tracker.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Time to connect to the tracker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the tracker to answer a whole request (headers and body).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy's HTTP client and the node's shutdown token. Cheap to clone.
#[derive(Clone)]
pub struct ProxyClient {
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl ProxyClient {
    /// A client that does not follow redirects (the browser does) and times out.
    pub fn new(cancel: CancellationToken) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http, cancel }
    }
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1), plus
/// those the proxy sets itself.
fn skip_header(name: &HeaderName, connection: &[String]) -> bool {
    const HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
    ];
    let n = name.as_str();
    HOP.contains(&n) || connection.iter().any(|c| c == n)
}

/// Header names listed in `Connection:` (also hop-by-hop).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether the node proxies this path.
fn proxied(path: &str) -> bool {
    path.starts_with("/api/v1/") || path == "/.well-known/jwks.json"
}

fn tracker_unavailable(message: &str) -> Response {
    error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "tracker_unavailable",
        message,
    )
}

/// The proxy routes: WebSocket upgrades first, then plain HTTP. Matches only proxied paths.
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let guard = warp::path::full()
        .and_then(|path: FullPath| async move {
            if proxied(path.as_str()) {
                Ok(path)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(warp::query::raw().or(warp::any().map(String::new)).unify());
    let ws = {
        let state = state.clone();
        guard
            .and(warp::ws())
            .and(warp::header::headers_cloned())
            .and(warp::addr::remote())
            .and_then(
                move |path: FullPath,
                      query: String,
                      ws: warp::ws::Ws,
                      headers: HeaderMap,
                      remote: Option<SocketAddr>| {
                    let state = state.clone();
                    async move {
                        let res = websocket(&state, path, query, ws, headers, remote).await;
                        state.metrics.request("proxy", res.status().as_u16());
                        Ok::<_, Infallible>(res)
                    }
                },
            )
    };
    let http = guard
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .and_then(
            move |path: FullPath,
                  query: String,
                  method: Method,
                  headers: HeaderMap,
                  remote: Option<SocketAddr>,
                  body| {
                let state = state.clone();
                async move {
                    let res = forward(&state, path, query, method, headers, remote, body).await;
                    state.metrics.request("proxy", res.status().as_u16());
                    Ok::<_, Infallible>(res)
                }
            },
        );
    ws.or(http).unify()
}

/// The tracker URL for a request path and raw query.
fn upstream_url(base: &str, path: &FullPath, query: &str) -> String {
    if query.is_empty() {
        format!("{base}{}", path.as_str())
    } else {
        format!("{base}{}?{query}", path.as_str())
    }
}

/// Headers to send upstream: end-to-end ones from the client plus `X-Forwarded-*`.
fn upstream_headers(
    state: &GatewayState,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
) -> HeaderMap {
    let connection = connection_listed(headers);
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !skip_header(name, &connection) {
            out.append(name.clone(), value.clone());
        }
    }
    // The tracker believes the last entry when the node is one of its trusted proxies.
    let prior = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(ip) = remote.map(|r| r.ip().to_string()) {
        let chain = match prior {
            Some(p) => format!("{p}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            out.insert("x-forwarded-for", v);
        }
    }
    if let Some(host) = headers.get(header::HOST) {
        out.insert("x-forwarded-host", host.clone());
    }
    let proto = if state.public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    out.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    out
}

async fn read_body<S, B>(mut body: S) -> Result<Bytes, Response>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| error_reply(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()))?;
        if out.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

async fn forward<S, B>(
    state: &GatewayState,
    path: FullPath,
    query: String,
    method: Method,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let url = upstream_url(&state.tracker_url, &path, &query);
    let mut req = state
        .proxy
        .http
        .request(method.clone(), &url)
        .headers(upstream_headers(state, &headers, remote));
    if !body.is_empty() || !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        req = req.body(body);
    }
    let upstream = match req.send().await {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(%err, %url, "tracker proxy: tracker unreachable");
            return tracker_unavailable(&format!("the tracker cannot be reached: {err}"));
        }
    };
    let status = upstream.status();
    let connection = connection_listed(upstream.headers());
    let mut out_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if name == header::CONTENT_LENGTH || !skip_header(name, &connection) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let stream = futures::stream::unfold(Some(upstream), |state| async move {
        let mut res = state?;
        match res.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(res))),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(%err, "tracker proxy: response body cut");
                Some((Err(err), None))
            }
        }
    });
    let mut res = warp::reply::stream(stream).into_response();
    *res.status_mut() = status;
    *res.headers_mut() = out_headers;
    res
}

async fn websocket(
    state: &GatewayState,
    path: FullPath,
    query: String,
    ws: warp::ws::Ws,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
) -> Response {
    use tungstenite::client::IntoClientRequest;
    let base = state
        .tracker_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = upstream_url(&base, &path, &query);
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(err) => return tracker_unavailable(&format!("bad tracker URL: {err}")),
    };
    // End-to-end headers only: the WebSocket handshake headers are the client library's.
    let forwarded = upstream_headers(state, &headers, remote);
    for (name, value) in &forwarded {
        let n = name.as_str();
        if n.starts_with("sec-websocket-") || n == "origin" {
            continue;
        }
        request.headers_mut().append(name.clone(), value.clone());
    }
    let connect = tokio_tungstenite::connect_async(request);
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((stream, _))) => stream,
        Ok(Err(tungstenite::Error::Http(res))) => {
            // The tracker refused the upgrade: pass its status and body on.
            let status = res.status();
            let body = res.into_body().unwrap_or_default();
            let mut out = Response::new(body.into());
            *out.status_mut() = status;
            out.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return out;
        }
        Ok(Err(err)) => {
            tracing::warn!(%err, %url, "tracker proxy: WebSocket to the tracker failed");
            return tracker_unavailable(&format!("the tracker cannot be reached: {err}"));
        }
        Err(_) => return tracker_unavailable("the tracker did not answer in time"),
    };
    let cancel = state.proxy.cancel.clone();
    ws.on_upgrade(move |client| pipe(client, upstream, cancel))
        .into_response()
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Frames both ways until either side closes, errs, or the node shuts down.
async fn pipe(client: warp::ws::WebSocket, upstream: Upstream, cancel: CancellationToken) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let to_tracker = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            let Some(msg) = to_tungstenite(msg) else {
                continue;
            };
            let close = msg.is_close();
            if up_tx.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = up_tx.close().await;
    };
    let to_client = async {
        while let Some(Ok(msg)) = up_rx.next().await {
            let Some(msg) = to_warp(msg) else { continue };
            let close = msg.is_close();
            if client_tx.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = to_tracker => {}
        _ = to_client => {}
    }
}

fn to_tungstenite(msg: warp::ws::Message) -> Option<tungstenite::Message> {
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;
    if msg.is_text() {
        let text = msg.to_str().ok()?.to_owned();
        Some(tungstenite::Message::Text(text.into()))
    } else if msg.is_binary() {
        Some(tungstenite::Message::Binary(msg.into_bytes()))
    } else if msg.is_ping() {
        Some(tungstenite::Message::Ping(msg.into_bytes()))
    } else if msg.is_pong() {
        Some(tungstenite::Message::Pong(msg.into_bytes()))
    } else if msg.is_close() {
        let frame = msg.close_frame().map(|(code, reason)| CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        });
        Some(tungstenite::Message::Close(frame))
    } else {
        None
    }
}

fn to_warp(msg: tungstenite::Message) -> Option<warp::ws::Message> {
    use tungstenite::Message as M;
    match msg {
        M::Text(t) => Some(warp::ws::Message::text(t.as_str().to_owned())),
        M::Binary(b) => Some(warp::ws::Message::binary(b)),
        M::Ping(b) => Some(warp::ws::Message::ping(b)),
        M::Pong(b) => Some(warp::ws::Message::pong(b)),
        M::Close(Some(f)) => Some(warp::ws::Message::close_with(
            u16::from(f.code),
            f.reason.as_str().to_owned(),
        )),
        M::Close(None) => Some(warp::ws::Message::close()),
        M::Frame(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_and_jwks_are_proxied() {
        assert!(proxied("/api/v1/auth/login"));
        assert!(proxied("/api/v1/me/watchlist/tmdb-1"));
        assert!(proxied("/.well-known/jwks.json"));
        assert!(!proxied("/api/v1"));
        assert!(!proxied("/api/v2/x"));
        assert!(!proxied("/hls/x/master.m3u8"));
        assert!(!proxied("/"));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        let c = connection_listed(&h);
        assert!(skip_header(&header::CONNECTION, &c));
        assert!(skip_header(&header::TRANSFER_ENCODING, &c));
        assert!(skip_header(&HeaderName::from_static("x-secret"), &c));
        assert!(!skip_header(&header::AUTHORIZATION, &c));
        assert!(!skip_header(&header::COOKIE, &c));
        assert!(!skip_header(&header::CONTENT_TYPE, &c));
    }
}
