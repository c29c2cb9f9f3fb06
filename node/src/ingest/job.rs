//! One ingest job, end to end: resolve the source (a local file, or a torrent streamed
//! through a loopback URL), probe it, transcode it, and publish as it goes: every segment is
//! hashed and stored, and each time every track has grown by a segment the manifest is
//! re-signed with a higher sequence number and stored, so the movie plays (as an HLS EVENT
//! playlist) long before the ingest ends. The last version is marked complete (VOD). A job
//! that fails or is cancelled removes its manifest: no half-published movie stays behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reelnet_proto::manifest::{MediaInfo, ThumbnailGrid, TrackKind};
use reelnet_proto::{
    Manifest, MovieId, MovieMeta, NodeId, Rendition, SegmentEntry, SignedManifest, Track,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::meta::{MetaError, MovieFields};
use super::torrent::{Admit, AdmitGuard, TorrentInput, TorrentOptions, TorrentSpec};
use super::transcode::{self, LadderConfig, TranscodeError, TranscodeEvent};
use crate::store::{Store, StoreError, StoredManifest};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Source(String),
    #[error("torrent: {0}")]
    Torrent(#[from] super::torrent::TorrentError),
    #[error("transcode: {0}")]
    Transcode(#[from] TranscodeError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("cancelled")]
    Cancelled,
    /// The store had no room for a segment (quota full of pinned data, or the disk full).
    /// The partial ingest was removed; start it again once room is made.
    #[error("no room to store the movie ({0}); the partial ingest was removed: free disk space or raise storage.quota_bytes, then ingest again")]
    DiskFull(String),
}

/// What to ingest and how to name it: the admin API's JSON body and the `reelnet-node
/// ingest` arguments (the doc comments below are their `--help` text). The movie's fields
/// are flattened into both. Paths should be absolute (the node may run elsewhere).
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// A local video file, a .torrent file or a magnet: link.
    pub source: String,
    #[serde(flatten)]
    #[command(flatten)]
    pub movie: MovieFields,
    /// A torrent peer to join directly (repeatable), e.g. a local seeder 127.0.0.1:6881.
    #[serde(default)]
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<SocketAddr>,
    /// Metadata JSON: {"title", "year", "overview", "genres", "runtime_min", "tmdb_id",
    /// "poster", "backdrop"} (every key optional; image paths relative to the file). The
    /// flags here override it.
    #[serde(default)]
    #[arg(long = "meta", value_name = "FILE.json")]
    pub meta_file: Option<PathBuf>,
    /// Who asked for it. Never read from JSON or flags: the admin API and the command line
    /// are the operator's; only the request claimer makes [`Requester::User`] jobs.
    #[serde(skip)]
    #[arg(skip)]
    pub requester: Requester,
}

/// Who an ingest is for, which decides what its source may name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Requester {
    /// The node's operator (`reelnet-node ingest`, the admin API): trusted; any file,
    /// torrent, tracker or peer, loopback and LAN included.
    #[default]
    Operator,
    /// A viewer's movie request: a magnet link or `.torrent` only, and its trackers and
    /// peers must be on public addresses unless `[ingest] allow_private_sources` is set.
    User,
}

/// Where a source comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Torrent(PathBuf),
    Magnet(String),
}

