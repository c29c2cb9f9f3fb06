//! Benchmark helper: direct torrent streaming through the real ingest path. How soon is the
//! first segment of every rendition playable, how much of the file had been downloaded by then,
//! and how long do the download and the whole ingest take?
//!
//! Seeds FILE from one librqbit session on 127.0.0.1 (no DHT, trackers, LSD or UPnP; the upload
//! optionally rate-limited), writes its `.torrent`, then runs `reelnet_node::ingest::job::run`
//! with the seeder as the only peer and an `IngestContext` over a temporary data dir (default
//! node settings: the default ladder, fMP4, 4 s segments, preset veryfast). Times count from
//! the start of `run`. Prints a human summary and one `RESULT {json}` line.
//!
//! ```text
//! cargo run --release -p reelnet-node --example ingest_first_segment -- movie.mp4 \
//!     [--upload-limit-mib 8] [--piece-kib 256] [--rungs 1080,720,480,360] [--preset veryfast]
//! ```

use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use librqbit::{CreateTorrentOptions, ListenerOptions, Session, SessionOptions};
use reelnet_node::config::NodeConfig;
use reelnet_node::ingest::job::{self, IngestProgress, IngestRequest, JobState};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Time to the first playable segment while a torrent streams in, over loopback")]
struct Args {
    /// The file to seed (an H.264/AAC movie).
    file: PathBuf,
    /// Seeder upload limit in MiB/s (default: unlimited; also `REELNET_BENCH_UPLOAD_MIB`).
    #[arg(long, env = "REELNET_BENCH_UPLOAD_MIB")]
    upload_limit_mib: Option<f64>,
    /// Piece length in KiB.
    #[arg(long, default_value_t = 256)]
    piece_kib: u32,
    /// Keep only these rung heights of the default ladder (comma separated).
    #[arg(long, value_delimiter = ',')]
    rungs: Vec<u32>,
    /// x264 preset (default: the node's, veryfast).
    #[arg(long)]
    preset: Option<String>,
    /// Where the temporary data dir goes (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = std::fs::canonicalize(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let file_len = std::fs::metadata(&file)?.len();
    let upload_bps = match args.upload_limit_mib {
        Some(mib) if mib > 0.0 => {
            let bps = (mib * 1024.0 * 1024.0).min(f64::from(u32::MAX)) as u32;
            Some(NonZeroU32::new(bps.max(16 * 1024)).context("upload limit")?)
        }
        _ => None,
    };
    let work = match &args.work_dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };

    // Seeder: its own session, listening on loopback only.
    std::fs::create_dir_all(work.path().join("seeder"))?;
    let seed_session = Session::new_with_opts(
        work.path().join("seeder"),
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
    let torrent_path = work.path().join("movie.torrent");
    std::fs::write(
        &torrent_path,
        torrent.as_bytes().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    println!(
        "seeding {} ({file_len} bytes) on {seed_addr} (hashed in {:?}), upload limit {}",
        file.display(),
        t.elapsed(),
        upload_bps.map_or("none".to_owned(), |b| format!(
            "{:.1} MiB/s",
            f64::from(b.get()) / 1048576.0
        )),
    );

    // The ingesting node: default settings over a fresh data dir.
    let mut config = NodeConfig {
        data_dir: work.path().join("node"),
        ..NodeConfig::default()
    };
    config.ingest.public_torrents = false;
    if let Some(p) = &args.preset {
        config.ingest.preset = p.clone();
    }
    if !args.rungs.is_empty() {
        config
            .ingest
            .rungs
            .retain(|r| args.rungs.contains(&r.height));
        if config.ingest.rungs.is_empty() {
            bail!("--rungs keeps no rung of the default ladder");
        }
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let ctx = Arc::new(reelnet_node::ingest_context(&config)?);
    let ladder: Vec<String> = ctx.ladder.rungs.iter().map(|r| r.name.clone()).collect();
    let req = IngestRequest {
        source: torrent_path.to_string_lossy().into_owned(),
        movie: reelnet_node::ingest::meta::MovieFields {
            title: Some("Bench".to_owned()),
            ..Default::default()
        },
        peers: vec![seed_addr],
        ..IngestRequest::default()
    };
    let (tx, mut rx) = watch::channel(IngestProgress::default());
    let cancel = CancellationToken::new();

    let start = Instant::now();
    let run = tokio::spawn(job::run(ctx.clone(), req, tx, cancel.clone()));
    // Watch the progress for the end of the download.
    let mut download_done: Option<Duration> = None;
    loop {
        let (done, ended) = {
            let p = rx.borrow_and_update();
            (
                p.total_bytes > 0 && p.downloaded_bytes >= p.total_bytes,
                matches!(p.state, JobState::Done | JobState::Failed),
            )
        };
        if done && download_done.is_none() {
            download_done = Some(start.elapsed());
        }
        if ended || rx.changed().await.is_err() {
            break;
        }
    }
    let result = run.await?;
    let total = start.elapsed();
    let last = rx.borrow().clone();
    seed_session.stop().await;
    let stored = result.context("ingest failed")?;

    let first_s = last.first_playable_s;
    let first_bytes = last.first_playable_downloaded_bytes;
    println!("ladder: {}", ladder.join(","));
    println!(
        "first playable segment (every rendition): {} s, downloaded then: {} bytes ({:.1} %)",
        first_s.map_or("-".to_owned(), |s| format!("{s:.2}")),
        first_bytes.map_or("-".to_owned(), |b| b.to_string()),
        first_bytes.map_or(0.0, |b| b as f64 * 100.0 / file_len.max(1) as f64)
    );
    println!(
        "download complete: {}",
        download_done.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
    );
    println!(
        "ingest complete: {:.2} s ({} segments per track, {:.1} s of media, {:.2}x realtime), manifest {}",
        total.as_secs_f64(),
        last.segments,
        last.position_s,
        last.duration_s.unwrap_or(last.position_s) / total.as_secs_f64().max(1e-9),
        stored.id
    );
    println!(
        "RESULT {}",
        serde_json::json!({
            "file_bytes": file_len,
            "piece_bytes": args.piece_kib * 1024,
            "upload_limit_bps": upload_bps.map(NonZeroU32::get),
            "ladder": ladder,
            "first_playable_s": first_s,
            "first_playable_downloaded_bytes": first_bytes,
            "download_complete_s": download_done.map(|d| d.as_secs_f64()),
            "ingest_complete_s": total.as_secs_f64(),
            "duration_s": last.duration_s,
            "segments": last.segments,
        })
    );
    Ok(())
}
