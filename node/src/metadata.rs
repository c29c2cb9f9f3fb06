//! Movie metadata: what a viewer reads about a movie (overview, genres, runtime, poster and
//! backdrop images) beyond the title and year a manifest names.
//!
//! Two sources, in this order of preference:
//! - **TMDb** (v3 API through reqwest) for movies whose id is `tmdb-N`, when the node has an
//!   API key (`[metadata] tmdb_api_key`). One task owns the cache ([`Metadata::start`]): the
//!   resolved records (kept in memory and as one JSON file per movie under
//!   `<data_dir>/metadata/tmdb/`, so a restart does not ask TMDb again), at most one fetch in
//!   flight per movie (and [`MAX_CONCURRENT_FETCHES`] overall), and failures remembered for
//!   [`TmdbConfig::retry_after`] so a TMDb that is down is not hammered. Images are
//!   downloaded once, checked ([`check_image`]) and kept in the segment store under their
//!   BLAKE3 hash, like segments. The HTTP client is the shared `reelnet_runtime::tmdb`.
//! - **The manifest's own [`MovieMeta`](reelnet_proto::MovieMeta)**, which the ingest
//!   filled from its command line or a sidecar JSON (`ingest::meta`); it travels with the
//!   signed manifest, so every node has it, and its images are fetched from the nodes that
//!   hold them (`gateway::images`).
//!
//! Without a key, or when TMDb fails, the manifest's meta is used and nothing breaks.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelnet_proto::manifest::{MAX_GENRES, MAX_GENRE_LEN, MAX_OVERVIEW_LEN, MAX_TITLE_LEN};
use reelnet_proto::{MovieId, SegmentHash};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use reelnet_runtime::tmdb::{printable, year_of, TmdbClient, TmdbError, MAX_JSON_BYTES};

use crate::ingest::meta::{check_image, MAX_IMAGE_BYTES};
use crate::store::Store;

/// Most TMDb fetches running at once; more wait in a queue.
pub const MAX_CONCURRENT_FETCHES: usize = 4;

/// The TMDb id a movie id names: `tmdb-603` → 603 (only the canonical spelling).
pub fn tmdb_id_of(movie: &MovieId) -> Option<u64> {
    let n: u64 = movie.as_str().strip_prefix("tmdb-")?.parse().ok()?;
    (MovieId::from_tmdb(n) == *movie).then_some(n)
}

/// How the TMDb client behaves.
#[derive(Debug, Clone)]
pub struct TmdbConfig {
    /// v3 API key; empty turns TMDb off.
    pub api_key: String,
    /// Base URL of the v3 API, e.g. `https://api.themoviedb.org/3`.
    pub api_url: String,
    /// Base URL of images, e.g. `https://image.tmdb.org/t/p`.
    pub image_url: String,
    /// Where resolved records are kept, one JSON file per movie.
    pub cache_dir: PathBuf,
    /// Time limit of each HTTP request.
    pub timeout: Duration,
    /// How long a failed fetch (TMDb down, timeouts, bad answers) is remembered.
    pub retry_after: Duration,
    /// How long "TMDb does not know this movie" (404) is remembered.
    pub missing_retry_after: Duration,
}

impl TmdbConfig {
    /// From the node's `[metadata]` section.
    pub fn from_config(section: &crate::config::MetadataConfig, data_dir: &Path) -> Self {
        Self {
            api_key: section.tmdb_api_key.trim().to_owned(),
            api_url: section.tmdb_api_url.trim_end_matches('/').to_owned(),
            image_url: section.tmdb_image_url.trim_end_matches('/').to_owned(),
            cache_dir: data_dir.join("metadata").join("tmdb"),
            timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(60),
            missing_retry_after: Duration::from_secs(6 * 3600),
        }
    }
}

