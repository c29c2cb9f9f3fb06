//! A reelnet node. `Node::bind` starts every subsystem from a [`config::NodeConfig`];
//! `shutdown` stops them in order and `join` waits until they are gone.
//!
//! Subsystems (see ARCHITECTURE.md): `gateway` (warp), `identity` (the node key),
//! `metrics`, `shutdown` (signals and task spawning).

// warp's nested filter types exceed the default limit in release builds.
#![recursion_limit = "256"]

pub mod admin;
pub mod catalog;
pub mod config;
pub mod gateway;
pub mod identity;
pub mod ingest;
pub mod metadata;
pub mod metrics;
pub mod placement;
pub mod requests;
pub mod shutdown;
pub mod store;
pub mod swarm;
pub mod transfer;

use std::net::SocketAddr;
use std::sync::Arc;

use reelnet_proto::NodeId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use config::NodeConfig;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("cannot open the store in {path}: {source} (is another reelnet-node using this data directory?)")]
    Store {
        path: std::path::PathBuf,
        source: store::StoreError,
    },
    #[error("bad multiaddr `{addr}` in {key}: {reason}")]
    Multiaddr {
        key: &'static str,
        addr: String,
        reason: String,
    },
    #[error(transparent)]
    Swarm(#[from] swarm::SwarmError),
    #[error("cannot start the QUIC segment service (quic.listen / --quic): {0}")]
    Quic(String),
    #[error("cannot start the QUIC segment fetcher: {0}")]
    Fetcher(#[from] transfer::FetchError),
    #[error(transparent)]
    PlaybackKey(#[from] gateway::token::KeyFileError),
    #[error("cannot start the admin API: {0}")]
    Admin(std::io::Error),
    #[error("cannot listen on {addr} (gateway.listen / --listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    node_id: NodeId,
    transfer: transfer::TransferServer,
    fetcher: Arc<transfer::Fetcher>,
    gateway_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Ingest jobs do not outlive the process (a stopped job removes its manifest), so an
/// incomplete ingest of this node's own at start is what a crash (SIGKILL, power loss) left
/// half-published. It is forgotten before anything is announced, so the network does not
/// list an ingest that will never grow again; its segments become evictable cache.
fn forget_interrupted_ingests(store: &store::Store, node_id: reelnet_proto::NodeId) {
    let manifests = match store.all_manifests() {
        Ok(m) => m,
        Err(err) => {
            tracing::warn!(%err, "cannot list stored manifests to find interrupted ingests");
            return;
        }
    };
    for m in manifests
        .iter()
        .filter(|m| m.manifest.origin == node_id && !m.manifest.complete)
    {
        match store.remove_ingest(&m.manifest) {
            Ok(()) => tracing::warn!(
                movie = %m.manifest.movie,
                manifest = %m.id,
                "forgot an ingest interrupted by a crash; ingest it again to publish it"
            ),
            Err(err) => {
                tracing::warn!(%err, manifest = %m.id, "cannot forget an interrupted ingest")
            }
        }
    }
}

impl Node {
    /// Starts the node's subsystems.
    pub async fn bind(config: NodeConfig) -> Result<Self, NodeError> {
        let mut ctx = ingest_context(&config)?;
        let node_id = identity::node_id(&ctx.key);
        let cancel = CancellationToken::new();
        forget_interrupted_ingests(&ctx.store, node_id);

        // The network: catalog index, libp2p swarm, and the publisher of our own record.
        let parse = |key: &'static str, addr: &str| {
            addr.parse::<libp2p::Multiaddr>()
                .map_err(|e| NodeError::Multiaddr {
                    key,
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })
        };
        let listen = vec![parse("p2p.listen", &config.p2p.listen)?];
        let bootstrap = config
            .p2p
            .bootstrap
            .iter()
            .map(|a| parse("p2p.bootstrap", a))
            .collect::<Result<Vec<_>, _>>()?;
        let (catalog, catalog_task) =
            catalog::Catalog::start(catalog::CatalogConfig::default(), cancel.clone());
        let (network, p2p_addrs, swarm_task) = swarm::start(
            swarm::SwarmConfig {
                listen,
                bootstrap,
                mdns: config.p2p.mdns,
                ..swarm::SwarmConfig::default()
            },
            &ctx.key,
            catalog.clone(),
            cancel.clone(),
        )
        .await?;
        for addr in &p2p_addrs {
            tracing::info!(addr = %swarm::with_peer(addr, network.peer_id()), "p2p listening");
        }
        // The QUIC segment service other nodes fetch from.
        let (transfer, quic_addr) = transfer::TransferServer::bind(
            config.quic.listen,
            &ctx.key,
            ctx.store.clone(),
            transfer::Limits::default(),
        )
        .map_err(|e| NodeError::Quic(e.to_string()))?;
        let mut advertised = config.quic_advertised();
        if advertised.port() == 0 {
            advertised.set_port(quic_addr.port());
        }
        tracing::info!(%quic_addr, %advertised, "QUIC segment service listening");
        // The gateway's socket is bound now so that the URL this node advertises carries the
        // real port (with `gateway.listen` on port 0).
        let listener = tokio::net::TcpListener::bind(config.gateway.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: config.gateway.listen,
                source,
            })?;
        let gateway_addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: config.gateway.listen,
            source,
        })?;
        let public_url = match &config.gateway.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let mut addr = gateway_addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        // One QUIC client endpoint for every fetch from peers (gateway misses, placement).
        let fetcher = Arc::new(transfer::Fetcher::new(Some(&ctx.key))?);
        let (publisher, publisher_task) = swarm::publisher::Publisher::start(
            swarm::publisher::PublisherConfig {
                interval: std::time::Duration::from_secs(config.p2p.republish_secs),
                ttl: std::time::Duration::from_secs(config.p2p.record_ttl_secs),
                replica: config.storage.replica,
                ..swarm::publisher::PublisherConfig::new(advertised, public_url.clone())
            },
            ctx.store.clone(),
            ctx.key.clone(),
            catalog.clone(),
            network.clone(),
            cancel.clone(),
        );
        // Placement: pull this node's share of the library, release what moved away.
        let (placement, placement_task) = placement::Placement::start(
            placement::PlacementConfig {
                replication: usize::try_from(config.storage.replication).unwrap_or(usize::MAX),
                replica: config.storage.replica,
                ..placement::PlacementConfig::default()
            },
            node_id,
            ctx.store.clone(),
            catalog.clone(),
            fetcher.clone(),
            publisher.clone(),
            cancel.clone(),
        );
        // Every manifest version an ingest publishes is announced to the network at once.
        let runtime = tokio::runtime::Handle::current();
        ctx.on_publish = Some(Box::new(move |stored: &store::StoredManifest| {
            let (publisher, signed) = (publisher.clone(), stored.signed.clone());
            runtime.spawn(async move {
                if let Err(err) = publisher.announce_manifest(signed).await {
                    tracing::warn!(%err, "cannot announce a manifest");
                }
            });
        }));
        let store = ctx.store.clone();
        let (ingest, ingest_task) =
            ingest::manager::IngestManager::start(Arc::new(ctx), cancel.clone());
        let status = admin::StatusSource {
            node_id,
            store: store.clone(),
            catalog: catalog.clone(),
            network,
            placement,
        };
        // Movie requests from the tracker, ingested through the same manager.
        let requests_task = config.requests.enabled.then(|| {
            shutdown::spawn(
                "request-claimer",
                requests::Claimer {
                    config: config.requests.clone(),
                    tracker: requests::TrackerRequests::new(
                        &config.tracker.url,
                        &config.requests.node_secret,
                        node_id.to_string(),
                    ),
                    ingest: ingest.clone(),
                    store: store.clone(),
                    work_dir: config.data_dir.join("requests"),
                }
                .run(cancel.clone()),
            )
        });
        let (admin_addr, admin_task) =
            admin::serve(&config.data_dir, ingest, status, cancel.clone())
                .await
                .map_err(NodeError::Admin)?;
        tracing::info!(%admin_addr, "admin API on loopback");
        let metrics = Arc::new(metrics::Metrics::new(unix_now()));

        let hot_bytes = usize::try_from(config.gateway.hot_cache_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX);
        let (hot, hot_task) = gateway::hot::HotSegments::start(hot_bytes, cancel.clone());
        let (fetches, fetches_task) = gateway::hls::PeerFetches::start(
            fetcher.clone(),
            store.clone(),
            metrics.clone(),
            cancel.clone(),
        );
        // Access tokens are checked offline with the tracker's JWKS (one fetcher task owns
        // the key cache); playback tokens are signed with this node's playback.key.
        let (jwt, jwks_task) = gateway::auth::JwtVerifier::start(
            gateway::auth::VerifierConfig::new(&config.tracker.url, &config.tracker.issuer),
            cancel.clone(),
        );
        let tokens = gateway::token::PlaybackTokens::load_or_create(
            &config.data_dir,
            config.gateway.playback_token_ttl_secs,
        )?;
        // TMDb metadata (off without an API key): one task owns its cache.
        let (metadata, metadata_task) = metadata::Metadata::start(
            metadata::TmdbConfig::from_config(&config.metadata, &config.data_dir),
            store.clone(),
            cancel.clone(),
        );
        let routes = gateway::routes(gateway::GatewayState {
            node_id,
            metrics,
            web_dir: config.gateway.web_dir.clone(),
            data_dir: config.data_dir.clone(),
            public_url,
            tracker_url: config.tracker.url.trim_end_matches('/').to_owned(),
            store,
            catalog,
            fetcher: fetcher.clone(),
            fetches,
            jwt: Arc::new(jwt),
            tokens: Arc::new(tokens),
            proxy: gateway::proxy::ProxyClient::new(cancel.clone()),
            metadata,
            premium_renditions: config.gateway.premium_renditions,
            hot,
        });
        let stop = cancel.clone();
        let server = shutdown::spawn("gateway", async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run()
                .await;
            Ok::<(), std::convert::Infallible>(())
        });
        tracing::info!(%node_id, gateway = %gateway_addr, "node started");
        Ok(Self {
            node_id,
            transfer,
            fetcher,
            gateway_addr,
            cancel,
            tasks: vec![
                server,
                fetches_task,
                hot_task,
                jwks_task,
                metadata_task,
                admin_task,
                ingest_task,
                publisher_task,
                placement_task,
                swarm_task,
                catalog_task,
            ]
            .into_iter()
            .chain(requests_task)
            .collect(),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the gateway actually listens on (useful with port 0).
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// Asks every subsystem to stop.
    pub fn shutdown(&self) {
        self.transfer.shutdown();
        self.cancel.cancel();
    }

    /// Waits until every task has stopped.
    pub async fn join(self) {
        self.transfer.join().await;
        self.fetcher.close().await;
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(%err, "task panicked");
            }
        }
    }
}

/// What ingest jobs need, from the node's config: its store, key and ladder.
pub fn ingest_context(config: &NodeConfig) -> Result<ingest::job::IngestContext, NodeError> {
    let key = identity::load_or_create(&config.data_dir)?;
    let store = store::Store::open(&config.data_dir).map_err(|source| NodeError::Store {
        path: config.data_dir.clone(),
        source,
    })?;
    store.set_quota(config.storage.quota_bytes);
    Ok(ingest::job::IngestContext {
        store,
        key,
        ladder: ingest::ladder_from_config(&config.ingest),
        download_dir: config.data_dir.join("downloads"),
        public_torrents: config.ingest.public_torrents,
        on_publish: None,
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
