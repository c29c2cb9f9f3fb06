//! The network console on the tracker's own origin: the built web app (`[pages]
//! console_dir`) served at `/console` (its single-page routes) and `/assets/*`, and the
//! tracker browser session that lets an admin call the JSON admin routes from it.
//!
//! Network views live here, not on a node's site: an admin's network powers must never be
//! usable from a page a node serves (a node token never carries them, and the tracker
//! refuses changes that come through a node's proxy). The console's own calls are
//! same-origin `fetch`es carrying the session cookie (`__Host-reelnet_session`,
//! SameSite=Lax, HttpOnly); [`session_admin`] accepts them only from the tracker's own
//! origin (`Origin`, else `Sec-Fetch-Site: same-origin`), which is what keeps another
//! site from riding the cookie (CSRF). The console's pages are served with
//! `Referrer-Policy: same-origin` so a browser sends a real `Origin` on their POSTs.

use std::path::{Path, PathBuf};

use warp::filters::BoxedFilter;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{cookie_hash, is_loopback_host, normalize_origin, split_origin, SESSION_COOKIE};
use crate::api::Api;
use crate::clock::now_secs;
use crate::error::ApiError;

/// Where a JSON admin request came from, for [`session_admin`].
#[derive(Debug, Clone, Default)]
pub(crate) struct BrowserParts {
    pub cookie: Option<String>,
    pub origin: Option<String>,
    pub fetch_site: Option<String>,
}

/// The session cookie's name on this tracker (`__Host-` only where it may be Secure).
fn session_cookie_name(api: &Api) -> &'static str {
    let origin = normalize_origin(&api.config().public_origin());
    let secure = split_origin(&origin)
        .is_some_and(|(scheme, host)| scheme == "https" || is_loopback_host(host));
    if secure {
        SESSION_COOKIE
    } else {
        SESSION_COOKIE.trim_start_matches("__Host-")
    }
}

/// The admin signed in on this browser at the tracker: `Ok(None)` without a session
/// cookie; 403 `cross_origin` when the request is not from the tracker's own origin, 401
/// `session_expired` for an unknown or ended session, 403 `not_admin` for other accounts.
pub(crate) fn session_admin(api: &Api, b: &BrowserParts) -> Result<Option<String>, ApiError> {
    let name = session_cookie_name(api);
    let Some(value) = b.cookie.as_deref().and_then(|c| {
        c.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k.trim() == name && !v.trim().is_empty()).then(|| v.trim().to_owned())
        })
    }) else {
        return Ok(None);
    };
    let ours = normalize_origin(&api.config().public_origin());
    let same_origin = match b.origin.as_deref() {
        Some(o) if o != "null" => normalize_origin(o) == ours,
        _ => b.fetch_site.as_deref() == Some("same-origin"),
    };
    if !same_origin {
        return Err(ApiError::forbidden(
            "cross_origin",
            "the tracker session works only on the tracker's own pages",
        ));
    }
    let expired = || ApiError::unauthorized("session_expired", "sign in at the tracker again");
    let hash = cookie_hash(&value).ok_or_else(expired)?;
    let rec = api
        .store()
        .browser_session(&hash)
        .ok()
        .flatten()
        .ok_or_else(expired)?;
    if rec.expires_at <= now_secs() {
        return Err(expired());
    }
    let user = api
        .user_by_id(&rec.user)
        .ok()
        .flatten()
        .ok_or_else(expired)?;
    if user.role != reelnet_proto::Role::Admin {
        return Err(ApiError::forbidden("not_admin", "only admins may do this"));
    }
    Ok(Some(user.email))
}

/// Headers of the console's files: the web app's (CSP, no framing, nosniff), with
/// `Referrer-Policy: same-origin` so its POSTs carry a real `Origin`.
fn headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in reelnet_runtime::headers::web_app().iter() {
        h.insert(name.clone(), value.clone());
    }
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cache-control"),
        HeaderValue::from_static("no-cache"),
    );
    res
}

fn not_built() -> Response {
    let body = "<!doctype html><meta charset=utf-8><title>reelnet console</title>\
        <p>The network console is not turned on: build the web app (<code>cd web &amp;&amp; \
        npm run build</code>) and set <code>[pages] console_dir</code> to its \
        <code>dist</code> directory.</p>";
    let mut res =
        warp::reply::with_status(warp::reply::html(body), StatusCode::NOT_FOUND).into_response();
    res.headers_mut().insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

async fn file(dir: Option<PathBuf>, rel: String) -> Response {
    let Some(dir) = dir else {
        return headers(not_built());
    };
    // Only plain names: no `..`, no hidden files, no absolute paths.
    let ok = rel
        .split('/')
        .all(|seg| !seg.is_empty() && !seg.starts_with('.') && !seg.contains('\\'));
    if !ok {
        return headers(
            warp::reply::with_status("not found", StatusCode::NOT_FOUND).into_response(),
        );
    }
    let path = dir.join(&rel);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut res = Response::new(bytes.into());
            res.headers_mut().insert(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static(content_type(&path)),
            );
            headers(res)
        }
        Err(_) if rel == "index.html" => headers(not_built()),
        Err(_) => {
            headers(warp::reply::with_status("not found", StatusCode::NOT_FOUND).into_response())
        }
    }
}

/// `GET /console`, `/console/*` (the app's index: its router picks the page) and
/// `/assets/*` (the app's scripts and styles).
pub(crate) fn routes(api: &Api) -> BoxedFilter<(Response,)> {
    let dir = api.config().pages.console_dir.clone();
    let d = dir.clone();
    let index = warp::path("console")
        .and(warp::get())
        .and(warp::path::tail())
        .then(move |_tail: warp::path::Tail| file(d.clone(), "index.html".to_owned()));
    let assets = warp::path("assets")
        .and(warp::get())
        .and(warp::path::tail())
        .then(move |tail: warp::path::Tail| file(dir.clone(), format!("assets/{}", tail.as_str())));
    index.or(assets).unify().boxed()
}
