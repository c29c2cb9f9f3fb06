//! The tracker proxy: everything under `/api/v1/` that the node does not answer itself,
//! and `/.well-known/jwks.json`, is passed to the tracker, so the browser talks to one
//! origin. Method, path, query, body (≤ [`MAX_BODY_BYTES`], 413 beyond) and end-to-end
//! headers go through; hop-by-hop headers are dropped; `X-Forwarded-For`,
//! `X-Forwarded-Host` and `X-Forwarded-Proto` are added. The tracker's status, headers and
//! body come back, the body streamed. Redirects are passed on, not followed.
//!
//! Only normalised paths are forwarded ([`ProxyPath`]): a `.` or `..` segment, an empty
//! segment, a percent-encoded `/`, `\`, `.` or `%`, or any character outside RFC 3986's
//! path characters gives 400 `bad_path` and nothing reaches the tracker. The tracker URL
//! is built from the checked path alone; the query is set on it afterwards and cannot
//! change the path.
//!
//! Credentials are typed only at the tracker (docs/signin.md): `/api/v1/auth/*` is never
//! forwarded (403 `credentials_at_tracker`, nothing reaches the tracker), and neither is
//! anything outside `/api/v1/` and the JWKS (the tracker's `/oauth/*` endpoints in
//! particular: the node's own `/auth/*` routes, [`super::signin`], talk to them).
//!
//! Every forwarded request from a member node (WebSocket upgrades included) carries the
//! viewer's address ([`VIEWER_ADDR_HEADER`]: the socket peer of the browser's connection)
//! and the node's signature ([`NODE_AUTH_HEADER`]) over the method,
//! [`viewer_auth_path`](reelnet_proto::membership::viewer_auth_path) of the path (the path
//! bound to that address) and the exact body (empty for an upgrade), so the tracker can tell
//! that a node token came through the node it was issued through, limits per viewer, and
//! believes the node's `X-Forwarded-Host` on a new movie request. Never a signature over the
//! plain path: that is what the node's own requests (`nodes/*`, `requests/claim`, reports)
//! carry, and the proxy signs whatever a browser sends.
//! Whatever a client sends in those two headers is dropped.
//!
//! A WebSocket upgrade under `/api/v1/` is first opened to the tracker at the same path;
//! only then is the browser's upgrade accepted, and frames are piped both ways until
//! either side closes or the node shuts down. A browser's messages are limited
//! ([`WsLimits`]: size, and a per-connection token bucket); over a limit the connection
//! is closed (1009 message too big, 1008 policy violation).
//!
//! With several tracker replicas (`[tracker] url` a list, see [`crate::trackers`]) a
//! request goes to the current one; when that fails (no connection, a transport error or
//! 502/503/504) the failure is reported and the request is sent once more to the next
//! replica if that is safe: an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE), or
//! any method when the connection could not be made (nothing reached a tracker). A POST
//! that may have reached a tracker is never sent twice. A WebSocket that cannot be opened
//! to the current replica is opened to the next.
//!
//! A tracker that cannot be reached (or times out) gives 503 `tracker_unavailable`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, Stream, StreamExt};
use reelnet_proto::membership::{NODE_AUTH_HEADER, VIEWER_ADDR_HEADER};
use reqwest::Url;
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
/// Largest WebSocket message taken from the tracker. The tracker is trusted; this only
/// bounds the memory one connection can take (its largest frame, a room's `welcome` with
/// 16 members, is a few KiB).
const UPSTREAM_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// How long a browser whose WebSocket broke a limit has to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The prefix of the tracker's credential routes, never forwarded.
const AUTH_PREFIX: &str = "/api/v1/auth/";

/// What a browser may send through one proxied WebSocket (`[gateway] ws_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLimits {
    /// Largest message (and frame), bytes of payload. Larger ends the connection with 1009.
    pub max_message_bytes: usize,
    /// Messages at once (the token bucket's size).
    pub burst: u32,
    /// Messages per second, sustained. Faster ends the connection with 1008.
    pub per_sec: u32,
}

