//! A reelnet node. `Node::bind` starts every subsystem from a [`config::NodeConfig`];
//! `shutdown` stops them in order and `join` waits until they are gone.
//!
//! Subsystems (see ARCHITECTURE.md): `gateway` (warp), `identity` (the node key),
//! `metrics`; shutdown and task tracking come from `reelnet_runtime`.

// warp's nested filter types exceed the default limit in release builds.
#![recursion_limit = "256"]

pub mod admin;
pub mod bindings;
pub mod catalog;
pub mod config;
pub mod gateway;
pub mod history;
pub mod identity;
pub mod ingest;
pub mod membership;
pub mod metadata;
pub mod metrics;
pub mod netguard;
pub mod operators;
pub mod placement;
pub mod requests;
pub mod scrub;
pub mod store;
pub mod swarm;
pub mod trackers;
pub mod transfer;

use std::net::SocketAddr;
use std::sync::Arc;

use reelnet_proto::NodeId;
use reelnet_runtime::{Shutdown, Stage};

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
    #[error(
        "gateway.public_url / --public-url {url:?} {reason}; give the gateway's origin \
         (scheme://host[:port]), e.g. https://movies.example.org"
    )]
    PublicUrl { url: String, reason: String },
    #[error("[tracker] url / public_url: {0}")]
    Trackers(#[from] trackers::TrackersError),
    #[error("cannot create the data directory {path} (mode 0700): {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] reelnet_runtime::fs::PrivateFileError),
    #[error("cannot listen on {addr} (gateway.listen / --listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (gateway.tls.redirect_listen): {source}")]
    RedirectBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gateway.tls: {0}")]
    Tls(#[from] reelnet_runtime::tls::TlsError),
}

/// A running node: its identity, where its gateway listens, and the shutdown tree every
/// one of its tasks is tracked in.
pub struct Node {
    node_id: NodeId,
    gateway_addr: SocketAddr,
    shutdown: Shutdown,
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

/// What the network subsystems hand to the rest of the node.
struct Network {
    membership: membership::Membership,
    catalog: catalog::Catalog,
    client: swarm::NetworkHandle,
    publisher: swarm::publisher::Publisher,
    placement: placement::Placement,
    fetcher: Arc<transfer::Fetcher>,
    /// Segment bytes the QUIC server has delivered to peers.
    uploads: transfer::UploadCounter,
}

impl Node {
    /// Starts the node's subsystems, each under its stage of one [`Shutdown`] tree:
    /// servers (gateway, admin API, QUIC segment service) in [`Stage::Http`]; ingest,
    /// placement, the publisher and request claims in [`Stage::Workers`]; the catalog, the
    /// swarm, caches and the peer fetcher in [`Stage::Actors`]; the store's last flush in
    /// [`Stage::Store`].
    pub async fn bind(config: NodeConfig) -> Result<Self, NodeError> {
        let shutdown = Shutdown::new();
        match Self::start(config, &shutdown).await {
            Ok(node) => Ok(node),
            Err(err) => {
                // Whatever started before the failure stops in order, too.
                shutdown.drain().await;
                Err(err)
            }
        }
    }

    async fn start(config: NodeConfig, shutdown: &Shutdown) -> Result<Self, NodeError> {
        let mut ctx = ingest_context(&config)?;
        let node_id = identity::node_id(&ctx.key);
        forget_interrupted_ingests(&ctx.store, node_id);
        start_store_flush(shutdown, ctx.store.clone());
        if let Some(task) = scrub::start(
            ctx.store.clone(),
            config.storage.scrub_bytes_per_sec,
            shutdown.token(Stage::Workers),
        ) {
            shutdown.adopt(Stage::Workers, task);
        }
        // The gateway's socket is bound first so that the URL this node advertises carries
        // the real port (with `gateway.listen` on port 0).
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
        let public_url = public_url(&config, gateway_addr)?;
        // Which tracker replica every node→tracker call uses (one handle for them all).
        let trackers = config.trackers()?;
        let probe = std::time::Duration::from_secs(config.tracker.probe_secs.max(1));
        if let Some(task) = trackers.start_probe(probe, shutdown.token(Stage::Actors)) {
            shutdown.adopt(Stage::Actors, task);
        }
        let net = start_network(&config, &ctx, node_id, &public_url, &trackers, shutdown).await?;
        // Every manifest version an ingest publishes is announced to the network at once.
        // A complete one is also announced to the tracker, which binds an unbound movie to it.
        let (publisher, announcer) = (net.publisher.clone(), shutdown.clone());
        let member = net.membership.clone();
        ctx.on_publish = Some(Box::new(move |stored: &store::StoredManifest| {
            let (publisher, id, signed) = (publisher.clone(), stored.id, stored.signed.clone());
            let to_tracker = (stored.manifest.complete && stored.manifest.origin == node_id)
                .then(|| (member.clone(), signed.clone()));
            announcer.spawn(Stage::Workers, "announce-manifest", async move {
                if let Some((member, signed)) = to_tracker {
                    member.announce_ingest(signed).await;
                }
                publisher.announce_manifest(id, signed).await.map(|_| ())
            });
        }));
        let store = ctx.store.clone();
        let (ingest, ingest_task) =
            ingest::manager::IngestManager::start(Arc::new(ctx), shutdown.token(Stage::Workers));
        shutdown.adopt(Stage::Workers, ingest_task);
        start_requests(
            &config,
            &net.membership,
            &trackers,
            &ingest,
            &store,
            shutdown,
        );
        announce_unbound(&net.membership, &store, node_id, shutdown);
        start_admin(&config, node_id, ingest.clone(), &store, &net, shutdown).await?;
        start_gateway(
            &config, node_id, listener, public_url, store, ingest, &net, &trackers, shutdown,
        )?;
        tracing::info!(%node_id, gateway = %gateway_addr, "node started");
        Ok(Self {
            node_id,
            gateway_addr,
            shutdown: shutdown.clone(),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the gateway actually listens on (useful with port 0).
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// Asks every subsystem to stop: servers stop accepting at once; [`Node::join`]
    /// drains the rest in order.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Stops every stage in drain order (servers, workers, actors, store) and waits until
    /// every task has returned.
    pub async fn join(self) {
        self.shutdown.drain().await;
    }
}

/// The origin this node's gateway is reached at: `gateway.public_url` (which must be an
/// origin: it goes into this node's catalog record, and other nodes refuse a record whose
/// gateway URL has a path, query or userinfo), else the bound address.
fn public_url(config: &NodeConfig, gateway_addr: SocketAddr) -> Result<String, NodeError> {
    match &config.gateway.public_url {
        Some(url) => reelnet_proto::catalog::gateway_origin(url)
            .map(str::to_owned)
            .map_err(|reason| NodeError::PublicUrl {
                url: url.clone(),
                reason,
            }),
        None => {
            let mut addr = gateway_addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Ok(config::default_public_url(
                config.gateway.tls.as_ref(),
                addr,
            ))
        }
    }
}

/// The store has no writer task: sled writes are made durable by whoever acknowledges
/// them. Its last flush happens in the last stage, after every writer has stopped.
fn start_store_flush(shutdown: &Shutdown, store: store::Store) {
    let token = shutdown.token(Stage::Store);
    shutdown.spawn(Stage::Store, "store-flush", async move {
        token.cancelled().await;
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    });
}

/// The network: catalog index, libp2p swarm, the QUIC segment service and fetcher, the
/// publisher of this node's record, and placement.
async fn start_network(
    config: &NodeConfig,
    ctx: &ingest::job::IngestContext,
    node_id: NodeId,
    public_url: &str,
    trackers: &trackers::Trackers,
    shutdown: &Shutdown,
) -> Result<Network, NodeError> {
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
    let relays = config
        .p2p
        .relays
        .iter()
        .map(|a| parse("p2p.relays", a))
        .collect::<Result<Vec<_>, _>>()?;
    let external = config
        .p2p
        .external_addrs
        .iter()
        .map(|a| parse("p2p.external_addrs", a))
        .collect::<Result<Vec<_>, _>>()?;
    let actors = shutdown.token(Stage::Actors);
    // Membership first: every part below judges peers by it.
    let membership = start_membership(config, ctx, public_url, trackers, shutdown).await;
    let (catalog, catalog_task) = catalog::Catalog::start_with(
        config.catalog.catalog_config(),
        Some(membership.clone()),
        actors.clone(),
    );
    shutdown.adopt(Stage::Actors, catalog_task);
    // The QUIC segment service other nodes fetch from: a server, so it stops accepting
    // with the HTTP servers and finishes the streams in flight.
    let (transfer, quic_addr) = transfer::TransferServer::bind_with(
        config.quic.listen,
        &ctx.key,
        ctx.store.clone(),
        transfer::Limits::default(),
        Some(&membership),
        config.gateway.premium_renditions,
    )
    .map_err(|e| NodeError::Quic(e.to_string()))?;
    // The same service over libp2p, for peers that cannot reach the QUIC socket.
    let segments = transfer.service();
    let uploads = transfer.uploaded();
    let http = shutdown.token(Stage::Http);
    shutdown.spawn(Stage::Http, "transfer-server", async move {
        http.cancelled().await;
        transfer.shutdown_and_join().await;
        Ok::<(), std::convert::Infallible>(())
    });
    let mut advertised = config.quic_advertised();
    if advertised.port() == 0 {
        advertised.set_port(quic_addr.port());
    }
    tracing::info!(%quic_addr, %advertised, "QUIC segment service listening");
    // This node's record and manifests go into its own catalog before the swarm starts, so
    // the first catalog sync a peer makes here already carries them (a record gossiped
    // before the peer's subscription is known would wait for the next republish).
    let publisher_config = swarm::publisher::PublisherConfig {
        interval: std::time::Duration::from_secs(config.p2p.republish_secs),
        ttl: std::time::Duration::from_secs(config.p2p.record_ttl_secs),
        replica: config.storage.replica,
        membership: Some(membership.clone()),
        ..swarm::publisher::PublisherConfig::new(advertised, public_url.to_owned())
    };
    swarm::publisher::prime(&publisher_config, &ctx.store, &ctx.key, &catalog).await;
    let (client, p2p_addrs, swarm_task) = swarm::start(
        swarm::SwarmConfig {
            listen,
            bootstrap,
            mdns: config.p2p.mdns,
            membership: Some(membership.clone()),
            max_connections: config.p2p.max_connections,
            max_connections_per_peer: config.p2p.max_connections_per_peer,
            max_pending_incoming: config.p2p.max_pending_incoming,
            max_pending_outgoing: config.p2p.max_pending_outgoing,
            sync_budget: config.p2p.sync_budget(),
            nat: swarm::nat::NatConfig {
                autonat: config.p2p.autonat,
                upnp: config.p2p.upnp,
                relay_server: config.p2p.relay_server,
                relay_max_reservations: config.p2p.relay_max_reservations,
                relay_max_circuits: config.p2p.relay_max_circuits,
                relay_circuit_bytes: config.p2p.relay_circuit_bytes,
                relay_circuit_secs: config.p2p.relay_circuit_secs,
                relays,
                external,
                unknown_timeout: std::time::Duration::from_secs(config.p2p.autonat_unknown_secs),
                hole_punch: config.p2p.hole_punch,
            },
            segments: Some(segments),
            direct_wait: std::time::Duration::from_millis(config.p2p.hole_punch_wait_ms),
            dial_timeout: std::time::Duration::from_secs(config.p2p.dial_timeout_secs),
            ..swarm::SwarmConfig::default()
        },
        &ctx.key,
        catalog.clone(),
        actors.clone(),
    )
    .await?;
    shutdown.adopt(Stage::Actors, swarm_task);
    for addr in &p2p_addrs {
        tracing::info!(addr = %swarm::with_peer(addr, client.peer_id()), "p2p listening");
    }
    // One QUIC client endpoint for every fetch from peers (gateway misses, placement); it
    // closes after the workers that use it have stopped.
    let fetcher = Arc::new(transfer::Fetcher::with_membership(
        Some(&ctx.key),
        transfer::FetcherConfig {
            quic_fallback_after: std::time::Duration::from_millis(
                config.transfer.quic_fallback_after_ms,
            ),
            ..transfer::FetcherConfig::default()
        },
        Some(&membership),
    )?);
    // Peers whose QUIC address cannot be reached are asked over libp2p.
    fetcher.set_fallback(client.clone());
    let (following, mut changes) = (fetcher.clone(), membership.subscribe());
    let member_token = actors.clone();
    shutdown.spawn(Stage::Actors, "fetcher-membership", async move {
        loop {
            tokio::select! {
                _ = member_token.cancelled() => break,
                changed = changes.changed() => match changed {
                    Ok(()) => following.apply_membership(),
                    Err(_) => break,
                },
            }
        }
        Ok::<(), std::convert::Infallible>(())
    });
    let closing = fetcher.clone();
    shutdown.spawn(Stage::Actors, "fetcher-close", async move {
        actors.cancelled().await;
        closing.close().await;
        Ok::<(), std::convert::Infallible>(())
    });
    let workers = shutdown.token(Stage::Workers);
    let (publisher, publisher_task) = swarm::publisher::Publisher::start(
        publisher_config,
        ctx.store.clone(),
        ctx.key.clone(),
        catalog.clone(),
        client.clone(),
        workers.clone(),
    );
    shutdown.adopt(Stage::Workers, publisher_task);
    // Placement: pull this node's share of the library, release what moved away.
    let (placement, placement_task) = placement::Placement::start(
        placement::PlacementConfig {
            replication: usize::try_from(config.storage.replication).unwrap_or(usize::MAX),
            replica: config.storage.replica,
            membership: Some(membership.clone()),
            ..placement::PlacementConfig::default()
        },
        node_id,
        ctx.store.clone(),
        catalog.clone(),
        fetcher.clone(),
        publisher.clone(),
        workers,
    );
    shutdown.adopt(Stage::Workers, placement_task);
    Ok(Network {
        membership,
        catalog,
        client,
        publisher,
        placement,
        fetcher,
        uploads,
    })
}

/// Movie requests from the tracker, ingested through the same manager.
/// Starts the membership task: loads the certificate, enrolls with the invite on first
/// start, and keeps the network's trust fresh (see `membership`).
async fn start_membership(
    config: &NodeConfig,
    ctx: &ingest::job::IngestContext,
    public_url: &str,
    trackers: &trackers::Trackers,
    shutdown: &Shutdown,
) -> membership::Membership {
    use reelnet_proto::membership::{RoleName, Roles};
    let mut mc = membership::MembershipConfig::with_trackers(trackers.clone(), &config.data_dir);
    if !config.tracker.invite.is_empty() {
        mc.invite = Some(config.tracker.invite.clone());
    }
    mc.refresh = std::time::Duration::from_secs(config.tracker.membership_refresh_secs);
    // The gateway's origin (scheme://host:port), recorded in the certificate.
    let origin = public_url
        .strip_suffix(membership::url_path(public_url))
        .unwrap_or(public_url)
        .to_owned();
    if reelnet_proto::membership::check_origin(&origin).is_ok() {
        mc.origins = vec![origin];
    }
    // Local settings can only narrow what the certificate allows.
    let mut allowed = vec![RoleName::Ingest, RoleName::Edge];
    if config.storage.replica {
        allowed.push(RoleName::Replica);
    }
    mc.allowed = Roles::of(&allowed);
    let (membership, task) =
        membership::Membership::start(mc, ctx.key.clone(), shutdown.token(Stage::Actors)).await;
    shutdown.adopt(Stage::Actors, task);
    membership
}

/// Announces this node's complete ingests of movies that are still unbound (one finished
/// while the tracker was unreachable and the node restarted since, say), so the tracker
/// can bind them; announcements of bound ones are not needed.
fn announce_unbound(
    membership: &membership::Membership,
    store: &store::Store,
    node_id: NodeId,
    shutdown: &Shutdown,
) {
    let (membership, store) = (membership.clone(), store.clone());
    shutdown.spawn(Stage::Workers, "announce-unbound", async move {
        let stored = tokio::task::spawn_blocking(move || store.all_manifests())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let bindings = membership.bindings();
        for s in stored {
            let m = &s.manifest;
            if m.complete && m.origin == node_id && bindings.get(&m.movie).is_none() {
                membership.announce_ingest(s.signed).await;
            }
        }
        Ok::<(), String>(())
    });
}

fn start_requests(
    config: &NodeConfig,
    membership: &membership::Membership,
    trackers: &trackers::Trackers,
    ingest: &ingest::manager::IngestManager,
    store: &store::Store,
    shutdown: &Shutdown,
) {
    if !config.requests.enabled {
        return;
    }
    let claimer = requests::Claimer {
        config: config.requests.clone(),
        tracker: requests::TrackerRequests::new(trackers.clone(), membership.clone()),
        ingest: ingest.clone(),
        store: store.clone(),
        work_dir: config.data_dir.join("requests"),
    };
    shutdown.spawn(
        Stage::Workers,
        "request-claimer",
        claimer.run(shutdown.token(Stage::Workers)),
    );
}

/// The local admin API (ingest jobs, status) on loopback.
async fn start_admin(
    config: &NodeConfig,
    node_id: NodeId,
    ingest: ingest::manager::IngestManager,
    store: &store::Store,
    net: &Network,
    shutdown: &Shutdown,
) -> Result<(), NodeError> {
    let status = status_source(node_id, store, net);
    let (admin_addr, admin_task) = admin::serve(
        &config.data_dir,
        ingest,
        status,
        shutdown.token(Stage::Http),
    )
    .await
    .map_err(NodeError::Admin)?;
    shutdown.adopt(Stage::Http, admin_task);
    tracing::info!(%admin_addr, "admin API on loopback");
    Ok(())
}

fn status_source(node_id: NodeId, store: &store::Store, net: &Network) -> admin::StatusSource {
    admin::StatusSource {
        node_id,
        store: store.clone(),
        catalog: net.catalog.clone(),
        network: net.client.clone(),
        placement: net.placement.clone(),
        membership: net.membership.clone(),
    }
}

/// The web gateway and the actors behind it: hot-segment cache, shared peer fetches, the
/// JWKS verifier, playback tokens and TMDb metadata.
#[allow(clippy::too_many_arguments)]
fn start_gateway(
    config: &NodeConfig,
    node_id: NodeId,
    listener: tokio::net::TcpListener,
    public_url: String,
    store: store::Store,
    ingest: ingest::manager::IngestManager,
    net: &Network,
    trackers: &trackers::Trackers,
    shutdown: &Shutdown,
) -> Result<(), NodeError> {
    let actors = shutdown.token(Stage::Actors);
    let mut gateway_metrics = metrics::Metrics::new(unix_now());
    gateway_metrics.register_trackers(trackers);
    // HTTPS: the certificate's owner task starts first, so bad files stop the start.
    let tls = match &config.gateway.tls {
        Some(tls_config) => {
            let tls_metrics = reelnet_runtime::tls::TlsMetrics::default();
            gateway_metrics.register_tls(&tls_metrics);
            let (tls, task) = reelnet_runtime::tls::start(
                tls_config,
                "gateway.tls",
                &config.data_dir,
                tls_metrics,
                actors.clone(),
            )?;
            shutdown.adopt(Stage::Actors, task);
            Some((tls, tls_config.redirect_listen))
        }
        None => None,
    };
    let metrics = Arc::new(gateway_metrics);
    // The console's last hour of metrics: one task samples the counters.
    let (history, history_task) = history::History::start(
        metrics.clone(),
        history::HistoryConfig::default(),
        actors.clone(),
    );
    shutdown.adopt(Stage::Actors, history_task);
    let console = gateway::console::ConsoleParts {
        ingest,
        status: status_source(node_id, &store, net),
        history,
        tls: tls.as_ref().map(|(t, _)| t.clone()),
        download_dir: config.data_dir.join("downloads"),
        upload_dir: config.data_dir.join("uploads"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default(),
    };
    let hot_bytes =
        usize::try_from(config.gateway.hot_cache_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let (hot, hot_task) = gateway::hot::HotSegments::start(hot_bytes, actors.clone());
    shutdown.adopt(Stage::Actors, hot_task);
    let (fetches, fetches_task) = gateway::hls::PeerFetches::start(
        net.fetcher.clone(),
        store.clone(),
        hot.clone(),
        metrics.clone(),
        actors.clone(),
    );
    shutdown.adopt(Stage::Actors, fetches_task);
    // Access tokens are checked offline with the tracker's JWKS (one fetcher task owns
    // the key cache); playback tokens are signed with this node's playback.key.
    let (jwt, jwks_task) = gateway::auth::JwtVerifier::start(
        gateway::auth::VerifierConfig::with_trackers(
            trackers.clone(),
            &config.tracker.issuer,
            &node_id.to_string(),
        ),
        actors.clone(),
    );
    shutdown.adopt(Stage::Actors, jwks_task);
    // Sign-in through the tracker: one task owns the pending logins and refreshes.
    let (signin, signin_task) = gateway::signin::SignIn::start(
        gateway::signin::SignInConfig::with_trackers(
            &node_id.to_string(),
            trackers.clone(),
            &config.tracker.issuer,
            &public_url,
        ),
        Some(net.membership.clone()),
        actors.clone(),
    );
    shutdown.adopt(Stage::Actors, signin_task);
    let tokens = gateway::token::PlaybackTokens::load_or_create(
        &config.data_dir,
        config.gateway.playback_token_ttl_secs,
    )?;
    // TMDb metadata (off without an API key): one task owns its cache.
    let (metadata, metadata_task) = metadata::Metadata::start(
        metadata::TmdbConfig::from_config(&config.metadata, &config.data_dir),
        store.clone(),
        actors,
    );
    shutdown.adopt(Stage::Actors, metadata_task);
    let routes = gateway::routes(gateway::GatewayState {
        node_id,
        metrics,
        web_dir: config.gateway.web_dir.clone(),
        data_dir: config.data_dir.clone(),
        public_url: public_url.clone(),
        trackers: trackers.clone(),
        store,
        catalog: net.catalog.clone(),
        listing: gateway::catalog::ListingCache::default(),
        fetcher: net.fetcher.clone(),
        uploads: net.uploads.clone(),
        fetches,
        jwt: Arc::new(jwt),
        tokens: Arc::new(tokens),
        signin,
        proxy: gateway::proxy::ProxyClient::new(
            shutdown.token(Stage::Http),
            config.gateway.ws_limits(),
        ),
        metadata,
        premium_renditions: config.gateway.premium_renditions,
        hot,
        membership: Some(net.membership.clone()),
        placement: Some(net.placement.clone()),
        network: Some(net.client.clone()),
        console: Some(Arc::new(console)),
    });
    match tls {
        None => {
            reelnet_runtime::serve::spawn_http(shutdown, "gateway", listener, routes);
        }
        Some((tls, redirect)) => {
            if let Some(addr) = redirect {
                let plain = std::net::TcpListener::bind(addr)
                    .and_then(|l| {
                        l.set_nonblocking(true)?;
                        tokio::net::TcpListener::from_std(l)
                    })
                    .map_err(|source| NodeError::RedirectBind { addr, source })?;
                reelnet_runtime::serve::spawn_redirect(shutdown, plain, public_url, tls.clone());
            }
            reelnet_runtime::serve::spawn_https(shutdown, "gateway", listener, routes, tls);
        }
    }
    Ok(())
}

/// Makes the data directory 0700 (whatever the umask) and refuses to start, the way ssh
/// refuses a key, when a secret file in it is open to group or others: the node key, the
/// playback-token key, the admin token (`admin.json`) and the membership certificate.
pub fn check_data_dir(data_dir: &std::path::Path) -> Result<(), NodeError> {
    reelnet_runtime::fs::create_private_dir(data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    for name in [
        identity::KEY_FILE,
        gateway::token::KEY_FILE,
        admin::ADMIN_FILE,
        membership::CERT_FILE,
    ] {
        reelnet_runtime::fs::check_private(&data_dir.join(name))?;
    }
    Ok(())
}

/// What ingest jobs need, from the node's config: its store, key and ladder.
pub fn ingest_context(config: &NodeConfig) -> Result<ingest::job::IngestContext, NodeError> {
    check_data_dir(&config.data_dir)?;
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
        allow_private_sources: config.ingest.allow_private_sources,
        max_source_bytes: config.ingest.max_source_bytes,
        thumbnails: config.ingest.thumbnails,
        on_publish: None,
    })
}

/// Seconds since the Unix epoch.
pub use reelnet_runtime::clock::unix_secs as unix_now;
