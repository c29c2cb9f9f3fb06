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
//!   network at once instead of waiting for republishing.
//!
//! # Shape
//!
//! One [`EventLoop`] task owns the `Swarm`; everything else holds a cloneable
//! [`NetworkHandle`] whose methods send commands with oneshot replies (rust-libp2p
//! `examples/file-sharing`). Work that may take time (catalog checks, building sync pages,
//! ingesting a sync response) runs in other tasks and reports back through an internal
//! channel, so the event loop never waits on anything but the swarm.
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

pub mod publisher;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, kad, mdns, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use reelnet_proto::{NodeId, SignedCatalogRecord, SignedManifest, MAX_SIGNED_MANIFEST_BYTES};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, SyncCursor, Verdict};
use sync::{SyncCodec, SyncRequest, SyncResponse, SYNC_PAGE_BYTES, SYNC_PROTOCOL};

/// Gossipsub topic of signed catalog records.
pub const CATALOG_TOPIC: &str = "reelnet/catalog/1";
/// Gossipsub topic of signed manifests.
pub const MANIFEST_TOPIC: &str = "reelnet/manifests/1";
/// Kademlia protocol name (a private DHT, not the IPFS one).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/reelnet/kad/1.0.0");
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/reelnet/id/1.0.0";
/// Largest gossip message: a signed manifest plus room for the gossipsub envelope.
pub const MAX_GOSSIP_BYTES: usize = MAX_SIGNED_MANIFEST_BYTES + (64 << 10);
/// Most sync pages taken from one peer per connection (a peer cannot keep us paging
/// forever).
const MAX_SYNC_PAGES: u32 = 4096;
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
}

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
}

/// A gossip topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Catalog,
    Manifests,
}

impl Topic {
    pub fn name(self) -> &'static str {
        match self {
            Topic::Catalog => CATALOG_TOPIC,
            Topic::Manifests => MANIFEST_TOPIC,
        }
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    for name in [CATALOG_TOPIC, MANIFEST_TOPIC] {
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

/// The composed behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    sync: request_response::Behaviour<SyncCodec>,
}

fn build_behaviour(keypair: &Keypair, config: &SwarmConfig) -> Result<Behaviour, SwarmError> {
    let setup = |what: &str, e: String| SwarmError::Setup(format!("{what}: {e}"));
    let peer_id = keypair.public().to_peer_id();

    let gs_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| setup("gossipsub config", e.to_string()))?;
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        gs_config,
    )
    .map_err(|e| setup("gossipsub", e.to_string()))?;
    let (params, thresholds) = score_params();
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(|e| setup("gossipsub peer scoring", e))?;
    for name in [CATALOG_TOPIC, MANIFEST_TOPIC] {
        gossipsub
            .subscribe(&IdentTopic::new(name))
            .map_err(|e| setup("gossipsub subscribe", e.to_string()))?;
    }

    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::new(peer_id),
        kad::Config::new(KAD_PROTOCOL),
    );
    kad.set_mode(Some(kad::Mode::Server));

    let identify = identify::Behaviour::new(identify::Config::new(
        IDENTIFY_PROTOCOL.to_owned(),
        keypair.public(),
    ));

    let mdns = if config.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                .map_err(|e| setup("mdns", e.to_string()))?,
        )
    } else {
        None
    };

    let sync = request_response::Behaviour::new(
        [(SYNC_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    );

    Ok(Behaviour {
        gossipsub,
        kad,
        identify,
        mdns: Toggle::from(mdns),
        sync,
    })
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
    let behaviour = build_behaviour(&keypair, &config)?;
    let idle = config.idle_timeout;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| SwarmError::Setup(format!("tcp transport: {e}")))?
        .with_quic()
        .with_behaviour(|_| behaviour)
        .map_err(|e| match e {})?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();

    let listen_addrs = listen(&mut swarm, &config.listen).await?;

    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let (record_tx, record_rx) = mpsc::channel(VALIDATION_QUEUE);
    let (manifest_tx, manifest_rx) = mpsc::channel(VALIDATION_QUEUE);
    for (name, rx, topic) in [
        ("gossip-validate-records", record_rx, Topic::Catalog),
        ("gossip-validate-manifests", manifest_rx, Topic::Manifests),
    ] {
        crate::shutdown::spawn(
            name,
            validator(topic, rx, catalog.clone(), internal_tx.clone()),
        );
    }

    let mut event_loop = EventLoop {
        swarm,
        config,
        commands: commands_rx,
        internal_tx,
        internal_rx,
        record_tx,
        manifest_tx,
        catalog: catalog.clone(),
        catalog_topic: IdentTopic::new(CATALOG_TOPIC).hash(),
        manifest_topic: IdentTopic::new(MANIFEST_TOPIC).hash(),
        serving: HashSet::new(),
        sync_pages: HashMap::new(),
        bootstrapped: false,
        stats: NetworkStats::default(),
        cancel,
    };
    event_loop.dial_bootstrap();
    let task = crate::shutdown::spawn("swarm", event_loop.run());
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

/// A cloneable client of the swarm's event loop.
#[derive(Clone)]
pub struct NetworkHandle {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    catalog: Catalog,
}

enum Command {
    Publish {
        topic: Topic,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), SwarmError>>,
    },
    Peers(oneshot::Sender<Vec<PeerId>>),
    TopicPeers(Topic, oneshot::Sender<Vec<PeerId>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), SwarmError>>),
    PeerScore(PeerId, oneshot::Sender<Option<f64>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Stats(oneshot::Sender<NetworkStats>),
}

