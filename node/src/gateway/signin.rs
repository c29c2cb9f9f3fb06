//! Sign-in through the tracker: this node's gateway as an OAuth 2.0 client (authorization
//! code with PKCE S256; docs/signin.md, "Node gateway routes"). Passwords are typed only at
//! the tracker; the node redeems the code itself (a request signed with its node key) and
//! keeps the refresh token in an HttpOnly cookie on its own origin; the browser gets only
//! short-lived access tokens from `POST /auth/session`.
//!
//! - `GET /auth/login?return=/path`: makes `state`, a PKCE verifier and a binding secret,
//!   sets the binding cookie (`__Host-reelnet_oauth`, 10 min) and redirects to the
//!   tracker's authorize URL with `redirect_uri = <this origin>/auth/callback`. This origin
//!   is the request's (the gateway's scheme and the `Host`) when it is one of the origins
//!   in the node's membership certificate; otherwise the browser is first sent to
//!   `/auth/login` on the certificate's first origin (so the binding cookie is set where
//!   the callback lands).
//! - `GET /auth/callback?code&state&iss`: the binding cookie must hash to what was saved
//!   with `state`, `iss` must be the tracker's issuer; then the code is redeemed at the
//!   tracker's token endpoint (signed) and the refresh cookie (`__Host-reelnet_refresh`)
//!   is set; the browser goes back to the saved return path (same-origin relative paths
//!   only, else `/`). `error=access_denied` (or any error) goes to `/?signin_error=…`.
//! - `POST /auth/session`: refreshes at the tracker with the cookie, rotates it and answers
//!   `{access_token, expires_in, user}`. Concurrent calls with the same cookie share one
//!   tracker refresh. Its outcome is not kept for later callers: a cookie presented again
//!   after its refresh finished goes to the tracker, whose grace and reuse detection
//!   decide (a copied refresh cookie must not be answered from memory). A refused refresh
//!   clears the cookie: 401.
//! - `POST /auth/logout`: revokes the refresh token at the tracker, clears the cookie: 204.
//! - `GET /auth/account`: redirects to the tracker's `/account`.
//! - `GET /auth/network`: redirects to the tracker's network console (`/console/network`).
//!
//! POSTs must come from this origin: `Origin` equal to it, or no `Origin` with
//! `Sec-Fetch-Site: same-origin`.
//!
//! One task (the *owner*) holds the pending logins (state → verifier, return path,
//! redirect URI, binding hash; single-use, [`PENDING_TTL`], at most [`MAX_PENDING`], the
//! oldest evicted) and the refreshes in flight; handlers talk to it through [`SignIn`].
//!
//! Cookies are `__Host-`, Secure, HttpOnly, SameSite=Lax, `Path=/` (the `__Host-` prefix
//! requires `Path=/`; the tracker proxy strips both cookies from what it forwards). On a
//! plain-HTTP origin whose host is not loopback they lose the prefix and `Secure` (a
//! warning is logged once).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use base64::Engine;
use reelnet_proto::oauth::{self, OauthError, TokenResponse};
use serde::Serialize;
use sha2::Digest;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::play::error_reply;
use super::GatewayState;
use crate::membership::Membership;

/// The refresh-token cookie's name (with [`HOST_PREFIX`] on secure origins).
pub const REFRESH_COOKIE: &str = "reelnet_refresh";
/// The binding cookie's name (with [`HOST_PREFIX`] on secure origins): ties the browser
/// that started a login to its `state`.
pub const BINDING_COOKIE: &str = "reelnet_oauth";
/// The cookie-name prefix of secure origins.
pub const HOST_PREFIX: &str = "__Host-";
/// How long a login may take from `/auth/login` to `/auth/callback`.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most logins pending at once (the oldest is dropped beyond).
pub const MAX_PENDING: usize = 10_000;
/// Longest return path kept.
const MAX_RETURN_LEN: usize = 2048;
/// Most refresh outcomes kept at once.
const MAX_RESULTS: usize = 10_000;
/// Time for one tracker request.
const TRACKER_TIMEOUT: Duration = Duration::from_secs(15);

