//! Benchmark helper: how soon is a torrent's file readable through `TorrentInput`'s URL,
//! compared with how long the whole download takes?
//!
//! Seeds FILE from one librqbit session on 127.0.0.1 (no DHT, trackers, LSD or UPnP), opens
//! its magnet link (the seeder given as `x.pe`) with `TorrentInput`, and measures from the
//! start of `open`: metadata + setup, the first 1 MiB read through the URL, and the end of the
//! download. Prints a human summary and one `RESULT {json}` line.
//!
//! ```text
//! cargo run --release -p reelnet-node --example torrent_first_bytes -- movie.mkv \
//!     [--upload-limit-mib 8] [--piece-kib 256] [--first-bytes 1048576]
//! ```

use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use librqbit::{CreateTorrentOptions, ListenerOptions, Session, SessionOptions};
use reelnet_node::ingest::torrent::{TorrentInput, TorrentOptions, TorrentSpec};

#[derive(Parser)]
#[command(about = "Time to first bytes vs. time to full download over a loopback swarm")]
struct Args {
    /// The file to seed (e.g. a movie).
    file: PathBuf,
    /// Seeder upload limit in MiB/s (default: unlimited).
    #[arg(long)]
    upload_limit_mib: Option<f64>,
    /// Piece length in KiB (librqbit's default is 2048).
    #[arg(long, default_value_t = 256)]
    piece_kib: u32,
    /// How many bytes count as "first bytes".
    #[arg(long, default_value_t = 1024 * 1024)]
    first_bytes: u64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = std::fs::canonicalize(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let upload_bps = match args.upload_limit_mib {
        Some(mib) if mib > 0.0 => {
            let bps = (mib * 1024.0 * 1024.0).min(f64::from(u32::MAX)) as u32;
            Some(NonZeroU32::new(bps.max(16 * 1024)).context("upload limit")?)
        }
        _ => None,
    };
    let work = tempfile::tempdir()?;

    // Seeder: its own session, listening on loopback only.
    let seed_session = Session::new_with_opts(
        file.parent().context("file has no parent")?.to_owned(),
        SessionOptions {
            dht: None,
            disable_trackers: true,
            disable_local_service_discovery: true,
            listen: Some(ListenerOptions {
                listen_addr: (Ipv4Addr::LOCALHOST, 0).into(),
                enable_upnp_port_forwarding: false,
                ..Default::default()
            }),
            ratelimits: librqbit::limits::LimitsConfig {
                upload_bps,
                download_bps: None,
            },
            ..Default::default()
        },
    )
    .await?;
    let seed_addr = seed_session
        .listen_addr()
        .context("seeder has no listen address")?;
    let t = Instant::now();
    let (torrent, seed_handle) = seed_session
        .create_and_serve_torrent(
            &file,
            CreateTorrentOptions {
                piece_length: Some(args.piece_kib * 1024),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    seed_handle.wait_until_completed().await?;
    let seed_ready = t.elapsed();
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&x.pe={seed_addr}",
        torrent.info_hash().as_string()
    );
    println!(
        "seeding {} on {seed_addr} (hashed in {seed_ready:?}), upload limit {}",
        file.display(),
        upload_bps.map_or("none".to_owned(), |b| format!(
            "{:.1} MiB/s",
            f64::from(b.get()) / 1048576.0
        )),
    );

    // Leecher.
    let start = Instant::now();
    let input = TorrentInput::open(
        TorrentSpec::Magnet(magnet),
        TorrentOptions {
            download_dir: work.path().join("dl"),
            metadata_timeout: Duration::from_secs(30),
            ..TorrentOptions::default()
        },
    )
    .await?;
    let opened = start.elapsed();
    let len = input.file_len();
    let want = args.first_bytes.min(len);

    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut resp = client
        .get(input.url())
        .header("Range", format!("bytes=0-{}", want.saturating_sub(1)))
        .send()
        .await?
        .error_for_status()?;
    let mut got = 0u64;
    let mut first_chunk = None;
    while let Some(chunk) = resp.chunk().await? {
        first_chunk.get_or_insert_with(|| start.elapsed());
        got += chunk.len() as u64;
    }
    let first_bytes = start.elapsed();
    if got != want {
        bail!("read {got} bytes, expected {want}");
    }
    let progress_at_first = input.progress();

    input.wait_until_finished().await?;
    let complete = start.elapsed();
    input.shutdown().await;
    seed_session.stop().await;

    println!("file: {} ({len} bytes)", input_name(&file));
    println!("open (metadata, file pick, setup): {opened:?}");
    println!(
        "first chunk: {:?}; first {want} bytes: {first_bytes:?} (downloaded then: {} bytes)",
        first_chunk.unwrap_or_default(),
        progress_at_first.downloaded_bytes
    );
    println!("download complete: {complete:?}");
    println!(
        "RESULT {}",
        serde_json::json!({
            "file_bytes": len,
            "piece_bytes": args.piece_kib * 1024,
            "upload_limit_bps": upload_bps.map(NonZeroU32::get),
            "open_ms": opened.as_secs_f64() * 1e3,
            "first_chunk_ms": first_chunk.unwrap_or_default().as_secs_f64() * 1e3,
            "first_bytes": want,
            "first_bytes_ms": first_bytes.as_secs_f64() * 1e3,
            "downloaded_at_first_bytes": progress_at_first.downloaded_bytes,
            "complete_ms": complete.as_secs_f64() * 1e3,
        })
    );
    Ok(())
}

fn input_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
