//! The operator console's node views (`/api/v1/console/*`), on the node's own origin: what
//! this node is, does and holds, the last hour of its metrics, and its ingest jobs.
//!
//! Who: a viewer signed in through this node (a node-audience access token, checked offline
//! like `/play`) whose account is a network admin (the tracker's `admin` role in the token)
//! or one of this node's operators ([`crate::operators`], `reelnet-node operator add`).
//! No token: 401; anyone else: 403 `not_operator`. The loopback admin API's random token
//! is never accepted here.
//!
//! Routes (documented in `node/openapi.yaml`):
//! - `GET access`: who the caller is to this node (the web app shows its operator menu on 200);
//! - `GET status`: reachability, certificates, peers with latency, disk use, replicas,
//!   bytes served and the hot-cache hit ratio;
//! - `GET history`: the ring buffer of [`crate::history`];
//! - `GET jobs`, `POST jobs` (JSON: a magnet link or a file path on the node),
//!   `POST jobs/torrent` (a `.torrent` file as the body), `POST jobs/{id}/cancel`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reelnet_proto::{Claims, Role};
use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{json_error, GatewayState};
use crate::admin::StatusSource;
use crate::history::History;
use crate::ingest::job::{IngestProgress, IngestRequest};
use crate::ingest::manager::{CancelOutcome, IngestManager};

/// Largest `.torrent` upload.
pub const MAX_TORRENT_BYTES: u64 = 4 << 20;
/// Largest JSON body of `POST jobs`.
const MAX_JOB_BODY: u64 = 64 * 1024;
/// Most peers whose gateway latency one status request measures.
const MAX_PEER_PINGS: usize = 32;
/// How long a peer's `/healthz` may take before it counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the console's node views need beyond the gateway's own state. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleParts {
    pub ingest: IngestManager,
    pub status: StatusSource,
    pub history: History,
    /// The served HTTPS certificate (none on plain HTTP).
    pub tls: Option<reelnet_runtime::tls::Tls>,
    /// Where torrent downloads go (their size is shown as "downloads").
    pub download_dir: PathBuf,
    /// Where uploaded `.torrent` files are kept.
    pub upload_dir: PathBuf,
    /// Plain HTTP client for peers' `/healthz`.
    pub http: reqwest::Client,
}

/// Why the caller may use the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A network admin (the tracker's admin role).
    Admin,
    /// Named in this node's `operators.json`.
    Operator,
}

/// `GET /api/v1/console/access`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessView {
    pub email: String,
    pub access: Access,
}

/// `GET /api/v1/console/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleStatus {
    pub node_id: String,
    pub public_url: String,
    /// `public`, `private` (behind NAT), `relayed` or `unknown`.
    pub reachability: String,
    pub confirmed_addresses: Vec<String>,
    pub relay: Option<String>,
    /// The served HTTPS certificate's end (unix seconds); none on plain HTTP.
    pub https_not_after: Option<i64>,
    pub membership: crate::membership::MemberSummary,
    pub peers: Vec<PeerView>,
    pub connected_peers: usize,
    pub disk: DiskView,
    pub replicas: Vec<ReplicaView>,
    pub served: ServedView,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub node_id: String,
    pub gateway_url: String,
    /// Round trip of the peer gateway's `/healthz`, milliseconds; none if unreachable.
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskView {
    pub quota_bytes: u64,
    /// Segments this node keeps (its share and its own ingests).
    pub held_bytes: u64,
    /// Evictable cache.
    pub cache_bytes: u64,
    /// Torrent downloads (outside the segment store).
    pub downloads_bytes: u64,
    pub reserved_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    pub movie_id: String,
    pub manifest_id: String,
    pub origin: String,
    pub held_segments: usize,
    pub total_segments: usize,
    /// 0 to 1.
    pub completeness: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServedView {
    pub bytes_local: u64,
    pub bytes_peer: u64,
    pub segments_local: u64,
    pub segments_peer: u64,
    /// Share of segments served from disk (held or hot cache) rather than fetched.
    pub hit_ratio: f64,
}

/// One job in `GET /api/v1/console/jobs`.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: u64,
    #[serde(flatten)]
    pub progress: IngestProgress,
    /// Downloaded share of a torrent (0 to 1), none for local files.
    pub downloaded_fraction: Option<f64>,
    /// Transcoded share of the movie (0 to 1), once its duration is known.
    pub position_fraction: Option<f64>,
    /// The published manifest's tracks (`720p`, `audio-en`, ...).
    pub tracks: Vec<TrackView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackView {
    pub name: String,
    pub kind: String,
    pub language: Option<String>,
}

/// `POST /api/v1/console/jobs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartJob {
    /// A magnet link or a path on the node (a video or a .torrent file).
    pub source: String,
    pub title: Option<String>,
    pub year: Option<u16>,
}

