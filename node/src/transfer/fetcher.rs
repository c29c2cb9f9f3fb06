//! The segment fetcher: gets a segment from the best of several providers, verified.
//!
//! A [`Fetcher`] owns one client QUIC endpoint and, per provider `NodeId`, one cached
//! connection on which requests are multiplexed (one bidirectional stream each), a semaphore
//! bounding requests in flight to that provider, and a score. A fetch ranks the providers it
//! is given by expected completion time — EWMA of time-to-first-byte plus segment size over
//! EWMA throughput, scaled up by the provider's current load and by recent failures — and
//! tries them in that order, each attempt bounded by [`FetcherConfig::attempt_timeout`].
//!
//! A response is accepted only if its announced length is within `MAX_SEGMENT_BYTES` and
//! equals the manifest's size when the caller knows it, its announced hash is the expected
//! one, its outboard matches that hash, exactly that many bytes arrive, and every 16 KiB
//! group of them passes its check against the outboard. Anything else counts as a failure of
//! that provider (a wrong hash also drops its connection) and the next provider is tried, so
//! a fetch never returns bad bytes.
//!
//! # Verified streaming
//!
//! [`Fetcher::fetch_streaming`] hands each run of verified groups to a sink as it arrives
//! over QUIC (the outboard comes first, see `reelnet_proto::transfer`), so a gateway can send
//! a peer-held segment to a viewer while the rest is still in flight, never a byte before
//! its group is checked. Attempts that race (QUIC and libp2p) or follow one another may
//! deliver the same range twice; a range always carries the same bytes, so the sink keeps
//! the longest verified prefix. [`Fetcher::fetch_request`] is the same fetch collected into
//! one buffer.
//!
//! # The libp2p fallback
//!
//! A provider's QUIC address may not be reachable: a home node behind a NAT has its quinn
//! socket unreachable from outside (libp2p's hole punch does not open it). With a swarm
//! attached ([`Fetcher::set_fallback`]), a request QUIC has not answered within
//! [`FetcherConfig::quic_fallback_after`] (its head start) is also sent over
//! `/reelnet/segment/2` on a libp2p connection to the provider's peer id (direct, DCUtR
//! hole-punched, or relayed) and the first verified answer wins ("happy eyeballs"). When
//! the QUIC handshake fails, or libp2p answers first, the provider's QUIC address is
//! skipped for [`QUIC_RETRY_AFTER`]. The answer is checked exactly like a QUIC answer (announced length
//! and hash, then the bytes' hash). Bytes fetched are counted per path
//! ([`Fetcher::path_bytes`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ed25519_dalek::SigningKey;
use reelnet_proto::outboard;
use reelnet_proto::transfer::{FRAME_PREFIX_LEN, MAX_SEGMENT_BYTES};
use reelnet_proto::{
    decode_response_header, encode_report, encode_request, CorruptReport, DecodeError, ManifestId,
    NodeId, Outboard, ResponseHeader, SegmentHash, SegmentRef, SegmentRequest, Status,
    MAX_RESPONSE_HEADER,
};
use tokio::sync::Semaphore;

use super::{tls, TlsError, TransportTuning, CLOSE_OK};
use crate::store::{Store, StoreError};

/// Settings of a [`Fetcher`].
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// Local UDP address of the client endpoint. `0.0.0.0:0` reaches IPv4 providers;
    /// use `[::]:0` for IPv6.
    pub bind: SocketAddr,
    /// Longest time one provider gets for one segment, connection set-up included.
    pub attempt_timeout: Duration,
    /// Requests in flight to one provider at once (beyond the server's stream credit).
    pub max_inflight_per_peer: usize,
    /// QUIC transport parameters.
    pub transport: TransportTuning,
    /// With a libp2p fallback attached: QUIC's head start. A request QUIC has not answered
    /// by then is also sent over libp2p, and the first verified answer wins
    /// (`transfer.quic_fallback_after_ms`).
    pub quic_fallback_after: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            attempt_timeout: Duration::from_secs(10),
            max_inflight_per_peer: 32,
            transport: TransportTuning::default(),
            quic_fallback_after: Duration::from_millis(DEFAULT_QUIC_FALLBACK_AFTER_MS),
        }
    }
}

/// `transfer.quic_fallback_after_ms` unless configured.
pub const DEFAULT_QUIC_FALLBACK_AFTER_MS: u64 = 300;

/// With a libp2p fallback attached: a QUIC handshake not complete by then counts as the
/// address being unreachable (the libp2p request started after the head start goes on).
pub const QUIC_HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// After a provider's QUIC address failed, or lost the race to libp2p, it is skipped
/// (straight to libp2p) this long.
pub const QUIC_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Segment body bytes fetched, by path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathBytes {
    pub quic: u64,
    pub libp2p_direct: u64,
    pub libp2p_relayed: u64,
}

