//! The index the catalog task owns: live records and the highest seq seen per node,
//! the newest manifest per ingest and what every older version had, and who holds which
//! version. Accepting records and manifests by the rules in the module docs, the event
//! stream, the counters, and the sweep that expires records and forgets orphans.

use super::*;

/// (movie, origin, ingest id): one ingest, across the versions of its manifest.
pub(super) type IngestKey = (MovieId, NodeId, [u8; 16]);

pub(super) struct RecordEntry {
    pub(super) signed: SignedCatalogRecord,
    pub(super) record: CatalogRecord,
    pub(super) quic_addr: SocketAddr,
    /// Until when (unix seconds, this node's clock) the record counts as live: see
    /// [`live_until`].
    pub(super) live_until: u64,
}

/// Until when a record received at `now` counts as live on this node's clock: its lifetime
/// (`expires_at - issued_at`, stamped by the sender's clock) counted from receipt, never
/// past `expires_at` plus the tolerated clock skew. So a receiver whose clock is up to
/// `MAX_CLOCK_SKEW_SECS` (plus transit slack, `SKEW_TOLERANCE_SECS`) ahead of the sender's does not drop a fresh record early, one
/// behind does not keep it longer than its lifetime, and a record relayed late still dies
/// by its stamp (docs/clock-skew.md).
pub(super) fn live_until(record: &CatalogRecord, now: u64) -> u64 {
    let lifetime = record.expires_at.saturating_sub(record.issued_at);
    now.saturating_add(lifetime)
        .min(record.expires_at.saturating_add(SKEW_TOLERANCE_SECS))
}

/// The highest seq seen from a node, kept beyond the record's expiry.
pub(super) struct SeqMark {
    pub(super) seq: u64,
    pub(super) accepted_at: Instant,
    /// Unix seconds after which no record with a lower seq can still be live.
    pub(super) forget_after: u64,
}

pub(super) struct ManifestEntry {
    pub(super) signed: Arc<SignedManifest>,
    pub(super) manifest: Arc<Manifest>,
    pub(super) accepted_at: Instant,
    /// When a live record last held any version of this ingest.
    pub(super) last_held: Instant,
    /// Acceptance order (eviction goes oldest first).
    pub(super) order: u64,
    /// What it is charged against its origin's budget.
    pub(super) charge: usize,
    /// Of its movie's bound lineage: evicted only after everything unbound.
    pub(super) protected: bool,
}

/// What is remembered of every version of a manifest seen.
pub(super) struct VersionInfo {
    pub(super) ingest: IngestKey,
    /// Media segments per track in that version.
    pub(super) segments: Vec<u32>,
    /// When a live record or the ingest's newest version last named it.
    pub(super) last_named: Instant,
}

/// How long a version nobody names any more still resolves to its ingest's newest version.
/// Players of a growing (EVENT) playlist keep reloading the variant URLs the master gave them
/// at the start, which name the version of that moment: for as long as a movie lasts.
pub(super) const VERSION_RETENTION: Duration = Duration::from_secs(6 * 3600);
/// Most remembered versions: past it, versions nobody names go first, whatever their age.
pub(super) const MAX_VERSIONS: usize = 50_000;

