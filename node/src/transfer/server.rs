//! The segment server: answers segment requests from the local store over QUIC.
//!
//! One accept loop owns the endpoint and a `JoinSet` of connection tasks (each with its own
//! span); each connection task owns a `JoinSet` of stream tasks, one per request. A request is
//! resolved through the stored manifest — `Init`, `Index(i)`, or `Hash(h)`, which must be
//! listed in that manifest. The answer is the header frame, the segment's outboard, then the
//! body (`reelnet_proto::transfer`). Over QUIC the stored bytes are sent as they are
//! ([`Store::read_unchecked_with_outboard`]: only the outboard is checked against the hash):
//! the receiver verifies every 16 KiB group, and a receiver whose check fails says so on a
//! unidirectional stream ([`reelnet_proto::CorruptReport`]), upon which the copy is re-read
//! with the hash check ([`Store::check_segment`]) and dropped if corrupt. A report is
//! acknowledged (its stream stopped with [`REPORT_ACK`]) once it is read and decided, and
//! the re-check runs on one worker task that outlives the reporter's connection; what
//! reports may cost is bounded per peer by [`super::reports::ReportGate`]. Requests over the
//! libp2p fallback (no report path) are read through [`Store::read_with_outboard`], which
//! checks them group by group, so a corrupt file is never served there (it becomes `NotFound`).
//!
//! Limits, so one peer cannot take everything ([`Limits`]):
//! - streams per connection: QUIC stream credit (`max_concurrent_bidi_streams`), so a peer
//!   simply waits for credit;
//! - connections per peer `NodeId` and connections overall: extra connections are closed
//!   with [`CLOSE_BUSY`](super::CLOSE_BUSY) or refused;
//! - responses in flight overall: a semaphore; when it is exhausted the answer is `Busy`, so
//!   the client tries another provider instead of queueing here;
//! - time: reading the request and sending the response each have a deadline.
//!
//! Shutdown, in order: stop accepting connections, stop accepting streams, let in-flight
//! responses finish within [`Limits::shutdown_grace`] (then abort them), close connections,
//! close the endpoint and wait (bounded) for it to go idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use reelnet_proto::transfer::FRAME_PREFIX_LEN;
use reelnet_proto::{
    decode_report, decode_request, encode_response_header, Manifest, ManifestId, NodeId,
    P2pSegmentRequest, ResponseHeader, SegmentHash, SegmentRequest, Status, MAX_REQUEST_FRAME,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::reports::{ReportGate, Verdict};
use super::{tls, TlsError, TransportTuning, CLOSE_BUSY, CLOSE_OK};
use crate::store::Store;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("invalid QUIC transport setting (check the transfer limits): {0}")]
    Config(String),
    #[error("cannot listen on UDP {addr} (transfer listen address): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no async runtime for QUIC: start the server inside a tokio runtime")]
    NoRuntime,
}

/// Bounds on what the server gives to its peers.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, over all peers.
    pub max_connections: usize,
    /// Connections one peer (`NodeId`) may hold at once.
    pub max_connections_per_peer: usize,
    /// Requests one connection may have in flight (QUIC stream credit).
    pub max_streams_per_connection: u32,
    /// Responses being prepared or sent at once, over all peers; beyond it, `Busy`.
    pub max_inflight: usize,
    /// Time a client has to send its whole request frame.
    pub request_timeout: Duration,
    /// Time to send one response (a stalled reader is cut off after it).
    pub response_timeout: Duration,
    /// Time in-flight responses get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// QUIC transport parameters.
    pub transport: TransportTuning,
    /// Hash every segment again before sending it over QUIC (the behaviour before receivers
    /// reported failed checks back). Off: receivers verify every byte and report, so the
    /// re-hash is redundant; kept for the benchmark's side-by-side figure.
    pub verify_sends: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_peer: 4,
            max_streams_per_connection: 32,
            max_inflight: 256,
            request_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            transport: TransportTuning::default(),
            verify_sends: false,
        }
    }
}

/// The quinn server configuration of a node (TLS bound to `key`, transport from `limits`).
/// Public so tests and tools can run their own endpoint with a node's identity.
pub fn server_config(
    key: &SigningKey,
    limits: &Limits,
) -> Result<quinn::ServerConfig, ServerError> {
    server_config_with(key, limits, None)
}

