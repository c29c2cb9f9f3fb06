//! TMDb's v3 API, for movie requests: the tracker checks that a requested TMDb id exists and
//! takes the title and year from TMDb rather than from the asker. Off without an API key
//! (then the asker's title is kept). When TMDb is down or slow the request still goes in
//! with the asker's title, so an outage never blocks requests. The client itself is the
//! shared one in `reelnet_runtime::tmdb`; this module keeps what a request needs of it.

use std::time::Duration;

use reelnet_runtime::tmdb::{clean_title, year_of, TmdbClient};
use serde::Deserialize;

pub use reelnet_runtime::tmdb::TmdbError;

/// Longest title kept (characters).
const MAX_TITLE_CHARS: usize = 200;

/// What TMDb says of a movie (the parts a request needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmdbTitle {
    pub title: String,
    pub year: Option<u16>,
}

/// A TMDb client.
#[derive(Debug, Clone)]
pub struct Tmdb {
    client: TmdbClient,
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
        let client = TmdbClient::new(
            api_url,
            api_key,
            concat!("reelnet-tracker/", env!("CARGO_PKG_VERSION")),
            Duration::from_secs(5),
        )?;
        Ok(client.map(|client| Self { client }))
    }

    /// The movie's title and year; `Ok(None)` when TMDb knows no movie `id`.
    pub async fn movie(&self, id: u64) -> Result<Option<TmdbTitle>, TmdbError> {
        let Some(json) = self.client.movie::<MovieJson>(id).await? else {
            return Ok(None);
        };
        let title = clean_title(json.title.as_deref(), MAX_TITLE_CHARS);
        if title.is_empty() {
            return Err(TmdbError::Bad("the movie has no title".into()));
        }
        let year = year_of(json.release_date.as_deref());
        Ok(Some(TmdbTitle { title, year }))
    }
}
