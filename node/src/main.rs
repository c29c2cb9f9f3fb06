//! `reelnet-node`: parses flags, loads the config, and either runs the node (waiting for
//! Ctrl-C/SIGTERM) or runs one command such as `ingest`.

// warp's nested filter types exceed the default limit in release builds.
#![recursion_limit = "256"]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use reelnet_node::config::NodeConfig;
use reelnet_node::ingest::job::{IngestProgress, IngestRequest};
use reelnet_node::ingest::progress;
use reelnet_node::{admin, Node};
use reelnet_runtime::{shutdown, Shutdown, Stage};

mod seed;

/// A reelnet node: keeps a slice of the movie library, shares it with other nodes, and serves
/// the web app.
#[derive(Debug, Parser)]
#[command(name = "reelnet-node", version, about)]
struct Cli {
    /// TOML config file (see configs/node.toml); flags below override it.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Data directory (key, segments, indexes). Overrides `data_dir`.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// HTTP address of the gateway. Overrides `gateway.listen`.
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<SocketAddr>,
    /// Public URL of the gateway. Overrides `gateway.public_url`.
    #[arg(long, value_name = "URL", global = true)]
    public_url: Option<String>,
    /// libp2p listen multiaddr. Overrides `p2p.listen`.
    #[arg(long, value_name = "ADDR", global = true)]
    p2p: Option<String>,
    /// UDP address of the QUIC segment service. Overrides `quic.listen`.
    #[arg(long, value_name = "ADDR", global = true)]
    quic: Option<SocketAddr>,
    /// Tracker base URL, or the URLs of its replicas separated by commas (tried in
    /// order). Overrides `tracker.url`.
    #[arg(long, value_name = "URL[,URL...]", global = true)]
    tracker: Option<String>,
    /// Peer to join through (repeatable). Added to `p2p.bootstrap`.
    #[arg(long, value_name = "MULTIADDR", global = true)]
    bootstrap: Vec<String>,
    /// Directory of the built web app. Overrides `gateway.web_dir`.
    #[arg(long, value_name = "DIR", global = true)]
    web_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    /// Invite token from the network's operator; used once to enroll (overrides
    /// `tracker.invite`).
    #[arg(long, value_name = "TOKEN", global = true)]
    invite: Option<String>,
    /// Run as an edge node: take no share of the library, serve every movie from peers
    /// and keep only a cache (sets `storage.replica = false`).
    #[arg(long, global = true)]
    edge: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node (the default).
    Run,
    /// Ingest a movie: a video file, a .torrent file or a magnet link. Hands the job to the
    /// node running on this data directory when there is one; otherwise ingests directly.
    Ingest(IngestArgs),
    /// Seed local files over BitTorrent (no DHT or trackers): writes a .torrent for each
    /// file, prints their paths, and seeds until Ctrl-C/SIGTERM.
    Seed(seed::SeedArgs),
    /// Check that the node answers: GET /healthz on its gateway (`gateway.listen`, loopback
    /// when it listens on every address) and exit 0 on 200, 1 otherwise. For container
    /// health checks and service monitors.
    Health(HealthArgs),
    /// Who may use this node's console views besides network admins: accounts kept in
    /// `<data_dir>/operators.json` (works while the node runs).
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Lets the account with this email use the node's console (once signed in on it).
    Add { email: String },
    /// Takes the console away from this account.
    Remove { email: String },
    /// Prints the operators, one email a line.
    List,
}

