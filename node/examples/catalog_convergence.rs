//! How fast a catalog record reaches every node.
//!
//! Starts N in-process nodes on loopback (each its own catalog and libp2p swarm), joined in
//! a chain (node i bootstraps from node i-1) or a star (everyone bootstraps from node 0),
//! lets discovery settle, then publishes K new catalog records, one at a time, each from a
//! random node, and measures how long until all N catalogs hold it. Prints p50/p99/max.
//!
//! ```text
//! cargo run --release -p reelnet-node --example catalog_convergence -- \
//!     [--nodes 20] [--records 50] [--topology chain|star] [--settle-secs 3]
//! ```
//!
//! Target: p99 ≤ 2 s.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use rand::Rng;
use reelnet_node::catalog::{Catalog, CatalogConfig};
use reelnet_node::swarm::{self, with_peer, NetworkHandle, SwarmConfig, Topic};
use reelnet_proto::{CatalogRecord, NodeId, SignedCatalogRecord};
use tokio_util::sync::CancellationToken;

struct Node {
    key: SigningKey,
    id: NodeId,
    catalog: Catalog,
    net: NetworkHandle,
    addr: Multiaddr,
}

struct Args {
    nodes: usize,
    records: usize,
    star: bool,
    settle: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        nodes: 20,
        records: 50,
        star: false,
        settle: Duration::from_secs(3),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => a.nodes = value()?.parse()?,
            "--records" => a.records = value()?.parse()?,
            "--topology" => {
                a.star = match value()?.as_str() {
                    "star" => true,
                    "chain" => false,
                    other => bail!("unknown topology {other:?} (chain or star)"),
                }
            }
            "--settle-secs" => a.settle = Duration::from_secs(value()?.parse()?),
            "--help" | "-h" => {
                println!(
                    "catalog_convergence [--nodes N] [--records K] [--topology chain|star] [--settle-secs S]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let cancel = CancellationToken::new();
    let mut nodes: Vec<Node> = Vec::new();
    let start = Instant::now();
    for i in 0..args.nodes {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let (catalog, _) = Catalog::start(CatalogConfig::default(), cancel.clone());
        let bootstrap = match (i, args.star) {
            (0, _) => vec![],
            (_, true) => vec![nodes[0].addr.clone()],
            (_, false) => vec![nodes[i - 1].addr.clone()],
        };
        let config = SwarmConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            bootstrap,
            ..SwarmConfig::default()
        };
        let (net, addrs, _) = swarm::start(config, &key, catalog.clone(), cancel.clone()).await?;
        let addr = with_peer(addrs.first().context("no listen address")?, net.peer_id());
        nodes.push(Node {
            id: NodeId::from_verifying_key(&key.verifying_key()),
            key,
            catalog,
            net,
            addr,
        });
    }
    // Everyone needs a gossip peer before the measurement starts.
    for n in &nodes {
        while n.net.topic_peers(Topic::Catalog).await?.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(args.settle).await;
    let mut peers = Vec::new();
    for n in &nodes {
        peers.push(n.net.peers().await?.len());
    }
    println!(
        "{} nodes ({}) up in {:?}; connections per node: min {} max {} mean {:.1}",
        args.nodes,
        if args.star { "star" } else { "chain" },
        start.elapsed(),
        peers.iter().min().copied().unwrap_or(0),
        peers.iter().max().copied().unwrap_or(0),
        peers.iter().sum::<usize>() as f64 / peers.len() as f64
    );

    let mut times = Vec::with_capacity(args.records);
    for k in 0..args.records {
        let i = rand::thread_rng().gen_range(0..nodes.len());
        let from = &nodes[i];
        let now = reelnet_node::unix_now();
        let seq = k as u64 + 1;
        let record = CatalogRecord {
            node: from.id,
            quic_addr: format!("127.0.0.1:{}", 7000 + i),
            gateway_url: format!("http://127.0.0.1:{}", 8000 + i),
            held: vec![],
            seq,
            issued_at: now,
            expires_at: now + 600,
            replica: true,
            certificate: Vec::new(),
        };
        let signed = SignedCatalogRecord::sign(&record, &from.key)?;
        let t0 = Instant::now();
        from.net.publish_record(signed).await?;
        let mut missing: Vec<usize> = (0..nodes.len()).collect();
        while !missing.is_empty() {
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("record {k} from node {i} did not reach nodes {missing:?} within 30 s");
            }
            let mut still = Vec::new();
            for &j in &missing {
                let has = nodes[j]
                    .catalog
                    .record(from.id)
                    .await?
                    .is_some_and(|r| r.seq == seq);
                if !has {
                    still.push(j);
                }
            }
            missing = still;
            if !missing.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        times.push(t0.elapsed());
    }
    times.sort();
    let p50 = percentile(&times, 0.50);
    let p99 = percentile(&times, 0.99);
    let max = times.last().copied().unwrap_or_default();
    println!(
        "{} records to all {} nodes: p50 {:?}  p99 {:?}  max {:?}  (target p99 <= 2 s: {})",
        times.len(),
        args.nodes,
        p50,
        p99,
        max,
        if p99 <= Duration::from_secs(2) {
            "met"
        } else {
            "MISSED"
        }
    );
    let mut rejected = 0;
    for n in &nodes {
        rejected += n.net.stats().await?.gossip_rejected;
    }
    println!("gossip messages rejected anywhere: {rejected}");
    cancel.cancel();
    Ok(())
}
