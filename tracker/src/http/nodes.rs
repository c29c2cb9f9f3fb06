//! Network membership: the network document (`/.well-known/reelnet-network.json`), node
//! enrollment and renewal (`nodes/…`), and the operators' routes (`admin/nodes/…`, for an
//! admin's session or the machine operator's token from `operator.json`). Movie bindings:
//! the public page (`network/bindings`), ingest announcements (`nodes/ingests`, signed by
//! an `ingest` member) and the operators' `admin/movies…`.

use reelnet_proto::binding::IngestAnnouncement;
use reelnet_proto::membership::{EnrollRequest, RoleName};
use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::common::{
    json, node_auth, operator, optional_json, render, v1, with_api, Json, NodeAuthParts,
    OperatorParts,
};
use crate::api::Api;
use crate::network::bindings::{BindRequest, MAX_ANNOUNCEMENT_BODY_BYTES};
use crate::network::{InviteRequest, RolesRequest};

/// An empty JSON object (the revoke and renew bodies).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// `?after=N` of the bindings page.
#[derive(Deserialize)]
struct AfterQuery {
    after: Option<u64>,
}

pub(super) fn routes(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    let document = warp::path!(".well-known" / "reelnet-network.json")
        .and(warp::get())
        .and(a())
        .map(|api: Api| {
            let mut res = render(StatusCode::OK, api.membership().document());
            res.headers_mut().insert(
                "cache-control",
                warp::http::HeaderValue::from_static("no-cache"),
            );
            res
        });
    let enroll = v1()
        .and(warp::path!("nodes" / "enroll"))
        .and(warp::post())
        .and(a())
        .and(json(limit))
        .then(|api: Api, b: Json<EnrollRequest>| async move {
            let res = async { api.membership().enroll(b.decode()?).await }.await;
            render(StatusCode::OK, res)
        });
    let renew = v1()
        .and(warp::path!("nodes" / "renew"))
        .and(warp::post())
        .and(a())
        .and(node_auth())
        .and(optional_json(limit))
        .then(|api: Api, n: NodeAuthParts, b: Json<Empty>| async move {
            let res = async {
                let cert = n.check(&api, b.raw(), None)?;
                b.decode_or_default()?;
                api.membership().renew(&cert).await
            }
            .await;
            render(StatusCode::OK, res)
        });
    let me = v1()
        .and(warp::path!("nodes" / "me"))
        .and(warp::get())
        .and(a())
        .and(node_auth())
        .map(|api: Api, n: NodeAuthParts| {
            let res = n
                .check(&api, b"", None)
                .and_then(|cert| api.membership().me(&cert));
            render(StatusCode::OK, res)
        });
    let invite = v1()
        .and(warp::path!("admin" / "nodes" / "invites"))
        .and(warp::post())
        .and(a())
        .and(operator())
        .and(json(limit))
        .then(
            |api: Api, op: OperatorParts, b: Json<InviteRequest>| async move {
                let res = async {
                    let by = op.check(&api)?;
                    api.membership().create_invite(&by, b.decode()?).await
                }
                .await;
                render(StatusCode::CREATED, res)
            },
        );
    let list = v1()
        .and(warp::path!("admin" / "nodes"))
        .and(warp::get())
        .and(a())
        .and(operator())
        .map(|api: Api, op: OperatorParts| {
            let res = op.check(&api).and_then(|_| api.membership().list());
            render(StatusCode::OK, res)
        });
    let revoke = v1()
        .and(warp::path!("admin" / "nodes" / String / "revoke"))
        .and(warp::post())
        .and(a())
        .and(operator())
        .and(optional_json(limit))
        .then(
            |id: String, api: Api, op: OperatorParts, b: Json<Empty>| async move {
                let res = async {
                    let by = op.check(&api)?;
                    b.decode_or_default()?;
                    api.membership().revoke(&by, &id).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let roles = v1()
        .and(warp::path!("admin" / "nodes" / String / "roles"))
        .and(warp::put())
        .and(a())
        .and(operator())
        .and(json(limit))
        .then(
            |id: String, api: Api, op: OperatorParts, b: Json<RolesRequest>| async move {
                let res = async {
                    let by = op.check(&api)?;
                    let req = b.decode()?;
                    api.membership().set_roles(&by, &id, &req.roles).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let bindings = v1()
        .and(warp::path!("network" / "bindings"))
        .and(warp::get())
        .and(a())
        .and(warp::query::<AfterQuery>())
        .map(|api: Api, q: AfterQuery| {
            let mut res = render(
                StatusCode::OK,
                api.membership().bindings_page(q.after.unwrap_or(0)),
            );
            res.headers_mut().insert(
                "cache-control",
                warp::http::HeaderValue::from_static("no-cache"),
            );
            res
        });
    let ingests = v1()
        .and(warp::path!("nodes" / "ingests"))
        .and(warp::post())
        .and(a())
        .and(node_auth())
        .and(json(MAX_ANNOUNCEMENT_BODY_BYTES))
        .then(
            |api: Api, n: NodeAuthParts, b: Json<IngestAnnouncement>| async move {
                let res = async {
                    let cert = n.check(&api, b.raw(), Some(RoleName::Ingest))?;
                    api.membership().announce(&cert, b.decode()?).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let movies = v1()
        .and(warp::path!("admin" / "movies"))
        .and(warp::get())
        .and(a())
        .and(operator())
        .map(|api: Api, op: OperatorParts| {
            let res = op.check(&api).and_then(|_| api.membership().movies());
            render(StatusCode::OK, res)
        });
    let bind = v1()
        .and(warp::path!("admin" / "movies" / String / "bind"))
        .and(warp::post())
        .and(a())
        .and(operator())
        .and(json(limit))
        .then(
            |movie: String, api: Api, op: OperatorParts, b: Json<BindRequest>| async move {
                let res = async {
                    let by = op.check(&api)?;
                    api.membership().bind(&by, &movie, b.decode()?).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    document
        .or(bindings)
        .unify()
        .or(ingests)
        .unify()
        .or(movies)
        .unify()
        .or(bind)
        .unify()
        .or(enroll)
        .unify()
        .or(renew)
        .unify()
        .or(me)
        .unify()
        .or(invite)
        .unify()
        .or(list)
        .unify()
        .or(revoke)
        .unify()
        .or(roles)
        .unify()
        .map(Reply::into_response)
        .boxed()
}