/// What to fetch: the request, the hash the bytes must have and, if known, their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    pub request: SegmentRequest,
    /// The segment's hash as the (verified) manifest lists it.
    pub expected: SegmentHash,
    /// The segment's size as the manifest lists it, if known.
    pub size: Option<u64>,
}

/// Why one provider did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot start a connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("cannot send the request: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("cannot read the response: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("provider answered {0:?}")]
    Status(Status),
    #[error("malformed response header: {0}")]
    BadHeader(#[from] DecodeError),
    #[error("provider announced {announced} bytes, the manifest says {expected}")]
    SizeMismatch { announced: u64, expected: u64 },
    #[error("provider announced hash {announced}, expected {expected}")]
    AnnouncedHashMismatch {
        announced: SegmentHash,
        expected: SegmentHash,
    },
    #[error("provider sent bytes hashing to {actual}, expected {expected}")]
    HashMismatch {
        actual: SegmentHash,
        expected: SegmentHash,
    },
    #[error("provider sent an outboard that failed its check against the segment hash: {0}")]
    BadOutboard(DecodeError),
    #[error("provider sent chunk group {index} (at byte {offset}) that failed its check")]
    BadGroup { index: usize, offset: u64 },
    #[error("response ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("provider sent more bytes than announced")]
    TrailingBytes,
    #[error("request cannot be encoded: {0}")]
    Encode(String),
    #[error("QUIC address unreachable: {0}")]
    QuicUnreachable(String),
    #[error("over libp2p: {0}")]
    P2p(String),
}

impl AttemptError {
    /// Whether the provider sent bytes (or an outboard) that failed their check.
    pub fn is_bad_data(&self) -> bool {
        matches!(
            self,
            Self::HashMismatch { .. } | Self::BadOutboard(_) | Self::BadGroup { .. }
        )
    }

    /// Whether the provider misbehaved (as opposed to lacking the segment or being busy):
    /// its connection is dropped and its score takes a heavy penalty.
    fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Self::BadHeader(_)
                | Self::SizeMismatch { .. }
                | Self::AnnouncedHashMismatch { .. }
                | Self::HashMismatch { .. }
                | Self::BadOutboard(_)
                | Self::BadGroup { .. }
                | Self::TrailingBytes
        )
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no providers given for the segment")]
    NoProviders,
    #[error("every provider failed: {}", describe(.0))]
    AllFailed(Vec<(NodeId, AttemptError)>),
    #[error("fetched segment could not be stored: {0}")]
    Store(#[from] StoreError),
    #[error("cannot set up the QUIC client: {0}")]
    Setup(String),
}

fn describe(failures: &[(NodeId, AttemptError)]) -> String {
    failures
        .iter()
        .map(|(node, err)| format!("{}: {err}", node.short()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<TlsError> for FetchError {
    fn from(e: TlsError) -> Self {
        Self::Setup(e.to_string())
    }
}

/// What the fetcher has learnt about a provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderStats {
    /// EWMA of the time from sending a request to its response header.
    pub latency: Duration,
    /// EWMA of body throughput, bytes per second.
    pub throughput: f64,
    /// Successful fetches.
    pub successes: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When the last failure happened.
    pub last_failure: Option<Instant>,
}

impl Default for ProviderStats {
    /// The prior for a provider never tried: good enough to be tried before one that failed.
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(50),
            throughput: 50e6,
            successes: 0,
            consecutive_failures: 0,
            last_failure: None,
        }
    }
}

/// Weight of a new sample in the moving averages.
const EWMA_ALPHA: f64 = 0.3;
/// Failures older than this no longer count against a provider.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);
/// How many times a spared provider's (a movie's origin's) expected cost counts in the
/// ranking: the origin is the one source every copy comes from, so replicas and caches
/// serve viewers first (issue 19 item 5, origin offload).
pub const SPARE_PENALTY: f64 = 4.0;
/// Size assumed when ranking for a segment of unknown size.
const TYPICAL_SEGMENT: u64 = 2 << 20;
/// Most providers remembered; beyond it, idle ones are forgotten.
const MAX_PEERS: usize = 4096;

impl ProviderStats {
    fn record_success(&mut self, latency: Duration, bytes: u64, body_time: Duration) {
        let ewma = |old: f64, new: f64| old + EWMA_ALPHA * (new - old);
        let l = ewma(self.latency.as_secs_f64(), latency.as_secs_f64());
        self.latency = Duration::from_secs_f64(l.max(0.0));
        // Small bodies say little about throughput.
        if bytes >= 64 << 10 {
            let secs = body_time.as_secs_f64().max(1e-6);
            self.throughput = ewma(self.throughput, bytes as f64 / secs);
        }
        self.successes += 1;
        self.consecutive_failures = 0;
    }

