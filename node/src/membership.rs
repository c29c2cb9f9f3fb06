//! This node's membership in its network, and the trust it judges peers with.
//!
//! One task owns the state ([`MemberState`]): the network's keys and newest revocation list
//! (the tracker's `/.well-known/reelnet-network.json`, fetched every `refresh`, default
//! 30 s, and newer lists that arrive over gossip) and this node's own certificate. It
//! publishes the state through a `watch` channel; everything that trusts a peer (catalog,
//! swarm, QUIC) reads it from there and reacts to changes (a revocation closes connections
//! and drops records).
//!
//! On the first start with an invite (`--invite`, `[tracker] invite`) it enrolls: it proves
//! it holds the node key and gets a certificate, kept in `<data_dir>/membership.cert`. The
//! network document is cached in `<data_dir>/network.json`, so a restart while the tracker
//! is down still knows its network. Every refresh it asks the tracker for its own record
//! (a request signed with the node key) and renews when a third of the certificate's life
//! is left or its roles changed. A node without a valid certificate keeps running, says
//! why in its log, `/healthz` and `/admin/v1/status`, and takes no part in the network
//! (peers refuse it; it publishes nothing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use reelnet_proto::binding::{
    AnnouncementResult, BindingsPage, IngestAnnouncement, SignedBinding, MAX_BINDINGS_PER_PAGE,
};
use reelnet_proto::membership::{
    self, Certificate, CertificateResponse, EnrollRequest, MembershipError, NetworkDocument,
    RoleName, Roles, SignedCertificate, SignedRevocations, Trust,
};
use reelnet_proto::{ManifestId, NodeId, SignedManifest};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::bindings::{BindingCounters, BindingStats, BindingTable, BindingVerdict};
use crate::catalog::verdict::Verdict;

/// The membership certificate's file name in the data directory.
pub const CERT_FILE: &str = "membership.cert";
const NETWORK_FILE: &str = "network.json";
/// Largest network document accepted.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Open enrollment (no invite) is tried at most this often.
const OPEN_RETRY: Duration = Duration::from_secs(300);
/// Most pages of bindings fetched in one refresh (the rest comes with the next one).
const MAX_BINDING_PAGES: usize = 100;
/// Most ingest announcements waiting for the tracker.
const MAX_PENDING_ANNOUNCEMENTS: usize = 64;

/// Where the membership task talks to and what it may use.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// The tracker replicas; `None`: no tracker (the trust given at start stays).
    pub trackers: Option<crate::trackers::Trackers>,
    pub data_dir: PathBuf,
    /// Invite to enroll with when there is no certificate.
    pub invite: Option<String>,
    /// This node's gateway origins, recorded in the certificate.
    pub origins: Vec<String>,
    /// Roles this node's own settings allow (`--edge` drops replica): the node uses only
    /// what both these and its certificate allow.
    pub allowed: Roles,
    /// How often the network document and the own record are refreshed.
    pub refresh: Duration,
}

impl MembershipConfig {
    pub fn new(tracker_url: &str, data_dir: &Path) -> Self {
        Self::with_trackers(crate::trackers::Trackers::single(tracker_url), data_dir)
    }

    /// Like [`Self::new`], with the node's tracker replicas.
    pub fn with_trackers(trackers: crate::trackers::Trackers, data_dir: &Path) -> Self {
        Self {
            trackers: Some(trackers),
            data_dir: data_dir.to_owned(),
            invite: None,
            origins: Vec::new(),
            allowed: Roles::of(&[RoleName::Replica, RoleName::Ingest, RoleName::Edge]),
            refresh: Duration::from_secs(30),
        }
    }
}

/// This node's certificate, decoded.
#[derive(Debug, Clone)]
pub struct OwnCertificate {
    pub signed: SignedCertificate,
    pub cert: Certificate,
}

