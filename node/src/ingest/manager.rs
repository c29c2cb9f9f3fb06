//! The ingest manager: one task owns the table of jobs; the rest of the node (the admin API,
//! the request claimer) holds a cloneable [`IngestManager`] handle that sends it commands.
//! Each job runs in its own task and reports through a `watch` channel.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::job::{self, IngestContext, IngestProgress, IngestRequest};

enum Command {
    Start(Box<IngestRequest>, oneshot::Sender<u64>),
    Get(u64, oneshot::Sender<Option<IngestProgress>>),
    List(oneshot::Sender<Vec<(u64, IngestProgress)>>),
    Cancel(u64, oneshot::Sender<CancelOutcome>),
}

/// What [`IngestManager::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was told to stop (it ends as failed, "cancelled").
    Cancelled,
    /// The job had already ended.
    Finished,
    NotFound,
}

/// Handle to the ingest manager.
#[derive(Clone)]
pub struct IngestManager {
    tx: mpsc::Sender<Command>,
}

#[derive(Debug, thiserror::Error)]
#[error("the ingest manager has stopped")]
pub struct ManagerStopped;

impl IngestManager {
    /// Starts the manager task; it and its jobs stop when `cancel` fires.
    pub fn start(
        ctx: Arc<IngestContext>,
        cancel: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let task = reelnet_runtime::shutdown::spawn("ingest-manager", run(ctx, rx, cancel));
        (Self { tx }, task)
    }

    /// Queues a job and returns its id.
    pub async fn start_job(&self, req: IngestRequest) -> Result<u64, ManagerStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Start(Box::new(req), tx))
            .await
            .map_err(|_| ManagerStopped)?;
        rx.await.map_err(|_| ManagerStopped)
    }

    pub async fn get(&self, id: u64) -> Result<Option<IngestProgress>, ManagerStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Get(id, tx))
            .await
            .map_err(|_| ManagerStopped)?;
        rx.await.map_err(|_| ManagerStopped)
    }

    /// Stops a running job.
    pub async fn cancel(&self, id: u64) -> Result<CancelOutcome, ManagerStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Cancel(id, tx))
            .await
            .map_err(|_| ManagerStopped)?;
        rx.await.map_err(|_| ManagerStopped)
    }

    pub async fn list(&self) -> Result<Vec<(u64, IngestProgress)>, ManagerStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::List(tx))
            .await
            .map_err(|_| ManagerStopped)?;
        rx.await.map_err(|_| ManagerStopped)
    }
}

async fn run(
    ctx: Arc<IngestContext>,
    mut rx: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) -> Result<(), ManagerStopped> {
    let mut jobs: BTreeMap<u64, (watch::Receiver<IngestProgress>, CancellationToken)> =
        BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 1u64;
    loop {
        let cmd = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => break },
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        match cmd {
            Command::Start(req, reply) => {
                let id = next;
                next += 1;
                let (ptx, prx) = watch::channel(IngestProgress {
                    source: req.source.clone(),
                    ..IngestProgress::default()
                });
                let (ctx, job_cancel) = (ctx.clone(), cancel.child_token());
                jobs.insert(id, (prx, job_cancel.clone()));
                let span = tracing::info_span!("ingest", job = id, source = %req.source);
                tasks.spawn(
                    async move {
                        match job::run(ctx, *req, ptx, job_cancel).await {
                            Ok(done) => tracing::info!(manifest = %done.id, "job done"),
                            Err(err) => tracing::error!(%err, "job failed"),
                        }
                    }
                    .instrument(span),
                );
                let _ = reply.send(id);
            }
            Command::Get(id, reply) => {
                let _ = reply.send(jobs.get(&id).map(|(rx, _)| rx.borrow().clone()));
            }
            Command::List(reply) => {
                let _ = reply.send(
                    jobs.iter()
                        .map(|(id, (rx, _))| (*id, rx.borrow().clone()))
                        .collect(),
                );
            }
            Command::Cancel(id, reply) => {
                let outcome = match jobs.get(&id) {
                    None => CancelOutcome::NotFound,
                    Some((rx, _)) if super::progress::finished(&rx.borrow()) => {
                        CancelOutcome::Finished
                    }
                    Some((_, token)) => {
                        tracing::info!(job = id, "job cancelled by the operator");
                        token.cancel();
                        CancelOutcome::Cancelled
                    }
                };
                let _ = reply.send(outcome);
            }
        }
    }
    // Jobs watch a child of `cancel`; wait for them to clean up after themselves.
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