fn operator(config: &NodeConfig, cmd: OperatorCommand) -> anyhow::Result<()> {
    use reelnet_node::operators;
    let dir = &config.data_dir;
    reelnet_runtime::fs::create_private_dir(dir)
        .with_context(|| format!("data directory {}", dir.display()))?;
    match cmd {
        OperatorCommand::Add { email } => {
            if operators::add(dir, &email)? {
                println!("{email} may now use this node's console");
            } else {
                println!("{email} was already an operator");
            }
        }
        OperatorCommand::Remove { email } => {
            if operators::remove(dir, &email)? {
                println!("{email} is no longer an operator");
            } else {
                println!("{email} was not an operator");
            }
        }
        OperatorCommand::List => {
            for e in operators::load(dir)?.emails {
                println!("{e}");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// URL to check instead of the gateway's `/healthz`.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct IngestArgs {
    #[command(flatten)]
    req: IngestRequest,
    /// Ingest in this process even if a node runs on the data directory.
    #[arg(long)]
    direct: bool,
}

impl Cli {
    fn config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::load(path)?,
            None => NodeConfig::default(),
        };
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = self.listen {
            config.gateway.listen = v;
        }
        if let Some(v) = &self.public_url {
            config.gateway.public_url = Some(v.clone());
        }
        if let Some(v) = &self.p2p {
            config.p2p.listen = v.clone();
        }
        if let Some(v) = self.quic {
            config.quic.listen = v;
        }
        if let Some(v) = &self.tracker {
            config.tracker.url = reelnet_node::config::TrackerUrls(
                v.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if let Some(v) = &self.web_dir {
            config.gateway.web_dir = Some(v.clone());
        }
        config.p2p.bootstrap.extend(self.bootstrap.iter().cloned());
        if let Some(v) = &self.invite {
            config.tracker.invite = v.clone();
        }
        if self.edge {
            config.storage.replica = false;
        }
        let source = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("(command-line flags)"));
        config.validate(&source)?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let stop = shutdown::signal();
    reelnet_runtime::logging::init(cli.log_json);
    let config = cli.config()?;
    match cli.command {
        None | Some(Command::Run) => {
            let public_url = config.public_url();
            let scheme = if config.gateway.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let node = Node::bind(config).await.context("starting the node")?;
            println!(
                "reelnet-node {} listening: gateway {scheme}://{} ({public_url})",
                node.node_id(),
                node.gateway_addr()
            );
            stop.await;
            node.shutdown();
            node.join().await;
            Ok(())
        }
        Some(Command::Ingest(args)) => ingest(config, args, stop).await,
        Some(Command::Seed(args)) => seed::run(args, stop).await,
        Some(Command::Health(args)) => health(&config, args).await,
        Some(Command::Operator(cmd)) => operator(&config, cmd),
    }
}

/// `reelnet-node health`: exit 0 when the gateway's `/healthz` answers 200.
async fn health(config: &NodeConfig, args: HealthArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .unwrap_or_else(|| reelnet_runtime::health::local_url(config.gateway.listen));
    reelnet_runtime::health::check(&url, Duration::from_secs(args.timeout.max(1))).await?;
    println!("ok: {url}");
    Ok(())
}

async fn ingest(
    config: NodeConfig,
    args: IngestArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut req = args.req;
    // Absolute paths: a running node resolves them, not this shell.
    req.meta_file = req.meta_file.map(absolute);
    req.movie.poster = req.movie.poster.map(absolute);
    req.movie.backdrop = req.movie.backdrop.map(absolute);
    let running = match admin::read_info(&config.data_dir) {
        Some(info) if !args.direct && alive(&info).await => Some(info),
        _ => None,
    };
    let last = match running {
        Some(info) => ingest_remote(&info, req, stop).await?,
        None => ingest_direct(&config, req, stop).await?,
    };
    match last.error {
        Some(err) => bail!("ingest failed: {err}"),
        None => {
            println!(
                "ingested {} as movie {} (manifest {})",
                last.title.as_deref().unwrap_or("?"),
                last.movie_id.as_deref().unwrap_or("?"),
                last.manifest_id.as_deref().unwrap_or("?")
            );
            Ok(())
        }
    }
}

/// `path` made absolute against the current directory (unchanged if that fails).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// Shows progress until the job ends: a redrawn bar on a terminal, log lines otherwise.
struct Shower {
    tty: bool,
    last_log: std::time::Instant,
}

impl Shower {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last_log: std::time::Instant::now() - Duration::from_secs(60),
        }
    }

    fn show(&mut self, p: &IngestProgress) {
        if self.tty {
            eprint!("\r\x1b[2K{}", progress::bar_line(p));
            if progress::finished(p) {
                eprintln!();
            }
        } else if self.last_log.elapsed() >= Duration::from_secs(5) || progress::finished(p) {
            progress::log(p);
            self.last_log = std::time::Instant::now();
        }
    }
}

async fn ingest_direct(
    config: &NodeConfig,
    req: IngestRequest,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<IngestProgress> {
    let ctx = reelnet_node::ingest_context(config).context(
        "opening the node's data directory (is a node running on it without its admin API?)",
    )?;
    let (tx, mut rx) = tokio::sync::watch::channel(IngestProgress::default());
    // The job is a worker of this short-lived process: Ctrl-C cancels it, and the drain
    // below waits for it to remove what it published before the store is closed.
    let shutdown = Shutdown::new();
    let cancel = shutdown.token(Stage::Workers);
    let job = reelnet_node::ingest::job::run(Arc::new(ctx), req, tx, cancel.clone());
    shutdown.spawn(Stage::Workers, "ingest", async move {
        let _ = job.await; // its outcome is in the progress channel
        Ok::<(), std::convert::Infallible>(())
    });
    let mut shower = Shower::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() { break; }
                let p = rx.borrow_and_update().clone();
                shower.show(&p);
                if progress::finished(&p) { break; }
            }
            _ = &mut stop => cancel.cancel(),
        }
    }
    shutdown.drain().await;
    let last = rx.borrow().clone();
    Ok(last)
}

/// Whether the node that wrote `info` still answers (it may have crashed and left the file).
async fn alive(info: &admin::AdminInfo) -> bool {
    reqwest::Client::new()
        .get(format!("{}/admin/v1/ingest", info.url))
        .bearer_auth(&info.token)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn ingest_remote(
    info: &admin::AdminInfo,
    req: IngestRequest,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<IngestProgress> {
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/admin/v1/ingest", info.url))
        .bearer_auth(&info.token)
        .json(&req)
        .send()
        .await
        .with_context(|| format!("handing the job to the running node at {}", info.url))?;
    if !res.status().is_success() {
        bail!(
            "the running node refused the job: {}",
            res.text().await.unwrap_or_default()
        );
    }
    let id = res.json::<serde_json::Value>().await?["id"]
        .as_u64()
        .context("the running node answered without a job id")?;
    eprintln!("handed to the running node (pid {}) as job {id}", info.pid);
    let mut shower = Shower::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut stop => bail!("stopped following job {id}; it goes on in the node"),
        }
        let p: IngestProgress = http
            .get(format!("{}/admin/v1/ingest/{id}", info.url))
            .bearer_auth(&info.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        shower.show(&p);
        if progress::finished(&p) {
            return Ok(p);
        }
    }
}
