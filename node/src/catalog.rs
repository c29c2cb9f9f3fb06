//! The catalog index: what the network holds and where.
//!
//! Every node gossips a signed [`CatalogRecord`] ("I hold these manifests, fully or these
//! segment ranges; my QUIC service is at X; my gateway at Y") and origin nodes gossip the
//! [`SignedManifest`]s they ingest. This module keeps the node's view of both, in memory, and
//! answers the questions the gateway and the fetch path ask: which movies exist, what their
//! manifests are, and which live nodes hold a given segment.
//!
//! # Shape
//!
//! One task owns the state ([`Catalog::start`]); the rest of the node holds a cloneable
//! [`Catalog`] handle that sends commands with oneshot replies (STYLE.md points 4 and 6).
//! Expensive checks (decoding, signatures) run in the caller's task before the command is
//! sent, so the owner task only compares sequence numbers and updates maps.
//!
//! # Rules
//!
//! - A record is accepted only if its signature, bounds and time window verify and its `seq`
//!   is higher than any record already seen from that node. The highest seq seen is
//!   remembered after the record expires (until no older record could still be live), so
//!   replaying an old record never resurrects it.
//! - A manifest is accepted only if it verifies; per ingest (movie, origin, ingest id) only
//!   the newest `seq` is kept. The ids of older versions stay known, so a node whose record
//!   still names an older version of a growing manifest counts as a provider of the
//!   segments that version had.
//! - Records leave the index when they expire (a sweep runs every second and every query
//!   also checks the clock). A manifest no live record holds is forgotten after
//!   [`CatalogConfig::orphan_retention`].
//! - An older `seq` arriving shortly after the newer one was accepted is ordinary gossip
//!   reordering ([`Verdict::Stale`]); arriving later than [`CatalogConfig::replay_grace`]
//!   it can only be a replay ([`Verdict::Replay`]), which the swarm rejects and scores
//!   against the sender.
//!
//! Nothing here is persisted: on start a node rebuilds the catalog from its own store
//! (see `swarm::publisher`) and from its peers (full sync on connect).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelnet_proto::catalog::{MAX_CLOCK_SKEW_SECS, MAX_RECORD_TTL_SECS};
use reelnet_proto::{
    CatalogRecord, Manifest, ManifestId, MovieId, NodeId, ProtoError, SignedCatalogRecord,
    SignedManifest,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Manifests larger than this are verified on the blocking pool.
const BLOCKING_VERIFY_BYTES: usize = 64 << 10;

/// Tunables of the catalog.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// How often expired records are swept out.
    pub sweep_interval: Duration,
    /// An older `seq` that arrives later than this after the newer one was accepted is a
    /// replay, not reordering.
    pub replay_grace: Duration,
    /// How long a manifest that no live record holds is kept.
    pub orphan_retention: Duration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(1),
            replay_grace: Duration::from_secs(2),
            orphan_retention: Duration::from_secs(3600),
        }
    }
}

/// What the catalog made of an offered record or manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// New information; it is in the index now (gossip: accept and forward).
    Accepted,
    /// Already known (same `seq` or same bytes); nothing changed (gossip: ignore).
    Duplicate,
    /// Older than what is known, within the reordering grace; nothing changed (gossip:
    /// ignore).
    Stale,
    /// Older than what is known, long after the newer one arrived: a replay; nothing changed
    /// (gossip: reject, penalising the sender).
    Replay,
    /// Correctly signed but past its expiry; nothing changed (gossip: ignore, since clocks
    /// and propagation delays differ).
    Expired,
    /// Malformed, badly signed, out of bounds or issued in the future; nothing changed
    /// (gossip: reject, penalising the sender).
    Invalid(String),
}

/// The catalog task has stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog has stopped (the node is shutting down)")]
    Stopped,
}

/// A node that holds a segment, and where to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub node: NodeId,
    /// The node's QUIC segment service.
    pub quic_addr: SocketAddr,
    pub gateway_url: String,
}

/// A node with a live catalog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNode {
    pub node: NodeId,
    pub quic_addr: SocketAddr,
    pub gateway_url: String,
    /// The record's sequence number.
    pub seq: u64,
    /// Unix seconds when the record expires.
    pub expires_at: u64,
    /// How many manifests the record lists.
    pub held: usize,
    /// Whether the node takes a share of the library under placement.
    pub replica: bool,
}

