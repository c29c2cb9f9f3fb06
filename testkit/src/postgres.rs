//! A real PostgreSQL for tests: a fresh cluster per [`Postgres::start`], a streaming standby
//! per [`Postgres::start_standby`], and the faults a storage test needs (kill -9, restart on
//! the same data and port, promotion of the standby).
//!
//! Why this shape:
//! - **The distribution's binaries, no container.** `initdb`, `pg_ctl` and `pg_basebackup`
//!   come from `/usr/lib/postgresql/<highest version>/bin` (Debian's `postgresql` package,
//!   which `scripts/setup.sh` installs), or from `$REELNET_PG_BIN`.
//! - **Never as root.** PostgreSQL refuses to run as root, so when the test runs as root every
//!   PostgreSQL binary runs as the `postgres` system user through `runuser`, and the cluster's
//!   directory is created owned by it. As any other user the binaries run as that user.
//! - **In memory by default.** Clusters live under `$REELNET_PG_TMPDIR`, else `/dev/shm`
//!   (a tmpfs of 2 GiB or more), else the system temp dir; see `base_dir` for why that
//!   weakens no test and what a benchmark must set instead. Directories of test processes
//!   killed before their `Drop` ran are swept at the next start.
//! - **Like a deployment where it matters.** TCP only on 127.0.0.1 with scram-sha-256
//!   password authentication for a superuser with a generated password (the unix socket, in
//!   the cluster's own 0700 directory, trusts whoever can reach it); `fsync` and
//!   `synchronous_commit` on, so a commit is acknowledged after its WAL is flushed (and, with
//!   a synchronous standby, after the standby flushed it). Small `shared_buffers`, so a dozen
//!   clusters fit on a test machine; `initdb --no-sync`; dynamic shared memory in the data
//!   directory (`mmap`), so a killed server leaves nothing in `/dev/shm`.
//! - **A port picked by binding and releasing it**, below the kernel's ephemeral range (so no
//!   outgoing connection takes it while the server is down between [`Postgres::kill9`] and
//!   [`Postgres::start_again`]). PostgreSQL cannot report a port it chose itself; a clash
//!   (another process took the port in between) is detected from the server log and the
//!   start retried on another port.
//! - **A crash is a crash.** [`Postgres::kill9`] stops the postmaster, then SIGKILLs it and
//!   every one of its backends together, as a machine dying would: no backend may finish a
//!   commit after the "crash". [`Postgres::start_again`] then runs crash recovery on the same
//!   data directory and port.
//!
//! Every wait polls with a deadline; a timeout is an error carrying the end of the server's
//! log. [`Drop`] stops the server (`pg_ctl stop -m immediate`, SIGKILL if that fails) and
//! removes its directory, unless `REELNET_PG_KEEP=1` (then the directory is logged).

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio_postgres::{Client, NoTls};

/// The superuser every cluster is created with.
const SUPERUSER: &str = "reelnet";
/// The database [`Postgres::url`] names; created at start.
const DATABASE: &str = "reelnet";
/// How long a start (including crash recovery) or a promotion may take.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a standby may take to show up as streaming on its primary.
const STREAM_LIMIT: Duration = Duration::from_secs(30);
/// How often a start is retried on another port when the port was taken meanwhile.
const PORT_TRIES: u32 = 8;

/// What went wrong starting or driving a test PostgreSQL; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "no PostgreSQL binaries under /usr/lib/postgresql/*/bin: run scripts/setup.sh \
         (it installs Debian's `postgresql` package), or set REELNET_PG_BIN to a directory \
         holding initdb, pg_ctl and pg_basebackup"
    )]
    NoBinaries,
    #[error(
        "REELNET_PG_BIN={0}: no `{1}` there; point REELNET_PG_BIN at PostgreSQL's bin \
         directory (e.g. /usr/lib/postgresql/15/bin)"
    )]
    MissingBinary(PathBuf, &'static str),
    #[error(
        "running as root, but PostgreSQL refuses to run as root and {0}: run scripts/setup.sh \
         (Debian's `postgresql` package creates the `postgres` user; util-linux has `runuser`)"
    )]
    NoPostgresUser(String),
    #[error(
        "{0} is not traversable by the postgres user (a parent directory lacks o+x): set \
         REELNET_PG_TMPDIR (or TMPDIR) to a directory under a world-traversable path such as /tmp"
    )]
    TempDirNotTraversable(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error(
        "PostgreSQL on port {port} did not {what} within {limit:?}; the end of {log}:\n{tail}"
    )]
    Timeout {
        what: String,
        port: u16,
        limit: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("no port for PostgreSQL after {0} tries: each was taken before the server bound it")]
    NoFreePort(u32),
    #[error("database name {0:?}: use letters, digits and underscores only (at most 63)")]
    BadDatabaseName(String),
    #[error("PostgreSQL on port {port}: {what}: {source}")]
    Sql {
        port: u16,
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL on port {1}: {0}")]
    State(String, u16),
}