/// What the membership task publishes.
#[derive(Debug, Clone, Default)]
pub struct MemberState {
    /// The network's trust (`None` until the network document was read once).
    pub trust: Option<Arc<Trust>>,
    /// The newest verified revocation list (passed on over gossip).
    pub revocations: Option<SignedRevocations>,
    /// This node's valid certificate, if it is a member.
    pub own: Option<OwnCertificate>,
    /// Why this node is not a member (when `own` is `None`).
    pub problem: Option<String>,
    /// The movie bindings known (see [`crate::bindings`]).
    pub bindings: Arc<BindingTable>,
}

/// `membership` in `/healthz` and `/admin/v1/status`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MemberSummary {
    pub member: bool,
    pub network_id: Option<String>,
    pub roles: Vec<RoleName>,
    pub open: bool,
    pub serial: Option<u64>,
    pub not_after: Option<u64>,
    pub revocation_serial: u64,
    /// Why not, and how to join.
    pub problem: Option<String>,
}

impl MemberState {
    /// This node's certificate as it travels (records, sync requests, TLS), if a member.
    pub fn own_certificate_bytes(&self) -> Option<Vec<u8>> {
        self.own.as_ref().map(|o| o.signed.encode())
    }

    /// True if `node` is on the revocation list.
    pub fn is_revoked(&self, node: &NodeId) -> bool {
        self.trust
            .as_ref()
            .is_some_and(|t| t.revoked.contains(node))
    }

    /// Judges a peer's certificate (`cert` = its wire bytes) presented by `node` now.
    pub fn check(&self, cert: &[u8], node: &NodeId) -> Result<Certificate, MembershipError> {
        let trust = self.trust.as_ref().ok_or_else(|| {
            MembershipError::UnknownKey("(this node does not know its network yet)".to_owned())
        })?;
        let signed =
            SignedCertificate::decode(cert).map_err(|e| MembershipError::Malformed(e.into()))?;
        trust.check(&signed, node, crate::unix_now())
    }

    pub fn summary(&self) -> MemberSummary {
        MemberSummary {
            member: self.own.is_some(),
            network_id: self.trust.as_ref().map(|t| t.network_id.clone()),
            roles: self
                .own
                .as_ref()
                .map(|o| o.cert.roles.names())
                .unwrap_or_default(),
            open: self.own.as_ref().is_some_and(|o| o.cert.open),
            serial: self.own.as_ref().map(|o| o.cert.serial),
            not_after: self.own.as_ref().map(|o| o.cert.not_after),
            revocation_serial: self.trust.as_ref().map_or(0, |t| t.revocation_serial),
            problem: self.problem.clone(),
        }
    }
}

enum Command {
    Revocations {
        signed: SignedRevocations,
        reply: oneshot::Sender<Verdict>,
    },
    Refresh {
        reply: oneshot::Sender<()>,
    },
    Binding {
        signed: SignedBinding,
        reply: oneshot::Sender<BindingVerdict>,
    },
    Announce {
        manifest: SignedManifest,
    },
}

/// Handle to the membership task. Cheap to clone.
#[derive(Clone)]
pub struct Membership {
    node: NodeId,
    key: SigningKey,
    allowed: Roles,
    state: watch::Receiver<Arc<MemberState>>,
    tx: mpsc::Sender<Command>,
    binding_counters: Arc<BindingCounters>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
enum TrackerError {
    #[error("{0}")]
    Http(String),
    #[error("the tracker refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl Membership {
    /// Loads what is on disk, does a first refresh (enrolling if there is an invite and no
    /// certificate) and starts the task; it stops when `cancel` fires.
    pub async fn start(
        config: MembershipConfig,
        key: SigningKey,
        cancel: CancellationToken,
    ) -> (Membership, tokio::task::JoinHandle<()>) {
        Self::start_with(config, key, None, cancel).await
    }

