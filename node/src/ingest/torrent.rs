//! Torrent source for ingest: a librqbit session that downloads one torrent's video file and
//! exposes it to the transcoder as a loopback HTTP URL with Range support.
//!
//! [`TorrentInput::open`] resolves the torrent (a `.torrent` file, or a magnet link whose
//! metadata is fetched from peers within [`TorrentOptions::metadata_timeout`]), picks the
//! largest video file (by extension; else the largest file), starts downloading only that
//! file, and starts an HTTP server on `127.0.0.1:0` under a random path token
//! (`http://127.0.0.1:<port>/<token>`). FFmpeg opens that URL like any HTTP input.
//!
//! Every request is answered from a fresh librqbit `FileStream` (seek to the range start, then
//! read): reads block until the pieces arrive, and librqbit requests pieces ahead of each
//! stream's read position first, so the transcoder gets the file in playback order while it
//! downloads, and an MP4 `moov` atom at the end is fetched on demand. The body is streamed as
//! it is read through a small channel, so a stream's read position follows what the client
//! actually consumed, and a client that goes away releases its stream at once.
//!
//! Partial downloads resume: the download directory is kept, and on the next `open` librqbit's
//! initial check hashes the pieces already on disk and only fetches the rest.
//!
//! Nothing here talks to DHT, trackers, LSD or UPnP unless
//! [`TorrentOptions::use_dht_and_trackers`] is set; with it unset, peers are only those given
//! in [`TorrentOptions::peers`] (and `x.pe` peers of a magnet link).

use std::io::SeekFrom;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ListOnlyResponse, ListenerOptions,
    ManagedTorrent, Session, SessionOptions,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::{Filter, Reply};

/// Extensions (lower case) of files taken as video when picking the file to ingest.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mkv", "mp4", "m4v", "webm", "avi", "mov", "ts", "m2ts", "mpg", "mpeg", "wmv", "flv",
];

/// Largest `.torrent` file accepted (real ones are kilobytes to a few MiB).
pub const MAX_TORRENT_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Longest magnet link accepted.
pub const MAX_MAGNET_LEN: usize = 64 * 1024;

/// How many range requests may read from the torrent at once; more wait for a slot.
///
/// Each librqbit `FileStream` holds a permit of the session's blocking-work semaphore, the
/// same one that writing downloaded chunks to disk needs; the session is sized so that
/// these streams can never take all of it (which would stall the download for good).
pub const MAX_CONCURRENT_STREAMS: usize = 4;

/// librqbit's default blocking-work concurrency, kept free for disk writes and hashing.
const RQBIT_BLOCKING_PERMITS: usize = 8;

/// Smallest rate limit librqbit can honour: its limiter admits whole 16 KiB blocks.
const MIN_RATE_LIMIT_BPS: NonZeroU32 = match NonZeroU32::new(16 * 1024) {
    Some(v) => v,
    None => NonZeroU32::MIN,
};

/// Size of each chunk read from the stream and sent in the HTTP body.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks buffered between the torrent reader and the HTTP connection.
const BODY_CHANNEL_CHUNKS: usize = 4;

/// How long `shutdown` waits for the HTTP server to stop before abandoning it.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(5);

/// What to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentSpec {
    /// A `.torrent` file on disk.
    File(PathBuf),
    /// A `magnet:` link (or a bare 40-hex-digit info hash).
    Magnet(String),
}

/// How to download it.
#[derive(Debug, Clone)]
pub struct TorrentOptions {
    /// Where the torrent's files are written (inside the node's data dir). A partial download
    /// left here resumes on the next `open` of the same torrent.
    pub download_dir: PathBuf,
    /// Initial peers (`--peer`), e.g. a seeder of a local swarm.
    pub peers: Vec<SocketAddr>,
    /// Find peers through DHT, the torrent's trackers and local service discovery. Off on
    /// loopback testnets and in tests (no internet).
    pub use_dht_and_trackers: bool,
    /// Accept incoming peer connections on this TCP port (all interfaces; 0 = any free port).
    /// `None`: no listener, only outgoing connections.
    pub listen_port: Option<u16>,
    /// How long to wait for a magnet link's metadata from peers before giving up.
    pub metadata_timeout: Duration,
    /// Download rate limit in bytes per second (`None` = unlimited); raised to 16 KiB/s if
    /// lower.
    pub download_limit_bps: Option<NonZeroU32>,
}

