//! Placement: which nodes keep which ingest, and the worker that makes this node keep its
//! share.
//!
//! # Who is responsible
//!
//! Every ingest lives on `replication` nodes (`storage.replication`, default 2), chosen by
//! rendezvous (highest-random-weight) hashing over the live nodes (those with an unexpired
//! catalog record, plus this node): each node's weight for an ingest is a hash of the node
//! id and the ingest's identity, and the highest weights win. When a node joins or leaves
//! only the ingests whose top-`replication` set it enters or leaves move, and every node
//! computes the same answer from the same catalog without talking to the others.
//!
//! The identity hashed is the ingest's stable identity — its origin node and the
//! `ingest_id` in the manifest ([`IngestRef`]) — not the [`ManifestId`]: a growing manifest
//! is re-signed with a higher `seq` every time it grows, and each version has a different
//! id, so placing by id would move the movie to different nodes with every new segment.
//!
//! The origin counts as one of the replicas while it is live (it holds everything it
//! ingested and never releases it), so the responsible set is the origin plus the
//! `replication - 1` highest-weight other nodes; once the origin's record has expired it is
//! the `replication` highest-weight live nodes.
//!
//! # The worker
//!
//! One task ([`Placement::start`]) runs a pass whenever the catalog changes (debounced) or
//! a tick passes, and stops on the node's cancellation token. A pass:
//! 1. for every ingest the catalog knows (its newest version) that this node is
//!    responsible for: stores the signed manifest (which pins it in the store) and fetches
//!    every missing segment — init and media, every track — from the nodes the catalog
//!    lists as holding it, through the node's shared [`Fetcher`] (hash verified, ranked
//!    providers with fallback), a bounded number at a time; then asks the publisher to
//!    republish so the node's record advertises what it now holds. A growing manifest is
//!    pulled again as new versions arrive.
//! 2. for every ingest in the store that is neither this node's own nor its
//!    responsibility any more: releases it ([`Store::release_ingest`], its segments become
//!    evictable cache, nothing is deleted at once) only when every node now responsible
//!    holds a complete copy of the newest version according to its catalog record and has
//!    proved it in a storage challenge (below). Until then the copy stays pinned, so data
//!    is copied before any replica is dropped.
//!
//! # No release on a peer's word
//!
//! A catalog record is only a claim: a hostile member could claim complete copies it does
//! not have so that honest holders drop theirs. Before releasing because other nodes are
//! responsible now, the worker puts each new holder to a *storage challenge*: a random
//! sample of the manifest's segments ([`PlacementConfig::challenge_segments`] media
//! segments across tracks, plus one init segment when the manifest has any) fetched over
//! QUIC from that holder alone and verified against the manifest's BLAKE3 hashes (nothing is
//! stored). A holder that passes is trusted for that manifest for
//! [`PlacementConfig::challenge_valid`]; one that fails (wrong bytes, a missing segment, a
//! refusal, a timeout) is left out of this node's candidate set for
//! [`PlacementConfig::exclusion`], so responsibility moves to another node and this node
//! keeps its copy. A failed challenge never releases anything.
//!
//! Rot at rest: when the store drops a corrupt segment or manifest record (see `store`), it
//! wakes the worker, and the next pass fetches what is missing again — for the ingests this
//! node is responsible for and for its own ingests alike (an origin repairs its copy from a
//! replica).
//!
//! A node that crashed stays "live" until its record expires (`p2p.record_ttl_secs`); then
//! responsibility moves and the next-highest node pulls a copy.
//!
//! The worker publishes what this node is responsible for through a `watch` channel
//! ([`Placement::view`]), read by the admin status.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::seq::SliceRandom;
use reelnet_proto::{Manifest, ManifestId, NodeId, SegmentEntry, SegmentRef, SegmentRequest};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, CatalogError, CatalogManifest};
use crate::store::{Store, StoreError, StoredManifest};
use crate::swarm::publisher::Publisher;
use crate::transfer::{FetchError, FetchRequest, Fetcher};

/// An ingest's stable identity across the versions of its manifest: (origin, ingest id).
pub type IngestRef = (NodeId, [u8; 16]);

