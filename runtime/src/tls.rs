//! HTTPS for the node's gateway and the tracker: where the certificate comes from, and the
//! rustls side of serving it.
//!
//! A `[*.tls]` section ([`TlsConfig`]) names either a certificate and key in PEM files or
//! an ACME account ([`AcmeConfig`]); exactly one of the two. [`start`] loads what is there
//! and spawns the one task that owns the served certificate:
//!
//! - **files**: the task looks at both files' modification times every
//!   [`RELOAD_EVERY`]; when they change it loads the pair and serves it from the next
//!   handshake on. A pair that does not load (half written, mismatched key, not PEM) is
//!   logged and the previous certificate stays in use, so a bad deploy never takes the site
//!   down;
//! - **ACME** (RFC 8555, through `instant-acme`): the account key, the certificate chain and
//!   its key live in `<data_dir>/acme/` (0600, written atomically) and are reused at the next
//!   start. The task orders a certificate when none is stored or fewer than
//!   `renew_before_secs` remain (never more often than every half lifetime), answering
//!   TLS-ALPN-01 challenges on the HTTPS listener itself (ALPN `acme-tls/1`) or HTTP-01
//!   challenges on the plain-HTTP redirect listener. A failed order is retried with backoff
//!   while the old certificate keeps being served.
//!
//! The task publishes what it serves through a `watch` channel: the rustls
//! [`ResolvesServerCert`] and the HTTP-01 answerer only borrow the current value, so a
//! handshake costs one read lock and an `Arc` clone. Nobody else writes it. A new
//! certificate applies to new handshakes; a client resuming a TLS session keeps the one it
//! saw, as with any server.
//!
//! Metrics: `reelnet_tls_cert_expiry_seconds`, `reelnet_acme_orders_total{result}` and
//! `reelnet_tls_cert_reloads_total{result}`
//! ([`TlsMetrics`]), registered on the service's own registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Counter, EncodeLabelSet, Family, Gauge, Registry};

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How often certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Let's Encrypt's production directory, the default ACME server.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The directory under the data directory that holds the ACME account and certificate.
pub const ACME_DIR: &str = "acme";

const ACCOUNT_FILE: &str = "account.json";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// `[gateway.tls]` / `[http.tls]`: HTTPS from PEM files or from ACME.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain, PEM (leaf first). Reloaded when the file changes.
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1). Reloaded when the file changes.
    pub key: Option<PathBuf>,
    /// Certificates from an ACME CA instead of files.
    pub acme: Option<AcmeConfig>,
    /// A plain-HTTP listener that redirects to HTTPS (and answers HTTP-01 challenges).
    pub redirect_listen: Option<SocketAddr>,
    /// `Strict-Transport-Security: max-age` on every HTTPS answer, seconds (0: no header).
    pub hsts_max_age_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            acme: None,
            redirect_listen: None,
            hsts_max_age_secs: 365 * 24 * 3600,
        }
    }
}

/// `[*.tls.acme]`: the ACME account and what it orders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// DNS names the certificate covers (the first is its subject).
    pub domains: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// Contact addresses of the account (`mailto:` is added when missing).
    pub contact: Vec<String>,
    /// How the CA checks control of the names.
    pub challenge: AcmeChallenge,
    /// A root (PEM) to trust for the ACME directory's own HTTPS instead of the system
    /// roots (a test CA such as Pebble).
    pub ca_root: Option<PathBuf>,
    /// Renew when fewer than this many seconds of validity remain.
    pub renew_before_secs: u64,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            directory: LETS_ENCRYPT.to_owned(),
            contact: Vec::new(),
            challenge: AcmeChallenge::TlsAlpn01,
            ca_root: None,
            renew_before_secs: 30 * 24 * 3600,
        }
    }
}

/// The ACME challenge type answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AcmeChallenge {
    /// On the HTTPS listener (Let's Encrypt checks port 443).
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// On the redirect listener (Let's Encrypt checks port 80).
    #[serde(rename = "http-01")]
    Http01,
}

