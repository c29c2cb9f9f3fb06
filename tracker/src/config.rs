//! The tracker's configuration: one TOML file (documented key by key in
//! `configs/tracker.toml`), overridden by command-line flags. A bad file is refused with a
//! message naming the file, the key and what is wrong.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use reelnet_runtime::config::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Where the tracker keeps its database and signing keys.
    pub data_dir: PathBuf,
    /// HTTP address of the API.
    pub listen: SocketAddr,
    /// `iss` of every token this tracker signs.
    pub issuer: String,
    /// Base URL of the web app that links in emails point at (a node's gateway).
    pub web_url: String,
    /// The tracker's own public URL (`http(s)://host[:port]`, no path): where its sign-in,
    /// account, consent and device pages are, what mail links and OAuth metadata name.
    /// Empty: `http://<listen>` (the address actually bound, when the port is 0).
    pub public_url: String,
    pub auth: AuthConfig,
    pub pages: PagesConfig,
    pub http: HttpConfig,
    pub smtp: SmtpConfig,
    pub rooms: RoomsConfig,
    pub billing: BillingConfig,
    pub requests: RequestsConfig,
    pub network: NetworkConfig,
    pub library: LibraryConfig,
    pub oauth: OauthConfig,
    /// `[storage]` (also accepted as `[store]`).
    #[serde(alias = "store")]
    pub storage: StorageConfig,
}

/// Which database engine the tracker keeps its records in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageEngine {
    /// Embedded sled under `<data_dir>/db` (the default).
    #[default]
    Sled,
    /// A PostgreSQL database at `url`.
    Postgres,
}

/// `[storage]` (or `[store]`): the engine, and how durable an acknowledged write is
/// (README, "Durability").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sled` (embedded, the default) or `postgres`.
    pub engine: StorageEngine,
    /// PostgreSQL only: `postgres://user:password@host1:port,host2:port/db?target_session_attrs=read-write`.
    pub url: String,
    /// PostgreSQL only: most pooled connections for reads (the writer has one more).
    pub pool_size: usize,
    /// PostgreSQL only: give up connecting after this many seconds.
    pub connect_timeout_secs: u64,
    /// PostgreSQL only: the server cancels a statement running longer than this.
    pub statement_timeout_secs: u64,
    /// PostgreSQL only, with `sslmode=require` in `url`: CA certificates (PEM) the
    /// server's certificate must chain to. Empty: the system's roots.
    pub ca_file: std::path::PathBuf,
    /// After each group commit's sled flush, `fdatasync` sled's log file before answering.
    /// sled's own flush (`sync_file_range`) already survives a crash of the process; this
    /// also survives power loss (the device's write cache is flushed and the log's block
    /// allocation committed). Off: writes acknowledged in the last `flush_every` window
    /// (sled's background `fsync`, 500 ms) may be lost on power loss. sled only.
    pub fsync: bool,
}

impl StorageConfig {
    /// What the store's writer waits for before acknowledging.
    pub fn durability(&self) -> crate::store::Durability {
        if self.fsync {
            crate::store::Durability::Fsync
        } else {
            crate::store::Durability::Flush
        }
    }
}

