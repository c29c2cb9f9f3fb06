//! Placement's storage challenge, in process: real stores, catalogs, libp2p swarms, QUIC
//! segment services, fetchers, publishers and placement workers on 127.0.0.1, every node an
//! enrolled member of a test network (see `common_membership`).
//!
//! A node that holds an ingest releases it only after the node now responsible has proved,
//! segment by segment over QUIC, that it holds a copy: a member that merely claims one in
//! its (validly signed) catalog record fails the challenge, is left out of placement on the
//! honest node, and nothing is released; an honest new holder passes and the release
//! happens. Replication is 1 and the origin is an ingest-only member that takes no share,
//! so the one responsible node is the highest-weight replica.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common_membership/mod.rs"]
mod common_membership;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common_membership::TestNetwork;
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use rand::RngCore;
use reelnet_node::catalog::{Catalog, CatalogConfig, Verdict};
use reelnet_node::membership::Membership;
use reelnet_node::placement::{ingest_ref, weight, IngestRef, Placement, PlacementConfig};
use reelnet_node::store::Store;
use reelnet_node::swarm::publisher::{Publisher, PublisherConfig};
use reelnet_node::swarm::{self, with_peer, SwarmConfig};
use reelnet_node::transfer::{Fetcher, FetcherConfig, Limits, TransferServer, TransportTuning};
use reelnet_proto::membership::RoleName;
use reelnet_proto::{
    CatalogRecord, Container, Held, Manifest, MovieId, NodeId, Rendition, SegmentEntry,
    SegmentHash, SignedCatalogRecord, SignedManifest, Track,
};
use reelnet_testkit::wait_for;
use tokio_util::sync::CancellationToken;

fn gen() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn id_of(key: &SigningKey) -> NodeId {
    NodeId::from_verifying_key(&key.verifying_key())
}

/// A key whose rendezvous weight for `ingest` is above `than`'s.
fn key_above(ingest: &IngestRef, than: &NodeId) -> SigningKey {
    loop {
        let k = gen();
        if weight(&id_of(&k), ingest) > weight(than, ingest) {
            return k;
        }
    }
}

/// A signed two-track fMP4 ingest (init + 6 media segments each) and every segment's bytes.
struct Library {
    origin: SigningKey,
    signed: SignedManifest,
    manifest: Manifest,
    bytes: HashMap<SegmentHash, Vec<u8>>,
}

impl Library {
    fn new() -> Self {
        let origin = gen();
        let mut bytes = HashMap::new();
        let mut entry = |len: usize, duration_ms: u32| {
            let mut b = vec![0u8; len];
            rand::thread_rng().fill_bytes(&mut b);
            let hash = SegmentHash::of(&b);
            bytes.insert(hash, b);
            SegmentEntry {
                hash,
                duration_ms,
                size: len as u32,
            }
        };
        let tracks = [("720p", 720u32), ("360p", 360)]
            .into_iter()
            .map(|(name, height)| Track {
                kind: reelnet_proto::manifest::TrackKind::Video,
                media: None,
                rendition: Rendition {
                    name: name.into(),
                    width: height * 16 / 9,
                    height,
                    bandwidth: 1_000_000,
                    codecs: "avc1.64001f".into(),
                    frame_rate_milli: 25_000,
                },
                init: Some(entry(700, 0)),
                segments: (0..6).map(|i| entry(20_000 + i * 100, 4000)).collect(),
            })
            .collect();
        let manifest = Manifest {
            version: reelnet_proto::manifest::MANIFEST_VERSION,
            movie: MovieId::from_tmdb(603),
            title: "The Matrix".into(),
            year: Some(1999),
            origin: id_of(&origin),
            ingest_id: [9; 16],
            seq: 1,
            created_at: reelnet_node::unix_now(),
            container: Container::Fmp4,
            target_duration_ms: 4000,
            tracks,
            complete: true,
            meta: Default::default(),
        };
        let signed = SignedManifest::sign(&manifest, &origin).unwrap();
        Self {
            origin,
            signed,
            manifest,
            bytes,
        }
    }

    fn ingest(&self) -> IngestRef {
        ingest_ref(&self.manifest)
    }
}

/// A signed catalog record of `key` (a member with `cert`).
fn record(
    key: &SigningKey,
    cert: &reelnet_proto::membership::SignedCertificate,
    quic: SocketAddr,
    held: Vec<Held>,
    replica: bool,
) -> SignedCatalogRecord {
    let now = reelnet_node::unix_now();
    let r = CatalogRecord {
        node: id_of(key),
        quic_addr: quic.to_string(),
        gateway_url: "http://127.0.0.1:8080".into(),
        held,
        seq: 1,
        issued_at: now,
        expires_at: now + 600,
        replica,
        certificate: cert.encode(),
    };
    SignedCatalogRecord::sign(&r, key).unwrap()
}