/// The stable identity of the ingest `m` is a version of.
pub fn ingest_ref(m: &Manifest) -> IngestRef {
    (m.origin, m.ingest_id)
}

/// A node's rendezvous weight for an ingest.
pub fn weight(node: &NodeId, ingest: &IngestRef) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"reelnet placement v1");
    h.update(node.as_bytes());
    h.update(ingest.0.as_bytes());
    h.update(&ingest.1);
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// The nodes responsible for `ingest` among the live `candidates`: the origin (if live)
/// and the highest-weight others, `replication` in all (fewer if there are fewer nodes).
pub fn responsible_nodes(
    ingest: &IngestRef,
    candidates: &[NodeId],
    replication: usize,
) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(replication);
    let origin = ingest.0;
    if candidates.contains(&origin) && replication > 0 {
        out.push(origin);
    }
    let mut others: Vec<(u64, NodeId)> = candidates
        .iter()
        .filter(|n| **n != origin)
        .map(|n| (weight(n, ingest), *n))
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    others.dedup_by_key(|x| x.1);
    for (_, n) in others {
        if out.len() >= replication {
            break;
        }
        out.push(n);
    }
    out
}

/// Tunables of the placement worker.
#[derive(Debug, Clone)]
pub struct PlacementConfig {
    /// How many nodes keep each ingest (≥ 1).
    pub replication: usize,
    /// A pass runs at least this often, catalog events or not.
    pub tick: Duration,
    /// Catalog events are collected for this long before a pass runs.
    pub debounce: Duration,
    /// Segments fetched at once.
    pub fetch_concurrency: usize,
    /// Whether this node takes a share of the library (`storage.replica`); an edge node
    /// only ever holds its own ingests and its viewers' cache.
    pub replica: bool,
    /// This node's membership: it takes a share only while its certificate has the replica
    /// role. `None`: `replica` alone decides (tests of placement alone).
    pub membership: Option<crate::membership::Membership>,
    /// Media segments (across tracks) fetched from a new holder to check that it really
    /// holds a copy before this node releases its own; one init segment is added when the
    /// manifest has any. At least 1.
    pub challenge_segments: usize,
    /// Longest time a holder gets to answer a whole challenge.
    pub challenge_timeout: Duration,
    /// A holder that passed a challenge for a manifest is not challenged again for it for
    /// this long.
    pub challenge_valid: Duration,
    /// A holder that failed a challenge is left out of this node's candidate set (takes no
    /// share in this node's view) for this long.
    pub exclusion: Duration,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            replication: 2,
            tick: Duration::from_secs(10),
            debounce: Duration::from_millis(200),
            fetch_concurrency: 8,
            replica: true,
            membership: None,
            challenge_segments: 3,
            challenge_timeout: Duration::from_secs(30),
            challenge_valid: Duration::from_secs(15 * 60),
            exclusion: Duration::from_secs(60 * 60),
        }
    }
}

/// Most holders excluded at once, and most passed challenges remembered; beyond them the
/// entries closest to their end are dropped.
const MAX_REMEMBERED: usize = 4096;

/// Why a placement pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a blocking store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the worker last decided.
#[derive(Debug, Clone, Default)]
pub struct PlacementView {
    /// Ingests this node is responsible for (its own included).
    pub responsible: HashSet<IngestRef>,
    /// Passes completed since start.
    pub passes: u64,
    /// Segments fetched by placement since start.
    pub fetched_segments: u64,
    /// Ingests released since start.
    pub released: u64,
    /// Storage challenges new holders passed since start.
    pub challenges_passed: u64,
    /// Storage challenges new holders failed since start (each excluded the holder).
    pub challenges_failed: u64,
    /// Holders currently left out of the candidate set after failing a challenge.
    pub excluded: HashSet<NodeId>,
}

/// Handle to the placement worker; cheap to clone.
#[derive(Clone)]
pub struct Placement {
    view: watch::Receiver<Arc<PlacementView>>,
    wake: Arc<Notify>,
}