impl WsLimits {
    /// The defaults: 8 KiB, twice the tracker's own room-frame limit (`[rooms]
    /// max_frame_bytes`, 4096: a chat line or an `auth` frame with a token); a burst of 20
    /// and 10 a second, several times what the web app sends (a clock-sync ping a second,
    /// one frame per play/pause/seek/buffering change).
    pub const DEFAULT: WsLimits = WsLimits {
        max_message_bytes: 8 << 10,
        burst: 20,
        per_sec: 10,
    };
}

impl Default for WsLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The proxy's HTTP client, WebSocket limits and the node's shutdown token. Cheap to clone.
#[derive(Clone)]
pub struct ProxyClient {
    http: reqwest::Client,
    cancel: CancellationToken,
    ws: WsLimits,
}

impl ProxyClient {
    /// A client that does not follow redirects (the browser does) and times out.
    pub fn new(cancel: CancellationToken, ws: WsLimits) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http, cancel, ws }
    }
}

/// Why a request path is not forwarded (400 `bad_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path segment (`//` or a trailing `/`)")]
    EmptySegment,
    #[error("`.` and `..` path segments are not allowed")]
    DotSegment,
    #[error("character {0:?} is not allowed in a path (percent-encode it)")]
    Character(char),
    #[error("`%` must start a percent-encoded byte (`%XX`)")]
    BadEscape,
    #[error("percent-encoded byte 0x{0:02x} is not allowed in a path (`/`, `\\`, `.`, `%` and control characters)")]
    EncodedByte(u8),
}

/// A request path that is safe to forward: under `/api/v1/` (or the JWKS), made of
/// non-empty segments, none of them `.` or `..` before or after percent-decoding.
///
/// The rule, checked on the raw path as the browser sent it (warp hands it over as it
/// came: hyper and the `http` crate only cut the query and fragment off, and let through
/// `\`, `"`, `{`, `}`, `|`, `^`, `[`, `]` and malformed `%`):
/// - only RFC 3986 path characters: letters, digits, `-._~!$&'()*+,;=:@`, and `%XX`;
/// - a `%XX` must not decode to `/`, `\` (which would split a segment after a decode:
///   the URL parser of the proxy's own HTTP client reads `\` as `/`), `.` (which is
///   unreserved, so no client needs to encode it; the URL parser reads `%2e%2e` as `..`),
///   `%` or a control character. Refusing an encoded `%` is what stops double encoding:
///   once decoded, the path holds no `%` at all, so a second decode anywhere (a later
///   proxy, the tracker's router) changes nothing, and `%252e%252e` never becomes `..`;
/// - segments are neither empty (`//`, a trailing `/`) nor exactly `.` or `..` (after the
///   rule above, the only spellings of a dot segment left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPath(String);

impl ProxyPath {
    /// Checks a raw request path (without the query). `Ok(None)`: not a proxied path.
    pub fn parse(raw: &str) -> Result<Option<Self>, PathError> {
        if !proxied(raw) {
            return Ok(None);
        }
        // `proxied` guarantees a leading `/`; every segment after it is checked.
        for segment in raw[1..].split('/') {
            check_segment(segment)?;
        }
        Ok(Some(Self(raw.to_owned())))
    }

    /// The path, as it will be sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of the tracker's credential routes (never forwarded).
    fn is_credentials(&self) -> bool {
        self.0.starts_with(AUTH_PREFIX)
    }
}

fn check_segment(segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(PathError::DotSegment);
    }
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            // Two hex digits, nothing else (`u8::from_str_radix` would take a sign).
            let byte = match bytes.get(i + 1..i + 3) {
                Some(&[hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                    hex_value(hi) << 4 | hex_value(lo)
                }
                _ => return Err(PathError::BadEscape),
            };
            if matches!(byte, b'/' | b'\\' | b'.' | b'%') || byte < 0x20 || byte == 0x7f {
                return Err(PathError::EncodedByte(byte));
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
        if !allowed {
            // The path is a `&str`: report the whole character, not one of its bytes.
            let c = segment
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(PathError::Character(c));
        }
        i += 1;
    }
    Ok(())
}

