//! The node's libp2p swarm: discovery, catalog gossip and full catalog sync.
//!
//! # Behaviours
//!
//! - **gossipsub** on two topics, [`CATALOG_TOPIC`] (signed catalog records) and
//!   [`MANIFEST_TOPIC`] (signed manifests). `ValidationMode::Strict` and
//!   `validate_messages()`: nothing is forwarded until the [`Catalog`] has checked it.
//!   Accepted messages are forwarded; invalid ones (bad encoding, bad signature, out of
//!   bounds, replays) are rejected, which raises the sender's "invalid message deliveries"
//!   counter in gossipsub peer scoring ([`score_params`]); two rejections push a peer below
//!   the graylist threshold, after which its messages are dropped unread. Duplicates,
//!   reordered and expired messages are ignored (not forwarded, not penalised), since
//!   honest peers produce those too.
//! - **Kademlia** (server mode, in-memory store) and **identify** for discovery: identify
//!   tells us a peer's listen addresses, which go into Kademlia; newly learned peers are
//!   dialled until [`SwarmConfig::target_peers`] connections are open.
//! - **mDNS** for zero-config LANs, behind a [`Toggle`] ([`SwarmConfig::mdns`]).
//! - **request-response** `/reelnet/catalog-sync/1` ([`sync`]): on every new connection the
//!   node asks the peer for its full catalog, page by page, so a joining node knows the
//!   network at once instead of waiting for republishing. What one peer identity may take
//!   and give is bounded over time, across reconnects ([`budget`]).
//! - **connection limits**: established connections in total and per peer, and pending
//!   incoming and outgoing ones ([`SwarmConfig::max_connections`] and the next fields);
//!   connections over a limit are denied and counted ([`NetworkStats::connections_denied`]).
//!
//! - **NAT traversal** ([`nat`]): AutoNAT v2 (client and server) tells the node whether it
//!   is reachable; while it is not, it keeps a relay v2 reservation (on a configured relay or
//!   a connected member serving the hop protocol); DCUtR upgrades relayed connections to
//!   direct ones where the NATs allow; UPnP (opt-in) maps a port. Only explicit and
//!   confirmed addresses are advertised.
//! - **request-response** `/reelnet/segment/2` ([`segment`]): the QUIC segment service's
//!   requests and answers over a libp2p connection (direct, hole-punched or relayed), the
//!   fallback when a peer's QUIC address cannot be reached.
//!
//! # Shape
//!
//! One [`EventLoop`] task owns the `Swarm`; everything else holds a cloneable
//! [`NetworkHandle`] whose methods send commands with oneshot replies (rust-libp2p
//! `examples/file-sharing`). Work that may take time (catalog checks, building sync pages,
//! ingesting a sync response) runs in other tasks and reports back through an internal
//! channel, so the event loop never waits on anything but the swarm.
//!
//! The files follow that shape: `behaviour` (what the swarm speaks), `handle`
//! ([`NetworkHandle`] and its commands), `event_loop` ([`EventLoop`]); this module holds the
//! configuration, the topics, peer scoring and [`start`].
//!
//! # Identity
//!
//! The libp2p keypair is the node's ed25519 key, so a node's `PeerId` and its reelnet
//! [`NodeId`] name the same key ([`peer_id_of`], [`node_id_of`]).
//!
//! # Bootstrap
//!
//! Bootstrap addresses may carry `/p2p/<peer id>` (then the peer goes into Kademlia at once)
//! or not (the node dials the address and learns the id from the connection). While the
//! node has no connection at all it redials its bootstrap list every
//! [`SwarmConfig::redial_interval`].

pub mod budget;
pub mod nat;
pub mod publisher;
pub mod segment;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::Transport as _;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    autonat, connection_limits, dcutr, identify, kad, mdns, noise, relay, tcp, upnp, yamux,
    Multiaddr, PeerId, StreamProtocol, Swarm,
};
use reelnet_proto::{NodeId, SignedCatalogRecord, SignedManifest, MAX_SIGNED_MANIFEST_BYTES};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, SyncCursor, Verdict};
use crate::membership::{MemberState, Membership};
use budget::{Budgets, SyncBudget};
use nat::{AddressBook, NatConfig, Reachability, ReachabilityTracker, RelayGate};
pub use segment::SegmentResponse;
use segment::{SegmentCodec, SEGMENT_PROTOCOL};
use sync::{SyncCodec, SyncRequest, SyncResponse, SYNC_PAGE_BYTES, SYNC_PROTOCOL};

