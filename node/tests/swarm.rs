//! The libp2p swarm and the catalog index, in process, over real TCP on 127.0.0.1.
//!
//! Each test builds its own small network: node A publishes a manifest and its catalog
//! record; B bootstraps from A's address with `/p2p/<id>`, C from A's address without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use libp2p::Multiaddr;
use reelnet_node::catalog::{Catalog, CatalogConfig, Verdict};
use reelnet_node::swarm::budget::SyncBudget;
use reelnet_node::swarm::{self, with_peer, NetworkHandle, SwarmConfig, Topic};
use reelnet_proto::catalog::SegmentRange;
use reelnet_proto::sign::CATALOG_RECORD_CONTEXT;
use reelnet_proto::{
    CatalogRecord, Container, Held, Manifest, ManifestId, MovieId, NodeId, Rendition, SegmentEntry,
    SegmentHash, SignedCatalogRecord, SignedManifest, Track, MAX_CATALOG_RECORD_BYTES,
};
use tokio_util::sync::CancellationToken;

#[path = "common_membership/mod.rs"]
mod common_membership;
use common_membership::TestNetwork;
use reelnet_node::membership::Membership;
use reelnet_proto::membership::RoleName;

struct TestNode {
    key: SigningKey,
    node: NodeId,
    catalog: Catalog,
    net: NetworkHandle,
    /// Listen address with `/p2p/<id>`.
    addr: Multiaddr,
    /// Listen address without `/p2p`.
    bare: Multiaddr,
}

async fn spawn_node(bootstrap: Vec<Multiaddr>, cancel: &CancellationToken) -> TestNode {
    spawn_with(
        SigningKey::generate(&mut rand::rngs::OsRng),
        bootstrap,
        None,
        cancel,
    )
    .await
}

/// A node with `key`, and with `membership` when it is a member of a test network.
async fn spawn_with(
    key: SigningKey,
    bootstrap: Vec<Multiaddr>,
    membership: Option<Membership>,
    cancel: &CancellationToken,
) -> TestNode {
    spawn_configured(key, bootstrap, membership, |_| {}, cancel).await
}

/// [`spawn_with`], with `tweak` applied to the swarm's config.
async fn spawn_configured(
    key: SigningKey,
    bootstrap: Vec<Multiaddr>,
    membership: Option<Membership>,
    tweak: impl FnOnce(&mut SwarmConfig),
    cancel: &CancellationToken,
) -> TestNode {
    let (catalog, _task) =
        Catalog::start_with(CatalogConfig::default(), membership.clone(), cancel.clone());
    let mut config = SwarmConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap,
        membership,
        ..SwarmConfig::default()
    };
    tweak(&mut config);
    let (net, addrs, _task) = swarm::start(config, &key, catalog.clone(), cancel.clone())
        .await
        .unwrap();
    let bare = addrs[0].clone();
    assert_eq!(
        swarm::peer_id_of(&NodeId::from_verifying_key(&key.verifying_key())).unwrap(),
        net.peer_id()
    );
    assert_eq!(
        swarm::node_id_of(&net.peer_id()),
        Some(NodeId::from_verifying_key(&key.verifying_key()))
    );
    TestNode {
        node: NodeId::from_verifying_key(&key.verifying_key()),
        addr: with_peer(&bare, net.peer_id()),
        bare,
        key,
        catalog,
        net,
    }
}

/// Polls `check` every 20 ms until it is true ([`reelnet_testkit::wait_for_every`]);
/// answers the time it took, or panics after `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let every = Duration::from_millis(20);
    reelnet_testkit::wait_for_every(what, limit, every, || {
        let ready = check();
        async move { ready.await.then_some(()) }
    })
    .await
    .1
}

fn manifest(key: &SigningKey, segments: usize) -> SignedManifest {
    let m = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::from_tmdb(603),
        title: "The Matrix".into(),
        year: Some(1999),
        origin: NodeId::from_verifying_key(&key.verifying_key()),
        ingest_id: [7; 16],
        seq: 1,
        created_at: reelnet_node::unix_now(),
        container: Container::MpegTs,
        target_duration_ms: 4000,
        tracks: vec![Track {
            kind: reelnet_proto::manifest::TrackKind::Video,
            media: None,
            rendition: Rendition {
                name: "360p".into(),
                width: 640,
                height: 360,
                bandwidth: 800_000,
                codecs: "avc1.64001e".into(),
                frame_rate_milli: 25_000,
            },
            init: None,
            segments: (0..segments)
                .map(|i| SegmentEntry {
                    hash: SegmentHash::of(format!("segment {i}").as_bytes()),
                    duration_ms: 4000,
                    size: 1000,
                })
                .collect(),
        }],
        complete: true,
        meta: Default::default(),
    };
    SignedManifest::sign(&m, key).unwrap()
}