/// Makes `catalog` know the ingest: its origin's record (an ingest-only member, no share)
/// and the manifest.
async fn know_ingest(net: &TestNetwork, lib: &Library, node: &Node) {
    let catalog = &node.catalog;
    // The tracker bound the movie to this ingest (placement holds only bound sources).
    assert_eq!(
        node.membership
            .offer_binding(&net.binding(&lib.signed, 1).encode())
            .await,
        reelnet_node::bindings::BindingVerdict::Accepted
    );
    let cert = net.cert(&lib.origin, &[RoleName::Ingest], false);
    let r = record(
        &lib.origin,
        &cert,
        "127.0.0.1:9".parse().unwrap(),
        vec![],
        false,
    );
    assert_eq!(catalog.offer_record(r).await.unwrap(), Verdict::Accepted);
    assert_eq!(
        catalog.offer_manifest(lib.signed.clone()).await.unwrap(),
        Verdict::Accepted
    );
}

/// A whole replica node in this process.
struct Node {
    membership: Membership,
    id: NodeId,
    addr: Multiaddr,
    store: Store,
    catalog: Catalog,
    placement: Placement,
    _server: TransferServer,
    _dir: tempfile::TempDir,
}

async fn spawn_node(
    net: &TestNetwork,
    key: SigningKey,
    bootstrap: Vec<Multiaddr>,
    cancel: &CancellationToken,
) -> Node {
    let cert = net.cert(&key, &[RoleName::Replica], false);
    let membership: Membership = net.membership(&key, Some(cert), cancel).await;
    let member = membership.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (catalog, _task) = Catalog::start_with(
        CatalogConfig::default(),
        Some(membership.clone()),
        cancel.clone(),
    );
    let (network, addrs, _task) = swarm::start(
        SwarmConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            bootstrap,
            membership: Some(membership.clone()),
            ..SwarmConfig::default()
        },
        &key,
        catalog.clone(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let addr = with_peer(&addrs[0], network.peer_id());
    let (server, quic) = TransferServer::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        &key,
        store.clone(),
        Limits {
            transport: TransportTuning::loopback(),
            ..Limits::default()
        },
        Some(&membership),
        0,
    )
    .unwrap();
    let fetcher = Arc::new(
        Fetcher::with_membership(
            Some(&key),
            FetcherConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                attempt_timeout: Duration::from_secs(1),
                transport: TransportTuning::loopback(),
                ..FetcherConfig::default()
            },
            Some(&membership),
        )
        .unwrap(),
    );
    let (publisher, _task) = Publisher::start(
        PublisherConfig {
            interval: Duration::from_secs(1),
            ttl: Duration::from_secs(30),
            min_spacing: Duration::from_millis(100),
            membership: Some(membership.clone()),
            ..PublisherConfig::new(quic, "http://127.0.0.1:8080")
        },
        store.clone(),
        key.clone(),
        catalog.clone(),
        network,
        cancel.clone(),
    );
    let (placement, _task) = Placement::start(
        PlacementConfig {
            replication: 1,
            tick: Duration::from_millis(300),
            debounce: Duration::from_millis(50),
            membership: Some(membership),
            challenge_segments: 3,
            challenge_timeout: Duration::from_secs(5),
            challenge_valid: Duration::from_secs(60),
            exclusion: Duration::from_secs(3600),
            ..PlacementConfig::default()
        },
        id_of(&key),
        store.clone(),
        catalog.clone(),
        fetcher,
        publisher,
        cancel.clone(),
    );
    Node {
        membership: member,
        id: id_of(&key),
        addr,
        store,
        catalog,
        placement,
        _server: server,
        _dir: dir,
    }
}

/// Node `key` holding a complete (pinned) copy of `lib`, which it knows from its catalog;
/// waits until its placement sees itself responsible.
async fn holder(
    net: &TestNetwork,
    lib: &Library,
    key: SigningKey,
    cancel: &CancellationToken,
) -> Node {
    let h = spawn_node(net, key, vec![], cancel).await;
    for b in lib.bytes.values() {
        h.store.put_segment(b, None).unwrap();
    }
    h.store.put_manifest(&lib.signed).unwrap();
    know_ingest(net, lib, &h).await;
    h.placement.wake();
    wait_for(
        "the holder to be responsible for its copy",
        Duration::from_secs(10),
        || async { h.placement.is_responsible(&lib.manifest).then_some(()) },
    )
    .await;
    h
}

/// A member with the replica role whose record claims a complete copy of `lib` it does not
/// hold, reachable (or not) at `quic`; offered to `to`'s catalog as gossip would deliver it.
async fn lie(net: &TestNetwork, lib: &Library, key: &SigningKey, quic: SocketAddr, to: &Catalog) {
    let cert = net.cert(key, &[RoleName::Replica], false);
    let claim = Held {
        manifest: lib.signed.id(),
        movie: lib.manifest.movie.clone(),
        complete: true,
        ranges: vec![],
    };
    let r = record(key, &cert, quic, vec![claim], true);
    assert_eq!(to.offer_record(r).await.unwrap(), Verdict::Accepted);
}

