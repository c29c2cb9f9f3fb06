//! Loopback throughput of the QUIC segment service: a `TransferServer` and a `Fetcher` in one
//! process, a store in a temporary directory holding one signed manifest of random segments;
//! the fetcher pulls every segment with C requests in flight (verifying each hash, as in
//! production) and prints MiB/s and Gbit/s per round. Both sides do their real work: the
//! server reads each segment from disk (page cache) and checks its hash, the client checks it
//! again. Release builds only (debug quinn is an order of magnitude slower).
//!
//! `cargo run --release -p reelnet-node --example quic_bench -- [--mib 256] [--segment-mib 2]
//!  [--dir DIR] [--concurrency 16] [--rounds 3] [--mtu 8952] [--mtu-max 16384]`
//!
//! `--dir DIR` uses every regular file in DIR (sorted by name) as one segment instead of
//! random ones, so `scripts/bench-network.sh` can serve the very same files with nginx and
//! compare. `--mtu 1452 --mtu-max 1452` gives the settings used on real links. The last line
//! printed is `best_mib_s=<best round's MiB/s>` for scripts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use rand::RngCore;
use reelnet_node::store::Store;
use reelnet_node::transfer::{
    FetchRequest, Fetcher, FetcherConfig, Limits, TransferServer, TransportTuning,
};
use reelnet_proto::{
    Container, Manifest, MovieId, NodeId, Rendition, SegmentEntry, SegmentHash, SegmentRef,
    SegmentRequest, SignedManifest, Track,
};

struct Args {
    mib: u64,
    segment_mib: u64,
    concurrency: usize,
    rounds: usize,
    mtu: u16,
    mtu_max: u16,
    dir: Option<PathBuf>,
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
    let server_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let server_id = NodeId::from_verifying_key(&server_key.verifying_key());
    let (server, addr) = TransferServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &server_key,
        store,
        Limits {
            transport: transport.clone(),
            max_streams_per_connection: args.concurrency.max(1) as u32,
            ..Limits::default()
        },
    )?;
    let fetcher = Arc::new(Fetcher::with_config(
        None,
        FetcherConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_inflight_per_peer: args.concurrency.max(1),
            transport,
            ..FetcherConfig::default()
        },
    )?);
    let providers = Arc::new(vec![(server_id, addr)]);

    println!(
        "{:.1} MiB as {count} segments of {:.2} MiB on average, {} in flight, initial MTU {}, \
         MTU bound {}",
        total as f64 / f64::from(1 << 20),
        total as f64 / f64::from(1 << 20) / count as f64,
        args.concurrency,
        args.mtu,
        args.mtu_max
    );
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
                    async move {
                        let bytes = fetcher.fetch_request(&providers, &want).await?;
                        anyhow::ensure!(SegmentHash::of(&bytes) == want.expected);
                        Ok(bytes.len())
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
        let mib = bytes as f64 / (1 << 20) as f64;
        best = best.max(mib / secs);
        println!(
            "round {round}: {mib:.0} MiB in {secs:.3} s = {:.1} MiB/s = {:.2} Gbit/s",
            mib / secs,
            bytes as f64 * 8.0 / secs / 1e9
        );
    }
    println!("best_mib_s={best:.1}");
    fetcher.close().await;
    server.shutdown_and_join().await;
    Ok(())
}
