//! sled's raw durable-write rate on this machine, the baseline for the tracker's progress
//! writes. Opens a fresh database (same mode as the tracker's store) in a temporary
//! directory under `--dir` (put it on the tracker's filesystem) and measures, each for
//! `--seconds`:
//!
//! * `single`: one insert + one flush per operation, one thread — the cost of a durable
//!   write without group commit;
//! * `batched`: `--batch` inserts, then one flush — the tracker's group-commit pattern at
//!   full batches;
//! * `txn`: `--batch` progress-shaped writes, then one flush — each write is what the
//!   tracker's writer task applies per `PUT progress` (read the old record, then a
//!   transaction over two trees: remove the old history key, insert the new one, insert the
//!   record), so this is the ceiling of the tracker's single writer on this machine;
//! * `single_fsync` / `batched_fsync`: as `single` / `batched`, each flush followed by an
//!   `fdatasync` of sled's log file — the tracker's `[storage] fsync = true` commit, durable
//!   against power loss and not only against a crash of the process.
//!
//! Prints one machine-parsable line per mode on stdout:
//!
//! ```text
//! sled_raw mode=single batch=1 seconds=… ops=… ops_per_s=… flushes_per_s=… p50_ms=… p99_ms=… max_ms=…
//! sled_raw mode=batched batch=64 seconds=… ops=… ops_per_s=… flushes_per_s=… p50_ms=… p99_ms=… max_ms=…
//! sled_raw mode=txn batch=64 seconds=… ops=… ops_per_s=… flushes_per_s=… p50_ms=… p99_ms=… max_ms=… apply_us_per_op=… flush_ms=…
//! ```
//!
//! Latencies are per flush (one insert + flush, or one whole batch + flush).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use sled::transaction::{TransactionError, Transactional};

#[derive(Debug, Parser)]
#[command(about = "sled insert+flush baseline")]
struct Args {
    /// Directory to create the temporary database in (same filesystem as the tracker's).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Duration of each mode, seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Inserts per flush in the batched mode.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Distinct keys written (keys are overwritten in a cycle, like progress records).
    #[arg(long, default_value_t = 6400)]
    keys: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.batch == 0 || args.keys == 0 || args.seconds <= 0.0 {
        bail!("--batch, --keys and --seconds must be positive");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("sled-raw-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a temporary directory in {}", args.dir.display()))?;
    let db_dir = tmp.path().join("db");
    let db = sled::Config::new()
        .path(&db_dir)
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("progress")?;
    let history = db.open_tree("history")?;
    let window = Duration::from_secs_f64(args.seconds);
    let log = std::fs::File::open(db_dir.join("db")).context("opening sled's log file")?;

    let mut seq = 0u64;
    let modes = [
        ("single", 1usize, Shape::Insert, None),
        ("batched", args.batch, Shape::Insert, None),
        ("txn", args.batch, Shape::Progress, None),
        ("single_fsync", 1usize, Shape::Insert, Some(&log)),
        ("batched_fsync", args.batch, Shape::Insert, Some(&log)),
    ];
    for (mode, batch, shape, sync) in modes {
        let trees = (&db, &tree, &history);
        // Brief unmeasured warm-up.
        let warm = Duration::from_millis(300);
        run_mode(trees, shape, batch, sync, warm, args.keys, &mut seq)?;
        let r = run_mode(trees, shape, batch, sync, window, args.keys, &mut seq)?;
        let split = match shape {
            Shape::Insert => String::new(),
            Shape::Progress => format!(
                " apply_us_per_op={:.1} flush_ms={:.3}",
                r.apply_s * 1e6 / r.ops.max(1) as f64,
                r.flush_s * 1e3 / r.latencies_us.len().max(1) as f64
            ),
        };
        println!(
            "sled_raw mode={mode} batch={batch} seconds={:.2} ops={} ops_per_s={:.0} \
             flushes_per_s={:.0} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}{split}",
            r.elapsed,
            r.ops,
            r.ops as f64 / r.elapsed,
            r.latencies_us.len() as f64 / r.elapsed,
            percentile_ms(&r.latencies_us, 50.0),
            percentile_ms(&r.latencies_us, 99.0),
            r.latencies_us.last().map_or(0.0, |&us| us as f64 / 1000.0),
        );
    }
    drop((tree, history));
    drop(db);
    tmp.close()?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One plain insert.
    Insert,
    /// The tracker's progress write: a read, then a two-tree transaction.
    Progress,
}