impl Source {
    /// Classifies a source argument: `magnet:` links, `.torrent` files, other files.
    pub fn parse(raw: &str) -> Result<Self, IngestError> {
        if raw.starts_with("magnet:") {
            return Ok(Self::Magnet(raw.to_owned()));
        }
        let path = PathBuf::from(raw);
        if !path.is_file() {
            return Err(IngestError::Source(format!(
                "{raw}: no such file (expected a video file, a .torrent file or a magnet: link)"
            )));
        }
        let path = path.canonicalize().unwrap_or(path);
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("torrent"))
        {
            Ok(Self::Torrent(path))
        } else {
            Ok(Self::File(path))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    #[default]
    Queued,
    Opening,
    Transcoding,
    Done,
    Failed,
}

/// A job's progress, as the terminal bar, the log and the admin API show it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct IngestProgress {
    pub state: JobState,
    pub source: String,
    pub movie_id: Option<String>,
    pub title: Option<String>,
    /// Torrent download; both 0 for local files.
    pub downloaded_bytes: u64,
    pub total_bytes: u64,
    /// How far into the movie the transcoder is, seconds.
    pub position_s: f64,
    pub duration_s: Option<f64>,
    /// Transcoded seconds per wall-clock second.
    pub speed_x: f64,
    pub eta_s: Option<f64>,
    /// Media segments published per track so far.
    pub segments: u32,
    pub manifest_id: Option<String>,
    /// Seconds from start until the first segments were playable.
    pub first_playable_s: Option<f64>,
    /// Bytes downloaded when the first segments became playable (torrents).
    pub first_playable_downloaded_bytes: Option<u64>,
    pub elapsed_s: f64,
    pub error: Option<String>,
    /// Source streams left out because they cannot be converted (image subtitles), e.g.
    /// "subtitle stream 3 (dvdsub, en): image subtitles are not supported".
    #[serde(default)]
    pub not_supported: Vec<String>,
}

/// Called with every newly published manifest version.
pub type PublishHook = Box<dyn Fn(&StoredManifest) + Send + Sync>;

/// What every job needs from its node.
pub struct IngestContext {
    pub store: Store,
    pub key: SigningKey,
    pub ladder: LadderConfig,
    /// Where torrent downloads go (and resume from).
    pub download_dir: PathBuf,
    /// Whether torrents may use DHT and trackers (false on loopback testnets).
    pub public_torrents: bool,
    /// Whether a user's torrent may name non-public trackers and peers (testnets).
    pub allow_private_sources: bool,
    /// Largest torrent download (the selected file), bytes.
    pub max_source_bytes: u64,
    /// Seek thumbnail settings.
    pub thumbnails: transcode::ThumbnailConfig,
    /// Called with every newly published manifest version (to announce it).
    pub on_publish: Option<PublishHook>,
}

/// Runs one ingest to completion; progress goes to `progress` as it happens.
pub async fn run(
    ctx: Arc<IngestContext>,
    req: IngestRequest,
    progress: watch::Sender<IngestProgress>,
    cancel: CancellationToken,
) -> Result<StoredManifest, IngestError> {
    let started = Instant::now();
    progress.send_modify(|p| {
        p.source = req.source.clone();
        p.state = JobState::Opening;
    });
    let result = run_inner(&ctx, &req, &progress, &cancel, started).await;
    progress.send_modify(|p| {
        p.elapsed_s = started.elapsed().as_secs_f64();
        match &result {
            Ok(done) => {
                p.state = JobState::Done;
                p.manifest_id = Some(done.id.to_string());
                p.eta_s = Some(0.0);
            }
            Err(err) => {
                p.state = JobState::Failed;
                p.error = Some(err.to_string());
            }
        }
    });
    result
}