/// What the sign-in routes need to know besides the gateway state.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// This node's id: its OAuth `client_id`.
    pub client_id: String,
    /// The tracker replicas: the current one's URL as this node reaches it (token and
    /// revocation endpoints) and as browsers reach it (authorize and account pages).
    pub trackers: crate::trackers::Trackers,
    /// The tracker's `issuer` (`iss` on the callback must be it).
    pub issuer: String,
    /// Whether the gateway is served over HTTPS (the scheme of its origins).
    pub https: bool,
}

impl SignInConfig {
    /// From the node's settings: `public_url` is the gateway's own URL (its scheme counts).
    pub fn new(
        client_id: &str,
        tracker_url: &str,
        tracker_public_url: &str,
        issuer: &str,
        public_url: &str,
    ) -> Self {
        let trackers = crate::trackers::Trackers::new(
            &[tracker_url.to_owned()],
            &[tracker_public_url.to_owned()],
        )
        .unwrap_or_else(|_| crate::trackers::Trackers::single(tracker_url));
        Self::with_trackers(client_id, trackers, issuer, public_url)
    }

    /// Like [`Self::new`], with the node's tracker replicas.
    pub fn with_trackers(
        client_id: &str,
        trackers: crate::trackers::Trackers,
        issuer: &str,
        public_url: &str,
    ) -> Self {
        Self {
            client_id: client_id.to_owned(),
            trackers,
            issuer: issuer.to_owned(),
            https: public_url.starts_with("https://"),
        }
    }

    /// The tracker's URL as browsers reach it now (the current replica's), without a
    /// trailing slash.
    pub fn tracker_public_url(&self) -> &str {
        self.trackers.public_url()
    }
}

/// A login between `/auth/login` and `/auth/callback`.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    /// SHA-256 of the binding cookie's value.
    binding_hash: [u8; 32],
    /// The PKCE code verifier.
    verifier: String,
    /// Where the browser goes afterwards (a checked same-origin relative path).
    return_to: String,
    /// The redirect URI the authorization request named.
    redirect_uri: String,
}

/// Why a callback's `state` was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    #[error("no sign-in is pending with this state (unknown, used or older than 10 minutes)")]
    Unknown,
    #[error("this sign-in was started in another browser (binding cookie mismatch)")]
    Binding,
}

/// The pending logins: single-use, [`PENDING_TTL`], at most [`MAX_PENDING`]. Time comes
/// from the caller.
#[derive(Debug, Default)]
pub struct PendingLogins {
    map: HashMap<String, (PendingLogin, Instant)>,
    /// Insertion order (states already taken are skipped when met).
    order: VecDeque<(Instant, String)>,
}

impl PendingLogins {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Saves a login under `state`, dropping expired ones and, beyond [`MAX_PENDING`], the
    /// oldest.
    pub fn insert(&mut self, state: String, login: PendingLogin, now: Instant) {
        self.expire(now);
        while self.map.len() >= MAX_PENDING {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(state.clone(), (login, now));
        self.order.push_back((now, state));
        if self.order.len() > 2 * MAX_PENDING {
            let map = &self.map;
            self.order.retain(|(_, s)| map.contains_key(s));
        }
    }

    /// Takes the login saved under `state` if `binding` (the cookie's value) is the one
    /// it was saved with. A mismatch leaves it in place (a stranger cannot burn it).
    pub fn take(
        &mut self,
        state: &str,
        binding: &str,
        now: Instant,
    ) -> Result<PendingLogin, TakeError> {
        self.expire(now);
        let (login, _) = self.map.get(state).ok_or(TakeError::Unknown)?;
        if !reelnet_proto::sign::ct_eq(&sha256(binding.as_bytes()), &login.binding_hash) {
            return Err(TakeError::Binding);
        }
        self.map
            .remove(state)
            .map(|(login, _)| login)
            .ok_or(TakeError::Unknown)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < PENDING_TTL {
                break;
            }
            if let Some((_, state)) = self.order.pop_front() {
                if self.map.get(&state).is_some_and(|(_, created)| {
                    now.saturating_duration_since(*created) >= PENDING_TTL
                }) {
                    self.map.remove(&state);
                }
            }
        }
    }
}

