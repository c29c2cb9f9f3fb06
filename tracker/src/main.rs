//! `reelnet-tracker`: parses flags, loads the config, and runs the tracker (or one of its
//! admin commands).

// warp's nested filter types exceed the default limit in release builds.
#![recursion_limit = "256"]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelnet_tracker::config::TrackerConfig;
use reelnet_tracker::{keys, shutdown, Tracker};

/// The reelnet tracker: accounts, sign-in tokens, watch-later lists and progress.
#[derive(Debug, Parser)]
#[command(name = "reelnet-tracker", version, about)]
struct Cli {
    /// TOML config file (see configs/tracker.toml); flags override it.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Data directory (database, signing keys). Overrides `data_dir`.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// HTTP address of the API. Overrides `listen`.
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<SocketAddr>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the tracker (the default).
    Run,
    /// Add a new signing key; the old one keeps verifying until its tokens expire.
    /// A running tracker picks the new key up within a second.
    RotateKey,
}

impl Cli {
    fn config(&self) -> anyhow::Result<TrackerConfig> {
        let mut config = match &self.config {
            Some(path) => TrackerConfig::load(path)?,
            None => TrackerConfig::default(),
        };
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = self.listen {
            config.listen = v;
        }
        let source = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("(command-line flags)"));
        config.validate(&source)?;
        Ok(config)
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let stop = shutdown::signal();
    init_logging(cli.log_json);
    let config = cli.config()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let tracker = Tracker::bind(config)
                .await
                .context("starting the tracker")?;
            println!("reelnet-tracker listening: http://{}", tracker.addr());
            stop.await;
            tracker.shutdown();
            tracker.join().await;
        }
        Command::RotateKey => {
            let kid = keys::rotate(&config.data_dir, reelnet_tracker::api::now_secs())
                .context("rotating the signing key")?;
            println!("new signing key {kid} is now current");
        }
    }
    Ok(())
}