/// [`server_config`] presenting this node's membership and admitting only members.
pub fn server_config_with(
    key: &SigningKey,
    limits: &Limits,
    member: tls::MemberCheck,
) -> Result<quinn::ServerConfig, ServerError> {
    let crypto = tls::quic_server_crypto(key, member)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let transport = limits
        .transport
        .transport_config(limits.max_streams_per_connection, REPORT_STREAMS, false)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    config.transport_config(transport);
    Ok(config)
}

/// Manifests seen recently, by id; a manifest never changes under its id.
const MANIFEST_CACHE: usize = 256;

/// Corruption reports one connection may have open at once (QUIC unidirectional stream
/// credit). What they cost is bounded by [`ReportGate`] and the one re-check worker.
const REPORT_STREAMS: u32 = 2;

/// Re-checks waiting for the re-check worker; beyond it reports are dropped.
const RECHECK_QUEUE: usize = 64;

/// QUIC stream stop code with which the server acknowledges a corruption report once it
/// has read and decided it (re-check queued, or dropped by policy). The fetcher keeps its
/// connection open until it sees it.
pub const REPORT_ACK: u32 = 0;

/// What every connection and stream task shares.
struct Ctx {
    store: Store,
    limits: Limits,
    key: SigningKey,
    /// Membership (`None`: not checked; tests of the transfer layer alone).
    member: tls::MemberCheck,
    /// How many top video renditions are premium (never served to open members).
    premium_renditions: usize,
    inflight: Arc<Semaphore>,
    per_peer: Mutex<HashMap<NodeId, usize>>,
    /// Requests in flight per peer over the libp2p fallback (its "streams per connection").
    p2p_per_peer: Mutex<HashMap<NodeId, usize>>,
    manifests: Mutex<HashMap<ManifestId, Arc<Manifest>>>,
    /// Which corruption reports make the store re-hash a copy ([`super::reports`]).
    gate: Mutex<ReportGate>,
    /// Re-checks admitted by the gate, for the one re-check worker.
    recheck: mpsc::Sender<SegmentHash>,
    reports: ReportCounters,
    /// Segment body bytes delivered over QUIC (the peer has them: the stream finished).
    uploaded: UploadCounter,
}

/// Segment body bytes this node's QUIC server has delivered to peers since start; read by
/// `/metrics` (`reelnet_segment_bytes_uploaded_total{path="quic"}`). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct UploadCounter(Arc<std::sync::atomic::AtomicU64>);

impl UploadCounter {
    /// Bytes delivered so far.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Corruption reports received and what became of them (see [`TransferServer::report_stats`]).
#[derive(Debug, Default)]
struct ReportCounters {
    received: AtomicU64,
    admitted: AtomicU64,
    duplicate: AtomicU64,
    refused: AtomicU64,
}

/// What the server did with the corruption reports it received since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportStats {
    /// Well-formed reports read (and acknowledged).
    pub received: u64,
    /// Reports that queued a re-hash of the stored copy.
    pub admitted: u64,
    /// Reports about a copy whose re-check was already queued, or that was re-checked and
    /// found good a moment before: nothing more done.
    pub duplicate: u64,
    /// Reports dropped: the peer's re-check budget was used up, the re-check queue was
    /// full, or the report named nothing stored here.
    pub refused: u64,
}

/// Why a request over the libp2p fallback gets no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The requester is not a member (no certificate, a forged or revoked one, another
    /// network's): the same peers the QUIC server refuses in the TLS handshake.
    #[error("the requester is not a member: {0}")]
    NotMember(reelnet_proto::membership::MembershipError),
}

/// The segment service as the libp2p fallback reaches it ([`TransferServer::service`]).
/// Cheap to clone.
#[derive(Clone)]
pub struct SegmentService {
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for SegmentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentService").finish_non_exhaustive()
    }
}

/// Counts one in-flight libp2p request of a peer while alive.
struct P2pSlot {
    ctx: Arc<Ctx>,
    node: NodeId,
}

impl Drop for P2pSlot {
    fn drop(&mut self) {
        let mut map = self
            .ctx
            .p2p_per_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.node) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.node);
            }
        }
    }
}

