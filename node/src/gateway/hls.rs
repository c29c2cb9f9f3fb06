//! `/hls/...`: master and variant playlists and segments of any movie in the network.
//!
//! URLs (every one carries the viewer's playback token as `?token=`):
//! - `/hls/{movie}/master.m3u8` — picks the best ingest of the movie (complete and fully
//!   held first, then the most available) and lists its renditions;
//! - `/hls/{movie}/thumbnails.vtt` — the seek thumbnail index (WebVTT cues
//!   `{manifest}/{rendition}/{hash}.jpg#xywh=x,y,w,h`) of the ingest the master picks;
//! - `/hls/{movie}/{manifest}/{rendition}/index.m3u8` — the variant playlist of one
//!   rendition of one ingest. `{manifest}` is the id of any version of the ingest; the
//!   newest known version is served, so reloading an EVENT playlist shows new segments;
//! - `/hls/{movie}/{manifest}/{rendition}/{hash}.{mp4|m4s|ts|vtt|jpg}` — a segment (a WebVTT
//!   subtitle segment, a JPEG thumbnail sheet) by content hash,
//!   which makes the URL immutable.
//!
//! Invariants: a token only opens the movie it names, and a segment is only served when the
//! named manifest lists it under that movie (a token for one movie cannot read another's
//! segments by hash). Segments come from the hot cache, else the local store, else from
//! peers over QUIC through the [`PeerFetches`] actor.
//!
//! # Verified streaming
//!
//! No byte reaches a viewer before the 16 KiB chunk group it belongs to has been checked
//! against the segment's outboard, whose root is the segment hash the manifest lists
//! (`reelnet_proto::outboard`); within that rule, bytes go out as soon as they are checked:
//! - **hot cache**: bytes verified when they entered the cache are sent whole;
//! - **disk**: the file is read block by block ([`Store::open_verified`]) by a task running
//!   one block ahead of the socket, each group checked against the stored outboard; the
//!   first block is read before the response starts (a corrupt one falls back to peers); a
//!   later bad group aborts the response (the client sees a failed request and retries),
//!   and the file is dropped from the store and counted (`reelnet_segments_corrupt_at_rest`);
//! - **peer**: [`PeerFetches`] runs one fetch per missing segment however many viewers ask
//!   for it at once (`reelnet_peer_fetches_started`, `reelnet_fetches_coalesced`); the
//!   fetcher checks the peer's outboard, then each group as it arrives, and publishes the
//!   verified prefix; every viewer of the segment gets the prefix so far and then the rest.
//!   A bad group ends the fetch: the responses abort, the peer's connection is dropped and
//!   its score penalised, and it is counted (`reelnet_peer_bad_chunks`).
//!
//! The hot cache is filled only with a complete verified segment (once its stream ends); a
//! segment fetched from a peer is also cached in the store. A `Range` request on a segment
//! not in the hot cache waits for the whole verified segment, then answers the range.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use reelnet_proto::{
    Container, Manifest, ManifestId, MovieId, NodeId, SegmentEntry, SegmentHash, SegmentRef,
    SegmentRequest,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{json_error, GatewayState};