    /// [`Membership::start`] with a trust and certificate given up front (tests and tools
    /// that run without a tracker: `trackers = None`).
    pub async fn start_with(
        config: MembershipConfig,
        key: SigningKey,
        given: Option<(Trust, Option<SignedCertificate>)>,
        cancel: CancellationToken,
    ) -> (Membership, tokio::task::JoinHandle<()>) {
        let node = NodeId::from_verifying_key(&key.verifying_key());
        let mut task = Task::new(config.clone(), key.clone(), node);
        if let Some((trust, cert)) = given {
            task.trust = Some(trust);
            task.cert = cert;
        } else {
            task.load_files();
        }
        task.refresh().await;
        let (tx, rx) = mpsc::channel(64);
        let state = task.publish_initial();
        let handle = Membership {
            node,
            key,
            allowed: config.allowed,
            state,
            tx,
            binding_counters: task.binding_counters.clone(),
        };
        let join = reelnet_runtime::shutdown::spawn("membership", task.run(rx, cancel));
        (handle, join)
    }

    /// The current state.
    pub fn state(&self) -> Arc<MemberState> {
        self.state.borrow().clone()
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MemberState>> {
        self.state.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// This node's certificate, if it is a member.
    pub fn own(&self) -> Option<OwnCertificate> {
        self.state().own.clone()
    }

    /// What this node may do: its certificate's roles, narrowed by its own settings; empty
    /// when it is not a member.
    pub fn roles(&self) -> Roles {
        self.own()
            .map(|o| o.cert.roles.intersect(self.allowed))
            .unwrap_or_default()
    }

    /// True if this node holds a valid certificate with `role` (and its settings allow it).
    pub fn may(&self, role: RoleName) -> bool {
        self.roles().has(role)
    }

    /// Judges a peer's certificate bytes.
    pub fn check(&self, cert: &[u8], node: &NodeId) -> Result<Certificate, MembershipError> {
        self.state().check(cert, node)
    }

    /// Offers a revocation list from gossip: verified, kept if newer.
    pub async fn offer_revocations(&self, bytes: &[u8]) -> Verdict {
        let signed = match SignedRevocations::decode(bytes) {
            Ok(s) => s,
            Err(e) => return Verdict::Invalid(e.to_string()),
        };
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Revocations { signed, reply })
            .await
            .is_err()
        {
            return Verdict::Duplicate;
        }
        rx.await.unwrap_or(Verdict::Duplicate)
    }

    /// Offers a movie binding from gossip (or a test): verified, kept if newer than the
    /// one known for its movie.
    pub async fn offer_binding(&self, bytes: &[u8]) -> BindingVerdict {
        let signed = match SignedBinding::decode(bytes) {
            Ok(s) => s,
            Err(e) => return BindingVerdict::Invalid(e.to_string()),
        };
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Binding { signed, reply })
            .await
            .is_err()
        {
            return BindingVerdict::Duplicate;
        }
        rx.await.unwrap_or(BindingVerdict::Duplicate)
    }

    /// The movie bindings known now.
    pub fn bindings(&self) -> Arc<BindingTable> {
        self.state().bindings.clone()
    }

    /// Bindings offered so far, by verdict.
    pub fn binding_stats(&self) -> BindingStats {
        self.binding_counters.snapshot()
    }

    /// Tells the tracker about a complete ingest this node originated (so the movie gets
    /// bound to it if it is unbound, or an admin can bind it). In the background: retried
    /// with every refresh until the tracker answers.
    pub async fn announce_ingest(&self, manifest: SignedManifest) {
        let _ = self.tx.send(Command::Announce { manifest }).await;
    }

