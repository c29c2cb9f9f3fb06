//! Publishing this node's own catalog record.
//!
//! The [`Publisher`] worker builds the node's [`CatalogRecord`] from its [`Store`] (a
//! manifest whose ingest is complete and whose segments are all on disk is held
//! `complete`; otherwise the ranges of segments present are listed), signs it with
//! `seq` = unix milliseconds (kept strictly increasing) and `expires_at` = now + TTL, and
//! gossips it every [`PublisherConfig::interval`] and whenever asked
//! ([`Publisher::republish`], e.g. after ingest stored a new manifest version). Requests
//! arriving in a burst are coalesced: at most one record per
//! [`PublisherConfig::min_spacing`].
//!
//! Each round also offers the store's manifests to the catalog, so this node's own
//! manifests are in its index and in the full catalog it serves to peers; a manifest the
//! catalog did not know yet is gossiped too.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use reelnet_proto::catalog::{MAX_HELD, MAX_TOTAL_RANGES};
use reelnet_proto::membership::RoleName;
use reelnet_proto::{
    CatalogRecord, Held, ManifestId, SegmentRange, SignedCatalogRecord, SignedManifest,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{NetworkHandle, SwarmError};
use crate::catalog::{Catalog, Verdict};
use crate::store::{Store, StoreError, StoredManifest};

/// What the publisher advertises and how often.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// The QUIC segment service's address as peers should dial it (not `0.0.0.0`).
    pub quic_addr: SocketAddr,
    /// The gateway's public base URL.
    pub gateway_url: String,
    /// Republish period (default 60 s).
    pub interval: Duration,
    /// Record lifetime (default 10 minutes).
    pub ttl: Duration,
    /// Shortest time between two records (default 500 ms).
    pub min_spacing: Duration,
    /// Whether this node takes a share of the library (`storage.replica`); it claims one
    /// only when its certificate has the replica role too.
    pub replica: bool,
    /// This node's membership: the record carries its certificate, and nothing is
    /// published while it is not a member. `None`: no certificate (tests of the swarm).
    pub membership: Option<crate::membership::Membership>,
}

impl PublisherConfig {
    pub fn new(quic_addr: SocketAddr, gateway_url: impl Into<String>) -> Self {
        Self {
            quic_addr,
            gateway_url: gateway_url.into(),
            interval: Duration::from_secs(60),
            ttl: Duration::from_secs(600),
            min_spacing: Duration::from_millis(500),
            replica: true,
            membership: None,
        }
    }
}

