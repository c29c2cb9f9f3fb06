//! What membership costs, measured in one process (release builds):
//!
//! 1. **Enrollment on loopback**: a real tracker (`reelnet_tracker::Tracker::bind`, its
//!    own data directory) and, N times, a fresh node key enrolling through
//!    `Membership::start` with an invite made by the operator path — from start to holding
//!    a verified certificate (fetch the network document, prove possession, get the
//!    certificate, verify it). Prints the median and the slowest.
//! 2. **Catalog gossip validation**: the same R signed records (R nodes, each with its
//!    certificate in the record) offered to a catalog without membership checks and to
//!    one with them, as the gossip validator does (`offer_record_bytes`: decode, verify the
//!    record's signature, and with membership the certificate's). Records/s, before and
//!    after.
//! 3. **QUIC connection set-up**: C fresh fetchers each connecting to one segment service
//!    and fetching one small segment, without and with membership (the certificate
//!    extension parsed and checked on both sides). Median ms, before and after.
//!
//! `cargo run --release -p reelnet-node --example membership_bench -- [--enroll 20]
//!  [--records 20000] [--connections 50]`. `scripts/bench-membership.sh` runs it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reelnet_node::catalog::{Catalog, CatalogConfig, Verdict};
use reelnet_node::membership::{Membership, MembershipConfig};
use reelnet_node::store::Store;
use reelnet_node::transfer::{Fetcher, FetcherConfig, Limits, TransferServer, TransportTuning};
use reelnet_proto::membership::{
    Certificate, NetworkKey, RoleName, Roles, SignedCertificate, Trust,
};
use reelnet_proto::{
    CatalogRecord, Container, Held, Manifest, MovieId, NodeId, Rendition, SegmentEntry,
    SegmentHash, SegmentRef, SignedCatalogRecord, SignedManifest, Track,
};
use tokio_util::sync::CancellationToken;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], *v.last().unwrap_or(&Duration::ZERO))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Net {
    key: SigningKey,
}

impl Net {
    fn trust(&self) -> Trust {
        Trust {
            network_id: "bench".into(),
            keys: vec![NetworkKey {
                kid: "k1".into(),
                public: self.key.verifying_key(),
                not_after: None,
            }],
            ..Trust::default()
        }
    }

    fn cert(&self, node: &SigningKey) -> anyhow::Result<SignedCertificate> {
        let now = reelnet_node::unix_now();
        Ok(SignedCertificate::sign(
            &Certificate {
                network_id: "bench".into(),
                node: NodeId::from_verifying_key(&node.verifying_key()),
                roles: Roles::of(&[RoleName::Replica, RoleName::Ingest]),
                open: false,
                origins: vec!["https://node.example.org".into()],
                issued_at: now,
                not_after: now + 3600,
                serial: 1,
                kid: "k1".into(),
            },
            &self.key,
        )?)
    }

    async fn membership(
        &self,
        node: &SigningKey,
        dir: &std::path::Path,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Membership> {
        let config = MembershipConfig {
            trackers: None,
            data_dir: dir.to_owned(),
            invite: None,
            origins: vec![],
            allowed: Roles::of(&[RoleName::Replica, RoleName::Ingest, RoleName::Edge]),
            refresh: Duration::from_secs(30),
        };
        let (m, _) = Membership::start_with(
            config,
            node.clone(),
            Some((self.trust(), Some(self.cert(node)?))),
            cancel.clone(),
        )
        .await;
        Ok(m)
    }
}

async fn enrollment(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = reelnet_tracker::config::TrackerConfig {
        data_dir: dir.path().join("tracker"),
        listen: "127.0.0.1:0".parse()?,
        ..reelnet_tracker::config::TrackerConfig::default()
    };
    let tracker = reelnet_tracker::Tracker::bind(config.clone()).await?;
    let url = format!("http://{}", tracker.addr());
    let mut times = Vec::new();
    for i in 0..n {
        let made = reelnet_tracker::operator::run(
            &config,
            reelnet_tracker::operator::NodeCommand::Invite(
                reelnet_tracker::network::InviteRequest {
                    roles: vec![RoleName::Replica],
                    uses: Some(1),
                    ttl_secs: Some(600),
                },
            ),
        )
        .await?;
        let reelnet_tracker::operator::NodeOutput::Invite(invite) = made else {
            anyhow::bail!("no invite");
        };
        let node_dir = dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&node_dir)?;
        let mut mc = MembershipConfig::new(&url, &node_dir);
        mc.invite = Some(invite.token);
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let cancel = CancellationToken::new();
        let t0 = Instant::now();
        let (m, task) = Membership::start(mc, key, cancel.clone()).await;
        let took = t0.elapsed();
        anyhow::ensure!(m.own().is_some(), "not enrolled: {:?}", m.state().problem);
        times.push(took);
        cancel.cancel();
        let _ = task.await;
    }
    let (p50, max) = median(times);
    println!(
        "enrollment on loopback ({n} nodes): median {:.2} ms, slowest {:.2} ms",
        ms(p50),
        ms(max)
    );
    tracker.shutdown();
    tracker.join().await;
    Ok(())
}