    /// Refreshes from the tracker now (tests; operators' `SIGHUP`-like nudges).
    pub async fn refresh_now(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Refresh { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The `Reelnet-Node-Auth` header for a request to `url` on the tracker, if this node
    /// is a member.
    pub fn auth_header(&self, method: &str, url: &str, body: &[u8]) -> Option<String> {
        let path = url_path(url);
        let own = self.own()?;
        Some(membership::node_auth_header(
            &self.key,
            &own.signed,
            method,
            path,
            crate::unix_now(),
            rand::random(),
            body,
        ))
    }

    /// The `Reelnet-Node-Auth` header with which this node vouches that the request it
    /// forwards to the tracker (`method`, `path` as sent, without the query, and the exact
    /// `body`) comes from the viewer at `viewer` (sent beside it in
    /// [`membership::VIEWER_ADDR_HEADER`]): a signature over
    /// [`membership::viewer_auth_path`]. `None` when this node is not a member.
    pub fn viewer_auth_header(
        &self,
        method: &str,
        path: &str,
        viewer: &str,
        body: &[u8],
    ) -> Option<String> {
        let own = self.own()?;
        Some(membership::node_auth_header(
            &self.key,
            &own.signed,
            method,
            &membership::viewer_auth_path(path, viewer),
            crate::unix_now(),
            rand::random(),
            body,
        ))
    }
}

/// The task that owns the membership state.
struct Task {
    config: MembershipConfig,
    key: SigningKey,
    node: NodeId,
    http: Option<reqwest::Client>,
    trust: Option<Trust>,
    revocations: Option<SignedRevocations>,
    cert: Option<SignedCertificate>,
    problem: Option<String>,
    tx: Option<watch::Sender<Arc<MemberState>>>,
    last_open_try: Option<std::time::Instant>,
    invite_used: bool,
    bindings: Arc<BindingTable>,
    binding_counters: Arc<BindingCounters>,
    /// Complete own ingests the tracker has not heard of yet.
    announcements: Vec<(ManifestId, SignedManifest)>,
}

/// The path part of `url` (what the tracker sees and a request signature covers).
pub(crate) fn url_path(url: &str) -> &str {
    let rest_at = url.find("://").map_or(0, |i| i + 3);
    url[rest_at..]
        .find('/')
        .map_or("/", |i| &url[rest_at + i..])
}

impl Task {
    fn new(config: MembershipConfig, key: SigningKey, node: NodeId) -> Self {
        let http = config.trackers.as_ref().and_then(|_| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .ok()
        });
        Self {
            config,
            key,
            node,
            http,
            trust: None,
            revocations: None,
            cert: None,
            problem: None,
            tx: None,
            last_open_try: None,
            invite_used: false,
            bindings: Arc::new(BindingTable::default()),
            binding_counters: Arc::default(),
            announcements: Vec::new(),
        }
    }

    fn load_files(&mut self) {
        let dir = &self.config.data_dir;
        if let Ok(bytes) = std::fs::read(dir.join(NETWORK_FILE)) {
            match serde_json::from_slice::<NetworkDocument>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|d| d.trust(crate::unix_now()).map_err(|e| e.to_string()))
            {
                Ok((trust, list)) => {
                    self.trust = Some(trust);
                    self.revocations = Some(list);
                }
                Err(err) => tracing::warn!(%err, "cached network document unreadable; ignoring it"),
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.join(CERT_FILE)) {
            match SignedCertificate::from_hex(text.trim()) {
                Ok(c) => self.cert = Some(c),
                Err(err) => tracing::warn!(%err, "stored membership certificate unreadable"),
            }
        }
    }

    fn save_cert(&self, cert: &SignedCertificate) {
        let path = self.config.data_dir.join(CERT_FILE);
        if let Err(err) = reelnet_runtime::fs::write_private(&path, cert.to_hex().as_bytes()) {
            tracing::error!(%err, path = %path.display(), "cannot store the membership certificate");
        }
    }

    /// The own certificate if it is valid now.
    fn own(&self) -> Result<OwnCertificate, String> {
        let Some(trust) = &self.trust else {
            return Err(format!(
                "not a member yet: the network document of the tracker ({}) could not be read",
                self.config
                    .trackers
                    .as_ref()
                    .map_or("none".to_owned(), |t| t.urls().join(", "))
            ));
        };
        let Some(signed) = &self.cert else {
            return Err(
                "not a member of this network: no certificate. Ask the network's operator for an \
                 invite (`reelnet-tracker node invite`) and start with `reelnet-node --invite TOKEN` \
                 (or set [tracker] invite)"
                    .to_owned(),
            );
        };
        match trust.check(signed, &self.node, crate::unix_now()) {
            Ok(cert) => Ok(OwnCertificate {
                signed: signed.clone(),
                cert,
            }),
            Err(err) => Err(format!(
                "not a member of network {}: certificate refused ({err}); ask the operator for a new invite",
                trust.network_id
            )),
        }
    }

    fn snapshot(&self) -> MemberState {
        let own = self.own();
        MemberState {
            trust: self.trust.clone().map(Arc::new),
            revocations: self.revocations.clone(),
            own: own.as_ref().ok().cloned(),
            problem: own.err().or_else(|| self.problem.clone()),
            bindings: self.bindings.clone(),
        }
    }

    fn publish_initial(&mut self) -> watch::Receiver<Arc<MemberState>> {
        let state = self.snapshot();
        log_state(&state);
        let (tx, rx) = watch::channel(Arc::new(state));
        self.tx = Some(tx);
        rx
    }

    fn publish(&self) {
        let state = self.snapshot();
        if let Some(tx) = &self.tx {
            let old = tx.borrow().clone();
            let membership_changed = old.own_certificate_bytes() != state.own_certificate_bytes()
                || old
                    .trust
                    .as_ref()
                    .map(|t| (t.revocation_serial, t.keys.len()))
                    != state
                        .trust
                        .as_ref()
                        .map(|t| (t.revocation_serial, t.keys.len()))
                || old.problem != state.problem;
            if membership_changed {
                log_state(&state);
            }
            if membership_changed || !Arc::ptr_eq(&old.bindings, &state.bindings) {
                tx.send_replace(Arc::new(state));
            }
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut tick = tokio::time::interval(self.config.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    self.refresh().await;
                    self.publish();
                }
                cmd = rx.recv() => match cmd {
                    Some(Command::Revocations { signed, reply }) => {
                        let verdict = self.offer_revocations(signed);
                        self.publish();
                        let _ = reply.send(verdict);
                    }
                    Some(Command::Refresh { reply }) => {
                        self.refresh().await;
                        self.publish();
                        let _ = reply.send(());
                    }
                    Some(Command::Binding { signed, reply }) => {
                        let verdict = self.offer_binding(signed, true);
                        self.publish();
                        let _ = reply.send(verdict);
                    }
                    Some(Command::Announce { manifest }) => {
                        let id = manifest.id();
                        if !self.announcements.iter().any(|(a, _)| *a == id) {
                            if self.announcements.len() >= MAX_PENDING_ANNOUNCEMENTS {
                                self.announcements.remove(0);
                            }
                            self.announcements.push((id, manifest));
                        }
                        self.announce().await;
                        self.publish();
                    }
                    None => break,
                },
            }
        }
        Ok(())
    }

