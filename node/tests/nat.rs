//! Nodes behind NAT, on loopback with real swarms, a real QUIC segment server and real
//! fetchers in one process: the segment fallback over libp2p (`/reelnet/segment/2`) when a
//! provider's QUIC address does not answer, its verification and membership check, and a
//! relay v2 reservation that another node reaches the reserving node through.
//!
//! One test runs real `reelnet-node` processes: a node whose catalog record names a dead
//! QUIC address still gets its movie replicated, over libp2p.
//!
//! The NAT itself (a home router, a symmetric NAT) is the WAN testnet's business
//! (`testnet/wan.sh`); here the "unreachable QUIC address" is a bound UDP socket nobody
//! answers on, and "unreachable except through the relay" is a node that only the relay
//! knows (no discovery dialling: `target_peers = 1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use rand::{RngCore, SeedableRng};
use reelnet_node::catalog::{Catalog, CatalogConfig};
use reelnet_node::membership::Membership;
use reelnet_node::store::Store;
use reelnet_node::swarm::nat::RelayServerMode;
use reelnet_node::swarm::segment::{SegmentCodec, SegmentResponse, SEGMENT_PROTOCOL};
use reelnet_node::swarm::{self, with_peer, NetworkHandle, SwarmConfig};
use reelnet_node::transfer::{
    AttemptError, FetchError, FetchRequest, Fetcher, FetcherConfig, Limits, TransferServer,
    TransportTuning,
};
use reelnet_proto::membership::RoleName;
use reelnet_proto::{
    Container, Manifest, MovieId, NodeId, Rendition, ResponseHeader, SegmentEntry, SegmentHash,
    SegmentRef, SegmentRequest, SignedManifest, Track,
};
use tokio_util::sync::CancellationToken;

mod common;
#[path = "common_membership/mod.rs"]
mod common_membership;
use common_membership::TestNetwork;

/// A signed one-track manifest and the bytes of its segments.
struct Library {
    signed: SignedManifest,
    manifest: Manifest,
    bytes: HashMap<SegmentHash, Vec<u8>>,
}

impl Library {
    fn new(seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let origin_key = SigningKey::generate(&mut rng);
        let mut bytes = HashMap::new();
        let mut entry = |len: usize| {
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            let hash = SegmentHash::of(&b);
            bytes.insert(hash, b);
            SegmentEntry {
                hash,
                duration_ms: 4000,
                size: len as u32,
            }
        };
        let init = entry(700);
        // Four small segments and one larger than a relayed connection carries.
        let mut segments: Vec<_> = (0..4).map(|i| entry(120_000 + i * 1000)).collect();
        segments.push(entry(300_000));
        let manifest = Manifest {
            version: reelnet_proto::manifest::MANIFEST_VERSION,
            movie: MovieId::from_tmdb(603),
            title: "The Matrix".into(),
            year: Some(1999),
            origin: NodeId::from_verifying_key(&origin_key.verifying_key()),
            ingest_id: [7; 16],
            seq: 1,
            created_at: 0,
            container: Container::Fmp4,
            target_duration_ms: 4000,
            tracks: vec![Track {
                kind: reelnet_proto::manifest::TrackKind::Video,
                media: None,
                rendition: Rendition {
                    name: "360p".into(),
                    width: 640,
                    height: 360,
                    bandwidth: 1_000_000,
                    codecs: "avc1.64001f".into(),
                    frame_rate_milli: 25_000,
                },
                init: Some(init),
                segments,
            }],
            complete: true,
            meta: Default::default(),
        };
        let signed = SignedManifest::sign(&manifest, &origin_key).unwrap();
        Self {
            signed,
            manifest,
            bytes,
        }
    }

    /// Every request of the track, with the hash and size the answer must have.
    fn wants(&self) -> Vec<FetchRequest> {
        let track = &self.manifest.tracks[0];
        let mut out = Vec::new();
        let mut push = |segment, e: &SegmentEntry| {
            out.push(FetchRequest {
                request: SegmentRequest {
                    manifest: self.signed.id(),
                    track: 0,
                    segment,
                },
                expected: e.hash,
                size: Some(u64::from(e.size)),
            })
        };
        push(SegmentRef::Init, track.init.as_ref().unwrap());
        for (i, e) in track.segments.iter().enumerate() {
            push(SegmentRef::Index(i as u32), e);
        }
        out
    }

    fn total_bytes(&self) -> u64 {
        self.bytes.values().map(|b| b.len() as u64).sum()
    }
}