impl Default for TorrentOptions {
    fn default() -> Self {
        Self {
            download_dir: PathBuf::from("downloads"),
            peers: Vec::new(),
            use_dht_and_trackers: false,
            listen_port: None,
            metadata_timeout: Duration::from_secs(120),
            download_limit_bps: None,
        }
    }
}

impl TorrentOptions {
    /// Defaults with the given download directory.
    pub fn new(download_dir: impl Into<PathBuf>) -> Self {
        Self {
            download_dir: download_dir.into(),
            ..Self::default()
        }
    }
}

/// Download progress of the selected file.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DownloadProgress {
    /// Verified bytes of the file on disk.
    pub downloaded_bytes: u64,
    /// Length of the file.
    pub total_bytes: u64,
    /// Every byte of the file is on disk and verified.
    pub finished: bool,
    /// Current download speed, when the torrent is live.
    pub download_speed_bps: Option<u64>,
    /// Connected peers, when the torrent is live.
    pub live_peers: Option<u32>,
}

/// Why a torrent could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// The `.torrent` file or magnet link is malformed.
    #[error("bad torrent: {0}")]
    BadTorrent(String),
    /// The torrent has no non-empty file.
    #[error("the torrent has no non-empty files")]
    NoFiles,
    /// librqbit failed to start the session or the download.
    #[error("torrent session: {0}")]
    Session(String),
    /// Local I/O failed (reading the `.torrent`, creating the download dir, binding the server).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The magnet link's metadata could not be fetched from any peer.
    #[error("cannot fetch the torrent's metadata: {0}")]
    Metadata(String),
    /// No peer sent the magnet link's metadata in time.
    #[error("no peer sent the torrent's metadata within {0:?}")]
    MetadataTimeout(Duration),
}

impl TorrentError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// A torrent being downloaded, its video file served at [`TorrentInput::url`].
///
/// Owns the librqbit session, the torrent handle and the HTTP server. Call
/// [`TorrentInput::shutdown`] to stop them cleanly; dropping it cancels them without waiting.
pub struct TorrentInput {
    session: Arc<Session>,
    handle: Arc<ManagedTorrent>,
    file_id: usize,
    file_name: String,
    file_len: u64,
    url: String,
    http_addr: SocketAddr,
    cancel: CancellationToken,
    server: Option<JoinHandle<()>>,
    readers: TaskTracker,
}