async fn run_inner(
    ctx: &Arc<IngestContext>,
    req: &IngestRequest,
    progress: &watch::Sender<IngestProgress>,
    cancel: &CancellationToken,
    started: Instant,
) -> Result<StoredManifest, IngestError> {
    let source = Source::parse(&req.source)?;
    let user = req.requester == Requester::User;
    if user && matches!(source, Source::File(_)) {
        return Err(IngestError::Source(
            "a movie request's source must be a magnet link or a .torrent".to_owned(),
        ));
    }
    // Metadata first: a bad sidecar or image fails the job before any download.
    let info = {
        let (store, req) = (ctx.store.clone(), req.clone());
        tokio::task::spawn_blocking(move || {
            super::meta::resolve(&store, &req.movie, req.meta_file.as_deref())
        })
        .await
        .map_err(|e| IngestError::Source(format!("metadata task failed: {e}")))??
    };
    let (input, torrent, default_title) = match &source {
        Source::File(path) => (
            path.to_string_lossy().into_owned(),
            None,
            title_from_name(&path.to_string_lossy()),
        ),
        Source::Torrent(_) | Source::Magnet(_) => {
            let spec = match &source {
                Source::Torrent(p) => TorrentSpec::File(p.clone()),
                Source::Magnet(m) => TorrentSpec::Magnet(m.clone()),
                Source::File(_) => unreachable_source()?,
            };
            // The download counts against the disk quota while it lives (it sits in the data
            // directory beside the segments): refused up front when it cannot fit.
            let store = ctx.store.clone();
            let admit = Admit::new(move |len| {
                store
                    .reserve(len)
                    .map(|held| Box::new(held) as AdmitGuard)
                    .map_err(|e| e.to_string())
            });
            let opts = TorrentOptions {
                download_dir: ctx.download_dir.clone(),
                // The operator's peers (`--peer`, `[requests] torrent_peers`): trusted.
                peers: req.peers.clone(),
                use_dht_and_trackers: ctx.public_torrents,
                refuse_private_sources: user && !ctx.allow_private_sources,
                max_file_bytes: Some(ctx.max_source_bytes),
                admit: Some(admit),
                ..TorrentOptions::default()
            };
            let t = tokio::select! {
                t = TorrentInput::open(spec, opts) => t?,
                _ = cancel.cancelled() => return Err(IngestError::Cancelled),
            };
            let title = title_from_name(t.file_name());
            (t.url().to_owned(), Some(Arc::new(t)), title)
        }
    };
    // Sidecar subtitles: beside the file, or in the torrent (small; fetched first).
    let sidecars = match (&source, &torrent) {
        (Source::File(path), _) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                super::sidecar::read_sidecars(&super::sidecar::find_sidecars(&path))
            })
            .await
            .unwrap_or_default()
        }
        (_, Some(t)) => tokio::select! {
            s = t.read_sidecars(Duration::from_secs(60)) => s,
            _ = cancel.cancelled() => return Err(IngestError::Cancelled),
        },
        _ => Vec::new(),
    };
    let video_stem = match &torrent {
        Some(t) => t
            .file_name()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => input.rsplit('/').next().unwrap_or_default().to_owned(),
    };
    let video_stem = video_stem
        .rsplit_once('.')
        .map_or(video_stem.clone(), |(s, _)| s.to_owned());
    let outcome = transcode_and_publish(
        ctx,
        progress,
        cancel,
        started,
        &input,
        torrent.clone(),
        default_title,
        info,
        (sidecars, video_stem),
    )
    .await;
    if let Some(t) = torrent {
        if let Ok(t) = Arc::try_unwrap(t) {
            t.shutdown().await;
        }
    }
    outcome
}

fn unreachable_source<T>() -> Result<T, IngestError> {
    Err(IngestError::Source("unexpected source kind".to_owned()))
}

/// "The.Matrix.1999.1080p.mkv" → "The Matrix 1999 1080p".
fn title_from_name(name: &str) -> String {
    let base = std::path::Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned());
    let title: String = base
        .chars()
        .map(|c| if c == '.' || c == '_' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        "Untitled".to_owned()
    } else {
        title.chars().take(200).collect()
    }
}