/// Why HTTPS cannot start, or why a certificate was not (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)")]
    NoCertificate { path: PathBuf },
    #[error("the certificate {cert} does not go with the key {key}: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot parse the certificate: {0}")]
    Parse(String),
    #[error("cannot keep the ACME state in {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] crate::fs::PrivateFileError),
    #[error("ACME: {0}")]
    Acme(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

impl From<instant_acme::Error> for TlsError {
    fn from(err: instant_acme::Error) -> Self {
        Self::Acme(err.to_string())
    }
}

impl TlsConfig {
    /// Checks that exactly one certificate source is configured; `section` names the
    /// config section in the error (`gateway.tls`).
    pub fn validate(&self, section: &str) -> Result<(), TlsError> {
        let bad = |key: &str, reason: &str| TlsError::Config {
            key: format!("{section}.{key}"),
            reason: reason.to_owned(),
        };
        match (&self.cert, &self.key, &self.acme) {
            (Some(_), Some(_), None) => Ok(()),
            (None, None, Some(acme)) => {
                if acme.domains.is_empty() {
                    return Err(bad("acme.domains", "name at least one DNS name"));
                }
                if let Some(d) = acme.domains.iter().find(|d| !valid_dns_name(d)) {
                    return Err(bad(
                        "acme.domains",
                        &format!("{d:?} is not a DNS name (letters, digits, `-` and `.`)"),
                    ));
                }
                if !acme.directory.starts_with("https://") {
                    return Err(bad("acme.directory", "must be an https:// URL"));
                }
                if acme.renew_before_secs == 0 {
                    return Err(bad("acme.renew_before_secs", "must be at least 1"));
                }
                if acme.challenge == AcmeChallenge::Http01 && self.redirect_listen.is_none() {
                    return Err(bad(
                        "redirect_listen",
                        "http-01 challenges are answered on the redirect listener: set it \
                         (port 80 for a public CA) or use challenge = \"tls-alpn-01\"",
                    ));
                }
                Ok(())
            }
            (Some(_), Some(_), Some(_)) => Err(bad(
                "acme",
                "give either cert and key files or [acme], not both",
            )),
            (Some(_), None, _) | (None, Some(_), _) => Err(bad(
                "cert",
                "cert and key go together: give both PEM file paths (or use [acme] instead)",
            )),
            (None, None, None) => Err(bad(
                "cert",
                "give cert and key (PEM file paths) or an [acme] section",
            )),
        }
    }

    /// The `Strict-Transport-Security` value, unless turned off.
    pub fn hsts(&self) -> Option<warp::http::HeaderValue> {
        (self.hsts_max_age_secs > 0).then(|| {
            warp::http::HeaderValue::from_str(&format!("max-age={}", self.hsts_max_age_secs))
                .unwrap_or_else(|_| warp::http::HeaderValue::from_static("max-age=31536000"))
        })
    }
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrderResult {
    result: &'static str,
}

/// The certificate metrics; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct TlsMetrics {
    expiry: Gauge,
    orders: Family<OrderResult, Counter>,
    reloads: Family<OrderResult, Counter>,
}

impl TlsMetrics {
    /// Registers `reelnet_tls_cert_expiry_seconds` and `reelnet_acme_orders_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "reelnet_tls_cert_expiry_seconds",
            "Seconds until the served HTTPS certificate expires.",
            self.expiry.clone(),
        );
        registry.register(
            "reelnet_acme_orders",
            "ACME certificate orders, by result (ok, error).",
            self.orders.clone(),
        );
        registry.register(
            "reelnet_tls_cert_reloads",
            "Reloads of changed certificate files, by result (ok; error: the previous \
             certificate stays in use).",
            self.reloads.clone(),
        );
    }

    fn set_expiry(&self, not_after: Option<i64>) {
        let left = not_after.map_or(0, |t| t - now_secs());
        self.expiry.set(left);
    }

    fn order(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.orders.get_or_create(&OrderResult { result }).inc();
    }

    fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&OrderResult { result }).inc();
    }
}

/// What the owner task serves right now.
#[derive(Default)]
struct Served {
    cert: Option<Arc<CertifiedKey>>,
    /// TLS-ALPN-01 challenge certificates by DNS name.
    alpn: HashMap<String, Arc<CertifiedKey>>,
    /// HTTP-01 key authorizations by token.
    http: HashMap<String, String>,
}

#[derive(Debug)]
struct Resolver(watch::Receiver<Served>);

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("cert", &self.cert.is_some())
            .field("alpn", &self.alpn.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        let served = self.0.borrow();
        if acme {
            let name = hello.server_name()?;
            return served.alpn.get(&name.to_ascii_lowercase()).cloned();
        }
        served.cert.clone()
    }
}

/// A handle on the served certificate: the rustls server config for the HTTPS listener,
/// HTTP-01 answers for the redirect listener. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tls {
    served: watch::Receiver<Served>,
    server_config: Arc<rustls::ServerConfig>,
    hsts: Option<warp::http::HeaderValue>,
}

impl Tls {
    /// The rustls config: ALPN h2, http/1.1 and acme-tls/1, the certificate from the
    /// owner task.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    /// The `Strict-Transport-Security` value for every HTTPS answer, if on.
    pub fn hsts(&self) -> Option<&warp::http::HeaderValue> {
        self.hsts.as_ref()
    }

