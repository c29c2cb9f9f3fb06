//! The reelnet tracker: accounts, tokens, watch-later lists, progress and history (and,
//! as they land, requests, subscriptions and rooms), served over HTTP and kept in sled.
//!
//! `Tracker::bind` opens the store, loads the signing keys, starts the writer, mailer,
//! key watcher, rooms and HTTP server under one `reelnet_runtime::Shutdown`; `join`
//! drains them in the fixed order: the server finishes in-flight requests, then workers,
//! then rooms, then the writer flushes and exits.

// warp's nested filter types exceed the default limit in release builds.
#![recursion_limit = "256"]

pub mod accounts;
pub mod api;
pub mod billing;
pub mod billing_signature;
pub mod clock;
pub mod config;
pub mod device_client;
pub mod error;
pub mod hashing;
pub mod http;
pub mod keys;
pub mod keysource;
pub mod library;
pub mod limiter;
pub mod mail;
pub mod metrics;
pub mod network;
pub mod oauth;
pub mod operator;
pub mod pages;
pub mod policy;
pub mod preferences;
pub mod requests;
pub mod rooms;
pub mod routes;
pub mod store;
pub mod sweeper;
pub mod tmdb;
pub mod token_cache;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use reelnet_runtime::{Shutdown, Stage};
use tokio::sync::watch;

use config::TrackerConfig;

