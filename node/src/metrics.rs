//! Process metrics in the Prometheus text format, served at `/metrics`.
//! Counters are atomics owned by one `Metrics` value shared through an `Arc`; they are only
//! ever incremented, so no lock is needed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of the gateway.
#[derive(Default)]
pub struct Metrics {
    started_at: AtomicU64,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
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

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP reelnet_node_start_time_seconds Unix time the node started."
        );
        let _ = writeln!(out, "# TYPE reelnet_node_start_time_seconds gauge");
        let _ = writeln!(
            out,
            "reelnet_node_start_time_seconds {}",
            self.started_at.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP reelnet_http_requests_total Gateway requests by route and status."
        );
        let _ = writeln!(out, "# TYPE reelnet_http_requests_total counter");
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
