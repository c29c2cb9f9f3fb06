//! The [`EventLoop`]: the one task that owns the `Swarm`. It answers commands, hands gossip
//! to the per-topic validators (which ask the catalog and report back through an internal
//! channel, so gossipsub forwards, ignores or rejects each message), dials bootstrap and
//! newly learned peers, and runs catalog sync with every new connection (answering and
//! taking pages in other tasks, within each peer's sync budget: see [`super::budget`]).

use super::*;
use crate::bindings::BindingVerdict;

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
    pub(super) cancel: CancellationToken,
}

impl EventLoop {
    pub(super) async fn run(mut self) -> Result<(), std::convert::Infallible> {
        let mut redial = tokio::time::interval(self.config.redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial.tick().await;
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
                endpoint,
                num_established,
                ..
            } => {
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let (base, _) = split_peer(address);
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
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
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
            BehaviourEvent::Limits(never) => match never {},
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