/// A node in this process: swarm, store, and (if serving) the QUIC segment server whose
/// service also answers `/reelnet/segment/2`.
struct Node {
    key: SigningKey,
    node: NodeId,
    net: NetworkHandle,
    addr: Multiaddr,
    store: Store,
    _server: Option<TransferServer>,
    _dir: tempfile::TempDir,
}

async fn spawn(
    key: SigningKey,
    membership: Option<Membership>,
    library: Option<&Library>,
    tweak: impl FnOnce(&mut SwarmConfig),
    cancel: &CancellationToken,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = library.map(|lib| {
        store.put_manifest(&lib.signed).unwrap();
        for b in lib.bytes.values() {
            store.put_segment(b, None).unwrap();
        }
        TransferServer::bind_with(
            "127.0.0.1:0".parse().unwrap(),
            &key,
            store.clone(),
            Limits {
                transport: TransportTuning::loopback(),
                ..Limits::default()
            },
            membership.as_ref(),
            0,
        )
        .unwrap()
        .0
    });
    let (catalog, _task) =
        Catalog::start_with(CatalogConfig::default(), membership.clone(), cancel.clone());
    let mut config = SwarmConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        membership,
        segments: server.as_ref().map(|s| s.service()),
        ..SwarmConfig::default()
    };
    config.nat.autonat = false;
    config.nat.relay_server = RelayServerMode::Off;
    tweak(&mut config);
    let (net, addrs, _task) = swarm::start(config, &key, catalog, cancel.clone())
        .await
        .unwrap();
    Node {
        node: NodeId::from_verifying_key(&key.verifying_key()),
        addr: with_peer(&addrs[0], net.peer_id()),
        key,
        net,
        store,
        _server: server,
        _dir: dir,
    }
}

/// A fetcher for `node` whose QUIC attempts give up after 300 ms and go over libp2p.
fn fetcher(node: &Node, membership: Option<&Membership>) -> Fetcher {
    let f = Fetcher::with_membership(
        Some(&node.key),
        FetcherConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            attempt_timeout: Duration::from_secs(10),
            transport: TransportTuning::loopback(),
            quic_fallback_after: Duration::from_millis(300),
            ..FetcherConfig::default()
        },
        membership,
    )
    .unwrap();
    f.set_fallback(node.net.clone());
    f
}

/// Logs to the test's output when `RUST_LOG` is set (e.g. `RUST_LOG=reelnet_node=debug`).
fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    reelnet_testkit::wait_for_every(what, limit, Duration::from_millis(20), || {
        let ready = check();
        async move { ready.await.then_some(()) }
    })
    .await;
}