impl StorageConfig {
    /// The engine to open: sled in `<data_dir>/db`, or PostgreSQL at `url`.
    pub fn engine(
        &self,
        data_dir: &Path,
    ) -> Result<crate::store::Engine, crate::store::StoreError> {
        use std::time::Duration;
        Ok(match self.engine {
            StorageEngine::Sled => crate::store::Engine::Sled {
                dir: data_dir.join("db"),
                durability: self.durability(),
            },
            StorageEngine::Postgres => {
                if self.url.trim().is_empty() {
                    return Err(crate::store::StoreError::Config(
                        "[storage] engine = \"postgres\" needs [storage] url = \"postgres://user:password@host:port/db\"".to_owned(),
                    ));
                }
                if self.pool_size == 0
                    || self.connect_timeout_secs == 0
                    || self.statement_timeout_secs == 0
                {
                    return Err(crate::store::StoreError::Config(
                        "[storage] pool_size, connect_timeout_secs and statement_timeout_secs must be at least 1".to_owned(),
                    ));
                }
                crate::store::Engine::Postgres(crate::store::kv::postgres::PgOptions {
                    url: self.url.clone(),
                    pool_size: self.pool_size,
                    connect_timeout: Duration::from_secs(self.connect_timeout_secs),
                    statement_timeout: Duration::from_secs(self.statement_timeout_secs),
                    ca_file: (!self.ca_file.as_os_str().is_empty()).then(|| self.ca_file.clone()),
                })
            }
        })
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            engine: StorageEngine::Sled,
            url: String::new(),
            pool_size: 8,
            connect_timeout_secs: 5,
            statement_timeout_secs: 5,
            ca_file: std::path::PathBuf::new(),
            fsync: true,
        }
    }
}

/// Sign-in through the tracker (OAuth; docs/signin.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OauthConfig {
    /// A refresh token presented again within this many seconds of its rotation rotates
    /// again (two tabs refreshing at once); later, it ends its session.
    pub refresh_grace_secs: u64,
    /// Wrong device codes one client address may type in one window (and one signed-in
    /// account may name in a decision on the device page).
    pub device_guesses_per_address: u32,
    /// The window of `device_guesses_per_address`, seconds.
    pub device_guess_window_secs: u64,
}

impl Default for OauthConfig {
    fn default() -> Self {
        Self {
            refresh_grace_secs: 10,
            device_guesses_per_address: 10,
            device_guess_window_secs: 900,
        }
    }
}

/// The tracker's own pages (sign-in, account, consent, device): `[pages]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// How long a browser session on the tracker's pages lasts, seconds.
    pub session_ttl_secs: u64,
    /// Changes on the account page (password, passkeys, sessions, deleting the account)
    /// need a password or passkey sign-in within this many seconds; else the page asks
    /// for the password again.
    pub recent_sign_in_secs: u64,
    /// Directory of the built web app (`web/dist`) whose network console the tracker
    /// serves at `/console` on its own origin (admins, with their tracker session). Unset:
    /// `/console` says how to turn it on.
    pub console_dir: Option<std::path::PathBuf>,
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            session_ttl_secs: 30 * 24 * 3600,
            recent_sign_in_secs: 600,
            console_dir: None,
        }
    }
}

/// Per-user caps on a user's own lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryConfig {
    /// Most movies on one watch-later list; adding one more answers 409 `watchlist_full`.
    pub watchlist_max: usize,
    /// Most movies with stored progress per user (history lists exactly these). Saving
    /// progress for one more movie evicts the one watched longest ago, so saving progress
    /// never fails for being over the cap.
    pub progress_max: usize,
}

impl Default for LibraryConfig {
    fn default() -> Self {
        Self {
            watchlist_max: 2000,
            progress_max: 5000,
        }
    }
}

/// Network membership: who may run a node in this network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// The network's id, written into every certificate. Empty: one is made on first start
    /// and kept in `<data_dir>/network-keys/network_id`.
    pub id: String,
    /// `""` (off): nodes join only with an invite. `"edge"`: any node may enroll as an edge
    /// member without an invite (its certificate is marked open).
    pub open_enrollment: String,
    /// Lifetime of a membership certificate, seconds (at most 7 days). Nodes renew when a
    /// third of it is left.
    pub cert_lifetime_secs: u64,
    /// Movie requests one node may hold claimed at a time.
    pub max_claims_per_node: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            open_enrollment: String::new(),
            cert_lifetime_secs: 7 * 24 * 3600,
            max_claims_per_node: 2,
        }
    }
}