struct ModeResult {
    elapsed: f64,
    ops: u64,
    /// Sorted, one per flush.
    latencies_us: Vec<u64>,
    /// Time spent applying writes and flushing, seconds.
    apply_s: f64,
    flush_s: f64,
}

fn run_mode(
    (db, tree, history): (&sled::Db, &sled::Tree, &sled::Tree),
    shape: Shape,
    batch: usize,
    sync: Option<&std::fs::File>,
    window: Duration,
    keys: u64,
    seq: &mut u64,
) -> anyhow::Result<ModeResult> {
    let mut latencies_us = Vec::with_capacity(1 << 14);
    let (mut ops, mut apply_s, mut flush_s) = (0u64, 0.0, 0.0);
    let start = Instant::now();
    let until = start + window;
    while Instant::now() < until {
        let t0 = Instant::now();
        for _ in 0..batch {
            *seq += 1;
            // 16-byte user id ++ movie id, like the tracker's progress keys; a ~40-byte value.
            let user = *seq % keys / 50;
            let movie = format!("tmdb-{}", *seq % 50);
            let mut key = Vec::with_capacity(32);
            key.extend_from_slice(&user.to_be_bytes());
            key.extend_from_slice(&[0u8; 8]);
            key.extend_from_slice(movie.as_bytes());
            let mut value = [0u8; 40];
            value[..8].copy_from_slice(&seq.to_le_bytes());
            match shape {
                Shape::Insert => {
                    tree.insert(key, &value[..])?;
                }
                Shape::Progress => progress_write(tree, history, &key, &value, *seq)?,
            }
        }
        let t1 = Instant::now();
        db.flush()?;
        if let Some(log) = sync {
            log.sync_data()?;
        }
        let t2 = Instant::now();
        latencies_us.push((t2 - t0).as_micros() as u64);
        apply_s += (t1 - t0).as_secs_f64();
        flush_s += (t2 - t1).as_secs_f64();
        ops += batch as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Ok(ModeResult {
        elapsed,
        ops,
        latencies_us,
        apply_s,
        flush_s,
    })
}

/// What the tracker's writer does per progress write: read the old record, then remove the
/// old history key, insert the new one and the record in one transaction over two trees.
fn progress_write(
    progress: &sled::Tree,
    history: &sled::Tree,
    key: &[u8],
    value: &[u8],
    seq: u64,
) -> anyhow::Result<()> {
    let hist_key = |stamp: u64| {
        let mut k = key[..16].to_vec();
        k.extend_from_slice(&(u64::MAX - stamp).to_be_bytes());
        k.extend_from_slice(&key[16..]);
        k
    };
    let old_hist = match progress.get(key)? {
        Some(old) => {
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&old[..8]);
            Some(hist_key(u64::from_le_bytes(stamp)))
        }
        None => None,
    };
    let new_hist = hist_key(seq);
    (progress, history)
        .transaction(|(p, h)| {
            if let Some(k) = &old_hist {
                h.remove(k.as_slice())?;
            }
            h.insert(new_hist.as_slice(), &[])?;
            p.insert(key, value)?;
            Ok(())
        })
        .map_err(|e: TransactionError<()>| anyhow::anyhow!("transaction: {e:?}"))?;
    Ok(())
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[idx] as f64 / 1000.0
}
