//! The node's HTTP gateway (warp). One file per resource:
//! - `hls`: `/hls/{movie}/...` playlists and segments, from local disk or from peers;
//! - `site`: the web app at `/` (embedded at build time, or `web_dir`), with single-page-app
//!   fallback;
//! - `console`: the operator console's node views (`/api/v1/console/*`);
//! - `/healthz` and `/metrics` here.
//!
//! Routes are composed in [`routes`]: node-native routes first, then sign-in through the
//! tracker (`/auth/*`, [`signin`]), then the tracker proxy for the rest of `/api/v1`, then
//! the web app. Every answer carries the security headers of
//! [`reelnet_runtime::headers::web_app`] (Content-Security-Policy and friends).

pub mod auth;
pub mod catalog;
pub mod console;
pub mod hls;
pub mod hot;
pub mod images;
pub mod play;
pub mod proxy;
pub mod search;
pub mod signin;
pub mod site;
pub mod tmdb;
pub mod token;

use std::convert::Infallible;
use std::sync::Arc;

use reelnet_proto::NodeId;
use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::transfer::Fetcher;

/// What the gateway's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct GatewayState {
    pub node_id: NodeId,
    /// Network membership (shown in `/healthz`; `None` in tests of the gateway alone).
    pub membership: Option<crate::membership::Membership>,
    /// Placement (its challenge counters are in `/metrics`; `None` in tests of the gateway
    /// alone).
    pub placement: Option<crate::placement::Placement>,
    /// The swarm (its counters go into `/metrics`; `None` in tests of the gateway alone).
    pub network: Option<crate::swarm::NetworkHandle>,
    pub metrics: Arc<Metrics>,
    /// Directory of a built web app to serve instead of the one embedded in the binary.
    pub web_dir: Option<std::path::PathBuf>,
    /// The node's data directory (secrets such as the playback-token key live there).
    pub data_dir: std::path::PathBuf,
    /// The URL people reach this gateway at, without a trailing slash.
    pub public_url: String,
    /// The tracker replicas and which one is in use (the proxy's upstream).
    pub trackers: crate::trackers::Trackers,
    pub store: Store,
    pub catalog: Catalog,
    /// Fetches verified segments from peers over QUIC.
    pub fetcher: Arc<Fetcher>,
    /// Segment bytes this node's QUIC server has delivered to peers (`/metrics`).
    pub uploads: crate::transfer::UploadCounter,
    /// Shared peer fetches of segments this node lacks (one per segment at a time).
    pub fetches: hls::PeerFetches,
    /// Verifies the tracker's access tokens offline (JWKS cached).
    pub jwt: Arc<auth::JwtVerifier>,
    /// Issues and checks this node's playback tokens (`?token=` on `/hls`).
    pub tokens: Arc<token::PlaybackTokens>,
    /// HTTP client of the tracker proxy.
    pub proxy: proxy::ProxyClient,
    /// Sign-in through the tracker (`/auth/*`): pending logins and refreshes.
    pub signin: signin::SignIn,
    /// TMDb metadata (disabled without an API key).
    pub metadata: crate::metadata::Metadata,
    /// How many top video renditions only premium viewers get (`gateway.premium_renditions`).
    pub premium_renditions: usize,
    /// Verified bytes of the segments served most recently (`gateway.hot_cache_mib`).
    pub hot: hot::HotSegments,
    /// What `/api/v1/catalog` searches, built once per catalog change.
    pub listing: catalog::ListingCache,
    /// The console's node views (`/api/v1/console/*`; `None` in tests of the gateway alone,
    /// where they answer 503 to operators). Behind an `Arc`: every route holds a clone of
    /// this state, and a bigger state makes every request's future bigger.
    pub console: Option<Arc<console::ConsoleParts>>,
}

