//! Sign-in through the tracker (docs/signin.md), protocol side: a tracker in this process
//! (`Tracker::bind`, real HTTP on loopback port 0) whose `Api` issues codes the way its
//! consent page does, member nodes enrolled with gateway origins that sign their requests
//! (`Reelnet-Node-Auth`), and every refusal the issue lists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Member;
use reelnet_proto::oauth::{redirect_uri, s256_challenge, TokenResponse};
use reelnet_tracker::api::Api;
use reelnet_tracker::config::TrackerConfig;
use reelnet_tracker::network::{InviteRequest, Operator};
use reelnet_tracker::oauth::{AuthorizeParams, OauthClient};
use reelnet_tracker::store::User;
use reelnet_tracker::users::AddUserRequest;
use serde_json::{json, Value};

const ORIGIN_A: &str = "http://127.0.0.2:8080";
const ORIGIN_B: &str = "http://127.0.0.3:8080";
const PASSWORD: &str = "correct horse battery";

struct Harness {
    _dir: tempfile::TempDir,
    tracker: reelnet_tracker::Tracker,
    base: String,
    http: reqwest::Client,
}

impl Harness {
    async fn start(grace: u64) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TrackerConfig {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
            issuer: "test-tracker".to_owned(),
            ..TrackerConfig::default()
        };
        config.smtp.port = 9;
        config.oauth.refresh_grace_secs = grace;
        config.oauth.device_guesses_per_address = 3;
        config.rooms.premium_only = false;
        let tracker = reelnet_tracker::Tracker::bind(config).await.unwrap();
        let base = format!("http://{}", tracker.addr());
        Harness {
            _dir: dir,
            tracker,
            base,
            http: reqwest::Client::new(),
        }
    }

    fn api(&self) -> &Api {
        self.tracker.api()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A member node enrolled with `origin`.
    async fn member(&self, origin: &str) -> Member {
        let invite = self
            .api()
            .membership()
            .create_invite(
                &Operator::Local,
                InviteRequest {
                    roles: vec![],
                    uses: None,
                    ttl_secs: None,
                },
            )
            .await
            .unwrap();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let node = reelnet_proto::NodeId::from_verifying_key(&key.verifying_key());
        let now = reelnet_runtime::clock::unix_secs();
        let body = json!({
            "invite": invite.token,
            "node_id": node.to_string(),
            "timestamp": now,
            "proof": reelnet_proto::membership::sign_enroll(&key, &invite.network_id, &invite.token, now),
            "origins": [origin],
        });
        let r = self
            .http
            .post(self.url("/api/v1/nodes/enroll"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (s, b) = common::split(r).await;
        assert_eq!(s, 200, "{b}");
        Member {
            id: node.to_string(),
            cert: reelnet_proto::membership::SignedCertificate::from_hex(
                b["certificate"].as_str().unwrap(),
            )
            .unwrap(),
            key,
        }
    }

    /// A verified account; its JSON login (a network token) and its record.
    async fn user(&self, email: &str, admin: bool) -> (Value, User) {
        self.api()
            .admin_add_user(
                &Operator::Local,
                AddUserRequest {
                    email: email.to_owned(),
                    password: PASSWORD.to_owned(),
                    display_name: None,
                    verified: true,
                    admin,
                },
            )
            .await
            .unwrap();
        let (s, login) = self
            .post_json(
                "/api/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, 200, "{login}");
        let claims = self
            .api()
            .authenticate(Some(&format!(
                "Bearer {}",
                login["access_token"].as_str().unwrap()
            )))
            .unwrap();
        let user = self.api().user(&claims).unwrap();
        (login, user)
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        common::split(r).await
    }

    /// A form POST, signed by `node` when given.
    async fn form(
        &self,
        path: &str,
        node: Option<&Member>,
        pairs: &[(&str, &str)],
    ) -> (u16, Value) {
        let body = serde_urlencoded::to_string(pairs).unwrap();
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if let Some(m) = node {
            req = req.header("reelnet-node-auth", m.auth("POST", path, body.as_bytes()));
        }
        common::split(req.send().await.unwrap()).await
    }

    /// `method path` with a bearer token, signed by `via` when given (empty body).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        via: Option<&Member>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(token);
        if let Some(m) = via {
            req = req.header("reelnet-node-auth", m.auth(method.as_str(), path, b""));
        }
        common::split(req.send().await.unwrap()).await
    }

    /// The consent page's part: a code for `user` to `node` (at `origin`), and the
    /// verifier that redeems it.
    async fn code(&self, user: &User, node: &Member, origin: &str) -> (String, String) {
        let verifier = format!("v{}", hex::encode(rand::random::<[u8; 24]>()));
        let params = self.params(node, origin, &verifier);
        let client: OauthClient = self.api().oauth_check_authorize(&params).unwrap();
        assert_eq!(client.origin, origin);
        // What the consent page does when the viewer allows.
        self.api()
            .oauth_grant_consent(&user.id, &client)
            .await
            .unwrap();
        let url = self
            .api()
            .oauth_issue_code(user, &client, &params, reelnet_runtime::clock::unix_secs())
            .await
            .unwrap();
        let (at, query) = url.split_once('?').unwrap();
        assert_eq!(at, redirect_uri(origin));
        let q: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(query).unwrap();
        assert_eq!(q["state"], "s t&ate");
        assert_eq!(q["iss"], "test-tracker");
        (q["code"].clone(), verifier)
    }

    fn params(&self, node: &Member, origin: &str, verifier: &str) -> AuthorizeParams {
        AuthorizeParams {
            response_type: "code".into(),
            client_id: node.id.clone(),
            redirect_uri: redirect_uri(origin),
            state: Some("s t&ate".into()),
            code_challenge: s256_challenge(verifier),
            code_challenge_method: "S256".into(),
            scope: None,
        }
    }

    async fn redeem(
        &self,
        signer: Option<&Member>,
        client_id: &str,
        code: &str,
        origin: &str,
        verifier: Option<&str>,
    ) -> (u16, Value) {
        let uri = redirect_uri(origin);
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", uri.as_str()),
            ("client_id", client_id),
        ];
        if let Some(v) = verifier {
            pairs.push(("code_verifier", v));
        }
        self.form("/oauth/token", signer, &pairs).await
    }

    async fn refresh(&self, signer: Option<&Member>, token: &str) -> (u16, Value) {
        self.form(
            "/oauth/token",
            signer,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await
    }

    /// A device's poll of the token endpoint.
    async fn poll(&self, device_code: &str) -> (u16, Value) {
        self.form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "reelnet-cli"),
                ("device_code", device_code),
            ],
        )
        .await
    }

    async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn refused(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("reelnet_tracker_oauth_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no counter for {reason} in {metrics}"))
}

