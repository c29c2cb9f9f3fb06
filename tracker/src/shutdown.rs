//! Shutdown: one cancellation token for the whole process, cancelled by Ctrl-C or SIGTERM.
//! Every task the process spawns goes through [`spawn`], which names it, gives it a span and
//! logs how it ended (the rqbit `spawn_utils` shape); each task watches the token itself.

use std::future::Future;

use tracing::Instrument;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
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