/// What TMDb says about one movie, as cached on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TmdbMovie {
    pub tmdb_id: u64,
    /// Empty when TMDb gave none.
    pub title: String,
    pub year: Option<u16>,
    pub overview: String,
    pub genres: Vec<String>,
    pub runtime_min: Option<u16>,
    /// BLAKE3 of the poster (w500), held in this node's store.
    pub poster: Option<SegmentHash>,
    /// BLAKE3 of the backdrop (w1280), held in this node's store.
    pub backdrop: Option<SegmentHash>,
    /// Unix seconds of the fetch.
    pub fetched_at: u64,
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataStats {
    /// Records served from the cache (memory).
    pub hits: u64,
    /// Fetches from TMDb started.
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Records loaded from disk at start.
    pub loaded: u64,
}

type Answer = Option<Arc<TmdbMovie>>;

enum Command {
    Get {
        movie: MovieId,
        tmdb_id: u64,
        /// Whether the caller waits for a fetch (else it gets what is cached now).
        wait: bool,
        reply: oneshot::Sender<Answer>,
    },
    Done {
        movie: MovieId,
        result: Result<TmdbMovie, Failure>,
    },
    Stats {
        reply: oneshot::Sender<MetadataStats>,
    },
    Search {
        query: String,
        reply: oneshot::Sender<SearchAnswer>,
    },
    SearchDone {
        query: String,
        result: SearchAnswer,
    },
}

/// One match of a TMDb title search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmdbHit {
    pub tmdb_id: u64,
    pub title: String,
    pub year: Option<u16>,
    pub overview: String,
    /// The small poster on TMDb's image server (loaded by the browser), if any.
    pub poster_url: Option<String>,
}

/// A search's matches, or why TMDb could not answer.
pub type SearchAnswer = Result<Arc<Vec<TmdbHit>>, String>;

/// Longest search query sent to TMDb (characters).
pub const MAX_SEARCH_QUERY_CHARS: usize = 100;
/// Matches kept of a search (TMDb's first page).
const MAX_SEARCH_HITS: usize = 20;
/// How long a search's answer is reused.
const SEARCH_TTL: Duration = Duration::from_secs(600);
/// Searches remembered at most.
const MAX_CACHED_SEARCHES: usize = 512;
/// Searches running at the same time at most (more wait their turn in TMDb's queue).
const MAX_CONCURRENT_SEARCHES: usize = 4;

#[derive(Debug)]
struct Failure {
    /// TMDb does not know the movie (remembered longer).
    missing: bool,
    message: String,
}

enum Entry {
    Ready(Arc<TmdbMovie>),
    /// Fetching (or queued); callers waiting for it.
    Pending(Vec<oneshot::Sender<Answer>>),
    Failed {
        until: Instant,
    },
}

/// Handle to the metadata task. Cheap to clone. A disabled handle (no API key) answers
/// `None` at once.
#[derive(Clone)]
pub struct Metadata {
    tx: Option<mpsc::Sender<Command>>,
}

impl Metadata {
    /// A handle that never asks TMDb.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Starts the metadata task (a no-op task when `config.api_key` is empty, or when no
    /// HTTP client can be built, which is logged); it and its fetches stop when `cancel`
    /// fires.
    pub fn start(
        config: TmdbConfig,
        store: Store,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let idle = || {
            let task = reelnet_runtime::shutdown::spawn("metadata", async {
                Ok::<(), std::convert::Infallible>(())
            });
            (Self::disabled(), task)
        };
        if config.api_key.is_empty() {
            return idle();
        }
        let http = match TmdbClient::new(
            &config.api_url,
            &config.api_key,
            concat!("reelnet-node/", env!("CARGO_PKG_VERSION")),
            config.timeout,
        ) {
            Ok(Some(client)) => client.with_image_url(&config.image_url),
            Ok(None) => return idle(),
            Err(err) => {
                tracing::error!(%err, "cannot build the TMDb client; TMDb lookups are off");
                return idle();
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let state = State {
            config: Arc::new(config),
            http,
            store,
            tx: tx.clone(),
            entries: HashMap::new(),
            queue: VecDeque::new(),
            running: 0,
            stats: MetadataStats::default(),
            cancel: cancel.clone(),
            searches: HashMap::new(),
            searching: HashMap::new(),
            search_queue: VecDeque::new(),
        };
        let task = reelnet_runtime::shutdown::spawn("metadata", state.run(rx, cancel));
        (Self { tx: Some(tx) }, task)
    }

    /// Whether TMDb is configured.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    async fn get(&self, movie: &MovieId, wait: bool) -> Answer {
        let tx = self.tx.as_ref()?;
        let tmdb_id = tmdb_id_of(movie)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Get {
            movie: movie.clone(),
            tmdb_id,
            wait,
            reply,
        })
        .await
        .ok()?;
        rx.await.ok().flatten()
    }

