//! The request claimer: on a node with `[requests] enabled = true`, one task polls the
//! tracker for open movie requests (`POST /api/v1/requests/claim`, each request signed with
//! the node key and its membership certificate in `Reelnet-Node-Auth`; only `ingest`
//! members may claim), and for each claim runs one job task that
//! ingests the request's magnet or `.torrent` through the node's [`IngestManager`] (the
//! same path as `reelnet-node ingest`), renews the lease with progress reports while it
//! runs, and reports `done` (movie id and manifest) or `failed`.
//!
//! The claimer owns the count of running jobs (jobs tell it when they end over a channel),
//! so it never holds more than `capacity` claims, and it claims nothing while the segment
//! store has less than `min_headroom_bytes` of quota left beyond pinned data. If this
//! node dies its leases lapse and the tracker hands the requests to another node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reelnet_proto::requests::{
    ClaimRequest, DoneReport, FailedReport, ProgressReport, RequestState,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::RequestsConfig;
use crate::ingest::job::{IngestProgress, IngestRequest, JobState, Requester};
use crate::ingest::manager::IngestManager;
use crate::ingest::meta::MovieFields;
use crate::store::Store;

/// Why talking to the tracker failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("tracker unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("tracker answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the claim was lost (lease lapsed and another node took the request)")]
    LeaseLost,
    #[error(
        "this node is not a member of the network (no valid certificate); it cannot claim requests"
    )]
    NotMember,
    #[error("cannot encode the request body: {0}")]
    Encode(String),
}

/// A claimed request, as the tracker hands it out.
pub use reelnet_proto::requests::ClaimView as Claimed;

/// The tracker's node-facing request routes.
#[derive(Clone)]
pub struct TrackerRequests {
    trackers: crate::trackers::Trackers,
    membership: crate::membership::Membership,
    node_id: String,
    http: reqwest::Client,
}

impl TrackerRequests {
    pub fn new(
        trackers: crate::trackers::Trackers,
        membership: crate::membership::Membership,
    ) -> Self {
        Self {
            trackers,
            node_id: membership.node_id().to_string(),
            membership,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<reqwest::Response, ClaimError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClaimError::Encode(e.to_string()))?;
        if self.membership.own().is_none() {
            return Err(ClaimError::NotMember);
        }
        // Claims and reports are POSTs: to the next tracker replica only when the
        // connection could not be made. Signed afresh per attempt.
        let res = self
            .trackers
            .send(crate::trackers::Retry::ConnectOnly, |base| {
                let url = format!("{base}/api/v1/requests/{path}");
                let mut req = self
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bytes.clone());
                if let Some(auth) = self.membership.auth_header("POST", &url, &bytes) {
                    req = req.header(reelnet_proto::membership::NODE_AUTH_HEADER, auth);
                }
                req
            })
            .await?;
        match res.status().as_u16() {
            200..=299 => Ok(res),
            409 => Err(ClaimError::LeaseLost),
            status => Err(ClaimError::Status {
                status,
                body: res.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Claims the oldest open request, if any.
    pub async fn claim(&self) -> Result<Option<Claimed>, ClaimError> {
        let res = self
            .post(
                "claim",
                &ClaimRequest {
                    node_id: self.node_id.clone(),
                },
            )
            .await?;
        if res.status().as_u16() == 204 {
            return Ok(None);
        }
        Ok(Some(res.json().await?))
    }

    /// Reports progress (renews the lease).
    pub async fn progress(
        &self,
        c: &Claimed,
        state: RequestState,
        percent: f64,
    ) -> Result<(), ClaimError> {
        self.post(
            &format!("{}/progress", c.id),
            &ProgressReport {
                claim_token: c.claim_token.clone(),
                state,
                // The tracker reads an f32; the same value it would parse from the f64.
                percent: percent.clamp(0.0, 100.0) as f32,
            },
        )
        .await
        .map(drop)
    }

    pub async fn done(
        &self,
        c: &Claimed,
        movie_id: &str,
        manifest: Option<&str>,
    ) -> Result<(), ClaimError> {
        self.post(
            &format!("{}/done", c.id),
            &DoneReport {
                claim_token: c.claim_token.clone(),
                movie_id: movie_id.to_owned(),
                manifest: manifest.map(str::to_owned),
            },
        )
        .await
        .map(drop)
    }

    pub async fn failed(&self, c: &Claimed, reason: &str) -> Result<(), ClaimError> {
        self.post(
            &format!("{}/failed", c.id),
            &FailedReport {
                claim_token: c.claim_token.clone(),
                reason: reason.to_owned(),
            },
        )
        .await
        .map(drop)
    }
}

/// What the claimer needs from its node.
pub struct Claimer {
    pub config: RequestsConfig,
    pub tracker: TrackerRequests,
    pub ingest: IngestManager,
    pub store: Store,
    /// Where `.torrent` files of requests are written.
    pub work_dir: PathBuf,
}

/// The tracker's state and percent for an ingest's progress.
pub fn report_of(p: &IngestProgress) -> (RequestState, f64) {
    match p.state {
        JobState::Queued | JobState::Opening => {
            let pct = if p.total_bytes > 0 {
                p.downloaded_bytes as f64 * 100.0 / p.total_bytes as f64
            } else {
                0.0
            };
            (RequestState::Downloading, pct)
        }
        _ => {
            let pct = match p.duration_s {
                Some(d) if d > 0.0 => p.position_s * 100.0 / d,
                _ if p.total_bytes > 0 => p.downloaded_bytes as f64 * 100.0 / p.total_bytes as f64,
                _ => 0.0,
            };
            (RequestState::Transcoding, pct)
        }
    }
}

impl Claimer {
    /// Polls for work until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), ClaimError> {
        let (ended_tx, mut ended_rx) = mpsc::channel::<()>(16);
        let mut running = 0usize;
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.poll_secs.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(()) = ended_rx.recv() => { running = running.saturating_sub(1); continue; }
                _ = tick.tick() => {}
            }
            if running >= self.config.capacity {
                continue;
            }
            let usage = self.store.usage();
            let headroom = usage.quota_bytes.saturating_sub(usage.pinned_bytes);
            if headroom < self.config.min_headroom_bytes {
                tracing::debug!(
                    headroom,
                    "not claiming requests: too little disk quota left"
                );
                continue;
            }
            if !self
                .tracker
                .membership
                .may(reelnet_proto::membership::RoleName::Ingest)
            {
                tracing::debug!("not claiming requests: this node is not an ingest member");
                continue;
            }
            let claimed = match self.tracker.claim().await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(%err, "cannot claim requests");
                    continue;
                }
            };
            tracing::info!(id = %claimed.id, tmdb = claimed.tmdb_id, "claimed a movie request");
            running += 1;
            let job = Job {
                claimed,
                tracker: self.tracker.clone(),
                ingest: self.ingest.clone(),
                peers: self.config.torrent_peers.clone(),
                work_dir: self.work_dir.clone(),
            };
            let ended = ended_tx.clone();
            let cancel = cancel.clone();
            reelnet_runtime::shutdown::spawn("request-job", async move {
                let res = job.run(cancel).await;
                let _ = ended.send(()).await;
                res
            });
        }
    }
}

