//! Shutdown: Ctrl-C or SIGTERM, then every part of the process stops in one fixed order.
//!
//! A [`Shutdown`] is one cancellation tree for the whole process. Every task is spawned
//! through [`Shutdown::spawn`], which names it, gives it a span, logs how it ended (the rqbit
//! `spawn_utils` shape) and tracks it under a [`Stage`]. [`Shutdown::drain`] then stops the
//! stages one after the other, waiting for each stage's tasks before cancelling the next:
//!
//! 1. [`Stage::Http`]: servers stop accepting and finish the requests in flight;
//! 2. [`Stage::Workers`]: ingest jobs, placement, request claims, fetchers finish a unit;
//! 3. [`Stage::Actors`]: state owners (catalog, caches, rooms, swarm) answer their last
//!    messages — workers could still be asking them until now;
//! 4. [`Stage::Store`]: the store's writer does its last group commit.
//!
//! So no request is cut off by a worker that vanished under it, and nothing acknowledged
//! is lost because the store stopped before the last write reached it. Nothing here sleeps
//! to wait for a task: a stage is over when its tracker says every task has returned.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so call it before starting anything: a signal that arrives
/// during start-up then still shuts down cleanly instead of killing the process.
#[cfg(unix)]
pub fn signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        match (int, term) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => tracing::info!("Ctrl-C: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            },
            (Err(err), _) | (_, Err(err)) => {
                tracing::error!(%err, "cannot listen for signals; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn signal() -> impl Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Spawns a named task with its own span; its error, if any, is logged. For a task whose
/// owner keeps the handle and awaits it: an actor's `start` returns it, and the process
/// hands it to [`Shutdown::adopt`] under the actor's stage. Anything else goes through
/// [`Shutdown::spawn`].
pub fn spawn<F, E>(name: &'static str, fut: F) -> JoinHandle<()>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(named(name, fut))
}

/// `fut` in a span named after the task, its error logged.
fn named<F, E>(name: &'static str, fut: F) -> impl Future<Output = ()> + Send + 'static
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let span = tracing::info_span!("task", name);
    async move {
        match fut.await {
            Ok(()) => tracing::debug!("finished"),
            Err(err) => tracing::error!(%err, "failed"),
        }
    }
    .instrument(span)
}

/// The drain order: a stage is cancelled only after every task of the stages before it
/// has returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Listeners and the requests they are serving.
    Http,
    /// Jobs that do units of work and call actors (ingest, placement, claims, fetches).
    Workers,
    /// Single owners of state behind handles.
    Actors,
    /// The durable store's writer: last, so every acknowledged write is flushed.
    Store,
}

impl Stage {
    /// Every stage, in drain order.
    pub const ALL: [Stage; 4] = [Stage::Http, Stage::Workers, Stage::Actors, Stage::Store];

    fn index(self) -> usize {
        self as usize
    }
}

/// How long [`Shutdown::drain`] waits for one stage before it logs what is still running
/// and goes on with the next (a stuck task must not keep the process alive forever).
pub const STAGE_DEADLINE: Duration = Duration::from_secs(20);

/// The process's cancellation tree and task registry. Cheap to clone; every clone is the
/// same tree.
#[derive(Clone, Debug)]
pub struct Shutdown {
    requested: CancellationToken,
    tokens: [CancellationToken; 4],
    tasks: [TaskTracker; 4],
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self {
            requested: CancellationToken::new(),
            tokens: std::array::from_fn(|_| CancellationToken::new()),
            tasks: std::array::from_fn(|_| TaskTracker::new()),
        }
    }

    /// Cancelled when `stage` begins to drain. A task of that stage watches it (or a child
    /// of it) and returns once its in-flight work is done.
    pub fn token(&self, stage: Stage) -> CancellationToken {
        self.tokens[stage.index()].clone()
    }

    /// Spawns a named, tracked task with its own span; its error, if any, is logged. The
    /// task watches [`Shutdown::token`] of its stage itself, so it can finish in-flight
    /// work first.
    pub fn spawn<F, E>(&self, stage: Stage, name: &'static str, fut: F) -> JoinHandle<()>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.tasks[stage.index()].spawn(named(name, fut))
    }

    /// Tracks a task that was spawned elsewhere (an actor's `start` returns its handle)
    /// under `stage`, so that the stage's drain waits for it. The task watches the stage's
    /// token itself.
    pub fn adopt(&self, stage: Stage, task: JoinHandle<()>) {
        self.tasks[stage.index()].spawn(async move {
            if let Err(err) = task.await {
                if err.is_panic() {
                    tracing::error!(%err, "task panicked");
                }
            }
        });
    }

    /// Asks for shutdown: servers stop accepting at once. Returns without waiting;
    /// [`Shutdown::drain`] does the rest in order.
    pub fn trigger(&self) {
        self.requested.cancel();
        self.tokens[Stage::Http.index()].cancel();
    }

    /// Whether shutdown has been asked for.
    pub fn is_triggered(&self) -> bool {
        self.requested.is_cancelled()
    }

    /// Stops every stage in order and waits for its tasks (see the module doc). Triggers
    /// shutdown if nobody has yet. Safe to call more than once.
    pub async fn drain(&self) {
        self.trigger();
        for stage in Stage::ALL {
            self.drain_stage(stage).await;
        }
    }

    async fn drain_stage(&self, stage: Stage) {
        let (token, tasks) = (&self.tokens[stage.index()], &self.tasks[stage.index()]);
        token.cancel();
        tasks.close();
        if tokio::time::timeout(STAGE_DEADLINE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?stage,
                running = tasks.len(),
                "tasks still running after the stage deadline; going on with the next stage"
            );
        } else {
            tracing::debug!(?stage, "stage drained");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Each task records when its stage's token fired and when it returned; the order of
    /// the log is the drain order.
    #[tokio::test]
    async fn stages_drain_in_order_and_wait_for_their_tasks() {
        let shutdown = Shutdown::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        for stage in [Stage::Store, Stage::Actors, Stage::Workers, Stage::Http] {
            let (token, log) = (shutdown.token(stage), log.clone());
            shutdown.spawn(stage, "t", async move {
                token.cancelled().await;
                log.lock().unwrap().push(format!("{stage:?} cancelled"));
                // In-flight work after the token: the next stage waits for it.
                tokio::task::yield_now().await;
                log.lock().unwrap().push(format!("{stage:?} done"));
                Ok::<(), std::convert::Infallible>(())
            });
        }
        shutdown.drain().await;
        let log = log.lock().unwrap().clone();
        let want: Vec<String> = Stage::ALL
            .iter()
            .flat_map(|s| [format!("{s:?} cancelled"), format!("{s:?} done")])
            .collect();
        assert_eq!(log, want);
    }

    #[tokio::test]
    async fn trigger_stops_http_only() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        assert!(shutdown.is_triggered());
        assert!(shutdown.token(Stage::Http).is_cancelled());
        assert!(!shutdown.token(Stage::Workers).is_cancelled());
        assert!(!shutdown.token(Stage::Store).is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_task_does_not_block_shutdown_forever() {
        let shutdown = Shutdown::new();
        shutdown.spawn(Stage::Workers, "stuck", async {
            std::future::pending::<()>().await;
            Ok::<(), std::convert::Infallible>(())
        });
        let store = shutdown.token(Stage::Store);
        shutdown.drain().await; // paused time: the deadline passes at once
        assert!(store.is_cancelled());
    }
}