/// `?title=&year=` of `POST jobs/torrent`.
#[derive(Debug, Clone, Deserialize)]
struct TorrentQuery {
    title: Option<String>,
    year: Option<u16>,
}

fn forbidden() -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        "not_operator",
        "only this node's operators and network admins may use its console",
    )
}

/// Who the caller is to this node, or the answer refusing them.
async fn authorize(state: &GatewayState, auth: Option<&str>) -> Result<AccessView, Response> {
    let unauthorized = |msg: String| json_error(StatusCode::UNAUTHORIZED, "unauthorized", msg);
    let token = super::auth::bearer(auth).map_err(|e| unauthorized(e.to_string()))?;
    let claims: Claims = state
        .jwt
        .verify(token)
        .await
        .map_err(|e| unauthorized(e.to_string()))?;
    let access = if claims.role == Role::Admin {
        Access::Admin
    } else if claims.email_verified && crate::operators::is_operator(&state.data_dir, &claims.email)
    {
        Access::Operator
    } else {
        tracing::debug!(user = %claims.sub, "console refused: not an operator");
        return Err(forbidden());
    };
    Ok(AccessView {
        email: claims.email,
        access,
    })
}

fn unavailable(msg: impl Into<String>) -> Response {
    json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg)
}

/// The console routes (to operators, 503 when the gateway runs without its console parts,
/// as in gateway-only tests).
///
/// Boxed (each route and the whole): the gateway's filter chain is deep, and unboxed
/// futures this size overflow a worker's stack in debug builds.
pub fn routes(state: GatewayState) -> BoxedFilter<(Response,)> {
    let base = warp::path!("api" / "v1" / "console" / ..);
    let st = warp::any().map(move || state.clone());
    let auth = || warp::header::optional::<String>("authorization");
    let access = base
        .and(warp::path!("access"))
        .and(warp::get())
        .and(st.clone())
        .and(auth())
        .then(|s: GatewayState, a: Option<String>| async move {
            respond(&s, "console_access", &a, |_, who| async move {
                warp::reply::json(&who).into_response()
            })
            .await
        });
    let status = base
        .and(warp::path!("status"))
        .and(warp::get())
        .and(st.clone())
        .and(auth())
        .then(|s: GatewayState, a: Option<String>| async move {
            respond(&s, "console_status", &a, |s, _| async move {
                match status(&s).await {
                    Ok(v) => warp::reply::json(&v).into_response(),
                    Err(r) => r,
                }
            })
            .await
        });
    let history = base
        .and(warp::path!("history"))
        .and(warp::get())
        .and(st.clone())
        .and(auth())
        .then(|s: GatewayState, a: Option<String>| async move {
            respond(&s, "console_history", &a, |s, _| async move {
                let Some(c) = s.console.as_ref() else {
                    return unavailable("no console on this gateway");
                };
                match c.history.view().await {
                    Ok(v) => warp::reply::json(&v).into_response(),
                    Err(e) => unavailable(e.to_string()),
                }
            })
            .await
        });
    let jobs = base
        .and(warp::path!("jobs"))
        .and(warp::get())
        .and(st.clone())
        .and(auth())
        .then(|s: GatewayState, a: Option<String>| async move {
            respond(&s, "console_jobs", &a, |s, _| async move {
                match jobs(&s).await {
                    Ok(v) => warp::reply::json(&v).into_response(),
                    Err(r) => r,
                }
            })
            .await
        });
    let start = base
        .and(warp::path!("jobs"))
        .and(warp::post())
        .and(st.clone())
        .and(auth())
        .and(warp::body::content_length_limit(MAX_JOB_BODY))
        .and(warp::body::bytes())
        .then(
            |s: GatewayState, a: Option<String>, body: bytes::Bytes| async move {
                respond(&s, "console_start", &a, |s, who| async move {
                    let req: StartJob = match serde_json::from_slice(&body) {
                        Ok(r) => r,
                        Err(e) => {
                            return json_error(
                                StatusCode::BAD_REQUEST,
                                "invalid_json",
                                e.to_string(),
                            )
                        }
                    };
                    let source = req.source.trim().to_owned();
                    if source.is_empty() {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_source",
                            "give a magnet: link or a file path on the node",
                        );
                    }
                    if let Err(e) = crate::ingest::job::Source::parse(&source) {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_source",
                            e.to_string(),
                        );
                    }
                    start_job(&s, &who, source, req.title, req.year).await
                })
                .await
            },
        );
    let upload = base
        .and(warp::path!("jobs" / "torrent"))
        .and(warp::post())
        .and(st.clone())
        .and(auth())
        .and(warp::query::<TorrentQuery>())
        .and(warp::body::content_length_limit(MAX_TORRENT_BYTES))
        .and(warp::body::bytes())
        .then(
            |s: GatewayState, a: Option<String>, q: TorrentQuery, body: bytes::Bytes| async move {
                respond(&s, "console_upload", &a, |s, who| async move {
                    let Some(c) = s.console.clone() else {
                        return unavailable("no console on this gateway");
                    };
                    // A bencoded dictionary, at least: the torrent reader judges the rest.
                    if body.first() != Some(&b'd') {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_torrent",
                            "the body is not a .torrent file",
                        );
                    }
                    let name = format!("{}.torrent", blake3::hash(&body).to_hex());
                    let path = c.upload_dir.join(name);
                    let write = {
                        let (dir, path) = (c.upload_dir.clone(), path.clone());
                        tokio::task::spawn_blocking(move || {
                            std::fs::create_dir_all(&dir)?;
                            std::fs::write(&path, &body)
                        })
                        .await
                    };
                    match write {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return unavailable(format!("cannot keep the upload: {e}")),
                        Err(e) => return unavailable(e.to_string()),
                    }
                    start_job(&s, &who, path.display().to_string(), q.title, q.year).await
                })
                .await
            },
        );
    let cancel = base
        .and(warp::path!("jobs" / u64 / "cancel"))
        .and(warp::post())
        .and(st)
        .and(auth())
        .then(|id: u64, s: GatewayState, a: Option<String>| async move {
            respond(&s, "console_cancel", &a, |s, who| async move {
                let Some(c) = s.console.as_ref() else {
                    return unavailable("no console on this gateway");
                };
                match c.ingest.cancel(id).await {
                    Ok(CancelOutcome::Cancelled) => {
                        tracing::info!(job = id, by = %who.email, "ingest cancelled from the console");
                        warp::reply::json(&serde_json::json!({ "id": id, "cancelled": true }))
                            .into_response()
                    }
                    Ok(CancelOutcome::Finished) => json_error(
                        StatusCode::CONFLICT,
                        "finished",
                        "the job has already ended",
                    ),
                    Ok(CancelOutcome::NotFound) => {
                        json_error(StatusCode::NOT_FOUND, "not_found", "no such job")
                    }
                    Err(e) => unavailable(e.to_string()),
                }
            })
            .await
        });
    access
        .boxed()
        .or(status.boxed())
        .unify()
        .or(history.boxed())
        .unify()
        .or(upload.boxed())
        .unify()
        .or(jobs.boxed())
        .unify()
        .or(start.boxed())
        .unify()
        .or(cancel.boxed())
        .unify()
        // Nothing under /api/v1/console goes on to the tracker proxy: a request the routes
        // above refused (a POST without Content-Length, a wrong method) is answered here.
        .or(warp::path!("api" / "v1" / "console" / ..).map(|| {
            json_error(
                StatusCode::BAD_REQUEST,
                "bad_console_request",
                "not a console request this node answers (a POST needs a Content-Length)",
            )
        }))
        .unify()
        .boxed()
}

