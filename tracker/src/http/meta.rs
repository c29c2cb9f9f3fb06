//! Routes outside `/api/v1`: the JWKS (`.well-known/jwks.json`), `healthz` and `metrics`,
//! and the log filter that counts every answered request for the metrics.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::common::with_api;
use crate::api::Api;
use crate::metrics::Metrics;

pub(super) fn jwks(api: Api) -> BoxedFilter<(Response,)> {
    warp::path!(".well-known" / "jwks.json")
        .and(warp::get())
        .and(with_api(api))
        .map(|api: Api| {
            warp::reply::with_header(
                warp::reply::json(&api.jwks()),
                "cache-control",
                "public, max-age=60",
            )
            .into_response()
        })
        .boxed()
}

pub(super) fn health() -> BoxedFilter<(Response,)> {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| {
            warp::reply::json(&serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
            }))
            .into_response()
        })
        .boxed()
}

pub(super) fn metrics(api: Api, metrics: Arc<Metrics>) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || {
            let text = metrics.render(api.metrics_gauges());
            warp::reply::with_header(text, "content-type", reelnet_runtime::metrics::CONTENT_TYPE)
                .into_response()
        })
        .boxed()
}
