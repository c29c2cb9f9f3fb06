//! `GET /api/v1/movies/{id}/play`: turns a tracker access token (checked offline by
//! [`super::auth::JwtVerifier`]) into a playback token for one movie (signed by this node,
//! [`super::token::PlaybackTokens`]) and the master playlist URL that carries it. The token
//! lives `gateway.playback_token_ttl_secs`; a premium viewer's premium renditions end with
//! the premium period the access token names (`tier_until`), reported as `premium_until`.
//!
//! 401 `unauthorized` without or with a bad JWT, 403 `email_not_verified`, 400
//! `bad_movie_id`, 404 `not_found` when the network knows no such movie.

use std::convert::Infallible;

use reelnet_proto::MovieId;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::GatewayState;

/// The answer of `/play`.
#[derive(Debug, Serialize)]
pub struct PlayResponse {
    pub movie_id: String,
    pub master_url: String,
    /// The seek thumbnail index (WebVTT); 404 when the movie has no thumbnails.
    pub thumbnails_url: String,
    pub expires_at: u64,
    /// Premium viewers: when the token stops serving the premium renditions (the end of
    /// the premium period when it comes before `expires_at`), unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub premium_until: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// A JSON error `{ "error": code, "message": text }` with `status`.
pub fn error_reply(status: StatusCode, code: &str, message: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: code,
            message,
        }),
        status,
    )
    .into_response()
}

/// The `/play` route.
pub fn route(state: GatewayState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "movies" / String / "play")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |id: String, auth: Option<String>| {
            let state = state.clone();
            async move {
                let res = play(&state, &id, auth.as_deref()).await;
                state.metrics.request("play", res.status().as_u16());
                Ok::<_, Infallible>(res)
            }
        })
}

async fn play(state: &GatewayState, id: &str, auth: Option<&str>) -> Response {
    let unauthorized = |msg: &str| error_reply(StatusCode::UNAUTHORIZED, "unauthorized", msg);
    let token = match super::auth::bearer(auth) {
        Ok(t) => t,
        Err(e) => return unauthorized(&e.to_string()),
    };
    let claims = match state.jwt.verify(token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(err = %e, "play: access token refused");
            return unauthorized(&e.to_string());
        }
    };
    if !claims.email_verified {
        return error_reply(
            StatusCode::FORBIDDEN,
            "email_not_verified",
            "verify your email address to watch",
        );
    }
    let Ok(movie) = MovieId::new(id) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "bad_movie_id",
            "not a valid movie id",
        );
    };
    match state.catalog.movie(&movie).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error_reply(
                StatusCode::NOT_FOUND,
                "not_found",
                "the network has no such movie",
            )
        }
        Err(e) => {
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &e.to_string(),
            )
        }
    }
    let now = crate::unix_now();
    let (token, expires_at) =
        match state
            .tokens
            .issue_at(&claims, &movie, now, state.tokens.ttl_secs())
        {
            Ok(t) => t,
            Err(e) => return unauthorized(&e.to_string()),
        };
    let premium_until = super::token::PlaybackTokens::premium_until(&claims, now, expires_at);
    tracing::debug!(user = %claims.sub, %movie, expires_at, ?premium_until, "playback token issued");
    warp::reply::json(&PlayResponse {
        master_url: format!(
            "{}/hls/{}/master.m3u8?token={token}",
            state.public_url, movie
        ),
        thumbnails_url: format!(
            "{}/hls/{}/thumbnails.vtt?token={token}",
            state.public_url, movie
        ),
        movie_id: movie.to_string(),
        expires_at,
        premium_until,
    })
    .into_response()
}
