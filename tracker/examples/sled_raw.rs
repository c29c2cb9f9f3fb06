//! sled's raw durable-write rate on this machine, the baseline for the tracker's progress
//! writes. Opens a fresh database (same mode as the tracker's store) in a temporary
//! directory under `--dir` (put it on the tracker's filesystem) and measures, each for
//! `--seconds`:
//!
//! * `single`: one insert + one flush per operation, one thread — the cost of a durable
//!   write without group commit;
//! * `batched`: `--batch` inserts, then one flush — the tracker's group-commit pattern at
//!   full batches.
//!
//! Prints one machine-parsable line per mode on stdout:
//!
//! ```text
//! sled_raw mode=single batch=1 seconds=… ops=… ops_per_s=… flushes_per_s=… p50_ms=… p99_ms=… max_ms=…
//! sled_raw mode=batched batch=64 seconds=… ops=… ops_per_s=… flushes_per_s=… p50_ms=… p99_ms=… max_ms=…
//! ```
//!
//! Latencies are per flush (one insert + flush, or one whole batch + flush).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

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
    let db = sled::Config::new()
        .path(tmp.path().join("db"))
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("progress")?;
    let window = Duration::from_secs_f64(args.seconds);

    let mut seq = 0u64;
    for (mode, batch) in [("single", 1usize), ("batched", args.batch)] {
        // Brief unmeasured warm-up.
        run_mode(
            &db,
            &tree,
            batch,
            Duration::from_millis(300),
            args.keys,
            &mut seq,
        )?;
        let r = run_mode(&db, &tree, batch, window, args.keys, &mut seq)?;
        println!(
            "sled_raw mode={mode} batch={batch} seconds={:.2} ops={} ops_per_s={:.0} \
             flushes_per_s={:.0} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            r.elapsed,
            r.ops,
            r.ops as f64 / r.elapsed,
            r.latencies_us.len() as f64 / r.elapsed,
            percentile_ms(&r.latencies_us, 50.0),
            percentile_ms(&r.latencies_us, 99.0),
            r.latencies_us.last().map_or(0.0, |&us| us as f64 / 1000.0),
        );
    }
    drop(tree);
    drop(db);
    tmp.close()?;
    Ok(())
}

struct ModeResult {
    elapsed: f64,
    ops: u64,
    /// Sorted, one per flush.
    latencies_us: Vec<u64>,
}

fn run_mode(
    db: &sled::Db,
    tree: &sled::Tree,
    batch: usize,
    window: Duration,
    keys: u64,
    seq: &mut u64,
) -> anyhow::Result<ModeResult> {
    let mut latencies_us = Vec::with_capacity(1 << 14);
    let mut ops = 0u64;
    let start = Instant::now();
    let until = start + window;
    while Instant::now() < until {
        let t0 = Instant::now();
        for _ in 0..batch {
            *seq += 1;
            // 16-byte user id ++ movie id, like the tracker's progress keys; a ~40-byte value.
            let mut key = Vec::with_capacity(32);
            key.extend_from_slice(&(*seq % keys / 50).to_be_bytes());
            key.extend_from_slice(&[0u8; 8]);
            key.extend_from_slice(format!("tmdb-{}", *seq % 50).as_bytes());
            let mut value = [0u8; 40];
            value[..8].copy_from_slice(&seq.to_le_bytes());
            tree.insert(key, &value[..])?;
        }
        db.flush()?;
        latencies_us.push(t0.elapsed().as_micros() as u64);
        ops += batch as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Ok(ModeResult {
        elapsed,
        ops,
        latencies_us,
    })
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