impl std::fmt::Debug for TorrentInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentInput")
            .field("file_id", &self.file_id)
            .field("file_name", &self.file_name)
            .field("file_len", &self.file_len)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl TorrentInput {
    /// Resolves the torrent, picks its video file, starts downloading only that file and
    /// starts the loopback HTTP server. Returns once the file is readable through the URL
    /// (reads still wait for pieces that have not arrived).
    pub async fn open(spec: TorrentSpec, opts: TorrentOptions) -> Result<Self, TorrentError> {
        // Validate the input before creating anything.
        let (add, mut extra_peers) = match &spec {
            TorrentSpec::File(path) => {
                let bytes = read_torrent_file(path)?;
                // Fail fast, before any session exists.
                librqbit::torrent_from_bytes(&bytes)
                    .map_err(|e| TorrentError::BadTorrent(format!("{}: {e}", path.display())))?
                    .info
                    .data
                    .validate()
                    .map_err(|e| TorrentError::BadTorrent(format!("{}: {e}", path.display())))?;
                (AddTorrent::from_bytes(bytes), vec![])
            }
            TorrentSpec::Magnet(link) => {
                let link = link.trim();
                if link.len() > MAX_MAGNET_LEN {
                    return Err(TorrentError::BadTorrent("magnet link too long".to_owned()));
                }
                let magnet = librqbit::Magnet::parse(link)
                    .map_err(|e| TorrentError::BadTorrent(format!("invalid magnet link: {e:#}")))?;
                if magnet.as_id20().is_none() {
                    return Err(TorrentError::BadTorrent(
                        "magnet link has no BitTorrent v1 info hash (urn:btih)".to_owned(),
                    ));
                }
                (AddTorrent::from_url(link.to_owned()), magnet_peers(link))
            }
        };
        let mut peers = opts.peers.clone();
        peers.append(&mut extra_peers);
        dedup(&mut peers);
        if matches!(spec, TorrentSpec::Magnet(_)) && peers.is_empty() && !opts.use_dht_and_trackers
        {
            return Err(TorrentError::Metadata(
                "no peers to ask (no --peer, no x.pe in the link, DHT and trackers off)".to_owned(),
            ));
        }

        tokio::fs::create_dir_all(&opts.download_dir)
            .await
            .map_err(|e| {
                TorrentError::io(format!("cannot create {}", opts.download_dir.display()), e)
            })?;

        let session = new_session(&opts).await?;
        match open_in_session(&session, add, &spec, &opts, peers).await {
            Ok(input) => Ok(input),
            Err(e) => {
                session.stop().await;
                Err(e)
            }
        }
    }

    /// `http://127.0.0.1:<port>/<token>`: the file, with Range support.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The file's path inside the torrent (components joined with `/`).
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The file's index in the torrent.
    pub fn file_id(&self) -> usize {
        self.file_id
    }

    /// The torrent's info hash, as 40 lower-case hex digits.
    pub fn info_hash(&self) -> String {
        self.handle.info_hash().as_string()
    }

    /// Where the HTTP server listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the session accepts peer connections, if it listens.
    pub fn peer_listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    /// Current download progress of the file.
    pub fn progress(&self) -> DownloadProgress {
        let stats = self.handle.stats();
        let downloaded_bytes = stats
            .file_progress
            .get(self.file_id)
            .copied()
            .unwrap_or(0)
            .min(self.file_len);
        let (download_speed_bps, live_peers) = match &stats.live {
            Some(live) => (
                Some(live.download_speed.as_bytes()),
                Some(live.snapshot.peer_stats.live),
            ),
            None => (None, None),
        };
        let initialized = !matches!(
            stats.state,
            librqbit::TorrentStatsState::Initializing { .. } | librqbit::TorrentStatsState::Error
        );
        DownloadProgress {
            downloaded_bytes,
            total_bytes: self.file_len,
            finished: initialized && downloaded_bytes >= self.file_len,
            download_speed_bps,
            live_peers,
        }
    }

    /// Waits until the whole file is downloaded and verified (or the torrent fails).
    pub async fn wait_until_finished(&self) -> Result<(), TorrentError> {
        loop {
            if self.progress().finished {
                return Ok(());
            }
            if let Some(err) = self.handle.stats().error {
                return Err(TorrentError::Session(err));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the HTTP server (open responses end with an error), then the session.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(SERVER_STOP_GRACE, server)
                .await
                .is_err()
            {
                tracing::warn!("torrent HTTP server did not stop in time; aborting it");
                abort.abort();
            }
        }
        self.readers.close();
        if tokio::time::timeout(SERVER_STOP_GRACE, self.readers.wait())
            .await
            .is_err()
        {
            tracing::warn!("torrent stream readers did not stop in time");
        }
        if let Err(e) = self.session.pause(&self.handle).await {
            tracing::debug!("pausing torrent: {e:#}");
        }
        self.session.stop().await;
        tracing::debug!(file = %self.file_name, "torrent input stopped");
    }
}

impl Drop for TorrentInput {
    fn drop(&mut self) {
        // Idempotent; after `shutdown` these are no-ops.
        self.cancel.cancel();
        self.session.cancellation_token().cancel();
    }
}

/// Reads a `.torrent` file, refusing oversized ones.
fn read_torrent_file(path: &Path) -> Result<Bytes, TorrentError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| TorrentError::io(format!("cannot open {}", path.display()), e))?;
    let mut buf = Vec::new();
    file.take(MAX_TORRENT_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| TorrentError::io(format!("cannot read {}", path.display()), e))?;
    if buf.len() as u64 > MAX_TORRENT_FILE_BYTES {
        return Err(TorrentError::BadTorrent(format!(
            "{} is larger than {MAX_TORRENT_FILE_BYTES} bytes",
            path.display()
        )));
    }
    if buf.is_empty() {
        return Err(TorrentError::BadTorrent(format!(
            "{} is empty",
            path.display()
        )));
    }
    Ok(buf.into())
}

