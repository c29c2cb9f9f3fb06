//! The [`EventLoop`]: the one task that owns the `Swarm`. It answers commands, hands gossip
//! to the per-topic validators (which ask the catalog and report back through an internal
//! channel, so gossipsub forwards, ignores or rejects each message), dials bootstrap and
//! newly learned peers, and runs catalog sync with every new connection (answering and
//! taking pages in other tasks, within each peer's sync budget: see [`super::budget`]).

use super::*;
use crate::bindings::BindingVerdict;

/// The largest segment answer sent over a relayed connection (manifests and init segments
/// fit; media segments go direct, or another provider is asked). Relays are sized for
/// signalling (`relay_circuit_bytes`, 1 MiB by default), so a media segment would be cut.
pub(super) const RELAYED_ANSWER_MAX: usize = 256 * 1024;

/// After a failed hole punch, how long this node does not dial that peer again (it would
/// come through a relay, and the punch would fail again: a symmetric NAT).
pub(super) const UNPUNCHABLE_FOR: Duration = Duration::from_secs(600);

/// Messages to the event loop from the tasks it started.
pub(super) enum Internal {
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
    SegmentServe {
        peer: PeerId,
        request_id: request_response::InboundRequestId,
        relayed: bool,
        channel: request_response::ResponseChannel<SegmentResponse>,
        response: SegmentResponse,
    },
    SegmentRefused {
        peer: PeerId,
        reason: String,
        /// Not for a key this node may not know yet (a rotation it has not fetched).
        disconnect: bool,
    },
}

/// A segment request waiting for a direct connection (the peer is reachable only through a
/// relay, and DCUtR may upgrade the connection in a moment).
pub(super) struct WaitingDirect {
    pub(super) peer: PeerId,
    pub(super) until: tokio::time::Instant,
    pub(super) request: reelnet_proto::SegmentRequest,
    pub(super) reply: oneshot::Sender<Result<P2pFetched, SwarmError>>,
}

pub(super) struct Pending {
    pub(super) id: MessageId,
    pub(super) source: PeerId,
    pub(super) data: Vec<u8>,
}