mod behaviour;
mod event_loop;
mod handle;

// The event loop, its handle and the behaviour share their private items through this module.
use behaviour::*;
use event_loop::*;
use handle::*;

pub use behaviour::{Behaviour, BehaviourEvent};

/// How long a TCP dial (connect and upgrades) may take unless configured
/// (`p2p.dial_timeout_secs`); below AutoNAT v2's 10 s limit for a dial-back (see `spawn`).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
pub use event_loop::EventLoop;
pub use handle::{NatStatus, NetworkHandle, P2pFetched};

/// Gossipsub topic of signed catalog records.
pub const CATALOG_TOPIC: &str = "reelnet/catalog/1";
/// Gossipsub topic of signed manifests.
pub const MANIFEST_TOPIC: &str = "reelnet/manifests/1";
/// Gossip topic of the network's signed revocation list.
pub const REVOCATIONS_TOPIC: &str = "reelnet/revocations/1";
/// Gossip topic of new movie bindings (signed by the network key).
pub const BINDINGS_TOPIC: &str = "reelnet/bindings/1";
/// Kademlia protocol name (a private DHT, not the IPFS one).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/reelnet/kad/1.0.0");
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/reelnet/id/1.0.0";
/// Largest gossip message: a signed manifest plus room for the gossipsub envelope.
pub const MAX_GOSSIP_BYTES: usize = MAX_SIGNED_MANIFEST_BYTES + (64 << 10);
/// Queued gossip messages per topic awaiting validation; beyond this, messages are
/// ignored (not forwarded, not penalised).
const VALIDATION_QUEUE: usize = 1024;

/// The swarm's configuration.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/7401` or `/ip4/0.0.0.0/udp/7401/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through, with or without `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Dial peers learned from Kademlia or mDNS while fewer than this many are connected.
    pub target_peers: usize,
    /// Close connections no protocol uses after this long.
    pub idle_timeout: Duration,
    /// While no peer is connected, redial the bootstrap list this often.
    pub redial_interval: Duration,
    /// This node's membership: catalog sync is asked with its certificate and answered only
    /// to members, revocation lists are gossiped, revoked peers are disconnected. `None`:
    /// no membership (tests of the swarm alone).
    pub membership: Option<crate::membership::Membership>,
    /// Established connections at most, in and out together (`p2p.max_connections`).
    pub max_connections: u32,
    /// Established connections with one peer at most (`p2p.max_connections_per_peer`): one
    /// each way when two nodes dial each other at once, and one more while a reconnecting
    /// peer's stale connection has not timed out yet.
    pub max_connections_per_peer: u32,
    /// Incoming connections in their handshake at most (`p2p.max_pending_incoming`).
    pub max_pending_incoming: u32,
    /// Outgoing dials in progress at most (`p2p.max_pending_outgoing`).
    pub max_pending_outgoing: u32,
    /// Catalog sync one peer identity may take and give over time (`p2p.sync_budget_*`).
    pub sync_budget: SyncBudget,
    /// NAT traversal (`p2p.autonat`, `p2p.upnp`, `p2p.relay_*`, `p2p.relays`).
    pub nat: NatConfig,
    /// Answers segment requests over `/reelnet/segment/2`; `None`: such requests are
    /// dropped (tests of the swarm alone).
    pub segments: Option<crate::transfer::SegmentService>,
    /// Longest time one segment request over libp2p may take (dial included).
    pub segment_timeout: Duration,
    /// How long a segment request to a peer reachable only through a relay waits for
    /// DCUtR's direct connection before going over the relay.
    pub direct_wait: Duration,
    /// How long a TCP dial (connect, noise, yamux) may take.
    pub dial_timeout: Duration,
}