/// What a refresh at the tracker came to.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// New tokens (the refresh token rotated).
    Tokens(Arc<TokenResponse>),
    /// The tracker refused the refresh token (ended, reused, expired): the session is over.
    Refused(String),
    /// The tracker could not be asked (unreachable, an error of its own, not a member).
    Unavailable(String),
}

/// Why a request to the tracker's OAuth endpoints failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrackerCallError {
    #[error("this node is not a member of the network (it cannot sign its requests)")]
    NotMember,
    #[error("the tracker cannot be reached: {0}")]
    Unreachable(String),
    #[error("the tracker refused: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
    },
    #[error("the tracker answered {0}")]
    Status(u16),
    #[error("the tracker's answer is malformed: {0}")]
    Malformed(String),
}

enum Cmd {
    Begin {
        state: String,
        login: PendingLogin,
    },
    Take {
        state: String,
        binding: String,
        reply: oneshot::Sender<Result<PendingLogin, TakeError>>,
    },
    Refresh {
        token: String,
        reply: oneshot::Sender<RefreshOutcome>,
    },
    RefreshDone {
        key: [u8; 32],
        outcome: RefreshOutcome,
    },
}

/// The handle of the sign-in owner task. Cheap to clone.
#[derive(Clone)]
pub struct SignIn {
    tx: mpsc::Sender<Cmd>,
    client: TrackerClient,
}

/// Signed requests to the tracker's OAuth endpoints.
#[derive(Clone)]
struct TrackerClient {
    config: Arc<SignInConfig>,
    http: reqwest::Client,
    membership: Option<Membership>,
}

impl SignIn {
    /// Starts the owner task (it stops on `cancel`).
    pub fn start(
        config: SignInConfig,
        membership: Option<Membership>,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TRACKER_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let client = TrackerClient {
            config: Arc::new(config),
            http,
            membership,
        };
        let (tx, rx) = mpsc::channel(1024);
        let owner = Owner {
            pending: PendingLogins::default(),
            refreshes: HashMap::new(),
            client: client.clone(),
            tx: tx.downgrade(),
        };
        let task = reelnet_runtime::shutdown::spawn("signin", owner.run(rx, cancel));
        (Self { tx, client }, task)
    }

    pub fn config(&self) -> &SignInConfig {
        &self.client.config
    }

    async fn begin(&self, state: String, login: PendingLogin) -> bool {
        self.tx.send(Cmd::Begin { state, login }).await.is_ok()
    }

    async fn take(&self, state: &str, binding: &str) -> Result<PendingLogin, TakeError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Take {
            state: state.to_owned(),
            binding: binding.to_owned(),
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return Err(TakeError::Unknown);
        }
        rx.await.unwrap_or(Err(TakeError::Unknown))
    }

    /// Refreshes with `token`, sharing the tracker call with concurrent callers of the
    /// same token.
    pub async fn refresh(&self, token: &str) -> RefreshOutcome {
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Refresh {
            token: token.to_owned(),
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return RefreshOutcome::Unavailable("the node is shutting down".to_owned());
        }
        rx.await
            .unwrap_or_else(|_| RefreshOutcome::Unavailable("the node is shutting down".to_owned()))
    }
}

