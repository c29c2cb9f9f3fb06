//! Process metrics in the Prometheus text format, served at `/metrics`.
//! Counters are atomics owned by one `Metrics` value shared through an `Arc`; they are only
//! ever incremented (or, for gauges, set), so no lock is needed except for the per-route
//! request map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the peer-fetch latency histogram's buckets.
const FETCH_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Counters of the gateway.
#[derive(Default)]
pub struct Metrics {
    started_at: AtomicU64,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    bytes_local: AtomicU64,
    bytes_peer: AtomicU64,
    segments_local: AtomicU64,
    segments_peer: AtomicU64,
    fetches_coalesced: AtomicU64,
    fetch_failures: AtomicU64,
    fetch_buckets: [AtomicU64; FETCH_BUCKETS.len()],
    fetch_count: AtomicU64,
    fetch_micros: AtomicU64,
    peers: AtomicU64,
}

/// Values gathered at scrape time from other subsystems.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Nodes with a live catalog record, this one excluded.
    pub peers: u64,
}

impl Metrics {
    pub fn new(now_unix: u64) -> Self {
        let m = Self::default();
        m.started_at.store(now_unix, Ordering::Relaxed);
        m
    }

    /// Counts one answered request by route name and status.
    pub fn request(&self, route: &'static str, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route, status)).or_insert(0) += 1;
        }
    }

    /// A segment served from this node's disk.
    pub fn served_local(&self, bytes: u64) {
        self.segments_local.fetch_add(1, Ordering::Relaxed);
        self.bytes_local.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A segment served after fetching it from a peer.
    pub fn served_peer(&self, bytes: u64) {
        self.segments_peer.fetch_add(1, Ordering::Relaxed);
        self.bytes_peer.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A viewer's miss joined a fetch already in flight.
    pub fn fetch_coalesced(&self) {
        self.fetches_coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// A peer fetch ended after `took`.
    pub fn fetch_finished(&self, took: Duration, ok: bool) {
        if !ok {
            self.fetch_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let secs = took.as_secs_f64();
        for (bound, bucket) in FETCH_BUCKETS.iter().zip(&self.fetch_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fetch_count.fetch_add(1, Ordering::Relaxed);
        self.fetch_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self, gauges: Gauges) -> String {
        self.peers.store(gauges.peers, Ordering::Relaxed);
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "reelnet_node_start_time_seconds",
            "gauge",
            "Unix time the node started.",
            get(&self.started_at).to_string(),
        );
        metric(
            "reelnet_peers",
            "gauge",
            "Other nodes with a live catalog record.",
            get(&self.peers).to_string(),
        );
        metric(
            "reelnet_fetches_coalesced_total",
            "counter",
            "Segment misses that joined a peer fetch already in flight.",
            get(&self.fetches_coalesced).to_string(),
        );
        metric(
            "reelnet_fetch_failures_total",
            "counter",
            "Peer fetches where every provider failed.",
            get(&self.fetch_failures).to_string(),
        );
        let local = get(&self.segments_local);
        let peer = get(&self.segments_peer);
        metric(
            "reelnet_cache_hit_ratio",
            "gauge",
            "Share of segments served from local disk (held or cached) rather than fetched.",
            if local + peer == 0 {
                "0".to_owned()
            } else {
                format!("{:.4}", local as f64 / (local + peer) as f64)
            },
        );
        let _ = writeln!(
            out,
            "# HELP reelnet_segment_bytes_served_total Segment bytes served, by source.\n# TYPE reelnet_segment_bytes_served_total counter"
        );
        let _ = writeln!(
            out,
            "reelnet_segment_bytes_served_total{{source=\"local\"}} {}\nreelnet_segment_bytes_served_total{{source=\"peer\"}} {}",
            get(&self.bytes_local),
            get(&self.bytes_peer)
        );
        let _ = writeln!(
            out,
            "# HELP reelnet_segments_served_total Segments served, by source.\n# TYPE reelnet_segments_served_total counter\nreelnet_segments_served_total{{source=\"local\"}} {local}\nreelnet_segments_served_total{{source=\"peer\"}} {peer}"
        );
        let _ = writeln!(
            out,
            "# HELP reelnet_peer_fetch_seconds Time to fetch and verify a segment from peers.\n# TYPE reelnet_peer_fetch_seconds histogram"
        );
        for (bound, bucket) in FETCH_BUCKETS.iter().zip(&self.fetch_buckets) {
            let _ = writeln!(
                out,
                "reelnet_peer_fetch_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.fetch_count);
        let _ = writeln!(
            out,
            "reelnet_peer_fetch_seconds_bucket{{le=\"+Inf\"}} {count}\nreelnet_peer_fetch_seconds_sum {:.6}\nreelnet_peer_fetch_seconds_count {count}",
            get(&self.fetch_micros) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP reelnet_http_requests_total Gateway requests by route and status.\n# TYPE reelnet_http_requests_total counter"
        );
        if let Ok(map) = self.requests.lock() {
            for ((route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "reelnet_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histogram_and_sources() {
        let m = Metrics::new(7);
        m.served_local(100);
        m.served_peer(50);
        m.fetch_finished(Duration::from_millis(15), true);
        m.fetch_finished(Duration::from_millis(15), false);
        m.request("hls_segment", 200);
        let text = m.render(Gauges { peers: 2 });
        assert!(text.contains("reelnet_peers 2\n"));
        assert!(text.contains("reelnet_segment_bytes_served_total{source=\"local\"} 100\n"));
        assert!(text.contains("reelnet_peer_fetch_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("reelnet_peer_fetch_seconds_bucket{le=\"0.02\"} 1\n"));
        assert!(text.contains("reelnet_peer_fetch_seconds_count 1\n"));
        assert!(text.contains("reelnet_fetch_failures_total 1\n"));
        assert!(text.contains("reelnet_cache_hit_ratio 0.5000\n"));
        assert!(
            text.contains("reelnet_http_requests_total{route=\"hls_segment\",status=\"200\"} 1\n")
        );
    }
}