#[tokio::test]
async fn code_flow_audiences_and_refusals() {
    let h = Harness::start(10).await;
    let a = h.member(ORIGIN_A).await;
    let b = h.member(ORIGIN_B).await;
    let (_, viewer) = h.user("viewer@example.org", false).await;

    // Metadata.
    let r = h
        .http
        .get(h.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    let (s, meta) = common::split(r).await;
    assert_eq!(s, 200);
    assert_eq!(meta["issuer"], "test-tracker");
    assert_eq!(meta["token_endpoint"], h.url("/oauth/token"));
    assert_eq!(meta["authorization_endpoint"], h.url("/oauth/authorize"));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);

    // Client checks: an unknown client or an unregistered redirect URI is never a redirect.
    let v = "x".repeat(43);
    let mut p = h.params(&a, ORIGIN_A, &v);
    p.redirect_uri = redirect_uri(ORIGIN_B);
    let e = h.api().oauth_check_authorize(&p).unwrap_err();
    assert_eq!((e.reason, e.redirect.is_none()), ("bad_redirect_uri", true));
    p.redirect_uri = format!("{ORIGIN_A}/auth/callback/../evil");
    assert!(h
        .api()
        .oauth_check_authorize(&p)
        .unwrap_err()
        .redirect
        .is_none());
    let mut p = h.params(&a, ORIGIN_A, &v);
    p.client_id = "ab".repeat(32);
    let e = h.api().oauth_check_authorize(&p).unwrap_err();
    assert_eq!((e.reason, e.redirect.is_none()), ("unknown_client", true));
    // A valid client with a bad parameter may hear about it at its redirect URI.
    let mut p = h.params(&a, ORIGIN_A, &v);
    p.code_challenge_method = "plain".into();
    let e = h.api().oauth_check_authorize(&p).unwrap_err();
    let to = e.redirect.unwrap();
    assert!(
        to.starts_with(&format!("{}?error=invalid_request", redirect_uri(ORIGIN_A))),
        "{to}"
    );
    assert!(
        to.contains("state=s+t%26ate") && to.contains("iss=test-tracker"),
        "{to}"
    );

    // No code without consent; consent is remembered.
    let client = h
        .api()
        .oauth_check_authorize(&h.params(&a, ORIGIN_A, &v))
        .unwrap();
    let e = h
        .api()
        .oauth_issue_code(&viewer, &client, &h.params(&a, ORIGIN_A, &v), 0)
        .await
        .unwrap_err();
    assert_eq!(e.code, "consent_required");
    assert!(!h.api().oauth_has_consent(&viewer.id, &a.id).unwrap());
    h.api()
        .oauth_grant_consent(&viewer.id, &client)
        .await
        .unwrap();
    assert!(h.api().oauth_has_consent(&viewer.id, &a.id).unwrap());
    assert!(!h.api().oauth_has_consent(&viewer.id, &b.id).unwrap());

    // Redemption refusals change nothing: the code still works afterwards.
    let (code, verifier) = h.code(&viewer, &a, ORIGIN_A).await;
    let (s, e) = h
        .redeem(None, &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
    let (s, e) = h.redeem(Some(&a), &a.id, &code, ORIGIN_A, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("bad_verifier"));
    let wrong = "w".repeat(43);
    let (s, e) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&wrong))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("bad_verifier"));
    // Node b with a's code: as itself, and claiming to be a.
    let (s, e) = h
        .redeem(Some(&b), &b.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("wrong_client"),
        "{e}"
    );
    let (s, e) = h
        .redeem(Some(&b), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
    let (s, e) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_B, Some(&verifier))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("bad_redirect_uri"));
    let (s, e) = h
        .redeem(Some(&a), &a.id, "not-a-code", ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("unknown_code"));

    let (s, body) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(s, 200, "{body}");
    let first: TokenResponse = serde_json::from_value(body).unwrap();
    let c = claims_of(&first.access_token);
    assert_eq!(c["aud"], format!("reelnet-node:{}", a.id));
    assert!(c["scope"].is_null(), "{c}");
    assert_eq!(c["sid"].as_str().unwrap().len(), 32);
    assert_eq!(first.user.as_ref().unwrap()["email"], "viewer@example.org");

    // Where the node-a token works: only through node a.
    let tok = first.access_token.as_str();
    let (s, e) = h.call(reqwest::Method::GET, "/api/v1/me", tok, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("wrong_audience")),
        "{e}"
    );
    let (s, e) = h
        .call(reqwest::Method::GET, "/api/v1/me", tok, Some(&b))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("wrong_audience")),
        "{e}"
    );
    let (s, me) = h
        .call(reqwest::Method::GET, "/api/v1/me", tok, Some(&a))
        .await;
    assert_eq!(s, 200, "{me}");
    // A signature that does not verify (over another path) is 401 whatever the token.
    let r = h
        .http
        .get(h.url("/api/v1/me"))
        .bearer_auth(tok)
        .header(
            "reelnet-node-auth",
            a.auth("GET", "/api/v1/me/history", b""),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Never on an account or admin route.
    let (s, e) = h
        .call(reqwest::Method::DELETE, "/api/v1/me", tok, Some(&a))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("node_token_not_allowed")),
        "{e}"
    );
    let path = format!("/api/v1/admin/nodes/{}/revoke", b.id);
    let r = h
        .http
        .post(h.url(&path))
        .bearer_auth(tok)
        .header("reelnet-node-auth", a.auth("POST", &path, b"{}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (s, e) = common::split(r).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("node_token_not_allowed")),
        "{e}"
    );
    let (s, e) = h
        .call(reqwest::Method::GET, "/api/v1/admin/requests", tok, None)
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("node_token_not_allowed")),
        "{e}"
    );
    // A viewer's own network token has the account scope, not the admin one.
    let (login, _) = h.user("other@example.org", false).await;
    let net = login["access_token"].as_str().unwrap();
    assert_eq!(claims_of(net)["scope"], "account");
    let (s, e) = h
        .call(reqwest::Method::GET, "/api/v1/admin/requests", net, None)
        .await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_admin")), "{e}");
    let (s, e) = h
        .call(reqwest::Method::GET, "/api/v1/me", net, Some(&a))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("wrong_audience")),
        "{e}"
    );

    // Reusing the code ends the session the first redemption started.
    let (s, e) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("code_reused"));
    let (s, e) = h
        .call(reqwest::Method::GET, "/api/v1/me", tok, Some(&a))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("session_ended")),
        "{e}"
    );
    let (s, e) = h.refresh(Some(&a), &first.refresh_token).await;
    assert_eq!(s, 400, "{e}");

    // Two tabs refreshing within the grace both get tokens, in the same session.
    let (code, verifier) = h.code(&viewer, &a, ORIGIN_A).await;
    let (s, body) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(s, 200, "{body}");
    let pair: TokenResponse = serde_json::from_value(body).unwrap();
    let sid = claims_of(&pair.access_token)["sid"].clone();
    // Only node a refreshes its session.
    let (s, e) = h.refresh(None, &pair.refresh_token).await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .starts_with("wrong_client"));
    let (s, e) = h.refresh(Some(&b), &pair.refresh_token).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = h
        .post_json(
            "/api/v1/auth/refresh",
            json!({"refresh_token": pair.refresh_token}),
        )
        .await;
    assert_eq!((s, e["error"].as_str()), (401, Some("wrong_client")), "{e}");
    let (s, t1) = h.refresh(Some(&a), &pair.refresh_token).await;
    assert_eq!(s, 200, "{t1}");
    let (s, t2) = h.refresh(Some(&a), &pair.refresh_token).await;
    assert_eq!(s, 200, "{t2}");
    assert_ne!(t1["refresh_token"], t2["refresh_token"]);
    for t in [&t1, &t2] {
        let c = claims_of(t["access_token"].as_str().unwrap());
        assert_eq!(c["sid"], sid);
        assert_eq!(c["aud"], format!("reelnet-node:{}", a.id));
    }
    let sessions = h.api().oauth_sessions(&viewer.id).unwrap();
    let mine = sessions
        .iter()
        .find(|s| json!(s.sid) == sid)
        .expect("listed");
    assert_eq!(mine.client, format!("node:{}", a.id));
    assert_eq!(mine.origin.as_deref(), Some(ORIGIN_A));
    assert!(mine.last_used_at.is_some());

    // A script token bound to node a (JSON login with resource).
    let (s, scripted) = h
        .post_json(
            "/api/v1/auth/login",
            json!({"email": "viewer@example.org", "password": PASSWORD, "resource": a.id}),
        )
        .await;
    assert_eq!(s, 200, "{scripted}");
    assert_eq!(
        claims_of(scripted["access_token"].as_str().unwrap())["aud"],
        format!("reelnet-node:{}", a.id)
    );
    let (s, e) = h
        .post_json(
            "/api/v1/auth/login",
            json!({"email": "viewer@example.org", "password": PASSWORD, "resource": "ab".repeat(32)}),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_resource")),
        "{e}"
    );

    // Revoking node a ends every session bound to it.
    let before = h.api().oauth_sessions(&viewer.id).unwrap().len();
    h.api()
        .membership()
        .revoke(&Operator::Local, &a.id)
        .await
        .unwrap();
    let after = h.api().oauth_sessions(&viewer.id).unwrap();
    assert_eq!(before - after.len(), 2, "{after:?}");
    assert!(after.iter().all(|s| !s.client.starts_with("node:")));
    let (s, _) = h
        .call(
            reqwest::Method::GET,
            "/api/v1/me",
            t2["access_token"].as_str().unwrap(),
            Some(&a),
        )
        .await;
    assert_eq!(s, 401);
    let (s, e) = h
        .post_json(
            "/api/v1/auth/refresh",
            json!({"refresh_token": scripted["refresh_token"]}),
        )
        .await;
    assert_eq!(s, 401, "{e}");
    // And a's clients are no longer clients.
    let e = h
        .api()
        .oauth_check_authorize(&h.params(&a, ORIGIN_A, &v))
        .unwrap_err();
    assert_eq!(e.reason, "unknown_client");
    assert!(!h
        .api()
        .oauth_registered_origins()
        .contains(&ORIGIN_A.to_owned()));
    assert!(h
        .api()
        .oauth_registered_origins()
        .contains(&ORIGIN_B.to_owned()));

    // Every refusal above was counted.
    let m = h.metrics().await;
    for reason in [
        "bad_verifier",
        "wrong_client",
        "bad_redirect_uri",
        "unknown_code",
        "code_reused",
        "wrong_audience",
        "node_token_on_account_route",
        "unknown_client",
    ] {
        assert!(refused(&m, reason) >= 1, "{reason}: {m}");
    }
    assert_eq!(refused(&m, "device_code_guess"), 0);
}