    fn offer_revocations(&mut self, signed: SignedRevocations) -> Verdict {
        let Some(trust) = &mut self.trust else {
            return Verdict::Duplicate;
        };
        match trust.verify_revocations(&signed, crate::unix_now()) {
            Ok(list) => {
                if list.serial <= trust.revocation_serial {
                    return Verdict::Duplicate;
                }
                trust.apply_revocations(&list);
                tracing::info!(
                    serial = list.serial,
                    revoked = list.revoked.len(),
                    "newer revocation list from a peer"
                );
                self.revocations = Some(signed);
                Verdict::Accepted
            }
            Err(MembershipError::WrongNetwork { .. }) => {
                Verdict::Invalid("revocation list of another network".to_owned())
            }
            Err(err) => Verdict::Invalid(err.to_string()),
        }
    }

    /// Takes a binding (verified against the trust) if it is newer than the one known.
    fn offer_binding(&mut self, signed: SignedBinding, fresh: bool) -> BindingVerdict {
        let Some(trust) = &self.trust else {
            return BindingVerdict::Invalid("this node does not know its network yet".to_owned());
        };
        // Judged against the table as it is: only a binding that is taken copies it
        // (readers keep the table they have), so replayed or forged ones cost no copy.
        let verdict = match self.bindings.judge(trust, &signed, crate::unix_now()) {
            Ok(b) => {
                Arc::make_mut(&mut self.bindings).take(b, signed, fresh);
                BindingVerdict::Accepted
            }
            Err(verdict) => verdict,
        };
        if let BindingVerdict::Invalid(reason) = &verdict {
            tracing::debug!(%reason, "movie binding refused");
        }
        self.binding_counters.count(&verdict);
        verdict
    }