    /// What TMDb said about `movie`, if it is cached; on a miss a fetch starts in the
    /// background (unless one runs or failed recently) and this answers `None` at once.
    pub async fn cached(&self, movie: &MovieId) -> Option<Arc<TmdbMovie>> {
        self.get(movie, false).await
    }

    /// What TMDb says about `movie`, fetching it if needed and waiting at most `max_wait`
    /// (the fetch goes on in the background after that). `None` for movies without a TMDb
    /// id, without a key, or when TMDb fails.
    pub async fn resolve(&self, movie: &MovieId, max_wait: Duration) -> Option<Arc<TmdbMovie>> {
        tokio::time::timeout(max_wait, self.get(movie, true))
            .await
            .ok()
            .flatten()
    }

    /// Movies on TMDb whose title matches `query` (trimmed, at most
    /// [`MAX_SEARCH_QUERY_CHARS`]); answers are reused for ten minutes and a search already
    /// running is shared. `Err` when TMDb is off, down or answers nonsense.
    pub async fn search(&self, query: &str) -> SearchAnswer {
        let tx = self
            .tx
            .as_ref()
            .ok_or("TMDb is not configured on this node")?;
        let query: String = query
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_SEARCH_QUERY_CHARS)
            .collect::<String>()
            .to_lowercase();
        if query.is_empty() {
            return Ok(Arc::new(Vec::new()));
        }
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Search { query, reply })
            .await
            .map_err(|_| "the metadata task has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the metadata task has stopped".to_owned())?
    }

    /// Counters (all zero when disabled).
    pub async fn stats(&self) -> MetadataStats {
        let Some(tx) = &self.tx else {
            return MetadataStats::default();
        };
        let (reply, rx) = oneshot::channel();
        if tx.send(Command::Stats { reply }).await.is_err() {
            return MetadataStats::default();
        }
        rx.await.unwrap_or_default()
    }
}

struct State {
    config: Arc<TmdbConfig>,
    http: TmdbClient,
    store: Store,
    /// For fetch tasks to report back.
    tx: mpsc::Sender<Command>,
    entries: HashMap<MovieId, Entry>,
    /// Movies waiting for a fetch slot.
    queue: VecDeque<(MovieId, u64)>,
    running: usize,
    stats: MetadataStats,
    cancel: CancellationToken,
    /// Answered searches, with when they were answered.
    searches: HashMap<String, (Instant, Arc<Vec<TmdbHit>>)>,
    /// Searches waiting for TMDb, and who waits for each.
    searching: HashMap<String, Vec<oneshot::Sender<SearchAnswer>>>,
    /// Searches waiting for a slot.
    search_queue: VecDeque<String>,
}