impl TrackerClient {
    /// POSTs `pairs` form-encoded to the tracker's `path`, signed with the node key.
    async fn post_form(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<reqwest::Response, TrackerCallError> {
        let membership = self
            .membership
            .as_ref()
            .ok_or(TrackerCallError::NotMember)?;
        if membership.own().is_none() {
            return Err(TrackerCallError::NotMember);
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes();
        // Sent again to the next replica only if the connection could not be made: a code
        // or refresh token that reached a tracker is spent there. Signed afresh for each
        // attempt (each signature carries its own nonce).
        self.config
            .trackers
            .send(crate::trackers::Retry::ConnectOnly, |base| {
                let url = format!("{base}{path}");
                let mut req = self
                    .http
                    .post(&url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ACCEPT, "application/json")
                    .body(body.clone());
                if let Some(auth) = membership.auth_header("POST", &url, &body) {
                    req = req.header(reelnet_proto::membership::NODE_AUTH_HEADER, auth);
                }
                req
            })
            .await
            .map_err(|e| TrackerCallError::Unreachable(e.without_url().to_string()))
    }

    /// A token-endpoint request: the tokens, or why not.
    async fn token(&self, pairs: &[(&str, &str)]) -> Result<TokenResponse, TrackerCallError> {
        let res = self.post_form(oauth::TOKEN_PATH, pairs).await?;
        let status = res.status().as_u16();
        let body = res
            .bytes()
            .await
            .map_err(|e| TrackerCallError::Unreachable(e.without_url().to_string()))?;
        match status {
            200 => serde_json::from_slice::<TokenResponse>(&body)
                .map_err(|e| TrackerCallError::Malformed(e.to_string())),
            400 | 401 | 403 => {
                let err = serde_json::from_slice::<OauthError>(&body).unwrap_or(OauthError {
                    error: "invalid_grant".to_owned(),
                    error_description: None,
                });
                Err(TrackerCallError::Refused {
                    status,
                    error: err.error,
                    description: err.error_description,
                })
            }
            other => Err(TrackerCallError::Status(other)),
        }
    }

    async fn redeem(
        &self,
        code: &str,
        login: &PendingLogin,
    ) -> Result<TokenResponse, TrackerCallError> {
        self.token(&[
            ("grant_type", oauth::GRANT_CODE),
            ("code", code),
            ("redirect_uri", &login.redirect_uri),
            ("code_verifier", &login.verifier),
            ("client_id", &self.config.client_id),
        ])
        .await
    }

    async fn refresh(&self, token: &str) -> RefreshOutcome {
        let result = self
            .token(&[
                ("grant_type", oauth::GRANT_REFRESH),
                ("refresh_token", token),
                ("client_id", &self.config.client_id),
            ])
            .await;
        match result {
            Ok(tokens) => RefreshOutcome::Tokens(Arc::new(tokens)),
            Err(e @ TrackerCallError::Refused { .. }) => RefreshOutcome::Refused(e.to_string()),
            Err(e) => RefreshOutcome::Unavailable(e.to_string()),
        }
    }

    async fn revoke(&self, token: &str) -> Result<(), TrackerCallError> {
        let res = self
            .post_form(
                oauth::REVOKE_PATH,
                &[
                    ("token", token),
                    ("token_type_hint", "refresh_token"),
                    ("client_id", &self.config.client_id),
                ],
            )
            .await?;
        match res.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(TrackerCallError::Status(status)),
        }
    }
}

/// A refresh in flight: its waiters.
enum Slot {
    InFlight(Vec<oneshot::Sender<RefreshOutcome>>),
}

/// The owner task.
struct Owner {
    pending: PendingLogins,
    refreshes: HashMap<[u8; 32], Slot>,
    client: TrackerClient,
    /// For the refresh tasks to report back (weak: the handles' senders keep it open).
    tx: mpsc::WeakSender<Cmd>,
}

impl Owner {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        cancel: CancellationToken,
    ) -> Result<(), Infallible> {
        loop {
            let cmd = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => return Ok(()),
                },
            };
            let now = Instant::now();
            match cmd {
                Cmd::Begin { state, login } => self.pending.insert(state, login, now),
                Cmd::Take {
                    state,
                    binding,
                    reply,
                } => {
                    let _ = reply.send(self.pending.take(&state, &binding, now));
                }
                Cmd::Refresh { token, reply } => self.on_refresh(token, reply, &cancel),
                Cmd::RefreshDone { key, outcome } => self.on_done(key, outcome),
            }
        }
    }

    fn on_refresh(
        &mut self,
        token: String,
        reply: oneshot::Sender<RefreshOutcome>,
        cancel: &CancellationToken,
    ) {
        let key = sha256(token.as_bytes());
        match self.refreshes.get_mut(&key) {
            Some(Slot::InFlight(waiters)) => {
                waiters.push(reply);
                return;
            }
            None => {}
        }
        if self.refreshes.len() >= MAX_RESULTS {
            let _ = reply.send(RefreshOutcome::Unavailable(
                "too many sign-in refreshes at once; try again".to_owned(),
            ));
            return;
        }
        self.refreshes.insert(key, Slot::InFlight(vec![reply]));
        let client = self.client.clone();
        let tx = self.tx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                o = client.refresh(&token) => o,
            };
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Cmd::RefreshDone { key, outcome }).await;
            }
        });
    }

    fn on_done(&mut self, key: [u8; 32], outcome: RefreshOutcome) {
        let Some(Slot::InFlight(waiters)) = self.refreshes.remove(&key) else {
            return;
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// 32 random bytes, base64url without padding (43 characters: a valid PKCE verifier).
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `raw` if it is a same-origin relative path (`/…`, not `//…`, no `\`, no control
/// characters, at most 2 KiB), else `/`.
pub fn safe_return_path(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= MAX_RETURN_LEN =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The origin a request came to, as the browser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestOrigin {
    /// `scheme://host[:port]`, lower case.
    origin: String,
    /// Whether cookies get `__Host-` and `Secure` (HTTPS, or a loopback host).
    secure_cookies: bool,
}

impl RequestOrigin {
    fn new(https: bool, host: &str) -> Self {
        let scheme = if https { "https" } else { "http" };
        let host = host.to_ascii_lowercase();
        let secure_cookies = https || is_loopback_host(&host);
        Self {
            origin: format!("{scheme}://{host}"),
            secure_cookies,
        }
    }

    /// `base`, with [`HOST_PREFIX`] on secure origins and `_<port>` when the origin names a
    /// port: browsers do not keep cookies apart by port, so two nodes on one host (a
    /// testnet, an operator with several nodes) must not overwrite each other's.
    fn cookie_name(&self, base: &str) -> String {
        let prefix = if self.secure_cookies { HOST_PREFIX } else { "" };
        let port = self
            .origin
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        match port {
            Some(port) => format!("{prefix}{base}_{port}"),
            None => format!("{prefix}{base}"),
        }
    }

    /// `Set-Cookie` for `base` = `value` (`max_age` seconds; `Some(0)` clears it).
    fn set_cookie(&self, base: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.cookie_name(base)
        );
        if self.secure_cookies {
            c.push_str("; Secure");
        } else {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                tracing::warn!(
                    origin = %self.origin,
                    "sign-in cookies on a plain-HTTP origin that is not loopback: they go \
                     without __Host- and Secure, and anyone on the network path can read \
                     the refresh token; serve the gateway over HTTPS"
                );
            });
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }
}

