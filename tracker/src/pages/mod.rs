//! The tracker's own web pages (docs/signin.md, "Pages"): sign-in, registration, email
//! verification, password reset, the account, the OAuth consent page and the device page,
//! server-rendered on the tracker's origin (`public_url`), so a viewer's password, passkey
//! and reset/verification tokens are only ever sent to the tracker.
//!
//! - Browser sessions: the `__Host-reelnet_session` cookie (Secure, HttpOnly, Path=/,
//!   SameSite=Lax), 256 random bits stored hashed ([`crate::store::pages`]) with the user,
//!   when it was made, when the user last typed a password or used a passkey (`auth_time`),
//!   its expiry and its CSRF token.
//! - CSRF: every form carries a token tied to the session (before sign-in, to the
//!   `__Host-reelnet_csrf` double-submit cookie), and every POST must come from the
//!   tracker's own origin (`Origin`, else `Referer`, else `Sec-Fetch-Site: same-origin`;
//!   the pages' `Referrer-Policy: same-origin` keeps `Origin` real on their own form posts,
//!   even off a secure context where browsers send no `Sec-Fetch-Site`). A failure answers a 403 page and is counted as `bad_csrf`.
//! - A plain-HTTP `public_url` off loopback gets the same cookies without the `__Host-`
//!   prefix and `Secure` (logged as unsafe at start).
//! - Every answer carries the pages' own headers ([`page_headers`]); the JSON API keeps its
//!   stricter ones.
//!
//! Handlers: [`signin`] (login, register, verify, reset), [`account`] (account, logout),
//! [`oauth`] (authorize/consent, device), [`passkeys`] (WebAuthn ceremonies).

mod account;
pub(crate) mod console;
pub mod html;
mod oauth;
pub(crate) mod passkeys;
mod signin;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::api::Api;
use crate::clock::now_secs;
use crate::error::ApiError;
use crate::http::common::{source, SourceParts};
use crate::store::pages::BrowserSession;
use crate::store::{User, UserId};

/// The stylesheet every page links.
const CSS: &str = include_str!("style.css");
/// The passkey ceremonies' script (the only script the pages load).
const JS: &str = include_str!("passkeys.js");

/// What the pages share: the API, the tracker's origin, cookie names, passkeys.
#[derive(Clone)]
pub(crate) struct Pages {
    api: Api,
    inner: Arc<Inner>,
}

struct Inner {
    /// The tracker's origin (`public_url`, no trailing slash).
    origin: String,
    /// Cookies carry `__Host-` and `Secure` (HTTPS, or HTTP on loopback).
    secure: bool,
    passkeys: passkeys::Passkeys,
    /// The pages' CSP and when it was built: its `form-action` lists every member's
    /// gateway origins, read from the store at most every [`CSP_REFRESH`] rather than on
    /// every page (a cache, not state: losing it only costs a rebuild).
    csp: std::sync::Mutex<Option<(std::time::Instant, HeaderValue)>>,
}

/// How long the pages' CSP (with the members' origins) is reused before it is rebuilt: a
/// node that just enrolled can be sent back to within this long.
const CSP_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-reelnet_session";
/// The pre-sign-in CSRF cookie's name.
pub const CSRF_COOKIE: &str = "__Host-reelnet_csrf";
/// The header the passkey script sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether `host` (from a URL, brackets kept for IPv6) is a loopback name or address.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.to_ascii_lowercase().ends_with(".localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `(scheme, host)` of an origin `http(s)://host[:port]` (IPv6 hosts keep their brackets).
pub(crate) fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let host = if let Some(end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
        &rest[..end + 2]
    } else {
        rest.split(':').next().unwrap_or(rest)
    };
    Some((scheme, host))
}

/// An origin as browsers serialise it: lowercase, without a default port (`:443` on
/// https, `:80` on http) or a trailing slash.
pub(crate) fn normalize_origin(origin: &str) -> String {
    let o = origin.trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if o.starts_with(scheme) && o.ends_with(port) {
            return o[..o.len() - port.len()].to_owned();
        }
    }
    o
}