use crate::catalog::{CatalogManifest, ManifestSummary};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::transfer::{FetchRequest, Fetcher};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Segments are named by content hash: they never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Every `/hls` route, with CORS (any origin may play with a token; no cookies are used).
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let token = warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|q: String| token_of(&q));
    let master = {
        let state = state.clone();
        warp::path!("hls" / String / "master.m3u8")
            .and(warp::get().or(warp::head()).unify())
            .and(token)
            .then(move |movie: String, token: Option<String>| {
                let state = state.clone();
                async move { respond(&state, "hls_master", master(&state, &movie, token).await) }
            })
    };
    let thumbnails = {
        let state = state.clone();
        warp::path!("hls" / String / "thumbnails.vtt")
            .and(warp::get().or(warp::head()).unify())
            .and(token)
            .then(move |movie: String, token: Option<String>| {
                let state = state.clone();
                async move {
                    let res = thumbnails(&state, &movie, token).await;
                    respond(&state, "hls_thumbnails", res)
                }
            })
    };
    let variant = {
        let state = state.clone();
        warp::path!("hls" / String / String / String / "index.m3u8")
            .and(warp::get().or(warp::head()).unify())
            .and(token)
            .then(
                move |movie: String, manifest: String, rendition: String, token: Option<String>| {
                    let state = state.clone();
                    async move {
                        let res = variant(&state, &movie, &manifest, &rendition, token).await;
                        respond(&state, "hls_variant", res)
                    }
                },
            )
    };
    let segment = {
        let state = state.clone();
        warp::path!("hls" / String / String / String / String)
            .and(warp::get().or(warp::head()).unify())
            .and(token)
            .and(warp::header::optional::<String>("range"))
            .then(
                move |movie: String,
                      manifest: String,
                      rendition: String,
                      file: String,
                      token: Option<String>,
                      range: Option<String>| {
                    let state = state.clone();
                    async move {
                        let res =
                            segment(&state, &movie, &manifest, &rendition, &file, token, range)
                                .await;
                        respond(&state, "hls_segment", res)
                    }
                },
            )
    };
    let cors = warp::cors()
        .allow_any_origin()
        .allow_methods(["GET", "HEAD", "OPTIONS"])
        .allow_headers(["range", "content-type"])
        .expose_headers(["content-range", "content-length", "accept-ranges"])
        .max_age(3600);
    master
        .or(thumbnails)
        .unify()
        .or(variant)
        .unify()
        .or(segment)
        .unify()
        .with(cors)
        .map(Reply::into_response)
}

/// The `token` parameter of a query string (tokens are base64url: no decoding needed).
fn token_of(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Why an HLS request failed; each becomes a JSON error.
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    #[error("this URL needs a playback token (GET /api/v1/movies/{{id}}/play gives one)")]
    MissingToken,
    #[error("playback token refused: {0}")]
    BadToken(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("no peer could deliver the segment: {0}")]
    Unavailable(String),
    #[error("this rendition is for premium subscribers (GET /api/v1/me/subscription)")]
    PremiumOnly,
    #[error("range not satisfiable")]
    Range { size: u64 },
    #[error("{0}")]
    Internal(String),
}

impl HlsError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "missing_token"),
            Self::BadToken(_) => (StatusCode::FORBIDDEN, "bad_token"),
            Self::PremiumOnly => (StatusCode::FORBIDDEN, "premium_required"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unavailable(_) => (StatusCode::BAD_GATEWAY, "segment_unavailable"),
            Self::Range { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "bad_range"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<crate::catalog::CatalogError> for HlsError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Self::Internal(e.to_string())
    }
}

