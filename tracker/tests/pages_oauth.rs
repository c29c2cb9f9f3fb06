//! The consent and device pages end to end (docs/signin.md): they call the OAuth
//! protocol (`crate::oauth`), which lands on its own branch. Every test here needs the
//! oauth branch; the integrator enables this file at merge (until then the protocol's
//! `Api` methods answer "not built" and these tests fail).
//!
//! A member node is enrolled with a gateway origin; the browser signs in at the tracker,
//! consents, and comes back to the node's redirect URI with a code, which the "node"
//! (this test, with the member's key) redeems at the token endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{path_of, Browser};
use serde_json::{json, Value};

/// The gateway origin the test node enrolls with (nothing listens there: the browser
/// never follows the redirect, the test reads it).
const NODE_ORIGIN: &str = "http://127.0.0.1:9";

/// A member enrolled with `open_origin` as its gateway origin.
async fn node_with_origin(t: &common::Tracker, open_origin: &str) -> common::Member {
    t.member_with_origins(&["edge"], &[open_origin]).await
}

struct Flow {
    verifier: String,
    query: String,
    redirect_uri: String,
}

fn flow(client_id: &str, state: &str) -> Flow {
    let verifier = "v".repeat(20) + &hex::encode(rand::random::<[u8; 16]>());
    let redirect_uri = reelnet_proto::oauth::redirect_uri(NODE_ORIGIN);
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", &redirect_uri),
        ("state", state),
        (
            "code_challenge",
            &reelnet_proto::oauth::s256_challenge(&verifier),
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    Flow {
        verifier,
        query,
        redirect_uri,
    }
}

/// The node redeems a code (a signed, form-encoded request).
async fn redeem(t: &common::Tracker, m: &common::Member, code: &str, f: &Flow) -> (u16, Value) {
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &f.redirect_uri),
        ("code_verifier", &f.verifier),
        ("client_id", &m.id),
    ])
    .unwrap();
    let r = t
        .http
        .post(t.url(reelnet_proto::oauth::TOKEN_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "reelnet-node-auth",
            m.auth("POST", reelnet_proto::oauth::TOKEN_PATH, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    common::split(r).await
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

// needs the oauth branch
#[tokio::test]
async fn consent_then_code_then_single_sign_on() {
    let t = common::Tracker::start().await;
    let m = node_with_origin(&t, NODE_ORIGIN).await;
    let email = "consent@example.org";
    t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    let f = flow(&m.id, "st&te<1>");
    let authorize = format!("/oauth/authorize?{}", f.query);

    // Not signed in: to the sign-in page, which comes back here.
    let p = b.get(&authorize).await;
    assert_eq!(p.status, 302, "{}", p.body);
    let login = p.location().unwrap();
    assert!(
        login.starts_with("/login?next=%2Foauth%2Fauthorize%3F"),
        "{login}"
    );
    let next = query_param(&login, "next").unwrap();
    let p = b.sign_in(email, "a long password", &next).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location().unwrap(), next);

    // The consent page shows the registered origin; the form carries the request.
    let consent = b.get(&next).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.has_id("allow") && consent.has_id("deny"));
    assert!(consent.body.contains(NODE_ORIGIN), "{}", consent.body);
    assert!(!consent.has_id("open-member"), "an invited member");
    assert_eq!(consent.field("state").unwrap(), "st&te<1>");
    let csp = consent.header("content-security-policy");
    assert!(
        csp.contains(&format!("form-action 'self' {NODE_ORIGIN}")),
        "{csp}"
    );

    // Without the CSRF token nothing is granted.
    let mut no_csrf = consent.consent_fields("allow");
    no_csrf.retain(|(k, _)| k != "csrf");
    let p = b.post_owned("/oauth/authorize", &no_csrf).await;
    assert_eq!(p.status, 403);
    assert_eq!(b.get(&next).await.status, 200, "still asks for consent");

    // Deny: back to the node with access_denied.
    let p = b
        .post_owned("/oauth/authorize", &consent.consent_fields("deny"))
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let back = p.location().unwrap();
    assert!(back.starts_with(&f.redirect_uri), "{back}");
    assert_eq!(query_param(&back, "error").unwrap(), "access_denied");
    assert_eq!(query_param(&back, "state").unwrap(), "st&te<1>");

    // Allow: a code for the node, with state and iss.
    let p = b
        .post_owned("/oauth/authorize", &consent.consent_fields("allow"))
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let back = p.location().unwrap();
    assert!(back.starts_with(&format!("{}?", f.redirect_uri)), "{back}");
    assert_eq!(query_param(&back, "state").unwrap(), "st&te<1>");
    assert!(query_param(&back, "iss").is_some(), "{back}");
    let code = query_param(&back, "code").unwrap();
    let (s, tokens) = redeem(&t, &m, &code, &f).await;
    assert_eq!(s, 200, "{tokens}");

    // Consented: the next authorization goes straight back with a code.
    let f2 = flow(&m.id, "second");
    let p = b.get(&format!("/oauth/authorize?{}", f2.query)).await;
    assert_eq!(p.status, 302, "{}", p.body);
    assert!(p.location().unwrap().starts_with(&f2.redirect_uri));
    assert!(query_param(&p.location().unwrap(), "code").is_some());

    // The account page lists the node's session, and ends it.
    let account = b.get("/account").await;
    assert!(account.body.contains(NODE_ORIGIN), "{}", account.body);
    assert!(account.body.contains("class=\"end-session\""));
    // End the session these tokens belong to (its id is the access token's `sid`; two
    // sessions started in the same second may be listed in either order).
    let sid = {
        use base64::Engine;
        let access = tokens["access_token"].as_str().unwrap();
        let payload = access.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["sid"].as_str().unwrap().to_owned()
    };
    assert!(account.body.contains(&sid), "{}", account.body);
    let p = b
        .post(
            "/account/sessions/end",
            &[("csrf", &account.csrf()), ("sid", &sid)],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let (s, _) = {
        let body = serde_urlencoded::to_string([
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .unwrap();
        let r = t
            .http
            .post(t.url(reelnet_proto::oauth::TOKEN_PATH))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "reelnet-node-auth",
                m.auth("POST", reelnet_proto::oauth::TOKEN_PATH, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        common::split(r).await
    };
    assert_ne!(s, 200, "the ended session cannot refresh");
}

// needs the oauth branch
#[tokio::test]
async fn unknown_clients_and_redirect_uris_get_an_error_page_never_a_redirect() {
    let t = common::Tracker::start().await;
    let m = node_with_origin(&t, NODE_ORIGIN).await;
    let b = Browser::new(&t.base);
    // Unknown client.
    let f = flow(&"0".repeat(64), "s");
    let p = b.get(&format!("/oauth/authorize?{}", f.query)).await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.location().is_none());
    // A member's id with a redirect URI on an origin not in its certificate.
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", m.id.as_str()),
        ("redirect_uri", "https://evil.example/auth/callback"),
        ("state", "s"),
        (
            "code_challenge",
            &reelnet_proto::oauth::s256_challenge(&"a".repeat(43)),
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let p = b.get(&format!("/oauth/authorize?{q}")).await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.location().is_none());
    // Valid client, bad challenge method: back to the client with an error.
    let f = flow(&m.id, "s");
    let q = f
        .query
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let p = b.get(&format!("/oauth/authorize?{q}")).await;
    assert_eq!(p.status, 302, "{}", p.body);
    let back = p.location().unwrap();
    assert!(back.starts_with(&f.redirect_uri), "{back}");
    assert!(query_param(&back, "error").is_some(), "{back}");

    // Refusals are counted, CSRF ones included.
    let login = b.get("/login").await;
    let p = b
        .post(
            "/login",
            &[
                ("csrf", "wrong"),
                ("email", "x@example.org"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    let _ = login;
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["unknown_client", "bad_redirect_uri", "bad_csrf"] {
        assert!(
            metrics.contains(&format!(
                "reelnet_tracker_oauth_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

// needs the oauth branch
#[tokio::test]
async fn open_members_are_flagged_on_the_consent_page() {
    let t = common::Tracker::start_with("[network]\nopen_enrollment = \"edge\"\n").await;
    // Open enrollment: no invite.
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let doc = t.network().await;
    let now = reelnet_runtime::clock::unix_secs();
    let node = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key());
    let (s, body) = t
        .post(
            "/api/v1/nodes/enroll",
            json!({
                "invite": "",
                "node_id": node.to_string(),
                "timestamp": now,
                "proof": reelnet_proto::membership::sign_enroll(&key, &doc.network_id, "", now),
                "origins": [NODE_ORIGIN],
            }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let email = "open@example.org";
    t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    let f = flow(&node.to_string(), "s");
    let authorize = format!("/oauth/authorize?{}", f.query);
    b.sign_in(email, "a long password", &authorize).await;
    let consent = b.get(&authorize).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.has_id("open-member"), "{}", consent.body);
    assert!(consent.body.contains("open enrollment"), "{}", consent.body);
}

// needs the oauth branch
#[tokio::test]
async fn a_device_is_named_allowed_and_gets_its_tokens() {
    let t = common::Tracker::start().await;
    let email = "device@example.org";
    t.user(email, "a long password").await;
    let r = t
        .http
        .post(t.url(reelnet_proto::oauth::DEVICE_AUTHORIZATION_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=reelnet-cli&device_name=Living%20room%20%3Cb%3ETV%3C%2Fb%3E")
        .send()
        .await
        .unwrap();
    let (s, grant) = common::split(r).await;
    assert_eq!(s, 200, "{grant}");
    let user_code = grant["user_code"].as_str().unwrap().to_owned();
    let complete = grant["verification_uri_complete"].as_str().unwrap();
    assert!(
        complete.starts_with(&format!("{}/device", t.base)),
        "{complete}"
    );

    let b = Browser::new(&t.base);
    // Not signed in: sign in first, then back to the device page with the code.
    let p = b.get(&path_of(complete, &t.base)).await;
    assert_eq!(p.status, 302);
    let next = query_param(&p.location().unwrap(), "next").unwrap();
    assert!(next.starts_with("/device"), "{next}");
    b.sign_in(email, "a long password", &next).await;
    let page = b.get(&next).await;
    assert!(
        page.has_id("user-code") && page.has_id("continue"),
        "{}",
        page.body
    );

    // A wrong code is refused.
    let p = b
        .post(
            "/device",
            &[("csrf", &page.csrf()), ("user_code", "AAAA-AAAA")],
        )
        .await;
    assert_ne!(p.status, 200, "{}", p.body);

    let p = b
        .post(
            "/device",
            &[("csrf", &page.csrf()), ("user_code", &user_code)],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    // The device's name, escaped.
    assert!(
        p.body.contains("Living room &lt;b&gt;TV&lt;/b&gt;"),
        "{}",
        p.body
    );
    assert!(p.has_id("allow") && p.has_id("deny"));
    let p = b
        .post(
            "/device",
            &[
                ("csrf", &page.csrf()),
                ("user_code", &user_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);

    let r = t
        .http
        .post(t.url(reelnet_proto::oauth::TOKEN_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", reelnet_proto::oauth::GRANT_DEVICE),
                ("device_code", grant["device_code"].as_str().unwrap()),
                ("client_id", reelnet_proto::oauth::PUBLIC_CLIENT_ID),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (s, tokens) = common::split(r).await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens["access_token"].is_string());
}

/// A decision on the device page names the code itself: wrong codes there are guesses
/// too (limited per account), or the form could try codes past the lookup's limit and
/// approve a stranger's device into the guesser's account.
#[tokio::test]
async fn device_decisions_with_guessed_codes_are_limited() {
    let t = common::Tracker::start().await;
    let email = "guesser@example.org";
    t.user(email, "a long password").await;
    let r = t
        .http
        .post(t.url(reelnet_proto::oauth::DEVICE_AUTHORIZATION_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=reelnet-cli&device_name=victim%20tv")
        .send()
        .await
        .unwrap();
    let (s, grant) = common::split(r).await;
    assert_eq!(s, 200, "{grant}");
    let user_code = grant["user_code"].as_str().unwrap().to_owned();

    let b = Browser::new(&t.base);
    b.sign_in(email, "a long password", "/device").await;
    let page = b.get("/device").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    // Codes in the device alphabet that are not the real one (the default limit is 10).
    let wrong: Vec<String> = ["BCDF", "GHJK", "MNPQ", "RTVW", "XYBC", "DFGH"]
        .iter()
        .flat_map(|a| ["BCDF", "GHJK"].iter().map(move |b| format!("{a}-{b}")))
        .filter(|c| *c != user_code)
        .collect();
    let mut statuses = Vec::new();
    for code in wrong.iter().take(11) {
        let p = b
            .post(
                "/device",
                &[
                    ("csrf", csrf.as_str()),
                    ("user_code", code.as_str()),
                    ("decision", "allow"),
                ],
            )
            .await;
        statuses.push(p.status);
    }
    assert!(statuses[..10].iter().all(|s| *s == 404), "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
    // Past the limit even the right code is not taken: the device is still waiting.
    let p = b
        .post(
            "/device",
            &[
                ("csrf", csrf.as_str()),
                ("user_code", user_code.as_str()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(p.status, 429, "{}", p.body);
    let r = t
        .http
        .post(t.url(reelnet_proto::oauth::TOKEN_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", reelnet_proto::oauth::GRANT_DEVICE),
                ("device_code", grant["device_code"].as_str().unwrap()),
                ("client_id", reelnet_proto::oauth::PUBLIC_CLIENT_ID),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (s, body) = common::split(r).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["error"], "authorization_pending", "{body}");
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("reelnet_tracker_oauth_refused_total{reason=\"device_code_guess\"} 12"),
        "{metrics}"
    );
}

/// A member node may vouch for a viewer's address, but the device page is never forwarded
/// by a node: a node that signs its own guesses with a new address each time still has one
/// allowance (the limit is per node), not one per address it names.
#[tokio::test]
async fn a_node_naming_new_viewer_addresses_does_not_get_new_device_guesses() {
    let t = common::Tracker::start().await;
    let email = "node-guesser@example.org";
    t.user(email, "a long password").await;
    let m = t.member(&[]).await;
    let b = Browser::new(&t.base);
    b.sign_in(email, "a long password", "/device").await;
    let page = b.get("/device").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let session = b.cookie("__Host-reelnet_session").unwrap();
    let mut statuses = Vec::new();
    for i in 0..11u8 {
        let body = serde_urlencoded::to_string([
            ("csrf", page.csrf().as_str()),
            ("user_code", "BCDF-GHJK"),
        ])
        .unwrap();
        let viewer = format!("203.0.113.{}", i + 1);
        let signed = reelnet_proto::membership::viewer_auth_path("/device", &viewer);
        let r = t
            .http
            .post(t.url("/device"))
            .header("cookie", format!("__Host-reelnet_session={session}"))
            .header("origin", &t.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                reelnet_proto::membership::NODE_AUTH_HEADER,
                m.auth("POST", &signed, body.as_bytes()),
            )
            .header(reelnet_proto::membership::VIEWER_ADDR_HEADER, &viewer)
            .body(body)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 404), "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
}
