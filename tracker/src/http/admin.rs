//! `admin/requests`: the list of every request and approve / reject / retry.

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::common::{auth_header, optional_json, render, v1, with_api, Json};
use crate::api::Api;
use crate::error::ApiError;
use crate::requests::AdminAction;

/// The optional body of an admin action.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: Option<String>,
}

pub(super) fn routes(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    let list = v1()
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
    let action = v1()
        .and(warp::path!("admin" / "requests" / String / String))
        .and(warp::post())
        .and(a())
        .and(auth_header())
        // The body (`{"reason": ...}`) is optional: no Content-Length means none.
        .and(optional_json(limit))
        .then(
            |id: String, what: String, api: Api, h: Option<String>, b: Json<Reason>| async move {
                let res = async {
                    let action = match what.as_str() {
                        "approve" => AdminAction::Approve,
                        "reject" => AdminAction::Reject,
                        "retry" => AdminAction::Retry,
                        _ => return Err(ApiError::not_found("no such route")),
                    };
                    let claims = api.authenticate(h.as_deref())?;
                    let reason = b.decode_or_default()?;
                    api.admin_request_action(&claims, &id, action, reason.reason)
                        .await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    list.or(action).unify().boxed()
}