    fn record_failure(&mut self, weight: u32) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(weight);
        self.last_failure = Some(Instant::now());
    }

    /// Expected seconds to fetch `size` bytes, scaled by load and recent failures.
    fn cost(&self, size: u64, load: f64, now: Instant) -> f64 {
        let base = self.latency.as_secs_f64() + size as f64 / self.throughput.max(1.0);
        let recent = self
            .last_failure
            .is_some_and(|t| now.duration_since(t) < FAILURE_MEMORY);
        let failures = if recent {
            f64::from(self.consecutive_failures.min(16))
        } else {
            0.0
        };
        base * (1.0 + load) * (1.0 + 4.0 * failures)
    }
}

fn client_config(
    key: &SigningKey,
    config: &FetcherConfig,
    member: tls::MemberCheck,
) -> Result<quinn::ClientConfig, FetchError> {
    let crypto = tls::quic_client_crypto(key, member)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(
        config
            .transport
            .transport_config(0, 0, true)
            .map_err(|e| FetchError::Setup(e.to_string()))?,
    );
    Ok(client)
}

/// Everything the fetcher keeps per provider.
struct Peer {
    /// The cached connection; the async lock also makes concurrent fetches share one dial.
    conn: tokio::sync::Mutex<Option<quinn::Connection>>,
    /// Until when the QUIC address is skipped (it was unreachable) in favour of libp2p.
    quic_down_until: Mutex<Option<Instant>>,
    permits: Arc<Semaphore>,
    stats: Mutex<ProviderStats>,
}

/// Fetches verified segments from providers; cheap to share (`Arc`) between tasks.
pub struct Fetcher {
    endpoint: quinn::Endpoint,
    config: FetcherConfig,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    /// The client configuration new connections use (rebuilt when the membership
    /// certificate is renewed).
    client: Mutex<quinn::ClientConfig>,
    key: SigningKey,
    member: tls::MemberCheck,
    /// The swarm, for the libp2p fallback (see the module docs).
    fallback: OnceLock<crate::swarm::NetworkHandle>,
    /// Bytes fetched over QUIC, libp2p direct, libp2p relayed.
    path_bytes: [AtomicU64; 3],
}

impl Fetcher {
    /// A fetcher that authenticates as `key` (so servers apply their per-peer limits to this
    /// node), or with a fresh throw-away key when `None`.
    pub fn new(key: Option<&SigningKey>) -> Result<Self, FetchError> {
        Self::with_config(key, FetcherConfig::default())
    }

    /// [`new`](Self::new) with explicit settings.
    pub fn with_config(
        key: Option<&SigningKey>,
        config: FetcherConfig,
    ) -> Result<Self, FetchError> {
        Self::with_membership(key, config, None)
    }

