//! `GET /api/v1/catalog` (browse and search) and `GET /api/v1/movies/{id}` (one movie), as
//! /tmp/contract.md ("The node gateway's JSON contract") and `node/openapi.yaml` describe.
//!
//! Both are views over the catalog index ([`crate::catalog::Catalog::movies`] and the
//! manifests it holds) merged with movie metadata: TMDb's record when this node has one
//! ([`crate::metadata::Metadata`]), else the [`MovieMeta`] the ingest signed into its
//! manifests (newest manifest first, field by field). This module owns no state; every
//! request reads the catalog afresh.
//!
//! Search ([`search`], in `gateway/search.rs`) is typo-tolerant and prefix-aware over title words: each query word
//! must match a title word exactly, as a prefix, or within an edit distance of 1 (2 for
//! words of 8+ characters; words under 4 characters must be exact or prefixes). A
//! four-digit word that equals the movie's year counts as a strong match and never
//! excludes a movie. Results are ranked by score, then fewer title words, then newest.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelnet_proto::{Manifest, MovieId, MovieMeta, SegmentHash};
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use super::search::{search, words};
use super::{json_error, GatewayState};
use crate::catalog::MovieSummary;
use crate::metadata::TmdbMovie;

/// Results per page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: usize = 24;
/// Most results per page; larger `per_page` values are clamped to it.
pub const MAX_PER_PAGE: usize = 100;
/// Highest page number accepted.
pub const MAX_PAGE: usize = 10_000;
/// Longest `q`, in bytes.
pub const MAX_QUERY_LEN: usize = 200;
/// Query words beyond this many are ignored.
pub const MAX_QUERY_WORDS: usize = 8;
/// How long `/movies/{id}` waits for a TMDb lookup before answering without it.
pub const TMDB_WAIT: Duration = Duration::from_secs(3);

/// Whether and how far a movie can be watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AvailabilityState {
    /// An ingest finished and every segment is held by a live node.
    Complete,
    /// An ingest is still running.
    Ingesting,
    /// Known, but no live node holds it (fully) now.
    Unavailable,
}

/// `availability` of a movie card.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Availability {
    pub state: AvailabilityState,
    /// 0-100: for `ingesting`, how much of the expected duration is done.
    pub percent: f32,
}

/// One movie in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MovieCard {
    pub id: String,
    pub title: String,
    pub year: Option<u16>,
    pub genres: Vec<String>,
    pub runtime_min: Option<u16>,
    /// `/images/<hash>`.
    pub poster_url: Option<String>,
    pub availability: Availability,
    /// Live nodes holding any of the movie.
    pub nodes: usize,
    /// Unix seconds of the movie's first manifest.
    pub added_at: u64,
}

/// `GET /api/v1/movies/{id}`: the card plus details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MovieDetail {
    #[serde(flatten)]
    pub card: MovieCard,
    pub overview: String,
    pub backdrop_url: Option<String>,
    pub tmdb_id: Option<u64>,
    /// Rendition names of the manifest the movie plays from, top first.
    pub renditions: Vec<String>,
    /// Duration of that manifest, seconds.
    pub duration_s: f64,
}

/// `GET /api/v1/catalog`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogPage {
    pub results: Vec<MovieCard>,
    pub page: usize,
    pub per_page: usize,
    /// Matches over all pages.
    pub total: usize,
    /// Every genre in the catalog, sorted.
    pub genres: Vec<String>,
}

/// What `/api/v1/catalog` was asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogQuery {
    pub q: Option<String>,
    pub genre: Option<String>,
    pub page: usize,
    pub per_page: usize,
}

