//! Sign-in through the tracker at the node's gateway (docs/signin.md, "Node gateway
//! routes"), over real parts: a real tracker (in-process, with its SMTP server), a
//! recording front between the node and the tracker (so a test can tell what the node sent
//! it), and a member node on loopback; an HTTP client with redirects off plays the browser.
//!
//! - `/auth/login` redirects to the tracker's authorize URL (on `[tracker] public_url`)
//!   with an S256 challenge and a redirect URI on the node's certificate origin, and sets
//!   the binding cookie; from a host that is not a certificate origin it starts over on
//!   the first one, and a return path such as `//evil.example` becomes `/`.
//! - The callback refuses a wrong `iss`, a missing binding cookie, an unknown `state` and
//!   another browser's binding cookie, and redeems nothing then.
//! - `/auth/session` and `/auth/logout` check the origin; without a cookie `/auth/session`
//!   answers 401; a refresh token the tracker does not know ends the session (401, cookie
//!   cleared).
//! - `/api/v1/auth/login` through the node: 403 and the tracker saw nothing.
//! - The whole code flow, the tracker's sign-in and consent pages stood in for by the
//!   calls they make on the tracker's API (`oauth_check_authorize`, `check_credentials`,
//!   `oauth_issue_code`): the callback redeems the code once (signed), sets the refresh
//!   cookie and goes back to the return path (`//evil.example` → `/`); `/auth/session`
//!   rotates the cookie and hands out a token of this node; concurrent calls with one
//!   cookie share one tracker refresh; `/auth/logout` revokes at the tracker.
//! - A network token and a token for another node are refused at this node (401).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/auth_support.rs"]
mod auth_support;
#[path = "common_membership/mod.rs"]
mod common_membership;
#[path = "common/front.rs"]
mod front;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use auth_support::*;
use front::Front;
use serde_json::json;

/// What the tracker's browser-facing URL is said to be (`[tracker] public_url`): nothing
/// listens there, the browser never gets that far in these tests.
const TRACKER_PUBLIC: &str = "https://tracker.example";