async fn gossip(records: usize) -> anyhow::Result<()> {
    let net = Net {
        key: SigningKey::generate(&mut rand::rngs::OsRng),
    };
    let now = reelnet_node::unix_now();
    let mut encoded = Vec::with_capacity(records);
    for i in 0..records {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let record = CatalogRecord {
            node: NodeId::from_verifying_key(&key.verifying_key()),
            quic_addr: "192.0.2.1:7400".into(),
            gateway_url: "https://node.example.org".into(),
            held: vec![Held {
                manifest: reelnet_proto::ManifestId([(i % 251) as u8; 32]),
                movie: MovieId::from_tmdb(603),
                complete: true,
                ranges: vec![],
            }],
            seq: 1,
            issued_at: now,
            expires_at: now + 600,
            replica: true,
            certificate: net.cert(&key)?.encode(),
        };
        encoded.push(SignedCatalogRecord::sign(&record, &key)?.encode());
    }
    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let own = SigningKey::generate(&mut rand::rngs::OsRng);
    let membership = net.membership(&own, dir.path(), &cancel).await?;
    let mut rates = Vec::new();
    for (label, m) in [
        ("without membership", None),
        ("with membership", Some(membership)),
    ] {
        let (catalog, _task) = Catalog::start_with(CatalogConfig::default(), m, cancel.clone());
        let t0 = Instant::now();
        for bytes in &encoded {
            let v = catalog.offer_record_bytes(bytes).await?;
            anyhow::ensure!(v == Verdict::Accepted, "{label}: {v:?}");
        }
        let rate = records as f64 / t0.elapsed().as_secs_f64();
        println!("catalog records validated {label}: {rate:.0} records/s");
        rates.push(rate);
    }
    println!(
        "gossip validation with certificates: {:.2} x the rate without",
        rates[1] / rates[0]
    );
    cancel.cancel();
    Ok(())
}

async fn quic(connections: usize) -> anyhow::Result<()> {
    let net = Net {
        key: SigningKey::generate(&mut rand::rngs::OsRng),
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
    let origin = SigningKey::generate(&mut rand::rngs::OsRng);
    let bytes = vec![7u8; 16 * 1024];
    let hash = SegmentHash::of(&bytes);
    let manifest = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::from_tmdb(603),
        title: "Bench".into(),
        year: None,
        origin: NodeId::from_verifying_key(&origin.verifying_key()),
        ingest_id: [1; 16],
        seq: 1,
        created_at: 0,
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
            segments: vec![SegmentEntry {
                hash,
                duration_ms: 4000,
                size: bytes.len() as u32,
            }],
        }],
        complete: true,
        meta: Default::default(),
    };
    let signed = SignedManifest::sign(&manifest, &origin)?;
    store.put_manifest(&signed)?;
    store.put_segment(&bytes, None)?;
    let cancel = CancellationToken::new();
    let server_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let server_member = net.membership(&server_key, dir.path(), &cancel).await?;
    let limits = Limits {
        transport: TransportTuning::loopback(),
        ..Limits::default()
    };
    let mut medians = Vec::new();
    for with in [false, true] {
        let (server, addr): (TransferServer, SocketAddr) = TransferServer::bind_with(
            "127.0.0.1:0".parse()?,
            &server_key,
            store.clone(),
            limits.clone(),
            with.then_some(&server_member),
            0,
        )?;
        let node = NodeId::from_verifying_key(&server_key.verifying_key());
        let mut times = Vec::new();
        for _ in 0..connections {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let m = if with {
                Some(net.membership(&key, dir.path(), &cancel).await?)
            } else {
                None
            };
            let fetcher = Fetcher::with_membership(
                Some(&key),
                FetcherConfig {
                    bind: "127.0.0.1:0".parse()?,
                    transport: TransportTuning::loopback(),
                    ..FetcherConfig::default()
                },
                m.as_ref(),
            )?;
            let t0 = Instant::now();
            fetcher
                .fetch(&[(node, addr)], signed.id(), 0, SegmentRef::Index(0), hash)
                .await?;
            times.push(t0.elapsed());
            fetcher.close().await;
        }
        let (p50, max) = median(times);
        println!(
            "QUIC connect + first 16 KiB segment {}: median {:.2} ms, slowest {:.2} ms ({connections} connections)",
            if with { "with membership" } else { "without membership" },
            ms(p50),
            ms(max)
        );
        medians.push(p50);
        server.shutdown_and_join().await;
    }
    println!(
        "QUIC set-up with membership checks: +{:.2} ms per connection",
        ms(medians[1]) - ms(medians[0])
    );
    cancel.cancel();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    enrollment(arg("--enroll", 20)).await?;
    gossip(arg("--records", 20_000)).await?;
    quic(arg("--connections", 50)).await?;
    Ok(())
}
