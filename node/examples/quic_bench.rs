//! Loopback throughput of the QUIC segment service: a `TransferServer` and a `Fetcher` in one
//! process, a store in a temporary directory holding one signed manifest of random segments;
//! the fetcher pulls every segment with C requests in flight (verifying each hash, as in
//! production) and prints MiB/s and Gbit/s per round. Both sides do their real work: the
//! server reads each segment from disk (page cache) and sends it as stored (receivers verify
//! every byte and report a failed check back), the client checks the hash. Release builds
//! only (debug quinn is an order of magnitude slower).
//!
//! Three variants run one after the other in one process, same files, same transport
//! settings, same concurrency, so their figures compare side by side:
//! - `node`: the production path (`TransferServer` + `Fetcher`);
//! - `node+rehash`: the same with the server hashing every segment again before sending
//!   (`Limits::verify_sends`, the behaviour before issue 19.2);
//! - `raw`: quinn alone with the node's TLS and transport settings — a server answering
//!   each stream with the segment's bytes from memory, a client reading and dropping them,
//!   no store, no hashing (what quinn's own `perf` tool measures).
//!
//! `cargo run --release -p reelnet-node --example quic_bench -- [--mib 256] [--segment-mib 2]
//!  [--dir DIR] [--concurrency 16] [--rounds 3] [--mtu 8952] [--mtu-max 16384]
//!  [--only node|node+rehash|raw]`
//!
//! `--dir DIR` uses every regular file in DIR (sorted by name) as one segment instead of
//! random ones, so `scripts/bench-network.sh` can serve the very same files with nginx and
//! compare. `--mtu 1452 --mtu-max 1452` gives the settings used on real links. The last line
//! printed is `best_mib_s=<best round's MiB/s of the node path>` for scripts; before it,
//! `best_<variant>_mib_s=` for each variant run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use rand::RngCore;
use reelnet_node::store::Store;
use reelnet_node::transfer::{
    FetchRequest, Fetcher, FetcherConfig, Limits, TransferServer, TransportTuning,
};
use reelnet_proto::{
    Container, Manifest, MovieId, NodeId, Rendition, SegmentEntry, SegmentRef, SegmentRequest,
    SignedManifest, Track,
};

