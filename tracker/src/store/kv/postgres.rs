//! The PostgreSQL engine (`[storage] engine = "postgres"`): the seam's trees as rows of one
//! table, for an operator who runs the tracker on PostgreSQL instead of an embedded sled.
//!
//! **Layout.** One table, `kv (tree text, k bytea, v bytea, PRIMARY KEY (tree, k))`, rather
//! than a table per tree: every operation is one fixed statement with the tree as a
//! parameter (prepared once per connection), and a new record kind needs no migration.
//! `bytea` compares bytewise, like sled, so prefix and range scans walk the primary key
//! index in the store's key order. Ids ([`PgDb::generate_id`]) come from the sequence
//! `reelnet_ids`. Values are the store's versioned codec bytes, as in sled.
//!
//! **Writes.** The store's single writer hands each batch of jobs to [`PgDb::begin_batch`]
//! … [`PgDb::commit_batch`]: one PostgreSQL transaction per batch, each job inside its own
//! `SAVEPOINT` (a failing job rolls back only itself), and a tree transaction inside a job
//! is a nested savepoint. Round trips are what a job costs, so a job's writes that answer
//! nothing (`insert`, `delete`) are kept back and sent pipelined (each its own primary-key
//! statement, in order) ahead of the job's next statement or at its end: a failed one
//! fails the job exactly as if it had failed at once. Every caller is answered only after `COMMIT` returns, so an
//! acknowledged write is committed — and, when the operator runs a synchronous standby
//! (`synchronous_commit` is left to the server), on the standby too. Each batch first
//! takes `pg_advisory_xact_lock(WRITER_LOCK)`: several tracker processes sharing the
//! database write one batch at a time, exactly like the one writer of one process, so the
//! store's read-check-write jobs (quotas, single-use tokens, caps) stay correct across
//! processes.
//!
//! **Reads.** Outside a job, reads take a connection from a bounded pool
//! (`deadpool-postgres`, `pool_size`) and see committed data; inside a job (on the
//! writer) they use the batch's connection and see the job's own writes. Scans read pages
//! lazily from either end.
//!
//! **Client and threads.** The store's read API is synchronous (as sled's was), and it is
//! called from async handlers, from blocking threads and from single-threaded test
//! runtimes. So the engine runs `tokio-postgres` on a small runtime of its own (two
//! threads) and a synchronous call waits for its answer on a channel — inside
//! `tokio::task::block_in_place` on a multi-threaded runtime, so the caller's worker is
//! handed over rather than stalled. Nothing of the engine runs on the caller's runtime,
//! so a waiting caller can never starve the connection it waits for.
//!
//! **Faults.** Connecting has `connect_timeout_secs`; every statement has the server's
//! `statement_timeout` (set at connect) and a client-side bound, so a lost database never
//! hangs a caller: it gets [`StoreError::Unavailable`] (the API answers 503 with
//! `Retry-After`). A failed batch is rolled back whole and its connection dropped; the
//! pool and the writer connect again on their next use, so the tracker recovers by
//! itself when the database is back.
//!
//! **Schema.** [`migrate`] runs at open under `pg_advisory_lock(MIGRATE_LOCK)` (one
//! tracker at a time): the version in `reelnet_schema`, then each migration this binary
//! knows in its own transaction. A database newer than this binary is refused before
//! anything is written.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Statement};

use super::Entry;
use crate::store::StoreError;

/// `pg_advisory_xact_lock` key of the writers: "reelnet" in ASCII.
pub const WRITER_LOCK: i64 = 0x0072_6565_6c6e_6574;
/// `pg_advisory_lock` key of schema migrations.
pub const MIGRATE_LOCK: i64 = WRITER_LOCK + 1;

/// The schema version this binary writes; migration `i` (from 0) makes version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the key-value table and the id sequence.
    "CREATE TABLE reelnet_schema (version integer NOT NULL);
     INSERT INTO reelnet_schema (version) VALUES (0);
     CREATE TABLE kv (
         tree text COLLATE \"C\" NOT NULL,
         k bytea NOT NULL,
         v bytea NOT NULL,
         PRIMARY KEY (tree, k)
     );
     CREATE SEQUENCE reelnet_ids;",
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

