//! `rooms`: create, read, and the room WebSocket. The WebSocket takes its token from
//! `?access_token=` (browsers cannot set headers on a WebSocket), from the
//! `Authorization` header, or from a first `auth` frame.

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::common::{caller, error_response, json, render, v1, with_api, Caller, Json};
use crate::api::Api;
use crate::error::ApiError;
use crate::rooms::{CreateRoom, Rooms};

#[derive(Debug, Deserialize)]
struct WsQuery {
    access_token: Option<String>,
}

pub(super) fn routes(
    api: Api,
    rooms: Rooms,
    cancel: CancellationToken,
    limit: u64,
) -> BoxedFilter<(Response,)> {
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
        .and(caller())
        .and(json(limit))
        .then(
            |api: Api, rooms: Rooms, h: Caller, b: Json<CreateRoom>| async move {
                let res = async {
                    let claims = h.authenticate(&api, b.raw())?;
                    rooms.create(&api, &claims, b.decode()?).await
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
        .and(caller())
        .then(|id: String, api: Api, rooms: Rooms, h: Caller| async move {
            let res = async {
                h.authenticate(&api, b"")?;
                rooms.get(&id).await
            }
            .await;
            render(StatusCode::OK, res)
        });
    let maybe_ws = warp::ws().map(Some).or(warp::any().map(|| None)).unify();
    let ws = v1()
        .and(warp::path!("rooms" / String / "ws"))
        .and(warp::get())
        .and(a())
        .and(r())
        .and(caller())
        .and(warp::query::<WsQuery>())
        .and(maybe_ws)
        .and(warp::any().map(move || cancel.clone()))
        .then(
            |id: String,
             api: Api,
             rooms: Rooms,
             h: Caller,
             q: WsQuery,
             ws: Option<warp::ws::Ws>,
             cancel: CancellationToken| async move {
                // Through a node's proxy the upgrade is signed too (GET, empty body); the
                // socket remembers the node and closes when it is revoked.
                let via = match h.via(&api, b"") {
                    Ok(v) => v,
                    Err(e) => return error_response(&e),
                };
                let header = q
                    .access_token
                    .map(|t| format!("Bearer {t}"))
                    .or(h.authorization.clone());
                let claims = match header {
                    Some(h) => match api.authenticate_via(Some(&h), via.as_deref()) {
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
                    .on_upgrade(move |socket| rooms.serve(api, id, claims, via, socket, cancel))
                    .into_response()
            },
        );
    create.or(get).unify().or(ws).unify().boxed()
}