impl SegmentService {
    /// Answers `req` from `peer` (the node whose key authenticated the libp2p connection).
    ///
    /// The same rules as over QUIC: only members with a valid certificate for that node id
    /// (otherwise [`Refused`], and the caller drops the request); at most
    /// `max_streams_per_connection` requests of one peer in flight and `max_inflight`
    /// overall, shared with the QUIC server (beyond them the answer is `Busy`); premium
    /// renditions never to open members; bytes read through the store, which checks their
    /// hash.
    pub async fn answer(
        &self,
        peer: NodeId,
        req: &P2pSegmentRequest,
    ) -> Result<crate::swarm::SegmentResponse, Refused> {
        use crate::swarm::SegmentResponse;
        let ctx = &self.ctx;
        let open_peer = match &ctx.member {
            Some(member) => {
                let cert = member
                    .borrow()
                    .check(&req.certificate, &peer)
                    .map_err(Refused::NotMember)?;
                cert.open
            }
            None => false,
        };
        let _slot = {
            let mut map = ctx.p2p_per_peer.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(peer).or_insert(0);
            if *n >= ctx.limits.max_streams_per_connection as usize {
                return Ok(SegmentResponse::error(Status::Busy));
            }
            *n += 1;
            P2pSlot {
                ctx: Arc::clone(ctx),
                node: peer,
            }
        };
        let Ok(_permit) = Arc::clone(&ctx.inflight).try_acquire_owned() else {
            return Ok(SegmentResponse::error(Status::Busy));
        };
        // No report path over libp2p: read with the hash check.
        match ctx.answer(&req.request, open_peer, true).await {
            Ok((hash, outboard, body)) => Ok(SegmentResponse {
                header: ResponseHeader::ok(body.len() as u64, hash),
                outboard,
                body,
            }),
            Err(status) => {
                tracing::debug!(request = ?req.request, ?status, "libp2p request not served");
                Ok(SegmentResponse::error(status))
            }
        }
    }
}

/// Counts one connection of a peer while alive.
struct PeerSlot {
    ctx: Arc<Ctx>,
    node: NodeId,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.ctx.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.node) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.node);
            }
        }
    }
}

impl Ctx {
    fn take_peer_slot(self: &Arc<Self>, node: NodeId) -> Option<PeerSlot> {
        let mut map = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(node).or_insert(0);
        if *n >= self.limits.max_connections_per_peer {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            ctx: Arc::clone(self),
            node,
        })
    }

    async fn manifest(&self, id: ManifestId) -> Result<Option<Arc<Manifest>>, Status> {
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Some(Arc::clone(m)));
        }
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.manifest(&id))
            .await
            .map_err(|_| Status::Internal)?
            .map_err(|err| {
                tracing::error!(%err, manifest = %id, "cannot read manifest");
                Status::Internal
            })?;
        let Some(stored) = found else {
            return Ok(None);
        };
        let manifest = Arc::new(stored.manifest);
        let mut cache = self.manifests.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MANIFEST_CACHE {
            cache.clear();
        }
        cache.insert(id, Arc::clone(&manifest));
        Ok(Some(manifest))
    }

    /// Resolves and reads the requested segment: its hash, outboard and bytes, or the status
    /// to answer with. With `check`, the bytes are verified group by group first (a corrupt
    /// copy is dropped and answered `NotFound`); without, they are the stored bytes as they
    /// are, for a receiver that verifies them and reports a failure back (QUIC).
    async fn answer(
        &self,
        req: &SegmentRequest,
        open_peer: bool,
        check: bool,
    ) -> Result<(SegmentHash, Bytes, Bytes), Status> {
        let manifest = self.manifest(req.manifest).await?.ok_or(Status::NotFound)?;
        if open_peer
            && reelnet_proto::manifest::premium_tracks(&manifest, self.premium_renditions)
                .get(usize::from(req.track))
                .copied()
                .unwrap_or(false)
        {
            return Err(Status::Forbidden);
        }
        let entry = manifest
            .resolve(req.track, &req.segment)
            .ok_or(Status::BadRequest)?;
        let hash = entry.hash;
        let store = self.store.clone();
        let (bytes, outboard) = tokio::task::spawn_blocking(move || {
            if check {
                store
                    .read_with_outboard(&hash)
                    .map(|r| r.map(|(b, ob)| (Bytes::from(b), ob)))
            } else {
                store.read_unchecked_with_outboard(&hash)
            }
        })
        .await
        .map_err(|_| Status::Internal)?
        .map_err(|err| {
            tracing::error!(%err, %hash, "cannot read segment");
            Status::Internal
        })?
        .ok_or(Status::NotFound)?;
        Ok((hash, Bytes::from(outboard.to_bytes()), bytes))
    }
}

