//! Movie requests: the user's (`requests`, `me/notifications`) and the nodes'
//! (`requests/claim`, `requests/{id}/{progress|done|failed}`, signed by a member node: `Reelnet-Node-Auth`).

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use reelnet_proto::membership::RoleName;

use super::common::{
    caller, error_response, json, node_auth, node_url, render, render_created, v1, with_api,
    Caller, ForwardedNode, Json, NodeAuthParts,
};
use crate::api::Api;
use crate::error::ApiError;
use crate::requests::{ClaimRequest, DoneReport, FailedReport, NewRequest, ProgressReport};

pub(super) fn notifications(api: Api) -> BoxedFilter<(Response,)> {
    v1().and(warp::path!("me" / "notifications"))
        .and(warp::get())
        .and(with_api(api))
        .and(caller())
        .map(|api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"")
                    .and_then(|c| api.notifications(&c)),
            )
        })
        .boxed()
}

pub(super) fn routes(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    // A request may carry a .torrent (base64), so its body limit is larger.
    let request_limit = limit.max(1 << 20);
    let create = v1()
        .and(warp::path!("requests"))
        .and(warp::post())
        .and(a())
        .and(caller())
        .and(node_url(api.config().http.trusted_proxies.clone()))
        .and(json(request_limit))
        .then(
            |api: Api, h: Caller, node: ForwardedNode, b: Json<NewRequest>| async move {
                let res = async {
                    let via = h.via(&api, b.raw())?;
                    let claims =
                        api.authenticate_via(h.authorization.as_deref(), via.as_deref())?;
                    let node = node.believed(via.is_some());
                    api.create_request(&claims, b.decode()?, node).await
                }
                .await;
                render_created(res)
            },
        );
    let mine = v1()
        .and(warp::path!("requests"))
        .and(warp::get())
        .and(a())
        .and(caller())
        .map(|api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"").and_then(|c| api.my_requests(&c)),
            )
        });
    let claim = v1()
        .and(warp::path!("requests" / "claim"))
        .and(warp::post())
        .and(a())
        .and(node_auth())
        .and(json(limit))
        .then(
            |api: Api, n: NodeAuthParts, b: Json<ClaimRequest>| async move {
                let res = async {
                    let cert = n.check(&api, b.raw(), Some(RoleName::Ingest))?;
                    api.claim_request(&cert, b.decode()?).await
                }
                .await;
                match res {
                    Ok(Some(c)) => render(StatusCode::OK, Ok(c)),
                    Ok(None) => StatusCode::NO_CONTENT.into_response(),
                    Err(e) => error_response(&e),
                }
            },
        );
    let report = v1()
        .and(warp::path!("requests" / String / String))
        .and(warp::post())
        .and(a())
        .and(node_auth())
        // The body's type depends on the last segment; it is decoded after the signature.
        .and(json::<()>(limit))
        .then(
            |id: String, what: String, api: Api, n: NodeAuthParts, b: Json<()>| async move {
                let res = async {
                    match what.as_str() {
                        "progress" | "done" | "failed" => {}
                        _ => return Err(ApiError::not_found("no such route")),
                    }
                    let cert = n.check(&api, b.raw(), Some(RoleName::Ingest))?;
                    match what.as_str() {
                        "progress" => {
                            let rep = b.of::<ProgressReport>().decode()?;
                            api.request_progress(&cert, &id, rep).await
                        }
                        "done" => {
                            let rep = b.of::<DoneReport>().decode()?;
                            api.request_done(&cert, &id, rep).await
                        }
                        _ => {
                            let rep = b.of::<FailedReport>().decode()?;
                            api.request_failed(&cert, &id, rep).await
                        }
                    }
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    create
        .or(mine)
        .unify()
        .or(claim)
        .unify()
        .or(report)
        .unify()
        .boxed()
}
