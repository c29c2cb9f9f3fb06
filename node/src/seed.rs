//! `reelnet-node seed`: a small local torrent seeder, so a testnet (or a demo) can ingest
//! movies "from a torrent" without the public BitTorrent network.
//!
//! One librqbit session with no DHT, no trackers and no local service discovery, listening
//! on one address (loopback by default), makes a `.torrent` for each file and serves it until
//! Ctrl-C/SIGTERM. The `.torrent` files are written (temp file + rename) only once the
//! session serves them, so a script may wait for the files to appear and then run
//! `reelnet-node ingest FILE.torrent --peer ADDR`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use librqbit::{CreateTorrentOptions, ListenerOptions, Session, SessionOptions};

/// Flags of `reelnet-node seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The files to seed (one torrent each).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where the seeder listens for peers (TCP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6881")]
    pub listen: SocketAddr,
    /// Where to write the `.torrent` files (default: beside each file).
    #[arg(long, value_name = "DIR")]
    pub torrent_dir: Option<PathBuf>,
    /// Piece length in KiB (small pieces let a streaming ingest start sooner).
    #[arg(long, value_name = "KIB", default_value_t = 256)]
    pub piece_kib: u32,
    /// Upload limit in KiB/s for the whole seeder (default: unlimited). A slow seed shows
    /// a movie being watched while it is still downloading, and lets tests stop an ingest
    /// half-way.
    #[arg(long, value_name = "KIB_PER_S")]
    pub upload_kibps: Option<u32>,
}

/// Where the `.torrent` for `file` goes: `<dir>/<file name>.torrent`.
pub fn torrent_path(file: &Path, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let name = file
        .file_name()
        .with_context(|| format!("{} has no file name", file.display()))?;
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => file
            .parent()
            .with_context(|| format!("{} has no parent directory", file.display()))?
            .to_owned(),
    };
    let mut name = name.to_owned();
    name.push(".torrent");
    Ok(dir.join(name))
}

/// `--upload-kibps` as librqbit's limit in bytes per second.
fn upload_bps(kibps: Option<u32>) -> anyhow::Result<Option<std::num::NonZeroU32>> {
    let Some(k) = kibps else { return Ok(None) };
    let bps = k
        .checked_mul(1024)
        .and_then(std::num::NonZeroU32::new)
        .context("--upload-kibps must be from 1 to 4194303")?;
    Ok(Some(bps))
}

/// Seeds every file until `stop` resolves; prints each `.torrent` path on stdout.
pub async fn run(
    args: SeedArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if !(16..=16 * 1024).contains(&args.piece_kib) || !args.piece_kib.is_power_of_two() {
        bail!("--piece-kib must be a power of two from 16 to 16384");
    }
    let mut files = Vec::with_capacity(args.files.len());
    for f in &args.files {
        let abs =
            std::fs::canonicalize(f).with_context(|| format!("cannot open {}", f.display()))?;
        if !abs.is_file() {
            bail!("{} is not a regular file", f.display());
        }
        files.push(abs);
    }
    if let Some(dir) = &args.torrent_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the torrent directory {}", dir.display()))?;
    }
    // The session's default download folder is never written to (no persistence, and each
    // torrent is served from its own file's directory).
    let state = files[0]
        .parent()
        .context("the file has no parent directory")?
        .to_owned();
    let session = Session::new_with_opts(
        state,
        SessionOptions {
            dht: None,
            disable_trackers: true,
            disable_local_service_discovery: true,
            listen: Some(ListenerOptions {
                listen_addr: args.listen,
                enable_upnp_port_forwarding: false,
                ..ListenerOptions::default()
            }),
            ratelimits: librqbit::limits::LimitsConfig {
                upload_bps: upload_bps(args.upload_kibps)?,
                download_bps: None,
            },
            ..SessionOptions::default()
        },
    )
    .await
    .with_context(|| format!("starting the seeder on {}", args.listen))?;
    let addr = session
        .listen_addr()
        .with_context(|| format!("the seeder could not listen on {}", args.listen))?;

    for file in &files {
        let (torrent, handle) = session
            .create_and_serve_torrent(
                file,
                CreateTorrentOptions {
                    piece_length: Some(args.piece_kib * 1024),
                    ..CreateTorrentOptions::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot make a torrent of {}: {e}", file.display()))?;
        handle
            .wait_until_completed()
            .await
            .with_context(|| format!("checking {} before seeding it", file.display()))?;
        let bytes = torrent
            .as_bytes()
            .with_context(|| format!("encoding the torrent of {}", file.display()))?;
        let out = torrent_path(file, args.torrent_dir.as_deref())?;
        let tmp = out.with_extension("torrent.tmp");
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
        tracing::info!(
            file = %file.display(),
            torrent = %out.display(),
            info_hash = %torrent.info_hash().as_string(),
            "seeding"
        );
        println!("{}", out.display());
    }
    eprintln!(
        "seeding {} file(s) on {addr}; ingest with `reelnet-node ingest FILE.torrent --peer {addr}`; Ctrl-C stops",
        files.len()
    );
    stop.await;
    session.stop().await;
    Ok(())
}
