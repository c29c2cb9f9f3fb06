//! The web app at `/`: the copy embedded in the binary at build time (`node/build.rs`
//! embeds `web/dist`), or a directory given by `gateway.web_dir` / `--web-dir` (for
//! developing the app without rebuilding the node).
//!
//! Both are served the same way:
//! - a path is a map lookup (embedded) or a join of checked segments (directory): a `.` or
//!   `..` segment (also percent-encoded), an empty segment, a `\`, a NUL or a control byte
//!   gets 400 `bad_path`;
//! - content types from the file's extension ([`content_type`]);
//! - Vite's content-hashed bundles under `/assets/` are cached for a year (`immutable`);
//!   everything else (`index.html`, the service worker, the manifest, icons) is `no-cache`,
//!   revalidated with its `ETag` (`If-None-Match` gets 304);
//! - a path that is no file is a client-side route and gets `index.html` (single-page-app
//!   fallback), except under `/assets/` (a missing bundle) and the server's own prefixes
//!   ([`SERVER_PATHS`]: `/api`, `/hls`, `/images`, …), which get a JSON 404;
//! - a binary built before the web app was (no `web/dist/index.html` at build time; the
//!   build warned) answers every page with [`NOT_BUILT_PAGE`] (503), which says how to build
//!   the app — never an empty site. So does a `web_dir` without an `index.html`.
//!
//! Which site is served is logged at start and reported in `/healthz` (`web`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

mod dist {
    include!(concat!(env!("OUT_DIR"), "/web_dist.rs"));
}

/// First path segments that belong to the server, not to the app's client-side routes: a
/// path under them that no route took is a 404, not the app's shell (the service worker
/// keeps the same list off its cache, `web/public/sw.js`).
pub const SERVER_PATHS: &[&str] = &[
    "api",
    "auth",
    "hls",
    "images",
    ".well-known",
    "healthz",
    "metrics",
];

/// Cache-Control of the content-hashed bundles under `/assets/`.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache-Control of everything else: always revalidated (cheaply, with the ETag).
pub const REVALIDATE: &str = "no-cache";

/// The page served instead of the site when the web app was not built before the node.
/// No script and no inline style: the normal Content-Security-Policy applies.
pub const NOT_BUILT_PAGE: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>reelnet: the web app is not built</title></head>
<body>
<h1>The web app is not built</h1>
<p>This reelnet node was built before its web app, so it has no site to serve.
Its API, <code>/hls</code>, <code>/healthz</code> and <code>/metrics</code> work.</p>
<p>To build the site into the node:</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build
cd .. &amp;&amp; cargo build --release -p reelnet-node</pre>
<p>or run <code>bash scripts/run.sh</code>, which builds both in that order. For
development, <code>--web-dir web/dist</code> serves a built app from a directory.</p>
</body>
</html>
";

/// What the gateway serves at `/`, as reported in `/healthz`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SiteInfo {
    /// `embedded`, `dir` (a `web_dir`) or `not_built` (the binary was built before the web
    /// app: only the page saying how to build it).
    pub source: &'static str,
    /// The embedded build's id (a hash over its files), when embedded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// The web app the gateway serves. Cheap to clone.
#[derive(Clone)]
pub struct Site(Arc<Source>);

enum Source {
    Embedded(HashMap<&'static str, (&'static [u8], &'static str)>),
    NotBuilt,
    Dir(PathBuf),
}

/// One file to answer with.
struct Asset {
    bytes: Bytes,
    etag: String,
}

impl Site {
    /// The directory when one is given, else the embedded app (or the not-built page).
    pub fn new(web_dir: Option<PathBuf>) -> Self {
        Self(Arc::new(match web_dir {
            Some(dir) if !dir.as_os_str().is_empty() => Source::Dir(dir),
            _ => embedded_source(),
        }))
    }

    /// The app embedded in this binary.
    pub fn embedded() -> Self {
        Self(Arc::new(embedded_source()))
    }

    /// Whether this binary embeds a built web app (false: it was built before the app).
    pub fn embedded_is_built() -> bool {
        dist::BUILT
    }

    /// The directory the embedded app was read from at build time (or would have been).
    pub fn embedded_from() -> &'static str {
        dist::DIST
    }