/// Peer addresses given in a magnet link's `x.pe` parameters (BEP 9); librqbit ignores them.
pub fn magnet_peers(link: &str) -> Vec<SocketAddr> {
    let Some((_, query)) = link.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "x.pe")
        .filter_map(|(_, v)| percent_decode(v)?.parse::<SocketAddr>().ok())
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn dedup(peers: &mut Vec<SocketAddr>) {
    let mut seen = std::collections::HashSet::new();
    peers.retain(|p| seen.insert(*p));
}

async fn new_session(opts: &TorrentOptions) -> Result<Arc<Session>, TorrentError> {
    let public = opts.use_dht_and_trackers;
    let listen = opts.listen_port.map(|port| ListenerOptions {
        listen_addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        enable_upnp_port_forwarding: false,
        ..ListenerOptions::default()
    });
    let session_opts = SessionOptions {
        dht: public.then(|| librqbit::DhtSessionConfig {
            // Keep DHT state out of the user's config dir.
            persistence: None,
            ..librqbit::DhtSessionConfig::default()
        }),
        disable_trackers: !public,
        disable_local_service_discovery: !public,
        listen,
        // Persistence would re-add torrents on start without our initial peers; resume relies
        // on the initial check of the files already in `download_dir` instead.
        persistence: None,
        fastresume: false,
        runtime_worker_threads: Some(RQBIT_BLOCKING_PERMITS + MAX_CONCURRENT_STREAMS),
        ratelimits: librqbit::limits::LimitsConfig {
            upload_bps: None,
            // The limiter admits one 16 KiB block at a time; a smaller quota would never pass.
            download_bps: opts.download_limit_bps.map(|b| b.max(MIN_RATE_LIMIT_BPS)),
        },
        ..SessionOptions::default()
    };
    Session::new_with_opts(opts.download_dir.clone(), session_opts)
        .await
        .map_err(|e| TorrentError::Session(format!("{e:#}")))
}