/// How the PostgreSQL binaries are run: their directory, and whether through
/// `runuser -u postgres` (when this process is root).
#[derive(Debug, Clone)]
struct Runner {
    bin: PathBuf,
    /// The `postgres` user's uid and gid when running as root.
    as_postgres: Option<(u32, u32)>,
}

impl Runner {
    fn find() -> Result<Runner, PgError> {
        let bin = check_bin_dir(bin_dir(
            std::env::var_os("REELNET_PG_BIN"),
            Path::new("/usr/lib/postgresql"),
        )?)?;
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let as_postgres = if root {
            if !Path::new("/usr/sbin/runuser").exists() && !Path::new("/sbin/runuser").exists() {
                return Err(PgError::NoPostgresUser("there is no `runuser`".into()));
            }
            Some(postgres_ids()?)
        } else {
            None
        };
        Ok(Runner { bin, as_postgres })
    }

    /// A command running PostgreSQL's `tool` (as the postgres user when root), in `cwd`.
    fn command(&self, tool: &str, cwd: &Path) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the test's working directory.
        cmd.current_dir(cwd).kill_on_drop(true);
        cmd
    }

    /// Runs `cmd` to its end; an error unless it exits 0.
    async fn run(&self, mut cmd: Command) -> Result<Output, PgError> {
        let shown = format!("{:?}", cmd.as_std());
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| PgError::Io {
                what: format!("cannot run {shown}"),
                source,
            })?;
        if !out.status.success() {
            return Err(PgError::Command {
                command: shown,
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(out)
    }

    /// Makes `path` belong to the postgres user (when root).
    fn own(&self, path: &Path) -> Result<(), PgError> {
        if let Some((uid, gid)) = self.as_postgres {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| PgError::Io {
                what: format!("cannot give {} to the postgres user", path.display()),
                source,
            })?;
        }
        Ok(())
    }
}

/// `$REELNET_PG_BIN` (`from_env`), else `<lib>/<highest version>/bin` (`lib`:
/// `/usr/lib/postgresql`).
fn bin_dir(from_env: Option<std::ffi::OsString>, lib: &Path) -> Result<PathBuf, PgError> {
    if let Some(dir) = from_env {
        return Ok(PathBuf::from(dir));
    }
    let entries = std::fs::read_dir(lib).map_err(|_| PgError::NoBinaries)?;
    entries
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
        .ok_or(PgError::NoBinaries)
}

/// `bin` when it holds every binary this module runs.
fn check_bin_dir(bin: PathBuf) -> Result<PathBuf, PgError> {
    for tool in ["initdb", "pg_ctl", "pg_basebackup", "postgres"] {
        if !bin.join(tool).is_file() {
            return Err(PgError::MissingBinary(bin, tool));
        }
    }
    Ok(bin)
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_ids() -> Result<(u32, u32), PgError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|source| PgError::Io {
        what: "cannot read /etc/passwd".into(),
        source,
    })?;
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            if f.next()? != "postgres" {
                return None;
            }
            let (uid, gid) = (f.nth(1)?.parse().ok()?, f.next()?.parse().ok()?);
            Some((uid, gid))
        })
        .ok_or_else(|| PgError::NoPostgresUser("there is no `postgres` system user".into()))
}

/// `n` random bytes as hex (for passwords and names), from the kernel.
fn random_hex(n: usize) -> Result<String, PgError> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| PgError::Io {
            what: "cannot read /dev/urandom".into(),
            source,
        })?;
    let mut s = String::with_capacity(2 * n);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