#[allow(clippy::too_many_arguments)]
async fn transcode_and_publish(
    ctx: &Arc<IngestContext>,
    progress: &watch::Sender<IngestProgress>,
    cancel: &CancellationToken,
    started: Instant,
    input: &str,
    torrent: Option<Arc<TorrentInput>>,
    default_title: String,
    (fields, meta): (MovieFields, MovieMeta),
    sidecars: (Vec<(String, Vec<u8>)>, String),
) -> Result<StoredManifest, IngestError> {
    let title = fields.title.clone().unwrap_or(default_title);
    let movie = match fields.tmdb_id {
        Some(id) => MovieId::from_tmdb(id),
        None => MovieId::derive(&title, fields.year),
    };
    progress.send_modify(|p| {
        p.movie_id = Some(movie.to_string());
        p.title = Some(title.clone());
    });

    // Keep download figures current while the transcoder runs.
    let downloaded = Arc::new(AtomicU64::new(0));
    // The job's helper tasks (the download poller, the cancel watcher) live in one set the
    // job owns: aborted and awaited before the job returns, so none outlives it.
    let mut helpers = tokio::task::JoinSet::new();
    if let Some(t) = torrent.as_ref() {
        let (t, progress, downloaded, stop) = (
            t.clone(),
            progress.clone(),
            downloaded.clone(),
            cancel.clone(),
        );
        helpers.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let d = t.progress();
                downloaded.store(d.downloaded_bytes, Ordering::Relaxed);
                progress.send_modify(|p| {
                    p.downloaded_bytes = d.downloaded_bytes;
                    p.total_bytes = d.total_bytes;
                });
                if progress.is_closed() {
                    return;
                }
            }
        });
    }

    let ladder = ctx.ladder.clone();
    let probe_input = input.to_owned();
    let plan = tokio::task::spawn_blocking(move || transcode::probe(&probe_input, &ladder))
        .await
        .map_err(|e| IngestError::Source(format!("probe task failed: {e}")))??;
    let extras = {
        let probe_input = input.to_owned();
        let (config, plan) = (ctx.thumbnails, plan.clone());
        tokio::task::spawn_blocking(move || extras_for(&probe_input, &sidecars, &plan, &config))
            .await
            .map_err(|e| IngestError::Source(format!("probe task failed: {e}")))??
    };
    progress.send_modify(|p| {
        p.state = JobState::Transcoding;
        p.duration_s = plan.duration_s;
        p.not_supported = extras.1.clone();
    });
    let extras = extras.0;

    let origin = NodeId::from_verifying_key(&ctx.key.verifying_key());
    let manifest = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie,
        title,
        year: fields.year,
        origin,
        ingest_id: rand::random(),
        seq: 0,
        created_at: crate::unix_now(),
        container: ctx.ladder.container,
        target_duration_ms: ctx.ladder.segment_secs.saturating_mul(1000),
        tracks: plan
            .empty_tracks()
            .into_iter()
            .chain(extra_tracks(&extras))
            .collect(),
        complete: false,
        meta: MovieMeta {
            expected_duration_ms: plan
                .duration_s
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| (d * 1000.0) as u64),
            ..meta
        },
    };
    let mut publisher = Publisher {
        manifest,
        ctx: ctx.clone(),
        published: 0,
        started,
        progress: progress.clone(),
        downloaded,
        published_once: false,
        full: None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let (stop, cancel) = (stop.clone(), cancel.clone());
        helpers.spawn(async move {
            cancel.cancelled().await;
            stop.store(true, Ordering::Relaxed);
        });
    }
    let ladder = ctx.ladder.clone();
    let input = input.to_owned();
    let joined = tokio::task::spawn_blocking(move || {
        let stop_flag = stop.clone();
        let result =
            transcode::transcode_with(&input, &ladder, &plan, &extras, &stop_flag, &mut |ev| {
                publisher.event(ev)
            });
        (result, publisher)
    })
    .await;
    helpers.shutdown().await;
    let (result, mut publisher) =
        joined.map_err(|e| IngestError::Source(format!("transcode task failed: {e}")))?;
    let finished = match result {
        Ok(_summary) => publisher.finish(),
        Err(TranscodeError::Cancelled) => Err(IngestError::Cancelled),
        Err(_) if publisher.full.is_some() => Err(IngestError::DiskFull(
            publisher.full.take().unwrap_or_default(),
        )),
        Err(e) => Err(e.into()),
    };
    match finished {
        Ok(done) => {
            tracing::info!(manifest = %done.id, movie = %done.manifest.movie, "ingest complete");
            Ok(done)
        }
        Err(err) => {
            // Leave nothing half-published behind.
            if let Err(e) = ctx.store.remove_ingest(&publisher.manifest) {
                tracing::error!(%e, "cannot remove the failed ingest's manifest");
            }
            Err(err)
        }
    }
}