fn respond(state: &GatewayState, route: &'static str, res: Result<Response, HlsError>) -> Response {
    let res = match res {
        Ok(r) => r,
        Err(err) => {
            let (status, code) = err.status();
            if status.is_server_error() || status == StatusCode::BAD_GATEWAY {
                tracing::warn!(route, %err, "hls request failed");
            }
            let mut r = json_error(status, code, err.to_string());
            if let HlsError::Range { size } = err {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            r
        }
    };
    state.metrics.request(route, res.status().as_u16());
    res
}

/// Checks the playback token for `movie`; returns the validated movie id and what the
/// token grants (the viewer's tier decides which renditions they get).
fn authorise(
    state: &GatewayState,
    movie: &str,
    token: Option<String>,
) -> Result<(MovieId, super::token::PlaybackGrant), HlsError> {
    let movie: MovieId = movie
        .parse()
        .map_err(|_| HlsError::NotFound("no such movie".into()))?;
    let token = token.ok_or(HlsError::MissingToken)?;
    let grant = state
        .tokens
        .verify(&token, &movie, crate::unix_now())
        .map_err(|e| HlsError::BadToken(e.to_string()))?;
    Ok((movie, grant))
}

pub use reelnet_proto::manifest::premium_tracks;

/// Refuses a premium-only track to a free viewer.
fn check_tier(
    state: &GatewayState,
    grant: &super::token::PlaybackGrant,
    manifest: &Manifest,
    track: u16,
) -> Result<(), HlsError> {
    if grant.tier == reelnet_proto::Tier::Premium {
        return Ok(());
    }
    let locked = premium_tracks(manifest, state.premium_renditions);
    if locked.get(usize::from(track)).copied().unwrap_or(false) {
        return Err(HlsError::PremiumOnly);
    }
    Ok(())
}

async fn master(
    state: &GatewayState,
    movie: &str,
    token: Option<String>,
) -> Result<Response, HlsError> {
    let (movie, grant) = authorise(state, movie, token.clone())?;
    let chosen = best_manifest(state, &movie).await?;
    let token = token.unwrap_or_default();
    let id = chosen.id;
    let locked = if grant.tier == reelnet_proto::Tier::Premium {
        Vec::new()
    } else {
        premium_tracks(&chosen.manifest, state.premium_renditions)
    };
    let text = reelnet_proto::hls::master_playlist(&chosen.manifest, |index, track| {
        if locked.get(usize::from(index)).copied().unwrap_or(false) {
            return None;
        }
        Some(format!(
            "{id}/{}/index.m3u8?token={token}",
            track.rendition.name
        ))
    });
    Ok(playlist(text, "private, no-cache"))
}

/// The seek thumbnail index (WebVTT, `sheet#xywh=x,y,w,h` cues) of the ingest the master
/// playlist picks; its sheets are served like segments of the thumbnail track.
async fn thumbnails(
    state: &GatewayState,
    movie: &str,
    token: Option<String>,
) -> Result<Response, HlsError> {
    let (movie, grant) = authorise(state, movie, token.clone())?;
    let chosen = best_manifest(state, &movie).await?;
    let m = &chosen.manifest;
    let Some((index, track, grid)) = m.tracks.iter().enumerate().find_map(|(i, t)| match t.kind {
        reelnet_proto::manifest::TrackKind::Thumbnails(g) => Some((i, t, g)),
        _ => None,
    }) else {
        return Err(HlsError::NotFound("this movie has no thumbnails".into()));
    };
    check_tier(state, &grant, m, u16::try_from(index).unwrap_or(u16::MAX))?;
    let token = token.unwrap_or_default();
    let id = chosen.id;
    let sheets: Vec<(String, u32)> = track
        .segments
        .iter()
        .map(|s| {
            (
                format!("{id}/{}/{}.jpg?token={token}", track.rendition.name, s.hash),
                s.duration_ms,
            )
        })
        .collect();
    let total = m
        .tracks
        .iter()
        .find(|t| t.is_video())
        .map(|t| t.duration_ms());
    let text = reelnet_proto::subtitles::thumbnail_vtt(&grid, &sheets, total);
    let mut res = Response::new(text.into());
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/vtt"));
    let cache = if m.complete {
        "private, max-age=60"
    } else {
        "private, no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(res)
}

/// The ingest a viewer should get: complete and fully held first, then the most available,
/// then the newest.
async fn best_manifest(state: &GatewayState, movie: &MovieId) -> Result<CatalogManifest, HlsError> {
    let summary = state
        .catalog
        .movie(movie)
        .await?
        .ok_or_else(|| HlsError::NotFound(format!("the network has no movie {movie}")))?;
    let mut ranked: Vec<&ManifestSummary> = summary.manifests.iter().collect();
    // Stable sort: manifests come newest first, so ties keep the newest.
    ranked.sort_by(|a, b| {
        let key = |m: &ManifestSummary| {
            (
                m.complete && m.available_percent >= 100.0,
                m.available_percent,
            )
        };
        let (ka, kb) = (key(a), key(b));
        kb.0.cmp(&ka.0)
            .then(kb.1.partial_cmp(&ka.1).unwrap_or(std::cmp::Ordering::Equal))
    });
    for m in ranked {
        if let Some(found) = state.catalog.manifest(m.id).await? {
            return Ok(found);
        }
    }
    Err(HlsError::NotFound(format!(
        "no manifest of {movie} is available"
    )))
}

/// The newest version of the ingest `manifest` names, checked to be of `movie`.
async fn resolve(
    state: &GatewayState,
    movie: &MovieId,
    manifest: &str,
) -> Result<CatalogManifest, HlsError> {
    let id: ManifestId = manifest
        .parse()
        .map_err(|_| HlsError::NotFound("no such manifest".into()))?;
    let found = state
        .catalog
        .latest_version(id)
        .await?
        .ok_or_else(|| HlsError::NotFound("no such manifest".into()))?;
    if &found.manifest.movie != movie {
        return Err(HlsError::NotFound("no such manifest for this movie".into()));
    }
    Ok(found)
}

fn track_of(manifest: &Manifest, rendition: &str) -> Result<u16, HlsError> {
    manifest
        .tracks
        .iter()
        .position(|t| t.rendition.name == rendition)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| HlsError::NotFound(format!("no rendition {rendition}")))
}

async fn variant(
    state: &GatewayState,
    movie: &str,
    manifest: &str,
    rendition: &str,
    token: Option<String>,
) -> Result<Response, HlsError> {
    let (movie, grant) = authorise(state, movie, token.clone())?;
    let found = resolve(state, &movie, manifest).await?;
    let track = track_of(&found.manifest, rendition)?;
    check_tier(state, &grant, &found.manifest, track)?;
    let token = token.unwrap_or_default();
    let ext = found
        .manifest
        .tracks
        .get(usize::from(track))
        .map_or("m4s", |t| t.segment_extension(found.manifest.container));
    let text = reelnet_proto::hls::media_playlist(&found.manifest, track, |seg, init| {
        let ext = if init { "mp4" } else { ext };
        format!("{}.{ext}?token={token}", seg.hash)
    })
    .ok_or_else(|| HlsError::NotFound(format!("no rendition {rendition}")))?;
    // A growing playlist is reloaded by players; a complete one may be cached briefly.
    let cache = if found.manifest.complete {
        "private, max-age=60"
    } else {
        "private, no-cache"
    };
    Ok(playlist(text, cache))
}

fn playlist(text: String, cache: &'static str) -> Response {
    let mut res = Response::new(text.into());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PLAYLIST_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// Where a segment sits in a manifest.
struct Located {
    entry: SegmentEntry,
    track: u16,
    /// `None` for the init segment.
    index: Option<u32>,
}

fn locate(manifest: &Manifest, track: u16, hash: &SegmentHash) -> Option<Located> {
    let t = manifest.tracks.get(usize::from(track))?;
    if let Some(init) = t.init.filter(|i| &i.hash == hash) {
        return Some(Located {
            entry: init,
            track,
            index: None,
        });
    }
    let pos = t.segments.iter().position(|s| &s.hash == hash)?;
    Some(Located {
        entry: t.segments[pos],
        track,
        index: u32::try_from(pos).ok(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn segment(
    state: &GatewayState,
    movie: &str,
    manifest: &str,
    rendition: &str,
    file: &str,
    token: Option<String>,
    range: Option<String>,
) -> Result<Response, HlsError> {
    let (movie, grant) = authorise(state, movie, token)?;
    let (stem, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| HlsError::NotFound("no such segment".into()))?;
    let hash: SegmentHash = stem
        .parse()
        .map_err(|_| HlsError::NotFound("no such segment".into()))?;
    let found = resolve(state, &movie, manifest).await?;
    let track = track_of(&found.manifest, rendition)?;
    check_tier(state, &grant, &found.manifest, track)?;
    let at = locate(&found.manifest, track, &hash)
        .ok_or_else(|| HlsError::NotFound("the manifest has no such segment".into()))?;
    let kind = found
        .manifest
        .tracks
        .get(usize::from(track))
        .map(|t| t.kind);
    let content_type = match (found.manifest.container, at.index, ext) {
        (_, Some(_), "vtt") if kind == Some(reelnet_proto::manifest::TrackKind::Subtitles) => {
            "text/vtt"
        }
        (_, Some(_), "jpg")
            if matches!(
                kind,
                Some(reelnet_proto::manifest::TrackKind::Thumbnails(_))
            ) =>
        {
            "image/jpeg"
        }
        (_, None, "mp4") => "video/mp4",
        (Container::Fmp4, Some(_), "m4s") => "video/iso.segment",
        (Container::MpegTs, Some(_), "ts") | (Container::MpegTs, None, "ts") => "video/mp2t",
        _ => return Err(HlsError::NotFound("no such segment".into())),
    };
    match segment_body(state, &found, &at).await? {
        SegmentBody::Whole(bytes) => ranged(bytes, range.as_deref(), content_type, &hash),
        SegmentBody::Stream { mut rx, .. } if range.is_some() => {
            let mut all = bytes::BytesMut::with_capacity(at.entry.size as usize);
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk.map_err(|e| HlsError::Unavailable(e.to_string()))?;
                all.extend_from_slice(&chunk);
            }
            ranged(all.freeze(), range.as_deref(), content_type, &hash)
        }
        SegmentBody::Stream { size, rx } => {
            let mut res = warp::reply::stream(ChunkStream(rx)).into_response();
            headers(&mut res, content_type, &hash);
            if let Ok(v) = HeaderValue::from_str(&size.to_string()) {
                res.headers_mut().insert(header::CONTENT_LENGTH, v);
            }
            Ok(res)
        }
    }
}

/// A segment's verified bytes: whole, or as a stream of verified chunks of `size` bytes in
/// all (an `Err` item aborts the response).
enum SegmentBody {
    Whole(Bytes),
    Stream {
        size: u64,
        rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    },
}

/// The response body of a streamed segment.
struct ChunkStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Chunks queued between a segment's reader and its response body.
const STREAM_QUEUE: usize = 4;

fn aborted(why: String) -> std::io::Error {
    std::io::Error::other(why)
}

/// Streams a stored segment whose first verified block is already read; the rest is read
/// one block ahead of the socket. Fills the hot cache once the whole segment has passed.
fn stream_from_disk(
    state: &GatewayState,
    hash: SegmentHash,
    mut reader: crate::store::VerifiedReader,
    first: Vec<u8>,
    admit: bool,
) -> SegmentBody {
    let size = reader.size();
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let (hot, metrics) = (state.hot.clone(), state.metrics.clone());
    reelnet_runtime::shutdown::spawn("segment-disk-stream", async move {
        let whole = usize::try_from(size).unwrap_or(0) <= crate::store::READ_BLOCK;
        // Collect the blocks for the hot cache only when it would take them (a copy of
        // every byte otherwise wasted).
        let mut all = bytes::BytesMut::new();
        let mut block = Bytes::from(first);
        loop {
            if admit && !whole {
                all.extend_from_slice(&block);
            }
            let last = block.clone();
            if tx.send(Ok(block)).await.is_err() {
                // The viewer went away.
                return Ok::<(), std::convert::Infallible>(());
            }
            let next = tokio::task::spawn_blocking(move || {
                let r = reader.next_block();
                (reader, r)
            })
            .await;
            let Ok((r, result)) = next else {
                let _ = tx.send(Err(aborted("segment read failed".into()))).await;
                return Ok(());
            };
            reader = r;
            match result {
                Ok(Some(b)) => block = Bytes::from(b),
                Ok(None) => {
                    metrics.served_local(size);
                    if admit {
                        hot.put(hash, if whole { last } else { all.freeze() });
                    }
                    return Ok(());
                }
                Err(err) => {
                    if matches!(err, crate::store::StoreError::Corrupt(_)) {
                        metrics.corrupt_at_rest();
                    }
                    tracing::warn!(%hash, %err, "stored segment failed while streaming; response aborted");
                    let _ = tx.send(Err(aborted(err.to_string()))).await;
                    return Ok(());
                }
            }
        }
    });
    SegmentBody::Stream { size, rx }
}

/// The segment's verified bytes: from the hot cache, the store, else a peer.
async fn segment_body(
    state: &GatewayState,
    found: &CatalogManifest,
    at: &Located,
) -> Result<SegmentBody, HlsError> {
    let hash = at.entry.hash;
    let admit = match state.hot.lookup(&hash).await {
        super::hot::Lookup::Hit(bytes) => {
            state.metrics.served_local(bytes.len() as u64);
            return Ok(SegmentBody::Whole(bytes));
        }
        super::hot::Lookup::Miss { admit } => admit,
    };
    let store = state.store.clone();
    let local = tokio::task::spawn_blocking(move || {
        let Some(mut reader) = store.open_verified(&hash)? else {
            return Ok(None);
        };
        let first = reader.next_block()?.unwrap_or_default();
        Ok::<_, crate::store::StoreError>(Some((reader, first)))
    })
    .await
    .map_err(|e| HlsError::Internal(e.to_string()))?;
    match local {
        Ok(Some((reader, first))) => {
            return Ok(stream_from_disk(state, hash, reader, first, admit))
        }
        Ok(None) => {}
        // A corrupt local copy is never served; fetch a good one instead.
        Err(err) => {
            if matches!(err, crate::store::StoreError::Corrupt(_)) {
                state.metrics.corrupt_at_rest();
            }
            tracing::warn!(%hash, %err, "local segment unreadable; fetching from peers");
        }
    }
    let providers = match at.index {
        Some(i) => state.catalog.providers(found.id, at.track, i).await?,
        None => state.catalog.init_providers(found.id, at.track).await?,
    };
    let origin = found.manifest.origin;
    let providers = spread_providers(
        state.node_id,
        origin,
        at.index,
        providers.into_iter().map(|p| (p.node, p.quic_addr)),
    );
    // Spare the origin only when someone else can serve.
    let spare = providers
        .iter()
        .any(|(n, _)| *n != origin)
        .then_some(origin);
    if providers.is_empty() {
        return Err(HlsError::Unavailable(
            "no live node holds this segment".into(),
        ));
    }
    let want = FetchRequest {
        request: SegmentRequest {
            manifest: found.id,
            track: at.track,
            segment: match at.index {
                Some(i) => SegmentRef::Index(i),
                None => SegmentRef::Init,
            },
        },
        expected: hash,
        size: Some(u64::from(at.entry.size)),
    };
    let mut progress = state
        .fetches
        .fetch(want, providers, spare)
        .await
        .map_err(HlsError::Unavailable)?;
    // Answer once the first verified bytes are there (or the fetch failed before any: a
    // plain 502 then).
    let first = progress
        .wait_for(|p| !p.chunks.is_empty() || p.done.is_some())
        .await
        .map_err(|_| HlsError::Unavailable("the fetch was abandoned".into()))?
        .clone();
    if first.chunks.is_empty() {
        if let Some(Err(err)) = first.done {
            return Err(HlsError::Unavailable(err));
        }
    }
    let size = u64::from(at.entry.size);
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let metrics = state.metrics.clone();
    reelnet_runtime::shutdown::spawn("segment-peer-stream", async move {
        let mut next = 0;
        loop {
            let (chunks, done) = {
                let p = progress.borrow_and_update();
                (
                    p.chunks.get(next..).unwrap_or_default().to_vec(),
                    p.done.clone(),
                )
            };
            next += chunks.len();
            for c in chunks {
                if tx.send(Ok(c)).await.is_err() {
                    return Ok::<(), std::convert::Infallible>(());
                }
            }
            match done {
                Some(Ok(())) => {
                    metrics.served_peer(size);
                    return Ok(());
                }
                Some(Err(err)) => {
                    let _ = tx.send(Err(aborted(err))).await;
                    return Ok(());
                }
                None => {}
            }
            if progress.changed().await.is_err() {
                let _ = tx
                    .send(Err(aborted("the fetch was abandoned".into())))
                    .await;
                return Ok(());
            }
        }
    });
    Ok(SegmentBody::Stream { size, rx })
}

fn headers(res: &mut Response, content_type: &'static str, hash: &SegmentHash) {
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, v);
    }
}

/// A `200` with the whole body, or a `206` for one `bytes=` range.
fn ranged(
    bytes: Bytes,
    range: Option<&str>,
    content_type: &'static str,
    hash: &SegmentHash,
) -> Result<Response, HlsError> {
    let size = bytes.len() as u64;
    let (status, body, content_range) = match range.map(|r| parse_range(r, size)) {
        None | Some(Ok(None)) => (StatusCode::OK, bytes, None),
        Some(Ok(Some((start, end)))) => {
            let (s, e) = (start as usize, end as usize);
            (
                StatusCode::PARTIAL_CONTENT,
                bytes.slice(s..=e),
                Some(format!("bytes {start}-{end}/{size}")),
            )
        }
        Some(Err(())) => return Err(HlsError::Range { size }),
    };
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    headers(&mut res, content_type, hash);
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().insert(header::CONTENT_RANGE, cr);
    }
    Ok(res)
}

/// Parses a single `bytes=` range against a body of `size` bytes: `Ok(None)` means "serve
/// it all" (a header we do not understand, or several ranges, are ignored as RFC 9110
/// allows); `Err` is unsatisfiable.
fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        // Suffix: the last `b` bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The providers to try for segment `index` (None: the init segment), this node left out:
/// replicas and caches first, in an order that differs from node to node and segment to
/// segment (so viewers on different nodes spread over the holders instead of all asking
/// the same one first), and the movie's `origin` last (issue 19 item 5). The fetcher then
/// ranks by what it has measured; ties keep this order.
pub fn spread_providers(
    me: NodeId,
    origin: NodeId,
    index: Option<u32>,
    providers: impl Iterator<Item = (NodeId, SocketAddr)>,
) -> Vec<(NodeId, SocketAddr)> {
    let key = |node: &NodeId| {
        let mut h = blake3::Hasher::new();
        h.update(me.as_bytes());
        h.update(node.as_bytes());
        h.update(&index.map_or(u64::MAX, u64::from).to_le_bytes());
        (*node == origin, *h.finalize().as_bytes())
    };
    let mut list: Vec<_> = providers.filter(|(n, _)| *n != me).collect();
    list.sort_by_cached_key(|(n, _)| key(n));
    list
}

/// How far a shared peer fetch has got: the verified chunks so far, in order, and its end.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Verified bytes, in order from the segment's start.
    pub chunks: Vec<Bytes>,
    /// `Some` once the fetch has ended: `Ok` with every byte in `chunks`, or why it failed.
    pub done: Option<Result<(), String>>,
}

type FetchReply = oneshot::Sender<watch::Receiver<Progress>>;

enum FetchCommand {
    Fetch {
        want: FetchRequest,
        providers: Vec<(NodeId, SocketAddr)>,
        /// The movie's origin, tried after replicas and caches unless they are much worse.
        spare: Option<NodeId>,
        reply: FetchReply,
    },
}

/// Handle to the actor that fetches missing segments from peers: one fetch per segment at
/// a time, shared by every viewer waiting for it. The fetch publishes verified bytes as they
/// arrive; once complete, the segment goes to the hot cache and is cached in the store.
#[derive(Clone)]
pub struct PeerFetches {
    tx: mpsc::Sender<FetchCommand>,
}

impl PeerFetches {
    /// Starts the actor; it stops (abandoning fetches in flight) when `cancel` fires.
    pub fn start(
        fetcher: Arc<Fetcher>,
        store: Store,
        hot: super::hot::HotSegments,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let task = reelnet_runtime::shutdown::spawn(
            "peer-fetches",
            run_fetches(rx, fetcher, store, hot, metrics, cancel),
        );
        (Self { tx }, task)
    }

    /// The progress of `want`'s fetch from the best of `providers` (started now, or joined
    /// if one is in flight), sparing `spare` (the movie's origin; see
    /// [`Fetcher::fetch_streaming_sparing`]).
    pub async fn fetch(
        &self,
        want: FetchRequest,
        providers: Vec<(NodeId, SocketAddr)>,
        spare: Option<NodeId>,
    ) -> Result<watch::Receiver<Progress>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(FetchCommand::Fetch {
                want,
                providers,
                spare,
                reply,
            })
            .await
            .map_err(|_| "the node is shutting down".to_owned())?;
        rx.await.map_err(|_| "the node is shutting down".to_owned())
    }
}

