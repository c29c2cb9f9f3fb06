//! [`NetworkHandle`]: the cloneable client of the event loop. Its methods send
//! [`Command`]s with oneshot replies; publishing encodes the signed record or manifest here,
//! in the caller's task.

use super::*;

/// A cloneable client of the swarm's event loop.
#[derive(Clone)]
pub struct NetworkHandle {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) peer_id: PeerId,
    pub(super) catalog: Catalog,
}

pub(super) enum Command {
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
    Disconnect(PeerId, oneshot::Sender<bool>),
    FetchSegment {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: reelnet_proto::SegmentRequest,
        reply: oneshot::Sender<Result<P2pFetched, SwarmError>>,
    },
    NatStatus(oneshot::Sender<NatStatus>),
    Connections(PeerId, oneshot::Sender<(bool, usize)>),
}

/// A segment answer that came over libp2p, and whether it came through a relay.
#[derive(Debug, Clone)]
pub struct P2pFetched {
    pub response: SegmentResponse,
    pub relayed: bool,
}

/// What the node knows about its reachability (admin status).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NatStatus {
    pub reachability: Reachability,
    /// Addresses AutoNAT confirmed.
    pub confirmed: Vec<String>,
    /// Learned addresses not confirmed (not advertised).
    pub candidates: Vec<String>,
    /// The swarm's external addresses: explicit, confirmed, relay circuits.
    pub external: Vec<String>,
    pub listen: Vec<String>,
    /// The relay circuit address this node listens on, if any.
    pub relay: Option<String>,
    pub relay_reservations: u64,
    /// Whether this node serves as a relay now.
    pub relay_serving: bool,
    pub relayed_connections: usize,
    pub hole_punch_success: u64,
    pub hole_punch_failure: u64,
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
            Verdict::Invalid(reason) | Verdict::NotMember(reason) => {
                return Err(SwarmError::Refused(reason))
            }
            Verdict::Expired => return Err(SwarmError::Refused("record has expired".into())),
            _ => {}
        }
        self.publish_raw(Topic::Catalog, bytes).await
    }

    /// Offers `manifest` to the local catalog and gossips it (see
    /// [`NetworkHandle::publish_record`]).
    pub async fn publish_manifest(&self, manifest: SignedManifest) -> Result<(), SwarmError> {
        let bytes = manifest.encode();
        if let Verdict::Invalid(reason) | Verdict::NotMember(reason) = self
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

    /// Asks `peer` for a segment over `/reelnet/segment/2`, dialling it by id if needed
    /// (its known addresses, plus `addrs`: direct ones or a relay circuit). The answer is
    /// not verified here; the fetcher does that.
    pub async fn fetch_segment(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: reelnet_proto::SegmentRequest,
    ) -> Result<P2pFetched, SwarmError> {
        self.ask(|reply| Command::FetchSegment {
            peer,
            addrs,
            request,
            reply,
        })
        .await?
    }

    /// Reachability, addresses and relay state.
    pub async fn nat_status(&self) -> Result<NatStatus, SwarmError> {
        self.ask(Command::NatStatus).await
    }

    /// Whether this node is connected to `peer`, and over how many relayed connections.
    pub async fn connections(&self, peer: PeerId) -> Result<(bool, usize), SwarmError> {
        self.ask(|reply| Command::Connections(peer, reply)).await
    }

    /// Closes every connection with `peer`; `false` if there was none. For tests and
    /// diagnostics (the peer may dial again).
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, SwarmError> {
        self.ask(|reply| Command::Disconnect(peer, reply)).await
    }
}