impl State {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let dir = self.config.cache_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load_cache(&dir))
            .await
            .unwrap_or_default();
        self.stats.loaded = loaded.len() as u64;
        for (movie, record) in loaded {
            self.entries.insert(movie, Entry::Ready(Arc::new(record)));
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
            }
        }
        Ok(())
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Get {
                movie,
                tmdb_id,
                wait,
                reply,
            } => self.get(movie, tmdb_id, wait, reply),
            Command::Done { movie, result } => {
                self.running = self.running.saturating_sub(1);
                let (entry, answer) = match result {
                    Ok(record) => {
                        let record = Arc::new(record);
                        (Entry::Ready(record.clone()), Some(record))
                    }
                    Err(failure) => {
                        self.stats.failures += 1;
                        tracing::warn!(%movie, reason = %failure.message, "TMDb lookup failed");
                        let ttl = if failure.missing {
                            self.config.missing_retry_after
                        } else {
                            self.config.retry_after
                        };
                        (
                            Entry::Failed {
                                until: Instant::now() + ttl,
                            },
                            None,
                        )
                    }
                };
                if let Some(Entry::Pending(waiters)) = self.entries.insert(movie, entry) {
                    for w in waiters {
                        let _ = w.send(answer.clone());
                    }
                }
                self.start_queued();
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats.clone());
            }
            Command::Search { query, reply } => self.search(query, reply),
            Command::SearchDone { query, result } => {
                match &result {
                    Ok(hits) => {
                        if self.searches.len() >= MAX_CACHED_SEARCHES {
                            let now = Instant::now();
                            self.searches.retain(|_, (at, _)| now - *at < SEARCH_TTL);
                            if self.searches.len() >= MAX_CACHED_SEARCHES {
                                self.searches.clear();
                            }
                        }
                        self.searches
                            .insert(query.clone(), (Instant::now(), hits.clone()));
                    }
                    Err(err) => tracing::warn!(%query, %err, "TMDb search failed"),
                }
                for w in self.searching.remove(&query).unwrap_or_default() {
                    let _ = w.send(result.clone());
                }
                self.start_searches();
            }
        }
    }

    fn search(&mut self, query: String, reply: oneshot::Sender<SearchAnswer>) {
        if let Some((at, hits)) = self.searches.get(&query) {
            if at.elapsed() < SEARCH_TTL {
                let _ = reply.send(Ok(hits.clone()));
                return;
            }
        }
        if let Some(waiters) = self.searching.get_mut(&query) {
            waiters.push(reply);
            return;
        }
        self.searching.insert(query.clone(), vec![reply]);
        self.search_queue.push_back(query);
        self.start_searches();
    }

    fn start_searches(&mut self) {
        let running = self.searching.len() - self.search_queue.len();
        for _ in running..MAX_CONCURRENT_SEARCHES {
            let Some(query) = self.search_queue.pop_front() else {
                return;
            };
            let (http, tx, cancel) = (self.http.clone(), self.tx.clone(), self.cancel.clone());
            reelnet_runtime::shutdown::spawn("tmdb-search", async move {
                let result = tokio::select! {
                    r = search(&http, &query) => r.map(Arc::new).map_err(|f| f.message),
                    _ = cancel.cancelled() => return Ok(()),
                };
                let _ = tx.send(Command::SearchDone { query, result }).await;
                Ok::<(), std::convert::Infallible>(())
            });
        }
    }

    fn get(&mut self, movie: MovieId, tmdb_id: u64, wait: bool, reply: oneshot::Sender<Answer>) {
        match self.entries.get_mut(&movie) {
            Some(Entry::Ready(record)) => {
                self.stats.hits += 1;
                let _ = reply.send(Some(record.clone()));
                return;
            }
            Some(Entry::Pending(waiters)) => {
                if wait {
                    waiters.push(reply);
                } else {
                    let _ = reply.send(None);
                }
                return;
            }
            Some(Entry::Failed { until }) if *until > Instant::now() => {
                let _ = reply.send(None);
                return;
            }
            _ => {}
        }
        let waiters = if wait {
            vec![reply]
        } else {
            let _ = reply.send(None);
            Vec::new()
        };
        self.entries.insert(movie.clone(), Entry::Pending(waiters));
        self.queue.push_back((movie, tmdb_id));
        self.start_queued();
    }

    fn start_queued(&mut self) {
        while self.running < MAX_CONCURRENT_FETCHES {
            let Some((movie, tmdb_id)) = self.queue.pop_front() else {
                return;
            };
            self.running += 1;
            self.stats.fetches += 1;
            let (config, http, store, tx, cancel) = (
                self.config.clone(),
                self.http.clone(),
                self.store.clone(),
                self.tx.clone(),
                self.cancel.clone(),
            );
            reelnet_runtime::shutdown::spawn("tmdb-fetch", async move {
                let result = tokio::select! {
                    r = fetch(&config, &http, &store, &movie, tmdb_id) => r,
                    _ = cancel.cancelled() => return Ok(()),
                };
                let _ = tx.send(Command::Done { movie, result }).await;
                Ok::<(), std::convert::Infallible>(())
            });
        }
    }
}