/// Whether `next` may be followed after sign-in: a same-origin relative path (`/…`, not
/// `//…` or `/\…`), printable ASCII without backslashes, at most 2048 bytes.
pub fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// Parses a form or query string into its fields (the last of repeated names wins).
pub(crate) fn fields(raw: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw)
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

/// Where to go after sign-in: `next` when [`safe_next`], else `/account`.
fn next_of(next: Option<&str>) -> String {
    next.filter(|n| safe_next(n))
        .unwrap_or("/account")
        .to_owned()
}

/// Compares two secrets without stopping at the first difference.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// A random 256-bit secret (base64url) and its hash.
fn new_secret() -> (String, [u8; 32]) {
    crate::accounts::new_secret()
}

fn cookie_hash(value: &str) -> Option<[u8; 32]> {
    (!value.is_empty() && value.len() <= 128).then(|| *blake3::hash(value.as_bytes()).as_bytes())
}

/// What every page handler gets from the request.
pub(crate) struct Req {
    cookies: HashMap<String, String>,
    origin: Option<String>,
    referer: Option<String>,
    fetch_site: Option<String>,
    csrf_header: Option<String>,
    src: SourceParts,
    /// The path and query as requested (for `next`).
    path_and_query: String,
}

/// A signed-in browser.
pub(crate) struct Session {
    pub hash: [u8; 32],
    pub rec: BrowserSession,
    pub user: User,
}

/// A POST form that passed the origin and CSRF checks ([`Pages::form`]), with the
/// browser's session: `Option<Session>`, or `Session` from [`Pages::signed_in_form`].
pub(crate) struct Form<S = Option<Session>> {
    fields: HashMap<String, String>,
    pub session: S,
}

impl<S> Form<S> {
    /// The field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The field `name`, empty when not sent.
    pub fn text(&self, name: &str) -> String {
        self.field(name).unwrap_or_default().to_owned()
    }
}

/// Not signed in: to the sign-in page, then back to `next`.
fn to_login(next: &str) -> Answer {
    Answer::redirect(StatusCode::SEE_OTHER, &Pages::login_url(next))
}

/// What a handler answers: `Err` is an early answer (a refusal), so checks can use `?`.
type Handled = Result<Answer, Answer>;

impl From<Handled> for Answer {
    fn from(h: Handled) -> Self {
        h.unwrap_or_else(|a| a)
    }
}

/// A page answer being built: status, body or redirect, cookies to set.
pub(crate) struct Answer {
    status: StatusCode,
    body: Option<(String, &'static str)>,
    location: Option<String>,
    cookies: Vec<String>,
    retry_after: Option<u64>,
}

impl Answer {
    /// An HTML page.
    pub fn page(status: StatusCode, title: &str, body: &str) -> Self {
        Self::html(status, html::layout(title, body, false))
    }

    /// An HTML page that loads the passkey script.
    pub fn page_with_script(status: StatusCode, title: &str, body: &str) -> Self {
        Self::html(status, html::layout(title, body, true))
    }

    fn html(status: StatusCode, doc: String) -> Self {
        Self {
            status,
            body: Some((doc, "text/html; charset=utf-8")),
            location: None,
            cookies: Vec::new(),
            retry_after: None,
        }
    }

    /// A JSON answer (the passkey ceremonies).
    pub fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        Self {
            status,
            body: Some((value.to_string(), "application/json")),
            location: None,
            cookies: Vec::new(),
            retry_after: None,
        }
    }

    /// A redirect: 303 after a POST, 302 for a GET.
    pub fn redirect(status: StatusCode, location: &str) -> Self {
        Self {
            status,
            body: None,
            location: Some(location.to_owned()),
            cookies: Vec::new(),
            retry_after: None,
        }
    }

    /// An error page for `err` (its status, its message).
    pub fn error(title: &str, err: &ApiError) -> Self {
        let mut a = Self::page(err.status, title, &html::message("error", &err.message));
        a.retry_after = err.retry_after;
        a
    }