/// Whether `host` (`name[:port]` or `[v6][:port]`) is a loopback host.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether a POST comes from `origin` itself (CSRF): `Origin` equal to it, or no `Origin`
/// and `Sec-Fetch-Site: same-origin`.
fn same_origin_post(headers: &HeaderMap, origin: &RequestOrigin) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) => o.eq_ignore_ascii_case(&origin.origin),
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("same-origin")),
    }
}

/// The gateway origins of this node's certificate (normalised), if it is a member.
fn certificate_origins(state: &GatewayState) -> Vec<String> {
    state
        .membership
        .as_ref()
        .and_then(|m| m.own())
        .map(|own| {
            own.cert
                .origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// A reply with `status`, no caching, and these headers.
fn reply(status: StatusCode, headers: Vec<(header::HeaderName, String)>) -> Response {
    let mut res = Response::new(Default::default());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    res
}

fn with_cookies(mut res: Response, cookies: &[String]) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    res
}

fn redirect(location: &str, cookies: &[String]) -> Response {
    with_cookies(
        reply(
            StatusCode::FOUND,
            vec![(header::LOCATION, location.to_owned())],
        ),
        cookies,
    )
}

fn not_member() -> Response {
    error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_a_member",
        "this node is not a member of the network, so the tracker does not let viewers \
         sign in through it; see its /healthz",
    )
}

fn query_pairs(raw: &str) -> HashMap<String, String> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The sign-in routes (`/auth/*`): one dispatch on method and path, each answer counted
/// once under the `signin` route label.
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let host = warp::host::optional().map(|a: Option<warp::host::Authority>| {
        a.map(|a| a.as_str().to_owned()).unwrap_or_default()
    });
    warp::path("auth")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::method())
        .and(warp::any().map(move || state.clone()))
        .and(raw_query)
        .and(host)
        .and(warp::header::headers_cloned())
        .and_then(
            |route: String,
             method: Method,
             state: GatewayState,
             query: String,
             host: String,
             headers: HeaderMap| async move {
                let res = match (method, route.as_str()) {
                    (Method::GET, "login") => login(&state, &query, &host).await,
                    (Method::GET, "callback") => callback(&state, &query, &host, &headers).await,
                    (Method::POST, "session") => session(&state, &host, &headers).await,
                    (Method::POST, "logout") => logout(&state, &host, &headers).await,
                    (Method::GET, "account") => redirect(
                        &format!("{}/account", state.signin.config().tracker_public_url()),
                        &[],
                    ),
                    // The network console lives on the tracker's origin (admins).
                    (Method::GET, "network") => redirect(
                        &format!(
                            "{}/console/network",
                            state.signin.config().tracker_public_url()
                        ),
                        &[],
                    ),
                    _ => return Err(warp::reject::not_found()),
                };
                state.metrics.request("signin", res.status().as_u16());
                Ok::<_, Rejection>(res)
            },
        )
}

