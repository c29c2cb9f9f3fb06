//! The node's local admin API: loopback only, behind a random bearer token written with the
//! URL to `<data_dir>/admin.json` (mode 0600). `reelnet-node ingest` uses it to hand a job to
//! a node already running on the same data directory and to follow its progress.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::ingest::job::IngestRequest;
use crate::ingest::manager::IngestManager;

const ADMIN_FILE: &str = "admin.json";

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
    use std::io::Write;
    let path = info_path(data_dir);
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(&serde_json::to_vec(info).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": code, "message": message })),
        status,
    )
    .into_response()
}

/// Binds the admin API on loopback and records where it is. Returns the listener's address.
pub async fn serve(
    data_dir: &Path,
    manager: IngestManager,
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
    let task = crate::shutdown::spawn("admin", async move {
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
