//! The one TMDb v3 client the node and the tracker share: building the HTTP client (time
//! limits, user agent), `GET`s whose answers are size-limited before they are read and
//! parsed into whatever part of the JSON the caller needs, images, and the clean-ups both
//! apply to what TMDb says (control characters out of titles, `release_date` → year).
//!
//! The API key travels in the query string, so errors never carry reqwest's URL: a
//! [`TmdbError`] is safe to log. Callers keep their own policy (caching, retries, what a
//! failure means); this module only talks to TMDb.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// Why a TMDb call did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TmdbError {
    /// TMDb could not be reached or the answer broke off (without the URL: it holds the key).
    #[error("TMDb unreachable: {0}")]
    Http(String),
    /// An HTTP status other than success (or 404 where that means "none").
    #[error("TMDb answered {0}")]
    Status(u16),
    /// The answer is larger than the limit (bytes).
    #[error("TMDb's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The answer is not the JSON expected.
    #[error("bad TMDb answer: {0}")]
    Bad(String),
}

/// Largest JSON answer read.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// A TMDb client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TmdbClient {
    http: reqwest::Client,
    api_url: String,
    api_key: String,
    image_url: String,
}

/// reqwest's errors name the URL, which carries the API key; keep it out of logs.
fn http_error(err: reqwest::Error) -> TmdbError {
    TmdbError::Http(err.without_url().to_string())
}

impl TmdbClient {
    /// A client for the v3 API at `api_url` (a trailing `/` is ignored), or `None` when
    /// `api_key` is empty (TMDb is off). `timeout` limits each request, connecting included.
    pub fn new(
        api_url: &str,
        api_key: &str,
        user_agent: &str,
        timeout: Duration,
    ) -> Result<Option<Self>, TmdbError> {
        let api_key = api_key.trim();
        if api_key.is_empty() {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(user_agent)
            .build()
            .map_err(http_error)?;
        Ok(Some(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            image_url: String::new(),
        }))
    }

    /// The same client, fetching images from `image_url` (e.g. `https://image.tmdb.org/t/p`).
    pub fn with_image_url(mut self, image_url: &str) -> Self {
        self.image_url = image_url.trim_end_matches('/').to_owned();
        self
    }

    /// The base URL of images (no trailing `/`).
    pub fn image_url(&self) -> &str {
        &self.image_url
    }

    /// `GET {api_url}/movie/{id}`, parsed as `T` (the parts the caller uses); `Ok(None)`
    /// when TMDb knows no movie `id` (404).
    pub async fn movie<T: DeserializeOwned>(&self, id: u64) -> Result<Option<T>, TmdbError> {
        self.get_json(&format!("movie/{id}"), &[]).await
    }

    /// `GET {api_url}/search/movie?query=…` (first page, no adult titles), parsed as `T`.
    pub async fn search_movies<T: DeserializeOwned>(&self, query: &str) -> Result<T, TmdbError> {
        let query = [("query", query), ("include_adult", "false"), ("page", "1")];
        self.get_json("search/movie", &query)
            .await?
            .ok_or(TmdbError::Status(404))
    }

    /// `GET {api_url}/{path}` with the key and `query`, at most [`MAX_JSON_BYTES`], parsed
    /// as `T`; `Ok(None)` on a 404.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, TmdbError> {
        let res = self
            .http
            .get(format!("{}/{path}", self.api_url))
            .query(&[("api_key", self.api_key.as_str())])
            .query(query)
            .send()
            .await
            .map_err(http_error)?;
        let Some(body) = read_ok(res, MAX_JSON_BYTES).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| TmdbError::Bad(e.to_string()))
    }

    /// The bytes of `{image_url}/{size_and_path}` (e.g. `w500/abc.jpg`), at most `limit`;
    /// `Ok(None)` on a 404. The caller checks what they are.
    pub async fn image(
        &self,
        size_and_path: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, TmdbError> {
        let res = self
            .http
            .get(format!("{}/{size_and_path}", self.image_url))
            .send()
            .await
            .map_err(http_error)?;
        read_ok(res, limit).await
    }
}

/// The body of a successful answer (at most `limit` bytes); `None` for a 404.
async fn read_ok(res: reqwest::Response, limit: usize) -> Result<Option<Vec<u8>>, TmdbError> {
    let status = res.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(TmdbError::Status(status.as_u16()));
    }
    read_limited(res, limit).await.map(Some)
}

/// Reads a response body of at most `limit` bytes (checked against `Content-Length` before
/// reading and against what arrives while reading).
pub async fn read_limited(mut res: reqwest::Response, limit: usize) -> Result<Vec<u8>, TmdbError> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(TmdbError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > limit {
            return Err(TmdbError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// TMDb text without control characters (`None` is empty).
pub fn printable(text: Option<&str>) -> String {
    text.unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// A title from TMDb as a request keeps it: [`printable`], at most `max_chars` characters,
/// trimmed.
pub fn clean_title(title: Option<&str>, max_chars: usize) -> String {
    printable(title)
        .chars()
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The year of a TMDb `release_date` (`YYYY-MM-DD`), if plausible (1870 to 2999).
pub fn year_of(release_date: Option<&str>) -> Option<u16> {
    release_date
        .and_then(|d| d.get(..4))
        .and_then(|y| y.parse::<u16>().ok())
        .filter(|y| (1870..=2999).contains(y))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn years_and_titles() {
        assert_eq!(year_of(Some("1999-03-31")), Some(1999));
        assert_eq!(year_of(Some("1800-01-01")), None);
        assert_eq!(year_of(Some("19")), None);
        assert_eq!(year_of(None), None);
        assert_eq!(clean_title(Some("  The\u{7}Matrix "), 200), "TheMatrix");
        assert_eq!(clean_title(Some("abcdef"), 3), "abc");
        assert_eq!(printable(None), "");
    }

    #[test]
    fn no_key_no_client() {
        let none = TmdbClient::new("http://x/", " ", "test", Duration::from_secs(1)).unwrap();
        assert!(none.is_none());
        let some = TmdbClient::new("http://x/3/", "k", "test", Duration::from_secs(1))
            .unwrap()
            .unwrap()
            .with_image_url("http://img/");
        assert_eq!(some.api_url, "http://x/3");
        assert_eq!(some.image_url(), "http://img");
    }
}
