//! What every route module shares: the typed JSON body filter, rendering results and
//! errors as JSON, and the small filters for the API handle, the bearer header and the
//! client's address.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::api::Api;
use crate::error::ApiError;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    movie_id: Option<&'a str>,
}

/// Renders an error as its JSON response.
pub fn error_response(err: &ApiError) -> Response {
    let mut res = warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: err.code,
            message: &err.message,
            movie_id: err.movie_id.as_deref(),
        }),
        err.status,
    )
    .into_response();
    if let Some(secs) = err.retry_after {
        if let Ok(v) = secs.to_string().parse() {
            res.headers_mut().insert("retry-after", v);
        }
    }
    res
}

/// `value` as JSON with `status`, or the error.
pub(super) fn render<T: Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(v) => warp::reply::with_status(warp::reply::json(&v), status).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `201 Created` when the value is new, else `200 OK`.
pub(super) fn render_created<T: Serialize>(result: Result<(T, bool), ApiError>) -> Response {
    match result {
        Ok((v, true)) => render(StatusCode::CREATED, Ok(v)),
        Ok((v, false)) => render(StatusCode::OK, Ok(v)),
        Err(e) => error_response(&e),
    }
}

/// `204 No Content`, or the error.
pub(super) fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

/// `202 {"status":"accepted"}`, or the error.
pub(super) fn accepted(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => warp::reply::with_status(
            warp::reply::json(&serde_json::json!({ "status": "accepted" })),
            StatusCode::ACCEPTED,
        )
        .into_response(),
        Err(e) => error_response(&e),
    }
}

/// A JSON request body that should decode to `T`.
///
/// The filter ([`json`]) only reads the body, up to the route's limit (413 beyond it, 411
/// without a `Content-Length`); [`Json::decode`] parses it when the handler asks, after
/// authentication, so malformed JSON gets 400 only from a caller who may send it and never
/// changes anything.
pub(super) struct Json<T> {
    bytes: Bytes,
    kind: PhantomData<fn() -> T>,
}

impl<T> Json<T> {
    /// The same body, to be decoded as `U` (for a route whose body type depends on its
    /// path).
    pub fn of<U>(self) -> Json<U> {
        Json {
            bytes: self.bytes,
            kind: PhantomData,
        }
    }
}

impl<T> Json<T> {
    /// The body as received (node request signatures cover these bytes).
    pub fn raw(&self) -> &[u8] {
        &self.bytes
    }
}

impl<T: DeserializeOwned> Json<T> {
    /// The body as `T`, or a 400 `invalid_json` that says what is wrong.
    pub fn decode(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
    }

    /// Like [`Json::decode`], with `T::default()` for an empty body.
    pub fn decode_or_default(&self) -> Result<T, ApiError>
    where
        T: Default,
    {
        if self.bytes.is_empty() {
            Ok(T::default())
        } else {
            self.decode()
        }
    }
}

/// The raw body, at most `limit` bytes (the billing webhook verifies its signature over
/// exactly these bytes; every other route reads its body through [`json`]).
pub(super) fn body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(limit).and(warp::body::bytes())
}

/// A JSON body of type `T`, at most `limit` bytes (see [`Json`]).
pub(super) fn json<T>(limit: u64) -> impl Filter<Extract = (Json<T>,), Error = Rejection> + Clone {
    body(limit).map(|bytes| Json {
        bytes,
        kind: PhantomData,
    })
}

/// Like [`json`], but a request without `Content-Length` has an empty body instead of 411.
pub(super) fn optional_json<T>(
    limit: u64,
) -> impl Filter<Extract = (Json<T>,), Error = Rejection> + Clone {
    body(limit)
        .or(warp::header::optional::<String>("content-length").and_then(
            |h: Option<String>| async move {
                match h {
                    None => Ok(Bytes::new()),
                    Some(_) => Err(warp::reject::not_found()),
                }
            },
        ))
        .unify()
        .map(|bytes| Json {
            bytes,
            kind: PhantomData,
        })
}

/// A node's signed-request header and the request's method and path (with query), checked
/// with the body by [`crate::network::Membership::authenticate_node`] in the handler.
pub(super) fn node_auth() -> impl Filter<Extract = (NodeAuthParts,), Error = Rejection> + Clone {
    warp::header::optional::<String>(crate::requests::NODE_AUTH_HEADER)
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            |header: Option<String>,
             method: warp::http::Method,
             path: warp::path::FullPath,
             query: String| {
                let path = if query.is_empty() {
                    path.as_str().to_owned()
                } else {
                    format!("{}?{query}", path.as_str())
                };
                NodeAuthParts {
                    header,
                    method: method.as_str().to_owned(),
                    path,
                }
            },
        )
}

/// What [`node_auth`] extracts.
pub(super) struct NodeAuthParts {
    pub header: Option<String>,
    pub method: String,
    pub path: String,
}