async fn login(state: &GatewayState, query: &str, host: &str) -> Response {
    let config = state.signin.config();
    let params = query_pairs(query);
    let return_to = safe_return_path(params.get("return").map(String::as_str));
    let origins = certificate_origins(state);
    let here = RequestOrigin::new(config.https, host);
    let Some(first) = origins.first() else {
        return not_member();
    };
    if !origins.contains(&here.origin) {
        // Start over on the certificate's first origin, where the callback will land.
        let mut url = format!("{first}/auth/login?");
        url.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .append_pair("return", &return_to)
                .finish(),
        );
        return redirect(&url, &[]);
    }
    let redirect_uri = oauth::redirect_uri(&here.origin);
    let state_value = random_token();
    let verifier = random_token();
    let binding = random_token();
    let login = PendingLogin {
        binding_hash: sha256(binding.as_bytes()),
        verifier: verifier.clone(),
        return_to,
        redirect_uri: redirect_uri.clone(),
    };
    if !state.signin.begin(state_value.clone(), login).await {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the node is shutting down",
        );
    }
    let authorize = format!(
        "{}{}?{}",
        config.tracker_public_url(),
        oauth::AUTHORIZE_PATH,
        form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("state", &state_value)
            .append_pair("code_challenge", &oauth::s256_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .finish()
    );
    let cookie = here.set_cookie(BINDING_COOKIE, &binding, Some(PENDING_TTL.as_secs()));
    redirect(&authorize, &[cookie])
}

async fn callback(state: &GatewayState, query: &str, host: &str, headers: &HeaderMap) -> Response {
    let config = state.signin.config();
    let here = RequestOrigin::new(config.https, host);
    let params = query_pairs(query);
    // A refusal leaves the binding cookie alone: a callback forced on this browser by
    // someone else must not break the login it has in progress.
    let refused = |code: &str, message: &str| {
        tracing::info!(%code, %message, "sign-in callback refused");
        with_cookies(error_reply(StatusCode::BAD_REQUEST, code, message), &[])
    };
    let binding = cookie(headers, &here.cookie_name(BINDING_COOKIE));
    if let Some(error) = params.get("error") {
        // The viewer said no (or the tracker could not grant): drop the pending login if
        // it is this browser's, and go home with the reason. The binding cookie goes only
        // with that login: an error callback anyone can send (no state, or another one)
        // must not end the login this browser has in progress.
        let ended = match (params.get("state"), &binding) {
            (Some(s), Some(b)) => state.signin.take(s, b).await.is_ok(),
            _ => false,
        };
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        let clear = [here.set_cookie(BINDING_COOKIE, "", Some(0))];
        return redirect(
            &format!("/?signin_error={error}"),
            if ended { &clear[..] } else { &[] },
        );
    }
    if params.get("iss").map(String::as_str) != Some(config.issuer.as_str()) {
        return refused(
            "wrong_issuer",
            "the answer does not come from this network's tracker (iss)",
        );
    }
    let (Some(code), Some(state_value)) = (params.get("code"), params.get("state")) else {
        return refused("invalid_request", "code and state are required");
    };
    let Some(binding) = binding else {
        return refused(
            "no_binding_cookie",
            "this sign-in was not started in this browser (no binding cookie); start again",
        );
    };
    let login = match state.signin.take(state_value, &binding).await {
        Ok(login) => login,
        Err(e) => return refused("bad_state", &e.to_string()),
    };
    match state.signin.client.redeem(code, &login).await {
        Ok(tokens) => {
            let max_age = (tokens.refresh_expires_in > 0).then_some(tokens.refresh_expires_in);
            redirect(
                &login.return_to,
                &[
                    here.set_cookie(BINDING_COOKIE, "", Some(0)),
                    here.set_cookie(REFRESH_COOKIE, &tokens.refresh_token, max_age),
                ],
            )
        }
        Err(TrackerCallError::NotMember) => not_member(),
        Err(e @ TrackerCallError::Refused { .. }) => refused("code_refused", &e.to_string()),
        Err(e) => {
            tracing::warn!(err = %e, "sign-in: redeeming a code at the tracker failed");
            error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "tracker_unavailable",
                &e.to_string(),
            )
        }
    }
}