/// Checks the caller, runs `f`, counts the answer.
async fn respond<F, Fut>(
    state: &GatewayState,
    route: &'static str,
    auth: &Option<String>,
    f: F,
) -> Response
where
    F: FnOnce(GatewayState, AccessView) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let mut res = match authorize(state, auth.as_deref()).await {
        Ok(who) => f(state.clone(), who).await,
        Err(r) => r,
    };
    state.metrics.request(route, res.status().as_u16());
    res.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-store"),
    );
    res
}

async fn start_job(
    state: &GatewayState,
    who: &AccessView,
    source: String,
    title: Option<String>,
    year: Option<u16>,
) -> Response {
    let Some(c) = state.console.as_ref() else {
        return unavailable("no console on this gateway");
    };
    let mut req = IngestRequest {
        source,
        ..IngestRequest::default()
    };
    req.movie.title = title.filter(|t| !t.trim().is_empty());
    req.movie.year = year;
    match c.ingest.start_job(req).await {
        Ok(id) => {
            tracing::info!(job = id, by = %who.email, "ingest started from the console");
            warp::reply::with_status(
                warp::reply::json(&serde_json::json!({ "id": id })),
                StatusCode::ACCEPTED,
            )
            .into_response()
        }
        Err(e) => unavailable(e.to_string()),
    }
}