#[tokio::test]
async fn replayed_refresh_token_ends_its_session() {
    // No grace: any second use is a replay.
    let h = Harness::start(0).await;
    let a = h.member(ORIGIN_A).await;
    let (login, viewer) = h.user("viewer@example.org", false).await;

    let (code, verifier) = h.code(&viewer, &a, ORIGIN_A).await;
    let (s, body) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    assert_eq!(s, 200, "{body}");
    let stolen = body["refresh_token"].as_str().unwrap().to_owned();
    let (s, next) = h.refresh(Some(&a), &stolen).await;
    assert_eq!(s, 200, "{next}");
    let (s, e) = h.refresh(Some(&a), &stolen).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("refresh_reused"),
        "{e}"
    );
    // The whole family is gone: the rotated token and its access token too.
    let (s, e) = h
        .refresh(Some(&a), next["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = h
        .call(
            reqwest::Method::GET,
            "/api/v1/me",
            next["access_token"].as_str().unwrap(),
            Some(&a),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("session_ended")),
        "{e}"
    );

    // The same for a script's session at the JSON API.
    let rt = login["refresh_token"].as_str().unwrap();
    let (s, _) = h
        .post_json("/api/v1/auth/refresh", json!({ "refresh_token": rt }))
        .await;
    assert_eq!(s, 200);
    let (s, e) = h
        .post_json("/api/v1/auth/refresh", json!({ "refresh_token": rt }))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("refresh_reused")),
        "{e}"
    );

    // Revocation (RFC 7009): a node's session only by that node.
    let (code, verifier) = h.code(&viewer, &a, ORIGIN_A).await;
    let (_, body) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    let rt = body["refresh_token"].as_str().unwrap();
    let (s, e) = h.form("/oauth/revoke", None, &[("token", rt)]).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
    let (s, _) = h.form("/oauth/revoke", Some(&a), &[("token", rt)]).await;
    assert_eq!(s, 200);
    let (s, e) = h.refresh(Some(&a), rt).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = h.form("/oauth/revoke", None, &[("token", "unknown")]).await;
    assert_eq!(s, 200);

    let m = h.metrics().await;
    assert!(refused(&m, "refresh_reused") >= 2, "{m}");
    assert!(refused(&m, "refresh_revoked") >= 1, "{m}");
}

