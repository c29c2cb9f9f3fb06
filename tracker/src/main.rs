//! `reelnet-tracker`: parses flags, loads the config, and runs the tracker (or one of its
//! admin commands).

// warp's nested filter types exceed the default limit in release builds.
#![recursion_limit = "256"]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelnet_proto::membership::RoleName;
use reelnet_proto::Role;
use reelnet_runtime::shutdown;
use reelnet_tracker::config::TrackerConfig;
use reelnet_tracker::network as operator_api;
use reelnet_tracker::operator::{self, NodeOutput};
use reelnet_tracker::{keysource, users, Tracker};

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
    /// Sign in from this terminal with the device grant (for scripts and TVs): prints a
    /// short code to type on the tracker's device page, then the token as one JSON line.
    DeviceLogin {
        /// The tracker's public URL.
        #[arg(long)]
        url: String,
        /// The name the tracker's page shows for this device.
        #[arg(long, default_value = "reelnet CLI")]
        name: String,
        /// Bind the token to this node id (to use it at that node) instead of the network.
        #[arg(long, value_name = "NODE_ID")]
        resource: Option<String>,
    },
    /// Add a new signing key; the old one keeps verifying until its tokens expire.
    /// A running tracker picks the new key up within a second.
    RotateKey,
    /// Manage accounts offline (the tracker must be stopped: the database is locked while
    /// it runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Administration of subscriptions, offline like `user` (stop the tracker first).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Network membership: invites, nodes, revocation, roles. Works while the tracker runs
    /// (through it, with the token in <data_dir>/operator.json) and while it is stopped.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Movie bindings: which announced ingest is each movie's canonical source. Works while
    /// the tracker runs and while it is stopped, like `node`.
    #[command(subcommand)]
    Movie(MovieCommand),
    /// The network signing key.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Copy this (stopped) tracker's store into an empty database of either engine
    ///
    /// `--to postgres://user:password@host/db` or `--to sled:DIR`. The source is the
    /// configured engine ([storage]); stop every tracker that uses it first. Every record
    /// kind is copied unchanged, counted on both sides and printed; any mismatch or error
    /// exits non-zero. Signing keys (the JWT and network keys) are files in the data
    /// directory, not records: they stay there, so keep the same data directory when the
    /// tracker starts on the new store.
    Migrate {
        /// `postgres://user:password@host[:port]/db` or `sled:DIR`.
        #[arg(long, value_name = "TARGET")]
        to: String,
    },
    /// Check that the tracker answers: GET /healthz on `listen` (loopback when it listens
    /// on every address) and exit 0 on 200, 1 otherwise. For container health checks and
    /// service monitors.
    Health {
        /// URL to check instead of the tracker's `/healthz`.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum NetworkCommand {
    /// Add a new network key; certificates signed by the old one stay valid until they
    /// expire (the old key stays published until then). A running tracker picks it up
    /// within a second.
    RotateKey,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Make an invite; its token is the last line printed. A node joins with
    /// `reelnet-node --invite TOKEN`.
    Invite {
        /// Roles of the nodes that join with it: replica (holds a share of the library),
        /// ingest (originates movies, claims requests), edge (serves viewers only).
        /// Repeat for several; default replica.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<RoleName>,
        /// How many nodes may join with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it is valid: `30m`, `24h`, `7d` or seconds.
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
    /// List enrolled nodes and open invites.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a node: within a minute every member drops it and re-replicates what it held.
    Revoke {
        /// The node id (64 hex characters).
        node_id: String,
    },
    /// Set a node's roles (in its next certificate; nodes check every 30 s).
    SetRole {
        /// The node id (64 hex characters).
        node_id: String,
        /// One or more of replica, ingest, edge.
        #[arg(required = true)]
        roles: Vec<RoleName>,
    },
}

#[derive(Debug, Subcommand)]
enum MovieCommand {
    /// Every bound movie (source, version, how it was bound) with the ingests nodes
    /// announced for it, and the movies with announcements and no binding.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bind a movie (or re-point its binding) to the lineage of an announced complete
    /// manifest of it; nodes follow within a minute.
    Bind {
        /// The movie id, e.g. tmdb-603.
        movie_id: String,
        /// The manifest id (64 hex characters; see `movie list`).
        #[arg(long, value_name = "MANIFEST_ID")]
        manifest: String,
    },
}

fn print_movie(m: &reelnet_tracker::network::bindings::MovieView) {
    println!(
        "{}  origin={} ingest={} manifest={}  v{}  {:?} by {} at {}",
        m.movie,
        m.origin,
        m.ingest_id,
        m.manifest,
        m.version,
        m.how,
        m.by,
        reelnet_tracker::billing::format_date(m.bound_at)
    );
}

fn print_ingests(ingests: &[reelnet_tracker::network::bindings::IngestView]) {
    for i in ingests {
        println!(
            "    announced {}  origin={} ingest={} seq {}  {:?}{}",
            i.manifest,
            i.origin,
            i.ingest_id,
            i.seq,
            i.title,
            i.year.map(|y| format!(" ({y})")).unwrap_or_default()
        );
    }
}

fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("{text:?}: expected a number with s, m, h or d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("{text:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(mult))
}

fn print_node(n: &operator_api::NodeView) {
    println!(
        "{}  roles={}{}  cert #{} until {}{}",
        n.node_id,
        n.roles.to_list(),
        if n.open { " (open)" } else { "" },
        n.serial,
        reelnet_tracker::billing::format_date(n.not_after),
        if n.revoked { "  REVOKED" } else { "" }
    );
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print a single-use link that makes the account registered with it the first admin
    /// (only while the tracker has no admin). Works with the tracker running or stopped.
    Bootstrap {
        /// How long the link works: `30m`, `24h`, `7d`.
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
    /// Set an account's subscription tier. A running tracker is not needed (and must be
    /// stopped); it sends the "premium started" email on its next subscription pass.
    SetTier {
        /// The account's email address.
        email: String,
        /// `premium` or `free`.
        #[arg(value_parser = ["premium", "free"])]
        tier: String,
        /// When premium ends: `YYYY-MM-DD` (end of that day, UTC),
        /// `YYYY-MM-DDTHH:MM:SSZ` or unix seconds. Without it premium has no end.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account (through the running tracker, or in its database when it is
    /// stopped). `--admin --verified` makes an administrator.
    Add {
        /// The account's email address.
        email: String,
        /// Read the password from this file (first line); `-` reads standard input.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "password",
            required_unless_present = "password"
        )]
        password_file: Option<PathBuf>,
        /// The password (visible in the process list; prefer --password-file).
        #[arg(long, value_name = "PASSWORD")]
        password: Option<String>,
        /// Display name (default: the part of the email before the @).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Mark the email address as verified (no verification mail).
        #[arg(long)]
        verified: bool,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Change an account's role.
    SetRole {
        /// The account's email address.
        email: String,
        /// `admin` or `user`.
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
}

fn read_password(file: &std::path::Path) -> anyhow::Result<String> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the password from stdin")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("reading the password file {}", file.display()))?
    };
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn role_of(admin: bool) -> Role {
    if admin {
        Role::Admin
    } else {
        Role::User
    }
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

/// `reelnet-tracker migrate --to TARGET`: copies the configured store into TARGET and
/// prints the counts (an error when any differs).
async fn migrate(config: &TrackerConfig, to: &str) -> anyhow::Result<()> {
    use reelnet_tracker::store::{migrate, Durability, Engine};
    let source = config
        .storage
        .engine(&config.data_dir)
        .context("the configured [storage]")?;
    if let Engine::Sled { dir, .. } = &source {
        anyhow::ensure!(
            dir.join("db").exists(),
            "no tracker database in {} (is --data-dir or the config's data_dir right?)",
            dir.display()
        );
    }
    let dest = if let Some(dir) = to.strip_prefix("sled:") {
        anyhow::ensure!(!dir.is_empty(), "--to sled:DIR needs a directory");
        Engine::Sled {
            dir: PathBuf::from(dir),
            durability: Durability::Fsync,
        }
    } else if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        let mut storage = config.storage.clone();
        storage.engine = reelnet_tracker::config::StorageEngine::Postgres;
        storage.url = to.to_owned();
        storage.engine(&config.data_dir)?
    } else {
        anyhow::bail!("--to {to:?}: expected postgres://user:password@host[:port]/db or sled:DIR");
    };
    let report = migrate::migrate(&source, &dest, Some(&config.data_dir))
        .await
        .context("migrating the store")?;
    let keys_moved = matches!(dest, Engine::Postgres(_)) && matches!(source, Engine::Sled { .. });
    println!(
        "{:<24} {:>10} {:>12}",
        "record kind", "source", "destination"
    );
    for t in &report.trees {
        let mark = if t.source == t.destination {
            ""
        } else {
            "  MISMATCH"
        };
        println!(
            "{:<24} {:>10} {:>12}{mark}",
            t.tree, t.source, t.destination
        );
    }
    let (s, d) = report.totals();
    println!("{:<24} {s:>10} {d:>12}", "total");
    anyhow::ensure!(
        report.matches(),
        "the counts differ: the copy is incomplete; drop the destination and run migrate again"
    );
    if keys_moved {
        println!(
            "migrated; the signing keys of {} are in the database too (record kind signing_keys)",
            config.data_dir.display()
        );
    } else {
        println!(
            "migrated; the signing keys stay in {}",
            config.data_dir.display()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let stop = shutdown::signal();
    reelnet_runtime::logging::init(cli.log_json);
    let config = cli.config()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let scheme = if config.http.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let tracker = Tracker::bind(config)
                .await
                .context("starting the tracker")?;
            println!("reelnet-tracker listening: {scheme}://{}", tracker.addr());
            stop.await;
            tracker.shutdown();
            tracker.join().await;
        }
        Command::DeviceLogin {
            url,
            name,
            resource,
        } => {
            let token = reelnet_tracker::device_client::device_login(
                &url,
                &name,
                resource.as_deref(),
                |msg| eprintln!("{msg}"),
            )
            .await
            .context("device sign-in")?;
            println!("{token}");
        }
        Command::Migrate { to } => migrate(&config, &to).await?,
        Command::Health { url, timeout } => {
            let url = url.unwrap_or_else(|| reelnet_runtime::health::local_url(config.listen));
            reelnet_runtime::health::check(&url, std::time::Duration::from_secs(timeout.max(1)))
                .await?;
            println!("ok: {url}");
        }
        Command::RotateKey => {
            let kid = keysource::rotate_configured(
                &config,
                keysource::Which::Token,
                reelnet_tracker::api::now_secs(),
            )
            .await
            .context("rotating the signing key")?;
            println!("new signing key {kid} is now current");
        }
        Command::User(UserCommand::Add {
            email,
            password_file,
            password,
            name,
            verified,
            admin,
        }) => {
            let password = match (password_file, password) {
                (Some(file), _) => read_password(&file)?,
                (None, Some(p)) => p,
                (None, None) => anyhow::bail!("give --password-file FILE or --password P"),
            };
            let req = users::AddUserRequest {
                email,
                password,
                display_name: name,
                verified,
                admin,
            };
            let user = match operator::run(&config, operator::NodeCommand::AddUser(req))
                .await
                .context("adding the account")?
            {
                NodeOutput::User(u) => u,
                _ => anyhow::bail!("unexpected answer"),
            };
            println!(
                "added {} ({}, {}{})",
                user.email,
                user.id,
                if user.email_verified {
                    "verified"
                } else {
                    "not verified"
                },
                if user.role == Role::Admin {
                    ", admin"
                } else {
                    ""
                }
            );
        }
        Command::Admin(AdminCommand::Bootstrap { ttl }) => {
            let req = users::BootstrapRequest {
                ttl_secs: parse_duration(&ttl)?,
            };
            match operator::run(&config, operator::NodeCommand::Bootstrap(req))
                .await
                .context("making the admin bootstrap link")?
            {
                NodeOutput::Bootstrap(b) => {
                    println!(
                        "open this link to create the first admin account (works once, until {} UTC):",
                        reelnet_tracker::billing::format_date(b.expires_at)
                    );
                    println!("{}", b.link);
                }
                _ => anyhow::bail!("unexpected answer"),
            }
        }
        Command::Admin(AdminCommand::SetTier { email, tier, until }) => {
            let until = match until {
                Some(text) => Some(reelnet_tracker::billing::parse_date(&text).with_context(
                    || format!("--until {text:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or unix seconds"),
                )?),
                None => None,
            };
            let tier = if tier == "premium" {
                reelnet_proto::Tier::Premium
            } else {
                reelnet_proto::Tier::Free
            };
            let user = users::set_tier(&config.data_dir, &config.storage, &email, tier, until)
                .await
                .context("setting the tier")?;
            match user.tier_until {
                Some(u) => println!(
                    "{} is now {:?} until {} UTC",
                    user.email,
                    user.tier,
                    reelnet_tracker::billing::format_date(u)
                ),
                None => println!("{} is now {:?}", user.email, user.tier),
            }
        }
        Command::Network(NetworkCommand::RotateKey) => {
            let kid = keysource::rotate_configured(
                &config,
                keysource::Which::Network,
                reelnet_tracker::api::now_secs(),
            )
            .await
            .context("rotating the network key")?;
            println!("new network key {kid} is now current");
        }
        Command::Movie(cmd) => {
            let json = matches!(cmd, MovieCommand::List { json: true });
            let cmd = match cmd {
                MovieCommand::List { .. } => operator::NodeCommand::Movies,
                MovieCommand::Bind { movie_id, manifest } => operator::NodeCommand::Bind(
                    movie_id,
                    operator_api::bindings::BindRequest { manifest },
                ),
            };
            match operator::run(&config, cmd).await? {
                NodeOutput::Movies(list) if json => {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                NodeOutput::Movies(list) => {
                    println!(
                        "network {}: {} bound movie(s), binding version {}",
                        list.network_id,
                        list.movies.len(),
                        list.version
                    );
                    for m in &list.movies {
                        print_movie(m);
                        print_ingests(&m.ingests);
                    }
                    for u in &list.unbound {
                        println!("{}  UNBOUND", u.movie);
                        print_ingests(&u.ingests);
                    }
                }
                NodeOutput::Movie(m) => print_movie(&m),
                _ => anyhow::bail!("unexpected answer"),
            }
        }
        Command::Node(cmd) => {
            let json = matches!(cmd, NodeCommand::List { json: true });
            let cmd = match cmd {
                NodeCommand::Invite { roles, uses, ttl } => {
                    operator::NodeCommand::Invite(operator_api::InviteRequest {
                        roles,
                        uses: Some(uses),
                        ttl_secs: Some(parse_duration(&ttl)?),
                    })
                }
                NodeCommand::List { .. } => operator::NodeCommand::List,
                NodeCommand::Revoke { node_id } => operator::NodeCommand::Revoke(node_id),
                NodeCommand::SetRole { node_id, roles } => {
                    operator::NodeCommand::SetRole(node_id, roles)
                }
            };
            match operator::run(&config, cmd).await? {
                NodeOutput::Invite(inv) => {
                    println!(
                        "invite {} for network {}: roles {}, {} use(s), valid until {} UTC",
                        inv.id,
                        inv.network_id,
                        inv.roles.to_list(),
                        inv.uses,
                        reelnet_tracker::billing::format_date(inv.expires_at)
                    );
                    println!("start a node with: {}", inv.command);
                    println!("{}", inv.token);
                }
                NodeOutput::List(list) if json => {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                NodeOutput::List(list) => {
                    println!("network {}: {} node(s)", list.network_id, list.nodes.len());
                    for n in &list.nodes {
                        print_node(n);
                    }
                    for i in &list.invites {
                        println!(
                            "invite {}  roles={}  {} use(s) left, until {}",
                            i.id,
                            i.roles.to_list(),
                            i.uses_left,
                            reelnet_tracker::billing::format_date(i.expires_at)
                        );
                    }
                }
                NodeOutput::Node(n) => print_node(&n),
                _ => anyhow::bail!("unexpected answer"),
            }
        }
        Command::User(UserCommand::SetRole { email, role }) => {
            let user = users::set_role(
                &config.data_dir,
                &config.storage,
                &email,
                role_of(role == "admin"),
            )
            .await
            .context("changing the role")?;
            println!("{} is now {}", user.email, role);
        }
    }
    Ok(())
}