/// One manifest of a movie, as [`Catalog::movies`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestSummary {
    pub id: ManifestId,
    pub origin: NodeId,
    pub seq: u64,
    /// The ingest has finished (the manifest will not grow).
    pub complete: bool,
    pub duration_ms: u64,
    /// Rendition names, in manifest order.
    pub renditions: Vec<String>,
    /// Live nodes holding any segment of this ingest.
    pub holders: usize,
    /// Live nodes holding all of it.
    pub complete_holders: usize,
    /// Percentage (0-100) of this manifest's media segments that at least one live node
    /// holds.
    pub available_percent: f32,
}

/// A movie and its manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct MovieSummary {
    pub movie_id: MovieId,
    /// From the newest manifest.
    pub title: String,
    pub year: Option<u16>,
    /// Newest version of each ingest, newest first.
    pub manifests: Vec<ManifestSummary>,
    /// Distinct live nodes holding any manifest of the movie.
    pub holders: usize,
}

/// A manifest in the catalog (verified).
#[derive(Debug, Clone)]
pub struct CatalogManifest {
    pub id: ManifestId,
    pub manifest: Arc<Manifest>,
    /// The signed form, e.g. to store it or send it on (`signed.encode()` gives the bytes).
    pub signed: Arc<SignedManifest>,
}

/// Everything the catalog knows, for a full sync.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub records: Vec<SignedCatalogRecord>,
    pub manifests: Vec<SignedManifest>,
}

pub use reelnet_proto::sync::SyncCursor;

/// One page of a full sync: encoded records and manifests.
#[derive(Debug, Clone, Default)]
pub struct SyncPage {
    /// `SignedCatalogRecord::encode` of each live record.
    pub records: Vec<Vec<u8>>,
    /// `SignedManifest::encode` of each manifest.
    pub manifests: Vec<Vec<u8>>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<SyncCursor>,
}

/// A change in the catalog, for subscribers ([`Catalog::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEvent {
    RecordAccepted { node: NodeId, seq: u64 },
    RecordExpired { node: NodeId },
    ManifestAccepted { id: ManifestId, movie: MovieId },
    ManifestForgotten { id: ManifestId },
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogStats {
    pub records: usize,
    pub manifests: usize,
    pub accepted: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub replay: u64,
    pub expired: u64,
    pub invalid: u64,
}

/// Handle to the catalog task. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<CatalogEvent>,
}

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Record {
        signed: SignedCatalogRecord,
        record: CatalogRecord,
        quic_addr: SocketAddr,
        reply: Reply<Verdict>,
    },
    KnowsManifest {
        id: ManifestId,
        reply: Reply<bool>,
    },
    Manifest {
        id: ManifestId,
        signed: SignedManifest,
        manifest: Manifest,
        reply: Reply<Verdict>,
    },
    Count {
        verdict: Verdict,
    },
    Providers {
        id: ManifestId,
        track: u16,
        index: Option<u32>,
        reply: Reply<Vec<Provider>>,
    },
    Movies {
        reply: Reply<Vec<MovieSummary>>,
    },
    GetManifest {
        id: ManifestId,
        reply: Reply<Option<CatalogManifest>>,
    },
    LatestOf {
        id: ManifestId,
        reply: Reply<Option<CatalogManifest>>,
    },
    GetRecord {
        node: NodeId,
        reply: Reply<Option<CatalogRecord>>,
    },
    LiveNodes {
        reply: Reply<Vec<LiveNode>>,
    },
    Snapshot {
        reply: Reply<Snapshot>,
    },
    SyncPage {
        after: Option<SyncCursor>,
        max_bytes: usize,
        reply: Reply<SyncPage>,
    },
    Stats {
        reply: Reply<CatalogStats>,
    },
}

