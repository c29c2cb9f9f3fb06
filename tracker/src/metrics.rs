//! The tracker's `/metrics` in the Prometheus text format: answered requests by method,
//! route template (from [`crate::routes::ROUTES`], so ids never become labels) and status; a
//! latency histogram over all routes; and gauges read from the store at scrape time.
//!
//! Kept with prometheus-client through `reelnet_runtime::metrics` and rendered in the
//! OpenMetrics text format; every metric handle is an atomic behind an `Arc`.

use std::time::Duration;

use reelnet_runtime::metrics::{
    histogram, render, Counter, EncodeLabelSet, Family, Gauge, Histogram, Registry,
};

use crate::routes::{PAGE_ROUTES, ROUTES};

/// Upper bounds (seconds) of the request latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

/// The label of the ingest announcement counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Ingest announcements by outcome (kept by the membership authority, which counts them).
pub type Announcements = Family<OutcomeLabels, Counter>;

/// The label of the sign-in refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Refused sign-in steps by reason (`reelnet_tracker_oauth_refused_total`; counted by
/// [`crate::api::Api::oauth_refused`]).
pub type Refusals = Family<ReasonLabels, Counter>;

/// Request counters and the scrape-time gauges.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Histogram,
    users: Gauge,
    open_requests: Gauge,
    rooms: Gauge,
    bound_movies: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Announcements::default(), Refusals::default())
    }
}

impl Metrics {
    /// Adds the HTTPS certificate's metrics (`reelnet_tls_cert_expiry_seconds`,
    /// `reelnet_acme_orders_total`) to what `/metrics` renders.
    pub fn register_tls(&mut self, tls: &reelnet_runtime::tls::TlsMetrics) {
        tls.register(&mut self.registry);
    }

    /// The metrics, with `announcements` and `refusals` (counted elsewhere) registered.
    pub fn new(announcements: Announcements, refusals: Refusals) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "reelnet_tracker_requests",
            "Answered HTTP requests.",
            requests.clone(),
        );
        let seconds = histogram(&BUCKETS);
        registry.register(
            "reelnet_tracker_request_seconds",
            "Time to answer a request.",
            seconds.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let users = gauge(&mut registry, "reelnet_tracker_users", "Accounts.");
        let open_requests = gauge(
            &mut registry,
            "reelnet_tracker_open_requests",
            "Movie requests not yet ready, failed or rejected.",
        );
        let rooms = gauge(
            &mut registry,
            "reelnet_tracker_rooms",
            "Watch-party rooms kept.",
        );
        let bound_movies = gauge(
            &mut registry,
            "reelnet_tracker_bound_movies",
            "Movies bound to a canonical source lineage.",
        );
        registry.register(
            "reelnet_tracker_ingest_announcements",
            "Ingest announcements from nodes, by outcome (bound, already_bound_here, bound_elsewhere, deferred, refused).",
            announcements,
        );
        registry.register(
            "reelnet_tracker_oauth_refused",
            "Refused sign-in steps (codes, refresh tokens, audiences, proxied credentials, device codes, CSRF), by reason.",
            refusals,
        );
        Self {
            registry,
            requests,
            seconds,
            users,
            open_requests,
            rooms,
            bound_movies,
        }
    }
}

/// Values read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub users: u64,
    /// Requests not yet ready, failed or rejected.
    pub open_requests: u64,
    /// Watch-party rooms kept.
    pub rooms: u64,
    /// Movies with a binding.
    pub bound_movies: u64,
}

/// The route template `path` was served by (`("other", "other")` for anything else).
pub fn route_of(method: &str, path: &str) -> (&'static str, &'static str) {
    ROUTES
        .iter()
        .chain(PAGE_ROUTES)
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
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.seconds.observe(took.as_secs_f64());
    }

    /// The text exposition (`reelnet_runtime::metrics::CONTENT_TYPE`).
    pub fn render(&self, g: Gauges) -> String {
        let set = |gauge: &Gauge, v: u64| gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
        set(&self.users, g.users);
        set(&self.open_requests, g.open_requests);
        set(&self.rooms, g.rooms);
        set(&self.bound_movies, g.bound_movies);
        render(&self.registry)
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
            bound_movies: 2,
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
        assert!(text.contains("reelnet_tracker_bound_movies 2"));
    }
}