    /// An embedded file's bytes (`None` when not embedded); for tests and tools.
    pub fn embedded_file(path: &str) -> Option<&'static [u8]> {
        dist::FILES
            .iter()
            .find(|(p, _, _)| *p == path)
            .map(|(_, b, _)| *b)
    }

    pub fn info(&self) -> SiteInfo {
        match &*self.0 {
            Source::Embedded(_) => SiteInfo {
                source: "embedded",
                build: Some(dist::BUILD_ID.to_owned()),
            },
            Source::NotBuilt => SiteInfo {
                source: "not_built",
                build: None,
            },
            Source::Dir(_) => SiteInfo {
                source: "dir",
                build: None,
            },
        }
    }

    /// Says at start which site is served (a warning when it is the not-built page).
    pub fn log(&self) {
        match &*self.0 {
            Source::Embedded(files) => tracing::info!(
                build = dist::BUILD_ID,
                files = files.len(),
                bytes = files.values().map(|(b, _)| b.len()).sum::<usize>(),
                "web app: serving the copy embedded at build time"
            ),
            Source::NotBuilt => tracing::warn!(
                "web app: this binary was built before the web app (no web/dist/index.html), \
                 so / serves a page saying how to build it: cd web && npm ci && npm run build, \
                 then rebuild reelnet-node (or pass --web-dir DIR)"
            ),
            Source::Dir(dir) => {
                if dir.join("index.html").is_file() {
                    tracing::info!(dir = %dir.display(), "web app: serving a directory (web_dir)");
                } else {
                    tracing::warn!(
                        dir = %dir.display(),
                        "web app: web_dir has no index.html; / serves a page saying how to build the app"
                    );
                }
            }
        }
    }

    async fn load(&self, rel: &str) -> Option<Asset> {
        match &*self.0 {
            Source::Embedded(files) => files.get(rel).map(|(bytes, etag)| Asset {
                bytes: Bytes::from_static(bytes),
                etag: (*etag).to_owned(),
            }),
            Source::NotBuilt => None,
            Source::Dir(dir) => {
                // `rel` is made of checked segments ([`clean_path`]): no `..`, no root.
                let path = dir.join(rel);
                let meta = tokio::fs::metadata(&path).await.ok()?;
                if !meta.is_file() {
                    return None;
                }
                let bytes = tokio::fs::read(&path).await.ok()?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                Some(Asset {
                    etag: format!("\"{mtime:x}-{:x}\"", bytes.len()),
                    bytes: Bytes::from(bytes),
                })
            }
        }
    }

    /// The answer to `GET raw_path` (the request's path, still percent-encoded).
    pub async fn answer(&self, raw_path: &str, headers: &HeaderMap) -> Response {
        let Some(rel) = clean_path(raw_path) else {
            return super::json_error(
                StatusCode::BAD_REQUEST,
                "bad_path",
                "the path has a `.`, `..` or empty segment or a character not allowed",
            );
        };
        let file = if rel.is_empty() || rel.ends_with('/') {
            None
        } else {
            self.load(&rel).await
        };
        if let Some(asset) = file {
            return respond(&rel, asset, headers);
        }
        if rel.starts_with("assets/") {
            return super::json_error(StatusCode::NOT_FOUND, "not_found", "no such file");
        }
        let first = rel.split('/').next().unwrap_or_default();
        if SERVER_PATHS.contains(&first) {
            // The server's own routes (a path none of them took): never the app's shell.
            return super::json_error(StatusCode::NOT_FOUND, "not_found", "no such route");
        }
        // A client-side route: the app's shell.
        match self.load("index.html").await {
            Some(index) => respond("index.html", index, headers),
            None => not_built(),
        }
    }
}

fn embedded_source() -> Source {
    if dist::BUILT {
        Source::Embedded(
            dist::FILES
                .iter()
                .map(|(path, bytes, etag)| (*path, (*bytes, *etag)))
                .collect(),
        )
    } else {
        Source::NotBuilt
    }
}

fn respond(rel: &str, asset: Asset, headers: &HeaderMap) -> Response {
    let cache = cache_control(rel);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == asset.etag || t == "*")
        });
    let mut res = if fresh {
        let mut r = Response::new(Bytes::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(asset.bytes.into());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(rel)),
        );
        r
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    res
}

fn not_built() -> Response {
    let mut res = Response::new(NOT_BUILT_PAGE.into());
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The web app's route: every GET or HEAD that no other route took.
pub fn route(site: Site) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .then(move |path: warp::path::FullPath, headers: HeaderMap| {
            let site = site.clone();
            async move { site.answer(path.as_str(), &headers).await }
        })
}