/// A QUIC address that swallows every datagram: bound, never read.
fn dead_quic_addr() -> (std::net::UdpSocket, SocketAddr) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A movie held only by B, whose advertised QUIC address drops every packet, is fetched by
/// A over libp2p and verified; the bytes are counted as direct libp2p bytes on both sides.
/// A peer that is not a member is refused on the fallback exactly as on QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_come_over_libp2p_when_quic_is_unreachable_and_only_to_members() {
    logs();
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let lib = Library::new(1);
    let gen = || SigningKey::generate(&mut rand::rngs::OsRng);
    let (ka, kb, ks) = (gen(), gen(), gen());
    let ma = net
        .membership(
            &ka,
            Some(net.cert(&ka, &[RoleName::Replica], false)),
            &cancel,
        )
        .await;
    let mb = net
        .membership(
            &kb,
            Some(net.cert(&kb, &[RoleName::Replica], false)),
            &cancel,
        )
        .await;
    let b = spawn(kb, Some(mb), Some(&lib), |_| {}, &cancel).await;
    let a = spawn(
        ka,
        Some(ma.clone()),
        None,
        |c| c.bootstrap = vec![b.addr.clone()],
        &cancel,
    )
    .await;
    let (_dead, dead) = dead_quic_addr();
    let fetch = fetcher(&a, Some(&ma));
    let providers = [(b.node, dead)];

    for want in lib.wants() {
        let bytes = fetch
            .fetch_into_store(&providers, &want, &a.store)
            .await
            .unwrap();
        assert_eq!(SegmentHash::of(&bytes), want.expected);
        assert!(a.store.has_segment(&want.expected));
    }
    let paths = fetch.path_bytes();
    println!("fetched by path: {paths:?}");
    assert_eq!(paths.quic, 0);
    assert_eq!(paths.libp2p_relayed, 0);
    assert_eq!(paths.libp2p_direct, lib.total_bytes());
    let served = b.net.stats().await.unwrap();
    assert_eq!(served.segment_served_direct_bytes, lib.total_bytes());
    assert_eq!(served.segment_served_relayed_bytes, 0);

    // The server announces the segment's true hash: asking with another expected hash is
    // refused by the fetcher, as over QUIC.
    let mut wrong = lib.wants()[1];
    wrong.expected = lib.wants()[2].expected;
    wrong.size = None;
    match fetch.fetch_request(&providers, &wrong).await {
        Err(FetchError::AllFailed(f)) => assert!(
            matches!(f[0].1, AttemptError::AnnouncedHashMismatch { .. }),
            "{f:?}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A stranger (a valid libp2p identity with no certificate) gets nothing.
    let s = spawn(ks, None, None, |_| {}, &cancel).await;
    s.net.dial(b.addr.clone()).await.unwrap();
    let stranger = fetcher(&s, None);
    let result = stranger.fetch_request(&providers, &lib.wants()[1]).await;
    assert!(
        matches!(&result, Err(FetchError::AllFailed(f)) if matches!(f[0].1, AttemptError::P2p(_))),
        "{result:?}"
    );
    assert_eq!(stranger.path_bytes().libp2p_direct, 0);
    let b_net = b.net.clone();
    // B refuses the segment request, or (when the stranger's catalog sync got there
    // first) has already closed the connection of a peer without a certificate.
    wait_for("B counts the refusal", Duration::from_secs(10), || {
        let b_net = b_net.clone();
        async move {
            let s = b_net.stats().await.unwrap();
            s.segment_refused + s.not_member_disconnects + s.sync_refused >= 1
        }
    })
    .await;
    cancel.cancel();
}

/// A provider that answers over libp2p with a header naming the right hash and length but
/// other bytes: the fetcher rejects them (hash mismatch, counted as misbehaviour) and
/// stores nothing, as over QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_answer_over_libp2p_is_rejected() {
    logs();
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let lib = Library::new(2);
    let ka = SigningKey::generate(&mut rand::rngs::OsRng);
    let ma = net
        .membership(
            &ka,
            Some(net.cert(&ka, &[RoleName::Replica], false)),
            &cancel,
        )
        .await;
    let a = spawn(ka, Some(ma.clone()), None, |_| {}, &cancel).await;

    // The evil provider: a bare libp2p swarm speaking only /reelnet/segment/2.
    let evil_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut secret = evil_key.to_bytes();
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret).unwrap();
    let mut evil = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::<SegmentCodec>::new(
                [(SEGMENT_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    evil.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let evil_addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = evil.select_next_some().await {
            break address.with(Protocol::P2p(*evil.local_peer_id()));
        }
    };
    let truth: HashMap<SegmentRef, SegmentEntry> = lib
        .wants()
        .iter()
        .map(|w| {
            let e = SegmentEntry {
                hash: w.expected,
                duration_ms: 0,
                size: w.size.unwrap() as u32,
            };
            (w.request.segment, e)
        })
        .collect();
    let (asked_tx, mut asked_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = evil.select_next_some().await
            {
                let e = truth[&request.request.segment];
                let garbage = vec![0xAB; e.size as usize];
                // The garbage's own outboard: well formed, but not the segment hash's.
                let (_, outboard) = reelnet_proto::Outboard::compute(&garbage);
                let _ = asked_tx.send(());
                let _ = evil.behaviour_mut().send_response(
                    channel,
                    SegmentResponse {
                        header: ResponseHeader::ok(u64::from(e.size), e.hash),
                        outboard: outboard.to_bytes().into(),
                        body: garbage.into(),
                    },
                );
            }
        }
    });
    a.net.dial(evil_addr).await.unwrap();

    let evil_node = NodeId::from_verifying_key(&evil_key.verifying_key());
    let (_dead, dead) = dead_quic_addr();
    let fetch = fetcher(&a, Some(&ma));
    let want = lib.wants()[1];
    let result = fetch
        .fetch_into_store(&[(evil_node, dead)], &want, &a.store)
        .await;
    assert!(
        matches!(&result, Err(FetchError::AllFailed(f)) if f[0].1.is_bad_data()),
        "{result:?}"
    );
    assert!(
        asked_rx.recv().await.is_some(),
        "the request went over libp2p"
    );
    assert!(!a.store.has_segment(&want.expected), "nothing stored");
    assert_eq!(
        fetch.path_bytes().libp2p_direct,
        0,
        "bad bytes are not counted"
    );
    assert!(fetch
        .stats(&evil_node)
        .is_some_and(|s| s.consecutive_failures >= 8 && s.successes == 0));
    cancel.cancel();
}