const GET: &str = "SELECT v FROM kv WHERE tree = $1 AND k = $2";
const HAS: &str = "SELECT 1 FROM kv WHERE tree = $1 AND k = $2";
const PUT: &str = "INSERT INTO kv (tree, k, v) VALUES ($1, $2, $3) \
                   ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v";
/// Insert-if-absent in one statement (atomic on its own, outside any batch).
const PUT_NEW: &str = "INSERT INTO kv (tree, k, v) VALUES ($1, $2, $3) \
                       ON CONFLICT (tree, k) DO NOTHING";
const DEL: &str = "DELETE FROM kv WHERE tree = $1 AND k = $2 RETURNING v";
/// A delete that answers nothing (a kept-back write of the writer).
const DEL_KEY: &str = "DELETE FROM kv WHERE tree = $1 AND k = $2";
const NEXT_ID: &str = "SELECT nextval('reelnet_ids')";
/// The next `nextval` answers more than `$1` (never lowers the sequence).
const RAISE_IDS: &str = "SELECT setval('reelnet_ids', \
                         greatest($1, (SELECT last_value FROM reelnet_ids)))";
/// A bulk copy's batch: fails on a key already present (the copy's destination is empty).
const PUT_MANY: &str = "INSERT INTO kv (tree, k, v) \
                        SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t(k, v)";
const COUNT: &str = "SELECT count(*) FROM kv WHERE tree = $1 AND k >= $2";
const COUNT_TO: &str = "SELECT count(*) FROM kv WHERE tree = $1 AND k >= $2 AND k < $3";
const ASC: &str = "SELECT k, v FROM kv WHERE tree = $1 AND k >= $2 ORDER BY k LIMIT $3";
const ASC_TO: &str =
    "SELECT k, v FROM kv WHERE tree = $1 AND k >= $2 AND k < $3 ORDER BY k LIMIT $4";
const DESC: &str = "SELECT k, v FROM kv WHERE tree = $1 AND k >= $2 ORDER BY k DESC LIMIT $3";
const DESC_TO: &str =
    "SELECT k, v FROM kv WHERE tree = $1 AND k >= $2 AND k < $3 ORDER BY k DESC LIMIT $4";

/// Where the database is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host[:port][,host[:port]…]/db[?target_session_attrs=…]`
    pub url: String,
    /// Most pooled connections for reads (the writer has one more of its own).
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// With `sslmode=require` in the URL: the CA certificates (PEM) the server's
    /// certificate must chain to; `None`: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// How connections are made: plain, or TLS (rustls) when the URL says `sslmode=require`.
/// With TLS the server's certificate is checked against `ca_file` (or the system's roots)
/// and its name against the host in the URL, like libpq's `verify-full`. Any other
/// `sslmode` connects without TLS (PostgreSQL's own default, `prefer`, would fall back to
/// plain text against an attacker anyway).
#[derive(Clone)]
pub enum Connector {
    Plain,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connector::Plain => "Connector::Plain",
            Connector::Tls(_) => "Connector::Tls",
        })
    }
}