impl NetworkHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SwarmError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SwarmError::Stopped)?;
        rx.await.map_err(|_| SwarmError::Stopped)
    }

    /// Offers `record` to the local catalog and gossips it. An invalid or expired record is
    /// refused. With no peers yet, nothing is sent and this still succeeds: peers get the
    /// record by full sync when they connect.
    pub async fn publish_record(&self, record: SignedCatalogRecord) -> Result<(), SwarmError> {
        let bytes = record.encode();
        match self
            .catalog
            .offer_record(record)
            .await
            .map_err(|_| SwarmError::Stopped)?
        {
            Verdict::Invalid(reason) => return Err(SwarmError::Refused(reason)),
            Verdict::Expired => return Err(SwarmError::Refused("record has expired".into())),
            _ => {}
        }
        self.publish_raw(Topic::Catalog, bytes).await
    }

    /// Offers `manifest` to the local catalog and gossips it (see
    /// [`NetworkHandle::publish_record`]).
    pub async fn publish_manifest(&self, manifest: SignedManifest) -> Result<(), SwarmError> {
        let bytes = manifest.encode();
        if let Verdict::Invalid(reason) = self
            .catalog
            .offer_manifest(manifest)
            .await
            .map_err(|_| SwarmError::Stopped)?
        {
            return Err(SwarmError::Refused(reason));
        }
        self.publish_raw(Topic::Manifests, bytes).await
    }

    /// Gossips bytes as they are, without any check. For tests and diagnostics (e.g. to
    /// see how peers treat a malformed message); the node itself always publishes through
    /// the checked methods.
    pub async fn publish_raw(&self, topic: Topic, bytes: Vec<u8>) -> Result<(), SwarmError> {
        self.ask(|reply| Command::Publish {
            topic,
            bytes,
            reply,
        })
        .await?
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerId>, SwarmError> {
        self.ask(Command::Peers).await
    }

    /// Connected peers subscribed to `topic`.
    pub async fn topic_peers(&self, topic: Topic) -> Result<Vec<PeerId>, SwarmError> {
        self.ask(|reply| Command::TopicPeers(topic, reply)).await
    }

    /// Dials an address (with or without `/p2p`). Returns once the dial has started.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), SwarmError> {
        self.ask(|reply| Command::Dial(addr, reply)).await?
    }

    /// The gossipsub score this node gives `peer`.
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, SwarmError> {
        self.ask(|reply| Command::PeerScore(peer, reply)).await
    }

    /// Every address the swarm listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, SwarmError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Counters.
    pub async fn stats(&self) -> Result<NetworkStats, SwarmError> {
        self.ask(Command::Stats).await
    }
}