    /// Carries `err`'s `Retry-After` (a 429 from the abuse limits).
    pub fn retry_after(mut self, err: &ApiError) -> Self {
        self.retry_after = err.retry_after;
        self
    }

    pub fn cookie(mut self, c: String) -> Self {
        self.cookies.push(c);
        self
    }

    fn into_response(self) -> Response {
        let mut res = match self.body {
            Some((body, kind)) => {
                let mut r = Response::new(body.into());
                if let Ok(v) = HeaderValue::from_str(kind) {
                    r.headers_mut().insert("content-type", v);
                }
                r
            }
            None => Response::new(Bytes::new().into()),
        };
        *res.status_mut() = self.status;
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            res.headers_mut().insert("location", loc);
        }
        if let Some(v) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            res.headers_mut().insert("retry-after", v);
        }
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                res.headers_mut().append("set-cookie", v);
            }
        }
        res
    }
}

impl Pages {
    fn new(api: Api) -> Self {
        let origin = normalize_origin(&api.config().public_origin());
        let (scheme, host) = split_origin(&origin).unwrap_or(("http", "127.0.0.1"));
        let secure = scheme == "https" || is_loopback_host(host);
        if !secure {
            tracing::warn!(
                public_url = %origin,
                "UNSAFE: the tracker's public_url is plain HTTP off loopback: its session \
                 cookies cannot be Secure or __Host-, and passwords cross the network in \
                 the clear; use https://"
            );
        }
        let passkeys = passkeys::Passkeys::new(&origin, host);
        Self {
            api,
            inner: Arc::new(Inner {
                origin,
                secure,
                passkeys,
                csp: std::sync::Mutex::new(None),
            }),
        }
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    fn cookie_name(&self, name: &'static str) -> &'static str {
        if self.inner.secure {
            name
        } else {
            name.trim_start_matches("__Host-")
        }
    }

    /// `Set-Cookie` for `name=value` (HttpOnly, Path=/, SameSite=Lax, Secure when it may).
    fn set_cookie(&self, name: &'static str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.cookie_name(name)
        );
        if self.inner.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    fn clear_cookie(&self, name: &'static str) -> String {
        self.set_cookie(name, "", Some(0))
    }

    fn cookie<'r>(&self, req: &'r Req, name: &'static str) -> Option<&'r str> {
        req.cookies
            .get(self.cookie_name(name))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The signed-in browser, if the session cookie names a live session of an existing
    /// account.
    pub fn session(&self, req: &Req) -> Option<Session> {
        let hash = cookie_hash(self.cookie(req, SESSION_COOKIE)?)?;
        let rec = self.api.store().browser_session(&hash).ok().flatten()?;
        if rec.expires_at <= now_secs() {
            return None;
        }
        let user = self.api.user_by_id(&rec.user).ok().flatten()?;
        Some(Session { hash, rec, user })
    }

    /// The CSRF token for forms on this page, and the cookie to set when the browser has
    /// none yet (before sign-in).
    pub fn csrf_token(&self, req: &Req, session: Option<&Session>) -> (String, Option<String>) {
        if let Some(s) = session {
            return (s.rec.csrf.clone(), None);
        }
        match self.cookie(req, CSRF_COOKIE) {
            Some(v) if v.len() >= 32 && v.len() <= 128 => (v.to_owned(), None),
            _ => {
                let (token, _) = new_secret();
                let set = self.set_cookie(CSRF_COOKIE, &token, None);
                (token, Some(set))
            }
        }
    }

    /// The CSRF token for a page's forms ([`Self::csrf_token`]) passed to `page`, and the
    /// CSRF cookie on its answer when one had to be made.
    pub fn with_csrf(
        &self,
        req: &Req,
        session: Option<&Session>,
        page: impl FnOnce(&str) -> Answer,
    ) -> Answer {
        let (csrf, set) = self.csrf_token(req, session);
        let a = page(&csrf);
        match set {
            Some(c) => a.cookie(c),
            None => a,
        }
    }

    /// [`Self::with_csrf`] for this browser's session, if any (a page with a form).
    pub fn form_page(&self, req: &Req, page: impl FnOnce(&str) -> Answer) -> Answer {
        let session = self.session(req);
        self.with_csrf(req, session.as_ref(), page)
    }

    /// Whether the request came from the tracker's own origin.
    fn same_origin(&self, req: &Req) -> bool {
        let ours = self.inner.origin.as_str();
        match req.origin.as_deref() {
            Some(o) if normalize_origin(o) == ours => return true,
            Some(o) if o != "null" => return false,
            _ => {}
        }
        if let Some(r) = &req.referer {
            return r == ours || r.starts_with(&format!("{ours}/"));
        }
        req.fetch_site.as_deref() == Some("same-origin")
    }

    /// Whether a POST is the tracker's own: same origin, and `token` is the session's CSRF
    /// token (or, before sign-in, the double-submit cookie's).
    fn csrf_ok(&self, req: &Req, session: Option<&Session>, token: &str) -> bool {
        self.same_origin(req)
            && (session.is_some_and(|s| same_secret(&s.rec.csrf, token))
                || self
                    .cookie(req, CSRF_COOKIE)
                    .is_some_and(|c| same_secret(c, token)))
    }

    /// A form POST: its fields and the browser's session, if any, once [`Self::check_post`]
    /// passed (before anything else looks at the form).
    pub fn form(&self, req: &Req, body: &[u8]) -> Result<Form, Answer> {
        let fields = fields(body);
        let session = self.session(req);
        self.check_post(req, session.as_ref(), fields.get("csrf"))?;
        Ok(Form { fields, session })
    }

    /// A form POST that needs a session: without one, to the sign-in page and then back to
    /// `login_next` (nothing counted); with one, [`Self::check_post`].
    pub fn signed_in_form(
        &self,
        req: &Req,
        body: &[u8],
        login_next: &str,
    ) -> Result<Form<Session>, Answer> {
        let fields = fields(body);
        let Some(session) = self.session(req) else {
            return Err(to_login(login_next));
        };
        self.check_post(req, Some(&session), fields.get("csrf"))?;
        Ok(Form { fields, session })
    }

    /// Checks a POST ([`Self::csrf_ok`] with the form's `csrf` field). A failure is counted
    /// (`bad_csrf`) and answered with a 403 page.
    fn check_post(
        &self,
        req: &Req,
        session: Option<&Session>,
        token: Option<&String>,
    ) -> Result<(), Answer> {
        if self.csrf_ok(req, session, token.map_or("", String::as_str)) {
            return Ok(());
        }
        self.api.oauth_refused("bad_csrf");
        tracing::info!(
            origin = req.origin.as_deref().unwrap_or("-"),
            "page POST refused: not same-origin or bad CSRF token"
        );
        Err(Answer::page(
            StatusCode::FORBIDDEN,
            "Request refused",
            &html::message(
                "error",
                "This form was not sent from this page (its security token is missing, stale or wrong). Go back, reload the page and try again.",
            ),
        ))
    }

    /// The request's source (for the abuse limits), or a 403 page when it came through a
    /// member node's proxy: credentials go to the tracker directly, never through a node.
    pub fn direct_source(&self, req: &Req, body: &[u8]) -> Result<crate::accounts::Source, Answer> {
        let src = req.src.resolve(&self.api, body);
        if src.node.is_some() {
            self.api.oauth_refused("credentials_through_proxy");
            return Err(Answer::page(
                StatusCode::FORBIDDEN,
                "Sign in at the tracker",
                &html::message(
                    "error",
                    "Passwords are only accepted on the tracker's own site, not through a node.",
                ),
            ));
        }
        Ok(src)
    }

    /// Starts a browser session for `user` (a password or passkey was just checked): the
    /// old session of this browser, if any, ends. The `Set-Cookie` to send.
    pub async fn start_session(&self, req: &Req, user: &UserId) -> Result<String, ApiError> {
        if let Some(old) = self.cookie(req, SESSION_COOKIE).and_then(cookie_hash) {
            self.api.store().delete_browser_session(old).await?;
        }
        let (value, hash) = new_secret();
        let (csrf, _) = new_secret();
        let now = now_secs();
        let ttl = self.api.config().pages.session_ttl_secs;
        self.api
            .store()
            .put_browser_session(
                hash,
                BrowserSession {
                    user: *user,
                    created_at: now,
                    auth_time: now,
                    expires_at: now + ttl,
                    csrf,
                },
            )
            .await?;
        tracing::info!(user = %user, "signed in on the tracker's pages");
        Ok(self.set_cookie(SESSION_COOKIE, &value, Some(ttl)))
    }

    /// Whether `session` signed in (password or passkey) recently enough for a change.
    pub fn recent(&self, session: &Session) -> bool {
        now_secs().saturating_sub(session.rec.auth_time)
            < self.api.config().pages.recent_sign_in_secs
    }

    /// The passkey button `id`, disabled with the reason beside it when passkeys are off
    /// here: `(button, reason)`.
    fn passkey_button(&self, id: &str, label: &str) -> (String, String) {
        match self.inner.passkeys.unavailable() {
            None => (
                format!("<button type=\"button\" id=\"{id}\">{label}</button>"),
                String::new(),
            ),
            Some(why) => (
                format!("<button type=\"button\" id=\"{id}\" disabled>{label}</button>"),
                html::message("info", &why),
            ),
        }
    }

    /// `/login?next=<path>`.
    pub fn login_url(next: &str) -> String {
        match serde_urlencoded::to_string([("next", next)]) {
            Ok(q) => format!("/login?{q}"),
            Err(_) => "/login".to_owned(),
        }
    }

    /// The pages' CSP, rebuilt from the members' origins at most every [`CSP_REFRESH`].
    fn csp(&self) -> Option<HeaderValue> {
        let now = std::time::Instant::now();
        if let Ok(cached) = self.inner.csp.lock() {
            if let Some((at, v)) = cached.as_ref() {
                if now.saturating_duration_since(*at) < CSP_REFRESH {
                    return Some(v.clone());
                }
            }
        }
        let origins: Vec<String> = self
            .api
            .oauth_registered_origins()
            .into_iter()
            .filter(|o| {
                reelnet_proto::membership::check_origin(o).is_ok() && !o.contains([';', ','])
            })
            .collect();
        let mut form_action = "'self'".to_owned();
        for o in &origins {
            form_action.push(' ');
            form_action.push_str(o);
        }
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        );
        let v = HeaderValue::from_str(&csp).ok()?;
        if let Ok(mut cached) = self.inner.csp.lock() {
            *cached = Some((now, v.clone()));
        }
        Some(v)
    }

    /// The pages' headers: CSP (with the registered node origins in `form-action`, so the
    /// consent form may redirect back to them), no framing, no sniffing, no referrer to
    /// other origins, no caching.
    fn headers(&self, mut res: Response) -> Response {
        let h = res.headers_mut();
        if let Some(csp) = self.csp() {
            h.insert(HeaderName::from_static("content-security-policy"), csp);
        }
        for (name, value) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            // Not `no-referrer`: under it browsers send `Origin: null` on the pages' own form
            // posts, and off a secure context (a plain-HTTP tracker on a LAN address) no
            // `Sec-Fetch-Site` either, so nothing would vouch for them. `same-origin` sends
            // the referrer (and the real `Origin`) to the tracker only.
            ("referrer-policy", "same-origin"),
            ("cache-control", "no-store"),
        ] {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        res
    }
}

/// Extracts [`Req`].
fn req(trusted: Vec<IpAddr>) -> impl Filter<Extract = (Req,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("cookie")
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and(source(trusted))
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            |cookie: Option<String>,
             origin: Option<String>,
             referer: Option<String>,
             fetch_site: Option<String>,
             csrf_header: Option<String>,
             src: SourceParts,
             path: warp::path::FullPath,
             query: String| {
                let cookies = cookie
                    .unwrap_or_default()
                    .split(';')
                    .filter_map(|kv| {
                        let (k, v) = kv.trim().split_once('=')?;
                        Some((k.trim().to_owned(), v.trim().to_owned()))
                    })
                    .collect();
                let path_and_query = if query.is_empty() {
                    path.as_str().to_owned()
                } else {
                    format!("{}?{query}", path.as_str())
                };
                Req {
                    cookies,
                    origin,
                    referer,
                    fetch_site,
                    csrf_header,
                    src,
                    path_and_query,
                }
            },
        )
}

/// The query string (empty when there is none).
fn query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The body, at most `limit` bytes; empty without a `Content-Length`.
fn body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(limit)
        .and(warp::body::bytes())
        .or(warp::header::optional::<String>("content-length").and_then(
            |h: Option<String>| async move {
                match h {
                    None => Ok(Bytes::new()),
                    Some(_) => Err(warp::reject::not_found()),
                }
            },
        ))
        .unify()
}

