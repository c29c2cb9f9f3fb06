//! Shutdown: one cancellation token for the whole process, cancelled by Ctrl-C or SIGTERM.
//! Every task the process spawns goes through [`spawn`], which names it, gives it a span and
//! logs how it ended (the rqbit `spawn_utils` shape); each task watches the token itself.

use std::future::Future;

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

/// Spawns a named task with its own span; its error, if any, is logged. The task itself
/// watches the shutdown token it was given, so it can finish in-flight work first.
pub fn spawn<F, E>(name: &'static str, fut: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let span = tracing::info_span!("task", name);
    tokio::spawn(
        async move {
            match fut.await {
                Ok(()) => tracing::debug!("finished"),
                Err(err) => tracing::error!(%err, "failed"),
            }
        }
        .instrument(span),
    )
}