async fn open_in_session(
    session: &Arc<Session>,
    add: AddTorrent<'static>,
    spec: &TorrentSpec,
    opts: &TorrentOptions,
    peers: Vec<SocketAddr>,
) -> Result<TorrentInput, TorrentError> {
    let is_magnet = matches!(spec, TorrentSpec::Magnet(_));
    let initial_peers = (!peers.is_empty()).then(|| peers.clone());

    // 1. Metadata only: parses a .torrent locally, or fetches a magnet's info from peers.
    let list_opts = AddTorrentOptions {
        list_only: true,
        disable_trackers: !opts.use_dht_and_trackers,
        initial_peers: initial_peers.clone(),
        ..AddTorrentOptions::default()
    };
    let listed = if is_magnet {
        match tokio::time::timeout(
            opts.metadata_timeout,
            session.add_torrent(add, Some(list_opts)),
        )
        .await
        {
            Err(_) => return Err(TorrentError::MetadataTimeout(opts.metadata_timeout)),
            Ok(Err(e)) => return Err(classify_magnet_error(e)),
            Ok(Ok(r)) => r,
        }
    } else {
        session
            .add_torrent(add, Some(list_opts))
            .await
            .map_err(|e| TorrentError::BadTorrent(format!("{e:#}")))?
    };
    let ListOnlyResponse {
        info,
        torrent_bytes,
        seen_peers,
        output_folder,
        ..
    } = match listed {
        AddTorrentResponse::ListOnly(l) => l,
        _ => {
            return Err(TorrentError::Session(
                "librqbit did not list the torrent".into(),
            ))
        }
    };

    // 2. Pick the file.
    let files: Vec<FileEntry> = info
        .iter_file_details()
        .map(|d| FileEntry {
            name: d.filename.to_vec().join("/"),
            len: d.len,
            padding: d.attrs().padding,
        })
        .collect();
    let file_id = pick_file(&files).ok_or(TorrentError::NoFiles)?;
    let (file_name, file_len) = (files[file_id].name.clone(), files[file_id].len);
    tracing::info!(
        file = %file_name,
        len = file_len,
        files = files.len(),
        folder = %output_folder.display(),
        "torrent file selected"
    );

    // 3. Download only that file; existing data in the output folder is checked and kept.
    let mut all_peers = peers;
    all_peers.extend(seen_peers);
    dedup(&mut all_peers);
    let add_opts = AddTorrentOptions {
        only_files: Some(vec![file_id]),
        overwrite: true,
        disable_trackers: !opts.use_dht_and_trackers,
        initial_peers: (!all_peers.is_empty()).then_some(all_peers),
        ..AddTorrentOptions::default()
    };
    let handle = session
        .add_torrent(AddTorrent::from_bytes(torrent_bytes), Some(add_opts))
        .await
        .map_err(|e| TorrentError::Session(format!("{e:#}")))?
        .into_handle()
        .ok_or_else(|| TorrentError::Session("librqbit returned no torrent handle".into()))?;
    handle
        .wait_until_initialized()
        .await
        .map_err(|e| TorrentError::Session(format!("checking existing data: {e:#}")))?;

    // 4. Serve it.
    let cancel = CancellationToken::new();
    let readers = TaskTracker::new();
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| TorrentError::io("cannot bind the torrent HTTP server", e))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| TorrentError::io("torrent HTTP server address", e))?;
    let token = random_token();
    let url = format!("http://{http_addr}/{token}");
    let server_state = Arc::new(ServerState {
        path: format!("/{token}"),
        handle: handle.clone(),
        file_id,
        file_len,
        content_type: content_type(&file_name),
        cancel: cancel.clone(),
        readers: readers.clone(),
        slots: Arc::new(Semaphore::new(MAX_CONCURRENT_STREAMS)),
    });
    let routes = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .then(
            move |method: Method, path: warp::path::FullPath, headers: HeaderMap| {
                let state = server_state.clone();
                async move { serve(state, method, path.as_str(), &headers).await }
            },
        );
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stop.cancelled().await })
            .run()
            .await;
    });
    tracing::debug!(%http_addr, file = %file_name, "torrent HTTP server started");

    Ok(TorrentInput {
        session: session.clone(),
        handle,
        file_id,
        file_name,
        file_len,
        url,
        http_addr,
        cancel,
        server: Some(server),
        readers,
    })
}

fn classify_magnet_error(e: anyhow::Error) -> TorrentError {
    let msg = format!("{e:#}");
    if msg.contains("not a valid magnet") || msg.contains("infohash") {
        TorrentError::BadTorrent(msg)
    } else {
        TorrentError::Metadata(msg)
    }
}

/// One file of a torrent, as seen when picking the file to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the torrent, components joined with `/`.
    pub name: String,
    pub len: u64,
    /// BEP 47 padding file (never picked).
    pub padding: bool,
}