/// C serves as a relay (`relay_server = "on"`); D would (`"auto"`) but AutoNAT never
/// confirmed it public, so it refuses; B, told `relays = [D, C]`, ends up with a circuit
/// on C while its reachability is unknown; A, which knows only C, reaches B through the
/// circuit and fetches a small segment from it over libp2p (B's QUIC address is dead),
/// counted as relayed. Hole punching is off here (on loopback DCUtR would upgrade at once;
/// the WAN testnet tests it through real NATs), so the connection stays relayed and B
/// answers a media segment larger than a relay carries with Busy instead of sending it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reserves_on_a_relay_and_is_reached_through_it() {
    logs();
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let lib = Library::new(3);
    let gen = || SigningKey::generate(&mut rand::rngs::OsRng);
    let (ka, kb, kc, kd) = (gen(), gen(), gen(), gen());
    let mut members = Vec::new();
    for k in [&ka, &kb, &kc, &kd] {
        members.push(
            net.membership(k, Some(net.cert(k, &[RoleName::Replica], false)), &cancel)
                .await,
        );
    }
    let quiet = |c: &mut SwarmConfig| {
        c.target_peers = 1;
        c.nat.unknown_timeout = Duration::from_millis(200);
        c.nat.hole_punch = false;
        c.direct_wait = Duration::ZERO;
    };
    let c = spawn(
        kc,
        Some(members[2].clone()),
        None,
        |cfg| {
            quiet(cfg);
            cfg.nat.relay_server = RelayServerMode::On;
        },
        &cancel,
    )
    .await;
    let d = spawn(
        kd,
        Some(members[3].clone()),
        None,
        |cfg| {
            quiet(cfg);
            cfg.nat.relay_server = RelayServerMode::Auto;
        },
        &cancel,
    )
    .await;
    let b = spawn(
        kb,
        Some(members[1].clone()),
        Some(&lib),
        |cfg| {
            quiet(cfg);
            cfg.bootstrap = vec![c.addr.clone()];
            cfg.nat.relays = vec![d.addr.clone(), c.addr.clone()];
        },
        &cancel,
    )
    .await;
    let b_net = b.net.clone();
    wait_for(
        "B holds a relay reservation",
        Duration::from_secs(10),
        || {
            let b_net = b_net.clone();
            async move {
                let s = b_net.nat_status().await.unwrap();
                s.relay_reservations == 1 && s.relay.is_some()
            }
        },
    )
    .await;
    let status = b.net.nat_status().await.unwrap();
    println!("B: {}", serde_json::to_string(&status).unwrap());
    let relay = status.relay.clone().unwrap();
    assert!(
        relay.ends_with(&format!("(relay {})", c.net.peer_id())),
        "the reservation is on C, not on D (not public, so not a relay): {relay}"
    );
    assert!(!d.net.nat_status().await.unwrap().relay_serving);
    assert!(c.net.nat_status().await.unwrap().relay_serving);
    assert!(
        status.external.iter().any(|a| a.contains("p2p-circuit")),
        "the circuit address is advertised: {status:?}"
    );
    assert_eq!(status.reachability, swarm::nat::Reachability::Unknown);

    let a = spawn(
        ka,
        Some(members[0].clone()),
        None,
        |cfg| {
            quiet(cfg);
            cfg.bootstrap = vec![c.addr.clone()];
        },
        &cancel,
    )
    .await;
    let circuit = c
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b.net.peer_id()));
    a.net.dial(circuit).await.unwrap();
    let a_net = a.net.clone();
    wait_for(
        "A reaches B through the relay",
        Duration::from_secs(10),
        || {
            let a_net = a_net.clone();
            async move { a_net.stats().await.unwrap().relayed_connections_total >= 1 }
        },
    )
    .await;

    let (_dead, dead) = dead_quic_addr();
    let fetch = fetcher(&a, Some(&members[0]));
    let want = lib.wants()[0];
    let bytes = fetch.fetch_request(&[(b.node, dead)], &want).await.unwrap();
    assert_eq!(SegmentHash::of(&bytes), want.expected);
    let paths = fetch.path_bytes();
    let stats = a.net.stats().await.unwrap();
    println!(
        "A: paths {paths:?}, hole punches ok {} failed {}",
        stats.hole_punch_success, stats.hole_punch_failure
    );
    assert_eq!(paths.quic, 0);
    assert_eq!(
        paths.libp2p_direct + paths.libp2p_relayed,
        bytes.len() as u64
    );
    assert_eq!(stats.hole_punch_success + stats.hole_punch_failure, 0);

    // A media segment larger than a relay carries: over the relay B answers Busy, so the
    // fetcher tries elsewhere instead of having the circuit cut mid-answer. (Discovery may
    // have given A a direct connection to B by now: then it comes, and only that way.)
    let big = *lib.wants().last().unwrap();
    assert!(big.size.unwrap() > 256 * 1024);
    let before = fetch.path_bytes();
    match fetch.fetch_request(&[(b.node, dead)], &big).await {
        Ok(got) => {
            let after = fetch.path_bytes();
            assert_eq!(after.libp2p_direct - before.libp2p_direct, got.len() as u64);
            assert_eq!(
                after.libp2p_relayed, before.libp2p_relayed,
                "not over the relay"
            );
        }
        Err(FetchError::AllFailed(f)) => assert!(
            matches!(f[0].1, AttemptError::Status(reelnet_proto::Status::Busy)),
            "refused as Busy over the relay: {f:?}"
        ),
        Err(other) => panic!("unexpected: {other}"),
    }
    let served = b.net.stats().await.unwrap();
    assert!(
        served.segment_served_relayed_bytes <= bytes.len() as u64,
        "B sent only the small answer over the relay: {}",
        served.segment_served_relayed_bytes
    );
    cancel.cancel();
}