/// Subscriptions: the billing webhook and the subscription emails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// Shared secret of `POST /api/v1/billing/webhook` (HMAC-SHA256). Empty: one is made on
    /// first start and kept in `<data_dir>/billing_webhook_secret` (mode 0600).
    pub webhook_secret: String,
    /// Signed timestamps older (or newer) than this are refused, seconds.
    pub tolerance_secs: u64,
    /// How long before a premium period ends the "about to expire" email goes out, seconds.
    pub expiry_warning_secs: u64,
    /// How often the subscription worker looks for periods starting, ending and ended.
    pub check_interval_secs: u64,
}

/// Movie requests and the nodes that fulfil them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestsConfig {
    /// Requests a free account may make in 30 days.
    pub free_per_month: u32,
    /// Requests a premium account may make in 30 days.
    pub premium_per_month: u32,
    /// New requests wait for an admin's approval.
    pub require_approval: bool,
    /// How long a node's claim lasts without a progress report, seconds.
    pub lease_secs: u64,
    /// Removed: nodes sign their claims with their key and membership certificate. A file
    /// that still sets it is refused with a pointer to invites.
    pub node_secret: Option<String>,
    /// TMDb v3 API key: requested ids are checked and titled by TMDb. Empty: the asker's
    /// title is kept and any id is accepted.
    pub tmdb_api_key: String,
    /// Base URL of TMDb's v3 API.
    pub tmdb_api_url: String,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            webhook_secret: String::new(),
            tolerance_secs: 300,
            expiry_warning_secs: 3 * 24 * 3600,
            check_interval_secs: 600,
        }
    }
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            free_per_month: 3,
            premium_per_month: 20,
            require_approval: false,
            lease_secs: 30,
            node_secret: None,
            tmdb_api_key: String::new(),
            tmdb_api_url: "https://api.themoviedb.org/3".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of an access token, seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token, seconds.
    pub refresh_ttl_secs: u64,
    /// Lifetime of an email verification link, seconds.
    pub verify_ttl_secs: u64,
    /// Lifetime of a password reset link, seconds.
    pub reset_ttl_secs: u64,
    /// Whether playing and requesting need a verified email.
    pub require_verified_email: bool,
    /// Failed logins on one account (from addresses it has not signed in from) in one
    /// window before further attempts on it from such addresses are spaced out: 1 s,
    /// doubling up to `account_backoff_max_secs`. Not a lock: the owner's usual
    /// addresses pass, and a new one waits at most the cap.
    pub max_failures_per_account: u32,
    /// Longest spacing of the per-account backoff, seconds.
    pub account_backoff_max_secs: u64,
    /// Failed logins allowed per account and client address in one window.
    pub max_failures_per_account_and_address: u32,
    /// Failed logins allowed per client address (any account) in one window.
    pub max_failures_per_address: u32,
    /// Length of the failed-login window, seconds.
    pub failure_window_secs: u64,
    /// Registrations per client address per hour.
    pub registrations_per_address_per_hour: u32,
    /// Password-reset requests per client address per hour.
    pub reset_requests_per_address_per_hour: u32,
    /// Password-reset confirmations per client address per failure window.
    pub reset_confirms_per_address: u32,
    /// Verification-mail resends per client address per hour.
    pub resends_per_address_per_hour: u32,
    /// Account mails (verification, reset, "someone tried to register") to one email
    /// address per hour; beyond it the request is answered the same but no mail goes out.
    pub mails_per_address_per_hour: u32,
    /// A member node forwarding for many viewers may make this many times the per-address
    /// limits in total (each viewer's address is also limited on its own).
    pub per_node_factor: u32,
    /// Password hashes (argon2id, about 19 MiB each) run at once; 0: one per core.
    pub hash_concurrency: usize,
    /// Hashes that may wait for a free worker; beyond that the answer is 503 with
    /// `Retry-After`.
    pub hash_queue: usize,
    /// Verified access tokens remembered (by their BLAKE3 hash) until they expire, so a
    /// client's next request skips the ed25519 check; 0 turns the cache off. The session
    /// and account are still checked on every request, so sign-out and revocation act at
    /// once.
    pub token_cache_entries: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, bytes (larger gets 413).
    pub max_body_bytes: u64,
    /// Reverse proxies of the operator's own (e.g. nginx in front of the tracker) whose
    /// `X-Forwarded-For` / `X-Forwarded-Host` are believed. Node gateways do not belong
    /// here: a member node vouches for its viewer's address with its signature
    /// (`Reelnet-Viewer-Addr`), and a forwarded header from anyone else is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// `[http.tls]`: serve HTTPS (certificate files or ACME), with an optional plain-HTTP
    /// redirect listener and HSTS. Off when absent.
    pub tls: Option<reelnet_runtime::tls::TlsConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (loopback and tests only).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From: address of every email.
    pub from: String,
    /// Sending attempts before a message is given up.
    pub attempts: u32,
    /// Messages waiting to be sent; beyond it new ones are dropped (and logged) rather than
    /// holding up the request that wanted them.
    pub queue: usize,
}

