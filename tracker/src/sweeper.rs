//! The sweeper: every [`SWEEP_EVERY`] it removes what has expired — reset, verification,
//! bootstrap and refresh tokens, browser sessions, and the records replicas share for a
//! short while (OAuth codes, device authorizations, replay keys of node requests, passkey
//! ceremonies). It sits above the modules whose records it sweeps, so none of them imports
//! another for it.

use std::time::Duration;

use crate::api::Api;
use crate::clock::now_secs;

/// How often expired email and refresh tokens are removed.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Removes expired reset, verification, bootstrap and refresh tokens every
/// [`SWEEP_EVERY`] until `cancel`.
pub async fn run(
    api: Api,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(), crate::store::StoreError> {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        match api.store().purge_expired_tokens(now_secs(), 0).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired tokens removed"),
            Err(e) => tracing::warn!(error = %e, "removing expired tokens failed"),
        }
        match api.store().purge_expired_browser_sessions(now_secs()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired browser sessions removed"),
            Err(e) => tracing::warn!(error = %e, "removing expired browser sessions failed"),
        }
        // The records replicas share for a short while: OAuth codes, device
        // authorizations, replay keys of node requests.
        let store = api.store();
        let now = now_secs();
        let swept = [
            ("codes", crate::oauth::codes::purge(store, now).await),
            (
                "device authorizations",
                crate::oauth::device::purge(store, now).await,
            ),
            ("replay keys", store.purge_replays(now).await),
            (
                "passkey ceremonies",
                crate::pages::passkeys::purge(store, now).await,
            ),
        ];
        for (what, result) in swept {
            match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, what, "expired records removed"),
                Err(e) => tracing::warn!(error = %e, what, "removing expired records failed"),
            }
        }
    }
}