impl Connector {
    /// The connector `cfg` (parsed from `opts.url`) asks for.
    pub fn new(cfg: &tokio_postgres::Config, opts: &PgOptions) -> Result<Self, StoreError> {
        if cfg.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
            return Ok(Connector::Plain);
        }
        let mut roots = rustls::RootCertStore::empty();
        match &opts.ca_file {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        StoreError::Config(format!(
                            "[storage] ca_file {}: cannot read PEM certificates: {e}",
                            path.display()
                        ))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(StoreError::Config(format!(
                        "[storage] ca_file {}: no usable CA certificate in it",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(StoreError::Config(
                        "sslmode=require: no CA certificates on this system; set [storage] ca_file"
                            .to_owned(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Config(format!("TLS to PostgreSQL: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector::Tls(
            tokio_postgres_rustls::MakeRustlsConnect::new(config),
        ))
    }

    fn manager(&self, cfg: tokio_postgres::Config, mgr: ManagerConfig) -> Manager {
        match self {
            Connector::Plain => Manager::from_config(cfg, NoTls, mgr),
            Connector::Tls(t) => Manager::from_config(cfg, t.clone(), mgr),
        }
    }

    /// Connects and runs the connection in a task of its own (it ends when the client is
    /// dropped or the server goes); with `notes`, the `NOTIFY` payloads received go there
    /// (and the sender is dropped when the connection ends).
    pub async fn connect(
        &self,
        cfg: &tokio_postgres::Config,
        notes: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        Ok(match self {
            Connector::Plain => {
                let (client, conn) = cfg.connect(NoTls).await?;
                tokio::spawn(drive(conn, notes));
                client
            }
            Connector::Tls(t) => {
                let (client, conn) = cfg.connect(t.clone()).await?;
                tokio::spawn(drive(conn, notes));
                client
            }
        })
    }
}

/// Runs a connection until it ends, passing on notifications.
async fn drive<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    notes: Option<tokio::sync::mpsc::Sender<String>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::StreamExt;
    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    while let Some(m) = messages.next().await {
        match m {
            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                if let Some(tx) = &notes {
                    if tx.send(n.payload().to_owned()).await.is_err() {
                        return;
                    }
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(%err, "PostgreSQL connection ended");
                return;
            }
        }
    }
}

/// The engine's own runtime, shut down without blocking wherever the last handle drops.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

struct Shared {
    /// Declared first: dropped (connections closed) before the runtime goes.
    pool: Pool,
    writer_pool: Pool,
    rt: Runtime,
    /// Client-side bound on one operation (pool wait + statement).
    op_timeout: Duration,
    /// `host:port, …` for error messages (never the password).
    hosts: String,
}

/// The writer's connection while a batch is open.
#[derive(Default)]
struct WriterSlot {
    conn: Mutex<Option<Arc<Object>>>,
    /// The job's savepoint command, not sent yet: it goes out pipelined with the job's
    /// first statement (a job that touches nothing costs no round trip).
    pending: Mutex<Option<&'static str>>,
    /// The job's writes that answer nothing (`insert`, `delete`), not sent yet: they go
    /// out pipelined ahead of the job's next statement, or at its end
    /// (so a read sees them, and a progress write costs three round trips, not five).
    deferred: Mutex<Vec<Deferred>>,
    /// `PUT` and `DEL_KEY` on the batch's connection, prepared at its start.
    statements: Mutex<Option<(Statement, Statement)>>,
    /// The batch has a savepoint `job` (made by an earlier job; released by the next).
    has_savepoint: AtomicBool,
    /// An operation of the current job failed (its savepoint is rolled back, and the job
    /// fails even if it swallowed the error).
    poisoned: AtomicBool,
}

/// A write of the open job not sent yet: `(tree, key, Some(value))` sets, `None` deletes.
type Deferred = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// Sends `writes` pipelined, in order, with the statements the batch prepared at its
/// start (so each goes out at the first poll, ahead of whatever is polled after them);
/// the first error, if any. Each is a lookup by primary key (`PUT`, `DEL_KEY`).
async fn flush(
    c: &Object,
    statements: Option<(Statement, Statement)>,
    writes: Vec<Deferred>,
) -> Result<(), tokio_postgres::Error> {
    if writes.is_empty() {
        return Ok(());
    }
    let (put, del) = match statements {
        Some(s) => s,
        // Not prepared (cannot happen inside a batch): prepared now, before any is sent.
        None => (
            c.prepare_cached(PUT).await?,
            c.prepare_cached(DEL_KEY).await?,
        ),
    };
    let sent = writes.iter().map(|(tree, key, value)| {
        let (put, del) = (&put, &del);
        async move {
            match value {
                Some(v) => c.execute(put, &[tree, key, v]).await,
                None => c.execute(del, &[tree, key]).await,
            }
        }
    });
    for r in futures::future::join_all(sent).await {
        r?;
    }
    Ok(())
}

/// An open PostgreSQL database (cheap to clone).
#[derive(Clone)]
pub struct PgDb {
    shared: Arc<Shared>,
    /// `Some`: this handle's trees are the writer's (reads and writes in the open batch).
    writer: Option<Arc<WriterSlot>>,
}

/// One tree: its rows in `kv`.
#[derive(Clone)]
pub struct PgTree {
    name: &'static str,
    db: PgDb,
}

fn pool_err(hosts: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_err(hosts, &e),
        PoolError::Timeout(_) => {
            StoreError::Unavailable(format!("PostgreSQL at {hosts}: no connection in time"))
        }
        other => StoreError::Unavailable(format!("PostgreSQL at {hosts}: {other}")),
    }
}

/// A lost or unreachable server (or one that timed a statement out) is
/// [`StoreError::Unavailable`]; any other error is [`StoreError::Db`].
fn pg_err(hosts: &str, e: &tokio_postgres::Error) -> StoreError {
    let unavailable = match e.code() {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || code.code().starts_with("57")
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
    };
    let what = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    let msg = format!("PostgreSQL at {hosts}: {what}");
    if unavailable {
        StoreError::Unavailable(msg)
    } else {
        StoreError::Db(msg)
    }
}

/// `host:port, …` of a config, for messages.
pub(crate) fn hosts_of(cfg: &tokio_postgres::Config) -> String {
    let ports = cfg.get_ports();
    cfg.get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses the URL and applies the timeouts.
pub(crate) fn pg_config(opts: &PgOptions) -> Result<tokio_postgres::Config, StoreError> {
    let mut cfg: tokio_postgres::Config = opts.url.parse().map_err(|e| {
        StoreError::Config(format!(
            "[storage] url is not a PostgreSQL URL (postgres://user:password@host:port/db): {e}"
        ))
    })?;
    // A `connect_timeout` in the URL (per host, libpq's meaning) wins over the config's.
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(opts.connect_timeout);
    }
    cfg.options(format!(
        "-c statement_timeout={}",
        opts.statement_timeout.as_millis().max(1)
    ));
    cfg.application_name("reelnet-tracker");
    cfg.keepalives(true);
    cfg.keepalives_idle(Duration::from_secs(30));
    Ok(cfg)
}

impl PgDb {
    /// Connects, applies the migrations this binary knows (or refuses a newer schema) and
    /// sets up the pools. Fails, having written nothing, when the database cannot be
    /// reached, refuses the password or is newer than this binary.
    pub fn open(opts: &PgOptions) -> Result<Self, StoreError> {
        let cfg = pg_config(opts)?;
        let hosts = hosts_of(&cfg);
        let connector = Connector::new(&cfg, opts)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reelnet-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let rt = Runtime(Some(rt));
        let make_pool = |size: usize| {
            let mgr = connector.manager(
                cfg.clone(),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(mgr)
                .max_size(size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(opts.connect_timeout + opts.statement_timeout))
                .create_timeout(Some(opts.connect_timeout))
                .recycle_timeout(Some(opts.connect_timeout))
                .build()
                .map_err(|e| StoreError::Db(format!("cannot make the PostgreSQL pool: {e}")))
        };
        let shared = Arc::new(Shared {
            pool: make_pool(opts.pool_size)?,
            writer_pool: make_pool(1)?,
            rt,
            op_timeout: opts.connect_timeout * 2 + opts.statement_timeout + Duration::from_secs(1),
            hosts,
        });
        let db = PgDb {
            shared,
            writer: None,
        };
        let (cfg2, hosts2) = (cfg.clone(), db.shared.hosts.clone());
        db.wait(async move { migrate(&cfg2, &connector, &hosts2).await })?;
        Ok(db)
    }

    pub(super) fn tree(&self, name: &'static str) -> PgTree {
        PgTree {
            name,
            db: self.clone(),
        }
    }

    pub(super) fn for_writer(&self) -> PgDb {
        PgDb {
            shared: self.shared.clone(),
            writer: Some(Arc::new(WriterSlot::default())),
        }
    }

    /// Waits (synchronously, from any thread) for `fut` run on the engine's runtime.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(rt) = &self.shared.rt.0 else {
            return Err(StoreError::Closed);
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let limit = self.shared.op_timeout;
        let hosts = self.shared.hosts.clone();
        rt.spawn(async move {
            let r = match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "PostgreSQL at {hosts} did not answer within {} s",
                    limit.as_secs()
                ))),
            };
            let _ = tx.send(r);
        });
        let recv = move || rx.recv().unwrap_or(Err(StoreError::Closed));
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        }
    }

    /// Runs `op` on a connection: the writer's open batch for writer handles, else a
    /// pooled one.
    fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Object>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let hosts = self.shared.hosts.clone();
        let result = match &self.writer {
            Some(slot) => {
                let conn = match slot.conn.lock() {
                    Ok(c) => c.clone(),
                    Err(_) => None,
                };
                let Some(conn) = conn else {
                    slot.poisoned.store(true, Ordering::SeqCst);
                    return Err(StoreError::Unavailable(format!(
                        "PostgreSQL at {hosts}: the writer has no connection"
                    )));
                };
                let pending = slot.pending.lock().ok().and_then(|mut p| p.take());
                let deferred = slot
                    .deferred
                    .lock()
                    .map(|mut d| std::mem::take(&mut *d))
                    .unwrap_or_default();
                let statements = slot.statements.lock().ok().and_then(|s| s.clone());
                self.wait(async move {
                    // Sent in the order polled (the savepoint, the deferred writes, then
                    // the operation), answered in order: one round trip.
                    let savepoint = async {
                        match pending {
                            Some(sql) => conn.batch_execute(sql).await,
                            None => Ok(()),
                        }
                    };
                    let (sp, written, r) = tokio::join!(
                        savepoint,
                        flush(&conn, statements, deferred),
                        op(conn.clone())
                    );
                    sp.map_err(|e| pg_err(&hosts, &e))?;
                    written.map_err(|e| pg_err(&hosts, &e))?;
                    r.map_err(|e| pg_err(&hosts, &e))
                })
            }
            None => {
                let pool = self.shared.pool.clone();
                self.wait(async move {
                    let conn = pool.get().await.map_err(|e| pool_err(&hosts, e))?;
                    op(Arc::new(conn)).await.map_err(|e| pg_err(&hosts, &e))
                })
            }
        };
        if let (Err(_), Some(slot)) = (&result, &self.writer) {
            slot.poisoned.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Runs plain SQL on the writer's batch connection.
    fn writer_exec(&self, sql: &'static str) -> Result<(), StoreError> {
        self.run(move |c| async move { c.batch_execute(sql).await })
    }

    pub(super) fn generate_id(&self) -> Result<u64, StoreError> {
        let id: i64 = self.run(|c| async move {
            let st = c.prepare_cached(NEXT_ID).await?;
            Ok(c.query_one(&st, &[]).await?.get(0))
        })?;
        Ok(id as u64)
    }

    pub(super) fn raise_ids_above(&self, floor: u64) -> Result<(), StoreError> {
        let floor = i64::try_from(floor).map_err(|_| {
            StoreError::Db(format!("id {floor} does not fit PostgreSQL's sequence"))
        })?;
        self.run(move |c| async move {
            let st = c.prepare_cached(RAISE_IDS).await?;
            c.query_one(&st, &[&floor]).await.map(|_| ())
        })
    }

    /// Starts a batch: takes the writer connection, `BEGIN`, and the writers' advisory
    /// lock. On `Err` the batch's jobs still run (and fail: the writer has no connection).
    pub fn begin_batch(&self) -> Result<(), StoreError> {
        let Some(slot) = &self.writer else {
            return Err(StoreError::Db("not the writer's handle".to_owned()));
        };
        let pool = self.shared.writer_pool.clone();
        let hosts = self.shared.hosts.clone();
        let (conn, statements) = self.wait(async move {
            let conn = pool.get().await.map_err(|e| pool_err(&hosts, e))?;
            let begun = conn
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
                ))
                .await;
            // Kept-back writes are pipelined ahead of other statements: theirs must be
            // prepared before (cache hits after the connection's first batch).
            let begun = match begun {
                Ok(()) => match (
                    conn.prepare_cached(PUT).await,
                    conn.prepare_cached(DEL_KEY).await,
                ) {
                    (Ok(put), Ok(del)) => Ok((put, del)),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
                Err(e) => Err(e),
            };
            match begun {
                Ok(statements) => Ok((conn, statements)),
                Err(e) => {
                    drop(Object::take(conn));
                    Err(pg_err(&hosts, &e))
                }
            }
        })?;
        if let Ok(mut c) = slot.conn.lock() {
            *c = Some(Arc::new(conn));
        }
        if let Ok(mut s) = slot.statements.lock() {
            *s = Some(statements);
        }
        slot.has_savepoint.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Before a job: its savepoint (sent with the job's first statement; the previous
    /// job's savepoint is released in the same command).
    pub fn begin_job(&self) {
        if let Some(slot) = &self.writer {
            slot.poisoned.store(false, Ordering::SeqCst);
            if let Ok(mut d) = slot.deferred.lock() {
                d.clear();
            }
            let sql = if slot.has_savepoint.load(Ordering::SeqCst) {
                "RELEASE SAVEPOINT job; SAVEPOINT job"
            } else {
                "SAVEPOINT job"
            };
            if let Ok(mut p) = slot.pending.lock() {
                *p = Some(sql);
            }
        }
    }

    /// After a job that answered `ok`: keeps its writes, or rolls them back (also when one
    /// of its operations failed). `Err`: the job failed even though it answered `ok`.
    pub fn end_job(&self, ok: bool) -> Result<(), StoreError> {
        let Some(slot) = &self.writer else {
            return Ok(());
        };
        let has_conn = slot.conn.lock().map(|c| c.is_some()).unwrap_or(false);
        if !has_conn {
            return Err(StoreError::Unavailable(format!(
                "PostgreSQL at {}: the writer has no connection",
                self.shared.hosts
            )));
        }
        // A failed job's kept-back writes are dropped (they would only be rolled back); an
        // ok job's go out now (with its savepoint if nothing else went), and a failure
        // poisons the job like any failed statement.
        let send = match slot.deferred.lock() {
            Ok(mut d) if !ok => {
                d.clear();
                false
            }
            Ok(d) => !d.is_empty(),
            Err(_) => false,
        };
        if send {
            let _ = self.run(|_| async { Ok::<(), tokio_postgres::Error>(()) });
        }
        let poisoned = slot.poisoned.load(Ordering::SeqCst);
        // Nothing sent: the job touched nothing, and no savepoint was made for it.
        let unsent = slot
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.take())
            .is_some();
        if unsent {
            return Ok(());
        }
        slot.has_savepoint.store(true, Ordering::SeqCst);
        if ok && !poisoned {
            // Released by the next job's savepoint command, or by COMMIT.
            return Ok(());
        }
        // Rolling back to the savepoint also clears a failed statement's aborted state.
        self.writer_exec("ROLLBACK TO SAVEPOINT job")?;
        slot.poisoned.store(false, Ordering::SeqCst);
        if ok && poisoned {
            return Err(StoreError::Unavailable(format!(
                "PostgreSQL at {}: a statement of this write failed",
                self.shared.hosts
            )));
        }
        Ok(())
    }

    /// Ends a batch: `COMMIT`, and gives the connection back. On failure the transaction
    /// is rolled back (by dropping its connection): no job of the batch is written.
    pub fn commit_batch(&self) -> Result<(), StoreError> {
        let Some(slot) = &self.writer else {
            return Ok(());
        };
        if let Ok(mut p) = slot.pending.lock() {
            *p = None;
        }
        // Every job's writes went out at its end (`end_job`).
        if let Ok(mut d) = slot.deferred.lock() {
            d.clear();
        }
        let conn = slot.conn.lock().ok().and_then(|mut c| c.take());
        let Some(conn) = conn else {
            return Err(StoreError::Unavailable(format!(
                "PostgreSQL at {}: the writer has no connection",
                self.shared.hosts
            )));
        };
        let hosts = self.shared.hosts.clone();
        self.wait(async move {
            let committed = conn.batch_execute("COMMIT").await;
            match committed {
                Ok(()) => Ok(()),
                Err(e) => {
                    // The connection may be half way through anything: never reuse it.
                    if let Ok(obj) = Arc::try_unwrap(conn) {
                        drop(Object::take(obj));
                    }
                    Err(pg_err(&hosts, &e))
                }
            }
        })
    }
}

