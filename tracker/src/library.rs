//! A user's own lists: watch later, progress with resume points, and history.

use std::str::FromStr;

use reelnet_proto::{Claims, MovieId};
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::store::{Progress, User, WatchAdd};

/// Longest movie accepted, seconds.
const MAX_DURATION_S: f64 = 24.0 * 3600.0;
/// A resume point is offered from this position on, seconds.
const MIN_RESUME_S: f64 = 2.0;
/// How far ahead of the server's clock a writer's timestamp may be, ms.
const MAX_CLOCK_AHEAD_MS: u64 = 60_000;

#[derive(Debug, Serialize)]
pub struct WatchItem {
    pub movie_id: String,
    /// Unix milliseconds.
    pub added_at: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    pub position_s: f64,
    pub duration_s: f64,
    /// The writer's clock when the position was read, unix ms (defaults to the server's).
    /// A write older than the stored one is ignored, so late or replayed writes cannot
    /// move the resume point back.
    pub timestamp_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ProgressView {
    pub movie_id: String,
    pub position_s: f64,
    pub duration_s: f64,
    /// Unix milliseconds of the write that set it.
    pub updated_at: u64,
    pub finished: bool,
    /// Where to resume, or `None` when finished or barely started.
    pub resume_at: Option<f64>,
    /// Whether this write changed the stored progress (false: a newer one was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub items: Vec<ProgressView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Finished means within the last 5% or the last 2 minutes, whichever is shorter, so a
/// two-hour film is finished in its credits and a two-minute clip near its end.
pub fn is_finished(position_s: f64, duration_s: f64) -> bool {
    let remaining = duration_s - position_s;
    remaining <= (duration_s * 0.05).min(120.0)
}

fn view(movie_id: String, p: &Progress, applied: Option<bool>) -> ProgressView {
    let finished = is_finished(p.position_s, p.duration_s);
    ProgressView {
        movie_id,
        position_s: p.position_s,
        duration_s: p.duration_s,
        updated_at: p.updated_at_ms,
        finished,
        resume_at: (!finished && p.position_s >= MIN_RESUME_S).then_some(p.position_s),
        applied,
    }
}

fn movie(raw: &str) -> Result<MovieId, ApiError> {
    MovieId::from_str(raw).map_err(|e| ApiError::bad_request("invalid_movie_id", e.to_string()))
}

impl Api {
    fn me_user(&self, claims: &Claims) -> Result<User, ApiError> {
        self.user(claims)
    }

    /// `GET me/watchlist`: in the order the movies were added.
    pub fn watchlist(&self, claims: &Claims) -> Result<Vec<WatchItem>, ApiError> {
        let user = self.me_user(claims)?;
        let mut items: Vec<_> = self
            .store()
            .watchlist(&user.id)?
            .into_iter()
            .map(|(movie_id, entry)| {
                (
                    entry.seq,
                    WatchItem {
                        movie_id,
                        added_at: entry.added_at_ms,
                    },
                )
            })
            .collect();
        items.sort_by_key(|(seq, _)| *seq);
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    /// `PUT me/watchlist/{movie_id}`: idempotent; answers the entry and whether it is new.
    pub async fn watchlist_add(
        &self,
        claims: &Claims,
        movie_id: &str,
    ) -> Result<(WatchItem, bool), ApiError> {
        let user = self.me_user(claims)?;
        let movie = movie(movie_id)?;
        let max = self.config().library.watchlist_max;
        let (entry, created) = match self
            .store()
            .watchlist_add(user.id, movie.to_string(), now_ms(), max)
            .await?
        {
            WatchAdd::Existing(entry) => (entry, false),
            WatchAdd::Added(entry) => (entry, true),
            WatchAdd::Full => {
                return Err(ApiError::conflict(
                    "watchlist_full",
                    format!(
                        "a watch-later list holds at most {max} movies; remove one to add another"
                    ),
                ))
            }
        };
        Ok((
            WatchItem {
                movie_id: movie.to_string(),
                added_at: entry.added_at_ms,
            },
            created,
        ))
    }

    /// `DELETE me/watchlist/{movie_id}`: idempotent.
    pub async fn watchlist_remove(&self, claims: &Claims, movie_id: &str) -> Result<(), ApiError> {
        let user = self.me_user(claims)?;
        let movie = movie(movie_id)?;
        self.store()
            .watchlist_remove(user.id, movie.to_string())
            .await?;
        Ok(())
    }

    /// `PUT me/progress/{movie_id}`. Progress for a new movie when the user has
    /// `library.progress_max` already evicts the movie watched longest ago (its resume point
    /// and history entry): a viewer is never refused for the cap.
    pub async fn put_progress(
        &self,
        claims: &Claims,
        movie_id: &str,
        req: ProgressRequest,
    ) -> Result<ProgressView, ApiError> {
        let user = self.me_user(claims)?;
        let movie = movie(movie_id)?;
        if !req.duration_s.is_finite() || req.duration_s <= 0.0 || req.duration_s > MAX_DURATION_S {
            return Err(ApiError::bad_request(
                "invalid_progress",
                "duration_s must be a positive number of seconds (at most 24 h)",
            ));
        }
        if !req.position_s.is_finite()
            || req.position_s < 0.0
            || req.position_s > req.duration_s + 1.0
        {
            return Err(ApiError::bad_request(
                "invalid_progress",
                "position_s must be between 0 and duration_s",
            ));
        }
        let now = now_ms();
        let ts = req.timestamp_ms.unwrap_or(now);
        if ts > now + MAX_CLOCK_AHEAD_MS {
            return Err(ApiError::bad_request(
                "invalid_progress",
                "timestamp_ms is in the future; check the clock",
            ));
        }
        let progress = Progress {
            position_s: req.position_s.min(req.duration_s),
            duration_s: req.duration_s,
            updated_at_ms: ts,
            seq: 0,
        };
        let (stored, applied) = self
            .store()
            .put_progress(
                user.id,
                movie.to_string(),
                progress,
                self.config().library.progress_max,
            )
            .await?;
        Ok(view(movie.to_string(), &stored, Some(applied)))
    }

    /// `GET me/progress/{movie_id}`
    pub fn get_progress(&self, claims: &Claims, movie_id: &str) -> Result<ProgressView, ApiError> {
        let user = self.me_user(claims)?;
        let movie = movie(movie_id)?;
        let p = self
            .store()
            .progress(&user.id, movie.as_str())?
            .ok_or_else(|| {
                ApiError::new(
                    warp::http::StatusCode::NOT_FOUND,
                    "no_progress",
                    "no progress for this movie yet",
                )
            })?;
        Ok(view(movie.to_string(), &p, None))
    }

    /// `GET me/history`: newest first, `limit` per page (1..=100).
    pub fn history(
        &self,
        claims: &Claims,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, ApiError> {
        let user = self.me_user(claims)?;
        let limit = limit.unwrap_or(20).clamp(1, 100);
        let after = match cursor {
            Some(c) => Some(
                hex::decode(c)
                    .map_err(|_| ApiError::bad_request("invalid_cursor", "cursor is not valid"))?,
            ),
            None => None,
        };
        let rows = self.store().history(&user.id, limit, after.as_deref())?;
        let items = rows
            .items
            .iter()
            .map(|(movie, p)| view(movie.clone(), p, None))
            .collect();
        let next_cursor = rows.next.map(hex::encode);
        Ok(HistoryPage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_rule() {
        // two-hour film: finished inside the last 2 minutes
        assert!(!is_finished(7000.0, 7200.0));
        assert!(is_finished(7090.0, 7200.0));
        // two-minute clip: finished inside the last 6 s (5%)
        assert!(!is_finished(100.0, 120.0));
        assert!(is_finished(115.0, 120.0));
    }
}
