//! Unit tests of the catalog task through its handle: seq and replay rules, older versions'
//! segments, sync pages.

#![allow(clippy::unwrap_used)]

use super::*;
use ed25519_dalek::SigningKey;
use reelnet_proto::{Container, Held, Rendition, SegmentEntry, SegmentHash, Track};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn manifest(key: &SigningKey, seq: u64, segments: u32) -> SignedManifest {
    let m = Manifest {
        version: 1,
        movie: MovieId::from_tmdb(1),
        title: "T".into(),
        year: None,
        origin: crate::identity::node_id(key),
        ingest_id: [1; 16],
        seq,
        created_at: seq,
        container: Container::MpegTs,
        target_duration_ms: 4000,
        tracks: vec![Track {
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
                    hash: SegmentHash::of(&i.to_le_bytes()),
                    duration_ms: 4000,
                    size: 10,
                })
                .collect(),
        }],
        complete: false,
        meta: Default::default(),
    };
    SignedManifest::sign(&m, key).unwrap()
}

fn record(key: &SigningKey, seq: u64, held: Vec<Held>) -> SignedCatalogRecord {
    let now = crate::unix_now();
    let r = CatalogRecord {
        node: crate::identity::node_id(key),
        quic_addr: "127.0.0.1:7400".into(),
        gateway_url: "http://127.0.0.1:8080".into(),
        held,
        seq,
        issued_at: now,
        expires_at: now + 60,
        replica: true,
        certificate: Vec::new(),
    };
    SignedCatalogRecord::sign(&r, key).unwrap()
}

fn complete(m: &SignedManifest) -> Held {
    Held {
        manifest: m.id(),
        movie: MovieId::from_tmdb(1),
        complete: true,
        ranges: vec![],
    }
}

#[tokio::test]
async fn seq_rules_and_replay_grace() {
    let cancel = CancellationToken::new();
    let config = CatalogConfig {
        replay_grace: Duration::from_millis(100),
        ..CatalogConfig::default()
    };
    let (cat, _) = Catalog::start(config, cancel.clone());
    let k = key(1);
    assert_eq!(
        cat.offer_record(record(&k, 5, vec![])).await.unwrap(),
        Verdict::Accepted
    );
    assert_eq!(
        cat.offer_record(record(&k, 5, vec![])).await.unwrap(),
        Verdict::Duplicate
    );
    assert_eq!(
        cat.offer_record(record(&k, 4, vec![])).await.unwrap(),
        Verdict::Stale
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        cat.offer_record(record(&k, 3, vec![])).await.unwrap(),
        Verdict::Replay
    );
    assert!(matches!(
        cat.offer_record_bytes(b"garbage").await.unwrap(),
        Verdict::Invalid(_)
    ));
    assert_eq!(
        cat.record(crate::identity::node_id(&k))
            .await
            .unwrap()
            .unwrap()
            .seq,
        5
    );
    cancel.cancel();
}

#[tokio::test]
async fn older_versions_still_count_for_their_segments() {
    let cancel = CancellationToken::new();
    let (cat, _) = Catalog::start(CatalogConfig::default(), cancel.clone());
    let origin = key(1);
    let v1 = manifest(&origin, 1, 3);
    let v2 = manifest(&origin, 2, 6);
    assert_eq!(
        cat.offer_manifest(v1.clone()).await.unwrap(),
        Verdict::Accepted
    );
    assert_eq!(
        cat.offer_manifest(v2.clone()).await.unwrap(),
        Verdict::Accepted
    );
    assert_eq!(
        cat.offer_manifest(v1.clone()).await.unwrap(),
        Verdict::Stale
    );
    // Node 2 holds all of v1 (3 segments); the origin holds v2 fully.
    let other = key(2);
    cat.offer_record(record(&other, 1, vec![complete(&v1)]))
        .await
        .unwrap();
    cat.offer_record(record(&origin, 1, vec![complete(&v2)]))
        .await
        .unwrap();
    assert_eq!(cat.providers(v2.id(), 0, 2).await.unwrap().len(), 2);
    assert_eq!(cat.providers(v2.id(), 0, 4).await.unwrap().len(), 1);
    let movies = cat.movies().await.unwrap();
    assert_eq!(movies.len(), 1);
    assert_eq!(movies[0].manifests.len(), 1);
    assert_eq!(movies[0].holders, 2);
    assert_eq!(movies[0].manifests[0].complete_holders, 1);
    cancel.cancel();
}

