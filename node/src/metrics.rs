//! The gateway's metrics, served at `/metrics` in the OpenMetrics text format through
//! `reelnet_runtime::metrics` (prometheus-client). Every metric handle is an atomic behind
//! an `Arc` (a clone shares the value), so recording needs no lock of ours.

use std::time::Duration;

use reelnet_runtime::metrics::{
    histogram, render, Counter, EncodeLabelSet, Family, FloatGauge, Gauge, Histogram, Registry,
};

/// Upper bounds (seconds) of the peer-fetch latency histogram's buckets.
const FETCH_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: &'static str,
}

const LOCAL: Source = Source { source: "local" };
const PEER: Source = Source { source: "peer" };

/// Counters of the gateway.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    bytes: Family<Source, Counter>,
    segments: Family<Source, Counter>,
    fetches_coalesced: Counter,
    fetch_failures: Counter,
    fetches_started: Counter,
    bad_peer_groups: Counter,
    corrupt_at_rest: Counter,
    fetch_seconds: Histogram,
    peers: Gauge,
    hit_ratio: FloatGauge,
    member: Gauge,
    cert_not_after: Gauge,
    revocation_serial: Gauge,
    not_member: Gauge,
    authority: [Gauge; 5],
    challenges_passed: Gauge,
    challenges_failed: Gauge,
    excluded: Gauge,
    sync_refused_not_member: Gauge,
    sync_refused_budget: Gauge,
    sync_stopped_budget: Gauge,
    connections_denied: Gauge,
    reachability: Family<StateLabel, Gauge>,
    relay_reservations: Gauge,
    hole_punch: Family<ResultLabel, Gauge>,
    p2p_relayed_bytes: Gauge,
    p2p_direct_bytes: Gauge,
    fetch_path_bytes: Family<PathLabel, Gauge>,
    upload_path_bytes: Family<PathLabel, Gauge>,
    store_corrupt: Family<KindLabel, Counter>,
    store_full: Family<KindLabel, Counter>,
    scrubbed_bytes: Counter,
    /// Every answered request (the console's history reads it; `requests` is by label).
    requests_total: std::sync::atomic::AtomicU64,
    /// Successful peer fetches per [`FETCH_BUCKETS`] bucket, the last one beyond them
    /// (the console's history reads deltas of these for its percentiles).
    fetch_counts: [std::sync::atomic::AtomicU64; FETCH_BUCKETS.len() + 1],
}

/// Cumulative counters at one instant, for the console's history ([`crate::history`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub requests: u64,
    pub bytes_local: u64,
    pub bytes_peer: u64,
    pub segments_local: u64,
    pub segments_peer: u64,
    /// Successful peer fetches per latency bucket ([`fetch_bucket_bounds`], then +Inf).
    pub fetch_counts: [u64; FETCH_BUCKETS.len() + 1],
}

/// Upper bounds (seconds) of the fetch latency buckets of [`Snapshot::fetch_counts`]
/// (the last bucket has none).
pub fn fetch_bucket_bounds() -> &'static [f64] {
    &FETCH_BUCKETS
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: &'static str,
}

/// Values gathered at scrape time from other subsystems.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Nodes with a live catalog record, this one excluded.
    pub peers: u64,
    /// Whether this node holds a valid membership certificate.
    pub member: bool,
    /// Its certificate's end (unix seconds; 0 without one).
    pub cert_not_after: u64,
    /// The newest revocation list's serial this node knows.
    pub revocation_serial: u64,
    /// Records and manifests refused because their node was not a member (with the role).
    pub not_member: u64,
    /// Manifests refused or dropped because their movie is bound to another source.
    pub other_lineage: u64,
    /// Manifests and records evicted to keep the catalog within its budget.
    pub evicted: u64,
    /// About how much memory the catalog takes, bytes.
    pub catalog_bytes: u64,
    /// Movies with a binding this node knows.
    pub bound_movies: u64,
    /// Bindings refused (stale versions, unknown keys, bad signatures).
    pub bindings_refused: u64,
    /// Placement's storage challenges passed by new holders since start.
    pub challenges_passed: u64,
    /// Placement's storage challenges failed by new holders since start.
    pub challenges_failed: u64,
    /// Holders placement currently leaves out after a failed challenge.
    pub excluded_holders: u64,
    /// The swarm's counters (zero without a swarm).
    pub swarm: crate::swarm::NetworkStats,
    /// Segment bytes the fetcher got, by path.
    pub fetch_paths: crate::transfer::PathBytes,
    /// Segment bytes the QUIC server has delivered to peers.
    pub uploaded_quic: u64,
    /// Corrupt copies the store found at rest, and the scrub's progress.
    pub corruption: crate::store::Corruption,
    /// Segment writes the store refused for want of room.
    pub full_writes: crate::store::FullWrites,
}

