//! The network console on the tracker's origin, against a real tracker process: the built
//! web app served at `/console` (`[pages] console_dir`), and the JSON admin routes it calls
//! with the admin's tracker session cookie: members with last seen and held movies, invites
//! with the command to run, revoke, users with tier and role, requests. The cookie works
//! only from the tracker's own origin and only for admins; a viewer's session gets 403 from
//! every console route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::Browser;
use reqwest::Method;
use serde_json::{json, Value};

const SESSION: &str = "__Host-reelnet_session";
const PASSWORD: &str = "a long password";

/// Every route the console calls: method, path, body.
fn console_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/admin/nodes", None),
        (Method::GET, "/api/v1/admin/users", None),
        (Method::GET, "/api/v1/admin/movies", None),
        (Method::GET, "/api/v1/admin/requests", None),
        (
            Method::POST,
            "/api/v1/admin/nodes/invites",
            Some(json!({"roles": ["replica"]})),
        ),
        (
            Method::POST,
            "/api/v1/admin/requests/00000000000000000000000000000000/approve",
            None,
        ),
    ]
}

/// A call with the browser's session cookie and the given `Origin` / `Sec-Fetch-Site`.
async fn call(
    t: &common::Tracker,
    b: &Browser,
    method: Method,
    path: &str,
    body: Option<&Value>,
    origin: Option<&str>,
    fetch_site: Option<&str>,
) -> (u16, Value) {
    let mut req = t.http.request(method, t.url(path)).header(
        "cookie",
        format!("{SESSION}={}", b.cookie(SESSION).unwrap()),
    );
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(s) = fetch_site {
        req = req.header("sec-fetch-site", s);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    reelnet_testkit::split(req.send().await.unwrap()).await
}

#[tokio::test]
async fn the_console_serves_admins_with_their_tracker_session_and_refuses_everyone_else() {
    let web = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(web.path().join("assets")).unwrap();
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><div id=root>",
    )
    .unwrap();
    std::fs::write(web.path().join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(web.path().join("secret.txt"), "no").unwrap();
    let t =
        common::Tracker::start_with(&format!("[pages]\nconsole_dir = {:?}\n", web.path())).await;
    t.admin("admin@example.org", PASSWORD).await;
    t.user("viewer@example.org", PASSWORD).await;

    // The app: its index for every console route, its assets, nothing else.
    for path in ["/console", "/console/network", "/console/network/members"] {
        let r = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert!(r.text().await.unwrap().contains("id=root"));
    }
    let r = t.http.get(t.url("/assets/app.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    for path in [
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/.hidden",
    ] {
        let r = t.http.get(t.url(path)).send().await.unwrap();
        assert_ne!(r.status(), 200, "{path}");
    }

    let admin = Browser::new(&t.base);
    let page = admin
        .sign_in("admin@example.org", PASSWORD, "/console")
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let viewer = Browser::new(&t.base);
    let page = viewer
        .sign_in("viewer@example.org", PASSWORD, "/console")
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let own = t.base.clone();

    // A viewer's session: 403 not_admin everywhere, from the tracker's own origin too.
    for (method, path, body) in console_routes() {
        let (s, b) = call(
            &t,
            &viewer,
            method.clone(),
            path,
            body.as_ref(),
            Some(&own),
            None,
        )
        .await;
        assert_eq!(
            (s, b["error"].as_str()),
            (403, Some("not_admin")),
            "{method} {path}: {b}"
        );
    }
    // The admin's session from another site: 403 cross_origin, nothing made.
    for (method, path, body) in console_routes() {
        let (s, b) = call(
            &t,
            &admin,
            method.clone(),
            path,
            body.as_ref(),
            Some("http://evil.example"),
            None,
        )
        .await;
        assert_eq!(
            (s, b["error"].as_str()),
            (403, Some("cross_origin")),
            "{method} {path}: {b}"
        );
        let (s, _) = call(
            &t,
            &admin,
            method.clone(),
            path,
            body.as_ref(),
            None,
            Some("cross-site"),
        )
        .await;
        assert_eq!(s, 403, "{method} {path}");
    }

    // The admin's session from the tracker's origin (a same-origin GET sends no Origin).
    let (s, nodes) = call(
        &t,
        &admin,
        Method::GET,
        "/api/v1/admin/nodes",
        None,
        None,
        Some("same-origin"),
    )
    .await;
    assert_eq!(s, 200, "{nodes}");
    assert!(
        nodes["invites"].as_array().unwrap().is_empty(),
        "nothing was made: {nodes}"
    );
    let (s, inv) = call(
        &t,
        &admin,
        Method::POST,
        "/api/v1/admin/nodes/invites",
        Some(&json!({"roles": ["replica", "ingest"]})),
        Some(&own),
        None,
    )
    .await;
    assert_eq!(s, 201, "{inv}");
    let token = inv["token"].as_str().unwrap();
    assert_eq!(
        inv["command"].as_str().unwrap(),
        format!("reelnet-node --tracker {own} --invite {token}")
    );

    // A node enrolls with it; the admin sees it, with when it was last seen.
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (s, b) = t.enroll_key(&key, token).await;
    assert_eq!(s, 200, "{b}");
    let member_id = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key()).to_string();
    let (_, nodes) = call(
        &t,
        &admin,
        Method::GET,
        "/api/v1/admin/nodes",
        None,
        None,
        Some("same-origin"),
    )
    .await;
    let node = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == json!(member_id))
        .cloned()
        .unwrap_or_else(|| panic!("{nodes}"));
    assert!(node["last_seen"].as_u64().unwrap() > 0, "{node}");
    assert_eq!(node["movies"], json!([]));
    let invite = nodes["invites"].as_array().unwrap();
    assert!(
        invite
            .iter()
            .all(|i| i["created_by"] == "admin@example.org"),
        "{nodes}"
    );

    // Users with tier and role.
    let (s, users) = call(
        &t,
        &admin,
        Method::GET,
        "/api/v1/admin/users",
        None,
        None,
        Some("same-origin"),
    )
    .await;
    assert_eq!(s, 200, "{users}");
    let find = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == json!(email))
            .cloned()
            .unwrap()
    };
    assert_eq!(find("admin@example.org")["role"], "admin");
    assert_eq!(find("viewer@example.org")["role"], "user");
    assert_eq!(find("viewer@example.org")["tier"], "free");
    assert!(find("viewer@example.org").get("password_hash").is_none());

    // Requests: the list; an unknown one is 404, not a refusal.
    let (s, reqs) = call(
        &t,
        &admin,
        Method::GET,
        "/api/v1/admin/requests",
        None,
        None,
        Some("same-origin"),
    )
    .await;
    assert_eq!((s, reqs), (200, json!([])));
    let (s, _) = call(
        &t,
        &admin,
        Method::POST,
        "/api/v1/admin/requests/00000000000000000000000000000000/approve",
        None,
        Some(&own),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // Revoke it from the console.
    let path = format!("/api/v1/admin/nodes/{}/revoke", member_id);
    let (s, b) = call(&t, &admin, Method::POST, &path, None, Some(&own), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["revoked"], json!(true));

    // Signed out at the tracker: the cookie is worth nothing.
    let csrf = admin.get("/account").await.csrf();
    admin.post("/logout", &[("csrf", &csrf)]).await;
    admin.set(SESSION, "0123456789abcdef0123456789abcdef");
    let (s, b) = call(
        &t,
        &admin,
        Method::GET,
        "/api/v1/admin/nodes",
        None,
        None,
        Some("same-origin"),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("session_expired")),
        "{b}"
    );
}