/// Why a record could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot sign the catalog record: {0}")]
    Sign(#[from] reelnet_proto::ProtoError),
    #[error(transparent)]
    Network(#[from] SwarmError),
    #[error("the catalog has stopped")]
    Stopped,
    #[error("this node is not a member of the network; it publishes nothing")]
    NotMember,
}

/// What the node holds of one stored manifest, or `None` if no segment of it.
pub fn held_of(store: &Store, stored: &StoredManifest) -> Option<Held> {
    let m = &stored.manifest;
    let mut ranges = Vec::new();
    let mut all = true;
    for (t, track) in m.tracks.iter().enumerate() {
        let Ok(t) = u16::try_from(t) else { break };
        // Without its init segment no media segment of the track can be played.
        if track
            .init
            .is_some_and(|init| !store.has_segment(&init.hash))
        {
            all = false;
            continue;
        }
        let mut start: Option<u32> = None;
        let mut index = 0u32;
        for seg in &track.segments {
            if store.has_segment(&seg.hash) {
                start.get_or_insert(index);
            } else {
                all = false;
                if let Some(s) = start.take() {
                    ranges.push(SegmentRange {
                        track: t,
                        start: s,
                        end: index,
                    });
                }
            }
            index += 1;
        }
        if let Some(s) = start {
            ranges.push(SegmentRange {
                track: t,
                start: s,
                end: index,
            });
        }
    }
    if m.complete && all {
        Some(Held {
            manifest: stored.id,
            movie: m.movie.clone(),
            complete: true,
            ranges: Vec::new(),
        })
    } else if ranges.is_empty() {
        None
    } else {
        Some(Held {
            manifest: stored.id,
            movie: m.movie.clone(),
            complete: false,
            ranges,
        })
    }
}

/// Builds and signs this node's record from the store (blocking: reads the disk).
pub fn build_record(
    store: &Store,
    key: &SigningKey,
    config: &PublisherConfig,
    seq: u64,
    now: u64,
) -> Result<(SignedCatalogRecord, Vec<PublishedManifest>), PublisherError> {
    let stored = store.all_manifests()?;
    let mut held = Vec::new();
    let mut ranges = 0usize;
    for s in &stored {
        let Some(h) = held_of(store, s) else { continue };
        if held.len() >= MAX_HELD || ranges + h.ranges.len() > MAX_TOTAL_RANGES {
            tracing::warn!(
                manifests = stored.len(),
                "too many manifests or ranges for one catalog record; some are not advertised"
            );
            break;
        }
        ranges += h.ranges.len();
        held.push(h);
    }
    let (replica, certificate) = match &config.membership {
        None => (config.replica, Vec::new()),
        Some(m) => match m.own() {
            Some(own) => (
                config.replica && own.cert.roles.has(RoleName::Replica),
                own.signed.encode(),
            ),
            None => return Err(PublisherError::NotMember),
        },
    };
    let record = CatalogRecord {
        node: crate::identity::node_id(key),
        quic_addr: config.quic_addr.to_string(),
        gateway_url: config.gateway_url.clone(),
        held,
        seq,
        issued_at: now,
        expires_at: now + config.ttl.as_secs().max(1),
        replica,
        certificate,
    };
    let signed = SignedCatalogRecord::sign(&record, key)?;
    let me = crate::identity::node_id(key);
    let manifests = stored
        .into_iter()
        .map(|s| PublishedManifest {
            id: s.id,
            own: s.manifest.origin == me,
            signed: s.signed,
        })
        .collect();
    Ok((signed, manifests))
}

/// A stored manifest as the publisher offers it: its id, whether this node originated it,
/// its signed form.
pub struct PublishedManifest {
    pub id: ManifestId,
    pub own: bool,
    pub signed: SignedManifest,
}

/// Puts this node's record and manifests into its own catalog without gossiping them: done
/// once before the swarm starts, so the first catalog sync a peer makes already carries
/// them. (Not a member, or the store unreadable: nothing; the publisher reports it.)
pub async fn prime(config: &PublisherConfig, store: &Store, key: &SigningKey, catalog: &Catalog) {
    let (store, key, config) = (store.clone(), key.clone(), config.clone());
    let (seq, now) = (unix_millis(), crate::unix_now());
    let built =
        tokio::task::spawn_blocking(move || build_record(&store, &key, &config, seq, now)).await;
    let Ok(Ok((record, manifests))) = built else {
        return;
    };
    if catalog.offer_record(record).await.is_err() {
        return;
    }
    for m in manifests {
        if catalog.offer_manifest(m.signed).await.is_err() {
            return;
        }
    }
}

/// Handle to the publisher worker. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    wake: Arc<Notify>,
    catalog: Catalog,
    network: NetworkHandle,
    gossiped: Gossiped,
}

impl Publisher {
    /// Starts the worker: it publishes at once, then every `config.interval`, and when asked.
    pub fn start(
        config: PublisherConfig,
        store: Store,
        key: SigningKey,
        catalog: Catalog,
        network: NetworkHandle,
        cancel: CancellationToken,
    ) -> (Publisher, JoinHandle<()>) {
        let wake = Arc::new(Notify::new());
        let gossiped = Gossiped::default();
        let worker = Worker {
            config,
            store,
            key,
            catalog: catalog.clone(),
            network: network.clone(),
            last_seq: 0,
            gossiped: gossiped.clone(),
        };
        let task =
            reelnet_runtime::shutdown::spawn("catalog-publisher", worker.run(wake.clone(), cancel));
        (
            Publisher {
                wake,
                catalog,
                network,
                gossiped,
            },
            task,
        )
    }

