//! The tracker's HTTP routes (warp). Handlers parse, call [`Api`], and render; every error
//! is JSON `{ "error": code, "message": text }`. Bodies are read up to the configured limit
//! (413 beyond it) and parsed here, after authentication, so malformed JSON gets 400 and
//! changes nothing.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::api::Api;
use crate::error::ApiError;

/// Every (method, path) the tracker serves; `openapi.yaml` must describe exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/verify"),
    ("POST", "/api/v1/auth/resend-verification"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("GET", "/api/v1/me"),
    ("PATCH", "/api/v1/me"),
    ("DELETE", "/api/v1/me"),
    ("GET", "/api/v1/me/watchlist"),
    ("PUT", "/api/v1/me/watchlist/{movie_id}"),
    ("DELETE", "/api/v1/me/watchlist/{movie_id}"),
    ("GET", "/api/v1/me/progress/{movie_id}"),
    ("PUT", "/api/v1/me/progress/{movie_id}"),
    ("GET", "/api/v1/me/history"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
];

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// Renders an error as its JSON response.
pub fn error_response(err: &ApiError) -> Response {
    let mut res = warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: err.code,
            message: &err.message,
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

fn render<T: Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(v) => warp::reply::with_status(warp::reply::json(&v), status).into_response(),
        Err(e) => error_response(&e),
    }
}

fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

fn accepted(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => warp::reply::with_status(
            warp::reply::json(&serde_json::json!({ "status": "accepted" })),
            StatusCode::ACCEPTED,
        )
        .into_response(),
        Err(e) => error_response(&e),
    }
}

/// Parses a JSON body into `T`, or a 400 that says what is wrong.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
}

fn with_api(api: Api) -> impl Filter<Extract = (Api,), Error = Infallible> + Clone {
    warp::any().map(move || api.clone())
}

fn body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(limit).and(warp::body::bytes())
}

fn auth_header() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
}