impl Placement {
    /// Starts the worker (one task, stopped by `cancel`).
    pub fn start(
        config: PlacementConfig,
        node_id: NodeId,
        store: Store,
        catalog: Catalog,
        fetcher: Arc<Fetcher>,
        publisher: Publisher,
        cancel: CancellationToken,
    ) -> (Placement, JoinHandle<()>) {
        let (tx, rx) = watch::channel(Arc::new(PlacementView::default()));
        let wake = Arc::new(Notify::new());
        let events = catalog.subscribe();
        let worker = Worker {
            config,
            node_id,
            store,
            catalog,
            fetcher,
            publisher,
            view: tx,
            state: PlacementView::default(),
            excluded: HashMap::new(),
            passed: HashMap::new(),
        };
        let task =
            reelnet_runtime::shutdown::spawn("placement", worker.run(events, wake.clone(), cancel));
        (Placement { view: rx, wake }, task)
    }

    /// What the worker last decided.
    pub fn view(&self) -> Arc<PlacementView> {
        self.view.borrow().clone()
    }

    /// Whether this node is responsible for the ingest `m` belongs to.
    pub fn is_responsible(&self, m: &Manifest) -> bool {
        self.view.borrow().responsible.contains(&ingest_ref(m))
    }

    /// Asks for a pass soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

struct Worker {
    config: PlacementConfig,
    node_id: NodeId,
    store: Store,
    catalog: Catalog,
    fetcher: Arc<Fetcher>,
    publisher: Publisher,
    view: watch::Sender<Arc<PlacementView>>,
    state: PlacementView,
    /// Holders that failed a storage challenge, until when they are left out.
    excluded: HashMap<NodeId, Instant>,
    /// (holder, manifest) challenges passed, until when they count.
    passed: HashMap<(NodeId, ManifestId), Instant>,
}

/// Why one segment of a pull was not stored.
enum FetchOneError {
    /// No room (quota or disk): stop this pull, retry on a later pass.
    Full(String),
    Other(String),
}

/// Drops the entries of `map` whose time has come, then (beyond `MAX_REMEMBERED`) those
/// closest to their end.
fn prune<K: Copy + Eq + std::hash::Hash>(map: &mut HashMap<K, Instant>, now: Instant) {
    map.retain(|_, until| *until > now);
    if map.len() > MAX_REMEMBERED {
        let mut by_end: Vec<(Instant, K)> = map.iter().map(|(k, t)| (*t, *k)).collect();
        by_end.sort_unstable_by_key(|e| e.0);
        let extra = map.len() - MAX_REMEMBERED;
        for (_, k) in by_end.into_iter().take(extra) {
            map.remove(&k);
        }
    }
}

impl Worker {
    async fn run(
        mut self,
        mut events: broadcast::Receiver<crate::catalog::CatalogEvent>,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) -> Result<(), PlacementError> {
        loop {
            let started = Instant::now();
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                result = self.pass() => match result {
                    Ok(()) => {}
                    Err(PlacementError::Catalog(CatalogError::Stopped)) => return Ok(()),
                    Err(err) => tracing::warn!(%err, "placement pass failed"),
                },
            }
            tracing::trace!(took = ?started.elapsed(), "placement pass");
            // Wait for a catalog change, a wake-up or the tick.
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.tick) => {}
                _ = wake.notified() => {}
                // A stored copy was found corrupt and dropped: fetch it again soon.
                _ = self.store.lost() => {}
                ev = events.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = ev {
                        return Ok(());
                    }
                }
            }
            // Coalesce a burst of events into one pass.
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.debounce) => {}
            }
            while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
        }
    }

    async fn pass(&mut self) -> Result<(), PlacementError> {
        let mut candidates: Vec<NodeId> = self
            .catalog
            .live_nodes()
            .await?
            .into_iter()
            // Edge nodes take no share; an origin still counts as holding its own ingests
            // (`responsible_nodes` adds it back when it is live).
            .filter(|n| n.replica || n.node == self.node_id)
            .map(|n| n.node)
            .collect();
        let replica = self.config.replica
            && self
                .config
                .membership
                .as_ref()
                .is_none_or(|m| m.may(reelnet_proto::membership::RoleName::Replica));
        if !replica {
            candidates.retain(|n| *n != self.node_id);
        } else if !candidates.contains(&self.node_id) {
            candidates.push(self.node_id);
        }
        // Holders that failed a storage challenge take no share in this node's view.
        let now = Instant::now();
        prune(&mut self.excluded, now);
        prune(&mut self.passed, now);
        if !self.excluded.is_empty() {
            candidates.retain(|n| !self.excluded.contains_key(n));
        }
        self.state.excluded = self.excluded.keys().copied().collect();
        // The newest version of every ingest the catalog knows.
        let mut known: HashMap<IngestRef, CatalogManifest> = HashMap::new();
        // Only bound sources are held for the network (an unbound movie only by its own
        // origin), so a member cannot make replicas pin whatever it ingests.
        let checks = self.config.membership.is_some();
        for movie in self.catalog.movies().await?.iter() {
            for summary in &movie.manifests {
                if checks && !summary.bound && summary.origin != self.node_id {
                    continue;
                }
                if let Some(cm) = self.catalog.manifest(summary.id).await? {
                    let key = ingest_ref(&cm.manifest);
                    let newer = known
                        .get(&key)
                        .is_none_or(|cur| cur.manifest.seq < cm.manifest.seq);
                    if newer {
                        known.insert(key, cm);
                    }
                }
            }
        }
        let stored = self.blocking(|s| s.all_manifests()).await?;
        let stored_by_ref: HashMap<IngestRef, &StoredManifest> = stored
            .iter()
            .map(|s| (ingest_ref(&s.manifest), s))
            .collect();

        let replication = self.config.replication.max(1);
        let mut responsible: HashSet<IngestRef> = stored
            .iter()
            .filter(|s| s.manifest.origin == self.node_id)
            .map(|s| ingest_ref(&s.manifest))
            .collect();
        let mut to_pull = Vec::new();
        // Own ingests are pulled only to repair rot: segments dropped as corrupt (the
        // manifest is still stored) or a manifest record dropped as corrupt (never to bring
        // back an ingest this node removed on purpose).
        let lost_manifest = self.store.corruption().manifests > 0;
        for (key, cm) in &known {
            if key.0 == self.node_id {
                let stored_here = stored_by_ref.contains_key(key);
                if stored_here || lost_manifest {
                    to_pull.push(cm.clone());
                }
                continue;
            }
            if !responsible_nodes(key, &candidates, replication).contains(&self.node_id) {
                continue;
            }
            responsible.insert(*key);
            to_pull.push(cm.clone());
        }
        // An own ingest whose stored manifest is newer than the catalog's (or unknown to
        // it) still gets its missing segments fetched, by the stored version.
        for s in &stored {
            let key = ingest_ref(&s.manifest);
            if key.0 == self.node_id
                && known
                    .get(&key)
                    .is_none_or(|cm| cm.manifest.seq < s.manifest.seq)
            {
                to_pull.push(CatalogManifest {
                    id: s.id,
                    manifest: Arc::new(s.manifest.clone()),
                    signed: Arc::new(s.signed.clone()),
                });
            }
        }
        self.state.responsible = responsible.clone();
        self.publish_view();

        let mut changed = false;
        for cm in to_pull {
            let current = stored_by_ref.get(&ingest_ref(&cm.manifest)).copied();
            changed |= self.pull(&cm, current).await?;
        }

        // Release what moved away, once the nodes now responsible hold complete copies.
        for s in &stored {
            let key = ingest_ref(&s.manifest);
            if key.0 == self.node_id || responsible.contains(&key) {
                continue;
            }
            let m = s.manifest.clone();
            if self.blocking(move |st| st.is_released(&m)).await? {
                continue;
            }
            // The network bound the movie to another source and the catalog no longer
            // keeps this one (a re-point's grace period is over, or it was never the
            // movie's source): nobody is meant to hold it, so nobody has to prove anything.
            if self.superseded(s).await? {
                let m = s.manifest.clone();
                self.blocking(move |st| st.release_ingest(&m)).await?;
                tracing::info!(
                    movie = %s.manifest.movie,
                    origin = %key.0.short(),
                    "placement: released a source the movie is no longer bound to"
                );
                self.state.released += 1;
                changed = true;
                continue;
            }
            let (id, newest) = match known.get(&key) {
                Some(cm) => (cm.id, cm.manifest.as_ref()),
                None => (s.id, &s.manifest),
            };
            let holders = responsible_nodes(&key, &candidates, replication);
            // One of them by the hash itself (an ingest the listing leaves out, such as a
            // re-pointed movie's previous source in its grace period): keep it.
            if holders.contains(&self.node_id) {
                continue;
            }
            if holders.is_empty() || !self.all_hold(&holders, id, newest).await? {
                continue;
            }
            // Their records say so; make them prove it before dropping this copy.
            if !self.all_prove(&holders, id, newest).await? {
                continue;
            }
            let m = s.manifest.clone();
            self.blocking(move |st| st.release_ingest(&m)).await?;
            tracing::info!(
                movie = %s.manifest.movie,
                origin = %key.0.short(),
                holders = ?holders.iter().map(NodeId::short).collect::<Vec<_>>(),
                "placement: released an ingest (its segments are cache now)"
            );
            self.state.released += 1;
            changed = true;
        }
        if changed {
            self.publisher.republish();
        }
        self.state.passes += 1;
        self.publish_view();
        Ok(())
    }

    /// True if `s`'s movie is bound to another lineage and the catalog no longer has any
    /// version of `s`'s ingest.
    async fn superseded(&self, s: &StoredManifest) -> Result<bool, PlacementError> {
        let Some(membership) = &self.config.membership else {
            return Ok(false);
        };
        let m = &s.manifest;
        let rebound = membership
            .bindings()
            .get(&m.movie)
            .is_some_and(|b| !b.covers(&m.origin, &m.ingest_id));
        Ok(rebound && self.catalog.latest_version(s.id).await?.is_none())
    }

    fn publish_view(&self) {
        self.view.send_replace(Arc::new(self.state.clone()));
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, PlacementError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
    }

    /// Stores `cm` (if newer than what is stored, or released) and fetches its missing
    /// segments. Returns whether anything new was stored.
    async fn pull(
        &mut self,
        cm: &CatalogManifest,
        current: Option<&StoredManifest>,
    ) -> Result<bool, PlacementError> {
        let released = match current {
            Some(s) => {
                let m = s.manifest.clone();
                self.blocking(move |st| st.is_released(&m)).await?
            }
            None => false,
        };
        let mut changed = false;
        if current.is_none_or(|s| s.manifest.seq < cm.manifest.seq) || released {
            let signed = cm.signed.clone();
            self.blocking(move |st| st.put_manifest(&signed)).await?;
            changed = true;
        }
        let m = &cm.manifest;
        let mut wants: Vec<(u16, SegmentRef, SegmentEntry)> = Vec::new();
        for (t, track) in m.tracks.iter().enumerate() {
            let Ok(t) = u16::try_from(t) else { break };
            if let Some(init) = &track.init {
                if !self.store.has_segment(&init.hash) {
                    wants.push((t, SegmentRef::Init, *init));
                }
            }
            for (i, seg) in track.segments.iter().enumerate() {
                let Ok(i) = u32::try_from(i) else { break };
                if !self.store.has_segment(&seg.hash) {
                    wants.push((t, SegmentRef::Index(i), *seg));
                }
            }
        }
        if wants.is_empty() {
            return Ok(changed);
        }
        let started = Instant::now();
        let total = wants.len();
        let id = cm.id;
        // Once a segment cannot be stored for want of room, the rest are not fetched in
        // this pass (they would be downloaded only to be thrown away); the next pass tries
        // again, so the pull resumes by itself when room is made.
        let full = std::sync::atomic::AtomicBool::new(false);
        let full_error = std::sync::OnceLock::new();
        let this = &*self;
        let results: Vec<Result<(), String>> = futures::stream::iter(wants)
            .map(|(track, segment, entry)| {
                let (full, full_error) = (&full, &full_error);
                async move {
                    if full.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err("skipped: the store is full".to_owned());
                    }
                    match this.fetch_one(id, track, segment, entry).await {
                        Err(FetchOneError::Full(e)) => {
                            full.store(true, std::sync::atomic::Ordering::Relaxed);
                            let _ = full_error.set(e.clone());
                            Err(e)
                        }
                        Err(FetchOneError::Other(e)) => Err(e),
                        Ok(()) => Ok(()),
                    }
                }
            })
            .buffer_unordered(self.config.fetch_concurrency.max(1))
            .collect()
            .await;
        let fetched = results.iter().filter(|r| r.is_ok()).count();
        self.state.fetched_segments += fetched as u64;
        if full.into_inner() {
            tracing::warn!(
                movie = %m.movie,
                missing = total - fetched,
                total,
                error = full_error.get().map_or("", String::as_str),
                "placement: no room to store this movie's segments (disk or quota full); retrying when room is made"
            );
        } else if let Some(Err(first)) = results.iter().find(|r| r.is_err()) {
            tracing::warn!(
                movie = %m.movie,
                failed = total - fetched,
                total,
                error = %first,
                "placement: some segments could not be fetched; retrying later"
            );
        }
        if fetched > 0 {
            tracing::info!(
                movie = %m.movie,
                origin = %m.origin.short(),
                seq = m.seq,
                fetched,
                took_ms = started.elapsed().as_millis() as u64,
                "placement: pulled segments"
            );
            // Advertise progress as it is made.
            self.publisher.republish();
            changed = true;
        }
        Ok(changed)
    }

    async fn fetch_one(
        &self,
        manifest: ManifestId,
        track: u16,
        segment: SegmentRef,
        entry: SegmentEntry,
    ) -> Result<(), FetchOneError> {
        let providers = match segment {
            SegmentRef::Index(i) => self.catalog.providers(manifest, track, i).await,
            _ => self.catalog.init_providers(manifest, track).await,
        }
        .map_err(|e| FetchOneError::Other(e.to_string()))?;
        let providers: Vec<(NodeId, SocketAddr)> = providers
            .into_iter()
            .filter(|p| p.node != self.node_id)
            .map(|p| (p.node, p.quic_addr))
            .collect();
        if providers.is_empty() {
            return Err(FetchOneError::Other(format!(
                "no live node holds track {track} {segment:?}"
            )));
        }
        let want = FetchRequest {
            request: SegmentRequest {
                manifest,
                track,
                segment,
            },
            expected: entry.hash,
            size: Some(u64::from(entry.size)),
        };
        match self
            .fetcher
            .fetch_into_store(&providers, &want, &self.store)
            .await
        {
            Ok(_) => Ok(()),
            Err(FetchError::Store(e)) if e.is_full() => Err(FetchOneError::Full(e.to_string())),
            Err(e) => Err(FetchOneError::Other(e.to_string())),
        }
    }

    /// Whether every node in `holders` (other than this one) passes a storage challenge for
    /// manifest `id` (or passed one recently). The first that fails is excluded from the
    /// candidate set and the answer is `false`: nothing may be released on its word.
    async fn all_prove(
        &mut self,
        holders: &[NodeId],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, PlacementError> {
        for node in holders {
            if *node == self.node_id {
                continue;
            }
            let now = Instant::now();
            if self
                .passed
                .get(&(*node, id))
                .is_some_and(|until| *until > now)
            {
                continue;
            }
            let Some(record) = self.catalog.record(*node).await? else {
                // Gone since `all_hold` looked: not a failure of the holder, just not now.
                return Ok(false);
            };
            let outcome = match record.quic_socket_addr() {
                Ok(addr) => self.challenge(*node, addr, id, manifest).await,
                Err(err) => Err(format!("unusable QUIC address: {err}")),
            };
            let now = Instant::now();
            match outcome {
                Ok(checked) => {
                    tracing::debug!(
                        holder = %node.short(),
                        manifest = %id,
                        checked,
                        "placement: holder passed a storage challenge"
                    );
                    self.state.challenges_passed += 1;
                    self.passed
                        .insert((*node, id), now + self.config.challenge_valid);
                    prune(&mut self.passed, now);
                }
                Err(err) => {
                    tracing::warn!(
                        holder = %node.short(),
                        movie = %manifest.movie,
                        manifest = %id,
                        error = %err,
                        excluded_for_secs = self.config.exclusion.as_secs(),
                        "placement: a node claiming a copy failed its storage challenge; \
                         it takes no share here and this node keeps its copy"
                    );
                    self.state.challenges_failed += 1;
                    self.passed.retain(|(n, _), _| n != node);
                    self.excluded.insert(*node, now + self.config.exclusion);
                    prune(&mut self.excluded, now);
                    self.state.excluded = self.excluded.keys().copied().collect();
                    self.publish_view();
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Fetches a random sample of manifest `id`'s segments from `node` alone and checks
    /// them against the manifest's hashes (the fetcher verifies; nothing is stored).
    /// Returns how many segments were checked, or why the holder failed.
    async fn challenge(
        &self,
        node: NodeId,
        addr: SocketAddr,
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<usize, String> {
        let sample = challenge_sample(manifest, self.config.challenge_segments.max(1));
        let provider = [(node, addr)];
        let checks = sample.iter().map(|(track, segment, entry)| {
            let want = FetchRequest {
                request: SegmentRequest {
                    manifest: id,
                    track: *track,
                    segment: *segment,
                },
                expected: entry.hash,
                size: Some(u64::from(entry.size)),
            };
            let provider = &provider;
            async move {
                self.fetcher
                    .fetch_request(provider, &want)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("track {track} {segment:?}: {e}"))
            }
        });
        let all = futures::future::try_join_all(checks);
        match tokio::time::timeout(self.config.challenge_timeout, all).await {
            Ok(Ok(_)) => Ok(sample.len()),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(format!(
                "no complete answer within {:?}",
                self.config.challenge_timeout
            )),
        }
    }

    /// Whether every node in `holders` (other than this one) holds every segment of
    /// manifest `id` per its live catalog record.
    async fn all_hold(
        &self,
        holders: &[NodeId],
        id: ManifestId,
        manifest: &Manifest,
    ) -> Result<bool, PlacementError> {
        for node in holders {
            if *node == self.node_id {
                continue;
            }
            let Some(record) = self.catalog.record(*node).await? else {
                return Ok(false);
            };
            let Some(held) = record.find(&id) else {
                return Ok(false);
            };
            if held.complete {
                continue;
            }
            let all = manifest.tracks.iter().enumerate().all(|(t, track)| {
                let Ok(t) = u16::try_from(t) else {
                    return false;
                };
                (0..track.segments.len())
                    .all(|i| u32::try_from(i).is_ok_and(|i| held.has_segment(t, i)))
            });
            if !all {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The segments of a storage challenge: up to `media` distinct media segments picked at
/// random across every track, plus one random init segment when any track has one.
fn challenge_sample(manifest: &Manifest, media: usize) -> Vec<(u16, SegmentRef, SegmentEntry)> {
    let mut segments = Vec::new();
    let mut inits = Vec::new();
    for (t, track) in manifest.tracks.iter().enumerate() {
        let Ok(t) = u16::try_from(t) else { break };
        if let Some(init) = &track.init {
            inits.push((t, SegmentRef::Init, *init));
        }
        for (i, seg) in track.segments.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            segments.push((t, SegmentRef::Index(i), *seg));
        }
    }
    let mut rng = rand::thread_rng();
    let mut out: Vec<_> = segments.choose_multiple(&mut rng, media).copied().collect();
    out.extend(inits.choose(&mut rng).copied());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(i: u8) -> NodeId {
        let key = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
        NodeId::from_verifying_key(&key.verifying_key())
    }

    #[test]
    fn origin_counts_and_others_are_chosen_by_weight() {
        let nodes: Vec<NodeId> = (1..=6).map(node).collect();
        let ingest = (nodes[0], [7u8; 16]);
        let r = responsible_nodes(&ingest, &nodes, 2);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], nodes[0]);
        let best = nodes[1..]
            .iter()
            .max_by_key(|n| weight(n, &ingest))
            .copied()
            .unwrap();
        assert_eq!(r[1], best);
        // Without the origin, the top two by weight.
        let r2 = responsible_nodes(&ingest, &nodes[1..], 2);
        assert_eq!(r2.len(), 2);
        assert_eq!(r2[0], best);
        // Fewer candidates than replicas: all of them.
        assert_eq!(responsible_nodes(&ingest, &nodes[..1], 3), vec![nodes[0]]);
    }

    fn two_track_manifest(init: bool, segments: usize) -> Manifest {
        let entry = |i: usize| SegmentEntry {
            hash: reelnet_proto::SegmentHash::of(format!("segment {i}").as_bytes()),
            duration_ms: 4000,
            size: 100,
        };
        let track = |t: usize| reelnet_proto::Track {
            kind: reelnet_proto::manifest::TrackKind::Video,
            media: None,
            rendition: reelnet_proto::Rendition {
                name: format!("{t}"),
                width: 640,
                height: 360,
                bandwidth: 800_000,
                codecs: "avc1.64001e".into(),
                frame_rate_milli: 25_000,
            },
            init: init.then(|| entry(1000 + t)),
            segments: (0..segments).map(|i| entry(t * 100 + i)).collect(),
        };
        Manifest {
            version: reelnet_proto::manifest::MANIFEST_VERSION,
            movie: reelnet_proto::MovieId::from_tmdb(603),
            title: "The Matrix".into(),
            year: Some(1999),
            origin: node(1),
            ingest_id: [7; 16],
            seq: 1,
            created_at: 0,
            container: reelnet_proto::Container::Fmp4,
            target_duration_ms: 4000,
            tracks: vec![track(0), track(1)],
            complete: true,
            meta: Default::default(),
        }
    }

    #[test]
    fn a_challenge_samples_distinct_media_segments_and_one_init() {
        let m = two_track_manifest(true, 5);
        for _ in 0..50 {
            let sample = challenge_sample(&m, 3);
            assert_eq!(sample.len(), 4);
            let inits = sample.iter().filter(|s| s.1 == SegmentRef::Init).count();
            assert_eq!(inits, 1);
            let media: HashSet<(u16, SegmentRef)> = sample
                .iter()
                .filter(|s| s.1 != SegmentRef::Init)
                .map(|s| (s.0, s.1))
                .collect();
            assert_eq!(media.len(), 3, "distinct");
            for (t, r, e) in &sample {
                let track = &m.tracks[usize::from(*t)];
                let listed = match r {
                    SegmentRef::Init => track.init.unwrap(),
                    SegmentRef::Index(i) => track.segments[*i as usize],
                    SegmentRef::Hash(_) => unreachable!(),
                };
                assert_eq!(*e, listed);
            }
        }
        // Across tracks, over many draws.
        let tracks: HashSet<u16> = (0..50)
            .flat_map(|_| challenge_sample(&m, 3))
            .filter(|s| s.1 != SegmentRef::Init)
            .map(|s| s.0)
            .collect();
        assert_eq!(tracks.len(), 2);
        // Fewer segments than asked for: all of them; no init: none.
        let small = two_track_manifest(false, 1);
        assert_eq!(challenge_sample(&small, 3).len(), 2);
        assert!(challenge_sample(&two_track_manifest(false, 0), 3).is_empty());
    }

    #[test]
    fn remembered_entries_expire_and_stay_bounded() {
        let now = Instant::now();
        let mut map: HashMap<u32, Instant> = HashMap::new();
        map.insert(0, now);
        for i in 1..=(MAX_REMEMBERED as u32 + 10) {
            map.insert(i, now + Duration::from_secs(u64::from(i)));
        }
        prune(&mut map, now);
        assert_eq!(map.len(), MAX_REMEMBERED);
        assert!(!map.contains_key(&0), "expired");
        // The ones closest to their end went first.
        assert!(!map.contains_key(&10) && map.contains_key(&11));
    }

    #[test]
    fn a_join_moves_only_what_the_new_node_wins() {
        let nodes: Vec<NodeId> = (1..=8).map(node).collect();
        let (before, joined) = nodes.split_at(7);
        let mut moved = 0;
        for i in 0..200u8 {
            let ingest = (nodes[usize::from(i % 7)], [i; 16]);
            let a = responsible_nodes(&ingest, before, 3);
            let b = responsible_nodes(&ingest, &nodes, 3);
            if a != b {
                moved += 1;
                // Only a swap for the newcomer.
                assert!(b.contains(&joined[0]));
                assert_eq!(a.iter().filter(|n| !b.contains(n)).count(), 1);
            }
            // Candidate order does not matter.
            let mut rev = nodes.clone();
            rev.reverse();
            assert_eq!(responsible_nodes(&ingest, &rev, 3), b);
        }
        // Roughly 2 of the 7 non-origin slots... the newcomer takes its fair share.
        assert!(moved > 20 && moved < 120, "{moved}");
    }
}