/// One fetch: verified bytes go to `progress` as they arrive.
#[allow(clippy::too_many_arguments)]
async fn fetch_one(
    fetcher: Arc<Fetcher>,
    store: Store,
    hot: super::hot::HotSegments,
    metrics: Arc<Metrics>,
    want: FetchRequest,
    providers: Vec<(NodeId, SocketAddr)>,
    spare: Option<NodeId>,
    progress: watch::Sender<Progress>,
) {
    let hash = want.expected;
    let started = Instant::now();
    let collected = std::sync::Mutex::new(bytes::BytesMut::with_capacity(
        want.size.unwrap_or(0) as usize
    ));
    let sink = |offset: u64, bytes: Bytes| {
        let mut c = collected.lock().unwrap_or_else(|e| e.into_inner());
        let have = c.len() as u64;
        crate::transfer::fetcher::extend_prefix(&mut c, offset, &bytes);
        if c.len() as u64 > have {
            let skip = usize::try_from(have - offset).unwrap_or(0);
            let fresh = bytes.slice(skip..);
            progress.send_modify(|p| p.chunks.push(fresh));
        }
    };
    // A viewer's response cannot restart: no resuming from another provider midway.
    let result = fetcher
        .fetch_streaming_sparing(&providers, spare, &want, &sink, false)
        .await;
    metrics.fetch_finished(started.elapsed(), result.is_ok());
    match result {
        Ok(()) => {
            let bytes = collected
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .freeze();
            hot.put(hash, bytes.clone());
            progress.send_modify(|p| p.done = Some(Ok(())));
            let stored =
                tokio::task::spawn_blocking(move || store.put_cached_segment(&bytes, &hash)).await;
            if let Ok(Err(err)) = stored {
                tracing::warn!(%hash, %err, "cannot cache a fetched segment");
            }
        }
        Err(err) => {
            if let crate::transfer::FetchError::AllFailed(failures) = &err {
                for (_, e) in failures {
                    if e.is_bad_data() {
                        metrics.bad_peer_chunk();
                    }
                }
            }
            progress.send_modify(|p| p.done = Some(Err(err.to_string())));
        }
    }
}