/// Offers queued gossip messages of one topic to the catalog (revocation lists to the
/// membership), in arrival order.
pub(super) async fn validator(
    topic: Topic,
    mut rx: mpsc::Receiver<Pending>,
    catalog: Catalog,
    membership: Option<Membership>,
    internal: mpsc::UnboundedSender<Internal>,
) -> Result<(), std::convert::Infallible> {
    while let Some(p) = rx.recv().await {
        let verdict = match (topic, &membership) {
            (Topic::Catalog, _) => catalog.offer_record_bytes(&p.data).await,
            (Topic::Manifests, _) => catalog.offer_manifest_bytes(&p.data).await,
            (Topic::Revocations, Some(m)) => Ok(m.offer_revocations(&p.data).await),
            (Topic::Revocations, None) | (Topic::Bindings, None) => Ok(Verdict::Duplicate),
            (Topic::Bindings, Some(m)) => Ok(match m.offer_binding(&p.data).await {
                BindingVerdict::Accepted => Verdict::Accepted,
                BindingVerdict::Duplicate => Verdict::Duplicate,
                BindingVerdict::Stale => Verdict::Stale,
                BindingVerdict::Invalid(reason) => Verdict::Invalid(reason),
            }),
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
pub(super) fn acceptance(verdict: &Verdict) -> MessageAcceptance {
    match verdict {
        Verdict::Accepted => MessageAcceptance::Accept,
        Verdict::Invalid(_) | Verdict::Replay | Verdict::NotMember(_) => MessageAcceptance::Reject,
        Verdict::Duplicate
        | Verdict::Stale
        | Verdict::Expired
        | Verdict::UnknownOrigin
        | Verdict::OtherLineage(_) => MessageAcceptance::Ignore,
    }
}

/// The bytes of a sync page that count against budgets: its records and manifests.
pub(super) fn response_bytes(response: &SyncResponse) -> u64 {
    response
        .records
        .iter()
        .chain(&response.manifests)
        .map(|b| b.len() as u64)
        .sum()
}

/// Owns the `Swarm`; see the module docs.
pub struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) config: SwarmConfig,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) internal_tx: mpsc::UnboundedSender<Internal>,
    pub(super) internal_rx: mpsc::UnboundedReceiver<Internal>,
    pub(super) record_tx: mpsc::Sender<Pending>,
    pub(super) manifest_tx: mpsc::Sender<Pending>,
    pub(super) revocation_tx: mpsc::Sender<Pending>,
    pub(super) binding_tx: mpsc::Sender<Pending>,
    pub(super) catalog: Catalog,
    pub(super) catalog_topic: TopicHash,
    pub(super) manifest_topic: TopicHash,
    pub(super) revocations_topic: TopicHash,
    pub(super) bindings_topic: TopicHash,
    /// Membership changes (new certificate, newer revocation list); `None`: no membership.
    pub(super) member_changes: Option<watch::Receiver<Arc<MemberState>>>,
    /// The serial of the newest revocation list this node has gossiped.
    pub(super) published_revocations: u64,
    /// The gossip sequence of the newest fresh binding this node has gossiped.
    pub(super) published_bindings: u64,
    /// Peers whose sync request is being answered (one at a time each).
    pub(super) serving: HashSet<PeerId>,
    /// Catalog-sync budgets by peer identity, kept across disconnects.
    pub(super) budgets: Budgets,
    pub(super) bootstrapped: bool,
    pub(super) stats: NetworkStats,
    /// AutoNAT's verdict on this node.
    pub(super) reach: ReachabilityTracker,
    /// Which addresses this node may advertise.
    pub(super) book: AddressBook,
    /// Opens the relay server (`relay_server = "auto"`) once the node is public.
    pub(super) gate: RelayGate,
    /// Connected peers that serve the relay hop protocol, with an address to reach them.
    pub(super) relay_candidates: HashMap<PeerId, Multiaddr>,
    /// The relay reservation being held or asked for: relay, listener, circuit address.
    pub(super) reservation: Option<(PeerId, libp2p::core::transport::ListenerId, Multiaddr)>,
    /// Relays whose reservation failed, not asked again before the instant given.
    pub(super) failed_relays: HashMap<PeerId, tokio::time::Instant>,
    /// Open connections that go through a relay, with their peer.
    pub(super) relayed_conns: HashMap<libp2p::swarm::ConnectionId, PeerId>,
    /// Segment answers handed to libp2p and not yet sent: body bytes, relayed.
    pub(super) segment_answers: HashMap<request_response::InboundRequestId, (u64, bool)>,
    /// Peers whose hole punch failed, not dialled again until then.
    pub(super) unpunchable: HashMap<PeerId, tokio::time::Instant>,
    /// Open direct connections, with their peer.
    pub(super) direct_conns: HashMap<libp2p::swarm::ConnectionId, PeerId>,
    /// Segment requests sent over libp2p, awaiting their answer.
    pub(super) segment_pending: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<P2pFetched, SwarmError>>,
    >,
    pub(super) waiting_direct: Vec<WaitingDirect>,
    pub(super) cancel: CancellationToken,
}

