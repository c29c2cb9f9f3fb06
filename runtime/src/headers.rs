//! Security headers on every HTTP answer.
//!
//! The node's gateway serves the web app (and, on the same origin, the API, HLS and
//! images): [`web_app`] gives it a Content-Security-Policy that allows scripts, styles,
//! fonts, the manifest and connections (WebSocket included: CSP3 `'self'` matches `ws:` and
//! `wss:` on the same host) from its own origin only, `blob:` for the media element and
//! hls.js's worker (Media Source Extensions hand the video element a `blob:` URL; hls.js
//! starts its transmuxing worker from a `blob:` URL), `data:` for the media element too
//! (hls.js shows subtitles in `<track>` elements whose `src` is the empty `data:,WEBVTT`, so
//! Chromium's caption menu and Safari keep the cues hls.js adds), `data:` and `blob:` images,
//! and nothing else: no inline script, no `eval`, no plugins, no `<base>`, no framing.
//! The tracker answers JSON only: [`api`] forbids everything a document could load.

use warp::http::header::{HeaderMap, HeaderName, HeaderValue};

/// The web app's Content-Security-Policy.
pub const WEB_APP_CSP: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: data:; \
worker-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The Content-Security-Policy of a JSON API: nothing may load, nothing may frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

fn headers(csp: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

/// Headers for every answer of a server that serves the web app.
pub fn web_app() -> HeaderMap {
    headers(WEB_APP_CSP)
}

/// Headers for every answer of a JSON API.
pub fn api() -> HeaderMap {
    headers(API_CSP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_hold_what_they_promise() {
        let web = web_app();
        let csp = web["content-security-policy"].to_str().unwrap_or_default();
        for part in [
            "script-src 'self';",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{csp} lacks {part}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(web["x-content-type-options"], "nosniff");
        assert_eq!(web["x-frame-options"], "DENY");
        assert_eq!(web["referrer-policy"], "no-referrer");
        assert!(api()["content-security-policy"]
            .to_str()
            .unwrap_or_default()
            .starts_with("default-src 'none'"));
    }
}