/// A running segment server. [`shutdown`](Self::shutdown) asks it to stop;
/// [`join`](Self::join) waits until it has.
pub struct TransferServer {
    ctx: Arc<Ctx>,
    node_id: NodeId,
    local_addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
}

impl TransferServer {
    /// Binds a UDP socket on `addr` (port 0 picks one) and starts serving `store` as the node
    /// owning `key`. Returns the server and the address it listens on.
    pub fn bind(
        addr: SocketAddr,
        key: &SigningKey,
        store: Store,
        limits: Limits,
    ) -> Result<(Self, SocketAddr), ServerError> {
        Self::bind_with(addr, key, store, limits, None, 0)
    }

    /// [`bind`](Self::bind) as a network member: presents `membership`'s certificate
    /// (following its renewals), admits only members, closes a peer's connections when it
    /// is revoked, and refuses the top `premium_renditions` video renditions to open
    /// members.
    pub fn bind_with(
        addr: SocketAddr,
        key: &SigningKey,
        store: Store,
        limits: Limits,
        membership: Option<&crate::membership::Membership>,
        premium_renditions: usize,
    ) -> Result<(Self, SocketAddr), ServerError> {
        let member = membership.map(|m| m.subscribe());
        let config = server_config_with(key, &limits, member.clone())?;
        let endpoint_config = limits
            .transport
            .endpoint_config()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let bind_err = |source| ServerError::Bind { addr, source };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let runtime = quinn::default_runtime().ok_or(ServerError::NoRuntime)?;
        let endpoint = quinn::Endpoint::new(endpoint_config, Some(config), socket, runtime)
            .map_err(bind_err)?;
        let local_addr = endpoint.local_addr().map_err(bind_err)?;
        let node_id = NodeId::from_verifying_key(&key.verifying_key());
        let cancel = CancellationToken::new();
        let (recheck, rechecks) = mpsc::channel(RECHECK_QUEUE);
        let ctx = Arc::new(Ctx {
            store,
            key: key.clone(),
            member,
            premium_renditions,
            inflight: Arc::new(Semaphore::new(limits.max_inflight)),
            limits,
            per_peer: Mutex::new(HashMap::new()),
            p2p_per_peer: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            uploaded: UploadCounter::default(),
            gate: Mutex::new(ReportGate::default()),
            recheck,
            reports: ReportCounters::default(),
        });
        let worker = reelnet_runtime::shutdown::spawn(
            "transfer-recheck",
            recheck_worker(rechecks, Arc::clone(&ctx), cancel.clone())
                .instrument(tracing::info_span!("recheck", node = %node_id.short())),
        );
        let task = reelnet_runtime::shutdown::spawn(
            "transfer-server",
            accept_loop(endpoint, Arc::clone(&ctx), cancel.clone()).instrument(
                tracing::info_span!(
                    "transfer",
                    node = %node_id.short(),
                    %local_addr
                ),
            ),
        );
        tracing::info!(%local_addr, "segment service listening");
        Ok((
            Self {
                ctx,
                node_id,
                local_addr,
                cancel,
                task,
                worker,
            },
            local_addr,
        ))
    }

    /// The node this server answers as.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The same service for the libp2p fallback (`/reelnet/segment/2`): same store,
    /// membership check, limits and premium rule.
    pub fn service(&self) -> SegmentService {
        SegmentService {
            ctx: Arc::clone(&self.ctx),
        }
    }

    /// The count of segment bytes this server has delivered to peers.
    pub fn uploaded(&self) -> UploadCounter {
        self.ctx.uploaded.clone()
    }