struct Args {
    mib: u64,
    segment_mib: u64,
    concurrency: usize,
    rounds: usize,
    mtu: u16,
    mtu_max: u16,
    dir: Option<PathBuf>,
    only: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        mib: 256,
        segment_mib: 2,
        concurrency: 16,
        rounds: 3,
        mtu: 8952,
        mtu_max: 16384,
        dir: None,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--mib" => a.mib = value()?.parse()?,
            "--segment-mib" => a.segment_mib = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--mtu" => a.mtu = value()?.parse()?,
            "--mtu-max" => a.mtu_max = value()?.parse()?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--only" => a.only = Some(value()?),
            other => anyhow::bail!("unexpected argument {other} (see the example's doc comment)"),
        }
    }
    anyhow::ensure!(
        a.segment_mib >= 1 && a.segment_mib <= 32,
        "--segment-mib must be 1-32"
    );
    anyhow::ensure!(
        a.mib >= a.segment_mib,
        "--mib must be at least --segment-mib"
    );
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;

    // One track of segments (random, or the files of --dir), signed by an "origin" node.
    let mut segments = Vec::new();
    if let Some(dir) = &args.dir {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        anyhow::ensure!(!files.is_empty(), "no files in {}", dir.display());
        for file in files {
            let bytes = std::fs::read(&file)?;
            let (hash, _) = store.put_segment(&bytes, None)?;
            segments.push(SegmentEntry {
                hash,
                duration_ms: 4000,
                size: u32::try_from(bytes.len())?,
            });
        }
    } else {
        let seg_len = (args.segment_mib << 20) as usize;
        let count = (args.mib / args.segment_mib) as usize;
        let mut rng = rand::thread_rng();
        let mut buf = vec![0u8; seg_len];
        for _ in 0..count {
            rng.fill_bytes(&mut buf);
            let (hash, _) = store.put_segment(&buf, None)?;
            segments.push(SegmentEntry {
                hash,
                duration_ms: 4000,
                size: seg_len as u32,
            });
        }
    }
    let count = segments.len();
    let total: u64 = segments.iter().map(|s| u64::from(s.size)).sum();
    let origin = SigningKey::generate(&mut rand::rngs::OsRng);
    let manifest = Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::from_tmdb(1),
        title: "bench".into(),
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
                name: "1080p".into(),
                width: 1920,
                height: 1080,
                bandwidth: 5_000_000,
                codecs: "avc1.640028".into(),
                frame_rate_milli: 25_000,
            },
            init: None,
            segments: segments.clone(),
        }],
        complete: true,
        meta: Default::default(),
    };
    let manifest_id = store
        .put_manifest(&SignedManifest::sign(&manifest, &origin)?)?
        .id;

    let transport = TransportTuning {
        initial_mtu: args.mtu,
        mtu_upper_bound: args.mtu_max,
        ..TransportTuning::default()
    };
    println!(
        "{:.1} MiB as {count} segments of {:.2} MiB on average, {} in flight, initial MTU {}, \
         MTU bound {}",
        total as f64 / f64::from(1 << 20),
        total as f64 / f64::from(1 << 20) / count as f64,
        args.concurrency,
        args.mtu,
        args.mtu_max
    );
    let variants = ["raw", "node+rehash", "node"];
    let mut node_best = 0f64;
    for variant in variants {
        if args.only.as_deref().is_some_and(|o| o != variant) {
            continue;
        }
        let best = if variant == "raw" {
            let mut payloads = Vec::with_capacity(count);
            for entry in &segments {
                let bytes = store
                    .read_segment(&entry.hash)?
                    .ok_or_else(|| anyhow::anyhow!("segment vanished"))?;
                payloads.push(Bytes::from(bytes));
            }
            run_raw(&args, &transport, payloads).await?
        } else {
            run_node(
                &args,
                &transport,
                &store,
                manifest_id,
                &segments,
                variant == "node+rehash",
            )
            .await?
        };
        println!("best_{variant}_mib_s={best:.1}");
        if variant == "node" {
            node_best = best;
        }
    }
    println!("best_mib_s={node_best:.1}");
    Ok(())
}

/// Prints one round's figure; returns its MiB/s.
fn report(variant: &str, round: usize, bytes: usize, secs: f64) -> f64 {
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "{variant} round {round}: {mib:.0} MiB in {secs:.3} s = {:.1} MiB/s = {:.2} Gbit/s",
        mib / secs,
        bytes as f64 * 8.0 / secs / 1e9
    );
    mib / secs
}

/// The production path: a `TransferServer` over the store and a `Fetcher` verifying.
async fn run_node(
    args: &Args,
    transport: &TransportTuning,
    store: &Store,
    manifest_id: reelnet_proto::ManifestId,
    segments: &[SegmentEntry],
    rehash: bool,
) -> anyhow::Result<f64> {
    let variant = if rehash { "node+rehash" } else { "node" };
    let server_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let server_id = NodeId::from_verifying_key(&server_key.verifying_key());
    let (server, addr) = TransferServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &server_key,
        store.clone(),
        Limits {
            transport: transport.clone(),
            max_streams_per_connection: args.concurrency.max(1) as u32,
            verify_sends: rehash,
            ..Limits::default()
        },
    )?;
    let fetcher = Arc::new(Fetcher::with_config(
        None,
        FetcherConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_inflight_per_peer: args.concurrency.max(1),
            transport: transport.clone(),
            ..FetcherConfig::default()
        },
    )?);
    let providers = Arc::new(vec![(server_id, addr)]);
    let mut best = 0f64;
    for round in 1..=args.rounds {
        let started = Instant::now();
        let results: Vec<anyhow::Result<usize>> =
            futures::stream::iter(segments.iter().enumerate())
                .map(|(i, entry)| {
                    let fetcher = Arc::clone(&fetcher);
                    let providers = Arc::clone(&providers);
                    let want = FetchRequest {
                        request: SegmentRequest {
                            manifest: manifest_id,
                            track: 0,
                            segment: SegmentRef::Index(i as u32),
                        },
                        expected: entry.hash,
                        size: Some(u64::from(entry.size)),
                    };
                    // `fetch_request` has checked the bytes' hash (as in production).
                    async move { Ok(fetcher.fetch_request(&providers, &want).await?.len()) }
                })
                .buffer_unordered(args.concurrency.max(1))
                .collect()
                .await;
        let secs = started.elapsed().as_secs_f64();
        let mut bytes = 0usize;
        for r in results {
            bytes += r?;
        }
        best = best.max(report(variant, round, bytes, secs));
    }
    fetcher.close().await;
    server.shutdown_and_join().await;
    Ok(best)
}