/// The subtitle tracks (the source's text streams, then the sidecar files' cues) and the
/// thumbnail layout, plus what was left out as not supported. Blocking.
fn extras_for(
    input: &str,
    (sidecars, video_stem): &(Vec<(String, Vec<u8>)>, String),
    plan: &transcode::Plan,
    thumbnails: &transcode::ThumbnailConfig,
) -> Result<(transcode::Extras, Vec<String>), IngestError> {
    let video = plan.renditions.iter().any(|r| !r.is_audio_only());
    if !video {
        return Ok((transcode::Extras::default(), Vec::new()));
    }
    let probe = transcode::probe_subtitles(input)?;
    let mut subtitles = probe.tracks;
    let taken: Vec<String> = subtitles.iter().map(|t| t.name.clone()).collect();
    subtitles.extend(super::sidecar::parse_sidecars(sidecars, video_stem, &taken));
    subtitles.truncate(transcode::MAX_SUBTITLE_TRACKS);
    // Thumbnails come from decoded frames: only when some rung is encoded.
    let encoded = plan
        .renditions
        .iter()
        .zip(&plan.remux)
        .any(|(r, remux)| !r.is_audio_only() && !remux);
    let thumbnails = plan
        .renditions
        .iter()
        .find(|r| !r.is_audio_only())
        .filter(|_| encoded)
        .and_then(|top| transcode::ThumbnailLayout::for_video(thumbnails, top.width, top.height));
    let not_supported = probe.unsupported.iter().map(ToString::to_string).collect();
    Ok((
        transcode::Extras {
            subtitles,
            thumbnails,
        },
        not_supported,
    ))
}

/// The manifest tracks of `extras`, in the transcoder's track order.
fn extra_tracks(extras: &transcode::Extras) -> Vec<Track> {
    let zero = |name: &str, codecs: &str, bandwidth: u32| Rendition {
        name: name.to_owned(),
        width: 0,
        height: 0,
        bandwidth,
        codecs: codecs.to_owned(),
        frame_rate_milli: 0,
    };
    let mut out: Vec<Track> = extras
        .subtitles
        .iter()
        .map(|s| {
            let mut name = s
                .title
                .clone()
                .filter(|t| !t.trim().is_empty())
                .or_else(|| s.language.clone())
                .unwrap_or_else(|| "Unknown".to_owned());
            name.retain(|c| c != '"' && !c.is_control());
            if s.forced && !name.to_ascii_lowercase().contains("forced") {
                name.push_str(" (forced)");
            }
            if s.hearing_impaired && !name.contains("SDH") {
                name.push_str(" (SDH)");
            }
            let name: String = name.chars().take(60).collect();
            Track {
                rendition: zero(&s.name, "wvtt", 1_000),
                kind: TrackKind::Subtitles,
                media: Some(MediaInfo {
                    group: reelnet_proto::manifest::SUBTITLE_GROUP.to_owned(),
                    language: s.language.clone(),
                    name,
                    channels: 0,
                    default: s.default && !s.forced,
                    autoselect: true,
                    forced: s.forced,
                    characteristics: if s.hearing_impaired {
                        MediaInfo::HEARING_IMPAIRED
                    } else {
                        0
                    },
                }),
                init: None,
                segments: Vec::new(),
            }
        })
        .collect();
    if let Some(l) = extras.thumbnails {
        out.push(Track {
            rendition: zero("thumbnails", "jpeg", 1_000),
            kind: TrackKind::Thumbnails(ThumbnailGrid {
                interval_ms: l.interval_ms,
                tile_width: l.tile_width,
                tile_height: l.tile_height,
                columns: l.columns,
                rows: l.rows,
            }),
            media: None,
            init: None,
            segments: Vec::new(),
        });
    }
    out
}

/// Owns the growing manifest on the transcoder's thread.
struct Publisher {
    manifest: Manifest,
    ctx: Arc<IngestContext>,
    /// Segments per track in the last published version.
    published: usize,
    started: Instant,
    progress: watch::Sender<IngestProgress>,
    downloaded: Arc<AtomicU64>,
    published_once: bool,
    /// Set when a segment could not be stored for want of room.
    full: Option<String>,
}

impl Publisher {
    fn store_bytes(&mut self, bytes: &[u8]) -> Result<SegmentEntry, TranscodeError> {
        let size = u32::try_from(bytes.len())
            .map_err(|_| TranscodeError::Sink("segment larger than 4 GiB".to_owned()))?;
        let stored = self.ctx.store.put_segment(bytes, None);
        let (hash, _) = match stored {
            Ok(s) => s,
            Err(e) => {
                if e.is_full() {
                    self.full = Some(e.to_string());
                }
                return Err(TranscodeError::Sink(e.to_string()));
            }
        };
        Ok(SegmentEntry {
            hash,
            duration_ms: 0,
            size,
        })
    }