impl Catalog {
    /// Starts the catalog task; it stops when `cancel` fires.
    pub fn start(config: CatalogConfig, cancel: CancellationToken) -> (Catalog, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(1024);
        let state = State::new(config, events.clone());
        let task = crate::shutdown::spawn("catalog", state.run(rx, cancel));
        (Catalog { tx, events }, task)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, CatalogError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| CatalogError::Stopped)?;
        rx.await.map_err(|_| CatalogError::Stopped)
    }

    async fn count(&self, verdict: Verdict) -> Result<Verdict, CatalogError> {
        self.tx
            .send(Command::Count {
                verdict: verdict.clone(),
            })
            .await
            .map_err(|_| CatalogError::Stopped)?;
        Ok(verdict)
    }

    /// Offers a catalog record from anywhere (gossip, sync, this node's publisher). Verifies
    /// it (signature, bounds, time) and keeps it if its `seq` is newer than any seen from its
    /// node.
    pub async fn offer_record(&self, signed: SignedCatalogRecord) -> Result<Verdict, CatalogError> {
        let record = match signed.verify(crate::unix_now()) {
            Ok(record) => record,
            Err(ProtoError::Expired { .. }) => return self.count(Verdict::Expired).await,
            Err(err) => return self.count(Verdict::Invalid(err.to_string())).await,
        };
        let quic_addr = match record.quic_socket_addr() {
            Ok(addr) => addr,
            Err(err) => return self.count(Verdict::Invalid(err.to_string())).await,
        };
        self.ask(|reply| Command::Record {
            signed,
            record,
            quic_addr,
            reply,
        })
        .await
    }

    /// Decodes (with proto's size limits) and offers a catalog record.
    pub async fn offer_record_bytes(&self, bytes: &[u8]) -> Result<Verdict, CatalogError> {
        match SignedCatalogRecord::decode(bytes) {
            Ok(signed) => self.offer_record(signed).await,
            Err(err) => self.count(Verdict::Invalid(err.to_string())).await,
        }
    }

    /// Offers a signed manifest. Verifies it and keeps it if it is the newest version of its
    /// ingest. The catalog is memory only: storing the manifest is the caller's decision.
    pub async fn offer_manifest(&self, signed: SignedManifest) -> Result<Verdict, CatalogError> {
        let id = signed.id();
        if self
            .ask(|reply| Command::KnowsManifest { id, reply })
            .await?
        {
            return self.count(Verdict::Duplicate).await;
        }
        let verified = if signed.manifest_bytes().len() > BLOCKING_VERIFY_BYTES {
            let copy = signed.clone();
            tokio::task::spawn_blocking(move || copy.verify())
                .await
                .map_err(|_| CatalogError::Stopped)?
        } else {
            signed.verify()
        };
        let manifest = match verified {
            Ok(m) => m,
            Err(err) => return self.count(Verdict::Invalid(err.to_string())).await,
        };
        self.ask(|reply| Command::Manifest {
            id,
            signed,
            manifest,
            reply,
        })
        .await
    }

    /// Decodes (with proto's size limits) and offers a signed manifest.
    pub async fn offer_manifest_bytes(&self, bytes: &[u8]) -> Result<Verdict, CatalogError> {
        match SignedManifest::decode(bytes) {
            Ok(signed) => self.offer_manifest(signed).await,
            Err(err) => self.count(Verdict::Invalid(err.to_string())).await,
        }
    }

    /// Live nodes whose record says they hold media segment `index` of `track` of manifest
    /// `id` (fully, or in a listed range; a record naming an older version of the same
    /// ingest counts for the segments that version had). Sorted by node id.
    pub async fn providers(
        &self,
        id: ManifestId,
        track: u16,
        index: u32,
    ) -> Result<Vec<Provider>, CatalogError> {
        self.ask(|reply| Command::Providers {
            id,
            track,
            index: Some(index),
            reply,
        })
        .await
    }

    /// Live nodes that hold the init segment of `track` (any node holding a segment of the
    /// track holds its init segment).
    pub async fn init_providers(
        &self,
        id: ManifestId,
        track: u16,
    ) -> Result<Vec<Provider>, CatalogError> {
        self.ask(|reply| Command::Providers {
            id,
            track,
            index: None,
            reply,
        })
        .await
    }

    /// Every movie with its manifests and holders, sorted by title.
    pub async fn movies(&self) -> Result<Vec<MovieSummary>, CatalogError> {
        self.ask(|reply| Command::Movies { reply }).await
    }

    /// A manifest by id (only the newest version of each ingest is kept).
    pub async fn manifest(&self, id: ManifestId) -> Result<Option<CatalogManifest>, CatalogError> {
        self.ask(|reply| Command::GetManifest { id, reply }).await
    }

    /// The newest known version of the ingest `id` belongs to (`id` itself if it is the
    /// newest).
    pub async fn latest_version(
        &self,
        id: ManifestId,
    ) -> Result<Option<CatalogManifest>, CatalogError> {
        self.ask(|reply| Command::LatestOf { id, reply }).await
    }

    /// A node's live record.
    pub async fn record(&self, node: NodeId) -> Result<Option<CatalogRecord>, CatalogError> {
        self.ask(|reply| Command::GetRecord { node, reply }).await
    }

    /// Nodes with a live record, sorted by node id.
    pub async fn live_nodes(&self) -> Result<Vec<LiveNode>, CatalogError> {
        self.ask(|reply| Command::LiveNodes { reply }).await
    }

    /// Every live record and every manifest. Copies all manifests; prefer
    /// [`Catalog::sync_page`] for sending them.
    pub async fn snapshot(&self) -> Result<Snapshot, CatalogError> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// One page of the full catalog, encoded, of at most about `max_bytes` (a page holds at
    /// least one item). Records come first (by node id), then manifests (by id).
    pub async fn sync_page(
        &self,
        after: Option<SyncCursor>,
        max_bytes: usize,
    ) -> Result<SyncPage, CatalogError> {
        self.ask(|reply| Command::SyncPage {
            after,
            max_bytes,
            reply,
        })
        .await
    }

    /// Counters.
    pub async fn stats(&self) -> Result<CatalogStats, CatalogError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Changes from now on. A slow subscriber misses events (`RecvError::Lagged`) and should
    /// re-query.
    pub fn subscribe(&self) -> broadcast::Receiver<CatalogEvent> {
        self.events.subscribe()
    }
}