    /// The UDP address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Asks the server to stop (idempotent); see the module docs for the order.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Waits until the server has stopped (after [`shutdown`](Self::shutdown)).
    pub async fn join(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "segment server task panicked");
        }
        if let Err(err) = self.worker.await {
            tracing::error!(%err, "re-check worker panicked");
        }
    }

    /// The corruption reports received since start and what became of them.
    pub fn report_stats(&self) -> ReportStats {
        let c = &self.ctx.reports;
        ReportStats {
            received: c.received.load(Ordering::Relaxed),
            admitted: c.admitted.load(Ordering::Relaxed),
            duplicate: c.duplicate.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// [`shutdown`](Self::shutdown) then [`join`](Self::join).
    pub async fn shutdown_and_join(self) {
        self.shutdown();
        self.join().await;
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    ctx: Arc<Ctx>,
    cancel: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut conns = JoinSet::new();
    let mut changes = ctx.member.clone();
    let mut presented = tls::own_membership(&ctx.member);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Ok(()) = async {
                match changes.as_mut() {
                    Some(c) => c.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                // A renewed certificate: new handshakes present it.
                let now = tls::own_membership(&ctx.member);
                if now != presented {
                    match server_config_with(&ctx.key, &ctx.limits, ctx.member.clone()) {
                        Ok(config) => {
                            endpoint.set_server_config(Some(config));
                            presented = now;
                            tracing::info!("segment service presents the renewed membership certificate");
                        }
                        Err(err) => tracing::error!(%err, "cannot rebuild the TLS configuration"),
                    }
                }
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let remote = incoming.remote_address();
                if conns.len() >= ctx.limits.max_connections {
                    tracing::debug!(%remote, "connection limit reached; refusing");
                    incoming.refuse();
                    continue;
                }
                let span = tracing::info_span!("conn", %remote, peer = tracing::field::Empty);
                conns.spawn(
                    serve_connection(incoming, Arc::clone(&ctx), cancel.clone()).instrument(span),
                );
            }
            Some(done) = conns.join_next(), if !conns.is_empty() => log_join(done),
        }
    }
    // 1. No new connections.
    endpoint.set_server_config(None);
    // 2. Connection tasks saw the same token: they stop taking streams and drain theirs.
    let drain = async {
        while let Some(done) = conns.join_next().await {
            log_join(done);
        }
    };
    let deadline = ctx.limits.shutdown_grace + Duration::from_secs(1);
    if tokio::time::timeout(deadline, drain).await.is_err() {
        tracing::warn!("connections still open after the shutdown deadline; aborting them");
        conns.shutdown().await;
    }
    // 3. The endpoint.
    endpoint.close(quinn::VarInt::from_u32(CLOSE_OK), b"shutdown");
    if tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle())
        .await
        .is_err()
    {
        tracing::debug!("endpoint not idle after 1 s; dropping it");
    }
    tracing::info!("segment service stopped");
    Ok(())
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        if err.is_panic() {
            tracing::error!(%err, "transfer task panicked");
        }
    }
}

async fn serve_connection(incoming: quinn::Incoming, ctx: Arc<Ctx>, cancel: CancellationToken) {
    let conn = match incoming.accept() {
        Ok(connecting) => {
            match tokio::time::timeout(ctx.limits.request_timeout, connecting).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(err)) => {
                    tracing::debug!(%err, "handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("handshake timed out");
                    return;
                }
            }
        }
        Err(err) => {
            tracing::debug!(%err, "cannot accept connection");
            return;
        }
    };
    let Some(peer) = tls::peer_node_id(&conn) else {
        // Cannot happen with mutual TLS; refuse rather than serve an anonymous peer.
        conn.close(
            quinn::VarInt::from_u32(CLOSE_BUSY),
            b"no client certificate",
        );
        return;
    };
    tracing::Span::current().record("peer", tracing::field::display(peer.short()));
    let Some(_slot) = ctx.take_peer_slot(peer) else {
        tracing::debug!("too many connections from this peer; closing");
        conn.close(
            quinn::VarInt::from_u32(CLOSE_BUSY),
            b"too many connections from this node",
        );
        return;
    };
    tracing::debug!("connected");
    // An open member (or, with membership, a peer whose certificate cannot be read) never
    // gets premium renditions.
    let open_peer = ctx.member.is_some() && tls::peer_membership(&conn).is_none_or(|c| c.open);
    let mut changes = ctx.member.clone();

    let mut streams = JoinSet::new();
    let reason = loop {
        tokio::select! {
            _ = cancel.cancelled() => break None,
            Ok(()) = async {
                match changes.as_mut() {
                    Some(c) => c.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                let revoked = changes.as_ref().is_some_and(|c| c.borrow().is_revoked(&peer));
                if revoked {
                    tracing::warn!("peer revoked; closing its connection");
                    conn.close(quinn::VarInt::from_u32(CLOSE_BUSY), b"revoked");
                    streams.shutdown().await;
                    return;
                }
            }
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let span = tracing::debug_span!("stream", id = %send.id());
                    streams.spawn(serve_stream(send, recv, Arc::clone(&ctx), open_peer).instrument(span));
                }
                Err(err) => break Some(err),
            },
            report = conn.accept_uni() => match report {
                Ok(recv) => {
                    let span = tracing::debug_span!("report", id = %recv.id());
                    streams.spawn(serve_report(recv, Arc::clone(&ctx), peer).instrument(span));
                }
                Err(err) => break Some(err),
            },
            Some(done) = streams.join_next(), if !streams.is_empty() => log_join(done),
        }
    };
    match reason {
        Some(err) => tracing::debug!(%err, "connection ended"),
        None => {
            // Shutdown: let in-flight responses finish, then close.
            let drain = async {
                while let Some(done) = streams.join_next().await {
                    log_join(done);
                }
            };
            if tokio::time::timeout(ctx.limits.shutdown_grace, drain)
                .await
                .is_err()
            {
                tracing::warn!(
                    left = streams.len(),
                    "responses unfinished at shutdown deadline"
                );
                streams.shutdown().await;
            }
            conn.close(quinn::VarInt::from_u32(CLOSE_OK), b"shutdown");
        }
    }
}