/// Why the tracker could not start.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("cannot open the database in {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        source: store::StoreError,
    },
    #[error("cannot open the PostgreSQL database ([storage] url): {0}")]
    Database(store::StoreError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("cannot create the data directory {path} (mode 0700): {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] reelnet_runtime::fs::PrivateFileError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error("cannot listen on {addr} (listen / --listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (http.tls.redirect_listen): {source}")]
    RedirectBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http.tls: {0}")]
    Tls(#[from] reelnet_runtime::tls::TlsError),
    #[error("cannot write the operator file {path}: {source}")]
    Operator {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the API: {0}")]
    Api(#[from] error::ApiError),
}

/// Makes the data directory 0700 (whatever the umask) and refuses to start, the way ssh
/// refuses a key, when a secret file in it is open to group or others: the token and
/// network signing keys (`keys/`, `network-keys/`; also checked whenever they are loaded),
/// the operator token (`operator.json`) and the billing webhook secret.
pub fn check_data_dir(data_dir: &std::path::Path) -> Result<(), TrackerError> {
    use reelnet_runtime::fs;
    fs::create_private_dir(data_dir).map_err(|source| TrackerError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    fs::check_private(&data_dir.join(operator::OPERATOR_FILE))?;
    fs::check_private(&data_dir.join(billing_signature::SECRET_FILE))?;
    for dir in [
        keys::keys_dir(data_dir),
        network::keys::network_dir(data_dir),
    ] {
        if dir.is_dir() {
            fs::create_private_dir(&dir).map_err(|source| TrackerError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        keys::check_key_files(&dir)?;
    }
    Ok(())
}

/// A running tracker: where it listens and the shutdown tree its tasks are tracked in.
pub struct Tracker {
    addr: SocketAddr,
    shutdown: Shutdown,
    api: api::Api,
}

impl Tracker {
    /// Starts every part of the tracker, each under its stage of one [`Shutdown`] tree:
    /// the HTTP server in [`Stage::Http`]; the mailer, key watcher and subscription worker
    /// in [`Stage::Workers`]; rooms in [`Stage::Actors`]; the store's writer in
    /// [`Stage::Store`], so its last group commit happens after every other part stopped.
    pub async fn bind(config: TrackerConfig) -> Result<Self, TrackerError> {
        let shutdown = Shutdown::new();
        match Self::start(config, &shutdown).await {
            Ok(tracker) => Ok(tracker),
            Err(err) => {
                shutdown.drain().await;
                Err(err)
            }
        }
    }

    async fn start(mut config: TrackerConfig, shutdown: &Shutdown) -> Result<Self, TrackerError> {
        check_data_dir(&config.data_dir)?;
        let db_path = config.data_dir.join("db");
        let store_err = |source| match config.storage.engine {
            config::StorageEngine::Sled => TrackerError::Store {
                path: db_path.clone(),
                source,
            },
            config::StorageEngine::Postgres => TrackerError::Database(source),
        };
        let engine = config.storage.engine(&config.data_dir).map_err(store_err)?;
        let (store, writer) = store::Store::open_engine(&engine).map_err(store_err)?;
        // The writer ends when the last store handle is dropped: after the stages above it.
        shutdown.spawn(Stage::Store, "store-writer", writer.run());
        let grace = config.auth.access_ttl_secs + 60;
        // Files (sled) or the database shared by every replica (PostgreSQL).
        let key_source = keysource::KeySource::for_config(&config, &store);
        let ring = key_source.token(grace, clock::now_secs()).await?;
        tracing::info!(kid = ring.current_kid(), "signing key loaded");
        let (keys_tx, keys_rx) = watch::channel(Arc::new(ring));
        let network_ring = key_source
            .network(&config.network.id, clock::now_secs())
            .await?;
        tracing::info!(
            network = network_ring.network_id(),
            kid = network_ring.current_kid(),
            "network key loaded"
        );
        let (network_tx, network_rx) = watch::channel(Arc::new(network_ring));
        let (mailer, sender) = mail::mailer(&config.smtp)?;

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| TrackerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| TrackerError::Bind {
            addr: config.listen,
            source,
        })?;

        if config.public_url.is_empty() {
            // Unset: this tracker's own address as bound (port 0 becomes the real port).
            config.public_url = config.default_origin(addr);
        }
        let actors = shutdown.token(Stage::Actors);
        // On PostgreSQL, rooms are shared with the other replicas through the database.
        let bus = match &engine {
            store::Engine::Postgres(opts) => {
                let cfg = store::kv::postgres::pg_config(opts).map_err(store_err)?;
                Some(rooms::bus::BusOptions {
                    hosts: store::kv::postgres::hosts_of(&cfg),
                    connector: store::kv::postgres::Connector::new(&cfg, opts)
                        .map_err(store_err)?,
                    config: cfg,
                })
            }
            store::Engine::Sled { .. } => None,
        };
        let (rooms, room_tasks) = rooms::Rooms::start(
            config.rooms.clone(),
            config.web_url.clone(),
            store.clone(),
            bus,
            actors,
        );
        shutdown.spawn(Stage::Actors, "rooms", room_tasks.actor);
        shutdown.spawn(Stage::Actors, "rooms-persister", room_tasks.persister);
        if let Some(bus) = room_tasks.bus {
            shutdown.spawn(Stage::Actors, "rooms-bus", bus);
        }
        let workers = shutdown.token(Stage::Workers);
        shutdown.spawn(Stage::Workers, "mailer", sender.run(workers.clone()));
        shutdown.spawn(
            Stage::Workers,
            "key-watcher",
            key_source.clone().watch(
                keysource::Which::Token,
                move |dir| keys::Keyring::load(dir, grace),
                move |stored| keys::Keyring::from_stored(stored, grace),
                keys_tx,
                workers.clone(),
            ),
        );
        let network_id = config.network.id.clone();
        shutdown.spawn(
            Stage::Workers,
            "network-key-watcher",
            key_source.watch(
                keysource::Which::Network,
                {
                    let id = network_id.clone();
                    move |dir| network::keys::NetworkKeyring::load(dir, &id)
                },
                move |stored| network::keys::NetworkKeyring::from_stored(stored, &network_id),
                network_tx,
                workers.clone(),
            ),
        );
        // The operator's way in while the database is locked: `reelnet-tracker node …`.
        let operator_token =
            operator::write(&config.data_dir, addr).map_err(|source| TrackerError::Operator {
                path: config.data_dir.join(operator::OPERATOR_FILE),
                source,
            })?;

        let (config_tls, data_dir, public_url) = (
            config.http.tls.clone(),
            config.data_dir.clone(),
            config.public_origin(),
        );
        let api = api::Api::new(
            config,
            store,
            keys_rx,
            mailer,
            network_rx,
            Some(operator_token),
        )?;
        shutdown.spawn(
            Stage::Workers,
            "token-sweeper",
            sweeper::run(api.clone(), workers.clone()),
        );
        if matches!(engine, store::Engine::Postgres(_)) {
            // Other replicas revoke too: their revocations close room sockets here.
            shutdown.spawn(Stage::Workers, "revocation-watcher", {
                let membership = api.membership().clone();
                let cancel = workers.clone();
                async move {
                    membership.watch_revocations(cancel).await;
                    Ok::<(), std::convert::Infallible>(())
                }
            });
        }
        shutdown.spawn(
            Stage::Workers,
            "subscription-worker",
            billing::run_worker(api.clone(), workers),
        );
        match config_tls {
            None => {
                let routes = http::routes(api.clone(), rooms, shutdown.token(Stage::Http), None);
                reelnet_runtime::serve::spawn_http(shutdown, "http", listener, routes);
            }
            Some(tls_config) => {
                let tls_metrics = reelnet_runtime::tls::TlsMetrics::default();
                let (tls, task) = reelnet_runtime::tls::start(
                    &tls_config,
                    "http.tls",
                    &data_dir,
                    tls_metrics.clone(),
                    shutdown.token(Stage::Actors),
                )?;
                shutdown.adopt(Stage::Actors, task);
                if let Some(redirect) = tls_config.redirect_listen {
                    let plain =
                        tokio::net::TcpListener::bind(redirect)
                            .await
                            .map_err(|source| TrackerError::RedirectBind {
                                addr: redirect,
                                source,
                            })?;
                    reelnet_runtime::serve::spawn_redirect(
                        shutdown,
                        plain,
                        public_url,
                        tls.clone(),
                    );
                }
                let routes = http::routes(
                    api.clone(),
                    rooms,
                    shutdown.token(Stage::Http),
                    Some(tls_metrics),
                );
                reelnet_runtime::serve::spawn_https(shutdown, "http", listener, routes, tls);
            }
        }
        tracing::info!(%addr, "tracker listening");
        Ok(Self {
            addr,
            shutdown: shutdown.clone(),
            api,
        })
    }

    /// The API behind the routes (in-process callers: the tracker's pages, tests).
    pub fn api(&self) -> &api::Api {
        &self.api
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks every part to stop: the server stops accepting at once; [`Tracker::join`]
    /// drains the rest in order.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Waits for the server to finish its requests, then for the workers, then for rooms,
    /// then for the writer's last flush.
    pub async fn join(self) {
        // The store's writer ends when the last store handle is gone: this one (inside the
        // API kept for in-process callers) must go before the drain waits for it.
        let Tracker { shutdown, api, .. } = self;
        drop(api);
        shutdown.drain().await;
    }
}
