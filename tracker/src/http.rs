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
    ("POST", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{room_id}"),
    ("GET", "/api/v1/rooms/{room_id}/ws"),
    ("GET", "/api/v1/me/subscription"),
    ("GET", "/api/v1/me/notifications"),
    ("POST", "/api/v1/billing/webhook"),
    ("POST", "/api/v1/requests"),
    ("GET", "/api/v1/requests"),
    ("POST", "/api/v1/requests/claim"),
    ("POST", "/api/v1/requests/{id}/progress"),
    ("POST", "/api/v1/requests/{id}/done"),
    ("POST", "/api/v1/requests/{id}/failed"),
    ("GET", "/api/v1/admin/requests"),
    ("POST", "/api/v1/admin/requests/{id}/approve"),
    ("POST", "/api/v1/admin/requests/{id}/reject"),
    ("POST", "/api/v1/admin/requests/{id}/retry"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
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
pub fn routes(
    api: Api,
    rooms: crate::rooms::Rooms,
    cancel: tokio_util::sync::CancellationToken,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
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

    // --- rooms ---
    let room_routes = room_routes(api.clone(), rooms, cancel, limit);

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

    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    let metrics_route = {
        let (api, metrics) = (api.clone(), metrics.clone());
        warp::path!("metrics").and(warp::get()).map(move || {
            let text = metrics.render(api.metrics_gauges());
            warp::reply::with_header(text, "content-type", reelnet_runtime::metrics::CONTENT_TYPE)
                .into_response()
        })
    };
    let count = warp::log::custom(move |info| {
        metrics.observe(
            info.method().as_str(),
            info.path(),
            info.status().as_u16(),
            info.elapsed(),
        )
    });

    auth_routes
        .or(me_routes)
        .unify()
        .or(room_routes)
        .unify()
        .or(request_routes(api.clone(), limit))
        .unify()
        .or(jwks)
        .unify()
        .or(health)
        .unify()
        .or(metrics_route)
        .unify()
        .recover(|rej: Rejection| async move { Ok::<_, Infallible>(rejection_response(rej)) })
        .unify()
        .with(count)
        .with(warp::trace::request())
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    access_token: Option<String>,
}

/// `POST /api/v1/rooms`, `GET /api/v1/rooms/{id}` and the room WebSocket. The WebSocket takes
/// its token from `?access_token=` (browsers cannot set headers on a WebSocket), from the
/// `Authorization` header, or from a first `auth` frame.
fn room_routes(
    api: Api,
    rooms: crate::rooms::Rooms,
    cancel: tokio_util::sync::CancellationToken,
    limit: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let v1 = || warp::path("api").and(warp::path("v1"));
    let a = || with_api(api.clone());
    let r = {
        let rooms = rooms.clone();
        move || {
            let rooms = rooms.clone();
            warp::any().map(move || rooms.clone())
        }
    };
    let create = v1()
        .and(warp::path!("rooms"))
        .and(warp::post())
        .and(a())
        .and(r())
        .and(auth_header())
        .and(body(limit))
        .then(
            |api: Api, rooms: crate::rooms::Rooms, h: Option<String>, b: Bytes| async move {
                let res = async {
                    let claims = api.authenticate(h.as_deref())?;
                    rooms.create(&api, &claims, parse(&b)?).await
                }
                .await;
                render(StatusCode::CREATED, res)
            },
        );
    let get = v1()
        .and(warp::path!("rooms" / String))
        .and(warp::get())
        .and(a())
        .and(r())
        .and(auth_header())
        .then(
            |id: String, api: Api, rooms: crate::rooms::Rooms, h: Option<String>| async move {
                let res = async {
                    api.authenticate(h.as_deref())?;
                    rooms.get(&id).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let maybe_ws = warp::ws().map(Some).or(warp::any().map(|| None)).unify();
    let ws = v1()
        .and(warp::path!("rooms" / String / "ws"))
        .and(warp::get())
        .and(a())
        .and(r())
        .and(auth_header())
        .and(warp::query::<WsQuery>())
        .and(maybe_ws)
        .and(warp::any().map(move || cancel.clone()))
        .then(
            |id: String,
             api: Api,
             rooms: crate::rooms::Rooms,
             h: Option<String>,
             q: WsQuery,
             ws: Option<warp::ws::Ws>,
             cancel: tokio_util::sync::CancellationToken| async move {
                let header = q.access_token.map(|t| format!("Bearer {t}")).or(h);
                let claims = match header {
                    Some(h) => match api.authenticate(Some(&h)) {
                        Ok(c) => Some(c),
                        Err(e) => return error_response(&e),
                    },
                    None => None,
                };
                let Some(ws) = ws else {
                    return match claims {
                        None => error_response(&ApiError::unauthorized(
                            "missing_token",
                            "sign in first (no access_token)",
                        )),
                        Some(_) => error_response(&ApiError::bad_request(
                            "websocket_required",
                            "this route speaks WebSocket only",
                        )),
                    };
                };
                if let Err(e) = rooms.get(&id).await {
                    return error_response(&e);
                }
                // Frames above the room limit get an error frame; far larger ones end the
                // connection in the WebSocket layer.
                let max = rooms.config().max_frame_bytes.saturating_mul(16).max(65536);
                ws.max_message_size(max)
                    .max_frame_size(max)
                    .on_upgrade(move |socket| rooms.serve(api, id, claims, socket, cancel))
                    .into_response()
            },
        );
    create.or(get).unify().or(ws).unify()
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

/// The public URL of the node a request came through: `X-Forwarded-Proto`/`-Host` as the
/// gateway proxy sets them, believed only from a trusted proxy.
fn node_url(
    trusted: Vec<IpAddr>,
) -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::addr::remote()
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(warp::header::optional::<String>("x-forwarded-host"))
        .map(
            move |peer: Option<SocketAddr>, proto: Option<String>, host: Option<String>| {
                let trusted_peer = peer.is_some_and(|p| trusted.contains(&p.ip()));
                if !trusted_peer {
                    return None;
                }
                crate::requests::clean_node_url(proto.as_deref(), host.as_deref())
            },
        )
}

/// Subscriptions, the billing webhook, movie requests (user, node and admin routes) and
/// notifications.
fn request_routes(api: Api, limit: u64) -> warp::filters::BoxedFilter<(Response,)> {
    use crate::requests::{AdminAction, NODE_KEY_HEADER};
    let v1 = || warp::path("api").and(warp::path("v1"));
    let a = || with_api(api.clone());
    // A request may carry a .torrent (base64), so its body limit is larger.
    let request_limit = limit.max(1 << 20);
    let node_key = || warp::header::optional::<String>(NODE_KEY_HEADER);

    let subscription = v1()
        .and(warp::path!("me" / "subscription"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.subscription(&c)),
            )
        });
    let notifications = v1()
        .and(warp::path!("me" / "notifications"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.notifications(&c)),
            )
        });
    let webhook = v1()
        .and(warp::path!("billing" / "webhook"))
        .and(warp::post())
        .and(a())
        .and(warp::header::optional::<String>(
            crate::billing::SIGNATURE_HEADER,
        ))
        .and(body(limit))
        .then(|api: Api, sig: Option<String>, b: Bytes| async move {
            render(StatusCode::OK, api.billing_webhook(sig.as_deref(), b).await)
        });
    let create = v1()
        .and(warp::path!("requests"))
        .and(warp::post())
        .and(a())
        .and(auth_header())
        .and(node_url(api.config().http.trusted_proxies.clone()))
        .and(body(request_limit))
        .then(
            |api: Api, h: Option<String>, node: Option<String>, b: Bytes| async move {
                let res = async {
                    let claims = api.authenticate(h.as_deref())?;
                    api.create_request(&claims, parse(&b)?, node).await
                }
                .await;
                match res {
                    Ok((v, true)) => render(StatusCode::CREATED, Ok(v)),
                    Ok((v, false)) => render(StatusCode::OK, Ok(v)),
                    Err(e) => error_response(&e),
                }
            },
        );
    let mine = v1()
        .and(warp::path!("requests"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.my_requests(&c)),
            )
        });
    let claim = v1()
        .and(warp::path!("requests" / "claim"))
        .and(warp::post())
        .and(a())
        .and(node_key())
        .and(body(limit))
        .then(|api: Api, k: Option<String>, b: Bytes| async move {
            let res = async {
                api.authenticate_node(k.as_deref())?;
                api.claim_request(parse(&b)?).await
            }
            .await;
            match res {
                Ok(Some(c)) => render(StatusCode::OK, Ok(c)),
                Ok(None) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => error_response(&e),
            }
        });
    let report = v1()
        .and(warp::path!("requests" / String / String))
        .and(warp::post())
        .and(a())
        .and(node_key())
        .and(body(limit))
        .then(
            |id: String, what: String, api: Api, k: Option<String>, b: Bytes| async move {
                let res = async {
                    match what.as_str() {
                        "progress" | "done" | "failed" => {}
                        _ => return Err(ApiError::not_found("no such route")),
                    }
                    api.authenticate_node(k.as_deref())?;
                    match what.as_str() {
                        "progress" => api.request_progress(&id, parse(&b)?).await,
                        "done" => api.request_done(&id, parse(&b)?).await,
                        _ => api.request_failed(&id, parse(&b)?).await,
                    }
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let admin_list = v1()
        .and(warp::path!("admin" / "requests"))
        .and(warp::get())
        .and(a())
        .and(auth_header())
        .map(|api: Api, h: Option<String>| {
            render(
                StatusCode::OK,
                api.authenticate(h.as_deref())
                    .and_then(|c| api.admin_requests(&c)),
            )
        });
    let admin_action = v1()
        .and(warp::path!("admin" / "requests" / String / String))
        .and(warp::post())
        .and(a())
        .and(auth_header())
        // The body (`{"reason": ...}`) is optional: no Content-Length means none.
        .and(
            body(limit)
                .or(warp::header::optional::<String>("content-length").and_then(
                    |h: Option<String>| async move {
                        match h {
                            None => Ok(Bytes::new()),
                            Some(_) => Err(warp::reject::not_found()),
                        }
                    },
                ))
                .unify(),
        )
        .then(
            |id: String, what: String, api: Api, h: Option<String>, b: Bytes| async move {
                #[derive(Deserialize, Default)]
                #[serde(deny_unknown_fields)]
                struct Reason {
                    reason: Option<String>,
                }
                let res = async {
                    let action = match what.as_str() {
                        "approve" => AdminAction::Approve,
                        "reject" => AdminAction::Reject,
                        "retry" => AdminAction::Retry,
                        _ => return Err(ApiError::not_found("no such route")),
                    };
                    let claims = api.authenticate(h.as_deref())?;
                    let reason: Reason = if b.is_empty() {
                        Reason::default()
                    } else {
                        parse(&b)?
                    };
                    api.admin_request_action(&claims, &id, action, reason.reason)
                        .await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    subscription
        .or(notifications)
        .unify()
        .or(webhook)
        .unify()
        .or(create)
        .unify()
        .or(mine)
        .unify()
        .or(claim)
        .unify()
        .or(report)
        .unify()
        .or(admin_list)
        .unify()
        .or(admin_action)
        .unify()
        .boxed()
}