/// The value of one sample on a node's `/metrics`, 0 when absent.
async fn metric(gateway: &str, sample: &str) -> u64 {
    let text = reqwest::get(format!("{gateway}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Real processes: node 1 ingests a movie, but its record advertises a QUIC address that
/// drops every packet (as a home node's would behind a NAT); node 2, responsible for a
/// copy, pulls every segment over libp2p (`/reelnet/segment/2`), verified, and both nodes
/// count the bytes as direct libp2p bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_unreachable_quic_address_still_replicates_over_libp2p() {
    let (_dead, dead) = dead_quic_addr();
    let dead_snippet = format!("[quic]\nadvertise = \"{dead}\"\n");
    let fallback = "[transfer]\nquic_fallback_after_ms = 300\n";
    let cluster = common::Cluster::start_with(2, |i| {
        let own = if i == 1 {
            dead_snippet.clone()
        } else {
            fallback.to_owned()
        };
        common::merge_toml(common::FAST, &own)
    })
    .await;
    cluster.wait_live(2, Duration::from_secs(30)).await;
    assert_eq!(
        cluster.node(1).quic,
        dead,
        "node 1 advertises the dead address"
    );
    let movie = common::make_movie(cluster.dir.path(), "Nat.Test.2026.mp4", 8, 240);
    let p = cluster
        .node(1)
        .ingest_and_wait(&movie, "Nat Test", Duration::from_secs(120))
        .await;
    let movie_id = p.movie_id.unwrap();
    let replica = cluster.node(2);
    common::wait_for(
        "node 2 to hold every segment over libp2p",
        Duration::from_secs(60),
        || async {
            let s = replica.try_status().await.ok()?;
            let e = s.manifests.iter().find(|m| m.movie_id == movie_id)?;
            (e.held_segments == e.total_segments && e.total_segments > 0).then_some(())
        },
    )
    .await;
    let gw2 = replica.gateway_url();
    let gw1 = cluster.node(1).gateway_url();
    let direct = metric(
        &gw2,
        "reelnet_segment_fetch_bytes_total{path=\"libp2p_direct\"}",
    )
    .await;
    let quic = metric(&gw2, "reelnet_segment_fetch_bytes_total{path=\"quic\"}").await;
    let served = metric(&gw1, "reelnet_p2p_direct_bytes_total").await;
    println!("node 2 fetched {direct} bytes over libp2p, {quic} over QUIC; node 1 served {served}");
    assert!(direct > 0);
    assert_eq!(quic, 0);
    assert_eq!(served, direct);
    let status = replica.status().await;
    let nat = status.nat.expect("the status reports NAT state");
    println!("node 2 nat: {}", serde_json::to_string(&nat).unwrap());
}