pub(super) struct State {
    pub(super) config: CatalogConfig,
    pub(super) events: broadcast::Sender<CatalogEvent>,
    pub(super) records: BTreeMap<NodeId, RecordEntry>,
    pub(super) seqs: HashMap<NodeId, SeqMark>,
    /// Newest version of each ingest.
    pub(super) manifests: BTreeMap<ManifestId, ManifestEntry>,
    /// Ordered, so one movie's ingests are a range.
    pub(super) latest: BTreeMap<IngestKey, ManifestId>,
    pub(super) versions: HashMap<ManifestId, VersionInfo>,
    /// Known version ids of each ingest.
    pub(super) ingest_versions: HashMap<IngestKey, BTreeSet<ManifestId>>,
    /// Manifest id (any version) → nodes whose live record lists it.
    pub(super) held_by: HashMap<ManifestId, BTreeSet<NodeId>>,
    pub(super) stats: CatalogStats,
    /// Membership: the verified certificate of every node with an accepted record, and the
    /// state (trust, revocations) to judge them by. `None`: no membership checks.
    pub(super) membership: Option<watch::Receiver<Arc<MemberState>>>,
    pub(super) members: HashMap<NodeId, Certificate>,
    /// Verified manifests whose origin had no known certificate yet (a manifest can be
    /// validated before its origin's record): taken in when that record arrives. Bounded
    /// by count and bytes, oldest dropped first.
    pub(super) pending: std::collections::VecDeque<Parked>,
    pub(super) pending_bytes: usize,
    /// Verified manifests refused for another lineage, kept (bounded the same way) in case
    /// the binding moves to them: a re-point's new source can arrive over gossip before
    /// the new binding does, and its origin gossips it only once.
    pub(super) rebind_wait: std::collections::VecDeque<Parked>,
    pub(super) rebind_wait_bytes: usize,
    /// Movie bindings (from the membership state; empty without membership).
    pub(super) bindings: Arc<BindingTable>,
    /// Per movie, lineages that were bound before and stay playable until the instant.
    pub(super) retired: HashMap<MovieId, Vec<(NodeId, [u8; 16], Instant)>>,
    /// Lineages already logged as refused.
    pub(super) logged: HashSet<IngestKey>,
    /// What each origin takes of the catalog, and the total.
    pub(super) usage: HashMap<NodeId, Usage>,
    pub(super) total_bytes: usize,
    /// Acceptance counter for [`ManifestEntry::order`].
    pub(super) order: u64,
    /// Image hash (poster, backdrop) → manifests that name it.
    pub(super) images: HashMap<reelnet_proto::SegmentHash, BTreeSet<ManifestId>>,
    /// Grows with every change a listing could show.
    pub(super) generation: u64,
    /// The last full listing: its generation, when it was built, how long it took.
    pub(super) listing: Option<(u64, Instant, Duration, Arc<Vec<MovieSummary>>)>,
}

/// A verified manifest waiting: its id, signed form and content.
pub(super) type Parked = (ManifestId, SignedManifest, Manifest);

/// Adds `item` to a bounded waiting room (at most [`MAX_PENDING`] manifests and
/// [`MAX_PENDING_BYTES`]; the oldest go first).
pub(super) fn park_in(
    queue: &mut std::collections::VecDeque<Parked>,
    bytes: &mut usize,
    item: Parked,
) {
    if queue.iter().any(|(p, _, _)| *p == item.0) {
        return;
    }
    let size = item.1.manifest_bytes().len();
    if size > MAX_PENDING_BYTES {
        return;
    }
    while queue.len() >= MAX_PENDING || *bytes + size > MAX_PENDING_BYTES {
        match queue.pop_front() {
            Some((_, old, _)) => *bytes -= old.manifest_bytes().len(),
            None => break,
        }
    }
    *bytes += size;
    queue.push_back(item);
}

/// Most manifests waiting for their origin's record.
const MAX_PENDING: usize = 64;
/// Most bytes of manifests waiting for their origin's record.
const MAX_PENDING_BYTES: usize = 16 << 20;

impl State {
    pub(super) fn new(
        config: CatalogConfig,
        events: broadcast::Sender<CatalogEvent>,
        membership: Option<watch::Receiver<Arc<MemberState>>>,
    ) -> Self {
        let bindings = membership
            .as_ref()
            .map(|m| m.borrow().bindings.clone())
            .unwrap_or_default();
        Self {
            config,
            events,
            records: BTreeMap::new(),
            seqs: HashMap::new(),
            manifests: BTreeMap::new(),
            latest: BTreeMap::new(),
            versions: HashMap::new(),
            ingest_versions: HashMap::new(),
            held_by: HashMap::new(),
            stats: CatalogStats::default(),
            membership,
            members: HashMap::new(),
            pending: std::collections::VecDeque::new(),
            pending_bytes: 0,
            rebind_wait: std::collections::VecDeque::new(),
            rebind_wait_bytes: 0,
            bindings,
            retired: HashMap::new(),
            logged: HashSet::new(),
            usage: HashMap::new(),
            total_bytes: 0,
            order: 0,
            images: HashMap::new(),
            generation: 0,
            listing: None,
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut membership = self.membership.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = sweep.tick() => self.sweep(crate::unix_now()),
                Ok(()) = async {
                    match membership.as_mut() {
                        Some(m) => m.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.drop_revoked();
                    let table = membership
                        .as_ref()
                        .map(|m| m.borrow().bindings.clone())
                        .unwrap_or_default();
                    self.apply_bindings(table);
                }
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
            }
        }
        Ok(())
    }

