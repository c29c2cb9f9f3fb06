//! Metrics for both services, kept with `prometheus-client` (the Prometheus project's own
//! Rust client) instead of a hand-written renderer per service: one registry per process
//! part, encoded in the OpenMetrics text format, which Prometheus scrapes natively.
//!
//! Counters are registered without their `_total` suffix (the encoder adds it), so the
//! sample names match what the services exposed before the move.

pub use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A gauge holding a fraction or another non-integer value.
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would mean a bad metric name,
    // which the services' own tests catch.
    if let Err(err) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(%err, "cannot encode metrics");
    }
    out
}

/// A histogram with the given bucket upper bounds (seconds, say).
pub fn histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        route: &'static str,
        status: u16,
    }

    #[test]
    fn counters_gauges_and_histograms_render_with_their_names() {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        registry.register("x_requests", "Requests.", requests.clone());
        let up = Gauge::<i64>::default();
        registry.register("x_up", "Up.", up.clone());
        let took = histogram(&[0.01, 0.1]);
        registry.register("x_seconds", "Time.", took.clone());
        requests
            .get_or_create(&Labels {
                route: "play",
                status: 200,
            })
            .inc();
        up.set(3);
        took.observe(0.05);
        let text = render(&registry);
        assert!(
            text.contains("x_requests_total{route=\"play\",status=\"200\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("x_up 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.01\"} 0\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_count 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