/// The value of an ASCII hex digit (0 for anything else; callers check first).
fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1), plus
/// those the proxy sets itself (a client's own `Reelnet-Node-Auth` or
/// `Reelnet-Viewer-Addr` never reaches the tracker).
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
        NODE_AUTH_HEADER,
        VIEWER_ADDR_HEADER,
    ];
    let n = name.as_str();
    HOP.contains(&n) || connection.iter().any(|c| c == n)
}

/// A `Cookie` header without the node's own sign-in cookies (its refresh token stays on
/// the node); `None` when nothing is left.
fn without_signin_cookies(value: &HeaderValue) -> Option<HeaderValue> {
    use super::signin::{BINDING_COOKIE, HOST_PREFIX, REFRESH_COOKIE};
    let Ok(text) = value.to_str() else {
        return Some(value.clone());
    };
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
            let base = name.strip_prefix(HOST_PREFIX).unwrap_or(name);
            // `<base>` or `<base>_<port>` (signin.rs names them per port).
            let ours = |cookie: &str| {
                base.strip_prefix(cookie).is_some_and(|rest| {
                    rest.is_empty()
                        || rest
                            .strip_prefix('_')
                            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                })
            };
            !pair.is_empty() && !ours(REFRESH_COOKIE) && !ours(BINDING_COOKIE)
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
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

/// Whether the node proxies this path (before it is checked).
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

/// 403 `credentials_at_tracker`: passwords and reset/verification tokens are typed only
/// at the tracker's own origin.
fn credentials_at_tracker(state: &GatewayState) -> Response {
    let tracker = state.signin.config().tracker_public_url();
    error_reply(
        StatusCode::FORBIDDEN,
        "credentials_at_tracker",
        &format!(
            "sign-in, registration, password reset and email verification happen at the \
             tracker's own site ({tracker}/login), never through a node: use /auth/login \
             on this site, which takes you there"
        ),
    )
}

fn bad_path(err: PathError) -> Response {
    error_reply(StatusCode::BAD_REQUEST, "bad_path", &err.to_string())
}

/// The proxy routes: WebSocket upgrades first, then plain HTTP. Matches only proxied paths;
/// a proxied path that fails [`ProxyPath::parse`] gets 400 from either.
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let guard = warp::path::full()
        .and_then(|path: FullPath| async move {
            match ProxyPath::parse(path.as_str()) {
                Ok(Some(p)) => Ok(Ok(p)),
                Ok(None) => Err(warp::reject::not_found()),
                Err(err) => {
                    tracing::debug!(path = path.as_str(), %err, "tracker proxy: path refused");
                    Ok(Err(err))
                }
            }
        })
        .and(warp::query::raw().or(warp::any().map(String::new)).unify());
    let ws = {
        let state = state.clone();
        guard
            .and(warp::ws())
            .and(warp::header::headers_cloned())
            .and(reelnet_runtime::serve::remote())
            .and_then(
                move |path: Result<ProxyPath, PathError>,
                      query: String,
                      ws: warp::ws::Ws,
                      headers: HeaderMap,
                      remote: Option<SocketAddr>| {
                    let state = state.clone();
                    async move {
                        let res = match path {
                            Ok(path) if path.is_credentials() => credentials_at_tracker(&state),
                            Ok(path) => websocket(&state, path, query, ws, headers, remote).await,
                            Err(err) => bad_path(err),
                        };
                        state.metrics.request("proxy", res.status().as_u16());
                        Ok::<_, Infallible>(res)
                    }
                },
            )
    };
    let http = guard
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(reelnet_runtime::serve::remote())
        .and(warp::body::stream())
        .and_then(
            move |path: Result<ProxyPath, PathError>,
                  query: String,
                  method: Method,
                  headers: HeaderMap,
                  remote: Option<SocketAddr>,
                  body| {
                let state = state.clone();
                async move {
                    let res = match path {
                        // Refused before the body is read: nothing reaches the tracker.
                        Ok(path) if path.is_credentials() => credentials_at_tracker(&state),
                        Ok(path) => {
                            forward(&state, path, query, method, headers, remote, body).await
                        }
                        Err(err) => bad_path(err),
                    };
                    state.metrics.request("proxy", res.status().as_u16());
                    Ok::<_, Infallible>(res)
                }
            },
        );
    ws.or(http).unify()
}

