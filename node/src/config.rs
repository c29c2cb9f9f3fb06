//! The node's configuration: one TOML file (documented key by key in `configs/node.toml`),
//! overridden by command-line flags. Loading fails with a message that names the file, the
//! key and what is wrong, so an operator can fix it without reading code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use reelnet_runtime::config::ConfigError;

/// Everything a node needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Where the node keeps its key, segments and indexes.
    pub data_dir: PathBuf,
    pub gateway: GatewayConfig,
    pub p2p: P2pConfig,
    pub quic: QuicConfig,
    /// Fetching segments from peers.
    pub transfer: TransferConfig,
    pub tracker: TrackerLink,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,
    pub metadata: MetadataConfig,
    /// Claiming and ingesting movie requests from the tracker.
    pub requests: RequestsConfig,
    /// How much of the network's catalog the node keeps in memory.
    pub catalog: CatalogLimits,
}

/// `[catalog]` in the node config: bounds on what peers can make this node keep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogLimits {
    /// Most memory the whole catalog (manifests and records of every node) may take, MiB.
    pub budget_mib: u64,
    /// Most manifests one origin node may have in the catalog.
    pub max_manifests_per_origin: usize,
    /// Most memory one origin node's manifests and record may take, MiB.
    pub max_mib_per_origin: u64,
    /// How long the previous source of a re-pointed movie stays playable, seconds.
    pub retired_grace_secs: u64,
}

impl Default for CatalogLimits {
    fn default() -> Self {
        let d = crate::catalog::CatalogConfig::default();
        Self {
            budget_mib: (d.budget_bytes >> 20) as u64,
            max_manifests_per_origin: d.max_manifests_per_origin,
            max_mib_per_origin: (d.max_bytes_per_origin >> 20) as u64,
            retired_grace_secs: d.retired_grace.as_secs(),
        }
    }
}

impl CatalogLimits {
    /// The catalog's tunables with these limits.
    pub fn catalog_config(&self) -> crate::catalog::CatalogConfig {
        let mib = |m: u64| usize::try_from(m.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        crate::catalog::CatalogConfig {
            budget_bytes: mib(self.budget_mib),
            max_manifests_per_origin: self.max_manifests_per_origin,
            max_bytes_per_origin: mib(self.max_mib_per_origin),
            retired_grace: std::time::Duration::from_secs(self.retired_grace_secs),
            ..crate::catalog::CatalogConfig::default()
        }
    }
}

/// `[requests]` in the node config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestsConfig {
    /// Claim and ingest movie requests from the tracker.
    pub enabled: bool,
    /// Removed: claims are signed with the node key and its membership certificate. A
    /// file that still sets it is refused with a pointer to invites.
    pub node_secret: Option<String>,
    /// How often to ask for work, seconds.
    pub poll_secs: u64,
    /// Requests ingested at the same time.
    pub capacity: usize,
    /// Claim nothing while the store's quota has less than this left beyond pinned data.
    pub min_headroom_bytes: u64,
    /// Torrent peers to join directly for every request (a local swarm; testnets).
    pub torrent_peers: Vec<SocketAddr>,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_secret: None,
            poll_secs: 5,
            capacity: 1,
            min_headroom_bytes: 2 * 1024 * 1024 * 1024,
            torrent_peers: Vec::new(),
        }
    }
}

/// Where movie metadata comes from besides the manifests (see `metadata`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// TMDb v3 API key; empty (the default) turns TMDb lookups off.
    pub tmdb_api_key: String,
    /// Base URL of TMDb's v3 API.
    pub tmdb_api_url: String,
    /// Base URL of TMDb's images (sizes such as `w500` follow it).
    pub tmdb_image_url: String,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            tmdb_api_key: String::new(),
            tmdb_api_url: "https://api.themoviedb.org/3".to_owned(),
            tmdb_image_url: "https://image.tmdb.org/t/p".to_owned(),
        }
    }
}

