//! Serving a warp filter on a listener that is already bound (so port 0 reports the real
//! port before anything is advertised), until a token is cancelled; requests in flight
//! then finish before the future returns.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;

use crate::shutdown::{Shutdown, Stage};

/// Serves `filter` on `listener` until `stop` is cancelled and the requests in flight
/// are answered. Spawn it through [`Shutdown::spawn`], or use [`spawn_http`].
pub async fn serve_until<F>(listener: TcpListener, filter: F, stop: CancellationToken)
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    warp::serve(filter)
        .incoming(listener)
        .graceful(async move { stop.cancelled().await })
        .run()
        .await;
}

/// Spawns a server for `filter` in the [`Stage::Http`] stage of `shutdown`: it stops
/// accepting when shutdown is triggered and is waited for before workers are stopped.
pub fn spawn_http<F>(
    shutdown: &Shutdown,
    name: &'static str,
    listener: TcpListener,
    filter: F,
) -> tokio::task::JoinHandle<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let stop = shutdown.token(Stage::Http);
    shutdown.spawn(Stage::Http, name, async move {
        serve_until(listener, filter, stop).await;
        Ok::<(), std::convert::Infallible>(())
    })
}