/// Why no tracker URL could be made for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum UpstreamUrlError {
    /// The configured tracker URL does not parse (503: the node is misconfigured).
    #[error("bad tracker URL {base:?}: {reason}")]
    Base { base: String, reason: String },
    /// The URL parser made another path of it (400; cannot happen after
    /// [`ProxyPath::parse`], checked anyway).
    #[error("the path would reach the tracker as {got:?}, not {wanted:?}")]
    PathChanged { wanted: String, got: String },
}

impl UpstreamUrlError {
    fn reply(&self) -> Response {
        match self {
            Self::Base { .. } => tracker_unavailable(&self.to_string()),
            Self::PathChanged { .. } => {
                error_reply(StatusCode::BAD_REQUEST, "bad_path", &self.to_string())
            }
        }
    }
}

/// The tracker URL for a checked path and a raw query: the tracker's base URL with the
/// path appended (after the base's own path, if it has one), then the query set on it, so
/// nothing in the query can reach the path. Checked once more after parsing: the URL's
/// path must be exactly the one intended.
fn upstream_url(base: &str, path: &ProxyPath, query: &str) -> Result<Url, UpstreamUrlError> {
    let mut url = Url::parse(base).map_err(|e| UpstreamUrlError::Base {
        base: base.to_owned(),
        reason: e.to_string(),
    })?;
    let wanted = format!("{}{}", url.path().trim_end_matches('/'), path.as_str());
    url.set_path(&wanted);
    url.set_query((!query.is_empty()).then_some(query));
    url.set_fragment(None);
    if url.path() != wanted {
        return Err(UpstreamUrlError::PathChanged {
            got: url.path().to_owned(),
            wanted,
        });
    }
    Ok(url)
}