impl NodeAuthParts {
    /// Checks the signature over this request and `body`; the signer's certificate.
    pub fn check(
        &self,
        api: &Api,
        body: &[u8],
        role: Option<reelnet_proto::membership::RoleName>,
    ) -> Result<reelnet_proto::membership::Certificate, ApiError> {
        let m = api.membership();
        match role {
            Some(role) => m.authenticate_node_role(
                self.header.as_deref(),
                &self.method,
                &self.path,
                body,
                role,
            ),
            None => m.authenticate_node(self.header.as_deref(), &self.method, &self.path, body),
        }
    }
}

/// `/api/v1/`.
pub(super) fn v1() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path("api").and(warp::path("v1"))
}

/// A clone of the API handle for each request.
pub(super) fn with_api(api: Api) -> impl Filter<Extract = (Api,), Error = Infallible> + Clone {
    warp::any().map(move || api.clone())
}

/// The `Authorization` header, checked by [`Api::authenticate`] in the handler.
pub(super) fn auth_header() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
}

/// The caller of a user route: the bearer token and, when the request came through a
/// member's proxy, the node's signature (checked in the handler with the body).
pub(super) fn caller() -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>(
            reelnet_proto::membership::NODE_AUTH_HEADER,
        ))
        .and(warp::header::optional::<String>(
            reelnet_proto::membership::VIEWER_ADDR_HEADER,
        ))
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            |authorization: Option<String>,
             node_auth: Option<String>,
             viewer: Option<String>,
             method: warp::http::Method,
             path: warp::path::FullPath,
             query: String| Caller {
                authorization,
                node_auth,
                viewer,
                method: method.as_str().to_owned(),
                path: path.as_str().to_owned(),
                query,
            },
        )
}

/// What [`caller`] extracts.
pub(super) struct Caller {
    pub authorization: Option<String>,
    node_auth: Option<String>,
    viewer: Option<String>,
    method: String,
    path: String,
    query: String,
}

impl Caller {
    /// Whether the request carries a node's signature or a viewer address (it came through
    /// a member's proxy).
    pub fn proxied(&self) -> bool {
        self.node_auth.is_some() || self.viewer.is_some()
    }

    /// The node the request came through: `None` without `Reelnet-Node-Auth`; a header
    /// that does not verify (over the method, the path — with the viewer address bound to
    /// it when one is given, else with or without the query — and `body`) is 401.
    pub fn via(&self, api: &Api, body: &[u8]) -> Result<Option<String>, ApiError> {
        let Some(header) = self.node_auth.as_deref() else {
            return Ok(None);
        };
        let m = api.membership();
        let checked = match self.viewer.as_deref() {
            Some(viewer) => m.authenticate_node(
                Some(header),
                &self.method,
                &reelnet_proto::membership::viewer_auth_path(&self.path, viewer.trim()),
                body,
            ),
            None if self.query.is_empty() => {
                m.authenticate_node(Some(header), &self.method, &self.path, body)
            }
            None => m
                .authenticate_node(
                    Some(header),
                    &self.method,
                    &format!("{}?{}", self.path, self.query),
                    body,
                )
                .or_else(|_| m.authenticate_node(Some(header), &self.method, &self.path, body)),
        };
        match checked {
            Ok(cert) => Ok(Some(cert.node.to_string())),
            Err(e) => Err(ApiError::unauthorized(e.code, e.message)),
        }
    }

    /// The token's claims under the audience rules of [`Api::authenticate_via`].
    pub fn authenticate(&self, api: &Api, body: &[u8]) -> Result<reelnet_proto::Claims, ApiError> {
        let via = self.via(api, body)?;
        api.authenticate_via(self.authorization.as_deref(), via.as_deref())
    }

    /// The token's claims for an account or network change ([`Api::authenticate_change`]):
    /// never through a node.
    pub fn authenticate_change(
        &self,
        api: &Api,
        scope: &str,
    ) -> Result<reelnet_proto::Claims, ApiError> {
        api.authenticate_change(self.authorization.as_deref(), self.proxied(), scope)
    }
}

/// Who sent a request, for the abuse limits: see [`SourceParts::resolve`].
pub(crate) fn source(
    trusted: Vec<IpAddr>,
) -> impl Filter<Extract = (SourceParts,), Error = Rejection> + Clone {
    reelnet_runtime::serve::remote()
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .and(warp::header::optional::<String>(
            reelnet_proto::membership::VIEWER_ADDR_HEADER,
        ))
        .and(warp::header::optional::<String>(
            reelnet_proto::membership::NODE_AUTH_HEADER,
        ))
        .and(warp::method())
        .and(warp::path::full())
        .map(
            move |peer: Option<SocketAddr>,
                  fwd: Option<String>,
                  viewer: Option<String>,
                  node_auth: Option<String>,
                  method: warp::http::Method,
                  path: warp::path::FullPath| {
                let peer_ip = peer.map(|p| p.ip());
                // An operator's own reverse proxy (configured) may name the client.
                let socket = match (peer_ip, fwd) {
                    (Some(ip), Some(fwd)) if trusted.contains(&ip) => fwd
                        .rsplit(',')
                        .next()
                        .and_then(|s| s.trim().parse::<IpAddr>().ok())
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| ip.to_string()),
                    (Some(ip), _) => ip.to_string(),
                    (None, _) => "unknown".to_owned(),
                };
                SourceParts {
                    socket,
                    viewer,
                    node_auth,
                    method: method.as_str().to_owned(),
                    path: path.as_str().to_owned(),
                }
            },
        )
}