/// `p2p.max_connections` unless configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
/// `p2p.max_connections_per_peer` unless configured.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: u32 = 3;
/// `p2p.max_pending_incoming` unless configured.
pub const DEFAULT_MAX_PENDING_INCOMING: u32 = 64;
/// `p2p.max_pending_outgoing` unless configured.
pub const DEFAULT_MAX_PENDING_OUTGOING: u32 = 64;

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            listen: vec![Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Tcp(0))],
            bootstrap: Vec::new(),
            mdns: false,
            target_peers: 8,
            idle_timeout: Duration::from_secs(300),
            redial_interval: Duration::from_secs(10),
            membership: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_pending_incoming: DEFAULT_MAX_PENDING_INCOMING,
            max_pending_outgoing: DEFAULT_MAX_PENDING_OUTGOING,
            sync_budget: SyncBudget::default(),
            nat: NatConfig::default(),
            segments: None,
            segment_timeout: Duration::from_secs(30),
            direct_wait: Duration::from_secs(3),
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
        }
    }
}

/// Why the swarm could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("the node key cannot be used as a libp2p identity: {0}")]
    Identity(String),
    #[error("cannot set up libp2p: {0}")]
    Setup(String),
    #[error(
        "cannot listen on {addr}: {reason} (check the swarm listen address; is the port in use?)"
    )]
    Listen { addr: Multiaddr, reason: String },
    #[error("no listen address was bound within 5 s")]
    ListenTimeout,
    #[error("the swarm has stopped (the node is shutting down)")]
    Stopped,
    #[error("refusing to publish: {0}")]
    Refused(String),
    #[error("cannot publish on {topic}: {reason}")]
    Publish { topic: &'static str, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("segment request over libp2p failed: {0}")]
    Segment(String),
}

/// A gossip topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Catalog,
    Manifests,
    Revocations,
    Bindings,
}

impl Topic {
    pub fn name(self) -> &'static str {
        match self {
            Topic::Catalog => CATALOG_TOPIC,
            Topic::Manifests => MANIFEST_TOPIC,
            Topic::Revocations => REVOCATIONS_TOPIC,
            Topic::Bindings => BINDINGS_TOPIC,
        }
    }

    /// The gossipsub hash of the topic.
    pub fn hash(self) -> TopicHash {
        IdentTopic::new(self.name()).hash()
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Gossip messages accepted and forwarded.
    pub gossip_accepted: u64,
    /// Gossip messages rejected (the sender is penalised).
    pub gossip_rejected: u64,
    /// Gossip messages ignored (duplicate, reordered, expired, or queue full).
    pub gossip_ignored: u64,
    /// Sync pages sent to peers.
    pub sync_pages_served: u64,
    /// Sync pages received from peers.
    pub sync_pages_received: u64,
    /// Items in received sync pages that the catalog found invalid.
    pub sync_items_invalid: u64,
    /// Bytes of the sync pages sent to peers (records and manifests).
    pub sync_bytes_served: u64,
    /// Bytes of the sync pages received from peers (records and manifests).
    pub sync_bytes_received: u64,
    /// Sync requests refused because the requester is not a member.
    pub sync_refused: u64,
    /// Sync requests refused because the requester has used up its sync budget.
    pub sync_budget_refused: u64,
    /// Syncs from a peer stopped (or not started) because it has used up its sync budget.
    pub sync_budget_stopped: u64,
    /// Connections denied by the connection limits.
    pub connections_denied: u64,
    /// Connections closed because the peer is revoked.
    pub revoked_disconnects: u64,
    /// Connections closed because the peer showed no valid certificate when it asked for
    /// the catalog.
    pub not_member_disconnects: u64,
    /// What AutoNAT says about this node.
    pub reachability: Reachability,
    /// Relay reservations this node holds (0 or 1).
    pub relay_reservations: u64,
    /// DCUtR hole punches that gave a direct connection.
    pub hole_punch_success: u64,
    /// DCUtR hole punches that failed.
    pub hole_punch_failure: u64,
    /// Segment body bytes served over `/reelnet/segment/2` on direct connections.
    pub segment_served_direct_bytes: u64,
    /// Segment body bytes served over `/reelnet/segment/2` through a relay.
    pub segment_served_relayed_bytes: u64,
    /// Segment body bytes fetched over `/reelnet/segment/2` on direct connections.
    pub segment_fetched_direct_bytes: u64,
    /// Segment body bytes fetched over `/reelnet/segment/2` through a relay.
    pub segment_fetched_relayed_bytes: u64,
    /// Segment requests over libp2p refused because the requester is not a member.
    pub segment_refused: u64,
    /// Connections through a relay established since start (either way).
    pub relayed_connections_total: u64,
}

