//! The QUIC segment service: how nodes move segment bytes between each other.
//!
//! This module owns everything between "node A wants segment S of manifest M" and "node A
//! holds bytes that hash to S": the TLS identity of a node on the wire ([`tls`]), the server
//! that answers segment requests from the local [`Store`](crate::store::Store) ([`server`]),
//! and the client that fetches from the best of several providers ([`fetcher`]). The frames
//! themselves live in `reelnet_proto::transfer` (no I/O there).
//!
//! Why it is shaped this way:
//!
//! - **Identity is the node key.** Each endpoint presents a self-signed certificate made from
//!   its ed25519 node key; a client accepts a server only if the certificate's public key is
//!   the [`NodeId`](reelnet_proto::NodeId) it meant to reach (there is no CA), and the server
//!   learns the client's `NodeId` the same way (mutual TLS), which it uses for per-peer limits.
//! - **One request per bidirectional stream, many streams per connection.** A fetcher keeps
//!   one connection per provider and multiplexes requests on it; the server bounds streams per
//!   connection (QUIC stream credit), connections per peer, and in-flight responses overall,
//!   answering `Busy` rather than queueing without bound.
//! - **The receiver verifies every byte; a failed check goes back to the sender.** The fetcher
//!   checks the announced length and hash against what it expects and hashes the body before
//!   returning it, so it never passes on bad bytes. The server therefore sends stored
//!   segments without hashing them again (the store verified them when it wrote them); a
//!   fetcher whose check fails reports it on a unidirectional stream
//!   ([`CorruptReport`](reelnet_proto::CorruptReport)), and the server re-reads its copy
//!   with the hash check, which drops a corrupt copy (placement then fetches a good one).
//!   The libp2p fallback, which has no report path, still reads through the check.
//! - **Throughput matters.** [`TransportTuning`] raises the initial MTU, keeps MTU discovery,
//!   and uses large flow-control windows; quinn-udp uses GSO/GRO on Linux when available
//!   (`TransportConfig::enable_segmentation_offload` is on by default), which dominates
//!   loopback throughput.

pub mod fetcher;
pub mod reports;
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use fetcher::{
    AttemptError, FetchError, FetchRequest, Fetcher, FetcherConfig, PathBytes, ProviderStats,
    DEFAULT_QUIC_FALLBACK_AFTER_MS, QUIC_RETRY_AFTER,
};
pub use server::{
    Limits, Refused, ReportStats, SegmentService, ServerError, TransferServer, UploadCounter,
    REPORT_ACK,
};
pub use tls::TlsError;

/// QUIC application error code for a normal close (shutdown, idle).
pub const CLOSE_OK: u32 = 0;
/// QUIC application error code: the server has too many connections (from this peer).
pub const CLOSE_BUSY: u32 = 1;

/// Transport parameters shared by the server and the fetcher.
#[derive(Debug, Clone)]
pub struct TransportTuning {
    /// UDP payload size used from the first packet, before MTU discovery. 1452 fits any
    /// Ethernet path over IPv4 or IPv6; quinn's default of 1200 caps bulk throughput.
    /// A path that cannot carry it falls back through black-hole detection.
    pub initial_mtu: u16,
    /// Upper bound of MTU discovery (which stays on). Loopback and jumbo-frame links can use
    /// much more than 1452.
    pub mtu_upper_bound: u16,
    /// Per-stream receive window: one whole segment in flight without stalls.
    pub stream_receive_window: u32,
    /// Connection receive window: many concurrent segment streams.
    pub receive_window: u64,
    /// Connection send window.
    pub send_window: u64,
    /// A connection idle this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval of the fetcher's cached connections (below `idle_timeout`).
    pub keep_alive: Option<Duration>,
}

impl Default for TransportTuning {
    fn default() -> Self {
        Self {
            initial_mtu: 1452,
            mtu_upper_bound: 1452,
            stream_receive_window: 8 << 20,
            receive_window: 64 << 20,
            send_window: 64 << 20,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(10)),
        }
    }
}

impl TransportTuning {
    /// For loopback only (tests, benchmarks): loopback's MTU is 64 KiB, so larger datagrams
    /// are safe and cut per-packet costs.
    pub fn loopback() -> Self {
        Self {
            initial_mtu: 8952,
            mtu_upper_bound: 16384,
            ..Self::default()
        }
    }

    /// The largest UDP payload an endpoint must accept to use these settings.
    pub(crate) fn max_udp_payload(&self) -> u16 {
        self.initial_mtu.max(self.mtu_upper_bound).max(1472)
    }

    /// The endpoint-wide configuration (datagram size limit).
    pub fn endpoint_config(&self) -> Result<quinn::EndpointConfig, quinn::ConfigError> {
        let mut config = quinn::EndpointConfig::default();
        config.max_udp_payload_size(self.max_udp_payload())?;
        Ok(config)
    }

    /// The per-connection transport configuration. `max_bidi_streams` is how many request
    /// streams the peer may open at once, `max_uni_streams` how many corruption reports (0
    /// for a client: servers never open streams).
    pub fn transport_config(
        &self,
        max_bidi_streams: u32,
        max_uni_streams: u32,
        keep_alive: bool,
    ) -> Result<Arc<quinn::TransportConfig>, quinn::VarIntBoundsExceeded> {
        let mut t = quinn::TransportConfig::default();
        let mut mtu = quinn::MtuDiscoveryConfig::default();
        mtu.upper_bound(self.mtu_upper_bound.max(self.initial_mtu));
        t.initial_mtu(self.initial_mtu)
            .mtu_discovery_config(Some(mtu))
            .stream_receive_window(quinn::VarInt::from_u32(self.stream_receive_window))
            .receive_window(quinn::VarInt::from_u64(self.receive_window)?)
            .send_window(self.send_window)
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(max_bidi_streams))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(max_uni_streams))
            .max_idle_timeout(Some(quinn::IdleTimeout::try_from(self.idle_timeout)?))
            .keep_alive_interval(if keep_alive { self.keep_alive } else { None });
        Ok(Arc::new(t))
    }
}