    pub(super) fn emit(&mut self, event: CatalogEvent) {
        self.generation += 1;
        // No subscribers is fine.
        let _ = self.events.send(event);
    }

    pub(super) fn count(&mut self, verdict: &Verdict) {
        let s = &mut self.stats;
        match verdict {
            Verdict::Accepted => s.accepted += 1,
            Verdict::Duplicate => s.duplicate += 1,
            Verdict::Stale => s.stale += 1,
            Verdict::Replay => s.replay += 1,
            Verdict::Expired => s.expired += 1,
            Verdict::Invalid(_) => s.invalid += 1,
            Verdict::NotMember(_) => s.not_member += 1,
            Verdict::UnknownOrigin => s.unknown_origin += 1,
            Verdict::OtherLineage(_) => s.other_lineage += 1,
        }
    }

    pub(super) fn handle(&mut self, cmd: Command) {
        let now = crate::unix_now();
        match cmd {
            Command::Record {
                signed,
                record,
                quic_addr,
                cert,
                reply,
            } => {
                let node = record.node;
                let v = self.insert_record(signed, record, quic_addr, now);
                if let (Verdict::Accepted, Some(cert)) = (&v, cert) {
                    self.members.insert(node, cert);
                    self.adopt_pending(&node);
                }
                if v == Verdict::Accepted {
                    self.enforce_budget();
                }
                self.count(&v);
                let _ = reply.send(v);
            }
            Command::KnowsManifest { id, reply } => {
                let _ = reply.send(self.manifests.contains_key(&id));
            }
            Command::Manifest {
                id,
                signed,
                manifest,
                reply,
            } => {
                let parked = (signed.clone(), manifest.clone());
                let v = self.insert_manifest(id, signed, manifest);
                match v {
                    Verdict::UnknownOrigin => self.park(id, parked.0, parked.1),
                    Verdict::OtherLineage(_) => park_in(
                        &mut self.rebind_wait,
                        &mut self.rebind_wait_bytes,
                        (id, parked.0, parked.1),
                    ),
                    _ => {}
                }
                if v == Verdict::Accepted {
                    self.enforce_budget();
                }
                self.count(&v);
                let _ = reply.send(v);
            }
            Command::Count { verdict } => self.count(&verdict),
            Command::Providers {
                id,
                track,
                index,
                reply,
            } => {
                let _ = reply.send(self.providers(&id, track, index, now));
            }
            Command::Movies { reply } => {
                let _ = reply.send(self.listing(now));
            }
            Command::Movie { id, reply } => {
                let _ = reply.send(self.movie(&id, now));
            }
            Command::ImageRefs { hash, reply } => {
                let refs = self
                    .images
                    .get(&hash)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.manifests.get(id))
                    .map(|e| (e.manifest.movie.clone(), e.manifest.origin))
                    .collect();
                let _ = reply.send(refs);
            }
            Command::GetManifest { id, reply } => {
                let _ = reply.send(self.manifests.get(&id).map(|e| e.to_public(id)));
            }
            Command::LatestOf { id, reply } => {
                let latest = self
                    .versions
                    .get(&id)
                    .and_then(|v| self.latest.get(&v.ingest))
                    .and_then(|latest| {
                        self.manifests
                            .get(latest)
                            .map(|entry| entry.to_public(*latest))
                    });
                let _ = reply.send(latest);
            }
            Command::GetRecord { node, reply } => {
                let r = self
                    .records
                    .get(&node)
                    .filter(|e| e.live_until > now)
                    .map(|e| e.record.clone());
                let _ = reply.send(r);
            }
            Command::LiveNodes { reply } => {
                let nodes = self
                    .live_records(now)
                    .map(|e| LiveNode {
                        node: e.record.node,
                        quic_addr: e.quic_addr,
                        gateway_url: e.record.gateway_url.clone(),
                        seq: e.record.seq,
                        expires_at: e.record.expires_at,
                        held: e.record.held.len(),
                        replica: e.record.replica,
                    })
                    .collect();
                let _ = reply.send(nodes);
            }
            Command::Snapshot { reply } => {
                let snap = Snapshot {
                    records: self.live_records(now).map(|e| e.signed.clone()).collect(),
                    manifests: self
                        .manifests
                        .values()
                        .map(|e| SignedManifest::clone(&e.signed))
                        .collect(),
                };
                let _ = reply.send(snap);
            }
            Command::SyncPage {
                after,
                max_bytes,
                reply,
            } => {
                let _ = reply.send(self.sync_page(after, max_bytes, now));
            }
            Command::Stats { reply } => {
                let mut s = self.stats.clone();
                s.records = self.live_records(now).count();
                s.manifests = self.manifests.len();
                s.bytes = self.total_bytes;
                s.bound_movies = self.bindings.len();
                s.bindings_taken = self.bindings.accepted;
                let _ = reply.send(s);
            }
        }
    }

    pub(super) fn live_records(&self, now: u64) -> impl Iterator<Item = &RecordEntry> {
        self.records.values().filter(move |e| e.live_until > now)
    }

    pub(super) fn older_verdict(&self, accepted_at: Instant) -> Verdict {
        if accepted_at.elapsed() > self.config.replay_grace {
            Verdict::Replay
        } else {
            Verdict::Stale
        }
    }

    pub(super) fn insert_record(
        &mut self,
        signed: SignedCatalogRecord,
        record: CatalogRecord,
        quic_addr: SocketAddr,
        now: u64,
    ) -> Verdict {
        let node = record.node;
        if let Some(mark) = self.seqs.get(&node) {
            if record.seq == mark.seq {
                return Verdict::Duplicate;
            }
            if record.seq < mark.seq {
                return self.older_verdict(mark.accepted_at);
            }
        }
        let live_until = live_until(&record, now);
        if live_until <= now {
            return Verdict::Expired;
        }
        self.seqs.insert(
            node,
            SeqMark {
                seq: record.seq,
                accepted_at: Instant::now(),
                forget_after: record
                    .issued_at
                    .max(now)
                    .saturating_add(MAX_RECORD_TTL_SECS + SKEW_TOLERANCE_SECS),
            },
        );
        if let Some(old) = self.records.remove(&node) {
            self.unindex(&old.record);
        }
        for held in &record.held {
            self.held_by.entry(held.manifest).or_default().insert(node);
        }
        // Manifests this node holds are not orphans.
        let held_ingests: Vec<IngestKey> = record
            .held
            .iter()
            .filter_map(|h| self.versions.get(&h.manifest).map(|v| v.ingest.clone()))
            .collect();
        for ingest in held_ingests {
            if let Some(entry) = self
                .latest
                .get(&ingest)
                .and_then(|id| self.manifests.get_mut(id))
            {
                entry.last_held = Instant::now();
            }
        }
        let seq = record.seq;
        self.charge_record(node, authority::charge(signed.record_bytes().len()));
        self.records.insert(
            node,
            RecordEntry {
                signed,
                record,
                quic_addr,
                live_until,
            },
        );
        self.emit(CatalogEvent::RecordAccepted { node, seq });
        Verdict::Accepted
    }

    /// With membership checks: why a manifest from `origin` must not be accepted, if so.
    fn origin_verdict(&self, origin: &NodeId) -> Option<Verdict> {
        let state = self.membership.as_ref()?.borrow().clone();
        if state.is_revoked(origin) {
            return Some(Verdict::NotMember(format!(
                "origin {} is revoked",
                origin.short()
            )));
        }
        let Some(cert) = self.members.get(origin) else {
            return Some(Verdict::UnknownOrigin);
        };
        if cert.not_after.saturating_add(SKEW_TOLERANCE_SECS) <= crate::unix_now() {
            return Some(Verdict::UnknownOrigin);
        }
        if !cert.roles.has(RoleName::Ingest) {
            return Some(Verdict::NotMember(format!(
                "origin {} lacks the ingest role (has {})",
                origin.short(),
                cert.roles.to_list()
            )));
        }
        None
    }

    /// Keeps a manifest whose origin is not known yet (bounded; see `pending`).
    fn park(&mut self, id: ManifestId, signed: SignedManifest, manifest: Manifest) {
        park_in(
            &mut self.pending,
            &mut self.pending_bytes,
            (id, signed, manifest),
        );
    }

    /// Takes in the waiting manifests of `origin`, whose certificate is known now.
    fn adopt_pending(&mut self, origin: &NodeId) {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, _, m)| m.origin == *origin);
        self.pending = rest.into();
        for (id, signed, manifest) in mine {
            self.pending_bytes -= signed.manifest_bytes().len();
            let v = self.insert_manifest(id, signed, manifest);
            self.count(&v);
        }
    }

    /// Drops the records of revoked nodes and the manifests they originated.
    pub(super) fn drop_revoked(&mut self) {
        let Some(state) = self.membership.as_ref().map(|m| m.borrow().clone()) else {
            return;
        };
        let Some(trust) = state.trust.as_ref() else {
            return;
        };
        for node in trust.revoked.iter() {
            self.members.remove(node);
            if let Some(old) = self.records.remove(node) {
                self.unindex(&old.record);
                self.charge_record(*node, 0);
                tracing::warn!(node = %node.short(), "dropped a revoked node's record");
                self.emit(CatalogEvent::RecordExpired { node: *node });
            }
        }
        let gone: Vec<(IngestKey, ManifestId)> = self
            .latest
            .iter()
            .filter(|(ingest, _)| trust.revoked.contains(&ingest.1))
            .map(|(k, id)| (k.clone(), *id))
            .collect();
        for (ingest, id) in gone {
            tracing::warn!(manifest = %id, "dropped a manifest of a revoked origin");
            self.forget_ingest(&ingest);
        }
    }

    pub(super) fn unindex(&mut self, record: &CatalogRecord) {
        for held in &record.held {
            if let Some(nodes) = self.held_by.get_mut(&held.manifest) {
                nodes.remove(&record.node);
                if nodes.is_empty() {
                    self.held_by.remove(&held.manifest);
                }
            }
        }
    }

    pub(super) fn insert_manifest(
        &mut self,
        id: ManifestId,
        signed: SignedManifest,
        manifest: Manifest,
    ) -> Verdict {
        if self.manifests.contains_key(&id) {
            return Verdict::Duplicate;
        }
        if let Some(verdict) = self.origin_verdict(&manifest.origin) {
            return verdict;
        }
        if self.lineage(&manifest.movie, &manifest.origin, &manifest.ingest_id)
            == authority::Lineage::Other
        {
            return self.other_lineage(&manifest);
        }
        let ingest: IngestKey = (manifest.movie.clone(), manifest.origin, manifest.ingest_id);
        if let Some(current_id) = self.latest.get(&ingest).copied() {
            if let Some(current) = self.manifests.get(&current_id) {
                if manifest.seq == current.manifest.seq {
                    return Verdict::Duplicate;
                }
                if manifest.seq < current.manifest.seq {
                    let accepted_at = current.accepted_at;
                    // Remember the version anyway: records may name it.
                    self.remember_version(id, &ingest, &manifest);
                    return self.older_verdict(accepted_at);
                }
            }
            if let Some(old) = self.manifests.remove(&current_id) {
                self.uncharge_manifest(current_id, &old);
            }
            self.emit(CatalogEvent::ManifestForgotten { id: current_id });
        }
        self.remember_version(id, &ingest, &manifest);
        self.latest.insert(ingest, id);
        let movie = manifest.movie.clone();
        let now = Instant::now();
        self.order += 1;
        let protected = self.lineage(&manifest.movie, &manifest.origin, &manifest.ingest_id)
            == authority::Lineage::Bound;
        let entry = ManifestEntry {
            protected,
            charge: authority::charge(signed.manifest_bytes().len()),
            signed: Arc::new(signed),
            manifest: Arc::new(manifest),
            accepted_at: now,
            last_held: now,
            order: self.order,
        };
        self.charge_manifest(id, &entry);
        self.manifests.insert(id, entry);
        self.emit(CatalogEvent::ManifestAccepted { id, movie });
        Verdict::Accepted
    }

    pub(super) fn remember_version(
        &mut self,
        id: ManifestId,
        ingest: &IngestKey,
        manifest: &Manifest,
    ) {
        self.ingest_versions
            .entry(ingest.clone())
            .or_default()
            .insert(id);
        self.versions.entry(id).or_insert_with(|| VersionInfo {
            ingest: ingest.clone(),
            segments: manifest
                .tracks
                .iter()
                .map(|t| u32::try_from(t.segments.len()).unwrap_or(u32::MAX))
                .collect(),
            last_named: Instant::now(),
        });
    }

    /// Every known version id of `id`'s ingest (at least `id` itself).
    pub(super) fn same_ingest(&self, id: &ManifestId) -> Vec<ManifestId> {
        match self
            .versions
            .get(id)
            .and_then(|info| self.ingest_versions.get(&info.ingest))
        {
            Some(ids) => ids.iter().copied().collect(),
            None => vec![*id],
        }
    }

    pub(super) fn sweep(&mut self, now: u64) {
        let expired: Vec<NodeId> = self
            .records
            .iter()
            .filter(|(_, e)| e.live_until <= now)
            .map(|(n, _)| *n)
            .collect();
        for node in expired {
            if let Some(old) = self.records.remove(&node) {
                self.unindex(&old.record);
                self.charge_record(node, 0);
                tracing::debug!(node = %node.short(), "catalog record expired");
                self.emit(CatalogEvent::RecordExpired { node });
            }
        }
        self.seqs.retain(|_, mark| mark.forget_after > now);
        // An origin's certificate is kept until it expires, record or not: its manifests
        // stay acceptable while it is offline.
        self.members
            .retain(|_, cert| cert.not_after.saturating_add(SKEW_TOLERANCE_SECS) > now);
        // Forget manifests no live record has held for a while.
        let retention = self.config.orphan_retention;
        let mut orphans = Vec::new();
        for (ingest, id) in &self.latest {
            let held = self
                .ingest_versions
                .get(ingest)
                .into_iter()
                .flatten()
                .any(|vid| self.held_by.contains_key(vid));
            if let Some(entry) = self.manifests.get(id) {
                if !held && entry.last_held.elapsed() > retention {
                    orphans.push((ingest.clone(), *id));
                }
            }
        }
        for (ingest, _) in orphans {
            self.forget_ingest(&ingest);
        }
        self.expire_retired();
        // Old versions nobody names any more need no remembering once no player can still
        // hold a URL naming them (or when there are too many).
        let mut unused = Vec::new();
        let crowded = self.versions.len() > MAX_VERSIONS;
        for (vid, v) in self.versions.iter_mut() {
            let named = self.held_by.contains_key(vid) || self.latest.get(&v.ingest) == Some(vid);
            if named {
                v.last_named = Instant::now();
            } else if crowded || v.last_named.elapsed() > VERSION_RETENTION {
                unused.push(*vid);
            }
        }
        for vid in unused {
            if let Some(v) = self.versions.remove(&vid) {
                if let Some(set) = self.ingest_versions.get_mut(&v.ingest) {
                    set.remove(&vid);
                }
            }
        }
    }
}