/// A member node of `tracker`'s network that reaches the tracker through `via`, with
/// `[tracker] public_url` = [`TRACKER_PUBLIC`].
async fn member_node_via(tracker: &TestTracker, via: &str) -> TestNode {
    let joined = common_membership::join(
        TestNode::config(std::path::Path::new("unused"), via),
        &tracker.data_dir(),
        via,
        &[reelnet_proto::membership::RoleName::Edge],
    )
    .await;
    let node = TestNode::start_configured(
        via,
        |_| {},
        |c| {
            c.tracker.invite = joined.tracker.invite.clone();
            c.tracker.membership_refresh_secs = 1;
            c.tracker.public_url = Some(TRACKER_PUBLIC.into());
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, h) = node.get("/healthz", None).await;
        if s == 200 && h["membership"]["member"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never became a member: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node
}

fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `name=value` of cookie `name` among `Set-Cookie` lines.
/// The sign-in cookie `base` of the node at `url` (`__Host-<base>_<port>` on loopback).
fn named(base: &str, url: &str) -> String {
    let port = url.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
    format!("__Host-{base}_{port}")
}

fn cookie_pair(cookies: &[String], name: &str) -> Option<String> {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// Starts a login at `node` (Host as given): the redirect and the binding cookie pair.
async fn start_login(node: &TestNode, host: Option<&str>, ret: &str) -> reqwest::Response {
    let mut req = node
        .http
        .get(format!("{}/auth/login", node.url))
        .query(&[("return", ret)]);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_code_flow_starts_and_refuses_what_it_must() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;
    let origin = node.url.clone();

    // /auth/login: to the tracker's authorize page (its public URL), S256, our origin.
    let res = start_login(&node, None, "/watch/tmdb-603?t=5").await;
    assert_eq!(res.status(), 302);
    let to = location(&res);
    assert!(
        to.starts_with(&format!("{TRACKER_PUBLIC}/oauth/authorize?")),
        "{to}"
    );
    let q = query_of(&to);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], node.node_id);
    assert_eq!(q["redirect_uri"], format!("{origin}/auth/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(reelnet_proto::oauth::challenge_is_valid(
        &q["code_challenge"]
    ));
    let state = q["state"].clone();
    assert!(state.len() >= 43, "{state}");
    let cookies = set_cookies(&res);
    let binding =
        cookie_pair(&cookies, &named("reelnet_oauth", &node.url)).expect("binding cookie");
    let line = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{}=", named("reelnet_oauth", &node.url))))
        .unwrap();
    for flag in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(line.contains(flag), "{line}");
    }
    assert_eq!(res.headers()["cache-control"], "no-store");
    // Each login its own state and challenge.
    let again = start_login(&node, None, "/").await;
    let q2 = query_of(&location(&again));
    assert_ne!(q2["state"], state);
    assert_ne!(q2["code_challenge"], q["code_challenge"]);

    // From a host that is not in the certificate: start over on the certificate's origin;
    // a return path off this origin becomes `/`.
    let port = origin.rsplit(':').next().unwrap();
    for evil in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
    ] {
        let res = start_login(&node, Some(&format!("localhost:{port}")), evil).await;
        assert_eq!(res.status(), 302);
        assert_eq!(
            location(&res),
            format!("{origin}/auth/login?return=%2F"),
            "{evil}"
        );
        assert!(set_cookies(&res).is_empty());
    }
    let res = start_login(&node, Some(&format!("localhost:{port}")), "/a?b=1").await;
    assert_eq!(
        location(&res),
        format!("{origin}/auth/login?return=%2Fa%3Fb%3D1")
    );

    // The callback refuses, and redeems nothing, when:
    let callback = |query: Vec<(&'static str, String)>, cookie: Option<String>| {
        let mut req = node
            .http
            .get(format!("{origin}/auth/callback"))
            .query(&query);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        async move {
            let res = req.send().await.unwrap();
            let cookies = set_cookies(&res);
            let (s, b) = split(res).await;
            (s, b, cookies)
        }
    };
    let good = |state: &str| {
        vec![
            ("code", "some-code".to_owned()),
            ("state", state.to_owned()),
            ("iss", ISSUER.to_owned()),
        ]
    };
    // ... iss is another issuer (or missing),
    let mut wrong_iss = good(&state);
    wrong_iss[2].1 = "https://evil.example".into();
    let (s, b, _) = callback(wrong_iss, Some(binding.clone())).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("wrong_issuer")), "{b}");
    let (s, b, _) = callback(good(&state)[..2].to_vec(), Some(binding.clone())).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("wrong_issuer")), "{b}");
    // ... the browser has no binding cookie (a login started elsewhere: login CSRF),
    let (s, b, _) = callback(good(&state), None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("no_binding_cookie")),
        "{b}"
    );
    // ... the state is unknown,
    let (s, b, _) = callback(good("not-a-state"), Some(binding.clone())).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_state")), "{b}");
    // ... the binding cookie is another login's (the second login's cookie on the first
    // login's state), or a plain-HTTP name on this loopback origin.
    let other = cookie_pair(&set_cookies(&again), &named("reelnet_oauth", &node.url)).unwrap();
    let (s, b, cleared) = callback(good(&state), Some(other)).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_state")), "{b}");
    assert!(
        cleared.is_empty(),
        "a refusal leaves the cookie: {cleared:?}"
    );
    let plain = binding.replace("__Host-", "");
    let (s, b, _) = callback(good(&state), Some(plain)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("no_binding_cookie")),
        "{b}"
    );
    // ... an error callback that is not this login's (no state, or another state: anyone
    // can send a browser there) goes home but leaves the login and its cookie alone,
    for q in [
        vec![("error", "access_denied")],
        vec![("error", "access_denied"), ("state", "not-a-state")],
    ] {
        let res = node
            .http
            .get(format!("{origin}/auth/callback"))
            .query(&q)
            .header("cookie", binding.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(location(&res), "/?signin_error=access_denied");
        let cleared = set_cookies(&res);
        assert!(
            cleared.is_empty(),
            "a forced error callback cleared the binding cookie: {cleared:?}"
        );
    }
    // ... and a denial goes home with the reason, redeeming nothing.
    let res = node
        .http
        .get(format!("{origin}/auth/callback"))
        .query(&[("error", "access_denied"), ("state", state.as_str())])
        .header("cookie", binding.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/?signin_error=access_denied");
    assert!(
        cookie_pair(&set_cookies(&res), &named("reelnet_oauth", &node.url))
            .is_some_and(|c| c.ends_with('=')),
        "the denial of this login clears its cookie"
    );
    // The denial used up that login: its state is gone.
    let (s, b, _) = callback(good(&state), Some(binding.clone())).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_state")), "{b}");
    assert_eq!(front.count("/oauth/"), 0, "the node redeemed a code");

    // /auth/account: the tracker's account page.
    let res = node
        .http
        .get(format!("{origin}/auth/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), format!("{TRACKER_PUBLIC}/account"));
}

#[tokio::test]
async fn sessions_need_this_origin_and_a_cookie() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;
    let origin = node.url.clone();
    let post = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let mut req = node.http.post(format!("{origin}{path}"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let res = req.send().await.unwrap();
            let cookies = set_cookies(&res);
            let (s, b) = split(res).await;
            (s, b, cookies)
        }
    };

    // Another site's page (or no proof of origin at all): refused before anything else.
    for headers in [
        vec![("origin", "https://evil.example".to_owned())],
        vec![("origin", "null".to_owned())],
        vec![],
        vec![("sec-fetch-site", "cross-site".to_owned())],
    ] {
        for path in ["/auth/session", "/auth/logout"] {
            let mut h = headers.clone();
            h.push((
                "cookie",
                format!("{}=abc", named("reelnet_refresh", &node.url)),
            ));
            let (s, b, _) = post(path, h).await;
            assert_eq!((s, b["error"].as_str()), (403, Some("bad_origin")), "{b}");
        }
    }
    assert_eq!(front.count("/oauth/"), 0);

    // Same origin without a cookie: 401, the tracker not asked.
    let (s, b, _) = post("/auth/session", vec![("origin", origin.clone())]).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("no_session")), "{b}");
    let (s, b, _) = post(
        "/auth/session",
        vec![("sec-fetch-site", "same-origin".to_owned())],
    )
    .await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(front.count("/oauth/"), 0);

    // Sign-out without a cookie: 204, the cookie cleared anyway.
    let (s, _, cookies) = post("/auth/logout", vec![("origin", origin.clone())]).await;
    assert_eq!(s, 204);
    assert!(
        cookies.iter().any(|c| c
            .starts_with(&format!("{}=;", named("reelnet_refresh", &node.url)))
            && c.contains("Max-Age=0")),
        "{cookies:?}"
    );

    // A refresh token the tracker never issued: refused there (one signed request), the
    // session is over and the cookie cleared.
    let (s, b, cookies) = post(
        "/auth/session",
        vec![
            ("origin", origin.clone()),
            (
                "cookie",
                format!(
                    "{}=not-a-refresh-token",
                    named("reelnet_refresh", &node.url)
                ),
            ),
        ],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("session_ended")),
        "{b}"
    );
    assert!(
        cookies.iter().any(|c| c
            .starts_with(&format!("{}=;", named("reelnet_refresh", &node.url)))
            && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    assert_eq!(front.count("/oauth/token"), 1);
}

#[tokio::test]
async fn credentials_and_foreign_tokens_are_refused_at_the_node() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;
    let other = member_node_via(&tracker, &front.url).await;
    register_at_tracker(&front.url, &tracker.smtp, "viewer@example.org", true).await;

    // The tracker's JSON sign-in through the node: 403, never forwarded.
    let before = front.count("/api/v1/auth/");
    let (s, b) = node
        .post(
            "/api/v1/auth/login",
            json!({"email": "viewer@example.org", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("credentials_at_tracker")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{TRACKER_PUBLIC}/login")),
        "{b}"
    );
    assert_eq!(front.count("/api/v1/auth/"), before, "the tracker saw it");

    // This node's token works here (a route the node answers itself: a search needs a
    // valid token; TMDb is off, so it answers `enabled: false`).
    let mine = access(&node.login("viewer@example.org").await);
    let (s, b) = node.get("/api/v1/tmdb/search?q=matrix", Some(&mine)).await;
    assert_eq!(s, 200, "{b}");
    // A network token and a token for another node: 401, each saying why.
    let network = access(&login_at_tracker(&front.url, "viewer@example.org", None).await);
    let (s, b) = node
        .get("/api/v1/tmdb/search?q=matrix", Some(&network))
        .await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("network token"),
        "{b}"
    );
    let theirs = access(&other.login("viewer@example.org").await);
    let (s, b) = node
        .get("/api/v1/tmdb/search?q=matrix", Some(&theirs))
        .await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains(&other.node_id),
        "{b}"
    );
    // ...while the other node takes its own.
    let (s, b) = other
        .get("/api/v1/tmdb/search?q=matrix", Some(&theirs))
        .await;
    assert_eq!(s, 200, "{b}");
}

