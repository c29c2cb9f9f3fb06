//! `tracker/openapi.yaml` against the tracker: the document lists exactly the routes in
//! `reelnet_tracker::http::ROUTES`, every documented operation is served by a real tracker
//! process and answers one of its documented statuses, and what is not documented is not
//! served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{access, split, Tracker};
use reqwest::Method;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "options", "head", "trace",
];
const MOVIE: &str = "tmdb-603";

/// One documented operation.
#[derive(Debug, Clone)]
struct Op {
    method: String,
    path: String,
    has_body: bool,
    secured: bool,
    /// Signed by a member node (`nodeAuth`), not a user's bearer token.
    node_auth: bool,
    /// Documented status codes (`default` and ranges like `4XX` are not used here).
    statuses: BTreeSet<u16>,
}

impl Op {
    fn key(&self) -> (String, String) {
        (self.method.clone(), self.path.clone())
    }
    fn url_path(&self) -> String {
        self.path.replace("{movie_id}", MOVIE)
    }
}

fn spec() -> Yaml {
    let text = std::fs::read_to_string(SPEC_PATH).expect("read openapi.yaml");
    serde_yaml::from_str(&text).expect("openapi.yaml is valid YAML")
}

fn str_key(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        other => panic!("unexpected mapping key {other:?}"),
    }
}

/// Every operation in the document.
fn operations(doc: &Yaml) -> Vec<Op> {
    let global_security = doc
        .get("security")
        .and_then(Yaml::as_sequence)
        .is_some_and(|s| !s.is_empty());
    let paths = doc["paths"].as_mapping().expect("paths is a mapping");
    let mut ops = Vec::new();
    for (path, item) in paths {
        let path = str_key(path);
        let item = item.as_mapping().expect("path item is a mapping");
        for (method, op) in item {
            let method = str_key(method);
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            let node_auth = op
                .get("security")
                .and_then(|s| s.as_sequence())
                .is_some_and(|s| s.iter().any(|r| r.get("nodeAuth").is_some()));
            let secured = !node_auth
                && match op.get("security") {
                    Some(s) => s.as_sequence().is_some_and(|s| !s.is_empty()),
                    None => global_security,
                };
            let responses = op["responses"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            let statuses = responses
                .keys()
                .filter_map(|k| str_key(k).parse::<u16>().ok())
                .collect();
            ops.push(Op {
                method: method.to_uppercase(),
                path: path.clone(),
                has_body: op.get("requestBody").is_some(),
                secured,
                node_auth,
                statuses,
            });
        }
    }
    ops
}

/// Every `$ref` string anywhere under `v`.
fn refs(v: &Yaml, out: &mut Vec<String>) {
    match v {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("$ref") {
                    if let Some(r) = v.as_str() {
                        out.push(r.to_owned());
                    }
                } else {
                    refs(v, out);
                }
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn document_is_well_formed() {
    let doc = spec();
    assert_eq!(doc["openapi"].as_str(), Some("3.0.3"));
    assert_eq!(doc["info"]["title"].as_str(), Some("reelnet tracker API"));
    assert_eq!(doc["info"]["version"].as_str(), Some("0.1.0"));
    let bearer = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(bearer["type"].as_str(), Some("http"));
    assert_eq!(bearer["scheme"].as_str(), Some("bearer"));
    assert_eq!(bearer["bearerFormat"].as_str(), Some("JWT"));

    // Every local `$ref` resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let pointer = r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        let mut node = &doc;
        for part in pointer.split('/') {
            node = node
                .get(part)
                .unwrap_or_else(|| panic!("$ref {r} does not resolve (at {part:?})"));
        }
    }

    // Every operation documents a success status; every path template names its params.
    for op in operations(&doc) {
        assert!(
            // 101: a WebSocket route succeeds by switching protocols.
            op.statuses
                .iter()
                .any(|s| (200..300).contains(s) || *s == 101),
            "{} {} documents no 2xx (or 101) response",
            op.method,
            op.path
        );
        if op.path.contains("{movie_id}") {
            let param = &doc["components"]["parameters"]["MovieId"];
            assert_eq!(param["name"].as_str(), Some("movie_id"));
            assert_eq!(param["in"].as_str(), Some("path"));
            assert_eq!(
                param["schema"]["pattern"].as_str(),
                Some("^[a-z0-9][a-z0-9-]{0,63}$")
            );
        }
    }
}

#[test]
fn documented_routes_equal_served_routes() {
    let doc = spec();
    let documented: BTreeSet<(String, String)> = operations(&doc).iter().map(Op::key).collect();
    let served: BTreeSet<(String, String)> = reelnet_tracker::http::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        served.len(),
        reelnet_tracker::http::ROUTES.len(),
        "ROUTES lists a route twice"
    );
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    let mut diff = String::new();
    for (m, p) in &missing {
        diff.push_str(&format!("  served but not documented: {m} {p}\n"));
    }
    for (m, p) in &extra {
        diff.push_str(&format!("  documented but not served: {m} {p}\n"));
    }
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.yaml and http::ROUTES differ:\n{diff}"
    );
}