/// A loopback port that was free a moment ago, below the kernel's ephemeral range: a port
/// from that range (what binding port 0 gives) can be taken, while the server is down after
/// [`Postgres::kill9`], as the local port of any outgoing connection on the machine, and
/// [`Postgres::start_again`] must get the same port back. Random candidates are tried by
/// binding and releasing them; binding port 0 is the fallback.
fn pick_port() -> Result<u16, PgError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const FLOOR: u16 = 10_000;
    if low > FLOOR + 1000 {
        let span = u32::from(low - FLOOR);
        for _ in 0..64 {
            let r = u32::from_str_radix(&random_hex(4)?, 16).unwrap_or(0);
            let candidate = FLOOR + (r % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
                return Ok(candidate);
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| PgError::Io {
            what: "cannot bind a loopback port to find a free one".into(),
            source,
        })
}

/// Where clusters go: `$REELNET_PG_TMPDIR`, else `/dev/shm` when it is a tmpfs of at least
/// 2 GiB (or of the kernel's default size), else the system temp dir.
///
/// In memory, `fsync` costs nothing: a start, and the restart after [`Postgres::kill9`]
/// (whose crash recovery first syncs the whole data directory), take a fraction of the time
/// they take on a busy shared disk (the module's tests: about 5 s instead of about 20 s). No
/// test loses anything by it: a kill -9 ends processes, and what they wrote stays in the page
/// cache, in memory or on disk alike; only a power cut would tell them apart, and no test
/// makes one. A benchmark of durable writes must set `REELNET_PG_TMPDIR` to a directory on
/// the disk it measures.
fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REELNET_PG_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm_ok = std::fs::read_to_string("/proc/mounts")
        .ok()
        .and_then(|mounts| {
            let line = mounts.lines().find(|l| {
                let mut f = l.split_whitespace().skip(1);
                f.next() == Some("/dev/shm") && f.next() == Some("tmpfs")
            })?;
            let size = line
                .split_whitespace()
                .nth(3)?
                .split(',')
                .find_map(|o| o.strip_prefix("size="));
            Some(match size {
                None => true,
                Some(size) => tmpfs_size_bytes(size).is_some_and(|b| b >= 2 << 30),
            })
        })
        .unwrap_or(false);
    if shm_ok {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// A tmpfs `size=` option (`65536k`, `2g`, bytes) in bytes; `None` for a percentage.
fn tmpfs_size_bytes(size: &str) -> Option<u64> {
    let at = size
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(size.len());
    let (digits, unit) = size.split_at(at);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// Removes the cluster directories under `base` left by test processes that are gone (killed
/// before their `Drop` ran) and whose server is not running.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("reelnet-pg-"))
            .and_then(|rest| rest.split('-').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let data = e.path().join("data");
        let running = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
            .is_some_and(|pid| is_postmaster_of(pid, &data));
        if running {
            tracing::warn!(dir = %e.path().display(), "a test PostgreSQL of a process that is gone still runs");
            continue;
        }
        if std::fs::remove_dir_all(e.path()).is_ok() {
            tracing::debug!(dir = %e.path().display(), "stale test PostgreSQL directory removed");
        }
    }
}

/// A new empty directory for one cluster, owned by the user PostgreSQL runs as, mode 0700.
fn cluster_dir(runner: &Runner) -> Result<PathBuf, PgError> {
    let base = base_dir();
    sweep_stale(&base);
    if runner.as_postgres.is_some() {
        // Every ancestor must let the postgres user through.
        let mut p = Some(base.as_path());
        while let Some(dir) = p {
            let mode = std::fs::metadata(dir).map(|m| m.mode()).unwrap_or(0);
            if mode & 0o001 == 0 {
                return Err(PgError::TempDirNotTraversable(base.clone()));
            }
            p = dir.parent();
        }
    }
    let dir = base.join(format!(
        "reelnet-pg-{}-{}",
        std::process::id(),
        random_hex(6)?
    ));
    std::fs::create_dir(&dir).map_err(|source| PgError::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    runner.own(&dir)?;
    Ok(dir)
}

/// The last `n` lines of the file at `path` (for error messages).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A running (or deliberately stopped) PostgreSQL cluster in a directory of its own.
pub struct Postgres {
    runner: Runner,
    /// The cluster's own directory: `data/`, the server log, the unix socket.
    dir: PathBuf,
    port: u16,
    password: String,
    /// `application_name` a standby streams under (and is named by in
    /// `synchronous_standby_names`); `None` for a cluster made by [`Postgres::start`].
    standby_name: Option<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("standby_name", &self.standby_name)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// initdb into a fresh directory, start the server on a free loopback port, wait until it
    /// accepts connections and create the database [`Postgres::url`] names.
    pub async fn start() -> Result<Postgres, PgError> {
        let runner = Runner::find()?;
        let dir = cluster_dir(&runner)?;
        let mut pg = Postgres {
            runner,
            dir,
            port: 0,
            password: random_hex(16)?,
            standby_name: None,
        };
        // From here on, Drop removes the directory whatever fails.
        pg.init().await?;
        pg.start_on_free_port().await?;
        pg.wait_ready().await?;
        let client = pg.connect("postgres").await?;
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .map_err(|e| pg.sql("cannot create the database", e))?;
        tracing::info!(port = pg.port, dir = %pg.dir.display(), "test PostgreSQL started");
        Ok(pg)
    }

    async fn init(&self) -> Result<(), PgError> {
        let pwfile = self.dir.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password)).map_err(|source| PgError::Io {
            what: format!("cannot write {}", pwfile.display()),
            source,
        })?;
        self.runner.own(&pwfile)?;
        let mut cmd = self.runner.command("initdb", &self.dir);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-sync",
                "--no-instructions",
            ]);
        let result = self.runner.run(cmd).await;
        let _ = std::fs::remove_file(&pwfile);
        result?;
        let settings = format!(
            "\n# reelnet testkit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{dir}'\n\
             fsync = on\n\
             synchronous_commit = on\n\
             shared_buffers = 16MB\n\
             max_connections = 200\n\
             wal_keep_size = 128MB\n\
             max_wal_senders = 5\n\
             max_parallel_workers_per_gather = 0\n\
             dynamic_shared_memory_type = mmap\n\
             logging_collector = off\n\
             log_line_prefix = '%m [%p] '\n",
            dir = self.dir.display()
        );
        self.append_conf("postgresql.conf", &settings)
    }

    /// Appends `text` to the data directory's config file `name` (later lines win).
    fn append_conf(&self, name: &str, text: &str) -> Result<(), PgError> {
        use std::io::Write;
        let path = self.data().join(name);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| PgError::Io {
                what: format!("cannot append to {}", path.display()),
                source,
            })
    }

    /// Picks a port, writes it into the config and starts; on a port clash, another port.
    async fn start_on_free_port(&mut self) -> Result<(), PgError> {
        for _ in 0..PORT_TRIES {
            self.port = pick_port()?;
            self.append_conf("postgresql.auto.conf", &format!("port = {}\n", self.port))?;
            let log_len = std::fs::metadata(self.log()).map(|m| m.len()).unwrap_or(0);
            match self.pg_ctl_start().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = std::fs::read(self.log()).unwrap_or_default();
                    let new =
                        String::from_utf8_lossy(log.get(log_len as usize..).unwrap_or_default())
                            .into_owned();
                    if new.contains("Address already in use") {
                        tracing::debug!(port = self.port, "port taken meanwhile; another one");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(PgError::NoFreePort(PORT_TRIES))
    }

    /// `pg_ctl start -w`: returns once the server is ready (or has exited).
    async fn pg_ctl_start(&self) -> Result<(), PgError> {
        let mut cmd = self.runner.command("pg_ctl", &self.dir);
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", &START_LIMIT.as_secs().to_string(), "start"]);
        self.runner.run(cmd).await.map(|_| ()).map_err(|e| match e {
            PgError::Command {
                command,
                status,
                output,
            } => PgError::Command {
                command,
                status,
                output: format!(
                    "{output}\nthe end of {}:\n{}",
                    self.log().display(),
                    tail(&self.log(), 30)
                ),
            },
            e => e,
        })
    }

    /// Polls (deadline [`START_LIMIT`]) until a connection over TCP with the password works.
    async fn wait_ready(&self) -> Result<(), PgError> {
        let start = Instant::now();
        loop {
            match self.connect("postgres").await {
                Ok(client) => match client.simple_query("SELECT 1").await {
                    Ok(_) => return Ok(()),
                    Err(e) => tracing::debug!(port = self.port, "not ready: {e}"),
                },
                Err(e) => tracing::debug!(port = self.port, "not ready: {e}"),
            }
            if start.elapsed() > START_LIMIT {
                return Err(self.timeout("accept connections", START_LIMIT));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The loopback port the server listens on (the same across [`Postgres::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name.
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's generated password (URL-safe: hex).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `127.0.0.1:PORT`, for composing a several-host URL.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `postgres://USER:PASS@127.0.0.1:PORT/reelnet`.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of database `database` on this server.
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// `postgres://USER:PASS@H1:P1,H2:P2/DB?target_session_attrs=read-write`: the URL a
    /// client uses to find whichever of `servers` is the writable primary (before and after a
    /// promotion). All of them share the superuser and its password (a standby is a copy).
    pub fn url_across(servers: &[&Postgres], database: &str) -> String {
        let hosts: Vec<String> = servers.iter().map(|s| s.host_port()).collect();
        let password = servers.first().map(|s| s.password.as_str()).unwrap_or("");
        format!(
            "postgres://{SUPERUSER}:{password}@{}/{database}?target_session_attrs=read-write",
            hosts.join(",")
        )
    }

    /// Turns TLS on with this certificate chain and key (PEM) and, from then on, refuses
    /// TCP connections without it (`hostnossl … reject` first in `pg_hba.conf`); the
    /// configuration is reloaded, no restart.
    pub async fn require_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), PgError> {
        use std::os::unix::fs::PermissionsExt;
        let write = |name: &str, text: &str, mode: u32| -> Result<(), PgError> {
            let path = self.data().join(name);
            std::fs::write(&path, text)
                .and_then(|()| {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                })
                .map_err(|source| PgError::Io {
                    what: format!("cannot write {}", path.display()),
                    source,
                })?;
            self.runner.own(&path)
        };
        write("server.crt", cert_pem, 0o644)?;
        write("server.key", key_pem, 0o600)?;
        let hba = self.data().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).map_err(|source| PgError::Io {
            what: format!("cannot read {}", hba.display()),
            source,
        })?;
        write(
            "pg_hba.conf",
            &format!("hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n{old}"),
            0o600,
        )?;
        self.append_conf(
            "postgresql.auto.conf",
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )?;
        let client = self.connect_local().await?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| self.sql("cannot reload the configuration", e))?;
        Ok(())
    }

    /// Creates database `name` (letters, digits, underscores) and answers its URL: one
    /// database per test keeps tests on one server apart.
    pub async fn create_database(&self, name: &str) -> Result<String, PgError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PgError::BadDatabaseName(name.to_owned()));
        }
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| self.sql(&format!("cannot create database {name}"), e))?;
        Ok(self.url_of(name))
    }

    /// A client of database `database` as the superuser over TCP (its connection runs on a
    /// task of its own, ending when the client is dropped).
    /// A superuser connection over the unix socket (trusted), which works whatever the
    /// TCP rules are (see [`Postgres::require_tls`]).
    async fn connect_local(&self) -> Result<Client, PgError> {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5))
            .connect(NoTls)
            .await
            .map_err(|e| self.sql("cannot connect over the unix socket", e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("test PostgreSQL connection ended: {e}");
            }
        });
        Ok(client)
    }

    pub async fn connect(&self, database: &str) -> Result<Client, PgError> {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .password(&self.password)
            .dbname(database)
            .connect_timeout(Duration::from_secs(5))
            .connect(NoTls)
            .await
            .map_err(|e| self.sql(&format!("cannot connect to database {database}"), e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("test PostgreSQL connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// A crash: stops the postmaster, then SIGKILLs it and all its backends at once, and
    /// waits until they are gone. Nothing is flushed or shut down cleanly.
    pub async fn kill9(&self) -> Result<(), PgError> {
        let Some(pid) = self.postmaster_pid() else {
            return Err(PgError::State(
                "kill9: no postmaster.pid: the server is not running".into(),
                self.port,
            ));
        };
        if !is_postmaster_of(pid, &self.data()) {
            return Err(PgError::State(
                format!("kill9: pid {pid} of postmaster.pid is not this server's postmaster (not running?)"),
                self.port,
            ));
        }
        kill_tree(pid);
        let start = Instant::now();
        let mut pids = vec![pid];
        pids.extend(children(pid));
        while pids.iter().any(|p| alive(*p)) {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(PgError::State(
                    format!("kill9: processes {pids:?} still alive 10 s after SIGKILL"),
                    self.port,
                ));
            }
            // Children forked just before the stop: kill them too.
            kill_tree(pid);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(port = self.port, pid, "test PostgreSQL killed (SIGKILL)");
        Ok(())
    }

    /// A clean shutdown (`pg_ctl stop -m fast`).
    pub async fn stop(&self) -> Result<(), PgError> {
        let mut cmd = self.runner.command("pg_ctl", &self.dir);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        self.runner.run(cmd).await.map(|_| ())
    }

    /// Starts the server again on the same data directory and port (after [`Postgres::stop`]
    /// or [`Postgres::kill9`]: crash recovery runs first) and waits until it accepts
    /// connections.
    pub async fn start_again(&self) -> Result<(), PgError> {
        // After a kill -9 the postmaster may linger as a zombie until its new parent (pid 1)
        // reaps it; PostgreSQL takes a lock file naming an existing pid for a running server.
        // Every process of the old server is dead (kill9 waited), so stale files can go.
        // The same holds for the lock file beside the unix socket.
        let locks = [
            self.data().join("postmaster.pid"),
            self.dir.join(format!(".s.PGSQL.{}.lock", self.port)),
        ];
        for lock in locks {
            let pid = std::fs::read_to_string(&lock)
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                if !is_postmaster_of(pid, &self.data()) {
                    tracing::debug!(lock = %lock.display(), pid, "stale lock file of a killed server removed");
                    let _ = std::fs::remove_file(&lock);
                }
            }
        }
        self.pg_ctl_start().await?;
        self.wait_ready().await
    }

    /// A streaming standby of this server: `pg_basebackup -R` into a new directory (its
    /// `primary_conninfo` carries a generated `application_name`), started on its own port.
    /// When `synchronous`, this server's `synchronous_standby_names` is set to that name (so
    /// a commit here is acknowledged only once the standby has flushed it), replacing any
    /// earlier one. Returns once this server's `pg_stat_replication` shows the standby
    /// streaming (and `sync` when synchronous).
    pub async fn start_standby(&self, synchronous: bool) -> Result<Postgres, PgError> {
        let name = format!("standby_{}", random_hex(4)?);
        let dir = cluster_dir(&self.runner)?;
        let mut standby = Postgres {
            runner: self.runner.clone(),
            dir,
            port: 0,
            password: self.password.clone(),
            standby_name: Some(name.clone()),
        };
        let mut cmd = self.runner.command("pg_basebackup", &standby.dir);
        cmd.arg("-D")
            .arg(standby.data())
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user={SUPERUSER} password={} application_name={name}",
                self.port, self.password
            ));
        self.runner.run(cmd).await?;
        // The copy carries this server's settings: its own socket directory, and no
        // synchronous standby of its own (once promoted it must not wait for one).
        standby.append_conf(
            "postgresql.auto.conf",
            &format!(
                "unix_socket_directories = '{}'\nsynchronous_standby_names = ''\n",
                standby.dir.display()
            ),
        )?;
        standby.start_on_free_port().await?;
        standby.wait_ready().await?;

        let client = self.connect("postgres").await?;
        if synchronous {
            // ALTER SYSTEM cannot share a batch (an implicit transaction) with the reload.
            client
                .batch_execute(&format!(
                    "ALTER SYSTEM SET synchronous_standby_names = '\"{name}\"'"
                ))
                .await
                .map_err(|e| self.sql("cannot set synchronous_standby_names", e))?;
            client
                .batch_execute("SELECT pg_reload_conf()")
                .await
                .map_err(|e| self.sql("cannot reload the configuration", e))?;
        }
        let start = Instant::now();
        loop {
            let row = client
                .query_opt(
                    "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1",
                    &[&name],
                )
                .await
                .map_err(|e| self.sql("cannot read pg_stat_replication", e))?;
            if let Some(row) = row {
                let state: Option<String> = row.get(0);
                let sync: Option<String> = row.get(1);
                let want = if synchronous { "sync" } else { "async" };
                if state.as_deref() == Some("streaming") && sync.as_deref() == Some(want) {
                    break;
                }
            }
            if start.elapsed() > STREAM_LIMIT {
                return Err(standby.timeout(
                    &format!("stream from port {} as {name}", self.port),
                    STREAM_LIMIT,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(
            primary = self.port,
            standby = standby.port,
            synchronous,
            "test PostgreSQL standby streaming"
        );
        Ok(standby)
    }

    /// The `application_name` this standby streams under (`None` for a primary).
    pub fn standby_name(&self) -> Option<&str> {
        self.standby_name.as_deref()
    }

    /// Promotes this standby (`pg_ctl promote`) and waits until `pg_is_in_recovery()` is
    /// false, i.e. it takes writes.
    pub async fn promote(&self) -> Result<(), PgError> {
        let mut cmd = self.runner.command("pg_ctl", &self.dir);
        cmd.arg("-D").arg(self.data()).args([
            "-w",
            "-t",
            &START_LIMIT.as_secs().to_string(),
            "promote",
        ]);
        self.runner.run(cmd).await?;
        let start = Instant::now();
        loop {
            if !self.in_recovery().await? {
                tracing::info!(port = self.port, "test PostgreSQL promoted");
                return Ok(());
            }
            if start.elapsed() > START_LIMIT {
                return Err(self.timeout("leave recovery after pg_ctl promote", START_LIMIT));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `SELECT pg_is_in_recovery()`: true on a standby.
    pub async fn in_recovery(&self) -> Result<bool, PgError> {
        let client = self.connect("postgres").await?;
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| self.sql("cannot ask pg_is_in_recovery()", e))?;
        Ok(row.get(0))
    }

    fn sql(&self, what: &str, source: tokio_postgres::Error) -> PgError {
        PgError::Sql {
            port: self.port,
            what: what.to_owned(),
            source,
        }
    }

    fn timeout(&self, what: &str, limit: Duration) -> PgError {
        PgError::Timeout {
            what: what.to_owned(),
            port: self.port,
            limit,
            log: self.log(),
            tail: tail(&self.log(), 30),
        }
    }

    /// The postmaster's pid from `postmaster.pid`, if the file is there.
    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let program = self.runner.bin.join("pg_ctl");
            let mut cmd = if self.runner.as_postgres.is_some() {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                std::process::Command::new(program)
            };
            let stopped = cmd
                .current_dir(&self.dir)
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "20", "stop"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !stopped {
                if let Some(pid) = self.postmaster_pid() {
                    if is_postmaster_of(pid, &self.data()) {
                        kill_tree(pid);
                    }
                }
            }
        }
        if std::env::var_os("REELNET_PG_KEEP").is_some() {
            tracing::info!(dir = %self.dir.display(), "REELNET_PG_KEEP: test PostgreSQL directory kept");
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "cannot remove the test PostgreSQL directory: {e}");
        }
    }
}

/// Sends `signal` to `pids` with kill(1) (no unsafe code here).
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// SIGSTOPs the postmaster `pid` (so it forks no more), then SIGKILLs it and its children.
fn kill_tree(pid: u32) {
    if !alive(pid) {
        return;
    }
    signal("-STOP", &[pid]);
    let mut all = vec![pid];
    all.extend(children(pid));
    signal("-KILL", &all);
}

/// Whether `pid` is a postmaster started on `data` (its command line names the directory):
/// `postmaster.pid` may name a pid reused by an unrelated process after a kill.
fn is_postmaster_of(pid: u32, data: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let data = data.as_os_str().as_encoded_bytes();
    alive(pid) && cmdline.split(|b| *b == 0).any(|arg| arg == data)
}

/// The pids whose parent is `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let (_, ppid) = proc_state(child)?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// A process's state letter and parent pid from /proc/PID/stat.
fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a live process (a zombie is dead: it holds no memory or files).
fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    async fn count(client: &Client, table: &str) -> i64 {
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    #[test]
    fn missing_binaries_say_what_to_do() {
        let empty = std::env::temp_dir().join(format!("reelnet-pgbin-test-{}", std::process::id()));
        std::fs::create_dir_all(empty.join("15/bin")).unwrap();
        let err = bin_dir(None, &empty).unwrap_err();
        assert!(matches!(err, PgError::NoBinaries), "{err}");
        assert!(err.to_string().contains("run scripts/setup.sh"), "{err}");
        let err = bin_dir(None, &empty.join("absent")).unwrap_err();
        assert!(matches!(err, PgError::NoBinaries), "{err}");
        // A versioned directory with initdb is found, the highest version first.
        for v in ["9", "15", "16"] {
            std::fs::create_dir_all(empty.join(v).join("bin")).unwrap();
        }
        std::fs::write(empty.join("15/bin/initdb"), "").unwrap();
        std::fs::write(empty.join("9/bin/initdb"), "").unwrap();
        assert_eq!(bin_dir(None, &empty).unwrap(), empty.join("15/bin"));
        // $REELNET_PG_BIN naming a directory without pg_ctl and the rest.
        let err = check_bin_dir(empty.join("15/bin")).unwrap_err();
        assert!(err.to_string().contains("no `pg_ctl` there"), "{err}");
        assert_eq!(
            bin_dir(Some("/opt/pg/bin".into()), &empty).unwrap(),
            PathBuf::from("/opt/pg/bin")
        );
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn tmpfs_sizes() {
        assert_eq!(tmpfs_size_bytes("65536k"), Some(64 << 20));
        assert_eq!(tmpfs_size_bytes("2g"), Some(2 << 30));
        assert_eq!(tmpfs_size_bytes("1048576"), Some(1 << 20));
        assert_eq!(tmpfs_size_bytes("50%"), None);
    }

    #[tokio::test]
    async fn a_committed_row_survives_kill9_and_start_again() {
        let pg = Postgres::start().await.unwrap();
        let url = pg.url();
        assert!(url.starts_with(&format!("postgres://reelnet:{}@127.0.0.1:", pg.password())));
        // The URL works as given (password over TCP), through tokio-postgres's own parser.
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE marks (id int PRIMARY KEY, note text)")
            .await
            .unwrap();
        client
            .execute("INSERT INTO marks VALUES (1, 'acknowledged')", &[])
            .await
            .unwrap();
        // A wrong password is refused: TCP really uses password authentication.
        let wrong = url.replace(pg.password(), "wrong");
        assert!(tokio_postgres::connect(&wrong, NoTls).await.is_err());

        let port = pg.port();
        pg.kill9().await.unwrap();
        assert!(
            pg.connect(DATABASE).await.is_err(),
            "still answering after kill9"
        );
        pg.start_again().await.unwrap();
        assert_eq!(pg.port(), port);
        let client = pg.connect(DATABASE).await.unwrap();
        let note: String = client
            .query_one("SELECT note FROM marks WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(note, "acknowledged");

        // A database of its own per test, and the clean stop/start cycle.
        let other = pg.create_database("isolated_1").await.unwrap();
        assert!(other.ends_with("/isolated_1"));
        assert!(matches!(
            pg.create_database("bad-name").await,
            Err(PgError::BadDatabaseName(_))
        ));
        pg.stop().await.unwrap();
        pg.start_again().await.unwrap();
        let (client, conn) = tokio_postgres::connect(&other, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE t (x int)")
            .await
            .unwrap();

        let dir = pg.dir.clone();
        drop(pg);
        assert!(!dir.exists(), "drop left {}", dir.display());
    }

    #[tokio::test]
    async fn a_synchronous_standby_takes_over_with_every_acknowledged_row() {
        let primary = Postgres::start().await.unwrap();
        let standby = primary.start_standby(true).await.unwrap();
        assert!(standby.in_recovery().await.unwrap());
        assert!(!primary.in_recovery().await.unwrap());

        // The URL naming both hosts reaches the writable one, before and after the failover.
        let across = Postgres::url_across(&[&primary, &standby], DATABASE);
        let (client, conn) = tokio_postgres::connect(&across, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE marks (id int PRIMARY KEY)")
            .await
            .unwrap();
        for id in 0..50 {
            client
                .execute("INSERT INTO marks VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
        drop(client);

        primary.kill9().await.unwrap();
        standby.promote().await.unwrap();
        assert!(!standby.in_recovery().await.unwrap());

        let (client, conn) = tokio_postgres::connect(&across, NoTls).await.unwrap();
        tokio::spawn(conn);
        assert_eq!(count(&client, "marks").await, 50);
        client
            .execute("INSERT INTO marks VALUES (50)", &[])
            .await
            .unwrap();
        let direct = standby.connect(DATABASE).await.unwrap();
        assert_eq!(count(&direct, "marks").await, 51);
    }

    #[tokio::test]
    async fn a_commit_waits_for_the_synchronous_standby() {
        let primary = Postgres::start().await.unwrap();
        let standby = primary.start_standby(true).await.unwrap();
        let client = primary.connect(DATABASE).await.unwrap();
        client
            .batch_execute("CREATE TABLE marks (id int)")
            .await
            .unwrap();

        // With the standby gone, a commit on the primary is not acknowledged...
        standby.kill9().await.unwrap();
        let pending = tokio::spawn(async move {
            client
                .execute("INSERT INTO marks VALUES (1)", &[])
                .await
                .map(|_| ())
        });
        // ... while the primary waits for it (its backend shows the SyncRep wait) ...
        let watcher = primary.connect("postgres").await.unwrap();
        crate::wait_for(
            "the insert waiting for the synchronous standby",
            START_LIMIT,
            || {
                let watcher = &watcher;
                async move {
                    let rows = watcher
                        .query(
                            "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
                            &[],
                        )
                        .await
                        .unwrap();
                    (!rows.is_empty()).then_some(())
                }
            },
        )
        .await;
        assert!(!pending.is_finished(), "acknowledged without the standby");

        // ... and is acknowledged once the standby is back and has it.
        standby.start_again().await.unwrap();
        crate::wait_for("the insert acknowledged", START_LIMIT, || {
            let done = pending.is_finished();
            async move { done.then_some(()) }
        })
        .await;
        pending.await.unwrap().unwrap();
        crate::wait_for("the row replayed on the standby", START_LIMIT, || {
            let standby = &standby;
            async move {
                let c = standby.connect(DATABASE).await.ok()?;
                (count(&c, "marks").await == 1).then_some(())
            }
        })
        .await;
    }
}