impl EventLoop {
    pub(super) async fn run(mut self) -> Result<(), std::convert::Infallible> {
        let mut redial = tokio::time::interval(self.config.redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial.tick().await;
        let mut nat_tick = tokio::time::interval(Duration::from_millis(500));
        nat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commands_open = true;
        let mut changes = self.member_changes.clone();
        if changes.is_some() {
            self.on_membership();
        }
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Ok(()) = async {
                    match changes.as_mut() {
                        Some(c) => c.changed().await,
                        None => std::future::pending().await,
                    }
                } => self.on_membership(),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => commands_open = false,
                },
                Some(msg) = self.internal_rx.recv() => self.on_internal(msg),
                _ = nat_tick.tick() => self.on_nat_tick(),
                _ = redial.tick() => {
                    if self.swarm.connected_peers().next().is_none() {
                        self.dial_bootstrap();
                    } else {
                        self.redial_known();
                    }
                }
            }
        }
        tracing::debug!("swarm stopped");
        Ok(())
    }

    /// Below `target_peers`: ask the DHT again (a node behind NAT is first known by an
    /// address nobody can dial, and only later by its relay circuit address) and dial the
    /// known peers not connected. A circuit dial is what DCUtR upgrades to a direct
    /// connection.
    fn redial_known(&mut self) {
        if self.swarm.connected_peers().count() >= self.config.target_peers {
            return;
        }
        if let Err(err) = self.swarm.behaviour_mut().kad.bootstrap() {
            tracing::debug!(%err, "kademlia bootstrap not started");
        }
        let known: Vec<PeerId> = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .flat_map(|bucket| {
                bucket
                    .iter()
                    .map(|entry| *entry.node.key.preimage())
                    .collect::<Vec<_>>()
            })
            .collect();
        for peer in known {
            self.maybe_dial(peer);
        }
    }

    pub(super) fn dial_bootstrap(&mut self) {
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

    fn member_state(&self) -> Option<Arc<MemberState>> {
        self.member_changes.as_ref().map(|c| c.borrow().clone())
    }

    fn is_revoked(&self, peer: &PeerId) -> bool {
        match (self.member_state(), node_id_of(peer)) {
            (Some(state), Some(node)) => state.is_revoked(&node),
            _ => false,
        }
    }

    /// This node's certificate bytes for sync requests (empty without one).
    fn own_certificate(&self) -> Vec<u8> {
        self.member_state()
            .and_then(|s| s.own_certificate_bytes())
            .unwrap_or_default()
    }

    /// Asks `peer` for the sync page after `after` (the first page: `None`) if its budget
    /// allows another page; otherwise stops syncing from it.
    fn ask_sync(&mut self, peer: PeerId, after: Option<SyncCursor>) {
        let budget = *self.budgets.budget();
        let now = tokio::time::Instant::now();
        if !self.budgets.get(peer, now).take.take_page(&budget, now) {
            self.stats.sync_budget_stopped += 1;
            if after.is_some() {
                tracing::warn!(%peer, "peer's catalog sync is over its sync budget; stopping");
            } else {
                tracing::debug!(%peer, "peer is over its sync budget; not asking for its catalog");
            }
            return;
        }
        let request = SyncRequest {
            after,
            certificate: self.own_certificate(),
        };
        self.swarm.behaviour_mut().sync.send_request(&peer, request);
    }

    /// Publishes `data` on `topic` (no peers or a duplicate is fine).
    fn gossip(&mut self, topic: TopicHash, data: Vec<u8>, what: &str) {
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_)
            | Err(gossipsub::PublishError::Duplicate)
            | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(err) => tracing::debug!(%err, "cannot gossip {what}"),
        }
    }

    /// The membership changed: gossip a newer revocation list and new movie bindings, cut
    /// off revoked peers.
    pub(super) fn on_membership(&mut self) {
        let Some(state) = self.member_state() else {
            return;
        };
        if let (Some(list), Some(trust)) = (&state.revocations, &state.trust) {
            if trust.revocation_serial > self.published_revocations {
                self.published_revocations = trust.revocation_serial;
                let topic = self.revocations_topic.clone();
                self.gossip(topic, list.encode(), "the revocation list");
            }
        }
        let (fresh, seq) = state.bindings.fresh_after(self.published_bindings);
        self.published_bindings = seq;
        for binding in fresh {
            let topic = self.bindings_topic.clone();
            self.gossip(topic, binding.encode(), "a movie binding");
        }
        let revoked: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| node_id_of(p).is_some_and(|n| state.is_revoked(&n)))
            .copied()
            .collect();
        for peer in revoked {
            tracing::warn!(%peer, "disconnecting a revoked node");
            self.stats.revoked_disconnects += 1;
            let _ = self.swarm.disconnect_peer_id(peer);
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
        }
    }

    pub(super) fn maybe_dial(&mut self, peer: PeerId) {
        if self.is_revoked(&peer) {
            return;
        }
        if peer == *self.swarm.local_peer_id()
            || self.swarm.is_connected(&peer)
            || self.swarm.connected_peers().count() >= self.config.target_peers
        {
            return;
        }
        let now = tokio::time::Instant::now();
        self.unpunchable.retain(|_, until| *until > now);
        if self.unpunchable.contains_key(&peer) {
            // Its hole punch failed a moment ago; a new relayed connection would too.
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(err) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %err, "cannot dial discovered peer");
        }
    }

    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let hash = topic.hash();
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
                let hash = &topic.hash();
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
                let _ = reply.send(self.stats);
            }
            Command::Disconnect(peer, reply) => {
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::FetchSegment {
                peer,
                addrs,
                request,
                reply,
            } => self.fetch_segment(peer, addrs, request, reply),
            Command::NatStatus(reply) => {
                let _ = reply.send(self.nat_status());
            }
            Command::Connections(peer, reply) => {
                let relayed = self.relayed_conns.values().filter(|p| **p == peer).count();
                let _ = reply.send((self.swarm.is_connected(&peer), relayed));
            }
        }
    }

    pub(super) fn on_internal(&mut self, msg: Internal) {
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
                let bytes = response_bytes(&response);
                self.stats.sync_bytes_served += bytes;
                let budget = *self.budgets.budget();
                let now = tokio::time::Instant::now();
                self.budgets
                    .get(peer, now)
                    .serve
                    .charge_bytes(&budget, now, bytes);
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
            Internal::SegmentServe {
                peer,
                request_id,
                relayed,
                channel,
                response,
            } => {
                // Counted once the answer has gone out whole (`ResponseSent`): a relay that
                // cuts the circuit mid-answer leaves nothing counted.
                self.segment_answers
                    .insert(request_id, (response.body.len() as u64, relayed));
                if self
                    .swarm
                    .behaviour_mut()
                    .segment
                    .send_response(channel, response)
                    .is_err()
                {
                    self.segment_answers.remove(&request_id);
                    tracing::debug!(%peer, "segment requester went away");
                }
            }
            Internal::SegmentRefused {
                peer,
                reason,
                disconnect,
            } => {
                self.stats.segment_refused += 1;
                tracing::warn!(%peer, %reason, "segment request over libp2p refused: not a member");
                // As for catalog sync: no certificate, a forged one, another network's, a
                // revoked node: no connection either.
                if disconnect {
                    self.stats.not_member_disconnects += 1;
                    let _ = self.swarm.disconnect_peer_id(peer);
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                }
            }
            Internal::Ingested {
                peer,
                invalid,
                next,
            } => {
                self.stats.sync_items_invalid += invalid;
                if invalid > 0 {
                    // Penalised by stopping: no further pages from a peer that sends
                    // invalid or non-member items.
                    tracing::warn!(%peer, invalid, "peer's catalog sync contained invalid items; no more pages from it");
                    return;
                }
                if let Some(after) = next {
                    if self.swarm.is_connected(&peer) {
                        self.ask_sync(peer, Some(after));
                    }
                }
            }
        }
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if endpoint.is_relayed() {
                    tracing::debug!(peer = %peer_id, "relayed connection");
                    self.stats.relayed_connections_total += 1;
                    self.relayed_conns.insert(connection_id, peer_id);
                } else {
                    self.direct_conns.insert(connection_id, peer_id);
                    self.flush_waiting(Some(peer_id));
                }
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let (base, _) = split_peer(address);
                    if !endpoint.is_relayed() {
                        self.relay_candidates
                            .entry(peer_id)
                            .and_modify(|a| *a = base.clone());
                    }
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, base);
                }
                if self.is_revoked(&peer_id) {
                    tracing::warn!(peer = %peer_id, "refusing a revoked node's connection");
                    self.stats.revoked_disconnects += 1;
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, "connected; asking for its catalog");
                    self.ask_sync(peer_id, None);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let DialError::Denied { cause } = &error {
                    if cause
                        .downcast_ref::<connection_limits::Exceeded>()
                        .is_some()
                    {
                        self.stats.connections_denied += 1;
                    }
                }
                tracing::debug!(?peer_id, %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                if let ListenError::Denied { cause } = &error {
                    if cause
                        .downcast_ref::<connection_limits::Exceeded>()
                        .is_some()
                    {
                        self.stats.connections_denied += 1;
                    }
                }
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.relayed_conns.remove(&connection_id);
                self.direct_conns.remove(&connection_id);
                if num_established == 0 {
                    self.relay_candidates.remove(&peer_id);
                }
            }
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if let Some((relay, id, circuit)) = &mut self.reservation {
                    if *id == listener_id {
                        tracing::info!(%relay, %address, "relay reservation: listening through the relay");
                        *circuit = address.clone();
                    }
                }
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.on_listener_gone(listener_id, format!("{reason:?}")),
            SwarmEvent::ListenerError { listener_id, error } => {
                self.on_listener_gone(listener_id, error.to_string())
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                tracing::debug!(%address, "external address candidate");
                self.book.on_candidate(address);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed; advertising it");
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    pub(super) fn on_behaviour_event(&mut self, event: BehaviourEvent) {
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
                } else if message.topic == self.revocations_topic {
                    Some(&self.revocation_tx)
                } else if message.topic == self.bindings_topic {
                    Some(&self.binding_tx)
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
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    let addr = self.relay_candidates.get(&peer_id).cloned().or_else(|| {
                        info.listen_addrs
                            .iter()
                            .find(|a| !nat::is_circuit(a))
                            .cloned()
                    });
                    if let Some(addr) = addr {
                        self.relay_candidates.insert(peer_id, addr);
                    }
                } else {
                    self.relay_candidates.remove(&peer_id);
                }
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
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => {
                // Also when only its addresses changed: a relay circuit address may have
                // come, where the first ones could not be dialled.
                self.maybe_dial(peer);
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
            BehaviourEvent::Segment(event) => self.on_segment_event(event),
            BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::Candidates(never) => match never {},
            BehaviourEvent::AutonatClient(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            }) => {
                let reachable = result.is_ok();
                match &result {
                    Ok(()) => {
                        tracing::info!(addr = %tested_addr, %server, "AutoNAT: address reachable")
                    }
                    Err(err) => {
                        tracing::info!(addr = %tested_addr, %server, %err, "AutoNAT: address not reachable")
                    }
                }
                self.book.on_probe(&tested_addr, reachable);
                if !reachable {
                    // A failed probe withdraws an address AutoNAT had confirmed before.
                    if !self.book.may_advertise(&tested_addr) {
                        self.swarm.remove_external_address(&tested_addr);
                    }
                }
                if let Some(state) = self.reach.on_probe(&tested_addr, reachable) {
                    self.on_reachability(state);
                }
            }
            BehaviourEvent::AutonatServer(event) => {
                tracing::debug!(client = %event.client, addr = %event.tested_addr, ok = event.result.is_ok(), "AutoNAT: probed a peer");
            }
            BehaviourEvent::RelayServer(event) => {
                tracing::debug!(?event, "relay server");
            }
            BehaviourEvent::RelayClient(event) => match event {
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                } => {
                    if !renewal {
                        tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                    }
                    self.stats.relay_reservations = 1;
                }
                other => tracing::debug!(?other, "relay client"),
            },
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(connection) => {
                    self.stats.hole_punch_success += 1;
                    tracing::info!(peer = %remote_peer_id, "hole punch succeeded: direct connection");
                    // Later requests go over the direct connection, not the relay.
                    let relayed: Vec<_> = self
                        .relayed_conns
                        .iter()
                        .filter(|(id, p)| **p == remote_peer_id && **id != connection)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in relayed {
                        self.swarm.close_connection(id);
                    }
                    self.flush_waiting(Some(remote_peer_id));
                }
                Err(err) => {
                    self.stats.hole_punch_failure += 1;
                    // Relays carry signalling, and no media goes over one (see
                    // RELAYED_ANSWER_MAX): a relayed connection that cannot be upgraded
                    // would only hold one of the relay's few circuits. Close it, and do not
                    // dial that peer through a relay again for a while; catalogs and
                    // manifests still reach both through the other peers.
                    tracing::info!(peer = %remote_peer_id, %err, "hole punch failed; closing the relayed connection for {UNPUNCHABLE_FOR:?}");
                    self.unpunchable.insert(
                        remote_peer_id,
                        tokio::time::Instant::now() + UNPUNCHABLE_FOR,
                    );
                    let relayed: Vec<_> = self
                        .relayed_conns
                        .iter()
                        .filter(|(_, p)| **p == remote_peer_id)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in relayed {
                        self.swarm.close_connection(id);
                    }
                }
            },
            BehaviourEvent::Upnp(event) => match event {
                upnp::Event::NewExternalAddr { external_addr, .. } => {
                    if self.book.on_upnp_mapped(&external_addr) == nat::AddressAction::Unconfirm {
                        tracing::info!(addr = %external_addr, "UPnP mapped a port; probing it before advertising");
                        self.swarm.remove_external_address(&external_addr);
                        self.swarm.behaviour_mut().candidates.push(external_addr);
                    }
                }
                upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                    tracing::info!(addr = %external_addr, "UPnP mapping expired");
                    self.book.on_probe(&external_addr, false);
                    if let Some(state) = self.reach.on_expired(&external_addr) {
                        self.on_reachability(state);
                    }
                }
                upnp::Event::GatewayNotFound => tracing::info!("UPnP: no gateway found"),
                upnp::Event::NonRoutableGateway => {
                    tracing::info!("UPnP: the gateway is not on the public internet")
                }
            },
        }
    }

    pub(super) fn on_sync_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if let Some(state) = self.member_state() {
                    let verdict = match node_id_of(&peer) {
                        Some(node) => state.check(&request.certificate, &node).map(|_| ()),
                        None => Err(reelnet_proto::membership::MembershipError::BadSignature),
                    };
                    if let Err(err) = verdict {
                        // Dropping the channel refuses the request.
                        self.stats.sync_refused += 1;
                        tracing::warn!(%peer, %err, "catalog sync refused: the requester is not a member");
                        // No certificate, a forged one, another network's, a revoked node:
                        // not a member, so no connection either. (A key this node does not
                        // know yet may be a rotation it has not fetched: only refused.)
                        use reelnet_proto::membership::MembershipError as E;
                        if !matches!(err, E::UnknownKey(_) | E::NotYetValid { .. }) {
                            self.stats.not_member_disconnects += 1;
                            let _ = self.swarm.disconnect_peer_id(peer);
                            self.swarm.behaviour_mut().kad.remove_peer(&peer);
                        }
                        return;
                    }
                }
                if self.serving.contains(&peer) {
                    // One request at a time per peer; dropping the channel refuses this one.
                    tracing::debug!(%peer, "concurrent sync request refused");
                    return;
                }
                let budget = *self.budgets.budget();
                let now = tokio::time::Instant::now();
                if !self.budgets.get(peer, now).serve.take_page(&budget, now) {
                    // Dropping the channel refuses the request.
                    self.stats.sync_budget_refused += 1;
                    tracing::debug!(%peer, "catalog sync refused: the requester is over its sync budget");
                    return;
                }
                self.serving.insert(peer);
                let catalog = self.catalog.clone();
                let internal = self.internal_tx.clone();
                reelnet_runtime::shutdown::spawn("catalog-sync-serve", async move {
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
                let bytes = response_bytes(&response);
                self.stats.sync_bytes_received += bytes;
                let budget = *self.budgets.budget();
                let now = tokio::time::Instant::now();
                self.budgets
                    .get(peer, now)
                    .take
                    .charge_bytes(&budget, now, bytes);
                let catalog = self.catalog.clone();
                let internal = self.internal_tx.clone();
                reelnet_runtime::shutdown::spawn("catalog-sync-ingest", async move {
                    let mut invalid = 0u64;
                    // Records first: their certificates make their nodes' manifests
                    // acceptable.
                    for bytes in &response.records {
                        if let Verdict::Invalid(reason) | Verdict::NotMember(reason) =
                            catalog.offer_record_bytes(bytes).await?
                        {
                            tracing::debug!(%peer, %reason, "invalid record in sync");
                            invalid += 1;
                        }
                    }
                    for bytes in &response.manifests {
                        if let Verdict::Invalid(reason) | Verdict::NotMember(reason) =
                            catalog.offer_manifest_bytes(bytes).await?
                        {
                            tracing::debug!(%peer, %reason, "invalid manifest in sync");
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

/// NAT traversal and the segment fallback.
impl EventLoop {
    /// Keeps a relay reservation while the node is not public; sends segment requests
    /// whose wait for a direct connection is over.
    pub(super) fn on_nat_tick(&mut self) {
        let now = tokio::time::Instant::now();
        self.flush_waiting(None);
        self.stats.reachability = self.reach.state();
        if !self.reach.wants_relay(now) {
            if let Some((relay, id, _)) = self.reservation.take() {
                tracing::info!(%relay, "public now: dropping the relay reservation");
                self.swarm.remove_listener(id);
                self.stats.relay_reservations = 0;
            }
            return;
        }
        if self.reservation.is_some() {
            return;
        }
        self.failed_relays.retain(|_, until| *until > now);
        let me = *self.swarm.local_peer_id();
        // Configured relays first, then connected members serving the hop protocol.
        let configured = self.config.nat.relays.iter().filter_map(|addr| {
            let (base, peer) = split_peer(addr);
            peer.map(|p| (p, base))
        });
        let learned = self
            .relay_candidates
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect::<Vec<_>>();
        // Never a relay reached through a relay: circuits do not nest.
        let choice = configured.chain(learned).find(|(p, base)| {
            *p != me
                && !nat::is_circuit(base)
                && !self.failed_relays.contains_key(p)
                && !self.is_revoked(p)
        });
        let Some((relay, base)) = choice else {
            return;
        };
        let circuit = base.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(id) => {
                tracing::info!(%relay, addr = %circuit, state = self.reach.state().as_str(), "asking for a relay reservation");
                self.reservation = Some((relay, id, circuit));
            }
            Err(err) => {
                tracing::warn!(%relay, %err, "cannot listen through the relay");
                self.failed_relays
                    .insert(relay, now + Duration::from_secs(60));
            }
        }
    }

    pub(super) fn on_reachability(&mut self, state: Reachability) {
        tracing::info!(state = state.as_str(), "reachability changed");
        self.stats.reachability = state;
        if self.config.nat.relay_server == nat::RelayServerMode::Auto {
            let open = state == Reachability::Public;
            if open != self.gate.is_open() {
                tracing::info!(serving = open, "relay server");
            }
            self.gate.set(open);
            if let Some(relay) = self.swarm.behaviour_mut().relay_server.as_mut() {
                relay.set_status(Some(if open {
                    relay::Status::Enable
                } else {
                    relay::Status::Disable
                }));
            }
        }
        self.on_nat_tick();
    }

    fn on_listener_gone(&mut self, listener: libp2p::core::transport::ListenerId, reason: String) {
        let Some((relay, id, _)) = &self.reservation else {
            return;
        };
        if *id != listener {
            return;
        }
        tracing::info!(%relay, %reason, "relay reservation lost; trying another relay later");
        self.failed_relays.insert(
            *relay,
            tokio::time::Instant::now() + Duration::from_secs(30),
        );
        self.reservation = None;
        self.stats.relay_reservations = 0;
    }

    /// Sends a segment request over libp2p, or parks it while the peer is reachable only
    /// through a relay (DCUtR may give a direct connection in a moment).
    fn fetch_segment(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: reelnet_proto::SegmentRequest,
        reply: oneshot::Sender<Result<P2pFetched, SwarmError>>,
    ) {
        if self.is_revoked(&peer) {
            let _ = reply.send(Err(SwarmError::Segment("the peer is revoked".into())));
            return;
        }
        let direct = self.direct_conns.values().any(|p| *p == peer);
        if !direct
            && self
                .unpunchable
                .get(&peer)
                .is_some_and(|until| *until > tokio::time::Instant::now())
        {
            // Dialling would give one more relayed connection, one more failed punch, and
            // no media through the relay anyway.
            let _ = reply.send(Err(SwarmError::Segment(
                "no direct connection to the peer (its hole punch failed); not through a relay"
                    .into(),
            )));
            return;
        }
        for addr in &addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        let relayed_only = self.relayed_conns.values().any(|p| *p == peer)
            && !self.direct_conns.values().any(|p| *p == peer);
        if relayed_only && !self.config.direct_wait.is_zero() {
            self.waiting_direct.push(WaitingDirect {
                peer,
                until: tokio::time::Instant::now() + self.config.direct_wait,
                request,
                reply,
            });
            return;
        }
        self.send_segment_request(peer, addrs, request, reply);
    }

    fn send_segment_request(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: reelnet_proto::SegmentRequest,
        reply: oneshot::Sender<Result<P2pFetched, SwarmError>>,
    ) {
        let request = reelnet_proto::P2pSegmentRequest {
            request,
            certificate: self.own_certificate(),
        };
        let id = self
            .swarm
            .behaviour_mut()
            .segment
            .send_request_with_addresses(&peer, request, addrs);
        self.segment_pending.insert(id, reply);
    }

    /// Sends parked requests: those for `peer` (which now has a direct connection), and
    /// every one whose wait is over.
    pub(super) fn flush_waiting(&mut self, peer: Option<PeerId>) {
        if self.waiting_direct.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_direct)
            .into_iter()
            .partition(|w| Some(w.peer) == peer || w.until <= now);
        self.waiting_direct = waiting;
        for w in ready {
            self.send_segment_request(w.peer, Vec::new(), w.request, w.reply);
        }
    }

    pub(super) fn nat_status(&self) -> NatStatus {
        let mut listen: Vec<String> = self.swarm.listeners().map(|a| a.to_string()).collect();
        listen.sort();
        let mut external: Vec<String> = self
            .swarm
            .external_addresses()
            .map(|a| a.to_string())
            .collect();
        external.sort();
        NatStatus {
            reachability: self.reach.state(),
            confirmed: {
                let mut c: Vec<String> = self.reach.confirmed().map(|a| a.to_string()).collect();
                c.sort();
                c
            },
            candidates: self
                .book
                .candidates()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            external,
            listen,
            relay: self
                .reservation
                .as_ref()
                .map(|(relay, _, addr)| format!("{addr} (relay {relay})")),
            relay_reservations: self.stats.relay_reservations,
            relay_serving: self.gate.is_open()
                && self.config.nat.relay_server != nat::RelayServerMode::Off,
            relayed_connections: self.relayed_conns.len(),
            hole_punch_success: self.stats.hole_punch_success,
            hole_punch_failure: self.stats.hole_punch_failure,
        }
    }

    pub(super) fn on_segment_event(
        &mut self,
        event: request_response::Event<reelnet_proto::P2pSegmentRequest, SegmentResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    request_response::Message::Request {
                        request,
                        channel,
                        request_id,
                    },
            } => {
                let (Some(service), Some(node)) = (self.config.segments.clone(), node_id_of(&peer))
                else {
                    // Dropping the channel refuses the request.
                    return;
                };
                let relayed = self.relayed_conns.contains_key(&connection_id);
                let internal = self.internal_tx.clone();
                reelnet_runtime::shutdown::spawn("segment-p2p-serve", async move {
                    let msg = match service.answer(node, &request).await {
                        // Relays carry signalling, not media: over a relayed connection only
                        // small answers (manifests, init segments) go out; for the rest the
                        // requester is told to try another provider (or a direct connection).
                        Ok(res) if relayed && res.body.len() > RELAYED_ANSWER_MAX => {
                            Internal::SegmentServe {
                                peer,
                                request_id,
                                relayed,
                                channel,
                                response: SegmentResponse::error(reelnet_proto::Status::Busy),
                            }
                        }
                        Ok(response) => Internal::SegmentServe {
                            peer,
                            request_id,
                            relayed,
                            channel,
                            response,
                        },
                        Err(refused) => {
                            use reelnet_proto::membership::MembershipError as E;
                            let crate::transfer::Refused::NotMember(err) = &refused;
                            Internal::SegmentRefused {
                                peer,
                                reason: refused.to_string(),
                                disconnect: !matches!(
                                    err,
                                    E::UnknownKey(_) | E::NotYetValid { .. }
                                ),
                            }
                        }
                    };
                    let _ = internal.send(msg);
                    Ok::<(), std::convert::Infallible>(())
                });
            }
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
            } => {
                let relayed = self.relayed_conns.contains_key(&connection_id);
                let bytes = response.body.len() as u64;
                if relayed {
                    self.stats.segment_fetched_relayed_bytes += bytes;
                } else {
                    self.stats.segment_fetched_direct_bytes += bytes;
                }
                if let Some(reply) = self.segment_pending.remove(&request_id) {
                    let _ = reply.send(Ok(P2pFetched { response, relayed }));
                } else {
                    tracing::debug!(%peer, "segment answer nobody waits for");
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "segment request over libp2p failed");
                if let Some(reply) = self.segment_pending.remove(&request_id) {
                    let _ = reply.send(Err(SwarmError::Segment(error.to_string())));
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                self.segment_answers.remove(&request_id);
                tracing::debug!(%peer, %error, "segment answer over libp2p failed");
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                if let Some((bytes, relayed)) = self.segment_answers.remove(&request_id) {
                    if relayed {
                        self.stats.segment_served_relayed_bytes += bytes;
                    } else {
                        self.stats.segment_served_direct_bytes += bytes;
                    }
                }
            }
        }
    }
}