/// What [`source`] extracts; resolved with the body once it has been read.
pub(crate) struct SourceParts {
    socket: String,
    viewer: Option<String>,
    node_auth: Option<String>,
    method: String,
    path: String,
}

impl SourceParts {
    /// The client: the viewer's address when a member node vouches for it (its signature
    /// over the request with the address bound to the path — CLARIFICATIONS: a forwarded
    /// address is believed only from an authenticated member), else the socket address.
    pub fn resolve(&self, api: &Api, body: &[u8]) -> crate::accounts::Source {
        let socket = || crate::accounts::Source {
            addr: self.socket.clone(),
            node: None,
        };
        let (Some(viewer), Some(header)) = (&self.viewer, &self.node_auth) else {
            return socket();
        };
        let Ok(addr) = viewer.trim().parse::<IpAddr>() else {
            return socket();
        };
        let signed = reelnet_proto::membership::viewer_auth_path(&self.path, viewer);
        match api
            .membership()
            .authenticate_node(Some(header), &self.method, &signed, body)
        {
            Ok(cert) => crate::accounts::Source {
                addr: addr.to_string(),
                node: Some(cert.node.to_string()),
            },
            Err(e) => {
                tracing::debug!(error = %e, "viewer address not vouched for; using the socket address");
                socket()
            }
        }
    }
}

/// The public URL of the node a request came through: `X-Forwarded-Proto`/`-Host` as the
/// gateway proxy sets them. Checked in the handler with [`ForwardedNode::believed`]: only
/// from a configured trusted proxy or a member node that signed the request.
pub(super) fn node_url(
    trusted: Vec<IpAddr>,
) -> impl Filter<Extract = (ForwardedNode,), Error = Rejection> + Clone {
    reelnet_runtime::serve::remote()
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(warp::header::optional::<String>("x-forwarded-host"))
        .map(
            move |peer: Option<SocketAddr>, proto: Option<String>, host: Option<String>| {
                ForwardedNode {
                    trusted_peer: peer.is_some_and(|p| trusted.contains(&p.ip())),
                    url: crate::requests::clean_node_url(proto.as_deref(), host.as_deref()),
                }
            },
        )
}

/// What [`node_url`] extracts.
pub(super) struct ForwardedNode {
    trusted_peer: bool,
    url: Option<String>,
}

impl ForwardedNode {
    /// The node's URL, when whoever sent it may be believed: a configured trusted proxy,
    /// or a member node vouching for the request (`vouched`: its signature verified).
    pub fn believed(self, vouched: bool) -> Option<String> {
        (self.trusted_peer || vouched).then_some(self.url).flatten()
    }
}

/// The operator's credentials on a request: an admin session or the operator token.
pub(super) struct OperatorParts {
    session: Option<String>,
    token: Option<String>,
    proxied: bool,
    /// The tracker browser session (the network console on the tracker's origin).
    browser: crate::pages::console::BrowserParts,
}

impl OperatorParts {
    /// Who the operator is, or 401/403. Never through a node's proxy (403
    /// `node_token_not_allowed`).
    pub fn check(&self, api: &Api) -> Result<crate::network::Operator, ApiError> {
        if self.proxied && self.token.is_none() {
            api.oauth_refused("node_token_on_account_route");
            return Err(ApiError::forbidden(
                "node_token_not_allowed",
                "network changes are made at the tracker, not through a node's site",
            ));
        }
        if self.session.is_none() && self.token.is_none() {
            // The network console the tracker serves: an admin's own tracker session.
            if let Some(email) = crate::pages::console::session_admin(api, &self.browser)? {
                return Ok(crate::network::Operator::Admin(email));
            }
        }
        api.operator(self.session.as_deref(), self.token.as_deref())
    }
}

/// Extracts [`OperatorParts`] (checked in the handler, so errors render as JSON).
pub(super) fn operator() -> impl Filter<Extract = (OperatorParts,), Error = warp::Rejection> + Clone
{
    auth_header()
        .and(warp::header::optional::<String>(
            crate::operator::OPERATOR_HEADER,
        ))
        .and(warp::header::optional::<String>(
            reelnet_proto::membership::NODE_AUTH_HEADER,
        ))
        .and(warp::header::optional::<String>(
            reelnet_proto::membership::VIEWER_ADDR_HEADER,
        ))
        .and(warp::header::optional::<String>("cookie"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .map(
            |session,
             token,
             node: Option<String>,
             viewer: Option<String>,
             cookie,
             origin,
             fetch_site| OperatorParts {
                session,
                token,
                proxied: node.is_some() || viewer.is_some(),
                browser: crate::pages::console::BrowserParts {
                    cookie,
                    origin,
                    fetch_site,
                },
            },
        )
}