/// The client's address: the socket peer, or `X-Forwarded-For` when the peer is a trusted
/// proxy (a node gateway).
fn client_addr(
    trusted: Vec<IpAddr>,
) -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    warp::addr::remote()
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .map(move |peer: Option<SocketAddr>, fwd: Option<String>| {
            let peer_ip = peer.map(|p| p.ip());
            match (peer_ip, fwd) {
                (Some(ip), Some(fwd)) if trusted.contains(&ip) => fwd
                    .rsplit(',')
                    .next()
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|| ip.to_string()),
                (Some(ip), _) => ip.to_string(),
                (None, _) => "unknown".to_owned(),
            }
        })
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Every tracker route, with JSON errors for everything that does not match.
pub fn routes(api: Api) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let limit = api.config().http.max_body_bytes;
    let v1 = || warp::path("api").and(warp::path("v1"));
    let a = || with_api(api.clone());

    // --- auth ---
    let register = v1()
        .and(warp::path!("auth" / "register"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.register(req).await,
                Err(e) => Err(e),
            };
            render(StatusCode::CREATED, res)
        });
    let verify = v1()
        .and(warp::path!("auth" / "verify"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.verify_email(req).await,
                Err(e) => Err(e),
            };
            render(StatusCode::OK, res)
        });
    let resend = v1()
        .and(warp::path!("auth" / "resend-verification"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.resend_verification(req).await,
                Err(e) => Err(e),
            };
            accepted(res)
        });
    let login = v1()
        .and(warp::path!("auth" / "login"))
        .and(warp::post())
        .and(a())
        .and(client_addr(api.config().http.trusted_proxies.clone()))
        .and(body(limit))
        .then(|api: Api, client: String, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.login(req, &client).await,
                Err(e) => Err(e),
            };
            render(StatusCode::OK, res)
        });
    let refresh = v1()
        .and(warp::path!("auth" / "refresh"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.refresh(req).await,
                Err(e) => Err(e),
            };
            render(StatusCode::OK, res)
        });
    let logout = v1()
        .and(warp::path!("auth" / "logout"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.logout(req).await,
                Err(e) => Err(e),
            };
            no_content(res)
        });
    let reset = v1()
        .and(warp::path!("auth" / "password-reset"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.password_reset(req).await,
                Err(e) => Err(e),
            };
            accepted(res)
        });
    let reset_confirm = v1()
        .and(warp::path!("auth" / "password-reset" / "confirm"))
        .and(warp::post())
        .and(a())
        .and(body(limit))
        .then(|api: Api, b: Bytes| async move {
            let res = match parse(&b) {
                Ok(req) => api.password_reset_confirm(req).await,
                Err(e) => Err(e),
            };
            no_content(res)
        });
    let auth_routes = register
        .or(verify)
        .unify()
        .or(resend)
        .unify()
        .or(login)
        .unify()
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
        .or(reset)
        .unify()
        .or(reset_confirm)
        .unify();

    // --- me ---
    let me_get = v1()
        .and(warp::path!("me"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref()).and_then(|c| api.me(&c)),
            )
        });
    let me_patch = v1()
        .and(warp::path!("me"))
        .and(warp::patch())
        .and(a())
        .and(auth_header())
        .and(body(limit))
        .then(|api: Api, h: Option<String>, b: Bytes| async move {
            let res = async {
                let claims = api.authenticate(h.as_deref())?;
                api.patch_me(&claims, parse(&b)?).await
            }
            .await;
            render(StatusCode::OK, res)
        });
    let me_delete = v1()
        .and(warp::path!("me"))
        .and(warp::delete())
        .and(a())
        .and(auth_header())
        .then(|api: Api, h: Option<String>| async move {
            let res = async {
                let claims = api.authenticate(h.as_deref())?;
                api.delete_me(&claims).await
            }
            .await;
            no_content(res)
        });
    let watchlist = v1()
        .and(warp::path!("me" / "watchlist"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.watchlist(&c)),
            )
        });
    let watch_put = v1()
        .and(warp::path!("me" / "watchlist" / String))
        .and(warp::put())
        .and(a())
        .and(auth_header())
        .then(|movie: String, api: Api, h: Option<String>| async move {
            let res = async {
                let claims = api.authenticate(h.as_deref())?;
                api.watchlist_add(&claims, &movie).await
            }
            .await;
            match res {
                Ok((item, true)) => render(StatusCode::CREATED, Ok(item)),
                Ok((item, false)) => render(StatusCode::OK, Ok(item)),
                Err(e) => error_response(&e),
            }
        });
    let watch_delete = v1()
        .and(warp::path!("me" / "watchlist" / String))
        .and(warp::delete())
        .and(a())
        .and(auth_header())
        .then(|movie: String, api: Api, h: Option<String>| async move {
            let res = async {
                let claims = api.authenticate(h.as_deref())?;
                api.watchlist_remove(&claims, &movie).await
            }
            .await;
            no_content(res)
        });
    let progress_get = v1()
        .and(warp::path!("me" / "progress" / String))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|movie: String, api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.get_progress(&c, &movie)),
            )
        });
    let progress_put = v1()
        .and(warp::path!("me" / "progress" / String))
        .and(warp::put())
        .and(a())
        .and(auth_header())
        .and(body(limit))
        .then(
            |movie: String, api: Api, h: Option<String>, b: Bytes| async move {
                let res = async {
                    let claims = api.authenticate(h.as_deref())?;
                    api.put_progress(&claims, &movie, parse(&b)?).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let history = v1()
        .and(warp::path!("me" / "history"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .and(warp::query::<HistoryQuery>())
        .map(|api: Api, h: Option<String>, q: HistoryQuery| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.history(&c, q.limit, q.cursor.as_deref())),
            )
        });
    let me_routes = me_get
        .or(me_patch)
        .unify()
        .or(me_delete)
        .unify()
        .or(watchlist)
        .unify()
        .or(watch_put)
        .unify()
        .or(watch_delete)
        .unify()
        .or(progress_get)
        .unify()
        .or(progress_put)
        .unify()
        .or(history)
        .unify();

    // --- keys and health ---
    let jwks = warp::path!(".well-known" / "jwks.json")
        .and(warp::get())
        .and(a())
        .map(|api: Api| {
            warp::reply::with_header(
                warp::reply::json(&api.jwks()),
                "cache-control",
                "public, max-age=60",
            )
            .into_response()
        });
    let health = warp::path!("healthz").and(warp::get()).map(|| {
        warp::reply::json(&serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response()
    });

    auth_routes
        .or(me_routes)
        .unify()
        .or(jwks)
        .unify()
        .or(health)
        .unify()
        .recover(|rej: Rejection| async move { Ok::<_, Infallible>(rejection_response(rej)) })
        .unify()
        .with(warp::trace::request())
}

fn rejection_response(rej: Rejection) -> Response {
    let err = if rej.is_not_found() {
        ApiError::not_found("no such route")
    } else if let Some(e) = rej.find::<ApiError>() {
        e.clone()
    } else if rej.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body is too large",
        )
    } else if rej.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header",
        )
    } else if rej.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
    } else if rej.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("invalid_query", "query string is not valid")
    } else if rej.find::<warp::reject::InvalidHeader>().is_some() {
        ApiError::bad_request("invalid_header", "a header is not valid")
    } else {
        ApiError::internal(format!("unhandled rejection: {rej:?}"))
    };
    let mut res = error_response(&err);
    if matches!(err.status.as_u16(), 411 | 413) {
        // The body was not read, so the connection cannot carry another request; say so
        // instead of letting a pooling client find out on its next request.
        res.headers_mut().insert(
            warp::http::header::CONNECTION,
            warp::http::HeaderValue::from_static("close"),
        );
    }
    res
}