/// The request path relative to the site's root, percent-decoded, or `None` when a segment
/// is `.`, `..` or empty (except a trailing `/`), or holds `\`, `/` (encoded), NUL or a
/// control byte, or is not UTF-8. `/` gives `""`.
pub fn clean_path(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(String::new());
    }
    let (rest, trailing) = match rest.strip_suffix('/') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let mut out = Vec::new();
    for seg in rest.split('/') {
        let seg = percent_decode(seg)?;
        if seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.chars().any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return None;
        }
        out.push(seg);
    }
    let mut path = out.join("/");
    if trailing {
        path.push('/');
    }
    Some(path)
}

fn percent_decode(seg: &str) -> Option<String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = seg.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Cache-Control for a file of the site: Vite's content-hashed output under `assets/`
/// never changes under its name.
pub fn cache_control(rel: &str) -> &'static str {
    if rel.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    }
}

/// Content type by extension (the same for the embedded app and a `web_dir`).
pub fn content_type(rel: &str) -> &'static str {
    let ext = rel
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_segment_by_segment() {
        assert_eq!(clean_path("/").as_deref(), Some(""));
        assert_eq!(
            clean_path("/assets/index-abc.js").as_deref(),
            Some("assets/index-abc.js")
        );
        assert_eq!(clean_path("/movie/42/").as_deref(), Some("movie/42/"));
        assert_eq!(clean_path("/a%20b").as_deref(), Some("a b"));
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/%2e%2e/x",
            "/%2E%2E",
            "/./index.html",
            "//etc/passwd",
            "/a//b",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/a%0ab",
            "/%zz",
            "/%ff",
            "relative",
        ] {
            assert_eq!(clean_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn hashed_bundles_are_immutable_the_rest_revalidated() {
        assert_eq!(cache_control("assets/index-Bx1.js"), IMMUTABLE);
        for p in [
            "index.html",
            "sw.js",
            "manifest.webmanifest",
            "icons/icon.svg",
        ] {
            assert_eq!(cache_control(p), REVALIDATE, "{p}");
        }
        assert_eq!(content_type("a/B.JS"), "text/javascript; charset=utf-8");
        assert_eq!(
            content_type("manifest.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn the_not_built_page_says_how_and_runs_no_script() {
        assert!(NOT_BUILT_PAGE.contains("npm ci &amp;&amp; npm run build"));
        assert!(NOT_BUILT_PAGE.contains("scripts/run.sh"));
        let lower = NOT_BUILT_PAGE.to_ascii_lowercase();
        assert!(
            !lower.contains("<script") && !lower.contains("<style") && !lower.contains("style=")
        );
    }

    #[tokio::test]
    async fn a_directory_is_served_like_the_embedded_app() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>shell</p>").unwrap();
        std::fs::write(dir.path().join("assets/app-1.js"), "1").unwrap();
        std::fs::write(dir.path().parent().unwrap().join("secret"), "s").ok();
        let site = Site::new(Some(dir.path().to_path_buf()));
        assert_eq!(site.info().source, "dir");
        let h = HeaderMap::new();
        let res = site.answer("/assets/app-1.js", &h).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CACHE_CONTROL], IMMUTABLE);
        let etag = res.headers()[header::ETAG].clone();
        let mut cond = HeaderMap::new();
        cond.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(site.answer("/assets/app-1.js", &cond).await.status(), 304);
        // A client-side route: the shell (its body is checked by tests/site.rs).
        let res = site.answer("/watch/7", &h).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CACHE_CONTROL], REVALIDATE);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(site.answer("/assets/gone.js", &h).await.status(), 404);
        for server in [
            "/api/v1/nothing",
            "/hls/m/x/720p/abc",
            "/images/",
            "/healthz/x",
        ] {
            assert_eq!(site.answer(server, &h).await.status(), 404, "{server}");
        }
        assert_eq!(site.answer("/../secret", &h).await.status(), 400);
        assert_eq!(site.answer("/%2e%2e/secret", &h).await.status(), 400);

        // A directory without index.html: the page that says how to build the app.
        let empty = tempfile::tempdir().unwrap();
        let res = Site::new(Some(empty.path().to_path_buf()))
            .answer("/", &h)
            .await;
        assert_eq!(res.status(), 503);
    }
}
