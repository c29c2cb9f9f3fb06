//! The tracker's `/metrics` in the Prometheus text format: answered requests by method,
//! route template (from [`crate::routes::ROUTES`], so ids never become labels) and status; a
//! latency histogram over all routes; and gauges read from the store at scrape time.
//!
//! Counters are atomics (only ever added to) except the per-route map, a small lock held
//! for one increment.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::routes::ROUTES;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Request counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

/// Values read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub users: u64,
    /// Requests not yet ready, failed or rejected.
    pub open_requests: u64,
    /// Watch-party rooms kept.
    pub rooms: u64,
}

/// The route template `path` was served by (`("other", "other")` for anything else).
pub fn route_of(method: &str, path: &str) -> (&'static str, &'static str) {
    ROUTES
        .iter()
        .find(|(m, template)| *m == method && matches(template, path))
        .map_or(("other", "other"), |(m, t)| (*m, *t))
}

fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe(&self, method: &str, path: &str, status: u16, took: Duration) {
        let (method, route) = route_of(method, path);
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((method, route, status)).or_insert(0) += 1;
        }
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The text exposition.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP reelnet_tracker_requests_total Answered HTTP requests.\n");
        out.push_str("# TYPE reelnet_tracker_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((method, route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "reelnet_tracker_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP reelnet_tracker_request_seconds Time to answer a request.\n");
        out.push_str("# TYPE reelnet_tracker_request_seconds histogram\n");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "reelnet_tracker_request_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "reelnet_tracker_request_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "reelnet_tracker_request_seconds_sum {}",
            self.micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "reelnet_tracker_request_seconds_count {count}");
        for (name, help, v) in [
            ("users", "Accounts.", g.users),
            (
                "open_requests",
                "Movie requests not yet ready, failed or rejected.",
                g.open_requests,
            ),
            ("rooms", "Watch-party rooms kept.", g.rooms),
        ] {
            let _ = writeln!(out, "# HELP reelnet_tracker_{name} {help}");
            let _ = writeln!(out, "# TYPE reelnet_tracker_{name} gauge");
            let _ = writeln!(out, "reelnet_tracker_{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_their_route_template() {
        assert_eq!(
            route_of("PUT", "/api/v1/me/progress/tmdb-603"),
            ("PUT", "/api/v1/me/progress/{movie_id}")
        );
        assert_eq!(
            route_of("POST", "/api/v1/requests/17/done"),
            ("POST", "/api/v1/requests/{id}/done")
        );
        assert_eq!(route_of("GET", "/api/v1/me"), ("GET", "/api/v1/me"));
        assert_eq!(route_of("GET", "/api/v1/me/progress/"), ("other", "other"));
        assert_eq!(route_of("GET", "/../etc/passwd"), ("other", "other"));
        assert_eq!(route_of("BREW", "/api/v1/me"), ("other", "other"));
    }

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.observe("GET", "/healthz", 200, Duration::from_millis(2));
        m.observe("GET", "/healthz", 200, Duration::from_millis(30));
        m.observe("GET", "/nope", 404, Duration::from_micros(10));
        let text = m.render(Gauges {
            users: 3,
            open_requests: 1,
            rooms: 0,
        });
        assert!(text.contains(
            "reelnet_tracker_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "reelnet_tracker_requests_total{method=\"other\",route=\"other\",status=\"404\"} 1"
        ));
        assert!(text.contains("reelnet_tracker_request_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("reelnet_tracker_request_seconds_bucket{le=\"0.0025\"} 2"));
        assert!(text.contains("reelnet_tracker_request_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("reelnet_tracker_request_seconds_count 3"));
        assert!(text.contains("reelnet_tracker_users 3"));
        assert!(text.contains("reelnet_tracker_open_requests 1"));
    }
}