impl PgTree {
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, key) = (self.name, key.to_vec());
        self.db.run(move |c| async move {
            let st = c.prepare_cached(GET).await?;
            Ok(c.query_opt(&st, &[&name, &key]).await?.map(|r| r.get(0)))
        })
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> Result<bool, StoreError> {
        let (name, key) = (self.name, key.to_vec());
        self.db.run(move |c| async move {
            let st = c.prepare_cached(HAS).await?;
            Ok(c.query_opt(&st, &[&name, &key]).await?.is_some())
        })
    }

    pub(super) fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if self.defer(key, Some(value)) {
            return Ok(());
        }
        let (name, key, value) = (self.name, key.to_vec(), value.to_vec());
        self.db.run(move |c| async move {
            let st = c.prepare_cached(PUT).await?;
            c.execute(&st, &[&name, &key, &value]).await.map(|_| ())
        })
    }

    /// Sets `key` to `value` unless it has a value; `true` when it was set. One
    /// autocommitted statement outside a batch, atomic across processes by itself.
    pub(super) fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let (name, key, value) = (self.name, key.to_vec(), value.to_vec());
        self.db.run(move |c| async move {
            let st = c.prepare_cached(PUT_NEW).await?;
            Ok(c.execute(&st, &[&name, &key, &value]).await? == 1)
        })
    }

    /// On the writer's handle: keeps the write for the job's next statement (or its end)
    /// and answers `true`; elsewhere `false` (the caller sends it now).
    fn defer(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        let Some(slot) = &self.db.writer else {
            return false;
        };
        match slot.deferred.lock() {
            Ok(mut d) => {
                d.push((self.name, key.to_vec(), value.map(<[u8]>::to_vec)));
                true
            }
            Err(_) => false,
        }
    }

    /// Removes `key` without answering its old value (deferred like [`PgTree::insert`]).
    pub(super) fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        if self.defer(key, None) {
            return Ok(());
        }
        self.remove(key).map(|_| ())
    }

    pub(super) fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, key) = (self.name, key.to_vec());
        self.db.run(move |c| async move {
            let st = c.prepare_cached(DEL).await?;
            Ok(c.query_opt(&st, &[&name, &key]).await?.map(|r| r.get(0)))
        })
    }

    /// Inserts `entries` in one statement (autocommitted outside a batch).
    pub(super) fn insert_many(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let name = self.name;
        let (keys, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = entries.into_iter().unzip();
        self.db.run(move |c| async move {
            let st = c.prepare_cached(PUT_MANY).await?;
            c.execute(&st, &[&name, &keys, &values]).await.map(|_| ())
        })
    }

    /// How many keys lie in `from..to`.
    pub(super) fn count(&self, from: &[u8], to: Option<Vec<u8>>) -> Result<usize, StoreError> {
        let (name, from) = (self.name, from.to_vec());
        let n: i64 = self.db.run(move |c| async move {
            let row = match &to {
                Some(to) => {
                    let st = c.prepare_cached(COUNT_TO).await?;
                    c.query_one(&st, &[&name, &from, to]).await?
                }
                None => {
                    let st = c.prepare_cached(COUNT).await?;
                    c.query_one(&st, &[&name, &from]).await?
                }
            };
            Ok(row.get(0))
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Up to `n` entries in `from..to`, ascending or descending.
    fn page(
        &self,
        from: Vec<u8>,
        to: Option<Vec<u8>>,
        n: i64,
        ascending: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let name = self.name;
        self.db.run(move |c| async move {
            let rows = match (&to, ascending) {
                (Some(to), true) => {
                    let st = c.prepare_cached(ASC_TO).await?;
                    c.query(&st, &[&name, &from, to, &n]).await?
                }
                (None, true) => {
                    let st = c.prepare_cached(ASC).await?;
                    c.query(&st, &[&name, &from, &n]).await?
                }
                (Some(to), false) => {
                    let st = c.prepare_cached(DESC_TO).await?;
                    c.query(&st, &[&name, &from, to, &n]).await?
                }
                (None, false) => {
                    let st = c.prepare_cached(DESC).await?;
                    c.query(&st, &[&name, &from, &n]).await?
                }
            };
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// A lazy walk over `from..to` (`to` exclusive; `None`: to the end).
    pub(super) fn scan(&self, from: Vec<u8>, to: Option<Vec<u8>>) -> PgIter {
        PgIter {
            tree: self.clone(),
            from,
            to,
            front: VecDeque::new(),
            back: VecDeque::new(),
            front_read_all: false,
            back_read_all: false,
            last_front: None,
            last_back: None,
            done: false,
            page: FIRST_PAGE,
        }
    }
}

const FIRST_PAGE: i64 = 32;
const MAX_PAGE: i64 = 1024;

/// A lazy walk from both ends: each end reads pages between the last key either end
/// handed out, and stops where they meet.
pub struct PgIter {
    tree: PgTree,
    from: Vec<u8>,
    to: Option<Vec<u8>>,
    front: VecDeque<Entry>,
    back: VecDeque<Entry>,
    /// The last page read from that end held every remaining entry.
    front_read_all: bool,
    back_read_all: bool,
    last_front: Option<Vec<u8>>,
    last_back: Option<Vec<u8>>,
    done: bool,
    page: i64,
}

/// The first key after `k`.
fn after(k: &[u8]) -> Vec<u8> {
    let mut next = k.to_vec();
    next.push(0);
    next
}

impl PgIter {
    fn bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let from = match &self.last_front {
            Some(k) => after(k),
            None => self.from.clone(),
        };
        let to = match &self.last_back {
            Some(k) => Some(k.clone()),
            None => self.to.clone(),
        };
        (from, to)
    }

    fn fetch(&mut self, ascending: bool) -> Result<(), StoreError> {
        let (from, to) = self.bounds();
        let n = self.page;
        self.page = (self.page * 4).min(MAX_PAGE);
        let rows = self.tree.page(from, to, n, ascending)?;
        let all = (rows.len() as i64) < n;
        if ascending {
            self.front_read_all = all;
            self.front = rows.into();
        } else {
            self.back_read_all = all;
            self.back = rows.into();
        }
        Ok(())
    }
}

impl Iterator for PgIter {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some((k, v)) = self.front.pop_front() {
                if self.last_back.as_ref().is_some_and(|b| &k >= b) {
                    self.done = true;
                    return None;
                }
                self.last_front = Some(k.clone());
                return Some(Ok((k, v)));
            }
            if self.front_read_all {
                self.done = true;
                return None;
            }
            if let Err(e) = self.fetch(true) {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

impl DoubleEndedIterator for PgIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some((k, v)) = self.back.pop_front() {
                if self.last_front.as_ref().is_some_and(|f| &k <= f) {
                    self.done = true;
                    return None;
                }
                self.last_back = Some(k.clone());
                return Some(Ok((k, v)));
            }
            if self.back_read_all {
                self.done = true;
                return None;
            }
            if let Err(e) = self.fetch(false) {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// Runs `f` as a nested savepoint of the writer's open job: `f`'s error rolls back what
/// it wrote (and is returned).
pub(super) fn transaction<R>(
    trees: &[PgTree],
    f: impl Fn() -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let Some(db) = trees.first().map(|t| &t.db) else {
        return f();
    };
    if db.writer.is_none() {
        return Err(StoreError::Db(
            "a transaction runs only inside a writer job".to_owned(),
        ));
    }
    db.writer_exec("SAVEPOINT tx")?;
    match f() {
        Ok(r) => {
            db.writer_exec("RELEASE SAVEPOINT tx")?;
            Ok(r)
        }
        Err(e) => {
            db.writer_exec("ROLLBACK TO SAVEPOINT tx")?;
            // The abort was the closure's decision: the job goes on.
            if let Some(slot) = &db.writer {
                slot.poisoned.store(false, Ordering::SeqCst);
            }
            Err(e)
        }
    }
}

/// Brings the schema to [`SCHEMA_VERSION`], one tracker at a time; refuses a newer one.
async fn migrate(
    cfg: &tokio_postgres::Config,
    connector: &Connector,
    hosts: &str,
) -> Result<(), StoreError> {
    let client = connector
        .connect(cfg, None)
        .await
        .map_err(|e| match pg_err(hosts, &e) {
            StoreError::Unavailable(m) | StoreError::Db(m) => {
                StoreError::Unavailable(format!("cannot connect: {m}"))
            }
            other => other,
        })?;
    let err = |e: tokio_postgres::Error| pg_err(hosts, &e);
    let result = async {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
            .await
            .map_err(err)?;
        let exists: bool = client
            .query_one("SELECT to_regclass('reelnet_schema') IS NOT NULL", &[])
            .await
            .map_err(err)?
            .get(0);
        let mut version: i32 = if exists {
            client
                .query_one("SELECT max(version) FROM reelnet_schema", &[])
                .await
                .map_err(err)?
                .get::<_, Option<i32>>(0)
                .unwrap_or(0)
        } else {
            0
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        while version < SCHEMA_VERSION {
            let Some(sql) = MIGRATIONS.get(version as usize) else {
                break;
            };
            let next = version + 1;
            let sql = format!("BEGIN; {sql}; UPDATE reelnet_schema SET version = {next}; COMMIT;");
            if let Err(e) = client.batch_execute(&sql).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(err(e));
            }
            tracing::info!(version = next, "PostgreSQL schema migrated");
            version = next;
        }
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
            .await;
        Ok(())
    }
    .await;
    // Closes the connection (and with it the session's locks).
    drop(client);
    result
}