/// How movies are cut into the HLS ladder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Target segment length, seconds.
    pub segment_secs: u32,
    /// `fmp4` (CMAF) or `mpegts`.
    pub container: ContainerName,
    /// x264 preset.
    pub preset: String,
    /// The ladder, top first; rungs above the source's height are skipped.
    pub rungs: Vec<RungConfig>,
    /// Whether torrents may use public DHT and trackers (off for loopback testnets).
    pub public_torrents: bool,
    /// Whether a movie request (a user's magnet or `.torrent`) may name trackers and peers
    /// on loopback, private, link-local, CGNAT, benchmark and other non-public addresses.
    /// Off by default; private testnets turn it on. Operator ingest is never restricted.
    pub allow_private_sources: bool,
    /// Largest torrent download (the selected file), bytes: a bigger one is refused before
    /// any of it is downloaded. Downloads also count against `storage.quota_bytes`.
    pub max_source_bytes: u64,
    /// Seek thumbnails (`[ingest.thumbnails]`): JPEG sprite sheets, one tile every
    /// `interval_s` seconds.
    pub thumbnails: crate::ingest::transcode::ThumbnailConfig,
}

/// `ingest.max_source_bytes` unless configured: 64 GiB.
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 64 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerName {
    Fmp4,
    Mpegts,
}

/// One rung of the ladder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    /// Rendition name, e.g. "720p".
    pub name: String,
    /// Output height in pixels (width follows the aspect ratio).
    pub height: u32,
    /// Video bitrate, bits per second.
    pub video_bitrate: u32,
    /// Audio bitrate, bits per second.
    pub audio_bitrate: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let rung = |name: &str, height, video_bitrate| RungConfig {
            name: name.to_owned(),
            height,
            video_bitrate,
            audio_bitrate: 128_000,
        };
        Self {
            segment_secs: 4,
            container: ContainerName::Fmp4,
            preset: "veryfast".to_owned(),
            rungs: vec![
                rung("1080p", 1080, 5_000_000),
                rung("720p", 720, 3_000_000),
                rung("480p", 480, 1_400_000),
                rung("360p", 360, 800_000),
            ],
            public_torrents: true,
            allow_private_sources: false,
            max_source_bytes: DEFAULT_MAX_SOURCE_BYTES,
            thumbnails: crate::ingest::transcode::ThumbnailConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HTTP address of the web gateway.
    pub listen: SocketAddr,
    /// The origin people reach this gateway at (defaults to `http://{listen}`): scheme,
    /// host and port only; a path, query or userinfo is refused at start.
    pub public_url: Option<String>,
    /// Directory holding the built web app (`web/dist`).
    pub web_dir: Option<PathBuf>,
    /// How long a playback token from `/api/v1/movies/{id}/play` stays valid, seconds
    /// (default 2 h; a premium viewer's premium renditions end sooner when the premium
    /// period does).
    pub playback_token_ttl_secs: u64,
    /// How many of a movie's top video renditions only premium viewers get (never all of
    /// them: a movie with one rendition plays for everyone). 0 turns tiers off.
    pub premium_renditions: usize,
    /// Memory for the segments served most recently, MiB (0: every request reads and
    /// verifies the segment on disk).
    pub hot_cache_mib: u64,
    /// Largest WebSocket message a browser may send through the tracker proxy (watch-party
    /// rooms), bytes: a larger one ends the connection (close code 1009).
    pub ws_max_message_bytes: usize,
    /// WebSocket messages a browser may send through the proxy at once (the bucket size of
    /// its per-connection token bucket).
    pub ws_message_burst: u32,
    /// How fast that allowance refills, messages per second. A connection that sends
    /// faster ends (close code 1008, policy violation).
    pub ws_messages_per_sec: u32,
    /// `[gateway.tls]`: serve HTTPS (certificate files or ACME), with an optional
    /// plain-HTTP redirect listener and HSTS. Off when absent.
    pub tls: Option<reelnet_runtime::tls::TlsConfig>,
}

/// `gateway.hot_cache_mib` unless configured.
pub const DEFAULT_HOT_CACHE_MIB: u64 = 256;