/// The `[rooms]` section of the tracker's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Whether only premium users may create (host) rooms.
    pub premium_only: bool,
    /// Rooms one user may host at once.
    pub max_rooms_per_user: usize,
    /// Connections one room accepts at once.
    pub max_members: usize,
    /// Rooms the tracker keeps at once.
    pub max_rooms: usize,
    /// How long the room waits for buffering members before it goes on without them, ms.
    pub ready_timeout_ms: u64,
    /// Smallest delay between a command and its scheduled execution, ms.
    pub min_lead_ms: u64,
    /// Largest such delay (caps 2 × RTT of a very slow member), ms.
    pub max_lead_ms: u64,
    /// Largest WebSocket text frame accepted, bytes (larger ones get an error frame).
    pub max_frame_bytes: usize,
    /// Longest chat message, characters.
    pub chat_max_chars: usize,
    /// Chat messages one connection may send per `chat_window_ms`.
    pub chat_burst: usize,
    /// The chat rate-limit window, ms.
    pub chat_window_ms: u64,
    /// Times one member (per user, across reconnects) may start buffering, and so make the
    /// room wait, per `stall_window_ms`. Further `buffering` frames in the window are
    /// dropped (the room neither pauses nor waits for that member, who catches up alone)
    /// and the member is told once (`stall_rate_limited`).
    pub stall_burst: usize,
    /// The window of `stall_burst`, ms.
    pub stall_window_ms: u64,
    /// A room with nobody connected for this long is deleted, seconds.
    pub idle_timeout_secs: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            premium_only: true,
            max_rooms_per_user: 3,
            max_members: 16,
            max_rooms: 10_000,
            ready_timeout_ms: 3000,
            min_lead_ms: 300,
            max_lead_ms: 3000,
            max_frame_bytes: 4096,
            chat_max_chars: 500,
            chat_burst: 5,
            chat_window_ms: 5000,
            stall_burst: 3,
            stall_window_ms: 60_000,
            idle_timeout_secs: 3600,
        }
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data/tracker"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            issuer: "reelnet-tracker".to_owned(),
            web_url: "http://127.0.0.1:8080".to_owned(),
            public_url: String::new(),
            auth: AuthConfig::default(),
            pages: PagesConfig::default(),
            http: HttpConfig::default(),
            smtp: SmtpConfig::default(),
            rooms: RoomsConfig::default(),
            billing: BillingConfig::default(),
            requests: RequestsConfig::default(),
            network: NetworkConfig::default(),
            library: LibraryConfig::default(),
            oauth: OauthConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            verify_ttl_secs: 24 * 3600,
            reset_ttl_secs: 3600,
            require_verified_email: true,
            max_failures_per_account: 10,
            account_backoff_max_secs: 60,
            max_failures_per_account_and_address: 5,
            max_failures_per_address: 20,
            failure_window_secs: 15 * 60,
            registrations_per_address_per_hour: 10,
            reset_requests_per_address_per_hour: 5,
            reset_confirms_per_address: 10,
            resends_per_address_per_hour: 5,
            mails_per_address_per_hour: 3,
            per_node_factor: 100,
            hash_concurrency: 0,
            hash_queue: 32,
            token_cache_entries: 100_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 2525,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "reelnet <no-reply@reelnet.invalid>".to_owned(),
            attempts: 5,
            queue: 1024,
        }
    }
}