impl GatewayState {
    /// A gateway state outside [`crate::Node::bind`], for tests and tools that bring their
    /// own catalog, store and fetcher: no web app, and a tracker at an address nothing
    /// listens on (`127.0.0.1:9`), so `/api/v1` proxying answers 503.
    #[allow(clippy::too_many_arguments)]
    pub fn for_tests(
        node_id: NodeId,
        metrics: Arc<Metrics>,
        data_dir: std::path::PathBuf,
        public_url: String,
        store: Store,
        catalog: Catalog,
        fetcher: Arc<Fetcher>,
        fetches: hls::PeerFetches,
        hot: hot::HotSegments,
        tokens: Arc<token::PlaybackTokens>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        let trackers = crate::trackers::Trackers::single("http://127.0.0.1:9");
        let (jwt, _task) = auth::JwtVerifier::start(
            auth::VerifierConfig::with_trackers(
                trackers.clone(),
                "reelnet-tracker",
                &node_id.to_string(),
            ),
            cancel.clone(),
        );
        let (signin, _task) = signin::SignIn::start(
            signin::SignInConfig::with_trackers(
                &node_id.to_string(),
                trackers.clone(),
                "reelnet-tracker",
                &public_url,
            ),
            None,
            cancel.clone(),
        );
        Self {
            node_id,
            metrics,
            web_dir: None,
            signin,
            data_dir,
            public_url,
            trackers,
            store,
            catalog,
            fetcher,
            uploads: crate::transfer::UploadCounter::default(),
            fetches,
            jwt: Arc::new(jwt),
            tokens,
            proxy: proxy::ProxyClient::new(cancel.clone(), proxy::WsLimits::DEFAULT),
            metadata: crate::metadata::Metadata::disabled(),
            premium_renditions: 1,
            membership: None,
            placement: None,
            network: None,
            listing: catalog::ListingCache::default(),
            console: None,
            hot,
        }
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    node_id: String,
    version: &'static str,
    /// Network membership: `member: false` and `problem` say why and how to join.
    #[serde(skip_serializing_if = "Option::is_none")]
    membership: Option<crate::membership::MemberSummary>,
    /// Which web app `/` serves (embedded build, a directory, or the not-built page).
    web: site::SiteInfo,
}

/// Every gateway route.
pub fn routes(
    state: GatewayState,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let site = site::Site::new(state.web_dir.clone());
    site.log();
    let health = {
        let state = state.clone();
        let web = site.info();
        warp::path!("healthz").and(warp::get()).map(move || {
            state.metrics.request("healthz", 200);
            warp::reply::json(&Health {
                status: "ok",
                node_id: state.node_id.to_string(),
                version: env!("CARGO_PKG_VERSION"),
                membership: state.membership.as_ref().map(|m| m.state().summary()),
                web: web.clone(),
            })
        })
    };
    let metrics = {
        let state = state.clone();
        warp::path!("metrics").and(warp::get()).then(move || {
            let state = state.clone();
            // Gathered and rendered on a task of its own: inside the connection's future,
            // under the TLS and HTTP layers, it overflowed a debug build's 2 MiB worker
            // stack on an HTTPS gateway.
            let gather = async move {
                let peers = state
                    .catalog
                    .live_nodes()
                    .await
                    .map(|n| n.iter().filter(|n| n.node != state.node_id).count() as u64)
                    .unwrap_or(0);
                state.metrics.request("metrics", 200);
                let member = state.membership.as_ref().map(|m| m.state().summary());
                let stats = state.catalog.stats().await.unwrap_or_default();
                let bindings = state.membership.as_ref().map(|m| m.binding_stats());
                let placement = state.placement.as_ref().map(|p| p.view());
                let swarm = match &state.network {
                    Some(net) => net.stats().await.unwrap_or_default(),
                    None => crate::swarm::NetworkStats::default(),
                };
                let gauges = crate::metrics::Gauges {
                    peers,
                    member: member.as_ref().is_some_and(|m| m.member),
                    cert_not_after: member.as_ref().and_then(|m| m.not_after).unwrap_or(0),
                    revocation_serial: member.as_ref().map_or(0, |m| m.revocation_serial),
                    not_member: stats.not_member,
                    other_lineage: stats.other_lineage,
                    evicted: stats.evicted,
                    catalog_bytes: stats.bytes as u64,
                    bound_movies: stats.bound_movies as u64,
                    bindings_refused: bindings.map_or(0, |b| b.stale + b.invalid),
                    challenges_passed: placement.as_ref().map_or(0, |v| v.challenges_passed),
                    challenges_failed: placement.as_ref().map_or(0, |v| v.challenges_failed),
                    excluded_holders: placement.as_ref().map_or(0, |v| v.excluded.len() as u64),
                    swarm,
                    fetch_paths: state.fetcher.path_bytes(),
                    uploaded_quic: state.uploads.get(),
                    corruption: state.store.corruption(),
                    full_writes: state.store.full_writes(),
                };
                state.metrics.render(gauges)
            };
            async move {
                match tokio::spawn(gather).await {
                    Ok(text) => warp::reply::with_header(
                        text,
                        "content-type",
                        reelnet_runtime::metrics::CONTENT_TYPE,
                    )
                    .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        })
    };
    let hls = hls::routes(state.clone());
    health
        .or(metrics)
        .or(hls)
        .or(play::route(state.clone()))
        .or(catalog::routes(state.clone()))
        .or(tmdb::route(state.clone()))
        .or(images::route(state.clone()))
        .or(console::routes(state.clone()))
        .or(signin::routes(state.clone()))
        .or(proxy::routes(state.clone()))
        .or(site::route(site))
        .recover(handle_rejection)
        // Content-Security-Policy, nosniff, no referrer, no framing: on every answer, the
        // web app's pages and the API, HLS and images on the same origin alike.
        .with(warp::reply::with::headers(
            reelnet_runtime::headers::web_app(),
        ))
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

/// A JSON error response `{ "error": code, "message": text }`.
pub(crate) fn json_error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: code,
            message: message.into(),
        }),
        status,
    )
    .into_response()
}

async fn handle_rejection(rej: Rejection) -> Result<impl Reply, Infallible> {
    let (status, code, message) = if rej.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route".to_owned(),
        )
    } else if rej.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed".to_owned(),
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{rej:?}"),
        )
    };
    Ok(warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: code,
            message,
        }),
        status,
    ))
}
