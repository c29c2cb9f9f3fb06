//! `me/subscription` and the signed `billing/webhook`.

use bytes::Bytes;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::common::{body, caller, render, v1, with_api, Caller};
use crate::api::Api;
use crate::billing::SIGNATURE_HEADER;

pub(super) fn subscription(api: Api) -> BoxedFilter<(Response,)> {
    v1().and(warp::path!("me" / "subscription"))
        .and(warp::get())
        .and(with_api(api))
        .and(caller())
        .map(|api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"").and_then(|c| api.subscription(&c)),
            )
        })
        .boxed()
}

/// The webhook reads the raw body: its signature covers exactly those bytes, and it is
/// decoded only after the signature checks out.
pub(super) fn webhook(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    v1().and(warp::path!("billing" / "webhook"))
        .and(warp::post())
        .and(with_api(api))
        .and(warp::header::optional::<String>(SIGNATURE_HEADER))
        .and(body(limit))
        .then(|api: Api, sig: Option<String>, b: Bytes| async move {
            render(StatusCode::OK, api.billing_webhook(sig.as_deref(), b).await)
        })
        .boxed()
}