/// Reads every cached record (a bad file is skipped with a warning).
fn load_cache(dir: &Path) -> Vec<(MovieId, TmdbMovie)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(movie) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| MovieId::new(s).ok())
        else {
            continue;
        };
        let parsed = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                let mut text = Vec::new();
                f.take(MAX_JSON_BYTES as u64)
                    .read_to_end(&mut text)
                    .map_err(|e| e.to_string())?;
                serde_json::from_slice::<TmdbMovie>(&text).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(record) => out.push((movie, record)),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "skipping a bad metadata cache file")
            }
        }
    }
    out
}

/// Writes a record to the cache directory (temporary file, sync, rename).
fn save_cache(dir: &Path, movie: &MovieId, record: &TmdbMovie) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{movie}.json"));
    let tmp = dir.join(format!(".{movie}.{}.tmp", rand::random::<u64>()));
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// TMDb's `/movie/{id}` answer (the parts used).
#[derive(Debug, Deserialize)]
struct TmdbMovieJson {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    release_date: Option<String>,
    #[serde(default)]
    overview: Option<String>,
    #[serde(default)]
    genres: Vec<TmdbGenre>,
    #[serde(default)]
    runtime: Option<u32>,
    #[serde(default)]
    poster_path: Option<String>,
    #[serde(default)]
    backdrop_path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TmdbGenre {
    name: String,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        missing: false,
        message: message.into(),
    }
}