/// The `PeerId` of a node: the same ed25519 key.
pub fn peer_id_of(node: &NodeId) -> Result<PeerId, SwarmError> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(node.as_bytes())
        .map_err(|e| SwarmError::Identity(format!("node id {node}: {e}")))?;
    Ok(PeerId::from_public_key(&key.into()))
}

/// The `NodeId` of a peer, if its id embeds an ed25519 key (every reelnet peer's does).
pub fn node_id_of(peer: &PeerId) -> Option<NodeId> {
    let hash = peer.as_ref();
    // Ed25519 peer ids use the identity multihash of the protobuf-encoded public key.
    if hash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    let ed = key.try_into_ed25519().ok()?;
    Some(NodeId::from_bytes(ed.to_bytes()))
}

/// `addr` with `/p2p/<peer>` appended (unless it already names a peer).
pub fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

fn split_peer(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => (base, Some(peer)),
        _ => (addr.clone(), None),
    }
}

/// Gossipsub peer-scoring parameters.
///
/// Only invalid messages (P4) weigh much: one rejected message costs 20 points, two cost 80
/// (the counter is squared), reaching the default graylist threshold of -80. Mesh delivery
/// deficits (P3, P3b) are off: catalog topics are quiet by nature and honest peers must not
/// lose score for having nothing to say. Positive contributions are small so that good
/// behaviour cannot bank credit for later abuse. Loopback is exempt from the same-IP
/// penalty, so tests and single-machine testnets work.
pub fn score_params() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            3600,
        )),
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams::default();
    for name in [
        CATALOG_TOPIC,
        MANIFEST_TOPIC,
        REVOCATIONS_TOPIC,
        BINDINGS_TOPIC,
    ] {
        params
            .topics
            .insert(IdentTopic::new(name).hash(), topic.clone());
    }
    params.ip_colocation_factor_whitelist.extend([
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ]);
    (params, gossipsub::PeerScoreThresholds::default())
}