    fn track(&mut self, track: usize) -> Result<&mut Track, TranscodeError> {
        self.manifest
            .tracks
            .get_mut(track)
            .ok_or_else(|| TranscodeError::Sink(format!("event for unknown track {track}")))
    }

    fn event(&mut self, ev: TranscodeEvent) -> Result<(), TranscodeError> {
        match ev {
            TranscodeEvent::Init { track, bytes } => {
                let entry = SegmentEntry {
                    duration_ms: 1,
                    ..self.store_bytes(&bytes)?
                };
                self.track(track)?.init = Some(entry);
            }
            TranscodeEvent::Segment {
                track,
                index,
                bytes,
                duration_ms,
            } => {
                let entry = SegmentEntry {
                    duration_ms: duration_ms.max(1),
                    ..self.store_bytes(&bytes)?
                };
                let t = self.track(track)?;
                if usize::try_from(index).ok() != Some(t.segments.len()) {
                    return Err(TranscodeError::Sink(format!(
                        "track {track}: segment {index} out of order (have {})",
                        t.segments.len()
                    )));
                }
                t.segments.push(entry);
                self.maybe_publish()?;
            }
            TranscodeEvent::Progress {
                position_s,
                duration_s,
            } => {
                let elapsed = self.started.elapsed().as_secs_f64();
                self.progress.send_modify(|p| {
                    p.position_s = position_s;
                    if duration_s.is_some() {
                        p.duration_s = duration_s;
                    }
                    p.elapsed_s = elapsed;
                    p.speed_x = if elapsed > 0.0 {
                        position_s / elapsed
                    } else {
                        0.0
                    };
                    p.eta_s = p.duration_s.and_then(|d| {
                        (p.speed_x > 0.0).then(|| ((d - position_s) / p.speed_x).max(0.0))
                    });
                });
            }
        }
        Ok(())
    }

    fn ready(&self) -> bool {
        let fmp4 = self.manifest.container == reelnet_proto::Container::Fmp4;
        self.manifest.tracks.iter().all(|t| match t.kind {
            // Sheets come every few minutes: the movie plays without them.
            TrackKind::Thumbnails(_) => true,
            TrackKind::Subtitles => !t.segments.is_empty(),
            TrackKind::Video | TrackKind::Audio => {
                !t.segments.is_empty() && (!fmp4 || t.init.is_some())
            }
        })
    }

    /// Publishes a new version once every aligned track (all but thumbnails) has grown past
    /// the last published one.
    fn maybe_publish(&mut self) -> Result<(), TranscodeError> {
        let aligned = aligned_segments(&self.manifest.tracks);
        if aligned > self.published && self.ready() {
            self.publish()
                .map_err(|e| TranscodeError::Sink(e.to_string()))?;
            self.published = aligned;
        }
        Ok(())
    }

    fn publish(&mut self) -> Result<StoredManifest, IngestError> {
        self.manifest.seq += 1;
        let signed = SignedManifest::sign(&self.manifest, &self.ctx.key)
            .map_err(|e| IngestError::Manifest(e.to_string()))?;
        let stored = self.ctx.store.put_manifest(&signed)?;
        if let Some(cb) = &self.ctx.on_publish {
            cb(&stored);
        }
        let first = !self.published_once;
        self.published_once = true;
        let elapsed = self.started.elapsed().as_secs_f64();
        let downloaded = self.downloaded.load(Ordering::Relaxed);
        let segments = aligned_segments(&self.manifest.tracks);
        let id = stored.id.to_string();
        self.progress.send_modify(|p| {
            p.manifest_id = Some(id);
            p.segments = u32::try_from(segments).unwrap_or(u32::MAX);
            if first {
                p.first_playable_s = Some(elapsed);
                p.first_playable_downloaded_bytes = Some(downloaded);
            }
        });
        if first {
            tracing::info!(elapsed_s = elapsed, downloaded, "first segments playable");
        }
        Ok(stored)
    }