impl CatalogQuery {
    /// Parses the raw query string; unknown keys are ignored.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut out = Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            ..Self::default()
        };
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let number = |what: &str| {
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{what} must be a positive whole number"))
            };
            match key.as_ref() {
                "q" => {
                    if value.len() > MAX_QUERY_LEN {
                        return Err(format!("q is longer than {MAX_QUERY_LEN} bytes"));
                    }
                    let q = value.trim();
                    out.q = (!q.is_empty()).then(|| q.to_owned());
                }
                "genre" => {
                    let g = value.trim();
                    out.genre = (!g.is_empty()).then(|| g.chars().take(64).collect());
                }
                "page" => {
                    out.page = number("page")?;
                    if out.page == 0 || out.page > MAX_PAGE {
                        return Err(format!("page must be 1-{MAX_PAGE}"));
                    }
                }
                "per_page" => {
                    let n = number("per_page")?;
                    if n == 0 {
                        return Err("per_page must be at least 1".to_owned());
                    }
                    out.per_page = n.min(MAX_PER_PAGE);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Everything known about one movie, merged: the detail (with its card) and the words its
/// titles are searched by.
#[derive(Debug, Clone, PartialEq)]
pub struct MovieInfo {
    pub detail: MovieDetail,
    /// Other titles it was ingested under (searched too).
    pub alt_titles: Vec<String>,
}

/// The two routes.
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let list = {
        let state = state.clone();
        warp::path!("api" / "v1" / "catalog")
            .and(warp::get())
            .and(query)
            .and_then(move |raw: String| {
                let state = state.clone();
                async move {
                    let res = catalog(&state, &raw).await;
                    state.metrics.request("catalog", res.status().as_u16());
                    Ok::<_, Infallible>(res)
                }
            })
    };
    let one = warp::path!("api" / "v1" / "movies" / String)
        .and(warp::get())
        .and_then(move |id: String| {
            let state = state.clone();
            async move {
                let res = movie(&state, &id).await;
                state.metrics.request("movie", res.status().as_u16());
                Ok::<_, Infallible>(res)
            }
        });
    list.or(one).unify()
}

fn catalog_down() -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the node is shutting down",
    )
}

/// How long merged movie infos are reused when the catalog has not changed (TMDb records
/// fetched meanwhile show up after this).
const LISTING_MAX_AGE: Duration = Duration::from_secs(10);

/// The merged infos of the catalog's listing, rebuilt only when the catalog's listing
/// changed (or [`LISTING_MAX_AGE`] passed): a request then costs a search over them, not a
/// walk over every manifest. Concurrent requests wait for one rebuild.
#[derive(Clone, Default)]
pub struct ListingCache(Arc<tokio::sync::Mutex<Option<CachedListing>>>);

struct CachedListing {
    source: Arc<Vec<MovieSummary>>,
    built: Instant,
    infos: Arc<Vec<MovieInfo>>,
}

impl ListingCache {
    async fn infos(&self, state: &GatewayState) -> Option<Arc<Vec<MovieInfo>>> {
        let movies = state.catalog.movies().await.ok()?;
        let mut cached = self.0.lock().await;
        if let Some(c) = cached.as_ref() {
            if Arc::ptr_eq(&c.source, &movies) && c.built.elapsed() < LISTING_MAX_AGE {
                return Some(c.infos.clone());
            }
        }
        let mut infos = Vec::with_capacity(movies.len());
        for summary in movies.iter() {
            let manifests = manifests_of(state, summary).await;
            let tmdb = state.metadata.cached(&summary.movie_id).await;
            infos.push(movie_info(summary, &manifests, tmdb.as_deref()));
        }
        let infos = Arc::new(infos);
        *cached = Some(CachedListing {
            source: movies,
            built: Instant::now(),
            infos: infos.clone(),
        });
        Some(infos)
    }
}

async fn catalog(state: &GatewayState, raw: &str) -> Response {
    let query = match CatalogQuery::parse(raw) {
        Ok(q) => q,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    let Some(infos) = state.listing.infos(state).await else {
        return catalog_down();
    };
    warp::reply::json(&search(&infos, &query)).into_response()
}

async fn movie(state: &GatewayState, raw_id: &str) -> Response {
    let Ok(id) = MovieId::new(raw_id) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_movie_id",
            "movie ids are 1-64 of [a-z0-9-], e.g. tmdb-603",
        );
    };
    let Ok(found) = state.catalog.movie(&id).await else {
        return catalog_down();
    };
    let Some(summary) = found.as_ref() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the network has no movie {id}"),
        );
    };
    let manifests = manifests_of(state, summary).await;
    let tmdb = state.metadata.resolve(&id, TMDB_WAIT).await;
    warp::reply::json(&movie_info(summary, &manifests, tmdb.as_deref()).detail).into_response()
}

/// The manifests of `summary.manifests`, in the same order (`None` for one the catalog
/// dropped meanwhile).
async fn manifests_of(state: &GatewayState, summary: &MovieSummary) -> Vec<Option<Arc<Manifest>>> {
    let mut out = Vec::with_capacity(summary.manifests.len());
    for m in &summary.manifests {
        out.push(
            state
                .catalog
                .manifest(m.id)
                .await
                .ok()
                .flatten()
                .map(|c| c.manifest),
        );
    }
    out
}

fn image_url(hash: &SegmentHash) -> String {
    format!("/images/{hash}")
}