    /// The key authorization for an HTTP-01 `token`, while its order is pending.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.served.borrow().http.get(token).cloned()
    }

    /// The leaf certificate served now (none before ACME's first order).
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        let served = self.served.borrow();
        served.cert.as_ref().and_then(|c| c.cert.first().cloned())
    }
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Loads what `config` names (files at once; a stored ACME certificate if there is one)
/// and spawns the task that owns the served certificate. Call it after
/// [`TlsConfig::validate`]; `data_dir` holds `acme/`. The task stops when `stop` is
/// cancelled.
pub fn start(
    config: &TlsConfig,
    section: &str,
    data_dir: &Path,
    metrics: TlsMetrics,
    stop: CancellationToken,
) -> Result<(Tls, JoinHandle<()>), TlsError> {
    config.validate(section)?;
    // The ACME client builds its rustls config from the process-wide provider; with ring
    // and aws-lc-rs both compiled in (libp2p-quic brings the latter) rustls cannot pick
    // one and panics unless one is installed. Installing fails harmlessly if the binary
    // already chose.
    if CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let (tx, rx) = watch::channel(Served::default());
    let resolver = Arc::new(Resolver(rx.clone()));
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    server_config.alpn_protocols =
        vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    let tls = Tls {
        served: rx,
        server_config: Arc::new(server_config),
        hsts: config.hsts(),
    };
    let task = match (&config.cert, &config.key, &config.acme) {
        (Some(cert), Some(key), _) => {
            let (certified, (_, not_after)) = load_files(cert, key)?;
            tracing::info!(cert = %cert.display(), "serving HTTPS with the certificate file");
            tx.send_modify(|s| s.cert = Some(certified));
            metrics.set_expiry(Some(not_after));
            let files = FileSource {
                cert: cert.clone(),
                key: key.clone(),
                not_after,
                tx,
                metrics,
            };
            crate::shutdown::spawn("tls-files", files.run(stop))
        }
        (_, _, Some(acme)) => {
            let dir = data_dir.join(ACME_DIR);
            crate::fs::create_private_dir(&dir).map_err(|source| TlsError::Store {
                path: dir.clone(),
                source,
            })?;
            let stored = load_stored(&dir);
            let not_after = stored.map(|(certified, span)| {
                tx.send_modify(|s| s.cert = Some(certified));
                span
            });
            metrics.set_expiry(not_after.map(|(_, end)| end));
            let source = AcmeSource {
                config: acme.clone(),
                dir,
                not_after,
                tx,
                metrics,
            };
            crate::shutdown::spawn("tls-acme", source.run(stop))
        }
        _ => {
            return Err(TlsError::Config {
                key: format!("{section}.cert"),
                reason: "give cert and key or [acme]".to_owned(),
            })
        }
    };
    Ok((tls, task))
}

fn now_secs() -> i64 {
    i64::try_from(crate::clock::unix_secs()).unwrap_or(i64::MAX)
}

/// `not_before` and `not_after` of a certificate (unix seconds).
pub fn validity(der: &[u8]) -> Result<(i64, i64), TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Parse(e.to_string()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// A certificate chain and key from PEM text, checked to go together.
fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Arc<CertifiedKey>, (i64, i64)), TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = certs.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    };
    let span = validity(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Pair {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok((Arc::new(certified), span))
}

fn load_files(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, (i64, i64)), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    parse_pair(&read(cert)?, &read(key)?, cert, key)
}

/// Modification time and length of a file, to notice a change.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The owner of a certificate read from files.
struct FileSource {
    cert: PathBuf,
    key: PathBuf,
    not_after: i64,
    tx: watch::Sender<Served>,
    metrics: TlsMetrics,
}

impl FileSource {
    async fn run(mut self, stop: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut seen = (stamp(&self.cert), stamp(&self.key));
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            self.metrics.set_expiry(Some(self.not_after));
            let now = (stamp(&self.cert), stamp(&self.key));
            if now == seen {
                continue;
            }
            seen = now;
            let (cert, key) = (self.cert.clone(), self.key.clone());
            match tokio::task::spawn_blocking(move || load_files(&cert, &key)).await {
                Ok(Ok((certified, (_, not_after)))) => {
                    self.tx.send_modify(|s| s.cert = Some(certified));
                    self.not_after = not_after;
                    self.metrics.set_expiry(Some(not_after));
                    self.metrics.reload(true);
                    tracing::info!(cert = %self.cert.display(), not_after, "reloaded the HTTPS certificate");
                }
                Ok(Err(err)) => {
                    self.metrics.reload(false);
                    tracing::warn!(
                        %err,
                        "the changed certificate files do not load; still serving the previous certificate"
                    )
                }
                Err(err) => tracing::warn!(%err, "certificate reload task failed"),
            }
        }
    }
}