    fn finish(&mut self) -> Result<StoredManifest, IngestError> {
        if !self.ready() {
            return Err(IngestError::Transcode(TranscodeError::Sink(
                "the transcoder produced no playable segments".to_owned(),
            )));
        }
        // No sheet at all (a video too short or never decoded): no thumbnail track.
        self.manifest
            .tracks
            .retain(|t| !matches!(t.kind, TrackKind::Thumbnails(_)) || !t.segments.is_empty());
        self.manifest.complete = true;
        self.publish()
    }
}

/// Media segments every aligned track (all but thumbnails) has: what a published version
/// adds and what progress reports. A thumbnail sheet covers minutes of a movie, so counting
/// it (as progress once did) showed 0 segments for most of a long ingest.
fn aligned_segments(tracks: &[Track]) -> usize {
    tracks
        .iter()
        .filter(|t| !matches!(t.kind, TrackKind::Thumbnails(_)))
        .map(|t| t.segments.len())
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the chaos soak: a 300 s ingest reported `segments=0` at 244 s because the
    /// thumbnail track (one sheet so far: none) was counted.
    #[test]
    fn progress_counts_aligned_tracks_not_thumbnail_sheets() {
        let zero = |name: &str, codecs: &str, bandwidth: u32| Rendition {
            name: name.to_owned(),
            width: 0,
            height: 0,
            bandwidth,
            codecs: codecs.to_owned(),
            frame_rate_milli: 0,
        };
        let seg = |n: u8| SegmentEntry {
            hash: reelnet_proto::SegmentHash([n; 32]),
            duration_ms: 4_000,
            size: 1_000,
        };
        let mut tracks = vec![Track::video(
            zero("360p", "avc1.64001e", 800_000),
            None,
            vec![seg(1), seg(2), seg(3)],
        )];
        tracks.push(Track {
            rendition: zero("thumbnails", "jpeg", 1_000),
            kind: TrackKind::Thumbnails(ThumbnailGrid {
                interval_ms: 2_000,
                tile_width: 160,
                tile_height: 90,
                columns: 10,
                rows: 10,
            }),
            media: None,
            init: None,
            segments: Vec::new(),
        });
        assert_eq!(aligned_segments(&tracks), 3);
        tracks[0].segments.pop();
        assert_eq!(aligned_segments(&tracks), 2);
        assert_eq!(aligned_segments(&[]), 0);
    }

    #[test]
    fn titles_from_file_names() {
        assert_eq!(title_from_name("/x/The.Matrix.1999.mkv"), "The Matrix 1999");
        assert_eq!(title_from_name("big_buck bunny.mp4"), "big buck bunny");
        assert_eq!(title_from_name(""), "Untitled");
    }

    #[test]
    fn sources_are_classified() {
        assert!(matches!(
            Source::parse("magnet:?xt=urn:btih:abc"),
            Ok(Source::Magnet(_))
        ));
        assert!(Source::parse("/definitely/not/here.mp4").is_err());
    }

    /// The admin API's JSON keys are what they were before the movie fields were shared:
    /// flat, every one but `source` optional, unknown keys refused.
    #[test]
    fn request_json_is_flat() {
        #![allow(clippy::unwrap_used)]
        let json = serde_json::json!({
            "source": "/m.mkv", "title": "T", "year": 1999, "tmdb_id": 603,
            "peers": ["127.0.0.1:6881"], "meta_file": "/m.json", "overview": "O",
            "genres": ["A", "B"], "runtime_min": 90, "poster": "/p.png", "backdrop": "/b.png"
        });
        let req: IngestRequest = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(req.movie.title.as_deref(), Some("T"));
        assert_eq!(req.movie.tmdb_id, Some(603));
        assert_eq!(req.movie.genres.len(), 2);
        assert_eq!(req.peers.len(), 1);
        assert_eq!(serde_json::to_value(&req).unwrap(), json);
        let minimal: IngestRequest =
            serde_json::from_value(serde_json::json!({ "source": "x" })).unwrap();
        assert_eq!(minimal.movie, MovieFields::default());
        let unknown = serde_json::from_value::<IngestRequest>(
            serde_json::json!({ "source": "x", "colour": "red" }),
        );
        assert!(unknown.unwrap_err().to_string().contains("colour"));
        assert!(
            serde_json::from_value::<IngestRequest>(serde_json::json!({ "title": "x" })).is_err()
        );
    }
}