/// Merges a catalog summary, its manifests (same order as `summary.manifests`, newest
/// first) and TMDb's record into what the routes show.
pub fn movie_info(
    summary: &MovieSummary,
    manifests: &[Option<Arc<Manifest>>],
    tmdb: Option<&TmdbMovie>,
) -> MovieInfo {
    // Manifest metadata, field by field from the newest manifest that has it.
    let metas: Vec<&MovieMeta> = manifests.iter().flatten().map(|m| &m.meta).collect();
    let overview = metas
        .iter()
        .map(|m| m.overview.as_str())
        .find(|o| !o.is_empty())
        .unwrap_or("");
    let genres = metas
        .iter()
        .map(|m| &m.genres)
        .find(|g| !g.is_empty())
        .cloned()
        .unwrap_or_default();
    let runtime = metas.iter().find_map(|m| m.runtime_min);
    let poster = metas.iter().find_map(|m| m.poster);
    let backdrop = metas.iter().find_map(|m| m.backdrop);
    let tmdb_id = metas
        .iter()
        .find_map(|m| m.tmdb_id)
        .or_else(|| crate::metadata::tmdb_id_of(&summary.movie_id));
    let added_at = manifests
        .iter()
        .flatten()
        .map(|m| m.created_at)
        .min()
        .unwrap_or(0);

    // Which manifest the movie plays from: a complete one every segment of which a live
    // node holds; else a running ingest somebody holds; else the newest.
    let pairs: Vec<_> = summary
        .manifests
        .iter()
        .zip(manifests.iter().map(Option::as_deref))
        .collect();
    let fully_held = |s: &crate::catalog::ManifestSummary| {
        s.complete_holders > 0 || s.available_percent >= 99.999
    };
    let playable = pairs.iter().find(|(s, _)| s.complete && fully_held(s));
    let ingesting = pairs.iter().find(|(s, _)| !s.complete && s.holders > 0);
    let (chosen, availability) = match (playable, ingesting) {
        (Some(p), _) => (
            Some(p),
            Availability {
                state: AvailabilityState::Complete,
                percent: 100.0,
            },
        ),
        (None, Some(p)) => {
            let (s, m) = p;
            let expected = m
                .and_then(|m| m.meta.expected_duration_ms)
                .filter(|d| *d > 0);
            let percent = match expected {
                Some(total) => (s.duration_ms as f64 * 100.0 / total as f64).min(99.9) as f32,
                None => s.available_percent,
            };
            (
                Some(p),
                Availability {
                    state: AvailabilityState::Ingesting,
                    percent: percent.clamp(0.0, 100.0),
                },
            )
        }
        (None, None) => (
            pairs.first(),
            Availability {
                state: AvailabilityState::Unavailable,
                percent: summary
                    .manifests
                    .iter()
                    .map(|m| m.available_percent)
                    .fold(0.0, f32::max),
            },
        ),
    };
    let (renditions, duration_ms, complete) = chosen
        .map(|(s, _)| (s.renditions.clone(), s.duration_ms, s.complete))
        .unwrap_or_default();
    let runtime_from_duration = (complete && duration_ms > 0)
        .then(|| u16::try_from((duration_ms + 30_000) / 60_000).ok())
        .flatten()
        .filter(|m| *m > 0);

    let tmdb_title = tmdb.map(|t| t.title.as_str()).filter(|t| !t.is_empty());
    let title = tmdb_title.unwrap_or(&summary.title).to_owned();
    let mut alt_titles: Vec<String> = Vec::new();
    for t in std::iter::once(summary.title.as_str())
        .chain(manifests.iter().flatten().map(|m| m.title.as_str()))
    {
        if t != title && !alt_titles.iter().any(|a| a == t) {
            alt_titles.push(t.to_owned());
        }
    }
    let card = MovieCard {
        id: summary.movie_id.to_string(),
        title,
        year: tmdb.and_then(|t| t.year).or(summary.year),
        genres: tmdb
            .map(|t| t.genres.clone())
            .filter(|g| !g.is_empty())
            .unwrap_or(genres),
        runtime_min: tmdb
            .and_then(|t| t.runtime_min)
            .or(runtime)
            .or(runtime_from_duration),
        poster_url: tmdb
            .and_then(|t| t.poster)
            .or(poster)
            .map(|h| image_url(&h)),
        availability,
        nodes: summary.holders,
        added_at,
    };
    MovieInfo {
        detail: MovieDetail {
            card,
            overview: tmdb
                .map(|t| t.overview.as_str())
                .filter(|o| !o.is_empty())
                .unwrap_or(overview)
                .to_owned(),
            backdrop_url: tmdb
                .and_then(|t| t.backdrop)
                .or(backdrop)
                .map(|h| image_url(&h)),
            tmdb_id: tmdb.map(|t| t.tmdb_id).or(tmdb_id),
            renditions,
            duration_s: duration_ms as f64 / 1000.0,
        },
        alt_titles,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::gateway::search::distance;

    fn movie(
        id: &str,
        title: &str,
        year: Option<u16>,
        genres: &[&str],
        added_at: u64,
    ) -> MovieInfo {
        MovieInfo {
            detail: MovieDetail {
                card: MovieCard {
                    id: id.to_owned(),
                    title: title.to_owned(),
                    year,
                    genres: genres.iter().map(|g| (*g).to_owned()).collect(),
                    runtime_min: None,
                    poster_url: None,
                    availability: Availability {
                        state: AvailabilityState::Complete,
                        percent: 100.0,
                    },
                    nodes: 1,
                    added_at,
                },
                overview: String::new(),
                backdrop_url: None,
                tmdb_id: None,
                renditions: vec![],
                duration_s: 0.0,
            },
            alt_titles: vec![],
        }
    }

    fn library() -> Vec<MovieInfo> {
        vec![
            movie(
                "tmdb-603",
                "The Matrix",
                Some(1999),
                &["Action", "Science Fiction"],
                10,
            ),
            movie(
                "tmdb-604",
                "The Matrix Reloaded",
                Some(2003),
                &["Action"],
                20,
            ),
            movie(
                "tmdb-605",
                "The Matrix Revolutions",
                Some(2003),
                &["Action"],
                30,
            ),
            movie(
                "tmdb-62",
                "2001: A Space Odyssey",
                Some(1968),
                &["Science Fiction"],
                40,
            ),
            movie(
                "tmdb-13",
                "Forrest Gump",
                Some(1994),
                &["Drama", "Comedy"],
                50,
            ),
            movie(
                "tmdb-680",
                "Pulp Fiction",
                Some(1994),
                &["Crime", "Thriller"],
                60,
            ),
            movie(
                "local-amelie",
                "Amélie",
                Some(2001),
                &["Comedy", "Romance"],
                70,
            ),
            movie(
                "tmdb-78",
                "Blade Runner",
                Some(1982),
                &["Science Fiction"],
                80,
            ),
        ]
    }

    fn ids(q: &str) -> Vec<String> {
        let query = CatalogQuery {
            q: Some(q.to_owned()),
            page: 1,
            per_page: 100,
            ..CatalogQuery::default()
        };
        search(&library(), &query)
            .results
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn exact_beats_prefix_beats_typo() {
        // "matrix": exact in all three; the shortest title (fewest words) first.
        assert_eq!(ids("matrix"), ["tmdb-603", "tmdb-604", "tmdb-605"]);
        // The whole title typed ranks first even when longer titles also match.
        assert_eq!(ids("the matrix")[0], "tmdb-603");
        // Prefix: "rel" only matches Reloaded; "re" matches Reloaded and Revolutions.
        assert_eq!(ids("matrix rel"), ["tmdb-604"]);
        assert_eq!(ids("matrix re"), ["tmdb-604", "tmdb-605"]);
        // Typos: a transposition and a substitution.
        assert_eq!(ids("matirx"), ["tmdb-603", "tmdb-604", "tmdb-605"]);
        assert_eq!(ids("forest gump"), ["tmdb-13"]);
        assert_eq!(ids("pulp fictoin"), ["tmdb-680"]);
        // Long words tolerate two typos, short ones none.
        assert_eq!(ids("revolutoins"), ["tmdb-605"]);
        assert_eq!(ids("revxlutoins"), ["tmdb-605"]);
        assert!(ids("gmp").is_empty());
        // A typo while still typing the last word.
        assert_eq!(ids("blade runnr"), ["tmdb-78"]);
        assert_eq!(ids("blade rinn"), ["tmdb-78"]);
        // Exact match outranks a typo match of another title.
        let q = CatalogQuery {
            q: Some("pulp".into()),
            page: 1,
            per_page: 10,
            ..CatalogQuery::default()
        };
        let mut lib = library();
        lib.push(movie("local-pulps", "Pull", None, &[], 90));
        let got: Vec<_> = search(&lib, &q).results.into_iter().map(|c| c.id).collect();
        assert_eq!(got, ["tmdb-680", "local-pulps"]);
    }

    #[test]
    fn every_word_must_match_but_years_only_help() {
        assert!(ids("matrix zebra").is_empty());
        assert_eq!(ids("matrix 1999"), ["tmdb-603", "tmdb-604", "tmdb-605"]);
        assert_eq!(ids("matrix 2003"), ["tmdb-604", "tmdb-605", "tmdb-603"]);
        // A number in the title is a title word; a year matches the year.
        assert_eq!(ids("2001"), ["tmdb-62", "local-amelie"]);
        assert_eq!(ids("1994").len(), 2);
        // Accents and punctuation do not matter.
        assert_eq!(ids("amelie"), ["local-amelie"]);
        assert_eq!(ids("AMÉLIE!"), ["local-amelie"]);
        assert_eq!(ids("space odyssey"), ["tmdb-62"]);
        assert!(ids("zzzz").is_empty());
    }

    #[test]
    fn alternative_titles_are_searched() {
        let mut lib = library();
        lib[4].alt_titles = vec!["Forrest.Gump.1994.1080p".into()];
        lib[4].detail.card.title = "Forrest Gump (TMDb)".into();
        let q = CatalogQuery {
            q: Some("1080p".into()),
            page: 1,
            per_page: 10,
            ..CatalogQuery::default()
        };
        assert_eq!(search(&lib, &q).total, 1);
    }

    #[test]
    fn browse_is_newest_first_with_genres_and_paging() {
        let all = search(
            &library(),
            &CatalogQuery {
                page: 1,
                per_page: 3,
                ..CatalogQuery::default()
            },
        );
        assert_eq!(all.total, 8);
        assert_eq!(
            all.results
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            ["tmdb-78", "local-amelie", "tmdb-680"]
        );
        assert_eq!(
            all.genres,
            [
                "Action",
                "Comedy",
                "Crime",
                "Drama",
                "Romance",
                "Science Fiction",
                "Thriller"
            ]
        );
        let page3 = search(
            &library(),
            &CatalogQuery {
                page: 3,
                per_page: 3,
                ..CatalogQuery::default()
            },
        );
        assert_eq!(page3.results.len(), 2);
        assert_eq!(page3.page, 3);
        let beyond = search(
            &library(),
            &CatalogQuery {
                page: 9,
                per_page: 3,
                ..CatalogQuery::default()
            },
        );
        assert!(beyond.results.is_empty());
        assert_eq!(beyond.total, 8);
        let sci = search(
            &library(),
            &CatalogQuery {
                genre: Some("science fiction".into()),
                page: 1,
                per_page: 10,
                ..CatalogQuery::default()
            },
        );
        assert_eq!(sci.total, 3);
        // Genre and query together.
        let sci_matrix = search(
            &library(),
            &CatalogQuery {
                q: Some("matrix".into()),
                genre: Some("Science Fiction".into()),
                page: 1,
                per_page: 10,
            },
        );
        assert_eq!(sci_matrix.total, 1);
        // Every genre is listed even when filtering.
        assert_eq!(sci_matrix.genres.len(), 7);
    }

    #[test]
    fn query_strings_are_parsed_strictly() {
        let q = CatalogQuery::parse("q=the+matrix&genre=Action&page=2&per_page=500&x=1").unwrap();
        assert_eq!(q.q.as_deref(), Some("the matrix"));
        assert_eq!(q.genre.as_deref(), Some("Action"));
        assert_eq!((q.page, q.per_page), (2, MAX_PER_PAGE));
        let d = CatalogQuery::parse("").unwrap();
        assert_eq!((d.q, d.page, d.per_page), (None, 1, DEFAULT_PER_PAGE));
        assert_eq!(CatalogQuery::parse("q=%20%20").unwrap().q, None);
        for bad in ["page=0", "page=-1", "page=abc", "per_page=0", "page=10001"] {
            assert!(CatalogQuery::parse(bad).is_err(), "{bad}");
        }
        assert!(CatalogQuery::parse(&format!("q={}", "a".repeat(MAX_QUERY_LEN + 1))).is_err());
    }

    #[test]
    fn distances() {
        assert_eq!(distance("matrix", "matrix", 2), 0);
        assert_eq!(distance("matirx", "matrix", 2), 1);
        assert_eq!(distance("matrx", "matrix", 2), 1);
        assert_eq!(distance("mxtrxx", "matrix", 1), 2);
        assert_eq!(distance("a", "abcdef", 2), 3);
        assert_eq!(words("The.Matrix (1999)"), ["the", "matrix", "1999"]);
    }
}