/// Sends `op` and returns (status, body).
async fn send(t: &Tracker, op: &Op, token: Option<&str>) -> (u16, Value) {
    let method = Method::from_bytes(op.method.as_bytes()).unwrap();
    let mut req = t.http.request(method, t.url(&op.url_path()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if op.has_body {
        req = req.json(&json!({}));
    }
    split(req.send().await.unwrap()).await
}

fn is_no_route(status: u16, body: &Value) -> bool {
    (status == 404 && body["message"] == "no such route") || status == 405
}

#[tokio::test]
async fn every_documented_operation_is_served_as_documented() {
    let doc = spec();
    let mut ops = operations(&doc);
    // Deleting the account would break every later secured call: do it last.
    ops.sort_by_key(|op| op.method == "DELETE" && op.path == "/api/v1/me");
    assert_eq!(ops.len(), reelnet_tracker::http::ROUTES.len());

    let t = Tracker::start().await;
    let login = t.user("openapi@example.org", "a long password").await;
    let token = access(&login);

    let mut failures = Vec::new();

    // Without a token, secured operations answer a documented 401; the others are open.
    for op in &ops {
        let (status, body) = send(&t, op, None).await;
        if is_no_route(status, &body) {
            failures.push(format!(
                "{} {}: not served ({status} {body})",
                op.method, op.path
            ));
        } else if op.node_auth {
            if status != 401 || !op.statuses.contains(&401) || body["error"] != "node_auth_required"
            {
                failures.push(format!(
                    "{} {}: unsigned, expected a documented 401 node_auth_required, got {status} {body}",
                    op.method, op.path
                ));
            }
        } else if op.secured {
            if status != 401 || !op.statuses.contains(&401) || body["error"] != "missing_token" {
                failures.push(format!(
                    "{} {}: without a token expected a documented 401 missing_token, got {status} {body}",
                    op.method, op.path
                ));
            }
        } else if status == 401 {
            failures.push(format!(
                "{} {}: documented without security but answers 401 {body}",
                op.method, op.path
            ));
        }
    }

    // With a valid token (for secured operations) and `{}` as the body where one is taken.
    let mut seen = BTreeMap::new();
    for op in &ops {
        let (status, body) = send(&t, op, op.secured.then_some(token.as_str())).await;
        seen.insert(op.key(), status);
        let what = format!("{} {} -> {status} {body}", op.method, op.path);
        if is_no_route(status, &body) {
            failures.push(format!("not served: {what}"));
            continue;
        }
        if !op.statuses.contains(&status) {
            failures.push(format!(
                "undocumented status (documented: {:?}): {what}",
                op.statuses
            ));
        }
        if status >= 400 && !body["error"].is_string() {
            failures.push(format!("error without an `error` code: {what}"));
        }
        if status == 204 && !body.is_null() {
            failures.push(format!("204 with a body: {what}"));
        }
        // `/metrics` is Prometheus text; everything else answers JSON.
        if (200..300).contains(&status)
            && status != 204
            && op.path != "/metrics"
            && !(body.is_object() || body.is_array())
        {
            failures.push(format!("success without a JSON body: {what}"));
        }
    }

    eprintln!("statuses with a token: {seen:#?}");
    assert!(
        failures.is_empty(),
        "{} problem(s):\n  {}\nstatuses seen: {seen:#?}",
        failures.len(),
        failures.join("\n  ")
    );

    // The last call deleted the account: its token no longer works.
    let (s, b) = t.call(Method::GET, "/api/v1/me", &token, None).await;
    assert_eq!(s, 401, "{b}");
}

#[tokio::test]
async fn undocumented_routes_are_not_served() {
    let doc = spec();
    let ops = operations(&doc);
    let t = Tracker::start().await;
    let login = t.user("nope@example.org", "a long password").await;
    let token = access(&login);

    let mut failures = Vec::new();
    let check =
        |failures: &mut Vec<String>, method: &str, path: &str, status: u16, body: &Value| {
            let ok = matches!(status, 404 | 405) && body["error"].is_string();
            if !ok {
                failures.push(format!("{method} {path} -> {status} {body}"));
            }
        };

    // Paths that do not exist at all: 404 "no such route".
    for path in [
        "/api/v1/nope",
        "/api/v1",
        "/api/v2/me",
        "/api/v1/me/watchlist/tmdb-603/extra",
        "/api/v1/me/progress",
        "/api/v1/auth",
        "/.well-known/openid-configuration",
    ] {
        let (s, b) = t.call(Method::GET, path, &token, None).await;
        if s == 404 && b["message"] != "no such route" {
            failures.push(format!("GET {path}: 404 but not `no such route`: {b}"));
        }
        check(&mut failures, "GET", path, s, &b);
    }

    // Documented paths with methods that are not documented for them: 405 (or 404).
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for op in &ops {
        by_path
            .entry(op.url_path())
            .or_default()
            .insert(op.method.clone());
    }
    for (path, methods) in &by_path {
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if methods.contains(m) {
                continue;
            }
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let (s, b) = t.call(method, path, &token, Some(json!({}))).await;
            check(&mut failures, m, path, s, &b);
        }
    }

    // The two named in the brief, exactly.
    let (s, b) = t.call(Method::GET, "/api/v1/nope", &token, None).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")), "{b}");
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/me/watchlist",
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (405, Some("method_not_allowed")),
        "{b}"
    );

    assert!(
        failures.is_empty(),
        "undocumented routes answered something else:\n  {}",
        failures.join("\n  ")
    );

    // And the account is untouched by all of that.
    let (s, b) = t.call(Method::GET, "/api/v1/me", &token, None).await;
    assert_eq!(s, 200, "{b}");
}