/// Two liars in turn, each now responsible for an ingest an honest node holds: one serves
/// QUIC from an empty store (every challenged segment is "not found"), the other never
/// answers. Each fails its challenge and is excluded, responsibility comes back to the
/// honest node, and its copy is never released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_claiming_a_copy_it_lacks_fails_the_challenge_and_nothing_is_released() {
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let lib = Library::new();
    let honest_key = gen();
    let honest_id = id_of(&honest_key);
    let h = holder(&net, &lib, honest_key, &cancel).await;

    // Liar 1: a real, enrolled QUIC service with nothing in its store.
    let liar_key = key_above(&lib.ingest(), &honest_id);
    let liar = id_of(&liar_key);
    let liar_cert = net.cert(&liar_key, &[RoleName::Replica], false);
    let liar_membership = net.membership(&liar_key, Some(liar_cert), &cancel).await;
    let liar_dir = tempfile::tempdir().unwrap();
    let (_liar_server, liar_quic) = TransferServer::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        &liar_key,
        Store::open(liar_dir.path()).unwrap(),
        Limits {
            transport: TransportTuning::loopback(),
            ..Limits::default()
        },
        Some(&liar_membership),
        0,
    )
    .unwrap();
    lie(&net, &lib, &liar_key, liar_quic, &h.catalog).await;
    h.placement.wake();

    let (view, took) = wait_for(
        "the honest node to challenge and exclude the liar",
        Duration::from_secs(15),
        || async {
            let v = h.placement.view();
            (v.challenges_failed >= 1 && v.excluded.contains(&liar)).then_some(v)
        },
    )
    .await;
    println!("liar 1 excluded {took:?} after its claim");
    assert_eq!(view.challenges_passed, 0);
    assert_eq!(view.released, 0);
    // Excluded, it takes no share here: the honest node is responsible again.
    wait_for(
        "responsibility to come back to the honest node",
        Duration::from_secs(10),
        || async { h.placement.is_responsible(&lib.manifest).then_some(()) },
    )
    .await;
    // A few more passes: the liar stays out, the copy stays pinned.
    let passes = h.placement.view().passes;
    wait_for("three more passes", Duration::from_secs(10), || async {
        (h.placement.view().passes >= passes + 3).then_some(())
    })
    .await;
    let view = h.placement.view();
    assert_eq!(
        view.challenges_failed, 1,
        "an excluded holder is not asked again"
    );
    assert_eq!(view.released, 0);
    assert!(view.responsible.contains(&lib.ingest()));
    assert!(!h.store.is_released(&lib.manifest).unwrap());

    // Liar 2: claims a copy at a UDP port that never answers (the challenge times out).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let liar2_key = key_above(&lib.ingest(), &honest_id);
    let liar2 = id_of(&liar2_key);
    lie(
        &net,
        &lib,
        &liar2_key,
        silent.local_addr().unwrap(),
        &h.catalog,
    )
    .await;
    h.placement.wake();
    let (_, took) = wait_for(
        "the honest node to exclude the silent liar",
        Duration::from_secs(15),
        || async {
            let v = h.placement.view();
            (v.challenges_failed >= 2 && v.excluded.contains(&liar2)).then_some(())
        },
    )
    .await;
    println!("liar 2 (silent) excluded {took:?} after its claim");
    wait_for(
        "responsibility to come back to the honest node again",
        Duration::from_secs(10),
        || async { h.placement.is_responsible(&lib.manifest).then_some(()) },
    )
    .await;
    let view = h.placement.view();
    assert_eq!(view.released, 0);
    assert_eq!(view.challenges_passed, 0);
    assert!(!h.store.is_released(&lib.manifest).unwrap());
    for hash in lib.bytes.keys() {
        assert!(h.store.has_segment(hash), "the honest copy is whole");
    }
    cancel.cancel();
}

/// An honest node that wins the ingest pulls a copy from the holder over QUIC and
/// advertises it; the holder challenges it, it passes, and the holder releases its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_new_holder_passes_the_challenge_and_the_old_copy_is_released() {
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let lib = Library::new();
    let old_key = gen();
    let old_id = id_of(&old_key);
    let old = holder(&net, &lib, old_key, &cancel).await;

    let new = spawn_node(
        &net,
        key_above(&lib.ingest(), &old_id),
        vec![old.addr.clone()],
        &cancel,
    )
    .await;
    know_ingest(&net, &lib, &new).await;
    new.placement.wake();

    let (view, took) = wait_for(
        "the old holder to release once the new one proved its copy",
        Duration::from_secs(30),
        || async {
            let v = old.placement.view();
            (v.released >= 1).then_some(v)
        },
    )
    .await;
    println!("released {took:?} after the new node started");
    assert!(view.challenges_passed >= 1, "{view:?}");
    assert_eq!(view.challenges_failed, 0, "{view:?}");
    assert!(view.excluded.is_empty());
    assert!(!view.responsible.contains(&lib.ingest()));
    assert!(old.store.is_released(&lib.manifest).unwrap());
    assert!(new.placement.is_responsible(&lib.manifest));
    for hash in lib.bytes.keys() {
        assert!(
            new.store.has_segment(hash),
            "the new holder has every segment"
        );
    }
    assert!(new.catalog.record(old.id).await.unwrap().is_some());
    cancel.cancel();
}
