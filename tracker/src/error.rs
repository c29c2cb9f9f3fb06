//! The one error type of the tracker's API. Every failure becomes JSON
//! `{ "error": code, "message": text }` with the status that fits (and `movie_id` where
//! an error is about a movie the client may go to).

use warp::http::StatusCode;

use crate::keys::{KeyError, TokenError};
use crate::store::StoreError;

/// An API failure: a status, a stable machine-readable code and a human message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
    /// The movie the error is about, where the client can go there instead (409
    /// `already_available`).
    pub movie_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            movie_id: None,
        }
    }
    /// The same error, naming `movie_id` in its body.
    pub fn with_movie_id(mut self, movie_id: &str) -> Self {
        self.movie_id = Some(movie_id.to_owned());
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many attempts; try again in {retry_after} s"),
            )
        }
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(%message, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
    }
}

/// Seconds a client is asked to wait when the database is unavailable.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The database is down or unreachable: nothing was written, and the request
            // can be tried again once it is back (the store reconnects by itself).
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                Self {
                    retry_after: Some(STORE_RETRY_AFTER_SECS),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the database is unavailable; try again shortly",
                    )
                }
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        ApiError::internal(e)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => {
                ApiError::unauthorized("token_expired", "access token has expired")
            }
            other => ApiError::unauthorized("invalid_token", other.to_string()),
        }
    }
}

impl warp::reject::Reject for ApiError {}
