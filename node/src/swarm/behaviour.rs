//! The composed libp2p behaviour (connection limits, gossipsub with strict validation and
//! peer scoring, Kademlia, identify, optional mDNS, catalog sync over request-response) and
//! how it is built from the node's key and [`SwarmConfig`]; NAT traversal (AutoNAT v2 client
//! and server, relay v2 server and client, DCUtR, UPnP) and the segment fallback over
//! request-response (see [`super::nat`] and [`super::segment`]).

use super::*;

/// The composed behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so a connection over the limits is denied before the others see it.
    pub(super) limits: connection_limits::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(super) identify: identify::Behaviour,
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(super) sync: request_response::Behaviour<SyncCodec>,
    pub(super) segment: request_response::Behaviour<SegmentCodec>,
    pub(super) autonat_client: Toggle<autonat::v2::client::Behaviour>,
    pub(super) autonat_server: Toggle<autonat::v2::server::Behaviour>,
    /// Built unless `relay_server = "off"`; with `"auto"` its [`RelayGate`] stays shut until
    /// AutoNAT confirmed a public address.
    pub(super) relay_server: Toggle<relay::Behaviour>,
    pub(super) relay_client: relay::client::Behaviour,
    pub(super) dcutr: Toggle<dcutr::Behaviour>,
    pub(super) upnp: Toggle<upnp::tokio::Behaviour>,
    pub(super) candidates: nat::Candidates,
}

pub(super) fn build_behaviour(
    keypair: &Keypair,
    config: &SwarmConfig,
    relay_client: relay::client::Behaviour,
    gate: &nat::RelayGate,
) -> Result<Behaviour, SwarmError> {
    let setup = |what: &str, e: String| SwarmError::Setup(format!("{what}: {e}"));
    let peer_id = keypair.public().to_peer_id();

    let gs_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| setup("gossipsub config", e.to_string()))?;
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        gs_config,
    )
    .map_err(|e| setup("gossipsub", e.to_string()))?;
    let (params, thresholds) = score_params();
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(|e| setup("gossipsub peer scoring", e))?;
    for name in [
        CATALOG_TOPIC,
        MANIFEST_TOPIC,
        REVOCATIONS_TOPIC,
        BINDINGS_TOPIC,
    ] {
        gossipsub
            .subscribe(&IdentTopic::new(name))
            .map_err(|e| setup("gossipsub subscribe", e.to_string()))?;
    }

    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::new(peer_id),
        kad::Config::new(KAD_PROTOCOL),
    );
    kad.set_mode(Some(kad::Mode::Server));

    // Pushing listen address changes tells peers (and so the DHT) at once when a node
    // behind NAT starts listening through a relay: its circuit address is the only one
    // other nodes behind NAT can dial, and DCUtR upgrades that circuit to a direct path.
    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), keypair.public())
            .with_push_listen_addr_updates(true),
    );

    let mdns = if config.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                .map_err(|e| setup("mdns", e.to_string()))?,
        )
    } else {
        None
    };

    let sync = request_response::Behaviour::new(
        [(SYNC_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
    );

    let segment = request_response::Behaviour::new(
        [(SEGMENT_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.segment_timeout)
            .with_max_concurrent_streams(256),
    );

    let nat = &config.nat;
    let (autonat_client, autonat_server) = if nat.autonat {
        (
            Some(autonat::v2::client::Behaviour::default()),
            Some(autonat::v2::server::Behaviour::default()),
        )
    } else {
        (None, None)
    };
    let relay_server = match nat.relay_server {
        nat::RelayServerMode::Off => None,
        nat::RelayServerMode::On | nat::RelayServerMode::Auto => {
            // relay::Config's defaults keep their per-peer and per-IP rate limiters.
            let mut relay_config = relay::Config {
                max_reservations: nat.relay_max_reservations,
                max_circuits: nat.relay_max_circuits,
                max_circuit_bytes: nat.relay_circuit_bytes,
                max_circuit_duration: Duration::from_secs(nat.relay_circuit_secs),
                ..relay::Config::default()
            };
            relay_config
                .reservation_rate_limiters
                .push(Box::new(gate.clone()));
            relay_config
                .circuit_src_rate_limiters
                .push(Box::new(gate.clone()));
            Some(relay::Behaviour::new(peer_id, relay_config))
        }
    };
    let upnp = nat.upnp.then(upnp::tokio::Behaviour::default);

    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_pending_incoming))
            .with_max_pending_outgoing(Some(config.max_pending_outgoing)),
    );

    Ok(Behaviour {
        limits,
        gossipsub,
        kad,
        identify,
        mdns: Toggle::from(mdns),
        sync,
        segment,
        autonat_client: Toggle::from(autonat_client),
        autonat_server: Toggle::from(autonat_server),
        relay_server: Toggle::from(relay_server),
        relay_client,
        dcutr: Toggle::from(nat.hole_punch.then(|| dcutr::Behaviour::new(peer_id))),
        upnp: Toggle::from(upnp),
        candidates: nat::Candidates::default(),
    })
}