#[derive(Serialize)]
struct SessionBody<'a> {
    access_token: &'a str,
    expires_in: u64,
    user: &'a Option<serde_json::Value>,
}

fn bad_origin() -> Response {
    error_reply(
        StatusCode::FORBIDDEN,
        "bad_origin",
        "this request must come from this site's own pages (Origin)",
    )
}

async fn session(state: &GatewayState, host: &str, headers: &HeaderMap) -> Response {
    let here = RequestOrigin::new(state.signin.config().https, host);
    if !same_origin_post(headers, &here) {
        return bad_origin();
    }
    let Some(token) = cookie(headers, &here.cookie_name(REFRESH_COOKIE)) else {
        return error_reply(
            StatusCode::UNAUTHORIZED,
            "no_session",
            "not signed in on this site: sign in at /auth/login",
        );
    };
    match state.signin.refresh(&token).await {
        RefreshOutcome::Tokens(tokens) => {
            let max_age = (tokens.refresh_expires_in > 0).then_some(tokens.refresh_expires_in);
            let body = warp::reply::json(&SessionBody {
                access_token: &tokens.access_token,
                expires_in: tokens.expires_in,
                user: &tokens.user,
            })
            .into_response();
            with_cookies(
                body,
                &[here.set_cookie(REFRESH_COOKIE, &tokens.refresh_token, max_age)],
            )
        }
        RefreshOutcome::Refused(why) => {
            tracing::debug!(%why, "sign-in: refresh refused; the session is over");
            with_cookies(
                error_reply(
                    StatusCode::UNAUTHORIZED,
                    "session_ended",
                    &format!("the session has ended ({why}): sign in again at /auth/login"),
                ),
                &[here.set_cookie(REFRESH_COOKIE, "", Some(0))],
            )
        }
        RefreshOutcome::Unavailable(why) => with_cookies(
            error_reply(StatusCode::SERVICE_UNAVAILABLE, "tracker_unavailable", &why),
            &[],
        ),
    }
}