/// The viewer's address as the tracker gets it: the socket peer of the browser's
/// connection, IPv4-mapped IPv6 addresses written as IPv4 (so a dual-stack listener does
/// not give one viewer two addresses).
fn viewer_ip(remote: Option<SocketAddr>) -> Option<IpAddr> {
    remote.map(|r| r.ip().to_canonical())
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
        if skip_header(name, &connection) {
            continue;
        }
        if name == header::COOKIE {
            if let Some(v) = without_signin_cookies(value) {
                out.append(name.clone(), v);
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    // For logs only: the tracker trusts the viewer's address only in the signed
    // `Reelnet-Viewer-Addr` (see `forward`); the client's own entries may be anything.
    let prior = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(ip) = viewer_ip(remote).map(|ip| ip.to_string()) {
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

/// The viewer's address and this node's signature vouching for it, for a request to
/// `url` (its path as sent, without the query) with exactly `body`. Nothing when the node
/// is not a member (the tracker then counts the node's own address) or the peer address
/// is unknown.
fn viewer_headers(
    state: &GatewayState,
    method: &Method,
    url: &Url,
    body: &[u8],
    remote: Option<SocketAddr>,
) -> Option<[(HeaderName, HeaderValue); 2]> {
    let ip = viewer_ip(remote)?.to_string();
    let membership = state.membership.as_ref()?;
    let auth = membership.viewer_auth_header(method.as_str(), url.path(), &ip, body)?;
    Some([
        (
            HeaderName::from_static(VIEWER_ADDR_HEADER),
            HeaderValue::from_str(&ip).ok()?,
        ),
        (
            HeaderName::from_static(NODE_AUTH_HEADER),
            HeaderValue::from_str(&auth).ok()?,
        ),
    ])
}

/// Puts the node's signature and the viewer's address on a request about to be forwarded.
///
/// The signature is always over [`viewer_auth_path`](reelnet_proto::membership::viewer_auth_path)
/// (the path bound to the viewer's address), never over the plain path: a plain-path
/// signature is what the node's own requests carry (`nodes/me`, `nodes/ingests`,
/// `requests/claim`, `requests/<id>/done`, ...), and the proxy signs whatever a browser
/// sends, so a plain signature here would let any visitor act as the node. Without a
/// viewer address (no socket peer) the request goes unsigned: a node token is then refused,
/// which is safe.
fn sign_forwarded(
    state: &GatewayState,
    method: &Method,
    url: &Url,
    body: &[u8],
    remote: Option<SocketAddr>,
    out: &mut HeaderMap,
) {
    if let Some(extra) = viewer_headers(state, method, url, body, remote) {
        for (name, value) in extra {
            out.insert(name, value);
        }
    }
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
    path: ProxyPath,
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
    // The current tracker replica; on a failure there, the next one gets the request
    // once more when that is safe (see `crate::trackers`): an idempotent method, or a
    // connection that could not be made. The URL and the signature are made per replica.
    let retry = crate::trackers::Retry::for_method(&method);
    let attempts = if state.trackers.len() > 1 { 2 } else { 1 };
    let mut at = state.trackers.current();
    let mut attempt = 1;
    let upstream = loop {
        let url = match upstream_url(state.trackers.url_at(at), &path, &query) {
            Ok(url) => url,
            Err(err) => {
                tracing::warn!(%err, "tracker proxy: no tracker URL for this path");
                return err.reply();
            }
        };
        let mut out_headers = upstream_headers(state, &headers, remote);
        sign_forwarded(state, &method, &url, &body, remote, &mut out_headers);
        let mut req = state
            .proxy
            .http
            .request(method.clone(), url.clone())
            .headers(out_headers);
        if !body.is_empty() || !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            req = req.body(body.clone());
        }
        let last = attempt == attempts;
        match req.send().await {
            Ok(r) if crate::trackers::is_unavailable(r.status().as_u16()) => {
                state
                    .trackers
                    .failed(at, &format!("answered {}", r.status().as_u16()));
                if last || retry != crate::trackers::Retry::Idempotent {
                    break r;
                }
            }
            Ok(r) => break r,
            Err(err) => {
                let path = url.path();
                tracing::warn!(%err, %path, "tracker proxy: tracker unreachable");
                state.trackers.failed(at, &err.to_string());
                if last || !(err.is_connect() || retry == crate::trackers::Retry::Idempotent) {
                    return tracker_unavailable(&format!(
                        "the tracker cannot be reached: {}",
                        err.without_url()
                    ));
                }
            }
        }
        at = (at + 1) % state.trackers.len();
        attempt += 1;
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
    path: ProxyPath,
    query: String,
    ws: warp::ws::Ws,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
) -> Response {
    // Opened to the current tracker replica, else once to the next one.
    let attempts = if state.trackers.len() > 1 { 2 } else { 1 };
    let mut at = state.trackers.current();
    let mut attempt = 1;
    let upstream = loop {
        let last = attempt == attempts;
        match open_upstream(
            state,
            state.trackers.url_at(at),
            &path,
            &query,
            &headers,
            remote,
        )
        .await
        {
            Ok(stream) => break stream,
            Err(Opened::Refused(res)) => return res,
            Err(Opened::Unavailable(why, res)) => {
                state.trackers.failed(at, &why);
                if last {
                    return res;
                }
            }
        }
        at = (at + 1) % state.trackers.len();
        attempt += 1;
    };
    let cancel = state.proxy.cancel.clone();
    let limits = state.proxy.ws;
    // The size limit is the WebSocket layer's: a frame announcing more is refused from its
    // header, before its payload is read.
    ws.max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |client| pipe(client, upstream, limits, cancel))
        .into_response()
}

/// Why a WebSocket to a tracker replica was not opened.
enum Opened {
    /// The answer for the browser (a refused upgrade, passed on; a bad path).
    Refused(Response),
    /// The replica cannot be reached (or answered 502/503/504): why, and the answer for
    /// the browser if no other replica does better.
    Unavailable(String, Response),
}

/// Opens the WebSocket at `path` on the tracker replica at `base`.
async fn open_upstream(
    state: &GatewayState,
    base: &str,
    path: &ProxyPath,
    query: &str,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
) -> Result<Upstream, Opened> {
    use tungstenite::client::IntoClientRequest;
    let base = base
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = match upstream_url(&base, path, query) {
        Ok(url) => url,
        Err(err) => {
            tracing::warn!(%err, "tracker proxy: no tracker URL for this path");
            return Err(Opened::Refused(err.reply()));
        }
    };
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(err) => {
            return Err(Opened::Refused(tracker_unavailable(&format!(
                "bad tracker URL: {err}"
            ))))
        }
    };
    // End-to-end headers only: the WebSocket handshake headers are the client library's.
    let mut forwarded = upstream_headers(state, headers, remote);
    // Signed as the tracker sees it: GET, the path and query, no body.
    sign_forwarded(state, &Method::GET, &url, &[], remote, &mut forwarded);
    for (name, value) in &forwarded {
        let n = name.as_str();
        if n.starts_with("sec-websocket-") || n == "origin" {
            continue;
        }
        request.headers_mut().append(name.clone(), value.clone());
    }
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(UPSTREAM_MAX_MESSAGE_BYTES))
        .max_frame_size(Some(UPSTREAM_MAX_MESSAGE_BYTES));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((stream, _))) => Ok(stream),
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
            if crate::trackers::is_unavailable(status.as_u16()) {
                return Err(Opened::Unavailable(format!("answered {status}"), out));
            }
            Err(Opened::Refused(out))
        }
        Ok(Err(err)) => {
            let path = url.path();
            tracing::warn!(%err, %path, "tracker proxy: WebSocket to the tracker failed");
            let why = err.to_string();
            Err(Opened::Unavailable(
                why,
                tracker_unavailable(&format!("the tracker cannot be reached: {err}")),
            ))
        }
        Err(_) => Err(Opened::Unavailable(
            "timed out".to_owned(),
            tracker_unavailable("the tracker did not answer in time"),
        )),
    }
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A token bucket: `burst` tokens, refilled at `per_sec`; one per message.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(limits: WsLimits, now: Instant) -> Self {
        let burst = f64::from(limits.burst.max(1));
        Self {
            tokens: burst,
            burst,
            per_sec: f64::from(limits.per_sec.max(1)),
            last: now,
        }
    }

    /// Takes a token at `now`; `false` when there is none.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why the proxy ends a browser's WebSocket itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Violation {
    /// A message above [`WsLimits::max_message_bytes`].
    TooBig,
    /// Messages faster than the bucket allows.
    TooFast,
}