/// quinn alone with the node's TLS and transport settings: each stream carries a 4-byte
/// segment number one way and the segment's bytes (from memory) back; the client drops
/// them. No store, no hashing, no framing.
async fn run_raw(
    args: &Args,
    transport: &TransportTuning,
    payloads: Vec<Bytes>,
) -> anyhow::Result<f64> {
    let count = payloads.len();
    let payloads = Arc::new(payloads);
    let server_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let server_id = NodeId::from_verifying_key(&server_key.verifying_key());
    let limits = Limits {
        transport: transport.clone(),
        max_streams_per_connection: args.concurrency.max(1) as u32,
        ..Limits::default()
    };
    let server_config = reelnet_node::transfer::server::server_config(&server_key, &limits)?;
    let server = quinn::Endpoint::new(
        transport.endpoint_config()?,
        Some(server_config),
        std::net::UdpSocket::bind("127.0.0.1:0")?,
        quinn::default_runtime().ok_or_else(|| anyhow::anyhow!("no runtime"))?,
    )?;
    let addr = server.local_addr()?;
    let serving = {
        let server = server.clone();
        let payloads = Arc::clone(&payloads);
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                let payloads = Arc::clone(&payloads);
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let payloads = Arc::clone(&payloads);
                        tokio::spawn(async move {
                            let Ok(req) = recv.read_to_end(4).await else {
                                return;
                            };
                            let Ok(i) = <[u8; 4]>::try_from(req.as_slice()) else {
                                return;
                            };
                            let Some(bytes) = payloads.get(u32::from_be_bytes(i) as usize) else {
                                return;
                            };
                            let _ = send.write_chunk(bytes.clone()).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        });
                    }
                });
            }
        })
    };
    let client_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(
        reelnet_node::transfer::tls::client_crypto(&client_key)?,
    )?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
    client_config.transport_config(transport.transport_config(0, 0, true)?);
    let client = quinn::Endpoint::new(
        transport.endpoint_config()?,
        None,
        std::net::UdpSocket::bind("127.0.0.1:0")?,
        quinn::default_runtime().ok_or_else(|| anyhow::anyhow!("no runtime"))?,
    )?;
    let conn = client
        .connect_with(
            client_config,
            addr,
            &reelnet_node::transfer::tls::server_name(&server_id),
        )?
        .await?;
    let mut best = 0f64;
    for round in 1..=args.rounds {
        let started = Instant::now();
        let results: Vec<anyhow::Result<usize>> = futures::stream::iter(0..count)
            .map(|i| {
                let conn = conn.clone();
                async move {
                    let (mut send, mut recv) = conn.open_bi().await?;
                    send.write_all(&(i as u32).to_be_bytes()).await?;
                    send.finish()?;
                    let mut got = 0usize;
                    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
                        got += chunk.bytes.len();
                    }
                    Ok(got)
                }
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let secs = started.elapsed().as_secs_f64();
        let mut bytes = 0usize;
        for r in results {
            bytes += r?;
        }
        best = best.max(report("raw", round, bytes, secs));
    }
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    serving.abort();
    Ok(best)
}