impl TrackerConfig {
    /// The tracker's own origin: `public_url`, or `http://<listen>` (`https://` with
    /// `[http.tls]`) when it is unset (a running tracker has already filled it in with the
    /// address it bound).
    pub fn public_origin(&self) -> String {
        if self.public_url.is_empty() {
            self.default_origin(self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The origin of a tracker bound to `addr` without a `public_url`: `http://{addr}`, or
    /// with `[http.tls]` `https://{addr}` (files) or `https://{first ACME domain}[:port]`.
    pub fn default_origin(&self, addr: SocketAddr) -> String {
        let Some(tls) = &self.http.tls else {
            return format!("http://{addr}");
        };
        match tls.acme.as_ref().and_then(|a| a.domains.first()) {
            Some(domain) if addr.port() == 443 => format!("https://{domain}"),
            Some(domain) => format!("https://{domain}:{}", addr.port()),
            None => format!("https://{addr}"),
        }
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = reelnet_runtime::config::load_toml(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            at: String::new(),
            message: message.to_owned(),
        };
        if !self.web_url.starts_with("http://") && !self.web_url.starts_with("https://") {
            return Err(invalid("web_url", "must be an http:// or https:// URL"));
        }
        if self.issuer.is_empty() {
            return Err(invalid("issuer", "must not be empty"));
        }
        if self.storage.engine == StorageEngine::Postgres {
            if !self.storage.url.starts_with("postgres://")
                && !self.storage.url.starts_with("postgresql://")
            {
                return Err(invalid(
                    "storage.url",
                    "engine = \"postgres\" needs url = \"postgres://user:password@host:port/db\"",
                ));
            }
            for (key, v) in [
                ("storage.pool_size", self.storage.pool_size as u64),
                (
                    "storage.connect_timeout_secs",
                    self.storage.connect_timeout_secs,
                ),
                (
                    "storage.statement_timeout_secs",
                    self.storage.statement_timeout_secs,
                ),
            ] {
                if v == 0 {
                    return Err(invalid(key, "must be at least 1"));
                }
            }
        }
        if let Some(tls) = &self.http.tls {
            if let Err(err) = tls.validate("http.tls") {
                return Err(match err {
                    reelnet_runtime::tls::TlsError::Config { key, reason } => {
                        invalid(&key, &reason)
                    }
                    other => invalid("http.tls", &other.to_string()),
                });
            }
            if !self.public_url.is_empty() && !self.public_url.starts_with("https://") {
                return Err(invalid(
                    "public_url",
                    "must be an https:// origin when [http.tls] is on",
                ));
            }
        }
        if !self.public_url.is_empty()
            && reelnet_proto::membership::check_origin(&self.public_url).is_err()
        {
            return Err(invalid(
                "public_url",
                "must be an origin: http(s)://host[:port], no path",
            ));
        }
        if self.auth.access_ttl_secs < 10 {
            return Err(invalid(
                "auth.access_ttl_secs",
                "must be at least 10 seconds",
            ));
        }
        if self.auth.refresh_ttl_secs <= self.auth.access_ttl_secs {
            return Err(invalid(
                "auth.refresh_ttl_secs",
                "must be longer than auth.access_ttl_secs",
            ));
        }
        if self.pages.session_ttl_secs < 60 {
            return Err(invalid(
                "pages.session_ttl_secs",
                "must be at least 60 seconds",
            ));
        }
        if self.http.max_body_bytes < 1024 {
            return Err(invalid("http.max_body_bytes", "must be at least 1024"));
        }
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "smtp.from",
                "must be an address such as `reelnet <no-reply@example.org>`",
            ));
        }
        if self.smtp.attempts == 0 {
            return Err(invalid("smtp.attempts", "must be at least 1"));
        }
        if self.billing.check_interval_secs == 0 {
            return Err(invalid("billing.check_interval_secs", "must be at least 1"));
        }
        if self.requests.node_secret.is_some() {
            return Err(invalid(
                "requests.node_secret",
                "was removed: nodes now join the network with an invite (`reelnet-tracker node invite --role ingest`, \
                 then `reelnet-node --invite TOKEN`) and sign their request claims with their membership certificate; \
                 delete this key",
            ));
        }
        if !matches!(self.network.open_enrollment.as_str(), "" | "edge") {
            return Err(invalid(
                "network.open_enrollment",
                "must be \"\" (invites only) or \"edge\"",
            ));
        }
        if !(10..=reelnet_proto::membership::MAX_CERT_LIFETIME_SECS)
            .contains(&self.network.cert_lifetime_secs)
        {
            return Err(invalid(
                "network.cert_lifetime_secs",
                "must be between 10 seconds and 7 days (604800)",
            ));
        }
        if !self.network.id.is_empty()
            && (self.network.id.len() > reelnet_proto::membership::MAX_NETWORK_ID_LEN
                || !self
                    .network
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        {
            return Err(invalid(
                "network.id",
                "1 to 64 characters of [A-Za-z0-9._-]",
            ));
        }
        if !(1..=1_000_000).contains(&self.library.watchlist_max) {
            return Err(invalid(
                "library.watchlist_max",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=1_000_000).contains(&self.library.progress_max) {
            return Err(invalid(
                "library.progress_max",
                "must be between 1 and 1000000",
            ));
        }
        if self.oauth.refresh_grace_secs > 300 {
            return Err(invalid(
                "oauth.refresh_grace_secs",
                "must be at most 300 seconds",
            ));
        }
        if self.oauth.device_guesses_per_address == 0 || self.oauth.device_guess_window_secs == 0 {
            return Err(invalid(
                "oauth.device_guesses_per_address",
                "device_guesses_per_address and device_guess_window_secs must be at least 1",
            ));
        }
        if self.rooms.stall_burst == 0 {
            return Err(invalid("rooms.stall_burst", "must be at least 1"));
        }
        if self.rooms.stall_window_ms == 0 {
            return Err(invalid("rooms.stall_window_ms", "must be at least 1"));
        }
        if self.requests.lease_secs < 2 {
            return Err(invalid("requests.lease_secs", "must be at least 2 seconds"));
        }
        Ok(())
    }
}

pub use reelnet_runtime::config::parse_toml;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load_str(text: &str) -> Result<TrackerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        TrackerConfig::load(&path)
    }

    #[test]
    fn documented_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["configs/tracker.toml", "configs/testnet/tracker.toml"] {
            TrackerConfig::load(&root.join(file)).unwrap();
        }
    }

    #[test]
    fn caps_and_limits_must_be_positive() {
        for (text, key) in [
            ("[library]\nwatchlist_max = 0\n", "library.watchlist_max"),
            ("[library]\nprogress_max = 0\n", "library.progress_max"),
            ("[rooms]\nstall_burst = 0\n", "rooms.stall_burst"),
            ("[rooms]\nstall_window_ms = 0\n", "rooms.stall_window_ms"),
        ] {
            let err = load_str(text).err().unwrap().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let c = load_str("[library]\nwatchlist_max = 10\n[rooms]\nstall_burst = 1\n").unwrap();
        assert_eq!(
            (
                c.library.watchlist_max,
                c.library.progress_max,
                c.rooms.stall_burst
            ),
            (10, 5000, 1)
        );
    }

    #[test]
    fn defaults_validate() {
        TrackerConfig::default().validate(Path::new("x")).unwrap();
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = load_str("[auth]\naccess_ttl_secs = \"soon\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("t.toml") && err.contains("auth.access_ttl_secs"),
            "{err}"
        );
        let err = load_str("[smtp]\ntls = \"maybe\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("smtp.tls"), "{err}");
        let err = load_str("web_url = \"ftp://x\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("web_url"), "{err}");
    }
}