/// Starts the swarm: builds it with the node's key, listens on `config.listen`, dials the
/// bootstrap peers and spawns the [`EventLoop`]. Returns a handle, the addresses actually
/// bound (without `/p2p`; see [`with_peer`]) and the event loop's task, which ends when
/// `cancel` fires.
pub async fn start(
    config: SwarmConfig,
    key: &SigningKey,
    catalog: Catalog,
    cancel: CancellationToken,
) -> Result<(NetworkHandle, Vec<Multiaddr>, JoinHandle<()>), SwarmError> {
    let mut secret = key.to_bytes();
    let keypair = Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| SwarmError::Identity(e.to_string()))?;
    let peer_id = keypair.public().to_peer_id();
    let gate = RelayGate::new(config.nat.relay_server == nat::RelayServerMode::On);
    let idle = config.idle_timeout;
    let dial_timeout = config.dial_timeout;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        // TCP as `with_tcp` builds it, plus a bound on the whole dial (connect, noise,
        // yamux): a NAT drops the SYN of an unsolicited dial, and without a bound the
        // kernel's SYN retries run for two minutes. AutoNAT v2 servers give a dial-back
        // 10 s before they drop the request, so a dial-back to an address behind a NAT must
        // fail before that for the client to learn it is not reachable.
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(dial_timeout),
            )
        })
        .map_err(|e| SwarmError::Setup(format!("tcp transport: {e}")))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| SwarmError::Setup(format!("relay client transport: {e}")))?
        .with_behaviour(|key, relay_client| {
            build_behaviour(key, &config, relay_client, &gate)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| SwarmError::Setup(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();

    let listen_addrs = listen(&mut swarm, &config.listen).await?;
    // "on" advertises the relay hop protocol from the start; "auto" once public (see
    // `EventLoop::on_reachability`), not merely once some external address exists.
    if let Some(relay) = swarm.behaviour_mut().relay_server.as_mut() {
        relay.set_status(Some(if gate.is_open() {
            relay::Status::Enable
        } else {
            relay::Status::Disable
        }));
    }
    // Explicit addresses are advertised whatever AutoNAT says. A relay must hand its
    // addresses to the nodes that reserve on it: with `relay_server = "on"` and none given,
    // the addresses it listens on (from the config) stand in.
    let mut explicit = config.nat.external.clone();
    if explicit.is_empty() && config.nat.relay_server == nat::RelayServerMode::On {
        explicit.extend(listen_addrs.iter().cloned());
    }
    for addr in &explicit {
        swarm.add_external_address(addr.clone());
    }

    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let (record_tx, record_rx) = mpsc::channel(VALIDATION_QUEUE);
    let (manifest_tx, manifest_rx) = mpsc::channel(VALIDATION_QUEUE);
    let (revocation_tx, revocation_rx) = mpsc::channel(64);
    let (binding_tx, binding_rx) = mpsc::channel(256);
    for (name, rx, topic) in [
        ("gossip-validate-records", record_rx, Topic::Catalog),
        ("gossip-validate-manifests", manifest_rx, Topic::Manifests),
        (
            "gossip-validate-revocations",
            revocation_rx,
            Topic::Revocations,
        ),
        ("gossip-validate-bindings", binding_rx, Topic::Bindings),
    ] {
        reelnet_runtime::shutdown::spawn(
            name,
            validator(
                topic,
                rx,
                catalog.clone(),
                config.membership.clone(),
                internal_tx.clone(),
            ),
        );
    }
    let member_changes = config.membership.as_ref().map(|m| m.subscribe());
    let config_unknown_timeout = config.nat.unknown_timeout;
    let budgets = Budgets::new(config.sync_budget);

    let mut event_loop = EventLoop {
        swarm,
        config,
        commands: commands_rx,
        internal_tx,
        internal_rx,
        record_tx,
        manifest_tx,
        revocation_tx,
        binding_tx,
        catalog: catalog.clone(),
        catalog_topic: Topic::Catalog.hash(),
        manifest_topic: Topic::Manifests.hash(),
        revocations_topic: Topic::Revocations.hash(),
        bindings_topic: Topic::Bindings.hash(),
        member_changes,
        published_revocations: 0,
        published_bindings: 0,
        serving: HashSet::new(),
        budgets,
        bootstrapped: false,
        stats: NetworkStats::default(),
        reach: ReachabilityTracker::new(
            tokio::time::Instant::now(),
            config_unknown_timeout,
            explicit.iter().cloned(),
        ),
        book: AddressBook::new(explicit),
        gate,
        relay_candidates: HashMap::new(),
        reservation: None,
        failed_relays: HashMap::new(),
        relayed_conns: HashMap::new(),
        segment_answers: HashMap::new(),
        unpunchable: HashMap::new(),
        direct_conns: HashMap::new(),
        segment_pending: HashMap::new(),
        waiting_direct: Vec::new(),
        cancel,
    };
    if event_loop.reach.state() == Reachability::Public {
        event_loop.on_reachability(Reachability::Public);
    }
    event_loop.dial_bootstrap();
    let task = reelnet_runtime::shutdown::spawn("swarm", event_loop.run());
    let handle = NetworkHandle {
        tx: commands_tx,
        peer_id,
        catalog,
    };
    tracing::info!(%peer_id, addrs = ?listen_addrs, "swarm listening");
    Ok((handle, listen_addrs, task))
}

async fn listen(
    swarm: &mut Swarm<Behaviour>,
    addrs: &[Multiaddr],
) -> Result<Vec<Multiaddr>, SwarmError> {
    let mut pending = HashMap::new();
    for addr in addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| SwarmError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        pending.insert(id, addr.clone());
    }
    let mut bound = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while !pending.is_empty() {
        tokio::select! {
            _ = &mut deadline => return Err(SwarmError::ListenTimeout),
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    pending.remove(&listener_id);
                    bound.push(address);
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = pending.remove(&listener_id) {
                        return Err(SwarmError::Listen { addr, reason: error.to_string() });
                    }
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    if let Some(addr) = pending.remove(&listener_id) {
                        let reason = match reason {
                            Ok(()) => "listener closed".to_owned(),
                            Err(e) => e.to_string(),
                        };
                        return Err(SwarmError::Listen { addr, reason });
                    }
                }
                other => tracing::trace!(?other, "swarm event during start-up"),
            }
        }
    }
    Ok(bound)
}
