//! The node's local admin API: loopback only, behind a random bearer token written with the
//! URL to `<data_dir>/admin.json` (mode 0600). `reelnet-node ingest` uses it to hand a job to
//! a node already running on the same data directory and to follow its progress, and
//! `GET /admin/v1/status` reports the node's view of the network, its store and its
//! placement share (tests, the testnet scripts and operators read it);
//! `GET /admin/v1/manifests/{id}` returns a stored signed manifest (its encoded bytes);
//! `PUT /admin/v1/storage/quota` (`{"quota_bytes": N}`) changes the store's quota while the
//! node runs (until restart; `storage.quota_bytes` in the config is the lasting value):
//! raising it lets a full node resume its pulls and ingests without a restart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::catalog::Catalog;
use crate::ingest::job::IngestRequest;
use crate::ingest::manager::IngestManager;
use crate::placement::Placement;
use crate::store::Store;
use crate::swarm::NetworkHandle;

/// The admin info file's name in the data directory.
pub const ADMIN_FILE: &str = "admin.json";

/// Where a running node's admin API is, and its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminInfo {
    pub url: String,
    pub token: String,
    pub pid: u32,
}

pub fn info_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_FILE)
}

/// Reads the admin info a running node left in its data directory.
pub fn read_info(data_dir: &Path) -> Option<AdminInfo> {
    let bytes = std::fs::read(info_path(data_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_info(data_dir: &Path, info: &AdminInfo) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(info).map_err(std::io::Error::other)?;
    reelnet_runtime::fs::write_private(&info_path(data_dir), &bytes)
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": code, "message": message })),
        status,
    )
    .into_response()
}

/// What `GET /admin/v1/status` reads. Cheap to clone.
#[derive(Clone)]
pub struct StatusSource {
    pub node_id: reelnet_proto::NodeId,
    pub store: Store,
    pub catalog: Catalog,
    pub network: NetworkHandle,
    pub placement: Placement,
    pub membership: crate::membership::Membership,
}

/// `GET /admin/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    /// Connected libp2p peers.
    pub peers: usize,
    /// Nodes with a live catalog record (this one included once its record is in).
    pub live_nodes: Vec<StatusNode>,
    pub catalog: StatusCatalog,
    /// Every ingest in this node's store (newest version).
    pub manifests: Vec<StatusManifest>,
    pub store: crate::store::StoreUsage,
    /// Whether this node is a member of its network, with which roles, and if not why
    /// and how to join.
    pub membership: crate::membership::MemberSummary,
    /// Reachability (AutoNAT), advertised and candidate addresses, relay and hole-punch
    /// state.
    #[serde(default)]
    pub nat: Option<crate::swarm::NatStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusNode {
    pub node_id: String,
    pub gateway_url: String,
    pub quic_addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusCatalog {
    /// Live records in the index.
    pub records: usize,
    /// Manifests in the index (newest version per ingest).
    pub manifests: usize,
    /// Ids of every movie the network has.
    pub movies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusManifest {
    pub id: String,
    pub movie_id: String,
    /// Hex of the ingest id (with the origin, the ingest's stable identity).
    pub ingest_id: String,
    pub origin: String,
    pub seq: u64,
    pub complete: bool,
    /// Segments (init and media, every track) on disk.
    pub held_segments: usize,
    /// Segments the manifest names.
    pub total_segments: usize,
    /// Whether placement makes this node keep it (its own ingests included).
    pub responsible: bool,
    /// Whether placement released it (its segments are evictable cache).
    pub released: bool,
}

impl StatusSource {
    /// Gathers the status.
    pub async fn status(&self) -> Result<Status, String> {
        let peers = self.network.peers().await.map_err(|e| e.to_string())?.len();
        let live = self.catalog.live_nodes().await.map_err(|e| e.to_string())?;
        let stats = self.catalog.stats().await.map_err(|e| e.to_string())?;
        let movies = self.catalog.movies().await.map_err(|e| e.to_string())?;
        let store = self.store.clone();
        let placement = self.placement.clone();
        let manifests = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for s in store.all_manifests().map_err(|e| e.to_string())? {
                let m = &s.manifest;
                let (mut held, mut total) = (0, 0);
                for t in &m.tracks {
                    for seg in t.init.iter().chain(t.segments.iter()) {
                        total += 1;
                        held += usize::from(store.has_segment(&seg.hash));
                    }
                }
                out.push(StatusManifest {
                    id: s.id.to_string(),
                    movie_id: m.movie.to_string(),
                    ingest_id: hex::encode(m.ingest_id),
                    origin: m.origin.to_string(),
                    seq: m.seq,
                    complete: m.complete,
                    held_segments: held,
                    total_segments: total,
                    responsible: placement.is_responsible(m),
                    released: store.is_released(m).map_err(|e| e.to_string())?,
                });
            }
            Ok::<_, String>(out)
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(Status {
            node_id: self.node_id.to_string(),
            peers,
            live_nodes: live
                .into_iter()
                .map(|n| StatusNode {
                    node_id: n.node.to_string(),
                    gateway_url: n.gateway_url,
                    quic_addr: n.quic_addr.to_string(),
                })
                .collect(),
            catalog: StatusCatalog {
                records: stats.records,
                manifests: stats.manifests,
                movies: movies.iter().map(|m| m.movie_id.to_string()).collect(),
            },
            manifests,
            store: self.store.usage(),
            membership: self.membership.state().summary(),
            nat: self.network.nat_status().await.ok(),
        })
    }
}

/// Binds the admin API on loopback and records where it is. Returns the listener's address.
pub async fn serve(
    data_dir: &Path,
    manager: IngestManager,
    status: StatusSource,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let token = hex::encode(rand::random::<[u8; 24]>());
    write_info(
        data_dir,
        &AdminInfo {
            url: format!("http://{addr}"),
            token: token.clone(),
            pid: std::process::id(),
        },
    )?;
    let expected = format!("Bearer {token}");
    let auth =
        warp::header::optional::<String>("authorization").and_then(move |h: Option<String>| {
            let ok = h.as_deref() == Some(expected.as_str());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Unauthorized))
                }
            }
        });
    let m = warp::any().map(move || manager.clone());
    let start = warp::path!("admin" / "v1" / "ingest")
        .and(warp::post())
        .and(auth.clone())
        .and(m.clone())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .then(|(), m: IngestManager, body: bytes::Bytes| async move {
            let req: IngestRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return json_error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string())
                }
            };
            match m.start_job(req).await {
                Ok(id) => warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({ "id": id })),
                    StatusCode::ACCEPTED,
                )
                .into_response(),
                Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, "stopping", &e.to_string()),
            }
        });
    let get = warp::path!("admin" / "v1" / "ingest" / u64)
        .and(warp::get())
        .and(auth.clone())
        .and(m.clone())
        .then(|id: u64, (), m: IngestManager| async move {
            match m.get(id).await {
                Ok(Some(p)) => warp::reply::json(&p).into_response(),
                Ok(None) => json_error(StatusCode::NOT_FOUND, "not_found", "no such job"),
                Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, "stopping", &e.to_string()),
            }
        });
    let store = status.store.clone();
    let quota_store = store.clone();
    let quota = warp::path!("admin" / "v1" / "storage" / "quota")
        .and(warp::put())
        .and(auth.clone())
        .and(warp::body::content_length_limit(1024))
        .and(warp::body::bytes())
        .then(move |(), body: bytes::Bytes| {
            let store = quota_store.clone();
            async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct SetQuota {
                    quota_bytes: u64,
                }
                match serde_json::from_slice::<SetQuota>(&body) {
                    Ok(q) => {
                        store.set_quota(q.quota_bytes);
                        tracing::info!(
                            quota_bytes = q.quota_bytes,
                            "store quota changed through the admin API (until restart)"
                        );
                        warp::reply::json(&store.usage()).into_response()
                    }
                    Err(e) => json_error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
                }
            }
        });
    let status_route = warp::path!("admin" / "v1" / "status")
        .and(warp::get())
        .and(auth.clone())
        .and(warp::any().map(move || status.clone()))
        .then(|(), s: StatusSource| async move {
            match s.status().await {
                Ok(st) => warp::reply::json(&st).into_response(),
                Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, "stopping", &e),
            }
        });
    let manifest = warp::path!("admin" / "v1" / "manifests" / String)
        .and(warp::get())
        .and(auth.clone())
        .then(move |id: String, ()| {
            let store = store.clone();
            async move {
                let Ok(id) = id.parse::<reelnet_proto::ManifestId>() else {
                    return json_error(StatusCode::BAD_REQUEST, "bad_id", "not a manifest id");
                };
                let found = tokio::task::spawn_blocking(move || store.manifest(&id)).await;
                match found {
                    Ok(Ok(Some(m))) => warp::reply::with_header(
                        m.signed.encode(),
                        "content-type",
                        "application/octet-stream",
                    )
                    .into_response(),
                    Ok(Ok(None)) => {
                        json_error(StatusCode::NOT_FOUND, "not_found", "no such manifest")
                    }
                    Ok(Err(e)) => {
                        json_error(StatusCode::INTERNAL_SERVER_ERROR, "store", &e.to_string())
                    }
                    Err(e) => {
                        json_error(StatusCode::INTERNAL_SERVER_ERROR, "store", &e.to_string())
                    }
                }
            }
        });
    let list = warp::path!("admin" / "v1" / "ingest")
        .and(warp::get())
        .and(auth)
        .and(m)
        .then(|(), m: IngestManager| async move {
            match m.list().await {
                Ok(jobs) => {
                    let jobs: Vec<_> = jobs
                        .into_iter()
                        .map(|(id, p)| serde_json::json!({ "id": id, "progress": p }))
                        .collect();
                    warp::reply::json(&jobs).into_response()
                }
                Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, "stopping", &e.to_string()),
            }
        });
    let routes = start
        .or(get)
        .unify()
        .or(list)
        .unify()
        .or(status_route)
        .unify()
        .or(manifest)
        .unify()
        .or(quota)
        .unify()
        .recover(|rej: warp::Rejection| async move {
            let res = if rej.find::<Unauthorized>().is_some() {
                json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "admin token required",
                )
            } else if rej.is_not_found() {
                json_error(StatusCode::NOT_FOUND, "not_found", "no such route")
            } else if rej.find::<warp::reject::PayloadTooLarge>().is_some() {
                json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "body too large",
                )
            } else {
                json_error(StatusCode::BAD_REQUEST, "bad_request", &format!("{rej:?}"))
            };
            Ok::<_, Infallible>(res)
        })
        .unify();
    let dir = data_dir.to_owned();
    let task = reelnet_runtime::shutdown::spawn("admin", async move {
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { cancel.cancelled().await })
            .run()
            .await;
        let _ = std::fs::remove_file(info_path(&dir));
        Ok::<(), Infallible>(())
    });
    Ok((addr, task))
}

#[derive(Debug)]
struct Unauthorized;
impl warp::reject::Reject for Unauthorized {}