impl ManifestEntry {
    pub(super) fn to_public(&self, id: ManifestId) -> CatalogManifest {
        CatalogManifest {
            id,
            manifest: self.manifest.clone(),
            signed: self.signed.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod skew_tests {
    use super::*;

    fn record(issued_at: u64, ttl: u64) -> CatalogRecord {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        CatalogRecord {
            node: NodeId::from_verifying_key(&key.verifying_key()),
            quic_addr: "127.0.0.1:7400".into(),
            gateway_url: "http://127.0.0.1:8080".into(),
            held: vec![],
            seq: 1,
            issued_at,
            expires_at: issued_at + ttl,
            replica: true,
            certificate: vec![],
        }
    }

    /// A record lives for its lifetime counted from receipt on the receiver's clock,
    /// whether the sender's clock is 300 s ahead or behind; a record older than its
    /// stamp allows (relayed late, or a sender more than 300 s behind) is dead.
    #[test]
    fn a_record_lives_its_lifetime_from_receipt_within_five_minutes_of_skew() {
        let now = 1_800_000_000;
        let skew = reelnet_proto::catalog::MAX_CLOCK_SKEW_SECS;
        let tol = SKEW_TOLERANCE_SECS;
        // Sender 300 s ahead of this node (issued "in the future"), 4-second records.
        let r = record(now + skew, 4);
        assert!(r.check_time(now).is_ok());
        assert_eq!(live_until(&r, now), now + 4);
        // Sender 300 s behind: its fresh record has "expired" 296 s ago by this clock.
        let r = record(now - skew, 4);
        assert!(r.check_time(now).is_ok());
        assert_eq!(live_until(&r, now), now + 4);
        // Beyond the tolerance: a record whose stamp ended longer ago, or one issued
        // further in the future.
        let r = record(now - tol - 4, 4);
        assert!(r.check_time(now).is_err());
        assert!(live_until(&r, now) <= now);
        let r = record(now + tol + 1, 4);
        assert!(r.check_time(now).is_err());
        // A 600 s record received 500 s after it was stamped (relayed late, same clocks):
        // never longer than its stamp plus the tolerance.
        let r = record(now - 500, 600);
        assert_eq!(live_until(&r, now), now - 500 + 600 + tol);
    }
}
