//! Load client for the tracker's durable progress writes (`PUT /api/v1/me/progress/{id}`).
//!
//! Registers and signs in `--users` accounts (once each, before timing), then runs
//! `--clients` concurrent tasks, each on its own keep-alive connection, that PUT progress in
//! a loop for `--seconds` (after `--warmup` seconds that are not counted). Every answer is
//! acknowledged only after the tracker's group-commit flush, so a 200 is a durable write.
//!
//! Prints one machine-parsable line on stdout:
//!
//! ```text
//! progress_writes clients=64 users=64 seconds=10.00 ok=… errors=… writes_per_s=… p50_ms=… p90_ms=… p99_ms=… max_ms=…
//! ```
//!
//! With `--server-pid`, the line also has the tracker's, the client's and the whole
//! machine's CPU use over the window (`server_cpu_cores=…` is CPU seconds per second; on a
//! shared machine, machine - server - client shows other load that skews the figures). `--op get|healthz` swaps the
//! write for an authenticated read or a bare health check, to see where the time goes.
//! `max_gap_ms` is the longest stretch of the window in which no client's request was
//! answered 200: a failover's outage, measured from the last acknowledged write before it
//! to the first after.
//!
//! Run with `scripts/bench-tracker.sh`, or by hand against a running tracker:
//! `cargo run --release -p reelnet-tracker --example progress_load -- --url http://127.0.0.1:7070`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "Durable progress-write load client for reelnet-tracker")]
struct Args {
    /// Base URL of the tracker; several replicas of one tracker comma-separated: client i
    /// starts on replica i % n and moves to the next one when its own cannot be reached
    /// (as a node does).
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    url: String,
    /// Concurrent clients (one task and one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured warm-up before the measured window, seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Accounts to register and sign in; client i writes as user i % users.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Distinct movies each client cycles through.
    #[arg(long, default_value_t = 50)]
    movies: u64,
    /// Worker threads of the client's runtime (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// What each request does: `put` (the durable progress write being measured), or, to
    /// see where time goes, `get` (authenticated read of the same record, no write) or
    /// `healthz` (bare HTTP, no auth, no store).
    #[arg(long, value_enum, default_value_t = Op::Put)]
    op: Op,
    /// The tracker's process id (Linux): also report its CPU use over the measured window.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Op {
    Put,
    Get,
    Healthz,
}