/// (movie, origin, ingest id): one ingest, across the versions of its manifest.
type IngestKey = (MovieId, NodeId, [u8; 16]);

struct RecordEntry {
    signed: SignedCatalogRecord,
    record: CatalogRecord,
    quic_addr: SocketAddr,
}

/// The highest seq seen from a node, kept beyond the record's expiry.
struct SeqMark {
    seq: u64,
    accepted_at: Instant,
    /// Unix seconds after which no record with a lower seq can still be live.
    forget_after: u64,
}

struct ManifestEntry {
    signed: Arc<SignedManifest>,
    manifest: Arc<Manifest>,
    accepted_at: Instant,
    /// When a live record last held any version of this ingest.
    last_held: Instant,
}

/// What is remembered of every version of a manifest seen.
struct VersionInfo {
    ingest: IngestKey,
    /// Media segments per track in that version.
    segments: Vec<u32>,
}

struct State {
    config: CatalogConfig,
    events: broadcast::Sender<CatalogEvent>,
    records: BTreeMap<NodeId, RecordEntry>,
    seqs: HashMap<NodeId, SeqMark>,
    /// Newest version of each ingest.
    manifests: BTreeMap<ManifestId, ManifestEntry>,
    latest: HashMap<IngestKey, ManifestId>,
    versions: HashMap<ManifestId, VersionInfo>,
    /// Known version ids of each ingest.
    ingest_versions: HashMap<IngestKey, BTreeSet<ManifestId>>,
    /// Manifest id (any version) → nodes whose live record lists it.
    held_by: HashMap<ManifestId, BTreeSet<NodeId>>,
    stats: CatalogStats,
}

