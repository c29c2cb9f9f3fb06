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
//! - With a [`Membership`](crate::membership::Membership) (every running node has one), a
//!   record is accepted only with a valid certificate for its node in this network, and
//!   claims `replica` only if the certificate has that role; a manifest only if its origin
//!   is a member with the `ingest` role. When the revocation list names a node, its record
//!   and the manifests it originated leave the index at once.
//!
//! Nothing here is persisted: on start a node rebuilds the catalog from its own store
//! (see `swarm::publisher`) and from its peers (full sync on connect).
//!
//! # Files
//!
//! This module holds the public types; `handle` the [`Catalog`] handle and its commands;
//! `state` the index the task owns and the rules above; `query` what the index answers
//! (providers, movie summaries); `sync` the paged full sync and its [`SyncCursor`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelnet_proto::catalog::{MAX_RECORD_TTL_SECS, SKEW_TOLERANCE_SECS};
use reelnet_proto::membership::{Certificate, RoleName};
use reelnet_proto::{
    CatalogRecord, Manifest, ManifestId, MovieId, NodeId, ProtoError, SignedCatalogRecord,
    SignedManifest,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::bindings::BindingTable;
use crate::membership::{MemberState, Membership};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod authority;
mod handle;
mod query;
mod state;
mod sync;
#[cfg(test)]
mod tests;
pub mod verdict;

// The task's parts share their private items through this module.
use authority::Usage;
use handle::*;
use state::*;

pub use handle::Catalog;
pub use sync::{SyncCursor, SyncPage};
pub use verdict::Verdict;

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
    /// How long the previous source of a re-pointed movie stays playable (viewers in the
    /// middle of it finish; it is no longer listed).
    pub retired_grace: Duration,
    /// Most manifests (newest version per ingest) one origin may have in the catalog.
    pub max_manifests_per_origin: usize,
    /// Most bytes one origin's manifests and record may take.
    pub max_bytes_per_origin: usize,
    /// Most bytes the whole catalog may take (manifests and records, about their memory).
    pub budget_bytes: usize,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(1),
            replay_grace: Duration::from_secs(2),
            orphan_retention: Duration::from_secs(3600),
            retired_grace: Duration::from_secs(6 * 3600),
            max_manifests_per_origin: 5000,
            max_bytes_per_origin: 512 << 20,
            budget_bytes: 1 << 30,
        }
    }
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
    /// Video rendition (ladder rung) names, in manifest order; audio, subtitle and
    /// thumbnail tracks are not listed.
    pub renditions: Vec<String>,
    /// Live nodes holding any segment of this ingest.
    pub holders: usize,
    /// Live nodes holding all of it.
    pub complete_holders: usize,
    /// Percentage (0-100) of this manifest's media segments that at least one live node
    /// holds.
    pub available_percent: f32,
    /// The movie is bound to this manifest's lineage (false for unbound movies and for a
    /// re-pointed movie's previous source).
    pub bound: bool,
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
    pub not_member: u64,
    pub unknown_origin: u64,
    /// Manifests refused or dropped because their movie is bound to another source.
    pub other_lineage: u64,
    /// Manifests and records evicted to keep the catalog within its budget.
    pub evicted: u64,
    /// About how many bytes the catalog takes.
    pub bytes: usize,
    /// Movies with a binding.
    pub bound_movies: usize,
    /// Bindings accepted in the table the catalog applies (grows with each one taken).
    pub bindings_taken: u64,
}