const PASSWORD: &str = "bench-password-0123";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.users == 0 || args.movies == 0 {
        bail!("--clients, --users and --movies must be at least 1");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    rt.build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bases: Vec<String> = args
        .url
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let Some(base) = bases.first().cloned() else {
        bail!("--url is empty");
    };
    let tokens = sign_in_users(&base, args.users).await?;
    eprintln!(
        "progress_load: {} users signed in; {} clients, {:.1} s warm-up + {:.1} s measured",
        tokens.len(),
        args.clients,
        args.warmup,
        args.seconds
    );

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(args.seconds);
    let cpu = tokio::spawn(cpu_over_window(
        args.server_pid,
        measure_from,
        measure_until,
    ));
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let token = tokens[i % tokens.len()].clone();
        let client = http_client()?;
        let mut own = bases.clone();
        own.rotate_left(i % bases.len());
        let (movies, op) = (args.movies, args.op);
        tasks.push(tokio::spawn(async move {
            let window = (measure_from, measure_until);
            client_loop(client, own, token, i as u64, movies, op, window).await
        }));
    }
    let mut latencies_us: Vec<u64> = Vec::new();
    let mut acked_at: Vec<Instant> = Vec::new();
    let mut errors = 0u64;
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let stats = task.await??;
        latencies_us.extend(stats.latencies_us);
        acked_at.extend(stats.acked_at);
        errors += stats.errors;
        for (k, v) in stats.statuses {
            *statuses.entry(k).or_default() += v;
        }
    }
    if !statuses.is_empty() {
        eprintln!("progress_load: errors by kind: {statuses:?}");
    }

    latencies_us.sort_unstable();
    acked_at.sort_unstable();
    let max_gap_ms = std::iter::once(measure_from)
        .chain(acked_at.iter().copied())
        .chain(std::iter::once(measure_until))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]).as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    let ok = latencies_us.len() as u64;
    let secs = args.seconds;
    let rate = ok as f64 / secs;
    let (name, rate_key) = match args.op {
        Op::Put => ("progress_writes", "writes_per_s"),
        Op::Get => ("progress_reads", "requests_per_s"),
        Op::Healthz => ("healthz_requests", "requests_per_s"),
    };
    let mut line = format!(
        "{name} clients={} users={} seconds={secs:.2} ok={ok} errors={errors} {rate_key}={rate:.0} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} max_gap_ms={max_gap_ms:.0} replicas={}",
        args.clients,
        tokens.len(),
        percentile_ms(&latencies_us, 50.0),
        percentile_ms(&latencies_us, 90.0),
        percentile_ms(&latencies_us, 99.0),
        latencies_us.last().map_or(0.0, |&us| us as f64 / 1000.0),
        bases.len(),
    );
    if let Some(cpu) = cpu.await? {
        // CPU seconds per wall second: 1.0 is one core busy. `machine` counts every process
        // (and the kernel), so machine - server - client is what else ran meanwhile.
        line.push_str(&format!(
            " server_cpu_cores={:.2} client_cpu_cores={:.2} machine_cpu_cores={:.2}",
            cpu.server_s / secs,
            cpu.client_s / secs,
            cpu.machine_s / secs
        ));
        if ok > 0 {
            line.push_str(&format!(
                " server_cpu_us_per_req={:.0}",
                cpu.server_s * 1e6 / ok as f64
            ));
        }
    }
    println!("{line}");
    Ok(())
}

struct CpuUse {
    server_s: f64,
    client_s: f64,
    machine_s: f64,
}

/// CPU seconds (user + system, all threads) used by `pid`, by this process and by the
/// whole machine between `from` and `until`, from /proc (Linux; `None` elsewhere or
/// without a pid).
async fn cpu_over_window(pid: Option<u32>, from: Instant, until: Instant) -> Option<CpuUse> {
    let pid = pid?.to_string();
    tokio::time::sleep_until(from.into()).await;
    let start = (cpu_secs(&pid)?, cpu_secs("self")?, machine_busy_secs()?);
    tokio::time::sleep_until(until.into()).await;
    let end = (cpu_secs(&pid)?, cpu_secs("self")?, machine_busy_secs()?);
    Some(CpuUse {
        server_s: end.0 - start.0,
        client_s: end.1 - start.1,
        machine_s: end.2 - start.2,
    })
}

/// Busy CPU time of the whole machine (all but idle and iowait), seconds, from /proc/stat.
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    if ticks.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];
    Some(busy / 100.0)
}

/// utime + stime of a process from /proc/<pid>/stat, seconds (USER_HZ is 100 on Linux).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
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

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()?)
}

/// Registers `n` fresh accounts and signs each in once; returns their access tokens.
async fn sign_in_users(base: &str, n: usize) -> anyhow::Result<Vec<String>> {
    // Unique per run, so a reused data directory does not collide on emails.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let client = http_client()?;
    let mut tokens = Vec::with_capacity(n);
    // Registration and login hash passwords (argon2): a few at a time is plenty.
    for chunk_start in (0..n).step_by(8) {
        let mut set = tokio::task::JoinSet::new();
        for i in chunk_start..(chunk_start + 8).min(n) {
            let client = client.clone();
            let base = base.to_owned();
            let email = format!("bench-{run_id}-{i}@example.invalid");
            set.spawn(async move { register_and_login(&client, &base, &email, i).await });
        }
        while let Some(res) = set.join_next().await {
            tokens.push(res??);
        }
    }
    Ok(tokens)
}