/// Follows a local `$ref` (one level at a time) to the node it names.
fn deref<'a>(doc: &'a Yaml, mut node: &'a Yaml) -> &'a Yaml {
    while let Some(r) = node.get("$ref").and_then(Yaml::as_str) {
        let pointer = r.strip_prefix("#/").expect("local $ref");
        node = pointer.split('/').fold(doc, |n, part| &n[part]);
    }
    node
}

/// Checks `value` against an OpenAPI 3.0 schema (the subset openapi.yaml uses: type,
/// nullable, enum, required, properties, additionalProperties: false, items, pattern of
/// `^[a-z0-9][a-z0-9-]{0,63}$`); pushes what does not fit onto `errs`.
fn conform(doc: &Yaml, schema: &Yaml, value: &Value, at: &str, errs: &mut Vec<String>) {
    let schema = deref(doc, schema);
    if value.is_null() {
        if schema["nullable"].as_bool() != Some(true) {
            errs.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(choices) = schema.get("enum").and_then(Yaml::as_sequence) {
        let ok = choices.iter().any(|c| match (c, value) {
            (Yaml::String(a), Value::String(b)) => a == b,
            _ => false,
        });
        if !ok {
            errs.push(format!("{at}: {value} is not one of {choices:?}"));
        }
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let fits = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !fits {
        errs.push(format!("{at}: expected {ty}, got {value}"));
        return;
    }
    if schema["pattern"].as_str() == Some("^[a-z0-9][a-z0-9-]{0,63}$") {
        let s = value.as_str().unwrap_or_default();
        let ok = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            errs.push(format!("{at}: {s:?} does not match the movie id pattern"));
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema.get("properties").and_then(Yaml::as_mapping);
        for req in schema
            .get("required")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = req.as_str().unwrap();
            if !obj.contains_key(name) {
                errs.push(format!("{at}: required `{name}` is missing"));
            }
        }
        for (name, v) in obj {
            match props.and_then(|p| p.get(name.as_str())) {
                Some(sub) => conform(doc, sub, v, &format!("{at}.{name}"), errs),
                // Response schemas list every field the tracker sends.
                None => errs.push(format!("{at}: `{name}` is not in the schema")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            conform(doc, items, v, &format!("{at}[{i}]"), errs);
        }
    }
}

/// Checks a real answer against the document: the status is documented for the operation
/// and the body fits the documented JSON schema (or is empty when none is documented).
fn check_answer(
    doc: &Yaml,
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
    errs: &mut Vec<String>,
) {
    let op = &doc["paths"][path][method.to_lowercase().as_str()];
    assert!(op.is_mapping(), "{method} {path} is not documented");
    let Some(resp) = op["responses"]
        .as_mapping()
        .and_then(|r| r.get(status.to_string().as_str()))
    else {
        errs.push(format!(
            "{method} {path}: status {status} is not documented ({body})"
        ));
        return;
    };
    let resp = deref(doc, resp);
    let at = format!("{method} {path} {status}");
    match resp.get("content") {
        Some(content) => conform(doc, &content["application/json"]["schema"], body, &at, errs),
        None if !body.is_null() => {
            errs.push(format!("{at}: documented without a body, got {body}"))
        }
        None => {}
    }
}

#[tokio::test]
async fn answers_fit_the_documented_schemas() {
    let doc = spec();
    // No grace for a second use of a refresh token: the reuse below is refused.
    let t = Tracker::start_with("[oauth]\nrefresh_grace_secs = 0\n").await;
    let mut errs = Vec::new();
    let email = "schemas@example.org";
    let password = "a long password";

    // Register, verify, resend, login, refresh (and reuse), logout, reset.
    let (s, b) = t
        .post(
            "/api/v1/auth/register",
            json!({"email": email, "password": password, "display_name": "Schemas"}),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/register", s, &b, &mut errs);
    assert_eq!(s, 202, "{b}");
    let (s, b) = t
        .post(
            "/api/v1/auth/register",
            json!({"email": email, "password": password, "display_name": "Again"}),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/register", s, &b, &mut errs);
    assert_eq!(s, 202, "a taken address answers the same: {b}");
    let link = t
        .smtp()
        .wait_for_link(email, "Confirm your reelnet account", "/verify?token=")
        .await;
    let token = link.split("token=").nth(1).unwrap();
    let (s, b) = t
        .post("/api/v1/auth/verify", json!({ "token": token }))
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/verify", s, &b, &mut errs);
    assert_eq!(s, 200, "{b}");
    let (s, b) = t
        .post("/api/v1/auth/verify", json!({ "token": token }))
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/verify", s, &b, &mut errs);
    assert_eq!(s, 400, "{b}");
    let (s, b) = t
        .post(
            "/api/v1/auth/resend-verification",
            json!({ "email": email }),
        )
        .await;
    check_answer(
        &doc,
        "POST",
        "/api/v1/auth/resend-verification",
        s,
        &b,
        &mut errs,
    );
    assert_eq!(s, 202, "{b}");

    let (s, login) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/login", s, &login, &mut errs);
    assert_eq!(s, 200, "{login}");
    let (s, b) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "wrong password"}),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/login", s, &b, &mut errs);
    assert_eq!(s, 401, "{b}");
    let at = access(&login);
    let first_refresh = login["refresh_token"].as_str().unwrap();
    let (s, rotated) = t
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": first_refresh }),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/refresh", s, &rotated, &mut errs);
    assert_eq!(s, 200, "{rotated}");
    let (s, b) = t
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": first_refresh }),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/refresh", s, &b, &mut errs);
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("refresh_reused")),
        "{b}"
    );
    let (s, b) = t
        .post(
            "/api/v1/auth/logout",
            json!({ "refresh_token": first_refresh }),
        )
        .await;
    check_answer(&doc, "POST", "/api/v1/auth/logout", s, &b, &mut errs);
    assert_eq!(s, 204, "{b}");
    // The reuse ended that session, and its access token with it: sign in again.
    let (s, b) = t.call(Method::GET, "/api/v1/me", &at, None).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("session_ended")),
        "{b}"
    );
    let (s, login) = t
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(s, 200, "{login}");
    let at = access(&login);
    let (s, b) = t
        .post(
            "/api/v1/auth/password-reset",
            json!({ "email": "nobody@example.org" }),
        )
        .await;
    check_answer(
        &doc,
        "POST",
        "/api/v1/auth/password-reset",
        s,
        &b,
        &mut errs,
    );
    assert_eq!(s, 202, "{b}");
    let (s, b) = t
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": "made-up", "password": "another long password"}),
        )
        .await;
    check_answer(
        &doc,
        "POST",
        "/api/v1/auth/password-reset/confirm",
        s,
        &b,
        &mut errs,
    );
    assert_eq!(s, 400, "{b}");

    // Profile.
    let (s, b) = t.call(Method::GET, "/api/v1/me", &at, None).await;
    check_answer(&doc, "GET", "/api/v1/me", s, &b, &mut errs);
    let (s, b) = t
        .call(
            Method::PATCH,
            "/api/v1/me",
            &at,
            Some(json!({"display_name": "Renamed"})),
        )
        .await;
    check_answer(&doc, "PATCH", "/api/v1/me", s, &b, &mut errs);
    assert_eq!(
        (s, b["display_name"].as_str()),
        (200, Some("Renamed")),
        "{b}"
    );
    let (s, b) = t.call(Method::GET, "/api/v1/me", "not-a-jwt", None).await;
    check_answer(&doc, "GET", "/api/v1/me", s, &b, &mut errs);
    assert_eq!(s, 401, "{b}");

    // Watch later.
    let wl = "/api/v1/me/watchlist/{movie_id}";
    for expected in [201, 200] {
        let (s, b) = t
            .call(Method::PUT, "/api/v1/me/watchlist/tmdb-603", &at, None)
            .await;
        check_answer(&doc, "PUT", wl, s, &b, &mut errs);
        assert_eq!(s, expected, "{b}");
    }
    let (s, b) = t
        .call(Method::PUT, "/api/v1/me/watchlist/Not_Valid", &at, None)
        .await;
    check_answer(&doc, "PUT", wl, s, &b, &mut errs);
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_movie_id")),
        "{b}"
    );
    let (s, b) = t.call(Method::GET, "/api/v1/me/watchlist", &at, None).await;
    check_answer(&doc, "GET", "/api/v1/me/watchlist", s, &b, &mut errs);
    assert_eq!(b.as_array().map(Vec::len), Some(1), "{b}");
    let (s, b) = t
        .call(Method::DELETE, "/api/v1/me/watchlist/tmdb-603", &at, None)
        .await;
    check_answer(&doc, "DELETE", wl, s, &b, &mut errs);
    assert_eq!(s, 204, "{b}");

    // Progress and history.
    let pr = "/api/v1/me/progress/{movie_id}";
    let (s, b) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-603", &at, None)
        .await;
    check_answer(&doc, "GET", pr, s, &b, &mut errs);
    assert_eq!(s, 404, "{b}");
    let (s, b) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-603",
            &at,
            Some(json!({"position_s": 1234.5, "duration_s": 7200.0, "timestamp_ms": 2_000})),
        )
        .await;
    check_answer(&doc, "PUT", pr, s, &b, &mut errs);
    assert_eq!((s, b["applied"].as_bool()), (200, Some(true)), "{b}");
    let (s, b) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-603",
            &at,
            Some(json!({"position_s": 1.0, "duration_s": 7200.0, "timestamp_ms": 1_000})),
        )
        .await;
    check_answer(&doc, "PUT", pr, s, &b, &mut errs);
    assert_eq!((s, b["applied"].as_bool()), (200, Some(false)), "{b}");
    assert_eq!(b["resume_at"], 1234.5, "{b}");
    let (s, b) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-604",
            &at,
            Some(json!({"position_s": 7190.0, "duration_s": 7200.0})),
        )
        .await;
    check_answer(&doc, "PUT", pr, s, &b, &mut errs);
    assert_eq!((s, b["finished"].as_bool()), (200, Some(true)), "{b}");
    assert!(b["resume_at"].is_null(), "{b}");
    let (s, b) = t
        .call(
            Method::PUT,
            "/api/v1/me/progress/tmdb-605",
            &at,
            Some(json!({"position_s": -1.0, "duration_s": 7200.0})),
        )
        .await;
    check_answer(&doc, "PUT", pr, s, &b, &mut errs);
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_progress")),
        "{b}"
    );
    let (s, b) = t
        .call(Method::GET, "/api/v1/me/progress/tmdb-603", &at, None)
        .await;
    check_answer(&doc, "GET", pr, s, &b, &mut errs);
    assert_eq!(s, 200, "{b}");

    let hi = "/api/v1/me/history";
    let (s, page) = t
        .call(Method::GET, "/api/v1/me/history?limit=1", &at, None)
        .await;
    check_answer(&doc, "GET", hi, s, &page, &mut errs);
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        page["items"][0]["movie_id"], "tmdb-604",
        "newest first: {page}"
    );
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (s, page) = t
        .call(
            Method::GET,
            &format!("{hi}?limit=1&cursor={cursor}"),
            &at,
            None,
        )
        .await;
    check_answer(&doc, "GET", hi, s, &page, &mut errs);
    assert_eq!(page["items"][0]["movie_id"], "tmdb-603", "{page}");
    assert!(page["next_cursor"].is_null(), "last page: {page}");
    for bad in ["limit=abc", "cursor=zz"] {
        let (s, b) = t.call(Method::GET, &format!("{hi}?{bad}"), &at, None).await;
        check_answer(&doc, "GET", hi, s, &b, &mut errs);
        assert_eq!(s, 400, "{bad}: {b}");
    }

    // Playback preferences.
    let pf = "/api/v1/me/preferences";
    let (s, b) = t.call(Method::GET, pf, &at, None).await;
    check_answer(&doc, "GET", pf, s, &b, &mut errs);
    assert_eq!(s, 200, "{b}");
    let (s, b) = t
        .call(
            Method::PUT,
            pf,
            &at,
            Some(json!({"audio_language": "de", "subtitle_language": "fr",
                "subtitles": "forced_only", "subtitle_size": "xl", "subtitle_background": false})),
        )
        .await;
    check_answer(&doc, "PUT", pf, s, &b, &mut errs);
    assert_eq!(s, 200, "{b}");
    let (s, b) = t
        .call(Method::PUT, pf, &at, Some(json!({"audio_language": "d e"})))
        .await;
    check_answer(&doc, "PUT", pf, s, &b, &mut errs);
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_preferences")),
        "{b}"
    );

    // Keys and health.
    let (s, b) = split(
        t.http
            .get(t.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check_answer(&doc, "GET", "/.well-known/jwks.json", s, &b, &mut errs);
    assert!(!b["keys"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = split(t.http.get(t.url("/healthz")).send().await.unwrap()).await;
    check_answer(&doc, "GET", "/healthz", s, &b, &mut errs);

    // Too large a body. On its own connection: the tracker answers 413 without reading the
    // body and then closes the connection without saying `Connection: close`, so a pooled
    // connection would fail the next request (IncompleteMessage).
    let big = "x".repeat(128 * 1024);
    let r = reqwest::Client::new()
        .post(t.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": big}))
        .send()
        .await
        .unwrap();
    let (s, b) = split(r).await;
    check_answer(&doc, "POST", "/api/v1/auth/login", s, &b, &mut errs);
    assert_eq!(
        (s, b["error"].as_str()),
        (413, Some("body_too_large")),
        "{b}"
    );

    // Deleting the account, last.
    let (s, b) = t.call(Method::DELETE, "/api/v1/me", &at, None).await;
    check_answer(&doc, "DELETE", "/api/v1/me", s, &b, &mut errs);
    assert_eq!(s, 204, "{b}");
    let (s, b) = t.call(Method::GET, "/api/v1/me", &at, None).await;
    check_answer(&doc, "GET", "/api/v1/me", s, &b, &mut errs);
    assert_eq!(s, 401, "{b}");

    assert!(
        errs.is_empty(),
        "answers that do not fit openapi.yaml:\n  {}",
        errs.join("\n  ")
    );
}

#[tokio::test]
async fn rate_limited_login_is_documented_with_retry_after() {
    let doc = spec();
    let t = Tracker::start_with("[auth]\nmax_failures_per_account = 2\n").await;
    let mut errs = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let r = t
            .http
            .post(t.url("/api/v1/auth/login"))
            .json(&json!({"email": "limited@example.org", "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        let retry_after = r.headers().get("retry-after").cloned();
        let (s, b) = split(r).await;
        check_answer(&doc, "POST", "/api/v1/auth/login", s, &b, &mut errs);
        if s == 429 {
            last = Some((b, retry_after));
            break;
        }
    }
    let (b, retry_after) = last.expect("login is rate limited after repeated failures");
    assert_eq!(b["error"], "rate_limited", "{b}");
    let secs: u64 = retry_after
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs > 0);
    let documented = &doc["components"]["responses"]["RateLimited"]["headers"]["Retry-After"];
    assert!(
        documented.is_mapping(),
        "openapi.yaml documents Retry-After on 429"
    );
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