/// Messages to the event loop from the tasks it started.
enum Internal {
    Validated {
        id: MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    Serve {
        peer: PeerId,
        channel: request_response::ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    Ingested {
        peer: PeerId,
        invalid: u64,
        next: Option<SyncCursor>,
    },
}

struct Pending {
    id: MessageId,
    source: PeerId,
    data: Vec<u8>,
}

/// Offers queued gossip messages of one topic to the catalog, in arrival order.
async fn validator(
    topic: Topic,
    mut rx: mpsc::Receiver<Pending>,
    catalog: Catalog,
    internal: mpsc::UnboundedSender<Internal>,
) -> Result<(), std::convert::Infallible> {
    while let Some(p) = rx.recv().await {
        let verdict = match topic {
            Topic::Catalog => catalog.offer_record_bytes(&p.data).await,
            Topic::Manifests => catalog.offer_manifest_bytes(&p.data).await,
        };
        let Ok(verdict) = verdict else { break };
        if internal
            .send(Internal::Validated {
                id: p.id,
                source: p.source,
                verdict,
            })
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

/// How gossipsub should treat a message the catalog judged.
fn acceptance(verdict: &Verdict) -> MessageAcceptance {
    match verdict {
        Verdict::Accepted => MessageAcceptance::Accept,
        Verdict::Invalid(_) | Verdict::Replay => MessageAcceptance::Reject,
        Verdict::Duplicate | Verdict::Stale | Verdict::Expired => MessageAcceptance::Ignore,
    }
}

/// Owns the `Swarm`; see the module docs.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: SwarmConfig,
    commands: mpsc::Receiver<Command>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    record_tx: mpsc::Sender<Pending>,
    manifest_tx: mpsc::Sender<Pending>,
    catalog: Catalog,
    catalog_topic: TopicHash,
    manifest_topic: TopicHash,
    /// Peers whose sync request is being answered (one at a time each).
    serving: HashSet<PeerId>,
    /// Sync pages taken from each connected peer.
    sync_pages: HashMap<PeerId, u32>,
    bootstrapped: bool,
    stats: NetworkStats,
    cancel: CancellationToken,
}

impl EventLoop {
    async fn run(mut self) -> Result<(), std::convert::Infallible> {
        let mut redial = tokio::time::interval(self.config.redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial.tick().await;
        let mut commands_open = true;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => commands_open = false,
                },
                Some(msg) = self.internal_rx.recv() => self.on_internal(msg),
                _ = redial.tick() => {
                    if self.swarm.connected_peers().next().is_none() {
                        self.dial_bootstrap();
                    }
                }
            }
        }
        tracing::debug!("swarm stopped");
        Ok(())
    }

    fn dial_bootstrap(&mut self) {
        for addr in self.config.bootstrap.clone() {
            let (base, peer) = split_peer(&addr);
            let opts = match peer {
                Some(peer) if peer == *self.swarm.local_peer_id() => continue,
                Some(peer) => {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, base.clone());
                    DialOpts::peer_id(peer)
                        .addresses(vec![base])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build()
                }
                None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            };
            if let Err(err) = self.swarm.dial(opts) {
                tracing::warn!(%addr, %err, "cannot dial bootstrap peer");
            }
        }
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || self.swarm.connected_peers().count() >= self.config.target_peers
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(err) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %err, "cannot dial discovered peer");
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let hash = match topic {
                    Topic::Catalog => self.catalog_topic.clone(),
                    Topic::Manifests => self.manifest_topic.clone(),
                };
                let result = match self.swarm.behaviour_mut().gossipsub.publish(hash, bytes) {
                    Ok(_) => Ok(()),
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        tracing::debug!(topic = topic.name(), "no peers yet; sync will carry it");
                        Ok(())
                    }
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(err) => Err(SwarmError::Publish {
                        topic: topic.name(),
                        reason: err.to_string(),
                    }),
                };
                let _ = reply.send(result);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::TopicPeers(topic, reply) => {
                let hash = match topic {
                    Topic::Catalog => &self.catalog_topic,
                    Topic::Manifests => &self.manifest_topic,
                };
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Dial(addr, reply) => {
                let (base, peer) = split_peer(&addr);
                let opts = match peer {
                    Some(peer) => {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, base.clone());
                        DialOpts::peer_id(peer).addresses(vec![base]).build()
                    }
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let result = self.swarm.dial(opts).map_err(|e| SwarmError::Dial {
                    addr,
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::PeerScore(peer, reply) => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats.clone());
            }
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Validated {
                id,
                source,
                verdict,
            } => {
                let acceptance = acceptance(&verdict);
                match acceptance {
                    MessageAcceptance::Accept => self.stats.gossip_accepted += 1,
                    MessageAcceptance::Reject => {
                        self.stats.gossip_rejected += 1;
                        tracing::warn!(peer = %source, ?verdict, "rejected gossip message");
                    }
                    MessageAcceptance::Ignore => self.stats.gossip_ignored += 1,
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Internal::Serve {
                peer,
                channel,
                response,
            } => {
                self.serving.remove(&peer);
                self.stats.sync_pages_served += 1;
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!(%peer, "sync requester went away");
                }
            }
            Internal::Ingested {
                peer,
                invalid,
                next,
            } => {
                self.stats.sync_items_invalid += invalid;
                if invalid > 0 {
                    tracing::warn!(%peer, invalid, "peer's catalog sync contained invalid items");
                }
                if let Some(after) = next {
                    let pages = self.sync_pages.entry(peer).or_insert(0);
                    *pages += 1;
                    if *pages >= MAX_SYNC_PAGES {
                        tracing::warn!(%peer, "peer's catalog sync has too many pages; stopping");
                    } else if self.swarm.is_connected(&peer) {
                        self.swarm
                            .behaviour_mut()
                            .sync
                            .send_request(&peer, SyncRequest { after: Some(after) });
                    }
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let (base, _) = split_peer(address);
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, base);
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, "connected; asking for its catalog");
                    self.sync_pages.insert(peer_id, 0);
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer_id, SyncRequest { after: None });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.sync_pages.remove(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let queue = if message.topic == self.catalog_topic {
                    Some(&self.record_tx)
                } else if message.topic == self.manifest_topic {
                    Some(&self.manifest_tx)
                } else {
                    None
                };
                let queued = queue.is_some_and(|q| {
                    q.try_send(Pending {
                        id: message_id.clone(),
                        source: propagation_source,
                        data: message.data,
                    })
                    .is_ok()
                });
                if !queued {
                    self.stats.gossip_ignored += 1;
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                }
            }
            BehaviourEvent::Gossipsub(_) => {}
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                    if !self.bootstrapped {
                        self.bootstrapped = true;
                        if let Err(err) = self.swarm.behaviour_mut().kad.bootstrap() {
                            tracing::debug!(%err, "kademlia bootstrap not started");
                        }
                    }
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, is_new_peer, ..
            }) => {
                if is_new_peer {
                    self.maybe_dial(peer);
                }
            }
            BehaviourEvent::Kad(_) => {}
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    self.maybe_dial(peer);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(_)) => {}
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
        }
    }

    fn on_sync_event(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if !self.serving.insert(peer) {
                    // One request at a time per peer; dropping the channel refuses this one.
                    tracing::debug!(%peer, "concurrent sync request refused");
                    return;
                }
                let catalog = self.catalog.clone();
                let internal = self.internal_tx.clone();
                crate::shutdown::spawn("catalog-sync-serve", async move {
                    let page = catalog.sync_page(request.after, SYNC_PAGE_BYTES).await?;
                    let response = SyncResponse {
                        records: page.records,
                        manifests: page.manifests,
                        next: page.next,
                    };
                    let _ = internal.send(Internal::Serve {
                        peer,
                        channel,
                        response,
                    });
                    Ok::<(), crate::catalog::CatalogError>(())
                });
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => {
                self.stats.sync_pages_received += 1;
                let catalog = self.catalog.clone();
                let internal = self.internal_tx.clone();
                crate::shutdown::spawn("catalog-sync-ingest", async move {
                    let mut invalid = 0u64;
                    // Manifests first, so records naming them find them known.
                    for bytes in &response.manifests {
                        if let Verdict::Invalid(reason) =
                            catalog.offer_manifest_bytes(bytes).await?
                        {
                            tracing::debug!(%peer, %reason, "invalid manifest in sync");
                            invalid += 1;
                        }
                    }
                    for bytes in &response.records {
                        if let Verdict::Invalid(reason) = catalog.offer_record_bytes(bytes).await? {
                            tracing::debug!(%peer, %reason, "invalid record in sync");
                            invalid += 1;
                        }
                    }
                    let _ = internal.send(Internal::Ingested {
                        peer,
                        invalid,
                        next: response.next,
                    });
                    Ok::<(), crate::catalog::CatalogError>(())
                });
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "catalog sync request failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.serving.remove(&peer);
                tracing::debug!(%peer, %error, "catalog sync answer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
