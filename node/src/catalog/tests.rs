//! Unit tests of the catalog task through its handle: seq and replay rules, older versions'
//! segments, sync pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use ed25519_dalek::SigningKey;
use reelnet_proto::{Container, Held, Rendition, SegmentEntry, SegmentHash, Track};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn manifest(key: &SigningKey, seq: u64, segments: u32) -> SignedManifest {
    let m = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
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
    // Node 2 holds all of v1 (3 segments); the origin holds v2 fully. (Node 2's record
    // comes while v1 is known: a version no record names is forgotten by the next sweep,
    // which may run at any moment.)
    let other = key(2);
    cat.offer_record(record(&other, 1, vec![complete(&v1)]))
        .await
        .unwrap();
    assert_eq!(
        cat.offer_manifest(v2.clone()).await.unwrap(),
        Verdict::Accepted
    );
    assert_eq!(
        cat.offer_manifest(v1.clone()).await.unwrap(),
        Verdict::Stale
    );
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

/// A player of a growing movie keeps reloading the variant URLs its master playlist gave it,
/// which name the version of that moment: that version still resolves to the newest one
/// after sweeps, though no record names it any more.
#[tokio::test]
async fn a_superseded_version_still_resolves_to_the_newest_after_sweeps() {
    let cancel = CancellationToken::new();
    let config = CatalogConfig {
        sweep_interval: Duration::from_millis(5),
        ..CatalogConfig::default()
    };
    let (cat, _) = Catalog::start(config, cancel.clone());
    let origin = key(1);
    let v1 = manifest(&origin, 1, 3);
    let v2 = manifest(&origin, 2, 6);
    cat.offer_manifest(v1.clone()).await.unwrap();
    cat.offer_record(record(&origin, 1, vec![complete(&v1)]))
        .await
        .unwrap();
    cat.offer_manifest(v2.clone()).await.unwrap();
    cat.offer_record(record(&origin, 2, vec![complete(&v2)]))
        .await
        .unwrap();
    // Many sweeps later (each runs every 5 ms), v1 still leads to v2.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let latest = cat
        .latest_version(v1.id())
        .await
        .unwrap()
        .expect("v1 is remembered");
    assert_eq!(latest.id, v2.id());
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
    use authority::Net;
    use reelnet_proto::membership::RoleName;
    let net = Net::start(CatalogConfig::default()).await;
    let catalog = net.catalog.clone();
    let cert = |k: &SigningKey, roles: &[RoleName]| net.cert(k, roles);
    let signed_record =
        |k: &SigningKey, certificate: Vec<u8>, replica: bool| net.record(k, certificate, replica);

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
    net.cancel.cancel();
}

/// An in-process network for the movie-authority tests: a network key (the tracker's),
/// a catalog with membership checks, and members built on proto (honest or rogue).
mod authority {
    use super::*;
    use reelnet_proto::binding::{Binding, SignedBinding};
    use reelnet_proto::membership::{
        Certificate, NetworkKey, RoleName, Roles, SignedCertificate, Trust,
    };

    pub(super) struct Net {
        pub net_key: SigningKey,
        pub membership: Membership,
        pub catalog: Catalog,
        pub cancel: CancellationToken,
        _dir: tempfile::TempDir,
        version: std::sync::atomic::AtomicU64,
    }

    impl Net {
        pub async fn start(config: CatalogConfig) -> Net {
            let cancel = CancellationToken::new();
            let net_key = key(200);
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
            let mconfig = crate::membership::MembershipConfig {
                trackers: None,
                data_dir: dir.path().to_owned(),
                invite: None,
                origins: vec![],
                allowed: Roles::of(&[RoleName::Replica, RoleName::Ingest, RoleName::Edge]),
                refresh: Duration::from_secs(30),
            };
            let (membership, _t) = crate::membership::Membership::start_with(
                mconfig,
                key(201),
                Some((trust, None)),
                cancel.clone(),
            )
            .await;
            let (catalog, _t) =
                Catalog::start_with(config, Some(membership.clone()), cancel.clone());
            Net {
                net_key,
                membership,
                catalog,
                cancel,
                _dir: dir,
                version: 0.into(),
            }
        }

        /// A certificate for `k` with `roles`, signed by the network key (wire bytes).
        pub fn cert(&self, k: &SigningKey, roles: &[RoleName]) -> Vec<u8> {
            let now = crate::unix_now();
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
                &self.net_key,
            )
            .unwrap()
            .encode()
        }

        /// `k`'s signed catalog record (holding nothing) carrying `certificate`.
        pub fn record(
            &self,
            k: &SigningKey,
            certificate: Vec<u8>,
            replica: bool,
        ) -> SignedCatalogRecord {
            let now = crate::unix_now();
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
        }

        /// Makes `k` an ingest+replica member: its record (with certificate) is accepted.
        pub async fn join(&self, k: &SigningKey) {
            let cert = self.cert(k, &[RoleName::Ingest, RoleName::Replica]);
            let v = self
                .catalog
                .offer_record(self.record(k, cert, true))
                .await
                .unwrap();
            assert_eq!(v, Verdict::Accepted);
        }

        /// The tracker binds `movie` to `m`'s lineage (next version); the catalog has
        /// taken it when this returns.
        pub async fn bind(&self, m: &SignedManifest) -> SignedBinding {
            let version = self
                .version
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            let signed = self.binding(m, version, &self.net_key);
            assert_eq!(
                self.membership.offer_binding(&signed.encode()).await,
                crate::bindings::BindingVerdict::Accepted
            );
            for _ in 0..500 {
                if self.catalog.stats().await.unwrap().bindings_taken
                    == self.membership.bindings().accepted
                {
                    return signed;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("the catalog did not take the binding");
        }

        pub fn binding(&self, m: &SignedManifest, version: u64, by: &SigningKey) -> SignedBinding {
            let man = m.verify().unwrap();
            SignedBinding::sign(
                &Binding {
                    network_id: "t".into(),
                    movie: man.movie.clone(),
                    origin: man.origin,
                    ingest_id: man.ingest_id,
                    manifest: m.id(),
                    version,
                    issued_at: crate::unix_now(),
                    kid: "k".into(),
                },
                by,
            )
            .unwrap()
        }

        pub async fn titles(&self) -> Vec<(String, String, usize)> {
            self.catalog
                .movies()
                .await
                .unwrap()
                .iter()
                .map(|m| (m.movie_id.to_string(), m.title.clone(), m.manifests.len()))
                .collect()
        }
    }

    /// A complete manifest of `movie` by `k`, ingest `ingest`, titled `title`.
    pub(super) fn movie(
        k: &SigningKey,
        movie: &str,
        ingest: u8,
        title: &str,
        created_at: u64,
    ) -> SignedManifest {
        let mut m = manifest(k, 1, 2).verify().unwrap();
        m.movie = MovieId::new(movie).unwrap();
        m.ingest_id = [ingest; 16];
        m.title = title.into();
        m.created_at = created_at;
        m.complete = true;
        SignedManifest::sign(&m, k).unwrap()
    }
}

/// (a) An impostor for a bound movie id: refused and counted; the original keeps its title.
/// An impostor that arrived before the binding is dropped when the binding arrives. Stale
/// and forged bindings change nothing.
#[tokio::test]
async fn an_impostor_for_a_bound_movie_is_ignored() {
    use authority::*;
    let net = Net::start(CatalogConfig::default()).await;
    let (honest, rogue) = (key(1), key(2));
    net.join(&honest).await;
    net.join(&rogue).await;
    let original = movie(&honest, "tmdb-603", 1, "Original", 100);
    assert_eq!(
        net.catalog.offer_manifest(original.clone()).await.unwrap(),
        Verdict::Accepted
    );
    let b1 = net.bind(&original).await;
    // Newer created_at, same id, another lineage: refused.
    let impostor = movie(&rogue, "tmdb-603", 9, "Impostor", 10_000);
    assert!(matches!(
        net.catalog.offer_manifest(impostor.clone()).await.unwrap(),
        Verdict::OtherLineage(_)
    ));
    // Even the rogue's "newer version" of the honest lineage is another lineage (origin).
    let forged_lineage = movie(&rogue, "tmdb-603", 1, "Impostor", 10_000);
    assert!(matches!(
        net.catalog.offer_manifest(forged_lineage).await.unwrap(),
        Verdict::OtherLineage(_)
    ));
    assert_eq!(
        net.titles().await,
        vec![("tmdb-603".to_owned(), "Original".to_owned(), 1)]
    );
    let listed = net.catalog.movies().await.unwrap();
    assert!(listed[0].manifests[0].bound);
    assert!(net.catalog.manifest(impostor.id()).await.unwrap().is_none());

    // Unbound when the impostor came: listed until the binding arrives, then dropped.
    let early_fake = movie(&rogue, "tmdb-604", 3, "Fake", 10_000);
    let real = movie(&honest, "tmdb-604", 4, "Real", 100);
    for m in [&early_fake, &real] {
        assert_eq!(
            net.catalog.offer_manifest(m.clone()).await.unwrap(),
            Verdict::Accepted
        );
    }
    net.bind(&real).await;
    assert!(net
        .catalog
        .manifest(early_fake.id())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        net.titles().await,
        vec![
            ("tmdb-603".to_owned(), "Original".to_owned(), 1),
            ("tmdb-604".to_owned(), "Real".to_owned(), 1)
        ]
    );

    // A stale version, one signed by an unknown key, garbage: ignored with a reason.
    use crate::bindings::BindingVerdict;
    // tmdb-604 is at version 2: a version-1 binding to the fake is stale.
    let stale = net.binding(&early_fake, 1, &net.net_key);
    assert_eq!(
        net.membership.offer_binding(&stale.encode()).await,
        BindingVerdict::Stale
    );
    assert_eq!(
        net.membership.offer_binding(&b1.encode()).await,
        BindingVerdict::Duplicate
    );
    let forged = net.binding(&impostor, 99, &key(66));
    assert!(matches!(
        net.membership.offer_binding(&forged.encode()).await,
        BindingVerdict::Invalid(_)
    ));
    assert!(matches!(
        net.membership.offer_binding(b"garbage").await,
        BindingVerdict::Invalid(_)
    ));
    let stats = net.catalog.stats().await.unwrap();
    assert!(stats.other_lineage >= 3, "{stats:?}");
    assert_eq!(
        net.titles().await[0],
        ("tmdb-603".to_owned(), "Original".to_owned(), 1)
    );
    net.cancel.cancel();
}

/// An admin re-points a movie: the new source is listed; the previous one stays
/// playable (its manifest and providers resolve) for the grace period, then goes.
#[tokio::test]
async fn a_re_pointed_movie_keeps_its_previous_source_for_the_grace_period() {
    use authority::*;
    let net = Net::start(CatalogConfig {
        retired_grace: Duration::from_millis(300),
        sweep_interval: Duration::from_millis(20),
        ..CatalogConfig::default()
    })
    .await;
    let (a, b) = (key(1), key(2));
    net.join(&a).await;
    net.join(&b).await;
    let first = movie(&a, "tmdb-7", 1, "First cut", 100);
    let better = movie(&b, "tmdb-7", 2, "Better cut", 50);
    net.catalog.offer_manifest(first.clone()).await.unwrap();
    net.bind(&first).await;
    assert!(matches!(
        net.catalog.offer_manifest(better.clone()).await.unwrap(),
        Verdict::OtherLineage(_)
    ));
    // The re-point's new source came before the binding did (its origin gossips it once):
    // it waited, and is taken in when the binding arrives.
    net.bind(&better).await;
    assert_eq!(
        net.titles().await,
        vec![("tmdb-7".to_owned(), "Better cut".to_owned(), 1)]
    );
    // A viewer in the middle of the first cut still resolves it.
    assert!(net.catalog.manifest(first.id()).await.unwrap().is_some());
    // After the grace period it is gone.
    let mut gone = false;
    for _ in 0..500 {
        if net.catalog.manifest(first.id()).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the retired source was never forgotten");
    assert!(net.catalog.manifest(better.id()).await.unwrap().is_some());
    net.cancel.cancel();
}

/// (c) Floods: 10 000 manifests from one member, then 100 from each of 100 members. The
/// catalog stays within its budget and the honest, bound movies stay listed.
#[tokio::test]
async fn floods_stay_within_the_catalog_budget() {
    use authority::*;
    let config = CatalogConfig {
        budget_bytes: 2 << 20,
        max_manifests_per_origin: 500,
        max_bytes_per_origin: 1 << 20,
        ..CatalogConfig::default()
    };
    let budget = config.budget_bytes;
    let net = Net::start(config).await;
    let honest = key(1);
    net.join(&honest).await;
    let mut originals = Vec::new();
    // 50 bound movies: more than an equal share of the budget among 101 origins, so a
    // "largest origin pays" rule alone would trim them.
    for i in 0..50u8 {
        let m = movie(
            &honest,
            &format!("tmdb-{}", 100 + u32::from(i)),
            i,
            "Honest",
            100,
        );
        net.catalog.offer_manifest(m.clone()).await.unwrap();
        net.bind(&m).await;
        originals.push(m);
    }
    let one = key(2);
    net.join(&one).await;
    for i in 0..10_000u32 {
        let m = movie(&one, &format!("tmdb-{}", 1000 + i), 7, "Flood", 10_000);
        net.catalog.offer_manifest(m).await.unwrap();
    }
    let stats = net.catalog.stats().await.unwrap();
    assert!(stats.bytes <= budget, "{} > {budget}", stats.bytes);
    assert!(stats.manifests <= 50 + 500, "{stats:?}");
    assert!(stats.evicted >= 9_000, "{stats:?}");
    for n in 0..100u8 {
        let k = SigningKey::from_bytes(&[
            n.wrapping_add(30),
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
        ]);
        net.join(&k).await;
        for i in 0..100u32 {
            let m = movie(
                &k,
                &format!("tmdb-{}", 50_000 + u32::from(n) * 100 + i),
                7,
                "Sybil",
                10_000,
            );
            net.catalog.offer_manifest(m).await.unwrap();
        }
    }
    let stats = net.catalog.stats().await.unwrap();
    assert!(stats.bytes <= budget, "{} > {budget}", stats.bytes);
    let listed = net.catalog.movies().await.unwrap();
    for m in &originals {
        let id = m.verify().unwrap().movie;
        let entry = listed.iter().find(|x| x.movie_id == id);
        assert!(
            entry.is_some_and(|e| e.title == "Honest" && e.manifests[0].id == m.id()),
            "{id} is still listed"
        );
    }
    net.cancel.cancel();
}