impl GatewayConfig {
    /// The limits of the tracker proxy's WebSockets these keys describe.
    pub fn ws_limits(&self) -> crate::gateway::proxy::WsLimits {
        crate::gateway::proxy::WsLimits {
            max_message_bytes: self.ws_max_message_bytes,
            burst: self.ws_message_burst,
            per_sec: self.ws_messages_per_sec,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// libp2p listen multiaddr.
    pub listen: String,
    /// Multiaddrs of peers to join through, with or without `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Zero-config discovery on the local network.
    pub mdns: bool,
    /// Lifetime of this node's signed catalog record, seconds. A node that vanished counts
    /// as live (and keeps its placement share) until its record expires.
    pub record_ttl_secs: u64,
    /// How often the node re-signs and gossips its record, seconds (less than the TTL).
    pub republish_secs: u64,
    /// Established libp2p connections at most, in and out together.
    pub max_connections: u32,
    /// Established libp2p connections with one peer at most.
    pub max_connections_per_peer: u32,
    /// Incoming libp2p connections in their handshake at most.
    pub max_pending_incoming: u32,
    /// Outgoing libp2p dials in progress at most.
    pub max_pending_outgoing: u32,
    /// Catalog-sync bytes one peer may take from (or give to) this node at once.
    pub sync_budget_bytes: u64,
    /// How fast a peer's catalog-sync byte allowance refills, bytes per second.
    pub sync_budget_bytes_per_sec: u64,
    /// Catalog-sync pages (requests) one peer may take from (or give to) this node at once.
    pub sync_budget_pages: u32,
    /// How fast a peer's catalog-sync page allowance refills, pages per minute.
    pub sync_budget_pages_per_min: u32,
    /// Peers whose sync budgets are remembered (across reconnects); least recently used
    /// forgotten first.
    pub sync_budget_peers: usize,
    /// Run AutoNAT v2 (client and server): learn whether this node is reachable.
    pub autonat: bool,
    /// Ask the local gateway for a port mapping (UPnP IGD). Off by default.
    pub upnp: bool,
    /// Serve as a relay: "auto" (once AutoNAT confirmed a public address), "on", "off".
    pub relay_server: crate::swarm::nat::RelayServerMode,
    /// Relay reservations this node holds for others at most.
    pub relay_max_reservations: usize,
    /// Relayed circuits at once at most.
    pub relay_max_circuits: usize,
    /// Bytes one relayed circuit may carry.
    pub relay_circuit_bytes: u64,
    /// Seconds one relayed circuit may last.
    pub relay_circuit_secs: u64,
    /// Relays to reserve on when this node is not reachable (multiaddrs with /p2p/<id>).
    pub relays: Vec<String>,
    /// Addresses other nodes reach this node's swarm at, advertised as they are (set them
    /// on a node with a known public address or port forward).
    pub external_addrs: Vec<String>,
    /// Upgrade relayed connections to direct ones by hole punching (DCUtR).
    pub hole_punch: bool,
    /// How long a segment request to a peer reachable only through a relay waits for the
    /// hole punch's direct connection, milliseconds (0: no wait).
    pub hole_punch_wait_ms: u64,
    /// Seconds without an AutoNAT answer after which the node acts as if unreachable
    /// (reserves a relay).
    pub autonat_unknown_secs: u64,
    /// Seconds a TCP dial (connect and handshakes) may take, 1..=9 (below AutoNAT's 10 s
    /// dial-back limit, so an unreachable address is reported as such).
    pub dial_timeout_secs: u64,
}

impl P2pConfig {
    /// The catalog-sync budget these keys describe.
    pub fn sync_budget(&self) -> crate::swarm::budget::SyncBudget {
        crate::swarm::budget::SyncBudget {
            burst_bytes: self.sync_budget_bytes,
            bytes_per_sec: self.sync_budget_bytes_per_sec,
            burst_pages: self.sync_budget_pages,
            pages_per_min: self.sync_budget_pages_per_min,
            max_peers: self.sync_budget_peers,
        }
    }
}

/// `[transfer]` in the node config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// QUIC's head start, milliseconds: a segment request not answered over QUIC by then is
    /// also sent over the libp2p connection, and the first verified answer wins.
    pub quic_fallback_after_ms: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            quic_fallback_after_ms: crate::transfer::DEFAULT_QUIC_FALLBACK_AFTER_MS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicConfig {
    /// UDP address of the QUIC segment service.
    pub listen: SocketAddr,
    /// The address other nodes dial (default: `listen`, with 127.0.0.1 for 0.0.0.0).
    pub advertise: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerLink {
    /// Base URL of the tracker (its API lives under `/api/v1`): one URL, or a list of the
    /// replicas of one tracker (tried in order; see [`crate::trackers`]).
    pub url: TrackerUrls,
    /// The `iss` the tracker puts in its access tokens (its `issuer` setting).
    pub issuer: String,
    /// The tracker's URL as browsers reach it (where `/auth/login` sends viewers to sign
    /// in, `/oauth/authorize`, and `/auth/account` to `/account`). `None`: [`Self::url`].
    /// One URL (every replica behind one public name) or one per URL of [`Self::url`].
    pub public_url: Option<TrackerUrls>,
    /// An invite from the network's operator (`reelnet-tracker node invite`): used once,
    /// on the first start, to enroll. The certificate is kept in the data directory and
    /// renewed automatically. Empty: no invite (open enrollment as edge, if the network
    /// allows it).
    pub invite: String,
    /// How often the network document (keys, revocations) and this node's own record are
    /// fetched from the tracker, seconds (revocations reach every node within this plus
    /// gossip).
    pub membership_refresh_secs: u64,
    /// With several URLs: how often the replicas' `/healthz` is asked, in order, to move
    /// back to the first one that answers, seconds.
    pub probe_secs: u64,
}

/// `[tracker] url` (and `public_url`): one URL (`url = "http://…"`) or a list of them
/// (`url = ["http://…", "http://…"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUrls(pub Vec<String>);

impl TrackerUrls {
    /// The URLs, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The first URL (what a single-tracker setting gives), empty if there is none.
    pub fn first(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }
}

impl From<&str> for TrackerUrls {
    fn from(url: &str) -> Self {
        Self(vec![url.to_owned()])
    }
}

impl From<String> for TrackerUrls {
    fn from(url: String) -> Self {
        Self(vec![url])
    }
}

impl<'de> Deserialize<'de> for TrackerUrls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TrackerUrls;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a tracker URL or a list of tracker URLs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TrackerUrls, E> {
                Ok(TrackerUrls::from(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TrackerUrls, A::Error> {
                let mut out = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    if out.len() == crate::trackers::MAX_TRACKERS {
                        return Err(serde::de::Error::custom(format_args!(
                            "at most {} tracker URLs",
                            crate::trackers::MAX_TRACKERS
                        )));
                    }
                    out.push(url);
                }
                Ok(TrackerUrls(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Disk the segment store may use, in bytes.
    pub quota_bytes: u64,
    /// How many nodes should hold each manifest.
    pub replication: u32,
    /// Whether this node takes a share of the library under placement. `false` makes an
    /// edge node: it serves every movie from peers and keeps only an LRU cache.
    pub replica: bool,
    /// Bytes per second the background scrub reads to find rot in data nobody reads
    /// (0 turns it off).
    pub scrub_bytes_per_sec: u64,
}

/// `storage.scrub_bytes_per_sec` unless configured: 4 MiB/s, a pass over 50 GB in about
/// 3.5 hours.
pub const DEFAULT_SCRUB_BYTES_PER_SEC: u64 = 4 << 20;

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data/node"),
            gateway: GatewayConfig::default(),
            p2p: P2pConfig::default(),
            quic: QuicConfig::default(),
            transfer: TransferConfig::default(),
            tracker: TrackerLink::default(),
            storage: StorageConfig::default(),
            ingest: IngestConfig::default(),
            metadata: MetadataConfig::default(),
            requests: RequestsConfig::default(),
            catalog: CatalogLimits::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            web_dir: None,
            playback_token_ttl_secs: 2 * 3600,
            premium_renditions: 1,
            hot_cache_mib: DEFAULT_HOT_CACHE_MIB,
            ws_max_message_bytes: crate::gateway::proxy::WsLimits::DEFAULT.max_message_bytes,
            ws_message_burst: crate::gateway::proxy::WsLimits::DEFAULT.burst,
            ws_messages_per_sec: crate::gateway::proxy::WsLimits::DEFAULT.per_sec,
            tls: None,
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        let budget = crate::swarm::budget::SyncBudget::default();
        Self {
            listen: "/ip4/0.0.0.0/tcp/4001".to_owned(),
            bootstrap: Vec::new(),
            mdns: true,
            record_ttl_secs: 600,
            republish_secs: 60,
            max_connections: crate::swarm::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: crate::swarm::DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_pending_incoming: crate::swarm::DEFAULT_MAX_PENDING_INCOMING,
            max_pending_outgoing: crate::swarm::DEFAULT_MAX_PENDING_OUTGOING,
            sync_budget_bytes: budget.burst_bytes,
            sync_budget_bytes_per_sec: budget.bytes_per_sec,
            sync_budget_pages: budget.burst_pages,
            sync_budget_pages_per_min: budget.pages_per_min,
            sync_budget_peers: budget.max_peers,
            autonat: true,
            upnp: false,
            relay_server: crate::swarm::nat::RelayServerMode::Auto,
            relay_max_reservations: 64,
            relay_max_circuits: 16,
            relay_circuit_bytes: 1 << 20,
            relay_circuit_secs: 120,
            relays: Vec::new(),
            external_addrs: Vec::new(),
            hole_punch: true,
            hole_punch_wait_ms: 3000,
            autonat_unknown_secs: 30,
            dial_timeout_secs: crate::swarm::DEFAULT_DIAL_TIMEOUT.as_secs(),
        }
    }
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4433)),
            advertise: None,
        }
    }
}

impl Default for TrackerLink {
    fn default() -> Self {
        Self {
            url: TrackerUrls::from("http://127.0.0.1:7070"),
            issuer: "reelnet-tracker".to_owned(),
            public_url: None,
            invite: String::new(),
            membership_refresh_secs: 30,
            probe_secs: 5,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            quota_bytes: 50 * 1024 * 1024 * 1024,
            replication: 2,
            replica: true,
            scrub_bytes_per_sec: DEFAULT_SCRUB_BYTES_PER_SEC,
        }
    }
}

impl NodeConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = reelnet_runtime::config::load_toml(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            at: String::new(),
            message: message.to_owned(),
        };
        if let Err(err) = crate::trackers::check_urls(self.tracker.url.as_slice()) {
            return Err(invalid(
                "tracker.url",
                &format!(
                    "{err}: give one http:// or https:// URL, or a list of up to {} (the \
                     replicas of one tracker, tried in order)",
                    crate::trackers::MAX_TRACKERS
                ),
            ));
        }
        if !(1..=300).contains(&self.tracker.probe_secs) {
            return Err(invalid("tracker.probe_secs", "must be 1 to 300 seconds"));
        }
        if self.requests.node_secret.is_some() {
            return Err(invalid(
                "requests.node_secret",
                "was removed: nodes join the network with an invite (ask the operator for \
                 `reelnet-tracker node invite --role ingest`, start with `reelnet-node --invite TOKEN` \
                 or set [tracker] invite) and sign their claims with their membership certificate; \
                 delete this key",
            ));
        }
        if self.catalog.budget_mib < 4 || self.catalog.max_mib_per_origin < 1 {
            return Err(invalid(
                "catalog.budget_mib",
                "catalog.budget_mib must be at least 4 and catalog.max_mib_per_origin at least 1",
            ));
        }
        if self.catalog.max_manifests_per_origin < 10 {
            return Err(invalid(
                "catalog.max_manifests_per_origin",
                "must be at least 10",
            ));
        }
        if !(1..=30).contains(&self.tracker.membership_refresh_secs) {
            return Err(invalid(
                "tracker.membership_refresh_secs",
                "must be 1 to 30 seconds (revocations must reach every node within a minute)",
            ));
        }
        if self.tracker.invite.len() > 256 {
            return Err(invalid("tracker.invite", "at most 256 characters"));
        }
        if !self.p2p.listen.starts_with('/') {
            return Err(invalid(
                "p2p.listen",
                "must be a multiaddr such as /ip4/0.0.0.0/tcp/4001",
            ));
        }
        for (key, list) in [
            ("p2p.relays", &self.p2p.relays),
            ("p2p.external_addrs", &self.p2p.external_addrs),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|a| a.parse::<libp2p::Multiaddr>().is_err())
            {
                return Err(invalid(key, &format!("{bad:?} is not a multiaddr")));
            }
        }
        if self.p2p.relays.iter().any(|a| !a.contains("/p2p/")) {
            return Err(invalid(
                "p2p.relays",
                "each relay must end in /p2p/<peer id> (the relay's identity)",
            ));
        }
        for (key, v) in [
            ("p2p.relay_circuit_secs", self.p2p.relay_circuit_secs),
            ("p2p.relay_circuit_bytes", self.p2p.relay_circuit_bytes),
            (
                "p2p.relay_max_reservations",
                self.p2p.relay_max_reservations as u64,
            ),
            ("p2p.relay_max_circuits", self.p2p.relay_max_circuits as u64),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.p2p.autonat_unknown_secs == 0 {
            return Err(invalid("p2p.autonat_unknown_secs", "must be at least 1"));
        }
        if !(1..=9).contains(&self.p2p.dial_timeout_secs) {
            return Err(invalid(
                "p2p.dial_timeout_secs",
                "must be 1 to 9 (AutoNAT gives a dial-back 10 s)",
            ));
        }
        if self.transfer.quic_fallback_after_ms == 0 {
            return Err(invalid(
                "transfer.quic_fallback_after_ms",
                "must be at least 1",
            ));
        }
        if let Some(bad) = self.p2p.bootstrap.iter().find(|a| !a.starts_with('/')) {
            return Err(invalid(
                "p2p.bootstrap",
                &format!("`{bad}` is not a multiaddr (expected /ip4/.../tcp/...)"),
            ));
        }
        if !(1..=30).contains(&self.ingest.segment_secs) {
            return Err(invalid("ingest.segment_secs", "must be between 1 and 30"));
        }
        if let Err(e) = self.ingest.thumbnails.validate() {
            return Err(invalid("ingest.thumbnails", &e.to_string()));
        }
        if self.ingest.rungs.is_empty() || self.ingest.rungs.len() > 8 {
            return Err(invalid("ingest.rungs", "needs 1 to 8 rungs"));
        }
        for r in &self.ingest.rungs {
            let ok_name = !r.name.is_empty()
                && r.name.len() <= 32
                && r.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok_name || r.height < 64 || r.height > 4320 || r.video_bitrate < 50_000 {
                return Err(invalid(
                    "ingest.rungs",
                    &format!(
                        "rung `{}`: names are [A-Za-z0-9._-], heights 64..=4320, video_bitrate >= 50000",
                        r.name
                    ),
                ));
            }
        }
        if let Err(err) = self.trackers() {
            return Err(invalid(
                "tracker.public_url",
                &format!(
                    "{err} (each must be an http:// or https:// URL: the tracker as browsers \
                     reach it)"
                ),
            ));
        }
        if self.tracker.issuer.is_empty() {
            return Err(invalid("tracker.issuer", "must not be empty"));
        }
        if !(60..=7 * 24 * 3600).contains(&self.gateway.playback_token_ttl_secs) {
            return Err(invalid(
                "gateway.playback_token_ttl_secs",
                "must be between 60 and 604800 (one week)",
            ));
        }
        if !(256..=16 << 20).contains(&self.gateway.ws_max_message_bytes) {
            return Err(invalid(
                "gateway.ws_max_message_bytes",
                "must be between 256 and 16777216 (16 MiB)",
            ));
        }
        for (key, value) in [
            ("gateway.ws_message_burst", self.gateway.ws_message_burst),
            (
                "gateway.ws_messages_per_sec",
                self.gateway.ws_messages_per_sec,
            ),
        ] {
            if !(1..=10_000).contains(&value) {
                return Err(invalid(key, "must be between 1 and 10000"));
            }
        }
        if !(2..=24 * 3600).contains(&self.p2p.record_ttl_secs) {
            return Err(invalid(
                "p2p.record_ttl_secs",
                "must be between 2 and 86400",
            ));
        }
        if self.p2p.republish_secs == 0 || self.p2p.republish_secs >= self.p2p.record_ttl_secs {
            return Err(invalid(
                "p2p.republish_secs",
                "must be at least 1 and less than p2p.record_ttl_secs",
            ));
        }
        for (key, value) in [
            ("p2p.max_connections", u64::from(self.p2p.max_connections)),
            (
                "p2p.max_connections_per_peer",
                u64::from(self.p2p.max_connections_per_peer),
            ),
            (
                "p2p.max_pending_incoming",
                u64::from(self.p2p.max_pending_incoming),
            ),
            (
                "p2p.max_pending_outgoing",
                u64::from(self.p2p.max_pending_outgoing),
            ),
            ("p2p.sync_budget_bytes", self.p2p.sync_budget_bytes),
            (
                "p2p.sync_budget_pages",
                u64::from(self.p2p.sync_budget_pages),
            ),
            ("p2p.sync_budget_peers", self.p2p.sync_budget_peers as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        for (key, url) in [
            ("metadata.tmdb_api_url", &self.metadata.tmdb_api_url),
            ("metadata.tmdb_image_url", &self.metadata.tmdb_image_url),
        ] {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(invalid(key, "must be an http:// or https:// URL"));
            }
        }
        if self.ingest.max_source_bytes == 0 {
            return Err(invalid("ingest.max_source_bytes", "must be at least 1"));
        }
        if let Some(url) = &self.gateway.public_url {
            if let Err(reason) = reelnet_proto::catalog::gateway_origin(url) {
                return Err(invalid(
                    "gateway.public_url",
                    &format!(
                        "{url:?} {reason}; give the gateway's origin, e.g. https://movies.example.org \
                         or http://203.0.113.7:8080 (other nodes fetch /images/... from it)"
                    ),
                ));
            }
        }
        if let Some(tls) = &self.gateway.tls {
            if let Err(err) = tls.validate("gateway.tls") {
                return Err(match err {
                    reelnet_runtime::tls::TlsError::Config { key, reason } => {
                        invalid(&key, &reason)
                    }
                    other => invalid("gateway.tls", &other.to_string()),
                });
            }
            if self
                .gateway
                .public_url
                .as_deref()
                .is_some_and(|u| !u.starts_with("https://"))
            {
                return Err(invalid(
                    "gateway.public_url",
                    "must be an https:// origin when [gateway.tls] is on",
                ));
            }
        }
        if self.storage.replication == 0 {
            return Err(invalid("storage.replication", "must be at least 1"));
        }
        Ok(())
    }

    /// The QUIC address this node advertises in its catalog record.
    pub fn quic_advertised(&self) -> SocketAddr {
        self.quic.advertise.unwrap_or_else(|| {
            let mut addr = self.quic.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
            }
            addr
        })
    }

    /// The tracker replicas (`tracker.url`) with their browser-facing URLs
    /// (`tracker.public_url`, else the same), the first one current.
    pub fn trackers(&self) -> Result<crate::trackers::Trackers, crate::trackers::TrackersError> {
        let public = self
            .tracker
            .public_url
            .as_ref()
            .map_or(&[][..], TrackerUrls::as_slice);
        crate::trackers::Trackers::new(self.tracker.url.as_slice(), public)
    }

    /// The URL this node's gateway is reached at.
    pub fn public_url(&self) -> String {
        match &self.gateway.public_url {
            Some(url) => url.strip_suffix('/').unwrap_or(url).to_owned(),
            None => default_public_url(self.gateway.tls.as_ref(), self.gateway.listen),
        }
    }
}

