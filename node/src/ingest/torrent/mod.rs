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
//! `session` resolves the torrent and starts the download; `server` is the loopback HTTP
//! server.
//!
//! Partial downloads resume: the download directory is kept, and on the next `open` librqbit's
//! initial check hashes the pieces already on disk and only fetches the rest.
//!
//! Nothing here talks to DHT, trackers, LSD or UPnP unless
//! [`TorrentOptions::use_dht_and_trackers`] is set; with it unset, peers are only those given
//! in [`TorrentOptions::peers`] (and `x.pe` peers of a magnet link).
//!
//! A torrent a user asked for ([`TorrentOptions::refuse_private_sources`]) is checked before
//! any session exists: every tracker URL (`tr=`, `announce`, `announce-list`) and `x.pe` peer
//! must be on a public address (host names are resolved and every address checked; see
//! `netguard`), and its session gets a peer blocklist of every non-public range (except
//! the operator's own [`TorrentOptions::peers`]), so peers a public tracker or the DHT hands
//! out on private addresses are not dialled either. What this cannot cover, because
//! librqbit resolves and connects on its own: a tracker host name that resolves to a public
//! address when checked and a private one when librqbit resolves it (DNS rebinding), an
//! HTTP tracker that redirects to a private address (librqbit's HTTP client follows
//! redirects), DHT queries to private nodes, and a magnet's metadata exchange with peers
//! found through a public tracker or the DHT (librqbit does not apply the blocklist there).
//! All of these need `public_torrents` (DHT and trackers), which is off on testnets.
//!
//! The selected file's size is checked before any of it is downloaded:
//! [`TorrentOptions::max_file_bytes`], then [`TorrentOptions::admit`] (the node reserves it
//! from its disk quota).

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

mod server;
mod session;

// The server and the session share their private items through this module.
use server::*;
use session::*;

pub use server::{parse_range, ByteRange};
pub use session::{magnet_peer_params, magnet_peers, pick_file, pick_sidecars, FileEntry};

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
    /// The torrent comes from a user (a movie request), not the operator: refuse trackers
    /// and `x.pe` peers it names on non-public addresses before connecting anywhere, and
    /// block non-public peers learned later (except the addresses in `peers`).
    pub refuse_private_sources: bool,
    /// Largest selected file accepted; a bigger one is refused before it is downloaded.
    pub max_file_bytes: Option<u64>,
    /// Asked with the selected file's length before it is downloaded: refuses it (the
    /// reason) or returns a guard the input holds until it stops (a quota reservation).
    pub admit: Option<Admit>,
}

/// What [`TorrentOptions::admit`] returns for an admitted file: held until the input stops.
pub type AdmitGuard = Box<dyn Send + Sync>;

/// See [`TorrentOptions::admit`].
#[derive(Clone)]
pub struct Admit(Arc<dyn Fn(u64) -> Result<AdmitGuard, String> + Send + Sync>);

impl Admit {
    pub fn new(f: impl Fn(u64) -> Result<AdmitGuard, String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for Admit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admit(..)")
    }
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
            refuse_private_sources: false,
            max_file_bytes: None,
            admit: None,
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
    /// A tracker or peer the torrent names is not allowed (a user's torrent naming a
    /// private address); nothing was contacted.
    #[error("source refused: {0}")]
    Refused(#[from] crate::netguard::SourceRefused),
    /// The selected file is larger than [`TorrentOptions::max_file_bytes`].
    #[error(
        "the torrent's file is {len} bytes, more than the {max} bytes allowed \
         ([ingest] max_source_bytes); nothing was downloaded"
    )]
    TooLarge { len: u64, max: u64 },
    /// [`TorrentOptions::admit`] refused the selected file.
    #[error("the torrent's file of {len} bytes was refused before downloading: {reason}")]
    NotAdmitted { len: u64, reason: String },
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
    /// Subtitle files downloaded beside the video (file id, path in the torrent, length).
    sidecars: Vec<(usize, String, u64)>,
    /// What [`TorrentOptions::admit`] returned (a quota reservation), held while the
    /// download lives.
    _admitted: Option<AdmitGuard>,
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
        let (add, mut extra_peers, trackers, peer_params) = match &spec {
            TorrentSpec::File(path) => {
                let bytes = read_torrent_file(path)?;
                // Fail fast, before any session exists.
                let parsed = librqbit::torrent_from_bytes(&bytes)
                    .map_err(|e| TorrentError::BadTorrent(format!("{}: {e}", path.display())))?;
                // Every tracker it names, `announce` and every tier of `announce-list`.
                let trackers: Vec<String> = parsed
                    .announce
                    .iter()
                    .chain(parsed.announce_list.iter().flatten())
                    .map(|t| String::from_utf8_lossy(t.as_ref()).into_owned())
                    .collect();
                parsed
                    .info
                    .data
                    .validate()
                    .map_err(|e| TorrentError::BadTorrent(format!("{}: {e}", path.display())))?;
                (AddTorrent::from_bytes(bytes), vec![], trackers, vec![])
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
                (
                    AddTorrent::from_url(link.to_owned()),
                    magnet_peers(link),
                    magnet.trackers,
                    magnet_peer_params(link),
                )
            }
        };
        if opts.refuse_private_sources {
            check_sources(&trackers, &peer_params).await?;
        }
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

    /// The subtitle files of the torrent that belong to the video (`.srt`, `.vtt`, `.ass`,
    /// `.ssa`, each at most `MAX_SIDECAR_BYTES`, at most `MAX_SIDECARS`), read in full: they
    /// are downloaded with the video, and reading them first makes librqbit fetch their
    /// pieces first. Files not complete within `timeout` are left out. (Path in the torrent,
    /// bytes.)
    pub async fn read_sidecars(&self, timeout: Duration) -> Vec<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        for (id, name, len) in &self.sidecars {
            let read = async {
                let mut stream = self.handle.clone().stream(*id).await.ok()?;
                let mut bytes = Vec::new();
                (&mut stream)
                    .take(*len)
                    .read_to_end(&mut bytes)
                    .await
                    .ok()?;
                Some(bytes)
            };
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Some(bytes)) => out.push((name.clone(), bytes)),
                Ok(None) => tracing::warn!(file = %name, "cannot read the sidecar subtitles"),
                Err(_) => tracing::warn!(file = %name, "sidecar subtitles did not arrive in time"),
            }
        }
        out
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
    fn sidecars_are_small_subtitle_files() {
        let f = |name: &str, len: u64| FileEntry {
            name: name.into(),
            len,
            padding: false,
        };
        let files = vec![
            f("M/Movie.mkv", 1 << 30),
            f("M/Subs/Movie.es.srt", 40_000),
            f("M/Movie.en.ass", 90_000),
            f("M/huge.srt", 64 << 20),
            f("M/empty.vtt", 0),
            f("M/Movie.nfo", 100),
        ];
        let picked: Vec<_> = pick_sidecars(&files, 0)
            .into_iter()
            .map(|(i, name, _)| (i, name))
            .collect();
        assert_eq!(
            picked,
            [
                (2, "M/Movie.en.ass".to_owned()),
                (1, "M/Subs/Movie.es.srt".to_owned())
            ]
        );
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
        // Every value, host names too (a user's request is refused for those).
        assert_eq!(
            super::magnet_peer_params(link),
            ["127.0.0.1:6881", "[::1]:7000", "bogus"]
        );
        assert!(magnet_peers("magnet:").is_empty());
        assert_eq!(percent_decode("%4"), None);
    }
}