#[tokio::test]
async fn device_flow_and_credentials_only_at_the_tracker() {
    let h = Harness::start(10).await;
    let a = h.member(ORIGIN_A).await;
    let (_, viewer) = h.user("viewer@example.org", false).await;
    let (admin_login, admin) = h.user("admin@example.org", true).await;
    assert_eq!(
        claims_of(admin_login["access_token"].as_str().unwrap())["scope"],
        "account admin"
    );

    let (s, e) = h
        .form(
            "/oauth/device_authorization",
            None,
            &[("client_id", "someone"), ("device_name", "TV")],
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_client")),
        "{e}"
    );
    let (s, d) = h
        .form(
            "/oauth/device_authorization",
            None,
            &[
                ("client_id", "reelnet-cli"),
                ("device_name", "Living-room TV"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{d}");
    let user_code = d["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    assert_eq!(d["verification_uri"], h.url("/device"));
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}?user_code={user_code}", h.url("/device"))
    );
    let device_code = d["device_code"].as_str().unwrap();
    let poll = || h.poll(device_code);

    let src = reelnet_tracker::accounts::Source {
        addr: "192.0.2.1".into(),
        node: None,
    };
    let view = h
        .api()
        .device_lookup(&user_code.to_lowercase().replace('-', " "), &src)
        .unwrap();
    assert_eq!(view.device_name, "Living-room TV");
    let (s, e) = poll().await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("authorization_pending")),
        "{e}"
    );
    let (s, e) = poll().await;
    assert_eq!((s, e["error"].as_str()), (400, Some("slow_down")), "{e}");
    h.api()
        .device_decide(user_code, &viewer, true)
        .await
        .unwrap();
    // Still within the (grown) interval: slow down, then (in a new device) the token.
    let (s, e) = poll().await;
    assert_eq!((s, e["error"].as_str()), (400, Some("slow_down")), "{e}");

    let (_, d2) = h
        .form(
            "/oauth/device_authorization",
            None,
            &[
                ("client_id", "reelnet-cli"),
                ("device_name", "CLI"),
                ("resource", a.id.as_str()),
            ],
        )
        .await;
    let code2 = d2["user_code"].as_str().unwrap();
    assert_eq!(
        h.api()
            .device_lookup(code2, &src)
            .unwrap()
            .node_origin
            .as_deref(),
        Some(ORIGIN_A)
    );
    h.api().device_decide(code2, &viewer, true).await.unwrap();
    let (s, tok) = h.poll(d2["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{tok}");
    let c = claims_of(tok["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], format!("reelnet-node:{}", a.id));
    assert!(c["scope"].is_null());
    let (s, e) = h.poll(d2["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("expired_token")),
        "{e}"
    );

    // A network device token: works directly, changes nothing.
    let (_, d3) = h
        .form(
            "/oauth/device_authorization",
            None,
            &[("client_id", "reelnet-cli"), ("device_name", "script")],
        )
        .await;
    h.api()
        .device_decide(d3["user_code"].as_str().unwrap(), &viewer, true)
        .await
        .unwrap();
    let (s, tok) = h.poll(d3["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{tok}");
    let t = tok["access_token"].as_str().unwrap();
    assert_eq!(claims_of(t)["aud"], "reelnet");
    let (s, _) = h.call(reqwest::Method::GET, "/api/v1/me", t, None).await;
    assert_eq!(s, 200);
    let (s, e) = h.call(reqwest::Method::DELETE, "/api/v1/me", t, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("scope_required")),
        "{e}"
    );
    let sessions = h.api().oauth_sessions(&viewer.id).unwrap();
    assert!(sessions.iter().any(|s| s.client == "device:script"));
    // An admin's device token is no admin token either.
    let (_, d4) = h
        .form(
            "/oauth/device_authorization",
            None,
            &[("client_id", "reelnet-cli"), ("device_name", "admin tv")],
        )
        .await;
    h.api()
        .device_decide(d4["user_code"].as_str().unwrap(), &admin, true)
        .await
        .unwrap();
    let (s, tok) = h.poll(d4["device_code"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{tok}");
    let (s, e) = h
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/requests",
            tok["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("scope_required")),
        "{e}"
    );
    let (s, _) = h
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/requests",
            admin_login["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(s, 200);
    // Its session can be ended from the account page; its tokens stop at once.
    let sid = claims_of(t)["sid"].as_str().unwrap().to_owned();
    h.api().oauth_end_session(&viewer.id, &sid).await.unwrap();
    let (s, e) = h.call(reqwest::Method::GET, "/api/v1/me", t, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("session_ended")),
        "{e}"
    );
    assert!(h.api().oauth_end_session(&viewer.id, &sid).await.is_ok());
    assert!(h
        .api()
        .oauth_end_session(&viewer.id, &"00".repeat(16))
        .await
        .is_err());

    // Guessing user codes is limited per address (3 here): wrong codes count, and past the
    // limit even a right one waits.
    let guesser = reelnet_tracker::accounts::Source {
        addr: "198.51.100.9".into(),
        node: None,
    };
    for _ in 0..3 {
        let e = h.api().device_lookup("BBBB-BBBB", &guesser).unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
    }
    let e = h.api().device_lookup(code2, &guesser).unwrap_err();
    assert_eq!(e.status.as_u16(), 429);
    // Another address is not held back.
    assert!(h.api().device_lookup("BBBB-BBBB", &src).is_err());

    // Credentials never through a node's proxy.
    let body =
        serde_json::to_vec(&json!({"email": "viewer@example.org", "password": PASSWORD})).unwrap();
    let r = h
        .http
        .post(h.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .header(
            "reelnet-node-auth",
            a.auth("POST", "/api/v1/auth/login", &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (s, e) = common::split(r).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("credentials_at_tracker")),
        "{e}"
    );
    let r = h
        .http
        .post(h.url("/api/v1/auth/password-reset"))
        .header("content-type", "application/json")
        .header("reelnet-viewer-addr", "192.0.2.7")
        .body(r#"{"email":"viewer@example.org"}"#)
        .send()
        .await
        .unwrap();
    let (s, e) = common::split(r).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("credentials_at_tracker")),
        "{e}"
    );

    // Starting device authorizations is limited per address too (30 an hour; 4 so far).
    let mut statuses = Vec::new();
    for i in 0..27 {
        let name = format!("tv {i}");
        let (s, _) = h
            .form(
                "/oauth/device_authorization",
                None,
                &[("client_id", "reelnet-cli"), ("device_name", name.as_str())],
            )
            .await;
        statuses.push(s);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        26,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429));

    let m = h.metrics().await;
    assert_eq!(refused(&m, "device_code_guess"), 5, "{m}");
    assert_eq!(refused(&m, "credentials_through_proxy"), 2, "{m}");
}

#[tokio::test]
async fn revoking_a_node_closes_room_sockets_opened_through_it() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let h = Harness::start(10).await;
    let a = h.member(ORIGIN_A).await;
    let (login, viewer) = h.user("viewer@example.org", false).await;
    let net = login["access_token"].as_str().unwrap();
    let (s, room) = common::split(
        h.http
            .post(h.url("/api/v1/rooms"))
            .bearer_auth(net)
            .json(&json!({"movie_id": "tmdb-603"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{room}");
    let id = room["id"].as_str().unwrap();
    let (code, verifier) = h.code(&viewer, &a, ORIGIN_A).await;
    let (_, body) = h
        .redeem(Some(&a), &a.id, &code, ORIGIN_A, Some(&verifier))
        .await;
    let tok = body["access_token"].as_str().unwrap();

    let path = format!("/api/v1/rooms/{id}/ws");
    let open = |signed: bool| {
        let mut req = format!("ws://{}{path}?access_token={tok}", h.tracker.addr())
            .into_client_request()
            .unwrap();
        if signed {
            let auth = a.auth("GET", &format!("{path}?access_token={tok}"), b"");
            req.headers_mut()
                .insert("reelnet-node-auth", auth.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    // The node token without its node's signature: refused at the upgrade.
    assert!(open(false).await.is_err());
    let (mut ws, _) = open(true).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(
        first.to_text().unwrap().contains("\"welcome\"") || first.is_text(),
        "{first:?}"
    );

    h.api()
        .membership()
        .revoke(&Operator::Local, &a.id)
        .await
        .unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut saw_error = false;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(m) if m.is_text() && m.to_text().unwrap().contains("node_revoked") => {
                    saw_error = true
                }
                Ok(m) if m.is_close() => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        saw_error
    })
    .await
    .expect("the socket closes");
    assert!(closed);
}