/// The gateway's origin when `gateway.public_url` is not set: `http://{addr}`, or with
/// `[gateway.tls]` `https://{addr}` (files) or `https://{first ACME domain}[:port]`.
pub fn default_public_url(
    tls: Option<&reelnet_runtime::tls::TlsConfig>,
    addr: SocketAddr,
) -> String {
    let Some(tls) = tls else {
        return format!("http://{addr}");
    };
    match tls.acme.as_ref().and_then(|a| a.domains.first()) {
        Some(domain) if addr.port() == 443 => format!("https://{domain}"),
        Some(domain) => format!("https://{domain}:{}", addr.port()),
        None => format!("https://{addr}"),
    }
}

pub use reelnet_runtime::config::parse_toml;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["configs/node.toml", "configs/testnet/node.toml"] {
            if let Err(e) = NodeConfig::load(&root.join(file)) {
                panic!("{file}: {e}");
            }
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn gateway_tls_needs_one_source_and_makes_the_default_url_https() {
        use reelnet_runtime::tls::{AcmeConfig, TlsConfig};
        let path = Path::new("n.toml");
        let mut config = NodeConfig::default();
        config.gateway.tls = Some(TlsConfig {
            cert: Some("cert.pem".into()),
            key: Some("key.pem".into()),
            ..TlsConfig::default()
        });
        assert!(config.validate(path).is_ok());
        assert_eq!(config.public_url(), "https://127.0.0.1:8080");
        config.gateway.public_url = Some("http://movies.example.org".to_owned());
        let err = config.validate(path).unwrap_err().to_string();
        assert!(err.contains("gateway.public_url"), "{err}");
        config.gateway.public_url = None;
        config.gateway.tls = Some(TlsConfig {
            acme: Some(AcmeConfig {
                domains: vec!["movies.example.org".to_owned()],
                ..AcmeConfig::default()
            }),
            ..TlsConfig::default()
        });
        assert!(config.validate(path).is_ok());
        assert_eq!(config.public_url(), "https://movies.example.org:8080");
        config.gateway.tls = Some(TlsConfig::default());
        let err = config.validate(path).unwrap_err().to_string();
        assert!(err.contains("gateway.tls.cert"), "{err}");
        let parsed = parse_toml::<NodeConfig>(
            path,
            "[gateway.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nredirect_listen = \"0.0.0.0:80\"\n",
        )
        .unwrap();
        let tls = parsed.gateway.tls.unwrap();
        assert_eq!(tls.hsts_max_age_secs, 31_536_000);
        assert_eq!(tls.redirect_listen, Some("0.0.0.0:80".parse().unwrap()));
    }

    #[test]
    fn public_url_must_be_an_origin() {
        let mut config = NodeConfig::default();
        for ok in ["https://movies.example.org", "http://203.0.113.7:8080/"] {
            config.gateway.public_url = Some(ok.to_owned());
            assert!(config.validate(Path::new("n.toml")).is_ok(), "{ok}");
        }
        assert_eq!(config.public_url(), "http://203.0.113.7:8080");
        for bad in [
            "https://movies.example.org/reelnet",
            "https://movies.example.org?x=1",
            "https://me@movies.example.org",
        ] {
            config.gateway.public_url = Some(bad.to_owned());
            let err = config
                .validate(Path::new("n.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("gateway.public_url"), "{bad}: {err}");
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn tracker_url_is_one_url_or_a_list_of_replicas() {
        let path = Path::new("n.toml");
        let load = |toml: &str| {
            parse_toml::<NodeConfig>(path, toml)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate(path).map(|()| c).map_err(|e| e.to_string()))
        };
        let one = load("[tracker]\nurl = \"http://127.0.0.1:7070/\"\n").unwrap();
        assert_eq!(one.trackers().unwrap().urls(), ["http://127.0.0.1:7070"]);
        let two = load(
            "[tracker]\nurl = [\"http://127.0.0.1:7070\", \"http://127.0.0.1:7071\"]\n\
             public_url = [\"https://t1.example\", \"https://t2.example\"]\n",
        )
        .unwrap();
        let t = two.trackers().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.public_url(), "https://t1.example");
        for (bad, says) in [
            ("url = []", "no tracker URL"),
            ("url = [\"http://a:1\", \"http://a:1/\"]", "listed twice"),
            ("url = [\"http://a:1\", \"ftp://b\"]", "http://"),
            ("url = 7", "a tracker URL or a list"),
            (
                "url = [\"http://a:1\", \"http://b:1\"]\npublic_url = [\"http://a\", \"http://b\", \"http://c\"]",
                "one per URL",
            ),
            ("probe_secs = 0", "tracker.probe_secs"),
        ] {
            let err = load(&format!("[tracker]\n{bad}\n")).unwrap_err();
            assert!(err.contains("tracker."), "{bad}: {err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
        let nine: Vec<String> = (0..9).map(|i| format!("\"http://h{i}:1\"")).collect();
        let err = load(&format!("[tracker]\nurl = [{}]\n", nine.join(", "))).unwrap_err();
        assert!(err.contains("at most 8"), "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        assert!(NodeConfig::default().validate(Path::new("x")).is_ok());
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse_toml::<NodeConfig>(Path::new("n.toml"), "[gateway]\nlisten = 5\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("n.toml"), "{err}");
        assert!(err.contains("gateway.listen"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = parse_toml::<NodeConfig>(Path::new("n.toml"), "[quic]\nlisen = \"1.2.3.4:5\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_address_names_the_key() {
        let err = parse_toml::<NodeConfig>(Path::new("n.toml"), "[quic]\nlisten = \"nowhere\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("quic.listen"), "{err}");
    }
}