struct Job {
    claimed: Claimed,
    tracker: TrackerRequests,
    ingest: IngestManager,
    peers: Vec<SocketAddr>,
    work_dir: PathBuf,
}

impl Job {
    /// The request's source: its magnet link, or its `.torrent` written to the work
    /// directory. Anything else is refused: a request never names a local file.
    async fn source(&self) -> Result<String, String> {
        if let Some(m) = &self.claimed.magnet {
            if !m.starts_with("magnet:?") {
                return Err("the request's magnet is not a magnet:? link".to_owned());
            }
            return Ok(m.clone());
        }
        let Some(b64) = &self.claimed.torrent_base64 else {
            return Err("the request has no magnet link or .torrent".to_owned());
        };
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "the request's .torrent is not base64".to_owned())?;
        let path = self
            .work_dir
            .join(format!("request-{}.torrent", self.claimed.id));
        tokio::fs::create_dir_all(&self.work_dir)
            .await
            .map_err(|e| format!("cannot write the .torrent: {e}"))?;
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|e| format!("cannot write the .torrent: {e}"))?;
        Ok(path.display().to_string())
    }

    async fn run(self, cancel: CancellationToken) -> Result<(), ClaimError> {
        let c = &self.claimed;
        let source = match self.source().await {
            Ok(s) => s,
            Err(reason) => return self.tracker.failed(c, &reason).await,
        };
        let req = IngestRequest {
            source,
            movie: MovieFields {
                title: c.title.clone(),
                year: c.year,
                tmdb_id: Some(c.tmdb_id),
                ..MovieFields::default()
            },
            peers: self.peers.clone(),
            meta_file: None,
            // A user's word: its trackers and peers are checked (see `netguard`).
            requester: Requester::User,
        };
        let Ok(job) = self.ingest.start_job(req).await else {
            return Ok(()); // shutting down: the lease lapses and another node takes over
        };
        // Report well inside the lease.
        let every = Duration::from_millis((c.lease_secs * 1000 / 3).clamp(200, 10_000));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
            let Ok(Some(p)) = self.ingest.get(job).await else {
                return Ok(());
            };
            match p.state {
                JobState::Done => {
                    let movie = p
                        .movie_id
                        .clone()
                        .unwrap_or_else(|| format!("tmdb-{}", c.tmdb_id));
                    tracing::info!(id = %c.id, %movie, "request ingested");
                    return self.tracker.done(c, &movie, p.manifest_id.as_deref()).await;
                }
                JobState::Failed => {
                    let reason = p
                        .error
                        .clone()
                        .unwrap_or_else(|| "ingest failed".to_owned());
                    return self.tracker.failed(c, &reason).await;
                }
                _ => {
                    let (state, pct) = report_of(&p);
                    match self.tracker.progress(c, state, pct).await {
                        Ok(()) => {}
                        Err(ClaimError::LeaseLost) => {
                            tracing::warn!(id = %c.id, "lost the claim; another node has the request");
                            return Ok(());
                        }
                        Err(err) => tracing::warn!(%err, "cannot report request progress"),
                    }
                }
            }
        }
    }
}
