//! The scrub: a background worker that finds rot in data nobody reads.
//!
//! Reads already catch a flipped bit (`Store::read_segment` hashes what it returns, manifest
//! reads verify the record), but a segment nobody watches is never read. The scrub walks the
//! whole store — every manifest record, then every segment — through the same checks
//! (`Store::check_segment`, `Store::manifest_ids` + `Store::manifest`), so a bad copy is
//! dropped, counted in `reelnet_store_corrupt_total` and announced to placement, which
//! fetches a good copy from a peer.
//!
//! It is rate-limited (`storage.scrub_bytes_per_sec`, 0 turns it off): after each segment
//! it waits as long as that segment's bytes take at the rate, so the disk sees at most that
//! much scrub traffic on average. A pass starts again when the previous one ends (at least
//! [`MIN_PASS_INTERVAL`] apart, so an empty store does not spin). One task; it stops at the
//! next segment boundary when its cancellation token fires.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// Shortest time between the starts of two passes.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the scrub over `store` at `bytes_per_sec` (0: no task, `None`).
pub fn start(
    store: Store,
    bytes_per_sec: u64,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    if bytes_per_sec == 0 {
        return None;
    }
    Some(reelnet_runtime::shutdown::spawn(
        "scrub",
        run(store, bytes_per_sec, cancel),
    ))
}

async fn run(store: Store, rate: u64, cancel: CancellationToken) -> Result<(), StoreError> {
    tracing::info!(bytes_per_sec = rate, "store scrub started");
    loop {
        let started = tokio::time::Instant::now();
        match pass(&store, rate, &cancel).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => tracing::warn!(%err, "scrub pass failed; starting over"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(started + MIN_PASS_INTERVAL) => {}
        }
    }
    tracing::info!("store scrub stopped");
    Ok(())
}

/// One pass over the store. `Ok(false)`: cancelled.
async fn pass(store: &Store, rate: u64, cancel: &CancellationToken) -> Result<bool, StoreError> {
    // Manifests: small records, checked as they are read.
    let s = store.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<usize, StoreError> {
        let mut bad = 0;
        for id in s.manifest_ids()? {
            if s.manifest(&id)?.is_none() {
                bad += 1;
            }
        }
        Ok(bad)
    })
    .await
    .map_err(join_err)??;
    if found > 0 {
        tracing::warn!(found, "scrub: corrupt manifest records dropped");
    }
    let mut segments = store.segment_list();
    // A stable order, so a pass cut short by a restart still reaches every segment in time.
    segments.sort_unstable_by_key(|(h, _)| h.0);
    for (hash, size) in segments {
        if cancel.is_cancelled() {
            return Ok(false);
        }
        let s = store.clone();
        let checked = tokio::task::spawn_blocking(move || s.check_segment(&hash))
            .await
            .map_err(join_err)?;
        match checked {
            Ok(Some(false)) => tracing::warn!(%hash, "scrub: corrupt segment dropped"),
            Ok(_) => {}
            // One unreadable file does not stop the pass.
            Err(err) => tracing::warn!(%hash, %err, "scrub: cannot read segment"),
        }
        store.record_scrub(size, false);
        let wait = Duration::from_secs_f64(size as f64 / rate as f64);
        tokio::select! {
            _ = cancel.cancelled() => return Ok(false),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    store.record_scrub(0, true);
    Ok(true)
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        path: std::path::PathBuf::from("<scrub task>"),
        source: std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use reelnet_proto::SegmentHash;

    /// A flipped bit in a segment nobody reads is found by the scrub, dropped and counted;
    /// the good segment stays; the task stops when cancelled.
    #[tokio::test]
    async fn scrub_finds_a_flipped_bit_nobody_reads_and_stops_on_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (good, _) = store.put_segment(&[1u8; 4096], None).unwrap();
        let (bad, _) = store.put_segment(&[2u8; 4096], None).unwrap();
        let path = store.segment_path(&bad);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let cancel = CancellationToken::new();
        let task = start(store.clone(), 64 << 20, cancel.clone()).unwrap();
        reelnet_testkit::wait_for(
            "the scrub to drop the bad copy",
            Duration::from_secs(10),
            || {
                let store = store.clone();
                async move { (store.corruption().segments == 1).then_some(()) }
            },
        )
        .await;
        assert!(!store.has_segment(&bad) && !path.exists());
        assert!(store.has_segment(&good));
        assert_eq!(
            SegmentHash::of(&store.read_segment(&good).unwrap().unwrap()),
            good
        );
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the scrub stops on cancel")
            .unwrap();
        assert!(start(store, 0, CancellationToken::new()).is_none());
    }
}