    /// [`with_config`](Self::with_config) as a network member: presents `membership`'s
    /// certificate (see [`Fetcher::apply_membership`] for renewals) and connects only to
    /// members.
    pub fn with_membership(
        key: Option<&SigningKey>,
        config: FetcherConfig,
        membership: Option<&crate::membership::Membership>,
    ) -> Result<Self, FetchError> {
        let key = match key {
            Some(k) => k.clone(),
            None => SigningKey::generate(&mut rand::rngs::OsRng),
        };
        let member = membership.map(|m| m.subscribe());
        let client = client_config(&key, &config, member.clone())?;
        let endpoint_config = config
            .transport
            .endpoint_config()
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        let socket = std::net::UdpSocket::bind(config.bind)
            .map_err(|e| FetchError::Setup(format!("cannot bind UDP {}: {e}", config.bind)))?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| FetchError::Setup("no tokio runtime for QUIC".into()))?;
        let endpoint = quinn::Endpoint::new(endpoint_config, None, socket, runtime)
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        Ok(Self {
            endpoint,
            config,
            peers: Mutex::new(HashMap::new()),
            client: Mutex::new(client),
            key,
            member,
            fallback: OnceLock::new(),
            path_bytes: Default::default(),
        })
    }

    /// Attaches the swarm: from now on a provider whose QUIC address cannot be reached is
    /// asked over libp2p. Only the first call counts.
    pub fn set_fallback(&self, network: crate::swarm::NetworkHandle) {
        let _ = self.fallback.set(network);
    }

    /// Segment body bytes fetched so far, by path.
    pub fn path_bytes(&self) -> PathBytes {
        PathBytes {
            quic: self.path_bytes[0].load(Ordering::Relaxed),
            libp2p_direct: self.path_bytes[1].load(Ordering::Relaxed),
            libp2p_relayed: self.path_bytes[2].load(Ordering::Relaxed),
        }
    }

    /// Follows a membership change: new connections present the current certificate, and
    /// connections to revoked nodes are closed.
    pub fn apply_membership(&self) {
        let Some(member) = &self.member else { return };
        let state = member.borrow().clone();
        match client_config(&self.key, &self.config, self.member.clone()) {
            Ok(c) => *lock(&self.client) = c,
            Err(err) => tracing::error!(%err, "cannot rebuild the QUIC client configuration"),
        }
        let revoked: Vec<Arc<Peer>> = lock(&self.peers)
            .iter()
            .filter(|(node, _)| state.is_revoked(node))
            .map(|(_, p)| Arc::clone(p))
            .collect();
        for peer in revoked {
            if let Ok(mut slot) = peer.conn.try_lock() {
                if let Some(conn) = slot.take() {
                    tracing::warn!("closing the connection to a revoked node");
                    conn.close(quinn::VarInt::from_u32(super::CLOSE_OK), b"revoked");
                }
            }
        }
    }

    /// Fetches one segment, verified against `expected`, from the best of `providers`.
    pub async fn fetch(
        &self,
        providers: &[(NodeId, SocketAddr)],
        manifest: ManifestId,
        track: u16,
        segment: SegmentRef,
        expected: SegmentHash,
    ) -> Result<Bytes, FetchError> {
        let want = FetchRequest {
            request: SegmentRequest {
                manifest,
                track,
                segment,
            },
            expected,
            size: None,
        };
        self.fetch_request(providers, &want).await
    }

    /// Fetches `want` from the best of `providers`, falling back to the next on failure.
    pub async fn fetch_request(
        &self,
        providers: &[(NodeId, SocketAddr)],
        want: &FetchRequest,
    ) -> Result<Bytes, FetchError> {
        let cap = want.size.map_or(1 << 20, |s| s.min(MAX_SEGMENT_BYTES)) as usize;
        let collected = Mutex::new(BytesMut::with_capacity(cap));
        let sink = |offset: u64, bytes: Bytes| {
            let mut c = lock(&collected);
            extend_prefix(&mut c, offset, &bytes);
        };
        self.fetch_streaming(providers, want, &sink, true).await?;
        let body = collected.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(body.freeze())
    }

    /// Fetches `want` from the best of `providers`, handing verified bytes to `sink` as they
    /// arrive (`(offset, bytes)`; see the module docs). A provider failing midway is
    /// followed by the next one, whose bytes continue the verified prefix. Without `resume`,
    /// a provider caught sending bad bytes after some bytes reached the sink ends the fetch
    /// (a gateway aborts its viewers' responses rather than splice another source's bytes
    /// after a detected attack). Returns once the whole segment has been delivered.
    pub async fn fetch_streaming(
        &self,
        providers: &[(NodeId, SocketAddr)],
        want: &FetchRequest,
        sink: &(dyn Fn(u64, Bytes) + Sync),
        resume: bool,
    ) -> Result<(), FetchError> {
        self.fetch_streaming_sparing(providers, None, want, sink, resume)
            .await
    }

    /// [`fetch_streaming`](Self::fetch_streaming), sparing `spare` (a movie's origin): its
    /// expected cost counts [`SPARE_PENALTY`] times, so replicas and caches serve first and
    /// the origin only when they are much slower, busy or failing.
    pub async fn fetch_streaming_sparing(
        &self,
        providers: &[(NodeId, SocketAddr)],
        spare: Option<NodeId>,
        want: &FetchRequest,
        sink: &(dyn Fn(u64, Bytes) + Sync),
        resume: bool,
    ) -> Result<(), FetchError> {
        if providers.is_empty() {
            return Err(FetchError::NoProviders);
        }
        let delivered = AtomicU64::new(0);
        let tracking = |offset: u64, bytes: Bytes| {
            delivered.fetch_max(offset + bytes.len() as u64, Ordering::Relaxed);
            sink(offset, bytes);
        };
        let mut failures = Vec::new();
        for (node, addr) in self.rank(providers, want.size, spare) {
            let peer = self.peer(node);
            let attempt = self.attempt_any(&peer, node, addr, want, &tracking);
            let result = match tokio::time::timeout(self.config.attempt_timeout, attempt).await {
                Ok(r) => r,
                Err(_) => Err(AttemptError::Timeout(self.config.attempt_timeout)),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(err) => {
                    tracing::debug!(provider = %node.short(), %addr, %err, "provider failed");
                    let weight = match &err {
                        // Lacking a segment or being busy is no fault; try others first anyway.
                        AttemptError::Status(
                            Status::NotFound | Status::Busy | Status::Forbidden,
                        ) => 1,
                        e if e.is_misbehaviour() => 8,
                        _ => 2,
                    };
                    lock(&peer.stats).record_failure(weight);
                    if err.is_misbehaviour() {
                        // Not reused; it closes when its last handle goes (a corruption
                        // report still under way holds one until acknowledged).
                        drop(peer.conn.lock().await.take());
                    }
                    let stop = !resume && err.is_bad_data();
                    failures.push((node, err));
                    if stop && delivered.load(Ordering::Relaxed) > 0 {
                        break;
                    }
                }
            }
        }
        Err(FetchError::AllFailed(failures))
    }

    /// Fetches `want` and stores it (the store checks the hash once more). Returns the bytes.
    pub async fn fetch_into_store(
        &self,
        providers: &[(NodeId, SocketAddr)],
        want: &FetchRequest,
        store: &Store,
    ) -> Result<Bytes, FetchError> {
        let bytes = self.fetch_request(providers, want).await?;
        let store = store.clone();
        let expected = want.expected;
        let to_store = bytes.clone();
        tokio::task::spawn_blocking(move || store.put_segment(&to_store, Some(&expected)))
            .await
            .map_err(|e| FetchError::Setup(format!("store task failed: {e}")))??;
        Ok(bytes)
    }

    /// What the fetcher has learnt about `node`, if it has tried it.
    pub fn stats(&self, node: &NodeId) -> Option<ProviderStats> {
        let peers = lock(&self.peers);
        peers.get(node).map(|p| *lock(&p.stats))
    }

    /// Connections currently open to providers (one per provider in use).
    pub fn open_connections(&self) -> usize {
        self.endpoint.open_connections()
    }

    /// Closes every connection and the endpoint, waiting (bounded) for the close to be sent.
    pub async fn close(&self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(CLOSE_OK), b"closing");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    /// Providers, best first (stable: ties keep the caller's order).
    fn rank(
        &self,
        providers: &[(NodeId, SocketAddr)],
        size: Option<u64>,
        spare: Option<NodeId>,
    ) -> Vec<(NodeId, SocketAddr)> {
        let now = Instant::now();
        let size = size.unwrap_or(TYPICAL_SEGMENT);
        let peers = lock(&self.peers);
        let mut scored: Vec<(f64, NodeId, SocketAddr)> = providers
            .iter()
            .map(|&(node, addr)| {
                let cost = match peers.get(&node) {
                    Some(p) => {
                        let limit = self.config.max_inflight_per_peer.max(1);
                        let busy = limit.saturating_sub(p.permits.available_permits());
                        lock(&p.stats).cost(size, busy as f64 / limit as f64, now)
                    }
                    None => ProviderStats::default().cost(size, 0.0, now),
                };
                let cost = if spare == Some(node) {
                    cost * SPARE_PENALTY
                } else {
                    cost
                };
                (cost, node, addr)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut seen = std::collections::HashSet::new();
        scored
            .into_iter()
            .filter(|(_, node, _)| seen.insert(*node))
            .map(|(_, node, addr)| (node, addr))
            .collect()
    }

    fn peer(&self, node: NodeId) -> Arc<Peer> {
        let mut peers = lock(&self.peers);
        if peers.len() >= MAX_PEERS && !peers.contains_key(&node) {
            // Forget providers nobody is using right now.
            peers.retain(|_, p| Arc::strong_count(p) > 1);
        }
        Arc::clone(peers.entry(node).or_insert_with(|| {
            Arc::new(Peer {
                conn: tokio::sync::Mutex::new(None),
                quic_down_until: Mutex::new(None),
                permits: Arc::new(Semaphore::new(self.config.max_inflight_per_peer.max(1))),
                stats: Mutex::new(ProviderStats::default()),
            })
        }))
    }

    /// The cached connection to `node` at `addr`, dialling if there is none (or it died, or
    /// the node moved).
    async fn connection(
        &self,
        peer: &Peer,
        node: NodeId,
        addr: SocketAddr,
    ) -> Result<quinn::Connection, AttemptError> {
        let mut slot = peer.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            if conn.close_reason().is_none() && conn.remote_address() == addr {
                return Ok(conn.clone());
            }
        }
        *slot = None;
        let client = lock(&self.client).clone();
        let conn = self
            .endpoint
            .connect_with(client, addr, &tls::server_name(&node))?
            .await?;
        tracing::debug!(provider = %node.short(), %addr, "connected");
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// One provider: over QUIC, or over libp2p when QUIC cannot reach it (with a fallback).
    async fn attempt_any(
        &self,
        peer: &Peer,
        node: NodeId,
        addr: SocketAddr,
        want: &FetchRequest,
        sink: Sink<'_>,
    ) -> Result<(), AttemptError> {
        let Some(network) = self.fallback.get() else {
            return self.attempt(peer, node, addr, want, sink).await;
        };
        let down = lock(&peer.quic_down_until).is_some_and(|t| Instant::now() < t);
        if down {
            return self.attempt_p2p(network, peer, node, want, sink).await;
        }
        // Happy eyeballs: QUIC gets a head start; if it has not answered by then, the same
        // request also goes over libp2p and the first complete verified answer wins (both
        // feed the sink, which keeps the verified prefix).
        let quic = self.attempt(peer, node, addr, want, sink);
        tokio::pin!(quic);
        let quic_early = tokio::select! {
            r = &mut quic => Some(r),
            () = tokio::time::sleep(self.config.quic_fallback_after) => None,
        };
        match quic_early {
            Some(Err(AttemptError::QuicUnreachable(reason))) => {
                self.quic_down(peer, node, addr, &reason);
                return self.attempt_p2p(network, peer, node, want, sink).await;
            }
            Some(other) => return other,
            None => {}
        }
        let p2p = self.attempt_p2p(network, peer, node, want, sink);
        tokio::pin!(p2p);
        let (mut quic_err, mut p2p_err) = (None, None);
        loop {
            tokio::select! {
                r = &mut quic, if quic_err.is_none() => match r {
                    Ok(()) => return Ok(()),
                    Err(err) => {
                        if let AttemptError::QuicUnreachable(reason) = &err {
                            self.quic_down(peer, node, addr, reason);
                        }
                        quic_err = Some(err);
                    }
                },
                r = &mut p2p, if p2p_err.is_none() => match r {
                    Ok(()) => {
                        // QUIC lost the race: skip it for a while rather than pay its
                        // head start on every request.
                        self.quic_down(peer, node, addr, "libp2p answered first");
                        return Ok(());
                    }
                    Err(err) => p2p_err = Some(err),
                },
            }
            if let (Some(q), Some(p)) = (&quic_err, &p2p_err) {
                // Both failed: report misbehaviour over anything else, then QUIC's own
                // failure unless it was only unreachable.
                let quic_first = q.is_misbehaviour()
                    || !(p.is_misbehaviour() || matches!(q, AttemptError::QuicUnreachable(_)));
                return Err(if quic_first {
                    quic_err.take()
                } else {
                    p2p_err.take()
                }
                .unwrap_or(AttemptError::P2p("no answer".into())));
            }
        }
    }

    fn quic_down(&self, peer: &Peer, node: NodeId, addr: SocketAddr, reason: &str) {
        let mut until = lock(&peer.quic_down_until);
        if until.is_none_or(|t| t <= Instant::now()) {
            tracing::info!(provider = %node.short(), %addr, %reason, "QUIC skipped for {QUIC_RETRY_AFTER:?}; asking over libp2p");
        }
        *until = Some(Instant::now() + QUIC_RETRY_AFTER);
    }

    async fn attempt_p2p(
        &self,
        network: &crate::swarm::NetworkHandle,
        peer: &Peer,
        node: NodeId,
        want: &FetchRequest,
        sink: Sink<'_>,
    ) -> Result<(), AttemptError> {
        let _permit = peer
            .permits
            .acquire()
            .await
            .map_err(|_| AttemptError::Status(Status::Busy))?;
        let peer_id =
            crate::swarm::peer_id_of(&node).map_err(|e| AttemptError::P2p(e.to_string()))?;
        let started = Instant::now();
        let fetched = network
            .fetch_segment(peer_id, Vec::new(), want.request)
            .await
            .map_err(|e| AttemptError::P2p(e.to_string()))?;
        let header_at = Instant::now();
        let body = verify(&fetched.response, want)?;
        let len = body.len() as u64;
        sink(0, body);
        lock(&peer.stats).record_success(header_at.duration_since(started), len, Duration::ZERO);
        let path = if fetched.relayed { 2 } else { 1 };
        self.path_bytes[path].fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    async fn attempt(
        &self,
        peer: &Peer,
        node: NodeId,
        addr: SocketAddr,
        want: &FetchRequest,
        sink: Sink<'_>,
    ) -> Result<(), AttemptError> {
        let _permit = peer
            .permits
            .acquire()
            .await
            .map_err(|_| AttemptError::Status(Status::Busy))?;
        let conn = if self.fallback.get().is_some() {
            // With a fallback, a handshake that does not complete soon means "go over
            // libp2p", not "this provider failed".
            let limit = QUIC_HANDSHAKE_LIMIT;
            match tokio::time::timeout(limit, self.connection(peer, node, addr)).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(err)) => return Err(AttemptError::QuicUnreachable(err.to_string())),
                Err(_) => {
                    return Err(AttemptError::QuicUnreachable(format!(
                        "no handshake within {limit:?}"
                    )))
                }
            }
        } else {
            self.connection(peer, node, addr).await?
        };
        let frame =
            encode_request(&want.request).map_err(|e| AttemptError::Encode(e.to_string()))?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let started = Instant::now();
        send.write_all(&frame).await?;
        send.finish()?;
        let response = read_response(&mut recv, want, sink).await;
        if let Err(
            AttemptError::HashMismatch { .. }
            | AttemptError::BadGroup { .. }
            | AttemptError::BadOutboard(_),
        ) = &response
        {
            report_corrupt(conn.clone(), want);
        }
        let (len, header_at) = response?;
        let done = Instant::now();
        self.path_bytes[0].fetch_add(len, Ordering::Relaxed);
        lock(&peer.stats).record_success(
            header_at.duration_since(started),
            len,
            done.duration_since(header_at),
        );
        Ok(())
    }
}