    /// Fetches the bindings made since the last fetch. The first fetch (everything) is not
    /// gossiped; later ones are, so peers learn of a new binding before their own refresh.
    async fn fetch_bindings(&mut self) {
        let fresh = self.bindings.fetched > 0;
        for _ in 0..MAX_BINDING_PAGES {
            let after = self.bindings.fetched;
            let page: BindingsPage = match self
                .get_json(&format!("/api/v1/network/bindings?after={after}"), false)
                .await
            {
                Ok(p) => p,
                Err(err) => {
                    tracing::debug!(%err, "cannot fetch movie bindings");
                    return;
                }
            };
            if page.bindings.len() > MAX_BINDINGS_PER_PAGE {
                tracing::warn!("the tracker sent an oversized page of bindings; ignoring it");
                return;
            }
            let mut highest = after;
            for hex in &page.bindings {
                match SignedBinding::from_hex(hex) {
                    Ok(signed) => {
                        if let Ok(b) = signed.unverified() {
                            highest = highest.max(b.version);
                        }
                        self.offer_binding(signed, fresh);
                    }
                    Err(err) => tracing::debug!(%err, "unreadable binding from the tracker"),
                }
            }
            Arc::make_mut(&mut self.bindings).fetched = if page.more {
                highest
            } else {
                highest.max(page.version)
            };
            if !page.more || highest == after {
                return;
            }
        }
    }

    /// Sends the waiting ingest announcements; keeps those the tracker did not answer.
    async fn announce(&mut self) {
        if self.config.trackers.is_none() || self.own().is_err() {
            return;
        }
        let waiting = std::mem::take(&mut self.announcements);
        for (id, manifest) in waiting {
            let body = IngestAnnouncement {
                manifest: hex::encode(manifest.encode()),
            };
            match self
                .post_json::<_, AnnouncementResult>("/api/v1/nodes/ingests", &body, true)
                .await
            {
                Ok(res) => {
                    tracing::info!(manifest = %id, bound_here = res.bound_here, "complete ingest announced to the tracker");
                    if let Some(signed) = res.binding.and_then(|h| SignedBinding::from_hex(&h).ok())
                    {
                        self.offer_binding(signed, true);
                    }
                }
                Err(TrackerError::Refused { status, message }) => {
                    tracing::warn!(manifest = %id, status, %message, "the tracker refused the ingest announcement");
                }
                Err(err) => {
                    tracing::debug!(manifest = %id, %err, "cannot announce the ingest yet; retrying");
                    self.announcements.push((id, manifest));
                }
            }
        }
    }

    /// One call to the tracker: `body` is POSTed as JSON (else a GET); `signed` adds this
    /// node's request signature.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<Vec<u8>>,
        signed: bool,
    ) -> Result<T, TrackerError> {
        let (Some(http), Some(trackers)) = (&self.http, &self.config.trackers) else {
            return Err(TrackerError::Http("no tracker".to_owned()));
        };
        let cert = match (signed, &self.cert) {
            (false, _) => None,
            (true, Some(cert)) => Some(cert),
            (true, None) => return Err(TrackerError::Http("no certificate".to_owned())),
        };
        // A GET goes to the next replica when the current one fails; a POST only when
        // the connection could not be made. Signed afresh per attempt (its own nonce).
        let retry = match body {
            Some(_) => crate::trackers::Retry::ConnectOnly,
            None => crate::trackers::Retry::Idempotent,
        };
        let res = trackers
            .send(retry, |base| {
                let url = format!("{base}{path}");
                let (method, mut req) = match &body {
                    Some(bytes) => (
                        "POST",
                        http.post(&url)
                            .header("content-type", "application/json")
                            .body(bytes.clone()),
                    ),
                    None => ("GET", http.get(&url)),
                };
                if let Some(cert) = cert {
                    let header = membership::node_auth_header(
                        &self.key,
                        cert,
                        method,
                        url_path(&url),
                        crate::unix_now(),
                        rand::random(),
                        body.as_deref().unwrap_or_default(),
                    );
                    req = req.header(membership::NODE_AUTH_HEADER, header);
                }
                req
            })
            .await;
        read_json(res).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        signed: bool,
    ) -> Result<T, TrackerError> {
        self.call(path, None, signed).await
    }