type Route = BoxedFilter<(Response,)>;

/// A GET page: `f(pages, req, query)`, answering an [`Answer`] or [`Handled`].
fn get<F, Fut>(path: &'static str, pages: &Pages, trusted: &[IpAddr], f: F) -> Route
where
    F: Fn(Pages, Req, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future + Send,
    Fut::Output: Into<Answer>,
{
    let p = pages.clone();
    path_filter(path)
        .and(warp::get())
        .and(warp::any().map(move || p.clone()))
        .and(req(trusted.to_vec()))
        .and(query())
        .then(move |pages: Pages, req: Req, q: String| {
            let f = f.clone();
            async move {
                let h = pages.clone();
                h.headers(f(pages, req, q).await.into().into_response())
            }
        })
        .boxed()
}

/// A POST page: `f(pages, req, body)`, answering an [`Answer`] or [`Handled`].
fn post<F, Fut>(path: &'static str, pages: &Pages, trusted: &[IpAddr], limit: u64, f: F) -> Route
where
    F: Fn(Pages, Req, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future + Send,
    Fut::Output: Into<Answer>,
{
    let p = pages.clone();
    path_filter(path)
        .and(warp::post())
        .and(warp::any().map(move || p.clone()))
        .and(req(trusted.to_vec()))
        .and(body(limit).map(Some).or(warp::any().map(|| None)).unify())
        .then(move |pages: Pages, req: Req, body: Option<Bytes>| {
            let f = f.clone();
            async move {
                let h = pages.clone();
                let res = match body {
                    Some(body) => f(pages, req, body).await.into().into_response(),
                    None => too_large(),
                };
                h.headers(res)
            }
        })
        .boxed()
}

/// A body over the limit (or of unknown length): 413, and the connection closes (the body
/// was not read).
fn too_large() -> Response {
    let mut res = Answer::page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request refused",
        &html::message("error", "This form is too large."),
    )
    .into_response();
    res.headers_mut()
        .insert("connection", HeaderValue::from_static("close"));
    res
}

/// The exact path `path` (`/` alone, or `/a/b`).
fn path_filter(path: &'static str) -> BoxedFilter<()> {
    let segments: Vec<&'static str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut f: BoxedFilter<()> = warp::any().boxed();
    for s in segments {
        f = f.and(warp::path(s)).boxed();
    }
    f.and(warp::path::end()).boxed()
}

/// A static asset.
fn asset(path: &'static str, pages: &Pages, kind: &'static str, text: &'static str) -> Route {
    let p = pages.clone();
    path_filter(path)
        .and(warp::get())
        .map(move || {
            let mut res = Response::new(text.into());
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static(kind));
            p.headers(res)
        })
        .boxed()
}

/// Every page route (see [`crate::routes::PAGE_ROUTES`]).
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    let limit = api.config().http.max_body_bytes;
    let trusted = api.config().http.trusted_proxies.clone();
    let p = Pages::new(api);
    let t = &trusted;
    let routes: Vec<Route> = vec![
        get("/", &p, t, |_, _, _| async {
            Answer::redirect(StatusCode::FOUND, "/account")
        }),
        get("/login", &p, t, signin::login_page),
        post("/login", &p, t, limit, signin::login_post),
        get("/register", &p, t, signin::register_page),
        post("/register", &p, t, limit, signin::register_post),
        get("/verify", &p, t, signin::verify_page),
        post("/verify", &p, t, limit, signin::verify_post),
        get("/reset", &p, t, signin::reset_page),
        post("/reset", &p, t, limit, signin::reset_post),
        get("/reset/confirm", &p, t, signin::reset_confirm_page),
        post("/reset/confirm", &p, t, limit, signin::reset_confirm_post),
        get("/account", &p, t, account::account_page),
        post("/account/password", &p, t, limit, account::password_post),
        post("/account/reauth", &p, t, limit, account::reauth_post),
        post(
            "/account/resend-verification",
            &p,
            t,
            limit,
            account::resend_post,
        ),
        post("/account/delete", &p, t, limit, account::delete_post),
        post(
            "/account/sessions/end",
            &p,
            t,
            limit,
            account::end_session_post,
        ),
        post(
            "/account/passkeys/delete",
            &p,
            t,
            limit,
            account::passkey_delete_post,
        ),
        post("/logout", &p, t, limit, account::logout_post),
        get("/oauth/authorize", &p, t, oauth::authorize_page),
        post("/oauth/authorize", &p, t, limit, oauth::authorize_post),
        get("/device", &p, t, oauth::device_page),
        post("/device", &p, t, limit, oauth::device_post),
        post(
            "/passkeys/register/start",
            &p,
            t,
            limit,
            passkeys::register_start,
        ),
        post(
            "/passkeys/register/finish",
            &p,
            t,
            limit,
            passkeys::register_finish,
        ),
        post("/passkeys/login/start", &p, t, limit, passkeys::login_start),
        post(
            "/passkeys/login/finish",
            &p,
            t,
            limit,
            passkeys::login_finish,
        ),
        asset("/static/reelnet.css", &p, "text/css; charset=utf-8", CSS),
        // Browsers ask for it on every page; nothing, rather than a JSON 404.
        get("/favicon.ico", &p, t, |_, _, _| async {
            Answer {
                status: StatusCode::NO_CONTENT,
                body: None,
                location: None,
                cookies: Vec::new(),
                retry_after: None,
            }
        }),
        asset(
            "/static/passkeys.js",
            &p,
            "text/javascript; charset=utf-8",
            JS,
        ),
    ];
    let mut routes = routes;
    routes.push(console::routes(&p.api));
    let mut all = routes.into_iter();
    let first = all.next().unwrap_or_else(|| {
        warp::any()
            .and_then(|| async { Err(warp::reject::not_found()) })
            .boxed()
    });
    all.fold(first, |acc, r| acc.or(r).unify().boxed())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_a_same_origin_path() {
        assert!(safe_next("/account"));
        assert!(safe_next("/oauth/authorize?client_id=a&state=x%20y"));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "",
            "/a b",
            "/a\u{0}",
            "javascript:alert(1)",
        ] {
            assert!(!safe_next(bad), "{bad:?}");
        }
    }

    #[test]
    fn loopback_and_origins() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.2"));
        assert!(is_loopback_host("[::1]"));
        assert!(!is_loopback_host("tracker.example"));
        assert!(!is_loopback_host("10.0.0.1"));
        assert_eq!(
            split_origin("https://t.example:8443"),
            Some(("https", "t.example"))
        );
        assert_eq!(split_origin("http://[::1]:80"), Some(("http", "[::1]")));
        assert_eq!(
            normalize_origin("HTTPS://T.example:443/"),
            "https://t.example"
        );
        assert_eq!(normalize_origin("http://t.example:80"), "http://t.example");
        assert_eq!(
            normalize_origin("http://t.example:8080"),
            "http://t.example:8080"
        );
        assert_eq!(
            normalize_origin("https://t.example:80"),
            "https://t.example:80"
        );
        let f = fields(b"a=1&b=%3Cx%3E&a=2");
        assert_eq!(f["a"], "2");
        assert_eq!(f["b"], "<x>");
    }
}