/// Longest wait for the provider to acknowledge a corruption report. The report holds the
/// connection open until then (the fetch itself has moved on), and ends early if the
/// fetcher's endpoint is closed.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Tells the provider that its answer to `want` failed the hash check (a
/// [`CorruptReport`] on a unidirectional stream), so it re-checks its stored copy: the
/// server sends without re-hashing and relies on this report to find rot.
///
/// Delivery is acknowledged, not best effort: the provider stops the stream with
/// [`REPORT_ACK`](super::server::REPORT_ACK) once it has read and decided the report. The
/// stream is never finished from this side (a finished stream's data being acknowledged by
/// QUIC says nothing about the provider having read it). The report runs on its own task
/// holding a handle to the connection, so the connection stays open until the
/// acknowledgement arrives (or [`REPORT_TIMEOUT`]) even though the failed fetch has dropped
/// it from the cache; the last handle dropped closes it.
fn report_corrupt(conn: quinn::Connection, want: &FetchRequest) {
    let report = CorruptReport {
        request: want.request,
        expected: want.expected,
    };
    let segment = want.expected;
    let send = async move {
        let frame = encode_report(&report).map_err(|e| e.to_string())?;
        let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
        send.write_all(&frame).await.map_err(|e| e.to_string())?;
        match send.stopped().await {
            Ok(Some(code)) => Ok(code),
            Ok(None) => Err("stream finished without an acknowledgement".to_owned()),
            Err(err) => Err(err.to_string()),
        }
    };
    let task = async move {
        match tokio::time::timeout(REPORT_TIMEOUT, send).await {
            Ok(Ok(_)) => {
                tracing::info!(%segment, "provider acknowledged the report of a corrupt answer")
            }
            Ok(Err(err)) => tracing::warn!(%segment, %err, "cannot report a corrupt answer"),
            Err(_) => tracing::warn!(%segment, "corruption report not acknowledged in time"),
        }
        Ok::<(), std::convert::Infallible>(())
    };
    drop(reelnet_runtime::shutdown::spawn("corruption-report", task));
}