/// A certificate and key stored by an earlier ACME order, if they load.
fn load_stored(dir: &Path) -> Option<(Arc<CertifiedKey>, (i64, i64))> {
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let cert_pem = crate::fs::read_private(&cert).ok().flatten()?;
    let key_pem = match crate::fs::read_private(&key) {
        Ok(Some(k)) => k,
        Ok(None) => return None,
        Err(err) => {
            tracing::warn!(%err, "ignoring the stored ACME key");
            return None;
        }
    };
    match parse_pair(&cert_pem, &key_pem, &cert, &key) {
        Ok(pair) => Some(pair),
        Err(err) => {
            tracing::warn!(%err, "ignoring the stored ACME certificate; ordering a new one");
            None
        }
    }
}

/// The owner of a certificate from an ACME CA.
struct AcmeSource {
    config: AcmeConfig,
    dir: PathBuf,
    /// The served certificate's end (unix seconds), and when it began.
    not_after: Option<(i64, i64)>,
    tx: watch::Sender<Served>,
    metrics: TlsMetrics,
}

/// The longest the ACME task sleeps before it looks at the clock again (and refreshes the
/// expiry gauge).
const ACME_TICK: Duration = Duration::from_secs(60);

impl AcmeSource {
    /// When the served certificate is due for renewal: `renew_before_secs` before its end,
    /// but never before half its lifetime (a `renew_before_secs` longer than the CA's
    /// lifetime would otherwise order without pause).
    fn due(&self) -> i64 {
        match self.not_after {
            None => i64::MIN,
            Some((not_before, not_after)) => {
                let renew_before = i64::try_from(self.config.renew_before_secs).unwrap_or(i64::MAX);
                let half = not_before + (not_after - not_before) / 2;
                not_after.saturating_sub(renew_before).max(half)
            }
        }
    }