    async fn post_json<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        signed: bool,
    ) -> Result<T, TrackerError> {
        let bytes = serde_json::to_vec(body).map_err(|e| TrackerError::Http(e.to_string()))?;
        self.call(path, Some(bytes), signed).await
    }

    /// One refresh: the network document, enrollment when needed, renewal when due.
    async fn refresh(&mut self) {
        if self.config.trackers.is_none() {
            return;
        }
        match self
            .get_json::<NetworkDocument>("/.well-known/reelnet-network.json", false)
            .await
        {
            Ok(doc) => self.take_document(doc),
            Err(err) => {
                tracing::warn!(%err, "cannot fetch the network document; keeping what is known")
            }
        }
        if self.trust.is_none() {
            return;
        }
        self.fetch_bindings().await;
        if self.own().is_err() {
            self.enroll().await;
            return;
        }
        self.check_record().await;
        if !self.announcements.is_empty() {
            self.announce().await;
        }
    }

    fn take_document(&mut self, doc: NetworkDocument) {
        let now = crate::unix_now();
        match doc.trust(now) {
            Ok((mut trust, list)) => {
                // A newer list from gossip than the tracker's answer (a cached response)
                // stays.
                if let Some(old) = &self.trust {
                    if old.network_id == trust.network_id
                        && old.revocation_serial > trust.revocation_serial
                    {
                        trust.revoked = old.revoked.clone();
                        trust.revocation_serial = old.revocation_serial;
                        self.trust = Some(trust);
                        return;
                    }
                }
                if let Some(old) = &self.trust {
                    if old.network_id != trust.network_id {
                        // Pinned: a tracker URL that suddenly answers for another network
                        // (a mistake, or someone in the middle) does not replace the trust.
                        // An operator who really moved the node deletes network.json.
                        tracing::error!(
                            old = %old.network_id,
                            new = %trust.network_id,
                            "the tracker now answers for another network; keeping ours (delete network.json in the data directory to move this node)"
                        );
                        return;
                    }
                }
                self.trust = Some(trust);
                self.revocations = Some(list);
                let path = self.config.data_dir.join(NETWORK_FILE);
                match serde_json::to_vec_pretty(&doc) {
                    Ok(json) if json.len() <= MAX_DOCUMENT_BYTES => {
                        if let Err(err) = reelnet_runtime::fs::write_private(&path, &json) {
                            tracing::warn!(%err, "cannot cache the network document");
                        }
                    }
                    _ => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "the tracker's network document does not verify; ignoring it")
            }
        }
    }

    async fn enroll(&mut self) {
        let invite = match (&self.config.invite, self.invite_used) {
            (Some(i), false) if !i.is_empty() => i.clone(),
            _ => {
                // Open enrollment, where the network allows it; not too often.
                if self.last_open_try.is_some_and(|t| t.elapsed() < OPEN_RETRY) {
                    return;
                }
                self.last_open_try = Some(std::time::Instant::now());
                String::new()
            }
        };
        let Some(network_id) = self.trust.as_ref().map(|t| t.network_id.clone()) else {
            return;
        };
        let timestamp = crate::unix_now();
        let req = EnrollRequest {
            proof: membership::sign_enroll(&self.key, &network_id, &invite, timestamp),
            invite: invite.clone(),
            node_id: self.node,
            timestamp,
            origins: self.config.origins.clone(),
        };
        let started = std::time::Instant::now();
        match self
            .post_json::<_, CertificateResponse>("/api/v1/nodes/enroll", &req, false)
            .await
        {
            Ok(res) => {
                if !invite.is_empty() {
                    self.invite_used = true;
                }
                self.take_certificate(&res.certificate);
                tracing::info!(
                    roles = %res.roles.to_list(),
                    ms = started.elapsed().as_millis() as u64,
                    "enrolled in network {network_id}"
                );
            }
            Err(err) => {
                if !invite.is_empty() {
                    // A refused invite will not work later either.
                    if matches!(err, TrackerError::Refused { .. }) {
                        self.invite_used = true;
                    }
                    self.problem = Some(format!("enrollment with the invite failed: {err}"));
                    tracing::error!(%err, "enrollment failed");
                } else {
                    tracing::debug!(%err, "open enrollment not possible");
                }
            }
        }
    }

    fn take_certificate(&mut self, hex: &str) {
        let signed = match SignedCertificate::from_hex(hex) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(%err, "the tracker sent an unreadable certificate");
                return;
            }
        };
        if let Some(trust) = &self.trust {
            if let Err(err) = trust.check(&signed, &self.node, crate::unix_now()) {
                tracing::error!(%err, "the tracker sent a certificate that does not verify");
                return;
            }
        }
        self.save_cert(&signed);
        self.cert = Some(signed);
        self.problem = None;
    }

    /// Asks the tracker for this node's record; renews when due or when the roles changed.
    async fn check_record(&mut self) {
        let Ok(own) = self.own() else { return };
        let me: serde_json::Value = match self.get_json("/api/v1/nodes/me", true).await {
            Ok(v) => v,
            Err(TrackerError::Refused { status, message }) => {
                tracing::warn!(status, %message, "the tracker refuses this node's record");
                return;
            }
            Err(err) => {
                tracing::debug!(%err, "cannot reach the tracker for this node's record");
                return;
            }
        };
        let roles: Option<Roles> = serde_json::from_value(me["roles"].clone()).ok();
        let open = me["open"].as_bool();
        let now = crate::unix_now();
        let lifetime = own.cert.not_after.saturating_sub(own.cert.issued_at);
        let due = own.cert.remaining(now) < lifetime / 3;
        let changed =
            roles.is_some_and(|r| r != own.cert.roles) || open.is_some_and(|o| o != own.cert.open);
        if !(due || changed) {
            return;
        }
        match self
            .post_json::<_, CertificateResponse>(
                "/api/v1/nodes/renew",
                &serde_json::json!({}),
                true,
            )
            .await
        {
            Ok(res) => {
                self.take_certificate(&res.certificate);
                tracing::info!(roles = %res.roles.to_list(), not_after = res.not_after, "membership certificate renewed");
            }
            Err(err) => tracing::warn!(%err, "cannot renew the membership certificate"),
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    res: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, TrackerError> {
    let mut res = res.map_err(|e| TrackerError::Http(e.to_string()))?;
    let status = res.status();
    // Read at most MAX_DOCUMENT_BYTES, whatever the tracker (or someone in between) sends.
    let mut bytes = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| TrackerError::Http(e.to_string()))?
    {
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(TrackerError::Http("answer too large".to_owned()));
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(TrackerError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| TrackerError::Http(e.to_string()))
}

fn log_state(state: &MemberState) {
    match (&state.own, &state.problem) {
        (Some(own), _) => tracing::info!(
            network = %own.cert.network_id,
            roles = %own.cert.roles.to_list(),
            open = own.cert.open,
            not_after = own.cert.not_after,
            "member of the network"
        ),
        (None, Some(problem)) => tracing::warn!("{problem}"),
        (None, None) => tracing::warn!("not a member of any network"),
    }
}