/// Where verified bytes go: `(offset, bytes)`.
type Sink<'a> = &'a (dyn Fn(u64, Bytes) + Sync);

/// Appends to `prefix` the part of `bytes` (at `offset`) beyond it; bytes that would leave
/// a gap are ignored (cannot happen: every attempt delivers its groups in order from 0).
pub fn extend_prefix(prefix: &mut BytesMut, offset: u64, bytes: &[u8]) {
    let have = prefix.len() as u64;
    let end = offset + bytes.len() as u64;
    if offset <= have && end > have {
        let skip = usize::try_from(have - offset).unwrap_or(0);
        prefix.extend_from_slice(&bytes[skip..]);
    }
}

/// Reads and checks a response, handing each run of verified groups to `sink`: how many
/// body bytes arrived and when the header did.
async fn read_response(
    recv: &mut quinn::RecvStream,
    want: &FetchRequest,
    sink: Sink<'_>,
) -> Result<(u64, Instant), AttemptError> {
    // The header: read no further than the largest header frame, so no body bytes are
    // pulled into this buffer.
    let mut head = BytesMut::with_capacity(FRAME_PREFIX_LEN + MAX_RESPONSE_HEADER);
    let header = loop {
        if let Some((header, used)) = decode_response_header(&head)? {
            if used != head.len() {
                // Cannot happen: reads stop at the frame's end.
                return Err(AttemptError::TrailingBytes);
            }
            break header;
        }
        let missing = match head.get(..FRAME_PREFIX_LEN) {
            Some(prefix) => {
                let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                FRAME_PREFIX_LEN + len as usize - head.len()
            }
            None => FRAME_PREFIX_LEN - head.len(),
        };
        match recv.read_chunk(missing, true).await? {
            Some(chunk) => head.extend_from_slice(&chunk.bytes),
            None => {
                return Err(AttemptError::Truncated {
                    got: 0,
                    expected: 0,
                })
            }
        }
    };
    let header_at = Instant::now();
    check_header(&header, want)?;
    // decode_response_header already refuses lengths above MAX_SEGMENT_BYTES; checked again
    // here because the allocation below depends on it.
    if header.length > MAX_SEGMENT_BYTES {
        return Err(AttemptError::SizeMismatch {
            announced: header.length,
            expected: MAX_SEGMENT_BYTES,
        });
    }
    let len = usize::try_from(header.length).map_err(|_| AttemptError::SizeMismatch {
        announced: header.length,
        expected: MAX_SEGMENT_BYTES,
    })?;
    // The outboard (bounded: `len` is at most MAX_SEGMENT_BYTES), checked against the hash
    // before any body byte is read.
    let ob_len = outboard::outboard_len(header.length);
    let mut ob = BytesMut::with_capacity(ob_len);
    while ob.len() < ob_len {
        match recv.read_chunk(ob_len - ob.len(), true).await? {
            Some(chunk) => ob.extend_from_slice(&chunk.bytes),
            None => {
                return Err(AttemptError::Truncated {
                    got: 0,
                    expected: header.length,
                })
            }
        }
    }
    let ob =
        Outboard::decode(&ob, header.length, &want.expected).map_err(AttemptError::BadOutboard)?;
    let mut body = GroupStream::new(&ob, want.expected, sink);
    while body.received < len {
        match recv.read_chunk(len - body.received, true).await? {
            Some(chunk) => body.push(chunk.bytes)?,
            None => {
                return Err(AttemptError::Truncated {
                    got: body.received as u64,
                    expected: header.length,
                })
            }
        }
    }
    if recv.read_chunk(1, true).await?.is_some() {
        return Err(AttemptError::TrailingBytes);
    }
    body.finish()?;
    Ok((header.length, header_at))
}

