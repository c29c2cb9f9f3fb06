//! TMDb's v3 API, for movie requests: the tracker checks that a requested TMDb id exists and
//! takes the title and year from TMDb rather than from the asker. Off without an API key
//! (then the asker's title is kept). When TMDb is down or slow the request still goes in
//! with the asker's title, so an outage never blocks requests.

use std::time::Duration;

use serde::Deserialize;

/// Largest TMDb answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Longest title kept (characters).
const MAX_TITLE_CHARS: usize = 200;

/// What TMDb says of a movie (the parts a request needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmdbTitle {
    pub title: String,
    pub year: Option<u16>,
}

/// Why a lookup did not answer.
#[derive(Debug, thiserror::Error)]
pub enum TmdbError {
    #[error("TMDb unreachable: {0}")]
    Http(String),
    #[error("TMDb answered {0}")]
    Status(u16),
    #[error("TMDb's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("bad TMDb answer: {0}")]
    Bad(String),
}

/// A TMDb client.
#[derive(Debug, Clone)]
pub struct Tmdb {
    http: reqwest::Client,
    api_url: String,
    api_key: String,
}

#[derive(Deserialize)]
struct MovieJson {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    release_date: Option<String>,
}

impl Tmdb {
    /// A client, or `None` when `api_key` is empty.
    pub fn new(api_url: &str, api_key: &str) -> Result<Option<Self>, TmdbError> {
        if api_key.trim().is_empty() {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("reelnet-tracker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TmdbError::Http(e.without_url().to_string()))?;
        Ok(Some(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_key: api_key.trim().to_owned(),
        }))
    }

    /// The movie's title and year; `Ok(None)` when TMDb knows no movie `id`.
    pub async fn movie(&self, id: u64) -> Result<Option<TmdbTitle>, TmdbError> {
        // reqwest's errors name the URL, which carries the API key: keep it out of logs.
        let http = |e: reqwest::Error| TmdbError::Http(e.without_url().to_string());
        let mut res = self
            .http
            .get(format!("{}/movie/{id}", self.api_url))
            .query(&[("api_key", self.api_key.as_str())])
            .send()
            .await
            .map_err(http)?;
        match res.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            s => return Err(TmdbError::Status(s)),
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(TmdbError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(TmdbError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let json: MovieJson =
            serde_json::from_slice(&body).map_err(|e| TmdbError::Bad(e.to_string()))?;
        let title: String = json
            .title
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_TITLE_CHARS)
            .collect::<String>()
            .trim()
            .to_owned();
        if title.is_empty() {
            return Err(TmdbError::Bad("the movie has no title".into()));
        }
        let year = json
            .release_date
            .as_deref()
            .and_then(|d| d.get(..4))
            .and_then(|y| y.parse::<u16>().ok())
            .filter(|y| (1870..=2999).contains(y));
        Ok(Some(TmdbTitle { title, year }))
    }
}