impl State {
    fn new(config: CatalogConfig, events: broadcast::Sender<CatalogEvent>) -> Self {
        Self {
            config,
            events,
            records: BTreeMap::new(),
            seqs: HashMap::new(),
            manifests: BTreeMap::new(),
            latest: HashMap::new(),
            versions: HashMap::new(),
            ingest_versions: HashMap::new(),
            held_by: HashMap::new(),
            stats: CatalogStats::default(),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = sweep.tick() => self.sweep(crate::unix_now()),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
            }
        }
        Ok(())
    }

    fn emit(&self, event: CatalogEvent) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }

    fn count(&mut self, verdict: &Verdict) {
        let s = &mut self.stats;
        match verdict {
            Verdict::Accepted => s.accepted += 1,
            Verdict::Duplicate => s.duplicate += 1,
            Verdict::Stale => s.stale += 1,
            Verdict::Replay => s.replay += 1,
            Verdict::Expired => s.expired += 1,
            Verdict::Invalid(_) => s.invalid += 1,
        }
    }

    fn handle(&mut self, cmd: Command) {
        let now = crate::unix_now();
        match cmd {
            Command::Record {
                signed,
                record,
                quic_addr,
                reply,
            } => {
                let v = self.insert_record(signed, record, quic_addr, now);
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
                let v = self.insert_manifest(id, signed, manifest);
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
                let _ = reply.send(self.movies(now));
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
                    .filter(|e| e.record.expires_at > now)
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
                let _ = reply.send(s);
            }
        }
    }

    fn live_records(&self, now: u64) -> impl Iterator<Item = &RecordEntry> {
        self.records
            .values()
            .filter(move |e| e.record.expires_at > now)
    }

    fn older_verdict(&self, accepted_at: Instant) -> Verdict {
        if accepted_at.elapsed() > self.config.replay_grace {
            Verdict::Replay
        } else {
            Verdict::Stale
        }
    }

    fn insert_record(
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
        if record.expires_at <= now {
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
                    .saturating_add(MAX_RECORD_TTL_SECS + MAX_CLOCK_SKEW_SECS),
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
        self.records.insert(
            node,
            RecordEntry {
                signed,
                record,
                quic_addr,
            },
        );
        self.emit(CatalogEvent::RecordAccepted { node, seq });
        Verdict::Accepted
    }

    fn unindex(&mut self, record: &CatalogRecord) {
        for held in &record.held {
            if let Some(nodes) = self.held_by.get_mut(&held.manifest) {
                nodes.remove(&record.node);
                if nodes.is_empty() {
                    self.held_by.remove(&held.manifest);
                }
            }
        }
    }

    fn insert_manifest(
        &mut self,
        id: ManifestId,
        signed: SignedManifest,
        manifest: Manifest,
    ) -> Verdict {
        if self.manifests.contains_key(&id) {
            return Verdict::Duplicate;
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
            self.manifests.remove(&current_id);
            self.emit(CatalogEvent::ManifestForgotten { id: current_id });
        }
        self.remember_version(id, &ingest, &manifest);
        self.latest.insert(ingest, id);
        let movie = manifest.movie.clone();
        let now = Instant::now();
        self.manifests.insert(
            id,
            ManifestEntry {
                signed: Arc::new(signed),
                manifest: Arc::new(manifest),
                accepted_at: now,
                last_held: now,
            },
        );
        self.emit(CatalogEvent::ManifestAccepted { id, movie });
        Verdict::Accepted
    }

    fn remember_version(&mut self, id: ManifestId, ingest: &IngestKey, manifest: &Manifest) {
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
        });
    }

    /// Every known version id of `id`'s ingest (at least `id` itself).
    fn same_ingest(&self, id: &ManifestId) -> Vec<ManifestId> {
        match self
            .versions
            .get(id)
            .and_then(|info| self.ingest_versions.get(&info.ingest))
        {
            Some(ids) => ids.iter().copied().collect(),
            None => vec![*id],
        }
    }

    /// Does `node`'s record claim segment `index` (None: the init segment) of `track` through
    /// its entry for version `vid`?
    fn claims(
        &self,
        entry: &RecordEntry,
        vid: &ManifestId,
        track: u16,
        index: Option<u32>,
    ) -> bool {
        let Some(held) = entry.record.find(vid) else {
            return false;
        };
        match index {
            None => held.complete || held.ranges.iter().any(|r| r.track == track),
            Some(index) => {
                if held.complete {
                    // A complete older version holds the segments it had.
                    match self.versions.get(vid) {
                        Some(v) => v
                            .segments
                            .get(usize::from(track))
                            .is_some_and(|&n| index < n),
                        None => true,
                    }
                } else {
                    held.has_segment(track, index)
                }
            }
        }
    }

    fn providers(
        &self,
        id: &ManifestId,
        track: u16,
        index: Option<u32>,
        now: u64,
    ) -> Vec<Provider> {
        let mut nodes: BTreeMap<NodeId, Provider> = BTreeMap::new();
        for vid in self.same_ingest(id) {
            let Some(holders) = self.held_by.get(&vid) else {
                continue;
            };
            for node in holders {
                let Some(entry) = self.records.get(node) else {
                    continue;
                };
                if entry.record.expires_at <= now || nodes.contains_key(node) {
                    continue;
                }
                if self.claims(entry, &vid, track, index) {
                    nodes.insert(
                        *node,
                        Provider {
                            node: *node,
                            quic_addr: entry.quic_addr,
                            gateway_url: entry.record.gateway_url.clone(),
                        },
                    );
                }
            }
        }
        nodes.into_values().collect()
    }

    fn summarize(&self, id: &ManifestId, entry: &ManifestEntry, now: u64) -> ManifestSummary {
        let m = &entry.manifest;
        let mut holders = BTreeSet::new();
        let mut complete_holders = BTreeSet::new();
        // Per track, which media segments some live node holds.
        let mut covered: Vec<Vec<bool>> = m
            .tracks
            .iter()
            .map(|t| vec![false; t.segments.len()])
            .collect();
        for vid in self.same_ingest(id) {
            let Some(nodes) = self.held_by.get(&vid) else {
                continue;
            };
            let version_len = self.versions.get(&vid).map(|v| &v.segments);
            for node in nodes {
                let Some(rec) = self.records.get(node) else {
                    continue;
                };
                if rec.record.expires_at <= now {
                    continue;
                }
                let Some(held) = rec.record.find(&vid) else {
                    continue;
                };
                holders.insert(*node);
                if held.complete {
                    if vid == *id || version_len.is_none() {
                        complete_holders.insert(*node);
                    }
                    for (t, cov) in covered.iter_mut().enumerate() {
                        let n = version_len
                            .and_then(|v| v.get(t))
                            .map_or(cov.len(), |&n| (n as usize).min(cov.len()));
                        cov[..n].iter_mut().for_each(|c| *c = true);
                    }
                } else {
                    for r in &held.ranges {
                        if let Some(cov) = covered.get_mut(usize::from(r.track)) {
                            let end = (r.end as usize).min(cov.len());
                            let start = (r.start as usize).min(end);
                            cov[start..end].iter_mut().for_each(|c| *c = true);
                        }
                    }
                }
            }
        }
        let total: usize = covered.iter().map(Vec::len).sum();
        let have: usize = covered.iter().flatten().filter(|c| **c).count();
        let available_percent = if total == 0 {
            0.0
        } else {
            (have as f64 * 100.0 / total as f64) as f32
        };
        ManifestSummary {
            id: *id,
            origin: m.origin,
            seq: m.seq,
            complete: m.complete,
            duration_ms: m.duration_ms(),
            renditions: m.tracks.iter().map(|t| t.rendition.name.clone()).collect(),
            holders: holders.len(),
            complete_holders: complete_holders.len(),
            available_percent,
        }
    }

    fn movies(&self, now: u64) -> Vec<MovieSummary> {
        let mut by_movie: BTreeMap<&MovieId, Vec<(&ManifestId, &ManifestEntry)>> = BTreeMap::new();
        for (id, entry) in &self.manifests {
            by_movie
                .entry(&entry.manifest.movie)
                .or_default()
                .push((id, entry));
        }
        let mut out: Vec<MovieSummary> = by_movie
            .into_iter()
            .filter_map(|(movie, mut list)| {
                list.sort_by_key(|(_, e)| std::cmp::Reverse(e.manifest.created_at));
                let newest = list.first()?.1.manifest.clone();
                let mut nodes = BTreeSet::new();
                let manifests = list
                    .iter()
                    .map(|(id, e)| {
                        for vid in self.same_ingest(id) {
                            for n in self.held_by.get(&vid).into_iter().flatten() {
                                if self
                                    .records
                                    .get(n)
                                    .is_some_and(|r| r.record.expires_at > now)
                                {
                                    nodes.insert(*n);
                                }
                            }
                        }
                        self.summarize(id, e, now)
                    })
                    .collect();
                Some(MovieSummary {
                    movie_id: movie.clone(),
                    title: newest.title.clone(),
                    year: newest.year,
                    manifests,
                    holders: nodes.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.title
                .to_lowercase()
                .cmp(&b.title.to_lowercase())
                .then_with(|| a.movie_id.cmp(&b.movie_id))
        });
        out
    }

    fn sync_page(&self, after: Option<SyncCursor>, max_bytes: usize, now: u64) -> SyncPage {
        let mut page = SyncPage::default();
        let mut used = 0usize;
        // Each item costs its bytes plus a length prefix.
        let fits = |used: usize, len: usize, empty: bool| empty || used + len + 10 <= max_bytes;
        let records_from = match after {
            None => Some(None),
            Some(SyncCursor::RecordsAfter(node)) => Some(Some(node)),
            Some(SyncCursor::ManifestsAfter(_)) => None,
        };
        let mut last_node = None;
        if let Some(from) = records_from {
            let range = match from {
                None => self.records.range(..),
                Some(node) => self
                    .records
                    .range((std::ops::Bound::Excluded(node), std::ops::Bound::Unbounded)),
            };
            for (node, entry) in range {
                if entry.record.expires_at <= now {
                    continue;
                }
                let bytes = entry.signed.encode();
                if !fits(used, bytes.len(), page.records.is_empty()) {
                    page.next = last_node.map(SyncCursor::RecordsAfter);
                    return page;
                }
                used += bytes.len() + 10;
                page.records.push(bytes);
                last_node = Some(*node);
            }
        }
        let range = match after {
            Some(SyncCursor::ManifestsAfter(id)) => self
                .manifests
                .range((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded)),
            _ => self.manifests.range(..),
        };
        let mut last_manifest = None;
        for (id, entry) in range {
            let bytes = entry.signed.encode();
            let empty = page.records.is_empty() && page.manifests.is_empty();
            if !fits(used, bytes.len(), empty) {
                page.next = match last_manifest {
                    Some(m) => Some(SyncCursor::ManifestsAfter(m)),
                    // Stopped before the first manifest: continue after the records.
                    None => last_node.map(SyncCursor::RecordsAfter),
                };
                return page;
            }
            used += bytes.len() + 10;
            page.manifests.push(bytes);
            last_manifest = Some(*id);
        }
        page
    }

    fn sweep(&mut self, now: u64) {
        let expired: Vec<NodeId> = self
            .records
            .iter()
            .filter(|(_, e)| e.record.expires_at <= now)
            .map(|(n, _)| *n)
            .collect();
        for node in expired {
            if let Some(old) = self.records.remove(&node) {
                self.unindex(&old.record);
                tracing::debug!(node = %node.short(), "catalog record expired");
                self.emit(CatalogEvent::RecordExpired { node });
            }
        }
        self.seqs.retain(|_, mark| mark.forget_after > now);
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
        for (ingest, id) in orphans {
            self.latest.remove(&ingest);
            self.manifests.remove(&id);
            for vid in self.ingest_versions.remove(&ingest).into_iter().flatten() {
                self.versions.remove(&vid);
            }
            self.emit(CatalogEvent::ManifestForgotten { id });
        }
        // Old versions nobody names any more need no remembering.
        let unused: Vec<ManifestId> = self
            .versions
            .iter()
            .filter(|(vid, v)| {
                !self.held_by.contains_key(*vid) && self.latest.get(&v.ingest) != Some(*vid)
            })
            .map(|(vid, _)| *vid)
            .collect();
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
    fn to_public(&self, id: ManifestId) -> CatalogManifest {
        CatalogManifest {
            id,
            manifest: self.manifest.clone(),
            signed: self.signed.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;
    use reelnet_proto::{Container, Held, Rendition, SegmentEntry, SegmentHash, Track};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn manifest(key: &SigningKey, seq: u64, segments: u32) -> SignedManifest {
        let m = Manifest {
            version: 1,
            movie: MovieId::from_tmdb(1),
            title: "T".into(),
            year: None,
            origin: crate::identity::node_id(key),
            ingest_id: [1; 16],
            seq,
            created_at: seq,
            container: Container::MpegTs,
            target_duration_ms: 4000,
            tracks: vec![Track {
                rendition: Rendition {
                    name: "360p".into(),
                    width: 640,
                    height: 360,
                    bandwidth: 800_000,
                    codecs: "avc1.64001e".into(),
                    frame_rate_milli: 25_000,
                },
                init: None,
                segments: (0..segments)
                    .map(|i| SegmentEntry {
                        hash: SegmentHash::of(&i.to_le_bytes()),
                        duration_ms: 4000,
                        size: 10,
                    })
                    .collect(),
            }],
            complete: false,
            meta: Default::default(),
        };
        SignedManifest::sign(&m, key).unwrap()
    }

    fn record(key: &SigningKey, seq: u64, held: Vec<Held>) -> SignedCatalogRecord {
        let now = crate::unix_now();
        let r = CatalogRecord {
            node: crate::identity::node_id(key),
            quic_addr: "127.0.0.1:7400".into(),
            gateway_url: "http://127.0.0.1:8080".into(),
            held,
            seq,
            issued_at: now,
            expires_at: now + 60,
            replica: true,
        };
        SignedCatalogRecord::sign(&r, key).unwrap()
    }

    fn complete(m: &SignedManifest) -> Held {
        Held {
            manifest: m.id(),
            movie: MovieId::from_tmdb(1),
            complete: true,
            ranges: vec![],
        }
    }

    #[tokio::test]
    async fn seq_rules_and_replay_grace() {
        let cancel = CancellationToken::new();
        let config = CatalogConfig {
            replay_grace: Duration::from_millis(100),
            ..CatalogConfig::default()
        };
        let (cat, _) = Catalog::start(config, cancel.clone());
        let k = key(1);
        assert_eq!(
            cat.offer_record(record(&k, 5, vec![])).await.unwrap(),
            Verdict::Accepted
        );
        assert_eq!(
            cat.offer_record(record(&k, 5, vec![])).await.unwrap(),
            Verdict::Duplicate
        );
        assert_eq!(
            cat.offer_record(record(&k, 4, vec![])).await.unwrap(),
            Verdict::Stale
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            cat.offer_record(record(&k, 3, vec![])).await.unwrap(),
            Verdict::Replay
        );
        assert!(matches!(
            cat.offer_record_bytes(b"garbage").await.unwrap(),
            Verdict::Invalid(_)
        ));
        assert_eq!(
            cat.record(crate::identity::node_id(&k))
                .await
                .unwrap()
                .unwrap()
                .seq,
            5
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn older_versions_still_count_for_their_segments() {
        let cancel = CancellationToken::new();
        let (cat, _) = Catalog::start(CatalogConfig::default(), cancel.clone());
        let origin = key(1);
        let v1 = manifest(&origin, 1, 3);
        let v2 = manifest(&origin, 2, 6);
        assert_eq!(
            cat.offer_manifest(v1.clone()).await.unwrap(),
            Verdict::Accepted
        );
        assert_eq!(
            cat.offer_manifest(v2.clone()).await.unwrap(),
            Verdict::Accepted
        );
        assert_eq!(
            cat.offer_manifest(v1.clone()).await.unwrap(),
            Verdict::Stale
        );
        // Node 2 holds all of v1 (3 segments); the origin holds v2 fully.
        let other = key(2);
        cat.offer_record(record(&other, 1, vec![complete(&v1)]))
            .await
            .unwrap();
        cat.offer_record(record(&origin, 1, vec![complete(&v2)]))
            .await
            .unwrap();
        assert_eq!(cat.providers(v2.id(), 0, 2).await.unwrap().len(), 2);
        assert_eq!(cat.providers(v2.id(), 0, 4).await.unwrap().len(), 1);
        let movies = cat.movies().await.unwrap();
        assert_eq!(movies.len(), 1);
        assert_eq!(movies[0].manifests.len(), 1);
        assert_eq!(movies[0].holders, 2);
        assert_eq!(movies[0].manifests[0].complete_holders, 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn sync_pages_cover_everything_once() {
        let cancel = CancellationToken::new();
        let (cat, _) = Catalog::start(CatalogConfig::default(), cancel.clone());
        for n in 1..=5u8 {
            let k = key(n);
            let m = manifest(&k, 1, 50);
            cat.offer_manifest(m.clone()).await.unwrap();
            cat.offer_record(record(&k, 1, vec![complete(&m)]))
                .await
                .unwrap();
        }
        let (mut records, mut manifests, mut pages) = (0, 0, 0);
        let mut after = None;
        loop {
            // Tiny pages: one item each.
            let page = cat.sync_page(after, 1).await.unwrap();
            pages += 1;
            records += page.records.len();
            manifests += page.manifests.len();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!((records, manifests, pages), (5, 5, 10));
        let all = cat.sync_page(None, usize::MAX).await.unwrap();
        assert_eq!(
            (all.records.len(), all.manifests.len(), all.next),
            (5, 5, None)
        );
        cancel.cancel();
    }
}
