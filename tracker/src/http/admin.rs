//! `admin/requests`: the list of every request and approve / reject / retry; `admin/users`
//! (every account with its tier and role; an operator or admin adds an account) and `admin/bootstrap` (the machine operator
//! makes the first admin's single-use link).

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::common::{json, operator, optional_json, render, v1, with_api, Json, OperatorParts};
use crate::api::Api;
use crate::error::ApiError;
use crate::network::Operator;
use crate::requests::AdminAction;
use crate::users::{AddUserRequest, BootstrapRequest};

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
        .and(operator())
        .map(|api: Api, op: OperatorParts| {
            render(
                StatusCode::OK,
                op.check(&api).and_then(|_| api.operator_requests()),
            )
        });
    // Every account with its tier and role (the console's users view).
    let users = v1()
        .and(warp::path!("admin" / "users"))
        .and(warp::get())
        .and(a())
        .and(operator())
        .map(|api: Api, op: OperatorParts| {
            render(
                StatusCode::OK,
                op.check(&api).and_then(|_| api.admin_users()),
            )
        });
    let action = v1()
        .and(warp::path!("admin" / "requests" / String / String))
        .and(warp::post())
        .and(a())
        .and(operator())
        // The body (`{"reason": ...}`) is optional: no Content-Length means none.
        .and(optional_json(limit))
        .then(
            |id: String, what: String, api: Api, op: OperatorParts, b: Json<Reason>| async move {
                let res = async {
                    let action = match what.as_str() {
                        "approve" => AdminAction::Approve,
                        "reject" => AdminAction::Reject,
                        "retry" => AdminAction::Retry,
                        _ => return Err(ApiError::not_found("no such route")),
                    };
                    op.check(&api)?;
                    let reason = b.decode_or_default()?;
                    api.operator_request_action(&id, action, reason.reason)
                        .await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let add_user = v1()
        .and(warp::path!("admin" / "users"))
        .and(warp::post())
        .and(a())
        .and(operator())
        .and(json(limit))
        .then(
            |api: Api, op: OperatorParts, b: Json<AddUserRequest>| async move {
                let res = async {
                    let by = op.check(&api)?;
                    api.admin_add_user(&by, b.decode()?).await
                }
                .await;
                render(StatusCode::CREATED, res)
            },
        );
    let bootstrap =
        v1().and(warp::path!("admin" / "bootstrap"))
            .and(warp::post())
            .and(a())
            .and(operator())
            .and(json(limit))
            .then(
                |api: Api, op: OperatorParts, b: Json<BootstrapRequest>| async move {
                    let res = async {
                        // Only the machine operator: an admin session means there is an admin.
                        match op.check(&api)? {
                            Operator::Local => {}
                            Operator::Admin(_) => return Err(ApiError::forbidden(
                                "operator_only",
                                "only the machine operator (operator.json) makes bootstrap links",
                            )),
                        }
                        api.admin_bootstrap(b.decode()?).await
                    }
                    .await;
                    render(StatusCode::CREATED, res)
                },
            );
    list.or(action)
        .unify()
        .or(users)
        .unify()
        .or(add_user)
        .unify()
        .or(bootstrap)
        .unify()
        .boxed()
}