    /// Asks for a new record soon (coalesced with other requests).
    pub fn republish(&self) {
        self.wake.notify_one();
    }

    /// Announces a new manifest (version) `id`: adds it to the catalog, gossips it and
    /// republishes the record. The manifest should already be in the store.
    pub async fn announce_manifest(
        &self,
        id: ManifestId,
        manifest: SignedManifest,
    ) -> Result<Verdict, PublisherError> {
        let verdict = self
            .catalog
            .offer_manifest(manifest.clone())
            .await
            .map_err(|_| PublisherError::Stopped)?;
        if verdict == Verdict::Accepted {
            self.network.publish_manifest(manifest).await?;
            self.gossiped.insert(id);
        }
        self.republish();
        Ok(verdict)
    }
}

struct Worker {
    config: PublisherConfig,
    store: Store,
    key: SigningKey,
    catalog: Catalog,
    network: NetworkHandle,
    last_seq: u64,
    gossiped: Gossiped,
}

/// Own manifests (versions) this node has gossiped. One the catalog holds that was never
/// gossiped (it came in before the swarm started, or waited for a binding that moved to
/// it) is gossiped at the publisher's next round. Only this node's current manifests are
/// kept.
#[derive(Clone, Default)]
struct Gossiped(Arc<Mutex<HashSet<ManifestId>>>);

impl Gossiped {
    fn insert(&self, id: ManifestId) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(id);
        }
    }

    fn contains(&self, id: &ManifestId) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(id))
    }

    fn retain_only(&self, own: &HashSet<ManifestId>) {
        if let Ok(mut set) = self.0.lock() {
            set.retain(|id| own.contains(id));
        }
    }
}

impl Worker {
    async fn run(
        mut self,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) -> Result<(), PublisherError> {
        // Continue above a record of ours that peers may still hold (after a restart).
        if let Ok(Some(own)) = self
            .catalog
            .record(crate::identity::node_id(&self.key))
            .await
        {
            self.last_seq = own.seq;
        }
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
                _ = wake.notified() => {}
            }
            match self.publish_once().await {
                Ok(()) => {}
                Err(PublisherError::NotMember) => {
                    tracing::debug!("not a member; no catalog record published")
                }
                Err(err) => tracing::warn!(%err, "cannot publish this node's catalog record"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.min_spacing) => {}
            }
        }
    }

    async fn publish_once(&mut self) -> Result<(), PublisherError> {
        let seq = unix_millis().max(self.last_seq + 1);
        let now = crate::unix_now();
        let (store, key, config) = (self.store.clone(), self.key.clone(), self.config.clone());
        let (record, manifests) =
            tokio::task::spawn_blocking(move || build_record(&store, &key, &config, seq, now))
                .await
                .map_err(|_| PublisherError::Stopped)??;
        self.last_seq = seq;
        // The record first: it carries the certificate that makes this node's manifests
        // acceptable (here and at peers).
        self.network.publish_record(record).await?;
        let stored: HashSet<ManifestId> = manifests.iter().map(|m| m.id).collect();
        self.gossiped.retain_only(&stored);
        for m in manifests {
            let verdict = self
                .catalog
                .offer_manifest(m.signed.clone())
                .await
                .map_err(|_| PublisherError::Stopped)?;
            // New to the catalog: gossip it. An own manifest the catalog already held but
            // this node never gossiped (primed before the swarm started, or taken in when a
            // re-point bound it): gossip it once. Copies of other origins' manifests are
            // their origin's to gossip.
            let unsent = m.own && verdict == Verdict::Duplicate && !self.gossiped.contains(&m.id);
            if verdict == Verdict::Accepted || unsent {
                self.network.publish_manifest(m.signed).await?;
                self.gossiped.insert(m.id);
            }
        }
        tracing::debug!(seq, "published catalog record");
        Ok(())
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