impl Violation {
    /// The close code and reason the browser gets (RFC 6455 §7.4.1).
    fn close(self, limits: WsLimits) -> (u16, String) {
        match self {
            Violation::TooBig => (
                1009,
                format!("messages are at most {} bytes", limits.max_message_bytes),
            ),
            Violation::TooFast => (
                1008,
                format!(
                    "more than {} messages at once or {} a second",
                    limits.burst, limits.per_sec
                ),
            ),
        }
    }
}

/// Whether a read error is the WebSocket layer refusing a message above its size limit.
fn is_too_big(err: &warp::Error) -> bool {
    use std::error::Error as _;
    matches!(
        err.source()
            .and_then(|e| e.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Frames both ways until either side closes, errs, the browser breaks a limit, or the
/// node shuts down.
async fn pipe(
    client: warp::ws::WebSocket,
    upstream: Upstream,
    limits: WsLimits,
    cancel: CancellationToken,
) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut bucket = Bucket::new(limits, Instant::now());
    let to_tracker = async {
        loop {
            let msg = match client_rx.next().await {
                Some(Ok(msg)) => msg,
                Some(Err(err)) if is_too_big(&err) => return Some(Violation::TooBig),
                Some(Err(_)) | None => return None,
            };
            if !msg.is_close() && !bucket.take(Instant::now()) {
                return Some(Violation::TooFast);
            }
            let Some(msg) = to_tungstenite(msg) else {
                continue;
            };
            let close = msg.is_close();
            if up_tx.send(msg).await.is_err() || close {
                return None;
            }
        }
    };
    let to_client = async {
        while let Some(Ok(msg)) = up_rx.next().await {
            let Some(msg) = to_warp(msg) else { continue };
            let close = msg.is_close();
            if client_tx.send(msg).await.is_err() || close {
                break;
            }
        }
    };
    let violation = tokio::select! {
        _ = cancel.cancelled() => None,
        v = to_tracker => v,
        _ = to_client => None,
    };
    if let Some(v) = violation {
        let (code, reason) = v.close(limits);
        tracing::info!(code, %reason, "tracker proxy: WebSocket closed for breaking a limit");
        let _ = up_tx.close().await;
        let _ = client_tx
            .send(warp::ws::Message::close_with(code, reason))
            .await;
        // The closing handshake: what the browser sent meanwhile is read and dropped until
        // its close comes back (briefly), so the connection is not reset under the close
        // frame with data still unread.
        let drain = async {
            while let Some(Ok(msg)) = client_rx.next().await {
                if msg.is_close() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::timeout(CLOSE_GRACE, drain) => {}
        }
    }
    let _ = client_tx.close().await;
    let _ = up_tx.close().await;
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_api_and_jwks_are_proxied() {
        assert!(proxied("/api/v1/auth/login"));
        assert!(proxied("/api/v1/me/watchlist/tmdb-1"));
        assert!(proxied("/.well-known/jwks.json"));
        assert!(!proxied("/oauth/token"));
        assert!(!proxied("/oauth/authorize"));
        assert!(!proxied("/auth/session"));
        assert!(!proxied("/api/v1"));
        assert!(!proxied("/api/v2/x"));
        assert!(!proxied("/hls/x/master.m3u8"));
        assert!(!proxied("/"));
    }

    fn check(raw: &str) -> Result<Option<ProxyPath>, PathError> {
        ProxyPath::parse(raw)
    }

    #[test]
    fn ordinary_paths_pass_unchanged() {
        for p in [
            "/api/v1/auth/login",
            "/api/v1/me/watchlist/tmdb-603",
            "/api/v1/rooms/r1/ws",
            "/api/v1/movies/tmdb-1/title%20with%20spaces",
            "/api/v1/x/a.b/...~-_!$&'()*+,;=:@",
            "/api/v1/x/%C3%A9t%C3%A9",
            "/.well-known/jwks.json",
        ] {
            assert_eq!(check(p).unwrap().unwrap().as_str(), p, "{p}");
        }
        assert_eq!(check("/hls/x/master.m3u8").unwrap(), None);
        assert_eq!(check("/api/v1").unwrap(), None);
        assert_eq!(check("/metrics").unwrap(), None);
    }

    #[test]
    fn escapes_are_refused() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("/api/v1/../../metrics", DotSegment),
            ("/api/v1/./me", DotSegment),
            ("/api/v1/me/..", DotSegment),
            ("/api/v1/%2e%2e/%2e%2e/metrics", EncodedByte(b'.')),
            ("/api/v1/%2E%2E/metrics", EncodedByte(b'.')),
            ("/api/v1/.%2e/metrics", EncodedByte(b'.')),
            ("/api/v1/..%2f..%2fmetrics", EncodedByte(b'/')),
            ("/api/v1/x%2F..%2F..%2Fmetrics", EncodedByte(b'/')),
            ("/api/v1/%252e%252e/%252e%252e/metrics", EncodedByte(b'%')),
            ("/api/v1/%25%32%65", EncodedByte(b'%')),
            ("/api/v1/..\\..\\metrics", Character('\\')),
            ("/api/v1/x%5c..%5cmetrics", EncodedByte(b'\\')),
            ("/api/v1/x%00", EncodedByte(0)),
            ("/api/v1/x%0d%0aHost:%20evil", EncodedByte(b'\r')),
            ("/api/v1/x%7F", EncodedByte(0x7f)),
            ("/api/v1//metrics", EmptySegment),
            ("/api/v1/me/", EmptySegment),
            ("/api/v1/x%", BadEscape),
            ("/api/v1/x%2", BadEscape),
            ("/api/v1/x%zz", BadEscape),
            ("/api/v1/x%+1", BadEscape),
            ("/api/v1/a\"b", Character('"')),
            ("/api/v1/{x}", Character('{')),
            ("/api/v1/a|b", Character('|')),
            ("/api/v1/été", Character('é')),
            ("/api/v1/a\tb", Character('\t')),
        ];
        for (raw, want) in cases {
            assert_eq!(check(raw), Err(*want), "{raw}");
        }
    }

    #[test]
    fn the_tracker_url_is_the_checked_path_and_the_query_cannot_move_it() {
        let p = check("/api/v1/auth/login").unwrap().unwrap();
        let url = upstream_url("http://127.0.0.1:7000", &p, "").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:7000/api/v1/auth/login");
        // A base with a path of its own keeps it.
        let url = upstream_url("http://t.example/tracker/", &p, "a=1").unwrap();
        assert_eq!(
            url.as_str(),
            "http://t.example/tracker/api/v1/auth/login?a=1"
        );
        for query in [
            "x=/../../metrics",
            "a=1#/../../metrics",
            "../../metrics",
            "%2e%2e/x",
        ] {
            let url = upstream_url("http://t:1", &p, query).unwrap();
            assert_eq!(url.path(), "/api/v1/auth/login", "{query}");
            assert_eq!(url.fragment(), None, "{query}");
        }
        let ws = upstream_url(
            "ws://t:1",
            &check("/api/v1/rooms/r/ws").unwrap().unwrap(),
            "q=1",
        )
        .unwrap();
        assert_eq!(ws.as_str(), "ws://t:1/api/v1/rooms/r/ws?q=1");
        assert!(upstream_url("not a url", &p, "").is_err());
    }

    #[test]
    fn credential_routes_are_recognised() {
        for p in [
            "/api/v1/auth/login",
            "/api/v1/auth/register",
            "/api/v1/auth/password-reset/confirm",
            "/api/v1/auth/refresh",
        ] {
            assert!(check(p).unwrap().unwrap().is_credentials(), "{p}");
        }
        for p in ["/api/v1/me", "/api/v1/authx", "/api/v1/requests"] {
            assert!(!check(p).unwrap().unwrap().is_credentials(), "{p}");
        }
    }

    #[test]
    fn viewer_addresses_are_canonical() {
        let v4: SocketAddr = "[::ffff:203.0.113.7]:5000".parse().unwrap();
        assert_eq!(viewer_ip(Some(v4)).unwrap().to_string(), "203.0.113.7");
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        assert_eq!(viewer_ip(Some(v6)).unwrap().to_string(), "2001:db8::1");
        assert_eq!(viewer_ip(None), None);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let limits = WsLimits {
            max_message_bytes: 1024,
            burst: 20,
            per_sec: 10,
        };
        let mut b = Bucket::new(limits, t0);
        for i in 0..20 {
            assert!(b.take(t0), "message {i} of the burst");
        }
        assert!(!b.take(t0), "the 21st at once");
        // 10 a second: one more after 100 ms, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // A long pause refills to the burst, no more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..20 {
            assert!(b.take(t2));
        }
        assert!(!b.take(t2));
        // A steady 10 a second goes on forever.
        let mut t = t2;
        for _ in 0..100 {
            t += Duration::from_millis(100);
            assert!(b.take(t));
        }
    }

    #[test]
    fn client_node_auth_headers_are_dropped() {
        let c = connection_listed(&HeaderMap::new());
        assert!(skip_header(&HeaderName::from_static(NODE_AUTH_HEADER), &c));
        assert!(skip_header(
            &HeaderName::from_static(VIEWER_ADDR_HEADER),
            &c
        ));
    }

    #[test]
    fn signin_cookies_stay_on_the_node() {
        let v = HeaderValue::from_static(
            "a=1; __Host-reelnet_refresh_8081=secret; reelnet_oauth=b; theme=dark",
        );
        assert_eq!(
            without_signin_cookies(&v).unwrap().to_str().unwrap(),
            "a=1; theme=dark"
        );
        let only = HeaderValue::from_static("__Host-reelnet_refresh=secret");
        assert_eq!(without_signin_cookies(&only), None);
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