/// A failed TMDb call, worded as this node has always logged and reported it (`what`
/// answered with a bad status: "TMDb" or "TMDb image").
fn tmdb_failure(err: TmdbError, what: &str) -> Failure {
    fail(match err {
        TmdbError::Http(message) => message,
        TmdbError::Status(code) => match reqwest::StatusCode::from_u16(code) {
            Ok(status) => format!("{what} answered {status}"),
            Err(_) => format!("{what} answered {code}"),
        },
        TmdbError::TooLarge(limit) => format!("answer larger than {limit} bytes"),
        TmdbError::Bad(message) => format!("bad TMDb answer: {message}"),
    })
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// An image path as TMDb gives it (`/abc.jpg`); anything else is ignored.
fn image_path(p: Option<&str>) -> Option<&str> {
    let p = p?;
    let ok = p.len() > 1
        && p.len() <= 200
        && p.starts_with('/')
        && !p.contains("..")
        && p[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(p)
}

/// A title from TMDb: no control characters, trimmed, at most [`MAX_TITLE_LEN`] bytes.
fn clean_title(title: Option<&str>) -> String {
    clip(printable(title).trim(), MAX_TITLE_LEN)
}

/// TMDb's `/search/movie` answer (the parts used).
#[derive(Debug, Deserialize)]
struct TmdbSearchJson {
    #[serde(default)]
    results: Vec<TmdbSearchHitJson>,
}

#[derive(Debug, Deserialize)]
struct TmdbSearchHitJson {
    id: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    release_date: Option<String>,
    #[serde(default)]
    overview: Option<String>,
    #[serde(default)]
    poster_path: Option<String>,
}

/// Longest overview kept of a search match (characters).
const SEARCH_OVERVIEW_CHARS: usize = 300;

async fn search(http: &TmdbClient, query: &str) -> Result<Vec<TmdbHit>, Failure> {
    let json: TmdbSearchJson = http
        .search_movies(query)
        .await
        .map_err(|e| tmdb_failure(e, "TMDb"))?;
    Ok(json
        .results
        .into_iter()
        .filter(|h| h.id > 0)
        .map(|h| TmdbHit {
            tmdb_id: h.id,
            title: clean_title(h.title.as_deref()),
            year: year_of(h.release_date.as_deref()),
            overview: h
                .overview
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(SEARCH_OVERVIEW_CHARS)
                .collect::<String>()
                .trim()
                .to_owned(),
            poster_url: image_path(h.poster_path.as_deref())
                .map(|p| format!("{}/w185{p}", http.image_url())),
        })
        .filter(|h| !h.title.is_empty())
        .take(MAX_SEARCH_HITS)
        .collect())
}

async fn fetch(
    config: &TmdbConfig,
    http: &TmdbClient,
    store: &Store,
    movie: &MovieId,
    tmdb_id: u64,
) -> Result<TmdbMovie, Failure> {
    let json: TmdbMovieJson = match http.movie(tmdb_id).await {
        Ok(Some(json)) => json,
        Ok(None) => {
            return Err(Failure {
                missing: true,
                message: format!("TMDb knows no movie {tmdb_id}"),
            })
        }
        Err(err) => return Err(tmdb_failure(err, "TMDb")),
    };
    let poster = match image_path(json.poster_path.as_deref()) {
        Some(p) => fetch_image(http, store, &format!("w500{p}")).await?,
        None => None,
    };
    let backdrop = match image_path(json.backdrop_path.as_deref()) {
        Some(p) => fetch_image(http, store, &format!("w1280{p}")).await?,
        None => None,
    };
    let mut genres: Vec<String> = Vec::new();
    for g in json.genres {
        let name = clip(g.name.trim(), MAX_GENRE_LEN);
        if genres.len() < MAX_GENRES
            && !name.is_empty()
            && !name.chars().any(char::is_control)
            && !genres.iter().any(|x| x.eq_ignore_ascii_case(&name))
        {
            genres.push(name);
        }
    }
    let overview: String = json
        .overview
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let record = TmdbMovie {
        tmdb_id,
        title: clean_title(json.title.as_deref()),
        year: year_of(json.release_date.as_deref()),
        overview: clip(overview.trim(), MAX_OVERVIEW_LEN),
        genres,
        runtime_min: json
            .runtime
            .filter(|r| *r > 0)
            .and_then(|r| u16::try_from(r).ok()),
        poster,
        backdrop,
        fetched_at: crate::unix_now(),
    };
    let (dir, m, r) = (config.cache_dir.clone(), movie.clone(), record.clone());
    match tokio::task::spawn_blocking(move || save_cache(&dir, &m, &r)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%movie, %err, "cannot write the metadata cache"),
        Err(err) => tracing::warn!(%movie, %err, "metadata cache writer failed"),
    }
    tracing::info!(%movie, title = %record.title, "TMDb metadata cached");
    Ok(record)
}

/// Downloads one image (`{image_url}/{size_and_path}`), checks and stores it. A 404 is "no
/// image"; other failures fail the whole lookup (it is retried later).
async fn fetch_image(
    http: &TmdbClient,
    store: &Store,
    size_and_path: &str,
) -> Result<Option<SegmentHash>, Failure> {
    let Some(bytes) = http
        .image(size_and_path, MAX_IMAGE_BYTES)
        .await
        .map_err(|e| tmdb_failure(e, "TMDb image"))?
    else {
        return Ok(None);
    };
    check_image(&bytes).map_err(|e| fail(format!("TMDb image {size_and_path}: {e}")))?;
    let store = store.clone();
    let (hash, _) = tokio::task::spawn_blocking(move || store.put_segment(&bytes, None))
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
    Ok(Some(hash))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tmdb_ids_and_image_paths() {
        assert_eq!(tmdb_id_of(&MovieId::from_tmdb(603)), Some(603));
        assert_eq!(tmdb_id_of(&MovieId::new("tmdb-0603").unwrap()), None);
        assert_eq!(tmdb_id_of(&MovieId::derive("x", None)), None);
        assert_eq!(image_path(Some("/abc.jpg")), Some("/abc.jpg"));
        for bad in ["abc.jpg", "/../x", "/a/b.jpg", "/a?b", "/", "//evil.com/x"] {
            assert_eq!(image_path(Some(bad)), None, "{bad}");
        }
        assert_eq!(clip("héllo", 2), "h");
    }
}