/// Checks body bytes group by group as they arrive and passes verified runs on.
struct GroupStream<'a> {
    outboard: &'a Outboard,
    root: SegmentHash,
    sink: Sink<'a>,
    /// Bytes of an incomplete group.
    pending: BytesMut,
    /// The next group to check.
    group: usize,
    /// Bytes handed to the sink.
    verified: u64,
    /// Body bytes received.
    received: usize,
}

impl<'a> GroupStream<'a> {
    fn new(outboard: &'a Outboard, root: SegmentHash, sink: Sink<'a>) -> Self {
        Self {
            outboard,
            root,
            sink,
            pending: BytesMut::new(),
            group: 0,
            verified: 0,
            received: 0,
        }
    }

    fn group_len(&self) -> usize {
        let (s, e) = outboard::group_range(self.outboard.size(), self.group);
        e - s
    }

    fn check(&mut self, data: &[u8]) -> Result<(), AttemptError> {
        if self.outboard.verify_group(&self.root, self.group, data) {
            self.group += 1;
            Ok(())
        } else {
            Err(AttemptError::BadGroup {
                index: self.group,
                offset: self.verified,
            })
        }
    }

    fn emit(&mut self, bytes: Bytes) {
        let len = bytes.len() as u64;
        (self.sink)(self.verified, bytes);
        self.verified += len;
    }