/// Index of the largest video file (by extension), else of the largest file; `None` when no
/// file has any bytes. Ties go to the first.
pub fn pick_file(files: &[FileEntry]) -> Option<usize> {
    let largest = |video_only: bool| {
        files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding && f.len > 0 && (!video_only || is_video(&f.name)))
            .fold(None::<(usize, u64)>, |best, (i, f)| match best {
                Some((_, len)) if len >= f.len => best,
                _ => Some((i, f.len)),
            })
            .map(|(i, _)| i)
    };
    largest(true).or_else(|| largest(false))
}

fn is_video(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

fn content_type(name: &str) -> HeaderValue {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    HeaderValue::from_static(match ext.as_deref() {
        Some("mp4" | "m4v") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        Some("webm") => "video/webm",
        Some("avi") => "video/x-msvideo",
        Some("mov") => "video/quicktime",
        Some("ts" | "m2ts") => "video/mp2t",
        Some("mpg" | "mpeg") => "video/mpeg",
        Some("wmv") => "video/x-ms-wmv",
        Some("flv") => "video/x-flv",
        _ => "application/octet-stream",
    })
}

/// 128 random bits as 32 hex digits.
fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which bytes a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) Range header: the whole file, 200.
    Full,
    /// `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// Nothing of the file is in the range, 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `len` bytes (RFC 9110 §14). Headers that are not
/// a single `bytes` range are ignored (the whole file is sent), as the RFC allows.
pub fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(value) = header else {
        return ByteRange::Full;
    };
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return ByteRange::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            if !digits(last) {
                return ByteRange::Full;
            }
            // Saturates on absurdly long numbers: "all of it".
            let n = last.parse::<u64>().unwrap_or(u64::MAX);
            if n == 0 || len == 0 {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            }
        }
        // bytes=N- or bytes=N-M.
        (false, _) => {
            if !digits(first) || !(last.is_empty() || digits(last)) {
                return ByteRange::Full;
            }
            let start = first.parse::<u64>().unwrap_or(u64::MAX);
            let end = if last.is_empty() {
                u64::MAX
            } else {
                last.parse::<u64>().unwrap_or(u64::MAX)
            };
            if end < start {
                return ByteRange::Full;
            }
            if start >= len {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial {
                start,
                end: end.min(len - 1),
            }
        }
        (true, true) => ByteRange::Full,
    }
}

struct ServerState {
    path: String,
    handle: Arc<ManagedTorrent>,
    file_id: usize,
    file_len: u64,
    content_type: HeaderValue,
    cancel: CancellationToken,
    readers: TaskTracker,
    slots: Arc<Semaphore>,
}

type HttpResponse = warp::reply::Response;

fn empty(status: StatusCode) -> HttpResponse {
    let mut resp = HttpResponse::default();
    *resp.status_mut() = status;
    resp
}