/// Reads one request frame: at most `FRAME_PREFIX_LEN + MAX_REQUEST_FRAME` bytes are ever
/// buffered, and an oversized length prefix is refused as soon as it arrives.
async fn read_request(recv: &mut quinn::RecvStream) -> Result<SegmentRequest, String> {
    let mut buf = [0u8; FRAME_PREFIX_LEN + MAX_REQUEST_FRAME];
    let mut filled = 0;
    loop {
        match decode_request(&buf[..filled]) {
            Ok(Some((req, used))) if used == filled => return Ok(req),
            Ok(Some((_, used))) => {
                return Err(format!("{} bytes after the request", filled - used));
            }
            Ok(None) => {}
            Err(err) => return Err(err.to_string()),
        }
        let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) else {
            return Err("request frame too long".into());
        };
        match recv.read(space).await {
            Ok(Some(n)) => filled += n,
            Ok(None) => return Err(format!("stream ended after {filled} bytes of request")),
            Err(err) => return Err(err.to_string()),
        }
    }
}

/// A receiver says the bytes it got for a request failed their hash: decide (through the
/// gate) whether to re-read that copy with the check, queue the re-check for the worker
/// (which outlives this connection), then acknowledge the report by stopping its stream
/// with [`REPORT_ACK`]: the sender keeps its connection open until then.
async fn serve_report(mut recv: quinn::RecvStream, ctx: Arc<Ctx>, peer: NodeId) {
    let mut buf = [0u8; FRAME_PREFIX_LEN + MAX_REQUEST_FRAME];
    let mut filled = 0;
    let read = async {
        loop {
            match decode_report(&buf[..filled]) {
                Ok(Some((report, _))) => return Ok(report),
                Ok(None) => {}
                Err(err) => return Err(err.to_string()),
            }
            let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) else {
                return Err("report frame too long".into());
            };
            match recv.read(space).await {
                Ok(Some(n)) => filled += n,
                Ok(None) => return Err(format!("stream ended after {filled} bytes of report")),
                Err(err) => return Err(err.to_string()),
            }
        }
    };
    let report = match tokio::time::timeout(ctx.limits.request_timeout, read).await {
        Ok(Ok(report)) => report,
        Ok(Err(reason)) => {
            tracing::debug!(%reason, "bad corruption report");
            let _ = recv.stop(quinn::VarInt::from_u32(CLOSE_BUSY));
            return;
        }
        Err(_) => return,
    };
    ctx.reports.received.fetch_add(1, Ordering::Relaxed);
    let queued = queue_recheck(&ctx, peer, &report).await;
    if !queued {
        ctx.reports.refused.fetch_add(1, Ordering::Relaxed);
    }
    let _ = recv.stop(quinn::VarInt::from_u32(REPORT_ACK));
}