async fn run_fetches(
    mut rx: mpsc::Receiver<FetchCommand>,
    fetcher: Arc<Fetcher>,
    store: Store,
    hot: super::hot::HotSegments,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut inflight: HashMap<SegmentHash, watch::Receiver<Progress>> = HashMap::new();
    let mut running: JoinSet<SegmentHash> = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = rx.recv() => {
                let Some(FetchCommand::Fetch { want, providers, spare, reply }) = cmd else { break };
                let hash = want.expected;
                if let Some(progress) = inflight.get(&hash) {
                    metrics.fetch_coalesced();
                    let _ = reply.send(progress.clone());
                    continue;
                }
                metrics.fetch_started();
                let (tx, progress) = watch::channel(Progress::default());
                inflight.insert(hash, progress.clone());
                let _ = reply.send(progress);
                let (fetcher, store, hot, metrics) =
                    (fetcher.clone(), store.clone(), hot.clone(), metrics.clone());
                running.spawn(async move {
                    fetch_one(fetcher, store, hot, metrics, want, providers, spare, tx).await;
                    hash
                });
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(hash) = done {
                    inflight.remove(&hash);
                }
            }
        }
    }
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_spread_over_holders_with_the_origin_last() {
        let node = |b: u8| NodeId::from_bytes([b; 32]);
        let addr = |b: u8| SocketAddr::from(([127, 0, 0, b], 4400));
        let origin = node(1);
        let holders: Vec<_> = (1..=6).map(|b| (node(b), addr(b))).collect();
        let mut firsts = std::collections::BTreeSet::new();
        for me in 2..=6 {
            for index in 0..20 {
                let list = spread_providers(node(me), origin, Some(index), holders.iter().copied());
                assert_eq!(list.len(), 5, "this node is left out");
                assert!(list.iter().all(|(n, _)| *n != node(me)));
                assert_eq!(list.last().map(|p| p.0), Some(origin), "origin last");
                firsts.insert(list[0].0);
            }
        }
        // Viewers on different nodes do not all ask the same holder first.
        assert!(firsts.len() >= 3, "{firsts:?}");
        // The origin alone is still a provider.
        let alone = spread_providers(node(2), origin, None, [(origin, addr(1))].into_iter());
        assert_eq!(alone, vec![(origin, addr(1))]);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=x-3", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn token_in_query() {
        assert_eq!(token_of("token=abc"), Some("abc".into()));
        assert_eq!(token_of("x=1&token=abc&y"), Some("abc".into()));
        assert_eq!(token_of("token="), None);
        assert_eq!(token_of(""), None);
    }
}