    async fn run(mut self, stop: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut account = None;
        let mut failures = 0u32;
        loop {
            self.metrics.set_expiry(self.not_after.map(|(_, end)| end));
            let now = now_secs();
            let wait = if now >= self.due() {
                let result = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    r = self.renew(&mut account) => r,
                };
                self.clear_challenges();
                match result {
                    Ok(()) => {
                        failures = 0;
                        self.metrics.order(true);
                        continue;
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        self.metrics.order(false);
                        // A stored account the CA no longer knows is made again next time.
                        if matches!(err, TlsError::Acme(_)) && failures.is_multiple_of(3) {
                            account = None;
                        }
                        let backoff = Duration::from_secs(5u64 << failures.min(10))
                            .min(Duration::from_secs(3600));
                        tracing::warn!(%err, retry_in = ?backoff, "ACME order failed; still serving the previous certificate, if any");
                        backoff
                    }
                }
            } else {
                Duration::from_secs(u64::try_from(self.due() - now).unwrap_or(0)).min(ACME_TICK)
            };
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn clear_challenges(&self) {
        self.tx.send_modify(|s| {
            s.alpn.clear();
            s.http.clear();
        });
    }

    async fn account(&self) -> Result<Account, TlsError> {
        let builder = match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root)?,
            None => Account::builder()?,
        };
        let path = self.dir.join(ACCOUNT_FILE);
        if let Some(bytes) = crate::fs::read_private(&path)? {
            let credentials: AccountCredentials = serde_json::from_slice(&bytes)
                .map_err(|e| TlsError::Acme(format!("{}: {e}", path.display())))?;
            return Ok(builder.from_credentials(credentials).await?);
        }
        let contact: Vec<String> = self
            .config
            .contact
            .iter()
            .map(|c| {
                if c.starts_with("mailto:") {
                    c.clone()
                } else {
                    format!("mailto:{c}")
                }
            })
            .collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await?;
        let json = serde_json::to_vec(&credentials).map_err(|e| TlsError::Acme(e.to_string()))?;
        self.write(&path, &json)?;
        tracing::info!(directory = %self.config.directory, "created an ACME account");
        Ok(account)
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
        crate::fs::write_private(path, bytes).map_err(|source| TlsError::Store {
            path: path.to_owned(),
            source,
        })
    }

    async fn renew(&mut self, account: &mut Option<Account>) -> Result<(), TlsError> {
        let acct = match account {
            Some(a) => a.clone(),
            None => {
                let a = self.account().await?;
                *account = Some(a.clone());
                a
            }
        };
        let identifiers: Vec<Identifier> = self
            .config
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = acct.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(TlsError::Acme(format!("an authorization is {other:?}")));
                }
            }
            let kind = match self.config.challenge {
                AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                AcmeChallenge::Http01 => ChallengeType::Http01,
            };
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| TlsError::Acme(format!("the CA offers no {kind:?} challenge")))?;
            let Identifier::Dns(domain) = challenge.identifier().identifier.clone() else {
                return Err(TlsError::Acme("an identifier is not a DNS name".to_owned()));
            };
            let key_auth = challenge.key_authorization();
            match self.config.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    let cert = alpn_challenge_cert(&domain, key_auth.digest().as_ref())?;
                    self.tx.send_modify(|s| {
                        s.alpn.insert(domain.to_ascii_lowercase(), cert);
                    });
                }
                AcmeChallenge::Http01 => {
                    let token = challenge.token.clone();
                    let answer = key_auth.as_str().to_owned();
                    self.tx.send_modify(|s| {
                        s.http.insert(token, answer);
                    });
                }
            }
            challenge.set_ready().await?;
        }
        let retry = RetryPolicy::default().timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retry).await?;
        if status != OrderStatus::Ready {
            return Err(TlsError::Acme(format!(
                "the order is {status:?} after its challenges"
            )));
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&retry).await?;
        let (cert_path, key_path) = (self.dir.join(CERT_FILE), self.dir.join(KEY_FILE));
        let (certified, (not_before, not_after)) = parse_pair(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            &cert_path,
            &key_path,
        )?;
        self.write(&key_path, key_pem.as_bytes())?;
        self.write(&cert_path, chain_pem.as_bytes())?;
        self.tx.send_modify(|s| s.cert = Some(certified));
        self.not_after = Some((not_before, not_after));
        self.metrics.set_expiry(Some(not_after));
        tracing::info!(domains = ?self.config.domains, not_after, "obtained a certificate from the ACME CA");
        Ok(())
    }
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge for `domain`
/// (RFC 8737: the name as its only SAN, the key authorization's digest in the critical
/// `acmeIdentifier` extension).
fn alpn_challenge_cert(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let err = |e: rcgen::Error| TlsError::Acme(format!("challenge certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(err)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider().key_provider.load_private_key(key_der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn parse(text: &str) -> TlsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn exactly_one_source() {
        let files = parse("cert = \"c.pem\"\nkey = \"k.pem\"\n");
        assert_eq!(files.hsts_max_age_secs, 31_536_000);
        files.validate("gateway.tls").unwrap();
        let acme = parse("[acme]\ndomains = [\"movies.example.org\"]\n");
        let a = acme.acme.as_ref().unwrap();
        assert_eq!(a.directory, LETS_ENCRYPT);
        assert_eq!(a.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(a.renew_before_secs, 30 * 24 * 3600);
        acme.validate("gateway.tls").unwrap();
        for (text, key) in [
            ("", "gateway.tls.cert"),
            ("cert = \"c.pem\"\n", "gateway.tls.cert"),
            (
                "cert = \"c.pem\"\nkey = \"k.pem\"\n[acme]\ndomains = [\"a.example\"]\n",
                "gateway.tls.acme",
            ),
            ("[acme]\n", "gateway.tls.acme.domains"),
            ("[acme]\ndomains = [\"a b\"]\n", "gateway.tls.acme.domains"),
            (
                "[acme]\ndomains = [\"a.example\"]\nchallenge = \"http-01\"\n",
                "gateway.tls.redirect_listen",
            ),
        ] {
            let err = parse(text).validate("gateway.tls").unwrap_err().to_string();
            assert!(err.starts_with(key), "{text:?}: {err}");
        }
        assert!(toml::from_str::<TlsConfig>("[acme]\nchallenge = \"dns-01\"\n").is_err());
        assert!(parse("cert = \"c\"\nkey = \"k\"\nhsts_max_age_secs = 0\n")
            .hsts()
            .is_none());
    }

    #[test]
    fn renewal_is_due_before_the_end_but_not_before_half_life() {
        let source = |renew_before_secs, not_after| AcmeSource {
            config: AcmeConfig {
                renew_before_secs,
                ..AcmeConfig::default()
            },
            dir: PathBuf::new(),
            not_after,
            tx: watch::channel(Served::default()).0,
            metrics: TlsMetrics::default(),
        };
        assert_eq!(source(10, None).due(), i64::MIN);
        assert_eq!(source(10, Some((1000, 1100))).due(), 1090);
        assert_eq!(source(1000, Some((1000, 1100))).due(), 1050);
    }
}
