//! The tracker's own pages (docs/signin.md, "Pages") against a real tracker process: a
//! viewer registers, follows the mailed link to the tracker, confirms, signs in and sees
//! the account; CSRF and cross-origin posts are refused and change nothing; `next` never
//! leaves the tracker; changes need a recent sign-in; wrong passwords count against the
//! sign-in limits; the pages carry their own headers and escape what they show.
//!
//! The browser is [`common::browser::Browser`]: cookies kept by hand, `Origin` sent like a
//! browser's. The tracker's `public_url` is its loopback address, so cookies keep their
//! `__Host-` prefix and `Secure` and passkeys are off (an IP address cannot be a WebAuthn
//! RP id).
//!
//! Test hook: `[pages] recent_sign_in_secs = 0` in the tracker's config makes every
//! sign-in "not recent", which is how [`changes_need_a_recent_sign_in`] sees the re-auth
//! path without waiting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{path_of, urlencode, Browser, Headers};
use serde_json::json;

const SESSION: &str = "__Host-reelnet_session";
const CSRF: &str = "__Host-reelnet_csrf";

/// The JSON login's status (the password check the pages must not bypass).
async fn json_login(t: &common::Tracker, email: &str, password: &str) -> u16 {
    t.post(
        "/api/v1/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
    .0
}

#[tokio::test]
async fn register_verify_sign_in_and_see_the_account() {
    let t = common::Tracker::start().await;
    let b = Browser::new(&t.base);
    let email = "viewer@example.org";
    let name = "<script>alert(1)</script>";

    let reg = b.get("/register").await;
    assert_eq!(reg.status, 200, "{}", reg.body);
    for id in ["email", "display-name", "password", "register"] {
        assert!(reg.has_id(id), "#{id} missing: {}", reg.body);
    }
    let csrf_cookie = reg.set_cookie(CSRF).expect("a CSRF cookie before sign-in");
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }
    let done = b
        .post(
            "/register",
            &[
                ("csrf", &reg.csrf()),
                ("email", email),
                ("display-name", name),
                ("password", "a long password"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Check your email"), "{}", done.body);

    // The mailed link is the tracker's own page.
    let link = t
        .smtp()
        .wait_for_link(email, "Confirm your reelnet account", "/verify?token=")
        .await;
    assert!(
        link.starts_with(&format!("{}/verify?token=", t.base)),
        "{link}"
    );
    let verify = b.get(&path_of(&link, &t.base)).await;
    assert_eq!(verify.status, 200, "{}", verify.body);
    assert!(verify.has_id("verify"));
    // Opening the link does not verify (a mail scanner's GET must not).
    let (s, body) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["user"]["email_verified"], false);
    let token = verify.field("token").unwrap();
    let ok = b
        .post("/verify", &[("csrf", &verify.csrf()), ("token", &token)])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("is confirmed"), "{}", ok.body);
    let again = b
        .post("/verify", &[("csrf", &verify.csrf()), ("token", &token)])
        .await;
    assert_eq!(again.status, 400, "{}", again.body);

    // Not signed in: the account page sends the browser to sign in, and back.
    let away = b.get("/account").await;
    assert_eq!(away.status, 303);
    assert_eq!(away.location().unwrap(), "/login?next=%2Faccount");
    let login = b.get("/login?next=%2Faccount").await;
    for id in ["email", "password", "sign-in", "passkey-sign-in"] {
        assert!(login.has_id(id), "#{id} missing: {}", login.body);
    }
    // On an IP-address public_url passkeys are off, and the page says why.
    assert!(login.body.contains("not an IP address"), "{}", login.body);

    let signed = b.sign_in(email, "a long password", "/account").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location().unwrap(), "/account");
    let cookie = signed.set_cookie(SESSION).expect("a session cookie");
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let value = b.cookie(SESSION).unwrap();
    assert!(value.len() >= 43, "256 random bits: {value}");

    let account = b.get("/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains(email));
    // The display name is shown, escaped.
    assert!(
        account
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        account.body
    );
    assert!(!account.body.contains(name));
    // The JSON sign-in above is listed as a script session, with its end button.
    assert!(account.has_id("sessions"), "{}", account.body);
    assert!(
        account.body.contains("<td>script</td>") && account.body.contains("end-session"),
        "{}",
        account.body
    );
    for id in [
        "current-password",
        "new-password",
        "change-password",
        "add-passkey",
        "delete-account",
    ] {
        assert!(account.has_id(id), "#{id} missing: {}", account.body);
    }

    // Signing out ends the session on the tracker, not just the cookie.
    let out = b.post("/logout", &[("csrf", &account.csrf())]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.location().unwrap(), "/login");
    assert!(b.get("/account").await.status == 303);
    let replay = Browser::new(&t.base);
    replay.set(SESSION, &value);
    assert_eq!(replay.get("/account").await.status, 303);
}

#[tokio::test]
async fn pages_carry_their_own_headers_and_the_api_keeps_its_own() {
    let t = common::Tracker::start().await;
    let b = Browser::new(&t.base);
    for path in ["/login", "/register", "/reset", "/static/reelnet.css"] {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        let csp = p.header("content-security-policy");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert_eq!(p.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(p.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(p.header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(p.header("cache-control"), "no-store", "{path}");
    }
    let js = b.get("/static/passkeys.js").await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").starts_with("text/javascript"));
    let root = b.get("/").await;
    assert_eq!(
        (root.status, root.location().as_deref()),
        (302, Some("/account"))
    );
    // The JSON API keeps its strict policy, and unknown paths are still JSON 404s.
    let health = b.get("/healthz").await;
    assert_eq!(
        health.header("content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    );
    let missing = b.get("/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("\"error\""), "{}", missing.body);
    // A page without its token answers a page, not JSON.
    let verify = b.get("/verify").await;
    assert_eq!(verify.status, 400);
    assert!(verify.header("content-type").starts_with("text/html"));
}

#[tokio::test]
async fn csrf_and_cross_origin_posts_are_refused_and_change_nothing() {
    let t = common::Tracker::start().await;
    let email = "csrf@example.org";
    t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    assert_eq!(
        b.sign_in(email, "a long password", "/account").await.status,
        303
    );
    let account = b.get("/account").await;
    let csrf = account.csrf();
    let change = |token: &str| {
        vec![
            ("csrf".to_owned(), token.to_owned()),
            ("current-password".to_owned(), "a long password".to_owned()),
            ("new-password".to_owned(), "a brand new password".to_owned()),
        ]
    };
    // No token, a wrong token, the pre-sign-in cookie's token from another browser.
    let stranger = Browser::new(&t.base);
    let stranger_csrf = stranger.get("/login").await.csrf();
    let mut cases = vec![
        (
            "no token",
            vec![
                ("current-password".to_owned(), "a long password".to_owned()),
                ("new-password".to_owned(), "a brand new password".to_owned()),
            ],
            Headers::default(),
        ),
        ("wrong token", change("not-the-token"), Headers::default()),
        (
            "another browser's token",
            change(&stranger_csrf),
            Headers::default(),
        ),
    ];
    // The right token from the wrong origin, or from nowhere anyone can tell.
    cases.push((
        "cross-origin",
        change(&csrf),
        Headers::origin(Some("https://evil.example")),
    ));
    cases.push((
        "cross-site referer",
        change(&csrf),
        Headers {
            origin: Some(None),
            referer: Some("https://evil.example/page".into()),
            fetch_site: None,
        },
    ));
    cases.push(("no origin at all", change(&csrf), Headers::origin(None)));
    cases.push((
        "null origin, cross-site fetch",
        change(&csrf),
        Headers {
            origin: Some(Some("null".into())),
            referer: None,
            fetch_site: Some("cross-site".into()),
        },
    ));
    for (what, fields, h) in cases {
        let f: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let p = b.post_with("/account/password", &f, h).await;
        assert_eq!(p.status, 403, "{what}: {}", p.body);
        assert!(p.body.contains("Request refused"), "{what}: {}", p.body);
    }
    // Nothing changed: the old password still works, the new one does not.
    assert_eq!(json_login(&t, email, "a long password").await, 200);
    assert_eq!(json_login(&t, email, "a brand new password").await, 401);
    assert_eq!(b.get("/account").await.status, 200);

    // A cross-origin sign-in is refused before the password is looked at.
    let evil = Browser::new(&t.base);
    let token = evil.get("/login").await.csrf();
    let p = evil
        .post_with(
            "/login",
            &[
                ("csrf", &token),
                ("email", email),
                ("password", "a long password"),
            ],
            Headers::origin(Some("https://evil.example")),
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(p.set_cookie(SESSION).is_none());
    // A sign-in without the double-submit cookie is refused too.
    let bare = Browser::new(&t.base);
    let p = bare
        .post(
            "/login",
            &[
                ("csrf", &token),
                ("email", email),
                ("password", "a long password"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(p.set_cookie(SESSION).is_none());

    // Some browsers and privacy settings send `Origin: null` on same-origin posts;
    // `Sec-Fetch-Site: same-origin` vouches for those.
    let out = b
        .post_with(
            "/logout",
            &[("csrf", &csrf)],
            Headers {
                origin: Some(Some("null".into())),
                referer: None,
                fetch_site: Some("same-origin".into()),
            },
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(b.get("/account").await.status, 303);
}

#[tokio::test]
async fn next_never_leaves_the_tracker() {
    let t = common::Tracker::start().await;
    let email = "next@example.org";
    t.user(email, "a long password").await;
    for (next, expect) in [
        ("//evil.example", "/account"),
        ("https://evil.example", "/account"),
        ("/\\evil.example", "/account"),
        ("evil.example", "/account"),
        ("/device?user_code=ABCD-EFGH", "/device?user_code=ABCD-EFGH"),
    ] {
        let b = Browser::new(&t.base);
        let login = b.get(&format!("/login?next={}", urlencode(next))).await;
        assert_eq!(login.field("next").unwrap(), expect, "{next}");
        let p = b.sign_in(email, "a long password", next).await;
        assert_eq!(p.status, 303, "{next}: {}", p.body);
        assert_eq!(p.location().unwrap(), expect, "{next}");
        // Signed in, the sign-in page forwards to the same safe place.
        let again = b.get(&format!("/login?next={}", urlencode(next))).await;
        assert_eq!(again.location().unwrap(), expect, "{next}");
    }
}

#[tokio::test]
async fn changes_need_a_recent_sign_in() {
    // recent_sign_in_secs = 0: no sign-in is ever recent enough (the test hook).
    let stale = common::Tracker::start_with("[pages]\nrecent_sign_in_secs = 0\n").await;
    let email = "stale@example.org";
    stale.user(email, "a long password").await;
    let b = Browser::new(&stale.base);
    b.sign_in(email, "a long password", "/account").await;
    let account = b.get("/account").await;
    let csrf = account.csrf();
    let p = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current-password", "a long password"),
                ("new-password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.has_id("reauth-password"), "{}", p.body);
    assert!(p.has_id("reauth"), "{}", p.body);
    let p = b
        .post("/account/delete", &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert_eq!(json_login(&stale, email, "a long password").await, 200);
    // Re-entering a wrong password is refused; the right one is accepted.
    let p = b
        .post(
            "/account/reauth",
            &[("csrf", &csrf), ("reauth-password", "wrong password!")],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    let p = b
        .post(
            "/account/reauth",
            &[
                ("csrf", &csrf),
                ("reauth-password", "a long password"),
                ("next", "/account"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);

    // With the default (10 minutes), a fresh sign-in may change the password: the other
    // sessions (another browser, the JSON login's refresh token) end, this one stays.
    let t = common::Tracker::start().await;
    let email = "fresh@example.org";
    let tokens = t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    let other = Browser::new(&t.base);
    b.sign_in(email, "a long password", "/account").await;
    other.sign_in(email, "a long password", "/account").await;
    assert_eq!(other.get("/account").await.status, 200);
    let csrf = b.get("/account").await.csrf();
    // The current password is checked.
    let p = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current-password", "not my password"),
                ("new-password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(p.status, 401, "{}", p.body);
    let p = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current-password", "a long password"),
                ("new-password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Password changed"), "{}", p.body);
    assert_eq!(json_login(&t, email, "a long password").await, 401);
    assert_eq!(json_login(&t, email, "a brand new password").await, 200);
    assert_eq!(b.get("/account").await.status, 200);
    assert_eq!(other.get("/account").await.status, 303);
    let (s, _) = t
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(s, 401, "the JSON login's session ended too");

    // Deleting the account needs the box ticked, then removes it.
    let p = b.post("/account/delete", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 400, "{}", p.body);
    let p = b
        .post("/account/delete", &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(b.get("/account").await.status, 303);
    assert_eq!(json_login(&t, email, "a brand new password").await, 401);
}

#[tokio::test]
async fn wrong_passwords_count_against_the_sign_in_limits() {
    let t = common::Tracker::start_with("[auth]\nmax_failures_per_account_and_address = 3\n").await;
    let email = "guess@example.org";
    t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    for _ in 0..3 {
        let p = b.sign_in(email, "a wrong guess!", "/account").await;
        assert_eq!(p.status, 401, "{}", p.body);
        assert!(p.body.contains("wrong email or password"), "{}", p.body);
        // The form comes back with the email kept (escaped) and no password.
        assert_eq!(p.field("email").unwrap(), email);
    }
    let p = b.sign_in(email, "a long password", "/account").await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(!p.header("retry-after").is_empty());
    assert!(p.set_cookie(SESSION).is_none());
    // The same limits as the JSON login: it is held back too.
    assert_eq!(json_login(&t, email, "a long password").await, 429);
}

#[tokio::test]
async fn password_reset_through_the_tracker_pages() {
    let t = common::Tracker::start().await;
    let email = "reset@example.org";
    t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    let page = b.get("/reset").await;
    assert!(page.has_id("email") && page.has_id("send"), "{}", page.body);
    let p = b
        .post("/reset", &[("csrf", &page.csrf()), ("email", email)])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let link = t
        .smtp()
        .wait_for_link(
            email,
            "Reset your reelnet password",
            "/reset/confirm?token=",
        )
        .await;
    assert!(
        link.starts_with(&format!("{}/reset/confirm?token=", t.base)),
        "{link}"
    );
    let form = b.get(&path_of(&link, &t.base)).await;
    assert!(
        form.has_id("password") && form.has_id("save"),
        "{}",
        form.body
    );
    let token = form.field("token").unwrap();
    // Without the token's form (CSRF) nothing happens.
    let p = b
        .post(
            "/reset/confirm",
            &[("token", &token), ("password", "a reset password")],
        )
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(json_login(&t, email, "a long password").await, 200);
    let p = b
        .post(
            "/reset/confirm",
            &[
                ("csrf", &form.csrf()),
                ("token", &token),
                ("password", "a reset password"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(json_login(&t, email, "a reset password").await, 200);
    assert_eq!(json_login(&t, email, "a long password").await, 401);

    // The admin bootstrap link is the tracker's registration page, carrying the token.
    let (ok, out, err) = t.cli(&["admin", "bootstrap", "--ttl", "1h"]);
    assert!(ok, "{out}{err}");
    let link = out.lines().last().unwrap().trim().to_owned();
    assert!(
        link.starts_with(&format!("{}/register?bootstrap=", t.base)),
        "{link}"
    );
    let reg = b.get(&path_of(&link, &t.base)).await;
    assert_eq!(
        reg.field("bootstrap").unwrap(),
        link.split("bootstrap=").nth(1).unwrap()
    );
    let p = b
        .post(
            "/register",
            &[
                ("csrf", &reg.csrf()),
                ("bootstrap", &reg.field("bootstrap").unwrap()),
                ("email", "root@example.org"),
                ("display-name", "Root"),
                ("password", "a long password"),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let (s, body) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": "root@example.org", "password": "a long password"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["user"]["role"], "admin");
}

#[tokio::test]
async fn passkey_ceremonies_need_a_session_and_the_csrf_header() {
    let t = common::Tracker::start().await;
    let b = Browser::new(&t.base);
    let csrf = b.get("/login").await.csrf();
    // Without the header: refused as CSRF.
    let p = b
        .post_json(
            "/passkeys/login/start",
            None,
            &json!({"email": "a@example.org"}),
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    // Registration needs a session.
    let p = b
        .post_json("/passkeys/register/start", Some(&csrf), &json!({}))
        .await;
    assert_eq!(p.status, 401, "{}", p.body);
    // On an IP-address public_url passkeys are off: said, not failed obscurely.
    let p = b
        .post_json(
            "/passkeys/login/start",
            Some(&csrf),
            &json!({"email": "a@example.org"}),
        )
        .await;
    assert_eq!(p.status, 503, "{}", p.body);
    assert!(p.body.contains("passkeys_unavailable"), "{}", p.body);
}

#[tokio::test]
async fn plain_http_off_loopback_loses_the_host_prefix_and_is_logged() {
    let origin = "http://tracker.example:7070";
    let t = common::Tracker::start_with(&format!("public_url = \"{origin}\"\n")).await;
    assert!(t.log().contains("UNSAFE"), "{}", t.log());
    let email = "plain@example.org";
    t.user(email, "a long password").await;
    let b = Browser::at(&t.base, origin);
    let login = b.get("/login").await;
    let c = login.set_cookie("reelnet_csrf").expect("reelnet_csrf");
    assert!(!c.contains("Secure"), "{c}");
    assert!(login.set_cookie(CSRF).is_none());
    let p = b.sign_in(email, "a long password", "/account").await;
    assert_eq!(p.status, 303, "{}", p.body);
    let c = p.set_cookie("reelnet_session").expect("reelnet_session");
    assert!(c.contains("HttpOnly") && !c.contains("Secure"), "{c}");
    assert_eq!(b.get("/account").await.status, 200);
    // The tracker's own address is not its public origin: posts from it are refused.
    let other = Browser::new(&t.base);
    let p = other.sign_in(email, "a long password", "/account").await;
    assert_eq!(p.status, 403);
}

#[tokio::test]
async fn passkeys_work_on_a_host_name_public_url() {
    let origin = "http://localhost:7070";
    let t = common::Tracker::start_with(&format!(
        "public_url = \"{origin}\"\n[auth]\nmax_failures_per_address = 3\n"
    ))
    .await;
    let email = "passkey@example.org";
    t.user(email, "a long password").await;
    let b = Browser::at(&t.base, origin);
    let login = b.get("/login").await;
    assert!(!login.body.contains("not an IP address"), "{}", login.body);
    // No passkey yet: the sign-in ceremony says so.
    let p = b
        .post_json(
            "/passkeys/login/start",
            Some(&login.csrf()),
            &json!({"email": email}),
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.body.contains("no_passkey"), "{}", p.body);
    // Asking is limited per address like failed sign-ins.
    for expect in [400, 400, 429] {
        let p = b
            .post_json(
                "/passkeys/login/start",
                Some(&login.csrf()),
                &json!({"email": "someone@example.org"}),
            )
            .await;
        assert_eq!(p.status, expect, "{}", p.body);
    }
    // Signed in, a registration ceremony starts for the tracker as relying party.
    b.sign_in(email, "a long password", "/account").await;
    let csrf = b.get("/account").await.csrf();
    let p = b
        .post_json("/passkeys/register/start", Some(&csrf), &json!({}))
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let v: serde_json::Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(v["options"]["publicKey"]["rp"]["id"], "localhost", "{v}");
    assert_eq!(v["options"]["publicKey"]["user"]["name"], email, "{v}");
    assert!(v["ceremony"].is_string());
    // A made-up credential is refused and stores nothing.
    let p = b
        .post_json(
            "/passkeys/register/finish",
            Some(&csrf),
            &json!({"ceremony": v["ceremony"], "credential": {
                "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
                "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}}}),
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    let account = b.get("/account").await;
    assert!(account.body.contains("No passkeys yet"), "{}", account.body);
}

#[tokio::test]
async fn credentials_through_a_node_are_refused() {
    let t = common::Tracker::start().await;
    let email = "proxied@example.org";
    t.user(email, "a long password").await;
    let m = t.member(&["edge"]).await;
    let b = Browser::new(&t.base);
    let csrf = b.get("/login").await.csrf();
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", "a long password"),
        ("next", "/account"),
    ])
    .unwrap();
    let viewer = "10.1.2.3";
    let signed = reelnet_proto::membership::viewer_auth_path("/login", viewer);
    let r = t
        .http
        .post(t.url("/login"))
        .header("origin", t.base.clone())
        .header("cookie", format!("{CSRF}={}", b.cookie(CSRF).unwrap()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(reelnet_proto::membership::VIEWER_ADDR_HEADER, viewer)
        .header(
            "reelnet-node-auth",
            m.auth("POST", &signed, form.as_bytes()),
        )
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("only accepted on the tracker"));
    // A passkey ceremony relayed by a node with a viewer address it names: refused too
    // (the per-address limit on probing which emails have passkeys is the tracker's own).
    let body = serde_json::to_vec(&json!({ "email": email })).unwrap();
    let signed = reelnet_proto::membership::viewer_auth_path("/passkeys/login/start", viewer);
    let r = t
        .http
        .post(t.url("/passkeys/login/start"))
        .header("origin", t.base.clone())
        .header("cookie", format!("{CSRF}={}", b.cookie(CSRF).unwrap()))
        .header("x-csrf-token", csrf.clone())
        .header("content-type", "application/json")
        .header(reelnet_proto::membership::VIEWER_ADDR_HEADER, viewer)
        .header("reelnet-node-auth", m.auth("POST", &signed, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The same form straight from the browser signs in.
    let p = b.sign_in(email, "a long password", "/account").await;
    assert_eq!(p.status, 303, "{}", p.body);

    // An oversized form: 413, nothing read.
    let big = "x".repeat(70 * 1024);
    let p = b.post("/login", &[("csrf", &csrf), ("email", &big)]).await;
    assert_eq!(p.status, 413);
}

#[tokio::test]
async fn an_unconfirmed_account_can_ask_for_the_link_again() {
    let t = common::Tracker::start().await;
    let email = "unconfirmed@example.org";
    let (s, b) = t
        .post(
            "/api/v1/auth/register",
            json!({"email": email, "password": "a long password", "display_name": "U"}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    t.smtp()
        .wait_for_link(email, "Confirm your reelnet account", "/verify?token=")
        .await;
    let b = Browser::new(&t.base);
    assert_eq!(
        b.sign_in(email, "a long password", "/account").await.status,
        303
    );
    let account = b.get("/account").await;
    assert!(
        account.body.contains("not confirmed yet"),
        "{}",
        account.body
    );
    assert!(account.has_id("resend-verification"));
    let before = t.smtp().count_to(email);
    let p = b
        .post("/account/resend-verification", &[("csrf", &account.csrf())])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    common::wait_for(
        "a second confirmation mail",
        std::time::Duration::from_secs(20),
        || async { (t.smtp().count_to(email) > before).then_some(()) },
    )
    .await;
}

/// `reelnet_tracker_oauth_refused_total{reason="bad_csrf"}` (0 before the first refusal).
async fn bad_csrf_count(t: &common::Tracker) -> u64 {
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("reelnet_tracker_oauth_refused_total{reason=\"bad_csrf\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn every_form_checks_the_session_first_then_the_csrf_token_and_counts_refusals() {
    let t = common::Tracker::start().await;
    // Forms that need a session: signed out, to the sign-in page (and back), with nothing
    // counted, whatever the token.
    let signed_in_forms = [
        ("/account/password", "/account"),
        ("/account/reauth", "/account"),
        ("/account/resend-verification", "/account"),
        ("/account/delete", "/account"),
        ("/account/sessions/end", "/account"),
        ("/account/passkeys/delete", "/account"),
        ("/device", "/device"),
    ];
    let out = Browser::new(&t.base);
    for (path, next) in signed_in_forms {
        let p = out.post(path, &[("csrf", "wrong")]).await;
        assert_eq!(p.status, 303, "{path}: {}", p.body);
        assert_eq!(
            p.location().unwrap(),
            format!("/login?next={}", urlencode(next)),
            "{path}"
        );
    }
    assert_eq!(bad_csrf_count(&t).await, 0);

    // Signed in, a wrong token: 403, counted once per form, nothing done.
    let email = "forms@example.org";
    t.user(email, "a long password").await;
    let b = Browser::new(&t.base);
    assert_eq!(
        b.sign_in(email, "a long password", "/account").await.status,
        303
    );
    let public_forms = [
        "/login",
        "/register",
        "/verify",
        "/reset",
        "/reset/confirm",
        "/logout",
    ];
    let all: Vec<&str> = signed_in_forms
        .iter()
        .map(|(p, _)| *p)
        .chain(public_forms)
        .collect();
    for path in &all {
        let p = b
            .post(
                path,
                &[
                    ("csrf", "wrong"),
                    ("confirm", "yes"),
                    ("email", email),
                    ("password", "a long password"),
                ],
            )
            .await;
        assert_eq!(p.status, 403, "{path}: {}", p.body);
        assert!(p.body.contains("Request refused"), "{path}: {}", p.body);
    }
    assert_eq!(bad_csrf_count(&t).await, all.len() as u64);
    // Neither deleted nor signed out.
    assert_eq!(b.get("/account").await.status, 200);
    assert_eq!(json_login(&t, email, "a long password").await, 200);
}
