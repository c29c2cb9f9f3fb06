//! The node's HTTP gateway (warp): the web app, `/healthz` and `/metrics` for now; HLS,
//! catalog search and the tracker proxy join it as those subsystems land.

use std::convert::Infallible;
use std::sync::Arc;

use reelnet_proto::NodeId;
use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::metrics::Metrics;

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    pub node_id: NodeId,
    pub metrics: Arc<Metrics>,
    pub web_dir: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    node_id: String,
    version: &'static str,
}

/// Every gateway route.
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let health = {
        let state = state.clone();
        warp::path!("healthz").and(warp::get()).map(move || {
            state.metrics.request("healthz", 200);
            warp::reply::json(&Health {
                status: "ok",
                node_id: state.node_id.to_string(),
                version: env!("CARGO_PKG_VERSION"),
            })
        })
    };
    let metrics = {
        let state = state.clone();
        warp::path!("metrics").and(warp::get()).map(move || {
            state.metrics.request("metrics", 200);
            warp::reply::with_header(
                state.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
        })
    };
    let web = web_app(state.web_dir.clone());
    health.or(metrics).or(web).recover(handle_rejection)
}

/// Serves the built web app, with single-page-app fallback to `index.html`.
fn web_app(
    dir: Option<std::path::PathBuf>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let dir = dir.unwrap_or_default();
    let index = dir.join("index.html");
    let enabled = !dir.as_os_str().is_empty();
    warp::get()
        .and(warp::any().and_then(move || async move {
            if enabled {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        }))
        .untuple_one()
        .and(warp::fs::dir(dir).or(warp::fs::file(index)))
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

async fn handle_rejection(rej: Rejection) -> Result<impl Reply, Infallible> {
    let (status, code, message) = if rej.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route".to_owned(),
        )
    } else if rej.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed".to_owned(),
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{rej:?}"),
        )
    };
    Ok(warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: code,
            message,
        }),
        status,
    ))
}