async fn logout(state: &GatewayState, host: &str, headers: &HeaderMap) -> Response {
    let here = RequestOrigin::new(state.signin.config().https, host);
    if !same_origin_post(headers, &here) {
        return bad_origin();
    }
    if let Some(token) = cookie(headers, &here.cookie_name(REFRESH_COOKIE)) {
        if let Err(e) = state.signin.client.revoke(&token).await {
            // The cookie goes anyway; the session ends at the tracker when its refresh
            // token expires (or from the account page).
            tracing::warn!(err = %e, "sign-out: revoking at the tracker failed");
        }
    }
    reply(
        StatusCode::NO_CONTENT,
        vec![(
            header::SET_COOKIE,
            here.set_cookie(REFRESH_COOKIE, "", Some(0)),
        )],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn login(binding: &str) -> PendingLogin {
        PendingLogin {
            binding_hash: sha256(binding.as_bytes()),
            verifier: random_token(),
            return_to: "/".into(),
            redirect_uri: "http://127.0.0.1:1/auth/callback".into(),
        }
    }

    #[test]
    fn pending_logins_are_single_use_and_bound() {
        let t0 = Instant::now();
        let mut p = PendingLogins::default();
        p.insert("s1".into(), login("b1"), t0);
        assert_eq!(p.take("s1", "b2", t0).unwrap_err(), TakeError::Binding);
        // A stranger's attempt does not burn it.
        assert!(p.take("s1", "b1", t0).is_ok());
        assert_eq!(p.take("s1", "b1", t0).unwrap_err(), TakeError::Unknown);
        assert_eq!(p.take("nope", "b1", t0).unwrap_err(), TakeError::Unknown);
    }

    #[test]
    fn pending_logins_expire_after_ten_minutes() {
        let t0 = Instant::now();
        let mut p = PendingLogins::default();
        p.insert("s1".into(), login("b"), t0);
        p.insert("s2".into(), login("b"), t0 + Duration::from_secs(300));
        let later = t0 + PENDING_TTL;
        assert_eq!(p.take("s1", "b", later).unwrap_err(), TakeError::Unknown);
        assert!(p.take("s2", "b", later).is_ok());
        assert!(p.is_empty());
    }

    #[test]
    fn the_oldest_pending_login_goes_first() {
        let t0 = Instant::now();
        let mut p = PendingLogins::default();
        for i in 0..MAX_PENDING + 5 {
            p.insert(format!("s{i}"), login("b"), t0);
        }
        assert_eq!(p.len(), MAX_PENDING);
        for i in 0..5 {
            assert_eq!(
                p.take(&format!("s{i}"), "b", t0).unwrap_err(),
                TakeError::Unknown
            );
        }
        assert!(p.take("s5", "b", t0).is_ok());
        assert!(p.take(&format!("s{}", MAX_PENDING + 4), "b", t0).is_ok());
        // Taken states leave no stale order behind forever.
        for i in 0..3 * MAX_PENDING {
            p.insert(format!("t{i}"), login("b"), t0);
            assert!(p.take(&format!("t{i}"), "b", t0).is_ok());
        }
        assert!(p.order.len() <= 2 * MAX_PENDING + 1);
    }

    #[test]
    fn return_paths_stay_on_this_origin() {
        for ok in ["/", "/watch/tmdb-1?t=30", "/a/b#c"] {
            assert_eq!(safe_return_path(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_return_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_path(None), "/");
        assert_eq!(
            safe_return_path(Some(&format!("/{}", "a".repeat(3000)))),
            "/"
        );
    }

    #[test]
    fn cookie_flags_follow_the_origin() {
        let https = RequestOrigin::new(true, "Movies.Example:8443");
        assert_eq!(https.origin, "https://movies.example:8443");
        let c = https.set_cookie(REFRESH_COOKIE, "v", Some(60));
        assert_eq!(
            c,
            "__Host-reelnet_refresh_8443=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
        for (loopback, name) in [
            ("127.0.0.2:8080", "__Host-reelnet_oauth_8080"),
            ("localhost:1", "__Host-reelnet_oauth_1"),
            ("[::1]:80", "__Host-reelnet_oauth_80"),
            ("a.localhost", "__Host-reelnet_oauth"),
        ] {
            let o = RequestOrigin::new(false, loopback);
            assert!(o.secure_cookies, "{loopback}");
            assert_eq!(o.cookie_name(BINDING_COOKIE), name);
        }
        let plain = RequestOrigin::new(false, "203.0.113.7:8080");
        assert!(!plain.secure_cookies);
        let c = plain.set_cookie(REFRESH_COOKIE, "", Some(0));
        assert_eq!(
            c,
            "reelnet_refresh_8080=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn cookies_and_origins_are_read_exactly() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; reelnet_refresh=plain; __Host-reelnet_refresh=x"),
        );
        assert_eq!(cookie(&h, "__Host-reelnet_refresh").as_deref(), Some("x"));
        assert_eq!(cookie(&h, "reelnet_refresh").as_deref(), Some("plain"));
        assert_eq!(cookie(&h, "b"), None);
        let here = RequestOrigin::new(false, "127.0.0.1:8080");
        assert!(!same_origin_post(&h, &here));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin_post(&h, &here));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin_post(&h, &here));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin_post(&h, &here));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin_post(&h, &here));
    }

    #[test]
    fn verifiers_and_states_are_valid_pkce() {
        let v = random_token();
        assert!(oauth::verifier_is_valid(&v));
        assert!(oauth::challenge_is_valid(&oauth::s256_challenge(&v)));
        assert_ne!(random_token(), v);
    }
}