impl Metrics {
    /// Adds the HTTPS certificate's metrics (`reelnet_tls_cert_expiry_seconds`,
    /// `reelnet_acme_orders_total`) to what `/metrics` renders.
    pub fn register_tls(&mut self, tls: &reelnet_runtime::tls::TlsMetrics) {
        tls.register(&mut self.registry);
    }

    /// Adds which tracker replica is in use and how often it changed
    /// (`reelnet_tracker_replica`, `reelnet_tracker_switches_total`).
    pub fn register_trackers(&mut self, trackers: &crate::trackers::Trackers) {
        trackers.register(&mut self.registry);
    }

    pub fn new(now_unix: u64) -> Self {
        let mut registry = Registry::default();
        let started_at = Gauge::<i64>::default();
        started_at.set(i64::try_from(now_unix).unwrap_or(i64::MAX));
        registry.register(
            "reelnet_node_start_time_seconds",
            "Unix time the node started.",
            started_at,
        );
        let peers = Gauge::default();
        registry.register(
            "reelnet_peers",
            "Other nodes with a live catalog record.",
            peers.clone(),
        );
        let fetches_coalesced = Counter::default();
        registry.register(
            "reelnet_fetches_coalesced",
            "Segment misses that joined a peer fetch already in flight.",
            fetches_coalesced.clone(),
        );
        let fetches_started = Counter::default();
        registry.register(
            "reelnet_peer_fetches_started",
            "Peer fetches of segments started for viewers (concurrent viewers of one segment share one).",
            fetches_started.clone(),
        );
        let bad_peer_groups = Counter::default();
        registry.register(
            "reelnet_peer_bad_chunks",
            "Chunk groups from peers that failed their check (the response was aborted, the peer dropped).",
            bad_peer_groups.clone(),
        );
        let corrupt_at_rest = Counter::default();
        registry.register(
            "reelnet_segments_corrupt_at_rest",
            "Stored segments that failed their check when read (removed from the store).",
            corrupt_at_rest.clone(),
        );
        let fetch_failures = Counter::default();
        registry.register(
            "reelnet_fetch_failures",
            "Peer fetches where every provider failed.",
            fetch_failures.clone(),
        );
        let hit_ratio = FloatGauge::default();
        registry.register(
            "reelnet_cache_hit_ratio",
            "Share of segments served from local disk (held or cached) rather than fetched.",
            hit_ratio.clone(),
        );
        let bytes = Family::<Source, Counter>::default();
        registry.register(
            "reelnet_segment_bytes_served",
            "Segment bytes served, by source.",
            bytes.clone(),
        );
        let segments = Family::<Source, Counter>::default();
        registry.register(
            "reelnet_segments_served",
            "Segments served, by source.",
            segments.clone(),
        );
        let fetch_seconds = histogram(&FETCH_BUCKETS);
        registry.register(
            "reelnet_peer_fetch_seconds",
            "Time to fetch and verify a segment from peers.",
            fetch_seconds.clone(),
        );
        let member = Gauge::default();
        registry.register(
            "reelnet_member",
            "1 while this node holds a valid membership certificate of its network.",
            member.clone(),
        );
        let cert_not_after = Gauge::default();
        registry.register(
            "reelnet_membership_certificate_expiry_time_seconds",
            "Unix time this node's membership certificate ends (renewed when a third is left).",
            cert_not_after.clone(),
        );
        let revocation_serial = Gauge::default();
        registry.register(
            "reelnet_revocation_list_serial",
            "Serial of the newest verified revocation list this node knows.",
            revocation_serial.clone(),
        );
        let not_member = Gauge::default();
        registry.register(
            "reelnet_catalog_rejected_not_member",
            "Records and manifests refused since start because their node was not a member with the needed role.",
            not_member.clone(),
        );
        let authority: [Gauge; 5] = Default::default();
        for (gauge, (name, help)) in authority.iter().zip([
            ("reelnet_catalog_rejected_other_lineage", "Manifests refused or dropped since start because their movie is bound to another source."),
            ("reelnet_catalog_evicted", "Manifests and records evicted since start to keep the catalog within its budget."),
            ("reelnet_catalog_bytes", "About how much memory the catalog takes (catalog.budget_mib bounds it)."),
            ("reelnet_bound_movies", "Movies with a binding (canonical source) this node knows."),
            ("reelnet_bindings_refused", "Movie bindings refused since start (stale versions, unknown keys, bad signatures)."),
        ]) {
            registry.register(name, help, gauge.clone());
        }
        let challenges_passed = Gauge::default();
        registry.register(
            "reelnet_placement_challenges_passed",
            "Storage challenges (segments fetched and verified before releasing a copy) new holders passed since start.",
            challenges_passed.clone(),
        );
        let challenges_failed = Gauge::default();
        registry.register(
            "reelnet_placement_challenges_failed",
            "Storage challenges new holders failed since start; each left the holder out of placement here for a while.",
            challenges_failed.clone(),
        );
        let excluded = Gauge::default();
        registry.register(
            "reelnet_placement_excluded_holders",
            "Nodes placement currently leaves out of the candidate set after a failed storage challenge.",
            excluded.clone(),
        );
        let swarm_gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let sync_refused_not_member = swarm_gauge(
            &mut registry,
            "reelnet_sync_refused_not_member",
            "Catalog sync requests refused since start because the requester was not a member.",
        );
        let sync_refused_budget = swarm_gauge(
            &mut registry,
            "reelnet_sync_refused_budget",
            "Catalog sync requests refused since start because the requester had used up its sync budget.",
        );
        let sync_stopped_budget = swarm_gauge(
            &mut registry,
            "reelnet_sync_stopped_budget",
            "Catalog syncs from peers stopped or not started since start because the peer had used up its sync budget.",
        );
        let connections_denied = swarm_gauge(
            &mut registry,
            "reelnet_connections_denied",
            "libp2p connections denied since start by the connection limits.",
        );
        let reachability = Family::<StateLabel, Gauge>::default();
        registry.register(
            "reelnet_p2p_reachability",
            "1 for what AutoNAT says about this node now: public, private or unknown.",
            reachability.clone(),
        );
        let relay_reservations = swarm_gauge(
            &mut registry,
            "reelnet_p2p_relay_reservations",
            "Relay reservations this node holds (it listens through a relay while not reachable).",
        );
        let hole_punch = Family::<ResultLabel, Gauge>::default();
        registry.register(
            "reelnet_p2p_hole_punch_total",
            "DCUtR hole punches since start, by result (success, failure).",
            hole_punch.clone(),
        );
        let p2p_relayed_bytes = swarm_gauge(
            &mut registry,
            "reelnet_p2p_relayed_bytes_total",
            "Segment bytes sent and received over /reelnet/segment/2 through a relay since start.",
        );
        let p2p_direct_bytes = swarm_gauge(
            &mut registry,
            "reelnet_p2p_direct_bytes_total",
            "Segment bytes sent and received over /reelnet/segment/2 on direct libp2p connections since start.",
        );
        let fetch_path_bytes = Family::<PathLabel, Gauge>::default();
        registry.register(
            "reelnet_segment_fetch_bytes_total",
            "Segment bytes fetched from peers since start, by path (quic, libp2p_direct, libp2p_relayed).",
            fetch_path_bytes.clone(),
        );
        let upload_path_bytes = Family::<PathLabel, Gauge>::default();
        registry.register(
            "reelnet_segment_bytes_uploaded_total",
            "Segment bytes served to other nodes since start, by path (quic, libp2p_direct, libp2p_relayed).",
            upload_path_bytes.clone(),
        );
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "reelnet_http_requests",
            "Gateway requests by route and status.",
            requests.clone(),
        );
        // Both sources exist from the start, at zero.
        for source in [LOCAL, PEER] {
            let _ = bytes.get_or_create(&source);
            let _ = segments.get_or_create(&source);
        }
        let store_corrupt = Family::<KindLabel, Counter>::default();
        registry.register(
            "reelnet_store_corrupt",
            "Stored copies found corrupt at rest since start (hash or signature check failed when read or scrubbed), by kind (segment, manifest); each was dropped and is fetched again from a peer.",
            store_corrupt.clone(),
        );
        let store_full = Family::<KindLabel, Counter>::default();
        registry.register(
            "reelnet_store_full",
            "Segment writes (ingest, replication, viewer cache) that failed for want of room since start, by kind: quota (storage.quota_bytes full of pinned data) or disk (the file system returned ENOSPC/EDQUOT even after evicting cache). Nothing partial is kept; the work is retried once room is made.",
            store_full.clone(),
        );
        for kind in ["quota", "disk"] {
            let _ = store_full.get_or_create(&KindLabel { kind });
        }
        let scrubbed_bytes = Counter::default();
        registry.register(
            "reelnet_store_scrubbed_bytes",
            "Segment bytes the background scrub has read and checked since start.",
            scrubbed_bytes.clone(),
        );
        Self {
            store_corrupt,
            store_full,
            scrubbed_bytes,
            registry,
            requests,
            bytes,
            segments,
            fetches_coalesced,
            fetch_failures,
            fetches_started,
            bad_peer_groups,
            corrupt_at_rest,
            fetch_seconds,
            peers,
            hit_ratio,
            member,
            cert_not_after,
            revocation_serial,
            not_member,
            authority,
            challenges_passed,
            challenges_failed,
            excluded,
            sync_refused_not_member,
            sync_refused_budget,
            sync_stopped_budget,
            connections_denied,
            reachability,
            relay_reservations,
            hole_punch,
            p2p_relayed_bytes,
            p2p_direct_bytes,
            fetch_path_bytes,
            upload_path_bytes,
            requests_total: Default::default(),
            fetch_counts: Default::default(),
        }
    }

    /// The cumulative counters now.
    pub fn snapshot(&self) -> Snapshot {
        use std::sync::atomic::Ordering::Relaxed;
        Snapshot {
            requests: self.requests_total.load(Relaxed),
            bytes_local: self.bytes.get_or_create(&LOCAL).get(),
            bytes_peer: self.bytes.get_or_create(&PEER).get(),
            segments_local: self.segments.get_or_create(&LOCAL).get(),
            segments_peer: self.segments.get_or_create(&PEER).get(),
            fetch_counts: std::array::from_fn(|i| self.fetch_counts[i].load(Relaxed)),
        }
    }

    /// Counts one answered request by route name and status.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.requests_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A segment served from this node's disk.
    pub fn served_local(&self, bytes: u64) {
        self.segments.get_or_create(&LOCAL).inc();
        self.bytes.get_or_create(&LOCAL).inc_by(bytes);
    }

    /// A segment served after fetching it from a peer.
    pub fn served_peer(&self, bytes: u64) {
        self.segments.get_or_create(&PEER).inc();
        self.bytes.get_or_create(&PEER).inc_by(bytes);
    }

    /// A peer fetch started for a viewer.
    pub fn fetch_started(&self) {
        self.fetches_started.inc();
    }

    /// A chunk group from a peer failed its check.
    pub fn bad_peer_chunk(&self) {
        self.bad_peer_groups.inc();
    }

    /// A stored segment failed its check when read.
    pub fn corrupt_at_rest(&self) {
        self.corrupt_at_rest.inc();
    }

    /// A viewer's miss joined a fetch already in flight.
    pub fn fetch_coalesced(&self) {
        self.fetches_coalesced.inc();
    }

    /// A peer fetch ended after `took`.
    pub fn fetch_finished(&self, took: Duration, ok: bool) {
        if ok {
            let secs = took.as_secs_f64();
            self.fetch_seconds.observe(secs);
            let bucket = FETCH_BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(FETCH_BUCKETS.len());
            self.fetch_counts[bucket].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.fetch_failures.inc();
        }
    }

    /// Renders every metric in the OpenMetrics text format
    /// (`reelnet_runtime::metrics::CONTENT_TYPE`).
    pub fn render(&self, gauges: Gauges) -> String {
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.peers, gauges.peers);
        // Counters that live in the store: catch up to its totals.
        let catch_up = |c: &Counter, v: u64| c.inc_by(v.saturating_sub(c.get()));
        for (kind, v) in [
            ("segment", gauges.corruption.segments),
            ("manifest", gauges.corruption.manifests),
        ] {
            catch_up(&self.store_corrupt.get_or_create(&KindLabel { kind }), v);
        }
        catch_up(&self.scrubbed_bytes, gauges.corruption.scrubbed_bytes);
        for (kind, v) in [
            ("quota", gauges.full_writes.quota),
            ("disk", gauges.full_writes.disk),
        ] {
            catch_up(&self.store_full.get_or_create(&KindLabel { kind }), v);
        }
        set(&self.member, u64::from(gauges.member));
        set(&self.cert_not_after, gauges.cert_not_after);
        set(&self.revocation_serial, gauges.revocation_serial);
        set(&self.not_member, gauges.not_member);
        for (g, v) in self.authority.iter().zip([
            gauges.other_lineage,
            gauges.evicted,
            gauges.catalog_bytes,
            gauges.bound_movies,
            gauges.bindings_refused,
        ]) {
            set(g, v);
        }
        set(&self.challenges_passed, gauges.challenges_passed);
        set(&self.challenges_failed, gauges.challenges_failed);
        set(&self.excluded, gauges.excluded_holders);
        set(&self.sync_refused_not_member, gauges.swarm.sync_refused);
        set(&self.sync_refused_budget, gauges.swarm.sync_budget_refused);
        set(&self.sync_stopped_budget, gauges.swarm.sync_budget_stopped);
        set(&self.connections_denied, gauges.swarm.connections_denied);
        for state in crate::swarm::nat::Reachability::ALL {
            set(
                &self.reachability.get_or_create(&StateLabel {
                    state: state.as_str(),
                }),
                u64::from(gauges.swarm.reachability == state),
            );
        }
        let sw = &gauges.swarm;
        set(&self.relay_reservations, sw.relay_reservations);
        for (result, v) in [
            ("success", sw.hole_punch_success),
            ("failure", sw.hole_punch_failure),
        ] {
            set(&self.hole_punch.get_or_create(&ResultLabel { result }), v);
        }
        set(
            &self.p2p_relayed_bytes,
            sw.segment_served_relayed_bytes + sw.segment_fetched_relayed_bytes,
        );
        set(
            &self.p2p_direct_bytes,
            sw.segment_served_direct_bytes + sw.segment_fetched_direct_bytes,
        );
        let paths = gauges.fetch_paths;
        for (path, v) in [
            ("quic", paths.quic),
            ("libp2p_direct", paths.libp2p_direct),
            ("libp2p_relayed", paths.libp2p_relayed),
        ] {
            set(&self.fetch_path_bytes.get_or_create(&PathLabel { path }), v);
        }
        for (path, v) in [
            ("quic", gauges.uploaded_quic),
            ("libp2p_direct", sw.segment_served_direct_bytes),
            ("libp2p_relayed", sw.segment_served_relayed_bytes),
        ] {
            set(
                &self.upload_path_bytes.get_or_create(&PathLabel { path }),
                v,
            );
        }
        let local = self.segments.get_or_create(&LOCAL).get();
        let peer = self.segments.get_or_create(&PEER).get();
        self.hit_ratio.set(if local + peer == 0 {
            0.0
        } else {
            local as f64 / (local + peer) as f64
        });
        render(&self.registry)
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
        let text = m.render(Gauges {
            peers: 2,
            member: true,
            cert_not_after: 1_800_000_000,
            revocation_serial: 3,
            not_member: 4,
            other_lineage: 5,
            challenges_passed: 5,
            challenges_failed: 6,
            excluded_holders: 1,
            swarm: crate::swarm::NetworkStats {
                sync_refused: 5,
                sync_budget_refused: 6,
                sync_budget_stopped: 7,
                connections_denied: 8,
                segment_served_direct_bytes: 70,
                ..Default::default()
            },
            uploaded_quic: 900,
            corruption: crate::store::Corruption {
                segments: 2,
                manifests: 1,
                scrubbed_bytes: 4096,
                scrub_passes: 1,
            },
            full_writes: crate::store::FullWrites { quota: 3, disk: 2 },
            ..Gauges::default()
        });
        assert!(
            text.contains("reelnet_store_full_total{kind=\"quota\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("reelnet_store_full_total{kind=\"disk\"} 2\n"));
        assert!(
            text.contains("reelnet_store_corrupt_total{kind=\"segment\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("reelnet_store_corrupt_total{kind=\"manifest\"} 1\n"));
        assert!(text.contains("reelnet_store_scrubbed_bytes_total 4096\n"));
        assert!(
            text.contains("reelnet_segment_bytes_uploaded_total{path=\"quic\"} 900\n"),
            "{text}"
        );
        assert!(text.contains("reelnet_segment_bytes_uploaded_total{path=\"libp2p_direct\"} 70\n"));
        assert!(text.contains("reelnet_catalog_rejected_other_lineage 5\n"));
        assert!(text.contains("reelnet_peers 2\n"));
        assert!(text.contains("reelnet_member 1\n"));
        assert!(text.contains("reelnet_membership_certificate_expiry_time_seconds 1800000000\n"));
        assert!(text.contains("reelnet_revocation_list_serial 3\n"));
        assert!(
            text.contains("reelnet_catalog_rejected_not_member 4\n"),
            "{text}"
        );
        assert!(text.contains("reelnet_placement_challenges_passed 5\n"));
        assert!(text.contains("reelnet_placement_challenges_failed 6\n"));
        assert!(text.contains("reelnet_placement_excluded_holders 1\n"));
        assert!(
            text.contains("reelnet_sync_refused_not_member 5\n"),
            "{text}"
        );
        assert!(text.contains("reelnet_sync_refused_budget 6\n"), "{text}");
        assert!(text.contains("reelnet_sync_stopped_budget 7\n"), "{text}");
        assert!(text.contains("reelnet_connections_denied 8\n"), "{text}");
        assert!(text.contains("reelnet_segment_bytes_served_total{source=\"local\"} 100\n"));
        assert!(text.contains("reelnet_peer_fetch_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("reelnet_peer_fetch_seconds_bucket{le=\"0.02\"} 1\n"));
        assert!(text.contains("reelnet_peer_fetch_seconds_count 1\n"));
        assert!(text.contains("reelnet_fetch_failures_total 1\n"));
        assert!(text.contains("reelnet_cache_hit_ratio 0.5\n"), "{text}");
        assert!(
            text.contains("reelnet_http_requests_total{route=\"hls_segment\",status=\"200\"} 1\n")
        );
    }
}