#[tokio::test]
async fn sync_pages_cover_everything_once() {
    let cancel = CancellationToken::new();
    let (cat, _) = Catalog::start(CatalogConfig::default(), cancel.clone());
    for n in 1..=5u8 {
        let k = key(n);
        let m = manifest(&k, 1, 50);
        cat.offer_manifest(m.clone()).await.unwrap();
        cat.offer_record(record(&k, 1, vec![complete(&m)]))
            .await
            .unwrap();
    }
    let (mut records, mut manifests, mut pages) = (0, 0, 0);
    let mut after = None;
    loop {
        // Tiny pages: one item each.
        let page = cat.sync_page(after, 1).await.unwrap();
        pages += 1;
        records += page.records.len();
        manifests += page.manifests.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!((records, manifests, pages), (5, 5, 10));
    let all = cat.sync_page(None, usize::MAX).await.unwrap();
    assert_eq!(
        (all.records.len(), all.manifests.len(), all.next),
        (5, 5, None)
    );
    cancel.cancel();
}

/// With membership checks, a manifest validated before its origin's record (gossip topics
/// are validated separately) waits and is taken in when the record arrives; a manifest of
/// an origin without the ingest role is refused.
#[tokio::test]
async fn a_manifest_before_its_origins_record_is_taken_in_when_the_record_arrives() {
    use reelnet_proto::membership::{
        Certificate, NetworkKey, RoleName, Roles, SignedCertificate, Trust,
    };
    let cancel = CancellationToken::new();
    let net_key = key(50);
    let trust = Trust {
        network_id: "t".into(),
        keys: vec![NetworkKey {
            kid: "k".into(),
            public: net_key.verifying_key(),
            not_after: None,
        }],
        ..Trust::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = crate::membership::MembershipConfig {
        tracker_url: None,
        data_dir: dir.path().to_owned(),
        invite: None,
        origins: vec![],
        allowed: Roles::of(&[RoleName::Replica, RoleName::Ingest, RoleName::Edge]),
        refresh: Duration::from_secs(30),
    };
    let (m, _t) = crate::membership::Membership::start_with(
        config,
        key(51),
        Some((trust, None)),
        cancel.clone(),
    )
    .await;
    let (catalog, _t) = Catalog::start_with(CatalogConfig::default(), Some(m), cancel.clone());
    let now = crate::unix_now();
    let cert = |k: &SigningKey, roles: &[RoleName]| {
        SignedCertificate::sign(
            &Certificate {
                network_id: "t".into(),
                node: crate::identity::node_id(k),
                roles: Roles::of(roles),
                open: false,
                origins: vec![],
                issued_at: now - 1,
                not_after: now + 600,
                serial: 1,
                kid: "k".into(),
            },
            &net_key,
        )
        .unwrap()
        .encode()
    };
    let signed_record = |k: &SigningKey, certificate: Vec<u8>, replica: bool| {
        let r = CatalogRecord {
            node: crate::identity::node_id(k),
            quic_addr: "127.0.0.1:7400".into(),
            gateway_url: "http://127.0.0.1:8080".into(),
            held: vec![],
            seq: 1,
            issued_at: now,
            expires_at: now + 60,
            replica,
            certificate,
        };
        SignedCatalogRecord::sign(&r, k).unwrap()
    };

    let origin = key(52);
    let m1 = manifest(&origin, 1, 3);
    assert_eq!(
        catalog.offer_manifest(m1.clone()).await.unwrap(),
        Verdict::UnknownOrigin
    );
    assert!(catalog.manifest(m1.id()).await.unwrap().is_none());
    let r = signed_record(
        &origin,
        cert(&origin, &[RoleName::Ingest, RoleName::Replica]),
        true,
    );
    assert_eq!(catalog.offer_record(r).await.unwrap(), Verdict::Accepted);
    assert!(
        catalog.manifest(m1.id()).await.unwrap().is_some(),
        "the waiting manifest was taken in"
    );

    // An edge origin: its record is fine without a replica claim, its manifest is not.
    let edge = key(53);
    let r = signed_record(&edge, cert(&edge, &[RoleName::Edge]), false);
    assert_eq!(catalog.offer_record(r).await.unwrap(), Verdict::Accepted);
    let r = signed_record(&edge, cert(&edge, &[RoleName::Edge]), true);
    assert!(matches!(
        catalog.offer_record(r).await.unwrap(),
        Verdict::NotMember(_)
    ));
    assert!(matches!(
        catalog.offer_manifest(manifest(&edge, 1, 2)).await.unwrap(),
        Verdict::NotMember(_)
    ));
    // No certificate, or one signed by another key: refused.
    let stranger = key(54);
    assert!(matches!(
        catalog
            .offer_record(signed_record(&stranger, vec![], false))
            .await
            .unwrap(),
        Verdict::NotMember(_)
    ));
    // A flood of manifests from unknown origins cannot grow the waiting room: the oldest
    // go first, so an early one is not taken in when its origin's record arrives.
    let early = key(60);
    let m_early = manifest(&early, 1, 2);
    catalog.offer_manifest(m_early.clone()).await.unwrap();
    for n in 0..70u8 {
        let flood = manifest(&SigningKey::from_bytes(&[n.wrapping_add(100); 32]), 1, 2);
        assert_eq!(
            catalog.offer_manifest(flood).await.unwrap(),
            Verdict::UnknownOrigin
        );
    }
    let r = signed_record(&early, cert(&early, &[RoleName::Ingest]), false);
    assert_eq!(catalog.offer_record(r).await.unwrap(), Verdict::Accepted);
    assert!(catalog.manifest(m_early.id()).await.unwrap().is_none());
    let mut forged = cert(&stranger, &[RoleName::Ingest]);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        catalog
            .offer_record(signed_record(&stranger, forged, false))
            .await
            .unwrap(),
        Verdict::NotMember(_)
    ));
    cancel.cancel();
}
