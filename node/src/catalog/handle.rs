//! The handle: [`Catalog`] is what the rest of the node holds; it sends the owner task
//! [`Command`]s with oneshot replies. Expensive checks (decoding, signatures, the time
//! window) run here, in the caller's task, before a command is sent.

use super::*;

/// Handle to the catalog task. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<CatalogEvent>,
    membership: Option<Membership>,
}

pub(super) type Reply<T> = oneshot::Sender<T>;

pub(super) enum Command {
    Record {
        signed: SignedCatalogRecord,
        record: CatalogRecord,
        quic_addr: SocketAddr,
        /// The record's verified certificate (`None` without membership checks).
        cert: Option<Certificate>,
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
        reply: Reply<Arc<Vec<MovieSummary>>>,
    },
    Movie {
        id: MovieId,
        reply: Reply<Option<MovieSummary>>,
    },
    ImageRefs {
        hash: reelnet_proto::SegmentHash,
        reply: Reply<Vec<(MovieId, NodeId)>>,
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
    /// Starts the catalog task without membership checks (any valid signer is accepted:
    /// tools and tests of the index itself); it stops when `cancel` fires.
    pub fn start(config: CatalogConfig, cancel: CancellationToken) -> (Catalog, JoinHandle<()>) {
        Self::start_with(config, None, cancel)
    }

    /// Starts the catalog task; with `membership`, only members' records and manifests are
    /// accepted (see the module docs).
    pub fn start_with(
        config: CatalogConfig,
        membership: Option<Membership>,
        cancel: CancellationToken,
    ) -> (Catalog, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(1024);
        let state = State::new(
            config,
            events.clone(),
            membership.as_ref().map(|m| m.subscribe()),
        );
        let task = reelnet_runtime::shutdown::spawn("catalog", state.run(rx, cancel));
        (
            Catalog {
                tx,
                events,
                membership,
            },
            task,
        )
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
        let cert = match &self.membership {
            None => None,
            Some(m) => match m.check(&record.certificate, &record.node) {
                Ok(cert) => {
                    if record.replica && !cert.roles.has(RoleName::Replica) {
                        return self
                            .count(Verdict::NotMember(format!(
                                "node {} claims a replica share without the replica role",
                                record.node.short()
                            )))
                            .await;
                    }
                    Some(cert)
                }
                // Expired or revoked: an honest forwarder may not know yet; not its fault.
                Err(
                    reelnet_proto::membership::MembershipError::Expired { .. }
                    | reelnet_proto::membership::MembershipError::Revoked(_),
                ) => return self.count(Verdict::Expired).await,
                Err(err) => {
                    return self
                        .count(Verdict::NotMember(format!(
                            "node {}: {err}",
                            record.node.short()
                        )))
                        .await
                }
            },
        };
        self.ask(|reply| Command::Record {
            signed,
            record,
            quic_addr,
            cert,
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
    pub async fn movies(&self) -> Result<Arc<Vec<MovieSummary>>, CatalogError> {
        self.ask(|reply| Command::Movies { reply }).await
    }

    /// One movie, as [`Catalog::movies`] lists it (work bounded by that movie's ingests).
    pub async fn movie(&self, id: &MovieId) -> Result<Option<MovieSummary>, CatalogError> {
        let id = id.clone();
        self.ask(|reply| Command::Movie { id, reply }).await
    }

    /// The movies (and their origins) whose manifests name image `hash` as poster or
    /// backdrop (an index lookup).
    pub async fn image_refs(
        &self,
        hash: reelnet_proto::SegmentHash,
    ) -> Result<Vec<(MovieId, NodeId)>, CatalogError> {
        self.ask(|reply| Command::ImageRefs { hash, reply }).await
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