async fn serve(
    state: Arc<ServerState>,
    method: Method,
    path: &str,
    headers: &HeaderMap,
) -> HttpResponse {
    if !ct_eq(path.as_bytes(), state.path.as_bytes()) {
        return empty(StatusCode::NOT_FOUND);
    }
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let len = state.file_len;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range_header, len) {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut resp = empty(StatusCode::RANGE_NOT_SATISFIABLE);
            insert_header(&mut resp, header::CONTENT_RANGE, format!("bytes */{len}"));
            resp.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return resp;
        }
    };
    tracing::debug!(?range_header, start, count, "torrent HTTP request");

    let mut resp = if head || count == 0 {
        HttpResponse::default()
    } else {
        match open_body(&state, start, count).await {
            Ok(body) => warp::reply::stream(body).into_response(),
            Err(status) => return empty(status),
        }
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, state.content_type.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    insert_header(&mut resp, header::CONTENT_LENGTH, count.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        insert_header(
            &mut resp,
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    resp
}

fn insert_header(resp: &mut HttpResponse, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Opens a librqbit stream at `start` and spawns the task that pumps `count` bytes of it into
/// the returned body.
async fn open_body(
    state: &Arc<ServerState>,
    start: u64,
    count: u64,
) -> Result<ChannelStream, StatusCode> {
    let permit = tokio::select! {
        p = state.slots.clone().acquire_owned() => p.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?,
        _ = state.cancel.cancelled() => return Err(StatusCode::SERVICE_UNAVAILABLE),
    };
    let mut stream = tokio::select! {
        s = state.handle.clone().stream(state.file_id) => s.map_err(|e| {
            tracing::warn!("cannot open torrent stream: {e:#}");
            StatusCode::INTERNAL_SERVER_ERROR
        })?,
        _ = state.cancel.cancelled() => return Err(StatusCode::SERVICE_UNAVAILABLE),
    };
    stream.seek(SeekFrom::Start(start)).await.map_err(|e| {
        tracing::warn!(start, "cannot seek torrent stream: {e}");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BODY_CHANNEL_CHUNKS);
    let cancel = state.cancel.clone();
    state.readers.spawn(async move {
        let _permit = permit;
        let mut remaining = count;
        let mut buf = vec![0u8; CHUNK_BYTES];
        while remaining > 0 {
            let want = usize::try_from(remaining).map_or(CHUNK_BYTES, |r| r.min(CHUNK_BYTES));
            let read = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(std::io::Error::other("torrent input shutting down")),
                _ = tx.closed() => return,
                r = stream.read(&mut buf[..want]) => r,
            };
            let chunk = match read {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "torrent stream ended early",
                )),
                Ok(n) => {
                    remaining -= n as u64;
                    Ok(Bytes::copy_from_slice(&buf[..n]))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if let Err(e) = &chunk {
                tracing::debug!("torrent stream read failed: {e}");
            }
            let sent = tokio::select! {
                biased;
                _ = cancel.cancelled() => false,
                r = tx.send(chunk) => r.is_ok(),
            };
            if !sent || failed {
                return;
            }
        }
    });
    Ok(ChannelStream { rx })
}

/// The receiving end of a body channel as a `Stream`.
struct ChannelStream {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl futures::Stream for ChannelStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// `TorrentInput` is shared across tasks (`Arc`).
const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<TorrentInput>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-"), 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-4"), 10),
            Partial { start: 2, end: 4 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-400"), 10),
            Partial { start: 2, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Partial { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse_range(Some("bytes=-"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 10),
            Unsatisfiable
        );
    }

    #[test]
    fn picks_largest_video_then_largest_file() {
        let f = |name: &str, len: u64| FileEntry {
            name: name.into(),
            len,
            padding: false,
        };
        let files = vec![
            f("a/sample.mkv", 10),
            f("a/extras.iso", 1000),
            f("a/movie.MP4", 500),
        ];
        assert_eq!(pick_file(&files), Some(2));
        let files = vec![f("notes.txt", 10), f("blob.bin", 100)];
        assert_eq!(pick_file(&files), Some(1));
        let mut pad = f(".pad/1", 10_000);
        pad.padding = true;
        assert_eq!(pick_file(&[pad, f("x.ts", 1)]), Some(1));
        assert_eq!(pick_file(&[f("empty.mkv", 0)]), None);
        assert_eq!(pick_file(&[]), None);
    }

    #[test]
    fn magnet_peer_params() {
        let link = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\
                    &x.pe=127.0.0.1%3A6881&dn=x&x.pe=[::1]:7000&x.pe=bogus";
        let want: Vec<SocketAddr> = ["127.0.0.1:6881", "[::1]:7000"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        assert_eq!(magnet_peers(link), want);
        assert!(magnet_peers("magnet:").is_empty());
        assert_eq!(percent_decode("%4"), None);
    }
}
