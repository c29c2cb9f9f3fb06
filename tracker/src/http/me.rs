//! `me` and the user's own lists: profile (get, patch, delete), watch later, progress,
//! history, playback preferences.

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::common::{caller, json, no_content, render, render_created, v1, with_api, Caller, Json};
use crate::accounts::PatchMeRequest;
use crate::api::Api;
use crate::library::ProgressRequest;

/// `PUT me/preferences` reads a JSON object first (see [`crate::preferences::parse_body`]).
type PreferencesBody = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

pub(super) fn routes(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    let me_get = v1()
        .and(warp::path!("me"))
        .and(warp::get())
        .and(a())
        .and(caller())
        .map(|api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"").and_then(|c| api.me(&c)),
            )
        });
    let me_patch = v1()
        .and(warp::path!("me"))
        .and(warp::patch())
        .and(a())
        .and(caller())
        .and(json(limit))
        .then(|api: Api, h: Caller, b: Json<PatchMeRequest>| async move {
            let res = async {
                let claims = h.authenticate(&api, b.raw())?;
                api.patch_me(&claims, b.decode()?).await
            }
            .await;
            render(StatusCode::OK, res)
        });
    let me_delete = v1()
        .and(warp::path!("me"))
        .and(warp::delete())
        .and(a())
        .and(caller())
        .then(|api: Api, h: Caller| async move {
            let res = async {
                let claims = h.authenticate_change(&api, reelnet_proto::claims::SCOPE_ACCOUNT)?;
                api.delete_me(&claims).await
            }
            .await;
            no_content(res)
        });
    let watchlist = v1()
        .and(warp::path!("me" / "watchlist"))
        .and(warp::get())
        .and(a())
        .and(caller())
        .map(|api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"").and_then(|c| api.watchlist(&c)),
            )
        });
    let watch_put = v1()
        .and(warp::path!("me" / "watchlist" / String))
        .and(warp::put())
        .and(a())
        .and(caller())
        .then(|movie: String, api: Api, h: Caller| async move {
            let res = async {
                let claims = h.authenticate(&api, b"")?;
                api.watchlist_add(&claims, &movie).await
            }
            .await;
            render_created(res)
        });
    let watch_delete = v1()
        .and(warp::path!("me" / "watchlist" / String))
        .and(warp::delete())
        .and(a())
        .and(caller())
        .then(|movie: String, api: Api, h: Caller| async move {
            let res = async {
                let claims = h.authenticate(&api, b"")?;
                api.watchlist_remove(&claims, &movie).await
            }
            .await;
            no_content(res)
        });
    let progress_get = v1()
        .and(warp::path!("me" / "progress" / String))
        .and(warp::get())
        .and(a())
        .and(caller())
        .map(|movie: String, api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"")
                    .and_then(|c| api.get_progress(&c, &movie)),
            )
        });
    let progress_put = v1()
        .and(warp::path!("me" / "progress" / String))
        .and(warp::put())
        .and(a())
        .and(caller())
        .and(json(limit))
        .then(
            |movie: String, api: Api, h: Caller, b: Json<ProgressRequest>| async move {
                let res = async {
                    let claims = h.authenticate(&api, b.raw())?;
                    api.put_progress(&claims, &movie, b.decode()?).await
                }
                .await;
                render(StatusCode::OK, res)
            },
        );
    let history = v1()
        .and(warp::path!("me" / "history"))
        .and(warp::get())
        .and(a())
        .and(caller())
        .and(warp::query::<HistoryQuery>())
        .map(|api: Api, h: Caller, q: HistoryQuery| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"")
                    .and_then(|c| api.history(&c, q.limit, q.cursor.as_deref())),
            )
        });
    let prefs_get = v1()
        .and(warp::path!("me" / "preferences"))
        .and(warp::get())
        .and(a())
        .and(caller())
        .map(|api: Api, h: Caller| {
            render(
                StatusCode::OK,
                h.authenticate(&api, b"").and_then(|c| api.preferences(&c)),
            )
        });
    let prefs_put = v1()
        .and(warp::path!("me" / "preferences"))
        .and(warp::put())
        .and(a())
        .and(caller())
        .and(json(limit))
        .then(|api: Api, h: Caller, b: Json<PreferencesBody>| async move {
            let res = async {
                let claims = h.authenticate(&api, b.raw())?;
                let prefs = crate::preferences::parse_body(b.decode()?)?;
                api.put_preferences(&claims, prefs).await
            }
            .await;
            render(StatusCode::OK, res)
        });
    me_get
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
        .unify()
        .or(prefs_get)
        .unify()
        .or(prefs_put)
        .unify()
        .boxed()
}
