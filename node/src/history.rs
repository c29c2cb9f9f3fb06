//! The last hour of this node's own metrics, for the console's charts: one task samples the
//! gateway's cumulative counters ([`Metrics::snapshot`]) every `interval` (10 s by default)
//! and keeps the differences in a ring buffer of `capacity` samples (360: an hour). No
//! external monitoring is needed to see what the node did lately.
//!
//! The task owns the buffer; readers hold a cloneable [`History`] handle that asks for a
//! copy. Latency percentiles come from the fetch-latency histogram's bucket deltas, each
//! reported as its bucket's upper bound (the last, unbounded bucket as twice the largest
//! bound), the way Prometheus' `histogram_quantile` would estimate them at bucket edges.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics::{fetch_bucket_bounds, Metrics, Snapshot};

/// One interval of the node's activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// End of the interval, unix seconds.
    pub at: u64,
    /// Length of the interval, seconds.
    pub secs: f64,
    /// Gateway requests answered in the interval.
    pub requests: u64,
    /// Segment bytes served from this node's disk (held or cached).
    pub bytes_local: u64,
    /// Segment bytes served after fetching them from peers.
    pub bytes_peer: u64,
    /// Segments served from disk and from peers.
    pub segments_local: u64,
    pub segments_peer: u64,
    /// Successful peer fetches in the interval.
    pub fetches: u64,
    /// Peer fetch latency percentiles, milliseconds (absent without fetches).
    pub fetch_p50_ms: Option<f64>,
    pub fetch_p95_ms: Option<f64>,
    pub fetch_p99_ms: Option<f64>,
}

/// `GET /api/v1/console/history`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryView {
    pub interval_secs: u64,
    pub capacity: usize,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

/// The history's settings.
#[derive(Debug, Clone, Copy)]
pub struct HistoryConfig {
    pub interval: Duration,
    pub capacity: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            capacity: 360,
        }
    }
}

/// Handle to the history task.
#[derive(Clone)]
pub struct History {
    tx: mpsc::Sender<oneshot::Sender<HistoryView>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the metrics history has stopped")]
pub struct HistoryStopped;

impl History {
    /// Starts the sampling task; it stops when `cancel` fires.
    pub fn start(
        metrics: Arc<Metrics>,
        config: HistoryConfig,
        cancel: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16);
        let task =
            reelnet_runtime::shutdown::spawn("metrics-history", run(metrics, config, rx, cancel));
        (Self { tx }, task)
    }

    /// A copy of the samples, oldest first.
    pub async fn view(&self) -> Result<HistoryView, HistoryStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).await.map_err(|_| HistoryStopped)?;
        rx.await.map_err(|_| HistoryStopped)
    }
}

async fn run(
    metrics: Arc<Metrics>,
    config: HistoryConfig,
    mut rx: mpsc::Receiver<oneshot::Sender<HistoryView>>,
    cancel: CancellationToken,
) -> Result<(), HistoryStopped> {
    let capacity = config.capacity.max(1);
    let mut samples: VecDeque<Sample> = VecDeque::with_capacity(capacity);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last = metrics.snapshot();
    let mut last_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {
                let now = metrics.snapshot();
                let at = tokio::time::Instant::now();
                if samples.len() == capacity {
                    samples.pop_front();
                }
                samples.push_back(sample(&last, &now, at - last_at, crate::unix_now()));
                (last, last_at) = (now, at);
            }
            Some(reply) = rx.recv() => {
                let _ = reply.send(HistoryView {
                    interval_secs: config.interval.as_secs(),
                    capacity,
                    samples: samples.iter().copied().collect(),
                });
            }
        }
    }
    Ok(())
}

/// The activity between two snapshots.
pub fn sample(before: &Snapshot, after: &Snapshot, took: Duration, at: u64) -> Sample {
    let counts: Vec<u64> = before
        .fetch_counts
        .iter()
        .zip(after.fetch_counts.iter())
        .map(|(b, a)| a.saturating_sub(*b))
        .collect();
    let fetches: u64 = counts.iter().sum();
    Sample {
        at,
        secs: took.as_secs_f64(),
        requests: after.requests.saturating_sub(before.requests),
        bytes_local: after.bytes_local.saturating_sub(before.bytes_local),
        bytes_peer: after.bytes_peer.saturating_sub(before.bytes_peer),
        segments_local: after.segments_local.saturating_sub(before.segments_local),
        segments_peer: after.segments_peer.saturating_sub(before.segments_peer),
        fetches,
        fetch_p50_ms: percentile(&counts, 0.50),
        fetch_p95_ms: percentile(&counts, 0.95),
        fetch_p99_ms: percentile(&counts, 0.99),
    }
}

/// The upper bound (ms) of the bucket holding quantile `q` of `counts`.
fn percentile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let bounds = fetch_bucket_bounds();
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            let secs = bounds
                .get(i)
                .copied()
                .unwrap_or_else(|| bounds.last().copied().unwrap_or(10.0) * 2.0);
            return Some(secs * 1000.0);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_bucket_deltas() {
        let mut before = Snapshot::default();
        before.fetch_counts[0] = 5; // old fetches do not count
        let mut after = before;
        after.fetch_counts[0] += 90; // <= 2 ms
        after.fetch_counts[5] += 9; // <= 100 ms
        after.fetch_counts[12] += 1; // beyond 10 s
        after.requests = 7;
        after.bytes_local = 1000;
        let s = sample(&before, &after, Duration::from_secs(10), 42);
        assert_eq!(s.fetches, 100);
        assert_eq!(s.requests, 7);
        assert_eq!(s.bytes_local, 1000);
        assert_eq!(s.fetch_p50_ms, Some(2.0));
        assert_eq!(s.fetch_p95_ms, Some(100.0));
        assert_eq!(s.fetch_p99_ms, Some(100.0));
        after.fetch_counts[12] += 10;
        let s = sample(&before, &after, Duration::from_secs(10), 42);
        assert_eq!(s.fetch_p99_ms, Some(20_000.0));
        let s = sample(&before, &before, Duration::from_secs(10), 42);
        assert_eq!(s.fetch_p50_ms, None);
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_the_last_capacity_samples() {
        let metrics = Arc::new(Metrics::new(0));
        let cancel = CancellationToken::new();
        let (h, task) = History::start(
            metrics.clone(),
            HistoryConfig {
                interval: Duration::from_secs(10),
                capacity: 3,
            },
            cancel.clone(),
        );
        // Requests land between ticks (at 5 s, 15 s, ...; ticks at 10 s, 20 s, ...).
        tokio::time::sleep(Duration::from_secs(5)).await;
        for i in 0..5u64 {
            for _ in 0..=i {
                metrics.request("healthz", 200);
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let v = h.view().await.unwrap();
        assert_eq!(v.capacity, 3);
        let reqs: Vec<u64> = v.samples.iter().map(|s| s.requests).collect();
        assert_eq!(reqs, vec![3, 4, 5]);
        cancel.cancel();
        task.await.unwrap();
    }
}
