//! `GET /api/v1/tmdb/search?q=`: movies on TMDb whose title matches, each marked with
//! whether the network already has it, so the web app can offer "Request" for the ones it
//! lacks. Signed-in users only (it spends this node's TMDb quota). Without a TMDb key it
//! answers `{"enabled": false, "results": []}` and the web app falls back to its request
//! form.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use reelnet_proto::MovieId;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::play::error_reply;
use super::GatewayState;
use crate::metadata::{TmdbHit, MAX_SEARCH_QUERY_CHARS};

/// One match, as the web app shows it.
#[derive(Debug, Serialize)]
struct Hit<'a> {
    #[serde(flatten)]
    hit: &'a TmdbHit,
    /// The id the movie has (or will have) on the network.
    movie_id: String,
    /// The network's catalog already has it.
    on_network: bool,
}

#[derive(Debug, Serialize)]
struct SearchPage<'a> {
    enabled: bool,
    results: Vec<Hit<'a>>,
}

/// The route.
pub fn route(state: GatewayState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "tmdb" / "search")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |q: HashMap<String, String>, auth: Option<String>| {
            let state = state.clone();
            async move {
                let res = search(&state, q.get("q").map(String::as_str), auth.as_deref()).await;
                state.metrics.request("tmdb_search", res.status().as_u16());
                Ok::<_, Infallible>(res)
            }
        })
}

async fn search(state: &GatewayState, q: Option<&str>, auth: Option<&str>) -> Response {
    let unauthorized = |msg: &str| error_reply(StatusCode::UNAUTHORIZED, "unauthorized", msg);
    let token = match super::auth::bearer(auth) {
        Ok(t) => t,
        Err(e) => return unauthorized(&e.to_string()),
    };
    if let Err(e) = state.jwt.verify(token).await {
        return unauthorized(&e.to_string());
    }
    let q = q.unwrap_or_default().trim();
    if q.is_empty() || q.chars().count() > MAX_SEARCH_QUERY_CHARS {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "bad_query",
            &format!("q must be 1 to {MAX_SEARCH_QUERY_CHARS} characters"),
        );
    }
    if !state.metadata.enabled() {
        return warp::reply::json(&SearchPage {
            enabled: false,
            results: Vec::new(),
        })
        .into_response();
    }
    let hits = match state.metadata.search(q).await {
        Ok(h) => h,
        Err(e) => {
            return error_reply(StatusCode::BAD_GATEWAY, "tmdb_unavailable", &e);
        }
    };
    let known: HashSet<MovieId> = match state.catalog.movies().await {
        Ok(movies) => movies.iter().map(|m| m.movie_id.clone()).collect(),
        Err(e) => {
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &e.to_string(),
            )
        }
    };
    let results = hits
        .iter()
        .map(|hit| {
            let id = MovieId::from_tmdb(hit.tmdb_id);
            Hit {
                hit,
                on_network: known.contains(&id),
                movie_id: id.to_string(),
            }
        })
        .collect();
    warp::reply::json(&SearchPage {
        enabled: true,
        results,
    })
    .into_response()
}
