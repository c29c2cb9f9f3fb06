//! `reelnet-node`: parses flags, loads the config, starts the node, waits for Ctrl-C/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use reelnet_node::config::NodeConfig;
use reelnet_node::{shutdown, Node};

/// A reelnet node: keeps a slice of the movie library, shares it with other nodes, and serves
/// the web app.
#[derive(Debug, Parser)]
#[command(name = "reelnet-node", version, about)]
struct Cli {
    /// TOML config file (see configs/node.toml); flags below override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (key, segments, indexes). Overrides `data_dir`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP address of the gateway. Overrides `gateway.listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Public URL of the gateway. Overrides `gateway.public_url`.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// libp2p listen multiaddr. Overrides `p2p.listen`.
    #[arg(long, value_name = "ADDR")]
    p2p: Option<String>,
    /// UDP address of the QUIC segment service. Overrides `quic.listen`.
    #[arg(long, value_name = "ADDR")]
    quic: Option<SocketAddr>,
    /// Tracker base URL. Overrides `tracker.url`.
    #[arg(long, value_name = "URL")]
    tracker: Option<String>,
    /// Peer to join through (repeatable). Added to `p2p.bootstrap`.
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Directory of the built web app. Overrides `gateway.web_dir`.
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::load(path)?,
            None => NodeConfig::default(),
        };
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.listen {
            config.gateway.listen = v;
        }
        if let Some(v) = self.public_url {
            config.gateway.public_url = Some(v);
        }
        if let Some(v) = self.p2p {
            config.p2p.listen = v;
        }
        if let Some(v) = self.quic {
            config.quic.listen = v;
        }
        if let Some(v) = self.tracker {
            config.tracker.url = v;
        }
        if let Some(v) = self.web_dir {
            config.gateway.web_dir = Some(v);
        }
        config.p2p.bootstrap.extend(self.bootstrap);
        let source = self
            .config
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
    let config = cli.into_config()?;
    let public_url = config.public_url();
    let node = Node::bind(config).await.context("starting the node")?;
    println!(
        "reelnet-node {} listening: gateway http://{} ({public_url})",
        node.node_id(),
        node.gateway_addr()
    );
    stop.await;
    node.shutdown();
    node.join().await;
    Ok(())
}