    /// Takes the next bytes of the body (never more than announced).
    fn push(&mut self, mut data: Bytes) -> Result<(), AttemptError> {
        self.received += data.len();
        if !self.pending.is_empty() {
            let need = self.group_len() - self.pending.len();
            let take = need.min(data.len());
            self.pending.extend_from_slice(&data.split_to(take));
            if self.pending.len() == self.group_len() {
                let group = self.pending.split().freeze();
                self.check(&group)?;
                self.emit(group);
            }
        }
        // Whole groups straight from the received bytes, passed on as one run.
        let mut run = 0;
        loop {
            let glen = self.group_len();
            if glen == 0 || data.len() - run < glen {
                break;
            }
            let ok = self
                .outboard
                .verify_group(&self.root, self.group, &data[run..run + glen]);
            if !ok {
                if run > 0 {
                    self.emit(data.split_to(run));
                }
                return Err(AttemptError::BadGroup {
                    index: self.group,
                    offset: self.verified,
                });
            }
            self.group += 1;
            run += glen;
        }
        if run > 0 {
            self.emit(data.split_to(run));
        }
        if !data.is_empty() {
            self.pending.extend_from_slice(&data);
        }
        Ok(())
    }

    /// After the last byte: an empty segment is checked against the hash here.
    fn finish(&mut self) -> Result<(), AttemptError> {
        if self.outboard.size() == 0 {
            self.check(&[])?;
        }
        if self.verified != self.outboard.size() {
            return Err(AttemptError::Truncated {
                got: self.verified,
                expected: self.outboard.size(),
            });
        }
        Ok(())
    }
}

/// Checks an answer that arrived whole (over libp2p) the way [`read_response`] checks one
/// arriving over QUIC: status, announced hash and length, the outboard, then the bytes.
fn verify(res: &crate::swarm::SegmentResponse, want: &FetchRequest) -> Result<Bytes, AttemptError> {
    let header = &res.header;
    check_header(header, want)?;
    if res.body.len() as u64 != header.length {
        return Err(AttemptError::Truncated {
            got: res.body.len() as u64,
            expected: header.length,
        });
    }
    let ob = Outboard::decode(&res.outboard, header.length, &want.expected)
        .map_err(AttemptError::BadOutboard)?;
    let mut stream = GroupStream::new(&ob, want.expected, &|_, _| {});
    stream.push(res.body.clone())?;
    stream.finish()?;
    Ok(res.body.clone())
}

/// The checks every answer's header passes before its body is used, whatever carried it:
/// status `Ok`, the hash asked for, and the manifest's size when it gives one.
fn check_header(header: &ResponseHeader, want: &FetchRequest) -> Result<(), AttemptError> {
    if header.status != Status::Ok {
        return Err(AttemptError::Status(header.status));
    }
    if header.hash != want.expected {
        return Err(AttemptError::AnnouncedHashMismatch {
            announced: header.hash,
            expected: want.expected,
        });
    }
    if let Some(size) = want.size {
        if header.length != size {
            return Err(AttemptError::SizeMismatch {
                announced: header.length,
                expected: size,
            });
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