async fn register_and_login(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    i: usize,
) -> anyhow::Result<String> {
    let res = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(
            &json!({ "email": email, "password": PASSWORD, "display_name": format!("bench {i}") }),
        )
        .send()
        .await
        .with_context(|| format!("registering {email} at {base}"))?;
    let status = res.status();
    // 201 from older trackers; 202 since registration answers the same for a new and an
    // existing address (the account exists either way; login does not need the mail).
    if !matches!(status.as_u16(), 201 | 202) {
        bail!("register {email}: HTTP {status}: {}", res.text().await?);
    }
    let res = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .with_context(|| format!("signing in {email}"))?;
    let status = res.status();
    if status.as_u16() != 200 {
        bail!("login {email}: HTTP {status}: {}", res.text().await?);
    }
    let body: Value = res.json().await?;
    body.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("login answer has no access_token")
}

struct ClientStats {
    latencies_us: Vec<u64>,
    /// When each write in the window was answered 200.
    acked_at: Vec<Instant>,
    errors: u64,
    statuses: BTreeMap<String, u64>,
}

async fn client_loop(
    client: reqwest::Client,
    bases: Vec<String>,
    token: String,
    id: u64,
    movies: u64,
    op: Op,
    (measure_from, measure_until): (Instant, Instant),
) -> anyhow::Result<ClientStats> {
    let auth = format!("Bearer {token}");
    let duration_s = 7200.0;
    let mut stats = ClientStats {
        latencies_us: Vec::with_capacity(1 << 14),
        acked_at: Vec::with_capacity(1 << 14),
        errors: 0,
        statuses: BTreeMap::new(),
    };
    let first_movie = 1 + id * movies;
    let mut at = 0usize;
    let mut base = bases[0].clone();
    if op == Op::Get {
        // Something to read: one progress record, written before the window.
        let res = client
            .put(format!("{base}/api/v1/me/progress/tmdb-{first_movie}"))
            .header("authorization", &auth)
            .json(&json!({ "position_s": 60.0, "duration_s": duration_s }))
            .send()
            .await?;
        if res.status().as_u16() != 200 {
            bail!("seeding progress: HTTP {}", res.status());
        }
    }
    let mut n: u64 = 0;
    loop {
        let sent = Instant::now();
        if sent >= measure_until {
            break;
        }
        let req = match op {
            Op::Put => {
                // Each client walks its own movies; positions grow as a player's would.
                let movie = first_movie + n % movies;
                let position_s = ((n / movies) as f64 * 10.0) % 7000.0;
                client
                    .put(format!("{base}/api/v1/me/progress/tmdb-{movie}"))
                    .header("authorization", &auth)
                    .json(&json!({ "position_s": position_s, "duration_s": duration_s }))
            }
            Op::Get => client
                .get(format!("{base}/api/v1/me/progress/tmdb-{first_movie}"))
                .header("authorization", &auth),
            Op::Healthz => client.get(format!("{base}/healthz")),
        };
        n += 1;
        let outcome = match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                // Read the body so the connection is reused.
                match res.bytes().await {
                    Ok(_) if status == 200 => Ok(()),
                    Ok(_) => Err(format!("http {status}")),
                    Err(e) => Err(format!("body: {}", error_kind(&e))),
                }
            }
            Err(e) => {
                if e.is_connect() {
                    // This replica is gone: go on through the next.
                    at = (at + 1) % bases.len();
                    base = bases[at].clone();
                }
                Err(error_kind(&e))
            }
        };
        if outcome.is_err() {
            // Do not spin on a failing tracker.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = Instant::now();
        if sent < measure_from || done > measure_until {
            continue;
        }
        match outcome {
            Ok(()) => {
                stats
                    .latencies_us
                    .push(done.duration_since(sent).as_micros() as u64);
                stats.acked_at.push(done);
            }
            Err(kind) => {
                stats.errors += 1;
                *stats.statuses.entry(kind).or_default() += 1;
            }
        }
    }
    Ok(stats)
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}