async fn jobs(state: &GatewayState) -> Result<Vec<JobView>, Response> {
    let c = state
        .console
        .as_ref()
        .ok_or_else(|| unavailable("no console on this gateway"))?;
    let list = c
        .ingest
        .list()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        list.into_iter()
            .rev()
            .map(|(id, p)| {
                let tracks = p
                    .manifest_id
                    .as_deref()
                    .and_then(|m| m.parse::<reelnet_proto::ManifestId>().ok())
                    .and_then(|m| store.manifest(&m).ok().flatten())
                    .map(|m| {
                        m.manifest
                            .tracks
                            .iter()
                            .map(|t| TrackView {
                                name: t.rendition.name.clone(),
                                kind: format!("{:?}", t.kind).to_ascii_lowercase(),
                                language: t.media.as_ref().and_then(|m| m.language.clone()),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                JobView {
                    id,
                    downloaded_fraction: (p.total_bytes > 0)
                        .then(|| (p.downloaded_bytes as f64 / p.total_bytes as f64).min(1.0)),
                    // A finished job has transcoded all of it (its last progress report may
                    // be a segment short of the end).
                    position_fraction: if p.state == crate::ingest::job::JobState::Done {
                        Some(1.0)
                    } else {
                        p.duration_s
                            .filter(|d| *d > 0.0)
                            .map(|d| (p.position_s / d).clamp(0.0, 1.0))
                    },
                    progress: p,
                    tracks,
                }
            })
            .collect()
    })
    .await
    .map_err(|e| unavailable(e.to_string()))
}

/// Bytes of every file under `dir` (0 when it does not exist).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

async fn ping(http: &reqwest::Client, url: &str) -> Option<f64> {
    let started = Instant::now();
    let res = http
        .get(format!("{}/healthz", url.trim_end_matches('/')))
        .timeout(PING_TIMEOUT)
        .send()
        .await
        .ok()?;
    res.status()
        .is_success()
        .then(|| started.elapsed().as_secs_f64() * 1000.0)
}

async fn status(state: &GatewayState) -> Result<ConsoleStatus, Response> {
    let c = state
        .console
        .as_ref()
        .ok_or_else(|| unavailable("no console on this gateway"))?;
    let st = c.status.status().await.map_err(unavailable)?;
    let nat = st.nat.clone();
    let reachability = match &nat {
        Some(n) if n.relay.is_some() && n.confirmed.is_empty() => "relayed".to_owned(),
        Some(n) => serde_json::to_value(n.reachability)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", n.reachability).to_ascii_lowercase()),
        None => "unknown".to_owned(),
    };
    let others: Vec<_> = st
        .live_nodes
        .iter()
        .filter(|n| n.node_id != st.node_id)
        .take(MAX_PEER_PINGS)
        .cloned()
        .collect();
    let pings =
        futures::future::join_all(others.iter().map(|n| ping(&c.http, &n.gateway_url))).await;
    let peers = others
        .into_iter()
        .zip(pings)
        .map(|(n, latency_ms)| PeerView {
            node_id: n.node_id,
            gateway_url: n.gateway_url,
            latency_ms,
        })
        .collect();
    let downloads = {
        let dir = c.download_dir.clone();
        tokio::task::spawn_blocking(move || dir_bytes(&dir))
            .await
            .unwrap_or(0)
    };
    let https_not_after = c
        .tls
        .as_ref()
        .and_then(|t| t.current_leaf())
        .and_then(|leaf| reelnet_runtime::tls::validity(leaf.as_ref()).ok())
        .map(|(_, not_after)| not_after);
    let snap = state.metrics.snapshot();
    let served_segments = snap.segments_local + snap.segments_peer;
    let replicas = st
        .manifests
        .iter()
        .filter(|m| m.responsible)
        .map(|m| ReplicaView {
            movie_id: m.movie_id.clone(),
            manifest_id: m.id.clone(),
            origin: m.origin.clone(),
            held_segments: m.held_segments,
            total_segments: m.total_segments,
            completeness: if m.total_segments == 0 {
                0.0
            } else {
                m.held_segments as f64 / m.total_segments as f64
            },
        })
        .collect();
    Ok(ConsoleStatus {
        node_id: st.node_id,
        public_url: state.public_url.clone(),
        reachability,
        confirmed_addresses: nat
            .as_ref()
            .map(|n| n.confirmed.clone())
            .unwrap_or_default(),
        relay: nat.as_ref().and_then(|n| n.relay.clone()),
        https_not_after,
        membership: st.membership,
        peers,
        connected_peers: st.peers,
        disk: DiskView {
            quota_bytes: st.store.quota_bytes,
            held_bytes: st.store.pinned_bytes,
            cache_bytes: st.store.cache_bytes,
            downloads_bytes: downloads,
            reserved_bytes: st.store.reserved_bytes,
        },
        replicas,
        served: ServedView {
            bytes_local: snap.bytes_local,
            bytes_peer: snap.bytes_peer,
            segments_local: snap.segments_local,
            segments_peer: snap.segments_peer,
            hit_ratio: if served_segments == 0 {
                0.0
            } else {
                snap.segments_local as f64 / served_segments as f64
            },
        },
    })
}