fn record(
    node: &TestNode,
    manifest: ManifestId,
    ranges: Vec<SegmentRange>,
    seq: u64,
    ttl: u64,
) -> CatalogRecord {
    let now = reelnet_node::unix_now();
    CatalogRecord {
        node: node.node,
        quic_addr: "127.0.0.1:7400".into(),
        gateway_url: "http://127.0.0.1:8080".into(),
        held: vec![Held {
            manifest,
            movie: MovieId::from_tmdb(603),
            complete: ranges.is_empty(),
            ranges,
        }],
        seq,
        issued_at: now,
        expires_at: now + ttl,
        replica: true,
        certificate: Vec::new(),
    }
}

/// Envelope as proto writes it: varint length, body, 64-byte signature.
fn envelope(body: &[u8], signature: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::new();
    if body.len() < 251 {
        out.push(body.len() as u8);
    } else {
        out.push(251);
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(body);
    out.extend_from_slice(signature);
    out
}

/// Waits until every node in `nodes` sees at least `n` peers on the catalog topic.
async fn wait_meshed(nodes: &[&TestNode], n: usize) {
    for node in nodes {
        wait_for("gossip subscriptions", Duration::from_secs(10), || async {
            node.net.topic_peers(Topic::Catalog).await.unwrap().len() >= n
                && node.net.topic_peers(Topic::Manifests).await.unwrap().len() >= n
        })
        .await;
    }
}

async fn knows(node: &TestNode, id: ManifestId, provider: NodeId, index: u32) -> bool {
    node.catalog.manifest(id).await.unwrap().is_some()
        && node
            .catalog
            .providers(id, 0, index)
            .await
            .unwrap()
            .iter()
            .any(|p| p.node == provider)
}

/// A, B (bootstrap A with /p2p), C (bootstrap A without /p2p), all connected.
async fn three(cancel: &CancellationToken) -> (TestNode, TestNode, TestNode) {
    let a = spawn_node(vec![], cancel).await;
    let b = spawn_node(vec![a.addr.clone()], cancel).await;
    let c = spawn_node(vec![a.bare.clone()], cancel).await;
    wait_meshed(&[&b, &c], 1).await;
    wait_meshed(&[&a], 2).await;
    (a, b, c)
}

/// A publishes a 10-segment manifest and a record holding segments 0..5 of it.
async fn publish(a: &TestNode, seq: u64) -> (SignedManifest, SignedCatalogRecord) {
    let m = manifest(&a.key, 10);
    let r = record(
        a,
        m.id(),
        vec![SegmentRange {
            track: 0,
            start: 0,
            end: 5,
        }],
        seq,
        600,
    );
    let r = SignedCatalogRecord::sign(&r, &a.key).unwrap();
    a.net.publish_manifest(m.clone()).await.unwrap();
    a.net.publish_record(r.clone()).await.unwrap();
    (m, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reaches_every_node() {
    let cancel = CancellationToken::new();
    let (a, b, c) = three(&cancel).await;
    let start = Instant::now();
    let (m, _) = publish(&a, 1).await;
    let id = m.id();
    wait_for("B to learn A's catalog", Duration::from_secs(5), || {
        knows(&b, id, a.node, 3)
    })
    .await;
    let t_b = start.elapsed();
    wait_for("C to learn A's catalog", Duration::from_secs(5), || {
        knows(&c, id, a.node, 3)
    })
    .await;
    let t_c = start.elapsed();
    println!("gossip convergence: B after {t_b:?}, C after {t_c:?}");

    // What the index says.
    for n in [&a, &b, &c] {
        let movies = n.catalog.movies().await.unwrap();
        assert_eq!(movies.len(), 1);
        assert_eq!(movies[0].title, "The Matrix");
        assert_eq!(movies[0].holders, 1);
        assert_eq!(movies[0].manifests[0].id, id);
        assert!((movies[0].manifests[0].available_percent - 50.0).abs() < 0.01);
        // Segment 7 is outside A's range.
        assert!(n.catalog.providers(id, 0, 7).await.unwrap().is_empty());
        let live = n.catalog.live_nodes().await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].node, a.node);
        assert_eq!(live[0].quic_addr, "127.0.0.1:7400".parse().unwrap());
        let got = n.catalog.manifest(id).await.unwrap().unwrap();
        assert_eq!(got.signed.encode(), m.encode());
    }
    let stats = b.net.stats().await.unwrap();
    assert!(stats.gossip_accepted >= 2, "{stats:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_full_catalog_by_sync() {
    let cancel = CancellationToken::new();
    let (a, b, c) = three(&cancel).await;
    let (m, _) = publish(&a, 1).await;
    let id = m.id();
    for n in [&b, &c] {
        wait_for("gossip", Duration::from_secs(5), || knows(n, id, a.node, 0)).await;
    }
    // D arrives after publication and bootstraps from B; nobody publishes anything now.
    let start = Instant::now();
    let d = spawn_node(vec![b.addr.clone()], &cancel).await;
    let took = wait_for("D to sync", Duration::from_secs(5), || {
        knows(&d, id, a.node, 4)
    })
    .await;
    println!(
        "late joiner: full catalog after {took:?} ({:?} including start-up)",
        start.elapsed()
    );
    let stats = d.net.stats().await.unwrap();
    assert_eq!(
        stats.gossip_accepted, 0,
        "D learned by sync, not gossip: {stats:?}"
    );
    assert!(stats.sync_pages_received >= 1, "{stats:?}");
    let snap = d.catalog.snapshot().await.unwrap();
    assert_eq!(snap.records.len(), 1);
    assert_eq!(snap.manifests.len(), 1);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_records_are_rejected_and_penalised() {
    let cancel = CancellationToken::new();
    let (a, b, c) = three(&cancel).await;
    let (m, old) = publish(&a, 1).await;
    let id = m.id();
    // A newer record, so `old` becomes a replay candidate.
    let newer = SignedCatalogRecord::sign(&record(&a, id, vec![], 2, 600), &a.key).unwrap();
    a.net.publish_record(newer.clone()).await.unwrap();
    for n in [&b, &c] {
        wait_for("record seq 2", Duration::from_secs(5), || async {
            n.catalog
                .record(a.node)
                .await
                .unwrap()
                .is_some_and(|r| r.seq == 2)
        })
        .await;
    }
    // M joins through B only.
    let mal = spawn_node(vec![b.addr.clone()], &cancel).await;
    wait_for("M meshed with B", Duration::from_secs(10), || async {
        mal.net
            .topic_peers(Topic::Catalog)
            .await
            .unwrap()
            .contains(&b.net.peer_id())
            && b.net
                .topic_peers(Topic::Catalog)
                .await
                .unwrap()
                .contains(&mal.net.peer_id())
    })
    .await;
    // Past the reordering grace: an older seq now is a replay.
    tokio::time::sleep(CatalogConfig::default().replay_grace + Duration::from_millis(500)).await;
    let before_b = b.catalog.record(a.node).await.unwrap().unwrap();
    let before_c = c.catalog.record(a.node).await.unwrap().unwrap();
    let score_before = b.net.peer_score(mal.net.peer_id()).await.unwrap().unwrap();

    // 1. Replay of A's older record.
    mal.net
        .publish_raw(Topic::Catalog, old.encode())
        .await
        .unwrap();
    // 2. A record claiming to be A (higher seq, another QUIC address) signed by M's key.
    let mut fake = record(&a, id, vec![], 99, 600);
    fake.quic_addr = "127.0.0.1:6666".into();
    let body = reelnet_proto::codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(&fake).unwrap();
    let mut msg = CATALOG_RECORD_CONTEXT.to_vec();
    msg.extend_from_slice(&body);
    let sig = mal.key.sign(&msg).to_bytes();
    let forged = envelope(&body, &sig);
    assert!(SignedCatalogRecord::decode(&forged).is_ok(), "well-formed");
    mal.net.publish_raw(Topic::Catalog, forged).await.unwrap();
    // 3. A's newest record with one bit of the signature flipped.
    let mut flipped = newer.encode();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    mal.net.publish_raw(Topic::Catalog, flipped).await.unwrap();

    wait_for("B to reject", Duration::from_secs(5), || async {
        b.net.stats().await.unwrap().gossip_rejected >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = b.net.stats().await.unwrap();
    let score_after = b.net.peer_score(mal.net.peer_id()).await.unwrap().unwrap();
    println!("B: {stats:?}; M's score {score_before:.2} -> {score_after:.2}");
    assert!(stats.gossip_rejected >= 2, "{stats:?}");
    assert!(
        score_after < score_before && score_after < -10.0,
        "score {score_before} -> {score_after}"
    );
    let cstats = b.catalog.stats().await.unwrap();
    assert!(cstats.replay >= 1 && cstats.invalid >= 1, "{cstats:?}");
    // Nothing changed anywhere. M may have found C through Kademlia and sent to it
    // directly, but no honest node forwarded M's messages: nobody holds it against B or A.
    assert_eq!(b.catalog.record(a.node).await.unwrap().unwrap(), before_b);
    assert_eq!(c.catalog.record(a.node).await.unwrap().unwrap(), before_c);
    for (judge, judged) in [(&a, &b), (&c, &b), (&b, &a), (&c, &a)] {
        let score = judge.net.peer_score(judged.net.peer_id()).await.unwrap();
        assert!(
            score.unwrap_or(0.0) >= 0.0,
            "honest peer penalised: {score:?}"
        );
    }
    if c.net.stats().await.unwrap().gossip_rejected > 0 {
        let score = c.net.peer_score(mal.net.peer_id()).await.unwrap().unwrap();
        assert!(score < -10.0, "C's score of M: {score}");
    }
    let providers = b.catalog.providers(id, 0, 0).await.unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].quic_addr, "127.0.0.1:7400".parse().unwrap());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_leave_the_index() {
    let cancel = CancellationToken::new();
    let (a, b, c) = three(&cancel).await;
    let m = manifest(&a.key, 10);
    let id = m.id();
    a.net.publish_manifest(m).await.unwrap();
    let short = SignedCatalogRecord::sign(&record(&a, id, vec![], 1, 3), &a.key).unwrap();
    a.net.publish_record(short).await.unwrap();
    for n in [&b, &c] {
        wait_for("record", Duration::from_secs(3), || knows(n, id, a.node, 9)).await;
    }
    let gone = wait_for("expiry", Duration::from_secs(6), || async {
        b.catalog.providers(id, 0, 9).await.unwrap().is_empty()
    })
    .await;
    println!("record left B's index {gone:?} after it was seen");
    for n in [&a, &b, &c] {
        wait_for("expiry everywhere", Duration::from_secs(3), || async {
            n.catalog.providers(id, 0, 9).await.unwrap().is_empty()
                && n.catalog.live_nodes().await.unwrap().is_empty()
        })
        .await;
        let movies = n.catalog.movies().await.unwrap();
        assert_eq!(movies[0].holders, 0);
    }
    // A replay of the expired record is not accepted again.
    let verdict = b
        .catalog
        .offer_record(SignedCatalogRecord::sign(&record(&a, id, vec![], 1, 600), &a.key).unwrap())
        .await
        .unwrap();
    assert!(
        matches!(verdict, Verdict::Duplicate),
        "same seq after expiry: {verdict:?}"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_advertises_what_the_store_holds() {
    use reelnet_node::store::Store;
    use reelnet_node::swarm::publisher::{Publisher, PublisherConfig};

    let cancel = CancellationToken::new();
    let (a, b, _c) = three(&cancel).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A 6-segment ingest in progress: segments 0, 1, 2 and 4 are on disk.
    let bytes: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("bytes of {i}").into_bytes())
        .collect();
    let mut m = manifest(&a.key, 1).verify().unwrap();
    m.complete = false;
    m.tracks[0].segments = bytes
        .iter()
        .map(|b| SegmentEntry {
            hash: SegmentHash::of(b),
            duration_ms: 4000,
            size: b.len() as u32,
        })
        .collect();
    let signed = SignedManifest::sign(&m, &a.key).unwrap();
    for i in [0, 1, 2, 4] {
        store.put_segment(&bytes[i], None).unwrap();
    }
    store.put_manifest(&signed).unwrap();
    let config = PublisherConfig::new("127.0.0.1:7400".parse().unwrap(), "http://127.0.0.1:8080");
    let (publisher, _task) = Publisher::start(
        config,
        store.clone(),
        a.key.clone(),
        a.catalog.clone(),
        a.net.clone(),
        cancel.clone(),
    );
    let id = signed.id();
    wait_for(
        "B to see A's published record",
        Duration::from_secs(5),
        || knows(&b, id, a.node, 4),
    )
    .await;
    let rec = b.catalog.record(a.node).await.unwrap().unwrap();
    assert_eq!(
        rec.held[0].ranges,
        vec![
            SegmentRange {
                track: 0,
                start: 0,
                end: 3
            },
            SegmentRange {
                track: 0,
                start: 4,
                end: 5
            }
        ]
    );
    assert!(b.catalog.providers(id, 0, 3).await.unwrap().is_empty());

    // The ingest finishes: a new complete version, announced.
    store.put_segment(&bytes[3], None).unwrap();
    store.put_segment(&bytes[5], None).unwrap();
    m.complete = true;
    m.seq = 2;
    let v2 = SignedManifest::sign(&m, &a.key).unwrap();
    store.put_manifest(&v2).unwrap();
    assert_eq!(
        publisher
            .announce_manifest(v2.id(), v2.clone())
            .await
            .unwrap(),
        Verdict::Accepted
    );
    let id2 = v2.id();
    wait_for(
        "B to see the complete version",
        Duration::from_secs(5),
        || async {
            b.catalog.record(a.node).await.unwrap().is_some_and(|r| {
                r.held.len() == 1 && r.held[0].complete && r.held[0].manifest == id2
            })
        },
    )
    .await;
    assert_eq!(b.catalog.providers(id2, 0, 3).await.unwrap().len(), 1);
    // The old version is superseded in the index; asking by its id still finds providers.
    assert!(b.catalog.manifest(id).await.unwrap().is_none());
    assert_eq!(b.catalog.latest_version(id).await.unwrap().unwrap().id, id2);
    assert_eq!(b.catalog.providers(id, 0, 5).await.unwrap().len(), 1);
    cancel.cancel();
}

/// Only members take part: a stranger's records (no certificate) are rejected and its
/// sync requests refused, an edge member can neither claim a replica share nor originate a
/// manifest, and a revocation list (as it arrives over gossip) makes a node drop the
/// revoked member's record and connection, and pass the list on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_gossip_sync_and_originate() {
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let gen = || SigningKey::generate(&mut rand::rngs::OsRng);
    let (ka, kb, kc, ks) = (gen(), gen(), gen(), gen());
    let cert_a = net.cert(&ka, &[RoleName::Replica, RoleName::Ingest], false);
    let cert_c = net.cert(&kc, &[RoleName::Edge], false);
    let ma = net.membership(&ka, Some(cert_a.clone()), &cancel).await;
    let mb = net
        .membership(
            &kb,
            Some(net.cert(&kb, &[RoleName::Replica], false)),
            &cancel,
        )
        .await;
    let mc = net.membership(&kc, Some(cert_c.clone()), &cancel).await;
    let a = spawn_with(ka, vec![], Some(ma.clone()), &cancel).await;
    let b = spawn_with(kb, vec![a.addr.clone()], Some(mb), &cancel).await;
    let c = spawn_with(kc, vec![a.addr.clone()], Some(mc.clone()), &cancel).await;
    // The stranger: a valid libp2p identity, no certificate, no membership checks of its own.
    let s = spawn_with(ks, vec![a.addr.clone()], None, &cancel).await;
    wait_meshed(&[&b, &c], 1).await;
    wait_meshed(&[&a], 2).await;

    // A member with the ingest role: its manifest and record reach B.
    let m = manifest(&a.key, 10);
    let mut r = record(&a, m.id(), vec![], 1, 600);
    r.certificate = cert_a.encode();
    a.net
        .publish_record(SignedCatalogRecord::sign(&r, &a.key).unwrap())
        .await
        .unwrap();
    a.net.publish_manifest(m.clone()).await.unwrap();
    wait_for("B to learn A's manifest", Duration::from_secs(15), || {
        knows(&b, m.id(), a.node, 3)
    })
    .await;

    // The stranger: its catalog sync request (no certificate) is refused and it is
    // disconnected; whatever it publishes is never accepted.
    wait_for(
        "A to refuse and drop the stranger",
        Duration::from_secs(15),
        || async {
            let stats = a.net.stats().await.unwrap();
            stats.sync_refused >= 1
                && stats.not_member_disconnects >= 1
                && !a.net.peers().await.unwrap().contains(&s.net.peer_id())
        },
    )
    .await;
    let sm = manifest(&s.key, 4);
    let sr = SignedCatalogRecord::sign(&record(&s, sm.id(), vec![], 1, 600), &s.key).unwrap();
    // Offered straight to A's catalog (as if a member forwarded them): refused, ignored.
    assert!(matches!(
        a.catalog.offer_record(sr).await.unwrap(),
        Verdict::NotMember(_)
    ));
    assert_eq!(
        a.catalog.offer_manifest(sm.clone()).await.unwrap(),
        Verdict::UnknownOrigin
    );
    assert!(a.catalog.record(s.node).await.unwrap().is_none());
    assert!(a.catalog.manifest(sm.id()).await.unwrap().is_none());

    // An edge member: a record claiming a replica share is refused; without the claim its
    // record is fine, but its manifest is not (it may not originate movies).
    let cm = manifest(&c.key, 4);
    let mut cr = record(&c, cm.id(), vec![], 1, 600);
    cr.certificate = cert_c.encode();
    let before = a.catalog.stats().await.unwrap().not_member;
    c.net
        .publish_raw(
            Topic::Catalog,
            SignedCatalogRecord::sign(&cr, &c.key).unwrap().encode(),
        )
        .await
        .unwrap();
    wait_for(
        "A to refuse the edge's replica claim",
        Duration::from_secs(15),
        || async { a.catalog.stats().await.unwrap().not_member > before },
    )
    .await;
    assert!(a.catalog.record(c.node).await.unwrap().is_none());
    cr.replica = false;
    cr.seq = 2;
    c.net
        .publish_record(SignedCatalogRecord::sign(&cr, &c.key).unwrap())
        .await
        .unwrap();
    wait_for(
        "A to take the edge's plain record",
        Duration::from_secs(15),
        || async { a.catalog.record(c.node).await.unwrap().is_some() },
    )
    .await;
    let before = a.catalog.stats().await.unwrap().not_member;
    c.net
        .publish_raw(Topic::Manifests, cm.encode())
        .await
        .unwrap();
    wait_for(
        "A to refuse the edge's manifest",
        Duration::from_secs(15),
        || async { a.catalog.stats().await.unwrap().not_member > before },
    )
    .await;
    assert!(a.catalog.manifest(cm.id()).await.unwrap().is_none());

    // Revocation of B, as it would arrive over gossip: A drops B's record and its
    // connection, and passes the list on to C.
    let list = net.revocations(1, &[b.node]);
    assert_eq!(
        ma.offer_revocations(&list.encode()).await,
        Verdict::Accepted
    );
    wait_for(
        "A to drop the revoked node",
        Duration::from_secs(15),
        || async {
            a.catalog.record(b.node).await.unwrap().is_none()
                && !a.net.peers().await.unwrap().contains(&b.net.peer_id())
        },
    )
    .await;
    wait_for(
        "the list to reach C over gossip",
        Duration::from_secs(15),
        || async { mc.state().is_revoked(&b.node) },
    )
    .await;
    cancel.cancel();
}

/// Polls `check` every 2 ms until it is true; panics after 5 s.
async fn until<Fut: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> Fut) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Catalog-sync budgets belong to the peer identity, not the connection: a peer that
/// disconnects and dials again 100 times (asking for a full sync on every connection) gets
/// no more than its budget from an honest node, and the honest node, which asks the peer for
/// its catalog on every connection too, takes no more than the budget from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_budget_survives_reconnects() {
    const BUDGET: u64 = 64 << 10;
    let cancel = CancellationToken::new();
    let net = TestNetwork::new();
    let gen = || SigningKey::generate(&mut rand::rngs::OsRng);
    let (ka, kr) = (gen(), gen());
    let roles = [RoleName::Replica, RoleName::Ingest];
    let (cert_a, cert_r) = (net.cert(&ka, &roles, false), net.cert(&kr, &roles, false));
    let ma = net.membership(&ka, Some(cert_a.clone()), &cancel).await;
    let mr = net.membership(&kr, Some(cert_r.clone()), &cancel).await;
    // The honest node: 64 KiB (and plenty of pages) that never refill during the test.
    let honest = SyncBudget {
        burst_bytes: BUDGET,
        bytes_per_sec: 0,
        burst_pages: 10_000,
        pages_per_min: 0,
        max_peers: 16,
    };
    // The rogue: a member running with no budget of its own.
    let unlimited = SyncBudget {
        burst_bytes: 1 << 50,
        bytes_per_sec: 0,
        burst_pages: u32::MAX,
        pages_per_min: 0,
        max_peers: 16,
    };
    let a = spawn_configured(ka, vec![], Some(ma), |c| c.sync_budget = honest, &cancel).await;
    let r = spawn_configured(kr, vec![], Some(mr), |c| c.sync_budget = unlimited, &cancel).await;

    // Each has a catalog of some size: a 400-segment manifest and its record.
    let mut catalog_bytes = 0;
    for (node, cert) in [(&a, &cert_a), (&r, &cert_r)] {
        let m = manifest(&node.key, 400);
        let mut rec = record(node, m.id(), vec![], 1, 600);
        rec.certificate = cert.encode();
        let rec = SignedCatalogRecord::sign(&rec, &node.key).unwrap();
        catalog_bytes += (m.encode().len() + rec.encode().len()) as u64;
        node.net.publish_record(rec).await.unwrap();
        node.net.publish_manifest(m).await.unwrap();
    }
    // Both catalogs together are more than a third of the budget: without budgets, 100
    // full syncs would be over 30 times the budget.
    assert!(catalog_bytes * 3 > BUDGET, "{catalog_bytes}");

    let (a_id, r_id) = (a.net.peer_id(), r.net.peer_id());
    let started = Instant::now();
    for round in 0..100 {
        let a0 = a.net.stats().await.unwrap();
        // R dials A (again, should a dial race with the last hang-up). A answers (or
        // refuses) R's sync request, and takes R's first page (or, over budget, does not
        // ask).
        until(&format!("round {round}'s syncs"), || async {
            if !r.net.peers().await.unwrap().contains(&a_id) {
                let _ = r.net.dial(a.addr.clone()).await;
            }
            let sa = a.net.stats().await.unwrap();
            sa.sync_pages_served + sa.sync_budget_refused
                > a0.sync_pages_served + a0.sync_budget_refused
                && sa.sync_pages_received + sa.sync_budget_stopped
                    > a0.sync_pages_received + a0.sync_budget_stopped
        })
        .await;
        // Both sides hang up (A may have dialled R too, e.g. when Kademlia learned R anew,
        // so a connection can come up just after one side's hang-up: repeat until none).
        until("the disconnect", || async {
            let _ = r.net.disconnect(a_id).await;
            let _ = a.net.disconnect(r_id).await;
            !a.net.peers().await.unwrap().contains(&r_id)
                && !r.net.peers().await.unwrap().contains(&a_id)
        })
        .await;
    }
    let (sa, sr) = (a.net.stats().await.unwrap(), r.net.stats().await.unwrap());
    println!(
        "100 reconnects in {:?}; catalogs {catalog_bytes} B, budget {BUDGET} B; A: {sa:?}; R: {sr:?}",
        started.elapsed()
    );
    // A page is answered (or asked for) only while the budget lasts, and its bytes are
    // charged after: at most one page (at most both catalogs) over the budget.
    assert!(sa.sync_bytes_served <= BUDGET + catalog_bytes, "{sa:?}");
    assert!(sr.sync_bytes_received <= BUDGET + catalog_bytes, "{sr:?}");
    assert!(sa.sync_bytes_received <= BUDGET + catalog_bytes, "{sa:?}");
    // Most rounds were refused (server side) and not asked for (client side).
    assert!(sa.sync_budget_refused >= 90, "{sa:?}");
    assert!(sa.sync_budget_stopped >= 90, "{sa:?}");
    // The honest node's own requests were never refused by the rogue.
    assert_eq!(sr.sync_budget_refused, 0);
    cancel.cancel();
}

/// The connection limits deny what is over them: a node that takes one connection at most
/// keeps its first peer and denies the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_denied() {
    let cancel = CancellationToken::new();
    let key = || SigningKey::generate(&mut rand::rngs::OsRng);
    let a = spawn_configured(key(), vec![], None, |c| c.max_connections = 1, &cancel).await;
    let b = spawn_node(vec![a.addr.clone()], &cancel).await;
    wait_for("B to connect", Duration::from_secs(5), || async {
        a.net.peers().await.unwrap() == vec![b.net.peer_id()]
    })
    .await;
    let _c = spawn_node(vec![a.addr.clone()], &cancel).await;
    wait_for("A to deny C", Duration::from_secs(5), || async {
        a.net.stats().await.unwrap().connections_denied >= 1
    })
    .await;
    assert_eq!(a.net.peers().await.unwrap(), vec![b.net.peer_id()]);
    cancel.cancel();
}
