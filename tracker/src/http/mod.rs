//! The tracker's HTTP routes (warp): the top layer. Handlers parse, call [`Api`] (or the
//! [`Rooms`] handle), and render; every error is JSON `{ "error": code, "message": text }`.
//! Bodies are read up to the configured limit (413 beyond it) by the [`common::json`]
//! filter and decoded in the handler, after authentication, so malformed JSON gets 400 and
//! changes nothing.
//!
//! One module per resource: [`auth`], [`me`] (profile and the user's lists), [`rooms`],
//! [`billing`], [`requests`], [`admin`], [`nodes`] (membership), [`oauth`] (the OAuth
//! protocol endpoints: token, revoke, device authorization, metadata), and [`meta`] (JWKS,
//! health, metrics); the tracker's HTML pages are [`crate::pages`]. What is served is
//! listed in [`ROUTES`] (kept in [`crate::routes`], which the metrics use too).

mod admin;
mod auth;
mod billing;
pub(crate) mod common;
mod me;
mod meta;
mod nodes;
mod oauth;
mod requests;
mod rooms;

use std::convert::Infallible;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use crate::routes::ROUTES;
pub use common::error_response;

use crate::api::Api;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rooms::Rooms;

/// Every tracker route, with JSON errors for everything that does not match.
pub fn routes(
    api: Api,
    rooms: Rooms,
    cancel: CancellationToken,
    tls: Option<reelnet_runtime::tls::TlsMetrics>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let limit = api.config().http.max_body_bytes;
    let mut metrics = Metrics::new(api.membership().announcements(), api.oauth_refusals());
    if let Some(tls) = &tls {
        metrics.register_tls(tls);
    }
    let metrics = Arc::new(metrics);
    let count = {
        let metrics = metrics.clone();
        warp::log::custom(move |info| {
            metrics.observe(
                info.method().as_str(),
                info.path(),
                info.status().as_u16(),
                info.elapsed(),
            )
        })
    };
    // The tracker's own HTML pages carry their own headers (crate::pages); everything
    // else is JSON with the strict API headers.
    let pages = crate::pages::routes(api.clone());
    let json = auth::routes(api.clone(), limit)
        .or(me::routes(api.clone(), limit))
        .unify()
        .or(rooms::routes(api.clone(), rooms, cancel, limit))
        .unify()
        .or(billing::subscription(api.clone()))
        .unify()
        .or(requests::notifications(api.clone()))
        .unify()
        .or(billing::webhook(api.clone(), limit))
        .unify()
        .or(requests::routes(api.clone(), limit))
        .unify()
        .or(admin::routes(api.clone(), limit))
        .unify()
        .or(nodes::routes(api.clone(), limit))
        .unify()
        .or(oauth::routes(api.clone(), limit))
        .unify()
        .or(meta::jwks(api.clone()))
        .unify()
        .or(meta::health())
        .unify()
        .or(meta::metrics(api, metrics))
        .unify()
        .recover(|rej: Rejection| async move { Ok::<_, Infallible>(rejection_response(rej)) })
        .unify()
        // JSON only: nosniff, a CSP that loads nothing, no referrer, no framing.
        .with(warp::reply::with::headers(reelnet_runtime::headers::api()));
    pages.or(json).with(count).with(warp::trace::request())
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