/// What the tracker's sign-in and consent pages do once the viewer has typed their
/// password and allowed the node: the redirect back to the node, with a code.
async fn code_redirect(tracker: &TestTracker, authorize_url: &str, email: &str) -> String {
    let api = tracker.api();
    let params: reelnet_tracker::oauth::AuthorizeParams =
        serde_json::from_value(json!(query_of(authorize_url))).unwrap();
    let client = api
        .oauth_check_authorize(&params)
        .unwrap_or_else(|e| panic!("{}: {}", e.reason, e.message));
    let user = api
        .check_credentials(
            email,
            PASSWORD.to_owned(),
            &reelnet_tracker::accounts::Source {
                addr: "127.0.0.1".into(),
                node: None,
            },
        )
        .await
        .unwrap();
    api.oauth_grant_consent(&user.id, &client).await.unwrap();
    api.oauth_issue_code(&user, &client, &params, reelnet_node::unix_now())
        .await
        .unwrap()
}

/// The claims of an access token, unverified.
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_whole_code_flow() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;
    let origin = node.url.clone();
    let email = "flow@example.org";
    register_at_tracker(&front.url, &tracker.smtp, email, true).await;

    // Sign in: to the tracker and back with a code.
    let res = start_login(&node, None, "/watch/tmdb-603?t=5").await;
    let authorize = location(&res);
    let binding = cookie_pair(&set_cookies(&res), &named("reelnet_oauth", &node.url)).unwrap();
    let back = code_redirect(&tracker, &authorize, email).await;
    assert!(
        back.starts_with(&format!("{origin}/auth/callback?")),
        "{back}"
    );
    let callback = |url: String, cookie: String| {
        let req = node.http.get(url).header("cookie", cookie);
        async move { req.send().await.unwrap() }
    };
    // A callback forced on this browser (someone else's state) is refused and does not
    // spoil the login in progress.
    let forced = format!("{origin}/auth/callback?code=x&state=someone-elses&iss={ISSUER}");
    let res = callback(forced, binding.clone()).await;
    assert_eq!(res.status(), 400);
    assert!(set_cookies(&res).is_empty());
    let res = callback(back.clone(), binding.clone()).await;
    assert_eq!(res.status(), 302, "{:?}", res.text().await);
    assert_eq!(location(&res), "/watch/tmdb-603?t=5");
    let cookies = set_cookies(&res);
    let refresh =
        cookie_pair(&cookies, &named("reelnet_refresh", &node.url)).expect("refresh cookie");
    let line = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{}=", named("reelnet_refresh", &node.url))))
        .unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(flag), "{line}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("{}=;", named("reelnet_oauth", &node.url)))),
        "{cookies:?}"
    );
    assert_eq!(front.count("/oauth/token"), 1);
    // The same callback again: the login is used up, nothing redeemed.
    let res = callback(back, binding).await;
    let (s, b) = split(res).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_state")), "{b}");
    assert_eq!(front.count("/oauth/token"), 1);

    // A session: a token of this node, and the cookie rotates.
    let session = |cookie: String| {
        let req = node
            .http
            .post(format!("{origin}/auth/session"))
            .header("origin", origin.clone())
            .header("cookie", cookie);
        async move {
            let res = req.send().await.unwrap();
            let cookies = set_cookies(&res);
            let (s, b) = split(res).await;
            (s, b, cookies)
        }
    };
    let (s, b, cookies) = session(refresh.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user"]["email"], email, "{b}");
    assert!(b["expires_in"].as_u64().unwrap() > 0);
    let token = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims_of(&token)["aud"],
        reelnet_proto::claims::node_audience(&node.node_id)
    );
    let rotated = cookie_pair(&cookies, &named("reelnet_refresh", &node.url)).unwrap();
    assert_ne!(rotated, refresh);
    assert_eq!(front.count("/oauth/token"), 2);
    // It works at this node, and at the tracker through this node.
    let (s, b) = node.get("/api/v1/tmdb/search?q=x", Some(&token)).await;
    assert_eq!(s, 200, "{b}");
    let (s, me) = node.get("/api/v1/me", Some(&token)).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["email"], email);

    // Eight tabs at once with the same cookie: one tracker refresh, one answer.
    let answers = futures::future::join_all((0..8).map(|_| session(rotated.clone()))).await;
    assert_eq!(
        front.count("/oauth/token"),
        3,
        "one refresh for eight calls"
    );
    let first = &answers[0];
    for (s, b, cookies) in &answers {
        assert_eq!(*s, 200, "{b}");
        assert_eq!(b["access_token"], first.1["access_token"]);
        assert_eq!(cookies, &first.2);
    }
    // A late duplicate is not answered from the node's memory: it goes to the tracker,
    // whose refresh grace (10 s by default) lets a slow tab through.
    let (s, late, _) = session(rotated.clone()).await;
    assert_eq!(s, 200, "{late}");
    assert_eq!(front.count("/oauth/token"), 4);
    let newest = cookie_pair(&first.2, &named("reelnet_refresh", &node.url)).unwrap();

    // Sign-out: revoked at the tracker, cookie cleared; the session is over.
    let res = node
        .http
        .post(format!("{origin}/auth/logout"))
        .header("origin", origin.clone())
        .header("cookie", newest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(set_cookies(&res)
        .iter()
        .any(|c| c.starts_with(&format!("{}=;", named("reelnet_refresh", &node.url)))));
    assert_eq!(front.count("/oauth/revoke"), 1);
    let (s, b, _) = session(newest).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("session_ended")),
        "{b}"
    );

    // A return path off this origin comes back as `/`.
    let res = start_login(&node, None, "//evil.example").await;
    let authorize = location(&res);
    let binding = cookie_pair(&set_cookies(&res), &named("reelnet_oauth", &node.url)).unwrap();
    let back = code_redirect(&tracker, &authorize, email).await;
    let res = callback(back, binding).await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/");
}

/// The proxy signs what it forwards, but never as the node itself: a visitor who sends the
/// node's own routes (`nodes/me`, `nodes/renew`, `requests/claim`, reports) through its
/// gateway is not taken for the node by the tracker (the proxy's signature is bound to the
/// viewer's address, the node's own requests sign the plain path).
#[tokio::test]
async fn a_visitor_cannot_make_the_proxy_sign_as_the_node() {
    let tracker = TestTracker::start().await;
    let front = Front::start(&tracker.url).await;
    let node = member_node_via(&tracker, &front.url).await;

    let (s, b) = node.get("/api/v1/nodes/me", None).await;
    assert!(
        s == 401 || s == 403,
        "the tracker answered a visitor as the node: {s} {b}"
    );
    let (s, b) = node.post("/api/v1/nodes/renew", json!({})).await;
    assert!(
        s == 401 || s == 403,
        "the tracker renewed the node's certificate for a visitor: {s} {b}"
    );
    let (s, b) = node.post("/api/v1/requests/claim", json!({})).await;
    assert!(
        s == 401 || s == 403 || s == 400,
        "a visitor claimed a request as the node: {s} {b}"
    );
    assert_ne!(s, 200, "{b}");
    assert_ne!(s, 204, "{b}");
}