/// Queues the re-check a report asks for, if the gate admits it and the named manifest
/// lists the segment. `false`: dropped (or nothing to do).
async fn queue_recheck(ctx: &Ctx, peer: NodeId, report: &reelnet_proto::CorruptReport) -> bool {
    let Ok(Some(manifest)) = ctx.manifest(report.request.manifest).await else {
        return false;
    };
    let Some(entry) = manifest.resolve(report.request.track, &report.request.segment) else {
        return false;
    };
    let hash = entry.hash;
    if !ctx.store.has_segment(&hash) {
        return false;
    }
    let verdict = lock(&ctx.gate).admit(peer, hash, std::time::Instant::now());
    match verdict {
        Verdict::Recheck => match ctx.recheck.try_send(hash) {
            Ok(()) => {
                ctx.reports.admitted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                lock(&ctx.gate).not_queued(&hash);
                tracing::debug!(%hash, "re-check queue full; report dropped");
                false
            }
        },
        Verdict::Duplicate => {
            ctx.reports.duplicate.fetch_add(1, Ordering::Relaxed);
            true
        }
        Verdict::RateLimited => {
            tracing::debug!(%hash, peer = %peer.short(), "peer's re-check budget used up; report dropped");
            false
        }
    }
}

/// The one task that re-reads reported copies with the hash check (which drops a corrupt
/// one and wakes placement to fetch it again), one at a time. Stops on shutdown.
async fn recheck_worker(
    mut queue: mpsc::Receiver<SegmentHash>,
    ctx: Arc<Ctx>,
    cancel: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    loop {
        let hash = tokio::select! {
            _ = cancel.cancelled() => break,
            next = queue.recv() => match next {
                Some(hash) => hash,
                None => break,
            },
        };
        let store = ctx.store.clone();
        let good = match tokio::task::spawn_blocking(move || store.check_segment(&hash)).await {
            Ok(Ok(Some(false))) => {
                tracing::warn!(%hash, "a peer reported a bad segment from here: the stored copy was corrupt and is dropped");
                false
            }
            Ok(Ok(Some(true))) => {
                tracing::info!(%hash, "a peer reported a bad segment from here; the stored copy checks out");
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(err)) => {
                tracing::warn!(%hash, %err, "cannot re-check a reported segment");
                false
            }
            Err(err) => {
                tracing::warn!(%err, "re-check task failed");
                false
            }
        };
        lock(&ctx.gate).done(hash, good, std::time::Instant::now());
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: Arc<Ctx>,
    open_peer: bool,
) {
    let request =
        match tokio::time::timeout(ctx.limits.request_timeout, read_request(&mut recv)).await {
            Ok(r) => r,
            Err(_) => Err("request timed out".into()),
        };
    // Nothing more is read from the client on this stream.
    let _ = recv.stop(quinn::VarInt::from_u32(0));
    let (header, body) = match request {
        Err(reason) => {
            tracing::debug!(%reason, "bad request");
            (ResponseHeader::error(Status::BadRequest), None)
        }
        Ok(req) => match Arc::clone(&ctx.inflight).try_acquire_owned() {
            Err(_) => (ResponseHeader::error(Status::Busy), None),
            Ok(permit) => match ctx.answer(&req, open_peer, ctx.limits.verify_sends).await {
                Ok((hash, outboard, bytes)) => (
                    ResponseHeader::ok(bytes.len() as u64, hash),
                    Some((outboard, bytes, permit)),
                ),
                Err(status) => {
                    tracing::debug!(?req, ?status, "request not served");
                    (ResponseHeader::error(status), None)
                }
            },
        },
    };
    let send_all = async {
        let frame = encode_response_header(&header).map_err(|e| e.to_string())?;
        send.write_all(&frame).await.map_err(|e| e.to_string())?;
        let mut body_len = 0;
        if let Some((outboard, bytes, _permit)) = body {
            body_len = bytes.len() as u64;
            // The outboard first: the client checks each group against it as it arrives.
            send.write_all_chunks(&mut [outboard, bytes])
                .await
                .map_err(|e| e.to_string())?;
        }
        send.finish().map_err(|e| e.to_string())?;
        // Wait until the peer has the bytes, so shutdown does not cut a response short.
        send.stopped().await.map_err(|e| e.to_string())?;
        ctx.uploaded.add(body_len);
        Ok::<(), String>(())
    };
    match tokio::time::timeout(ctx.limits.response_timeout, send_all).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(%err, "response not delivered"),
        Err(_) => {
            tracing::debug!("response timed out; resetting the stream");
            let _ = send.reset(quinn::VarInt::from_u32(0));
        }
    }
}
