//! Network membership: the tracker is the authority on which nodes belong to its network.
//!
//! - `GET /.well-known/reelnet-network.json` publishes the network keys and the signed
//!   revocation list ([`Membership::document`]); nodes fetch it at least every 30 s.
//! - An operator makes invites (`reelnet-tracker node invite`, or the admin API); a node
//!   enrolls with one ([`Membership::enroll`]: the invite is used once, in the same store
//!   transaction that records the node) and proves it holds its key. Where the config allows
//!   open enrollment, a node may enroll as an `edge` member without an invite; its
//!   certificate is marked open.
//! - Certificates live at most 7 days; a member renews with a request signed by its key
//!   and its current certificate ([`Membership::renew`]), and gets the roles its record has
//!   now (an operator's `set-role` takes effect at the next renewal; nodes check every 30 s).
//! - `revoke` puts a node on the revocation list (its serial grows) and refuses it any
//!   further certificate. The list holds a revoked node until its last certificate expired.
//! - Nodes sign their requests to the tracker (claims, renewals) with their key:
//!   [`Membership::authenticate_node`] checks the certificate against the network's trust,
//!   the signature over method, path, time and body, and refuses a replayed signature.
//!
//! - Movie bindings (one canonical source per movie): see [`bindings`].
//!
//! Everything here works on a [`Store`] and the network keyring alone, so the operator
//! commands run the same code when the tracker is stopped (`crate::operator`).

pub mod bindings;
pub mod keys;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reelnet_proto::membership::{
    self, Certificate, CertificateResponse, EnrollRequest, NetworkDocument, NodeAuth,
    RevocationsDocument, RoleName, Roles,
};
use reelnet_proto::NodeId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::now_secs;
use crate::config::NetworkConfig;
use crate::error::ApiError;
use crate::store::{InviteRecord, NodeRecord, RedeemError, Store};
use keys::NetworkKeyring;

/// How far an enrollment proof's time may be from ours.
const ENROLL_WINDOW_SECS: u64 = membership::SKEW_TOLERANCE_SECS;
/// Longest invite lifetime.
const MAX_INVITE_TTL_SECS: u64 = 90 * 24 * 3600;
/// How often a replica looks for revocations made elsewhere
/// ([`Membership::watch_revocations`]).
pub const REVOCATION_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Most uses of one invite.
const MAX_INVITE_USES: u32 = 10_000;

/// Who is acting on the network.
#[derive(Debug, Clone)]
pub enum Operator {
    /// An admin account, by email.
    Admin(String),
    /// The machine's operator (the token in `<data_dir>/operator.json`, or the offline CLI).
    Local,
}

impl Operator {
    fn name(&self) -> String {
        match self {
            Operator::Admin(email) => email.clone(),
            Operator::Local => "operator".to_owned(),
        }
    }
}

/// `POST admin/nodes/invites`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Roles of the nodes that enroll with it (default: replica).
    #[serde(default)]
    pub roles: Vec<RoleName>,
    /// How many nodes may enroll with it (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
    /// How long it is valid, seconds (default 24 hours).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A new invite: the token is shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteCreated {
    pub token: String,
    /// The exact command that starts a node with this invite.
    pub command: String,
    pub id: String,
    pub roles: Roles,
    pub uses: u32,
    pub expires_at: u64,
    pub network_id: String,
}

/// A node as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    pub node_id: String,
    pub roles: Roles,
    pub open: bool,
    pub origins: Vec<String>,
    pub enrolled_at: u64,
    pub serial: u64,
    pub not_after: u64,
    pub revoked: bool,
    pub revoked_at: Option<u64>,
    /// When the tracker last heard from it (a signed request, or its newest certificate),
    /// unix seconds.
    #[serde(default)]
    pub last_seen: u64,
    /// Movies bound to its ingests (what it is the source of; `GET admin/nodes` only).
    #[serde(default)]
    pub movies: Vec<String>,
}

impl NodeView {
    fn of(n: &NodeRecord) -> Self {
        Self {
            node_id: n.node_id.clone(),
            roles: n.roles,
            open: n.open,
            origins: n.origins.clone(),
            enrolled_at: n.enrolled_at,
            serial: n.serial,
            not_after: n.not_after,
            revoked: n.revoked_at.is_some(),
            revoked_at: n.revoked_at,
            last_seen: n.issued_at.max(n.enrolled_at),
            movies: Vec::new(),
        }
    }
}

/// An invite as operators see it (never its token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteView {
    pub id: String,
    pub roles: Roles,
    pub uses_left: u32,
    pub expires_at: u64,
    pub created_by: String,
}

/// `GET admin/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesView {
    pub network_id: String,
    pub nodes: Vec<NodeView>,
    pub invites: Vec<InviteView>,
}

/// `PUT admin/nodes/{id}/roles`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesRequest {
    pub roles: Vec<RoleName>,
}

/// The membership authority. Cheap to clone.
#[derive(Clone)]
pub struct Membership {
    store: Store,
    keys: watch::Receiver<Arc<NetworkKeyring>>,
    config: NetworkConfig,
    /// Ingest announcements by outcome (for `/metrics`).
    announcements: crate::metrics::Announcements,
    /// Signed bindings by version, with the key id that signed them: the public bindings
    /// page signs each binding once per network key, not once per request.
    pub(crate) signed_bindings: Arc<Mutex<HashMap<u64, (String, String)>>>,
    /// Node ids as they are revoked (room sockets opened through them close).
    revocations: tokio::sync::broadcast::Sender<String>,
    /// When each node last made a signed request (in memory, per replica: the console's
    /// "last seen" is the latest this replica saw, or the certificate's issue time).
    last_seen: Arc<Mutex<HashMap<String, u64>>>,
    /// The tracker's URL as nodes reach it (in the invite's command).
    public_url: String,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn parse_node_id(s: &str) -> Result<NodeId, ApiError> {
    s.parse()
        .map_err(|_| bad("invalid_node_id", "node id: 64 lowercase hex characters"))
}

fn roles_of(names: &[RoleName]) -> Result<Roles, ApiError> {
    let roles = Roles::of(names);
    if roles.is_empty() {
        return Err(bad(
            "invalid_roles",
            "give at least one role: replica, ingest or edge",
        ));
    }
    Ok(roles)
}

fn invite_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Membership {
    pub fn new(
        store: Store,
        keys: watch::Receiver<Arc<NetworkKeyring>>,
        config: NetworkConfig,
    ) -> Self {
        Self {
            store,
            keys,
            config,
            last_seen: Arc::default(),
            public_url: String::new(),
            signed_bindings: Arc::default(),
            revocations: tokio::sync::broadcast::channel(64).0,
            announcements: Default::default(),
        }
    }

    /// Names the tracker's URL in the command an invite comes with.
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// Node ids as they are revoked from now on.
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.revocations.subscribe()
    }

    /// Passes on revocations made elsewhere — at another tracker replica, or by the
    /// `node revoke` command against the database — to this replica's room sockets, until
    /// `cancel`: every [`REVOCATION_POLL`] it reads the revocation serial, and when it has
    /// moved, sends the ids that became revoked since the last look. Only needed where
    /// several processes share the store (PostgreSQL); a revocation made here is sent at
    /// once by [`Membership::revoke`], and a socket that sees an id twice closes once.
    pub async fn watch_revocations(self, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(REVOCATION_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // (serial, revoked ids) at the last look; none before the first.
        let mut last: Option<(u64, std::collections::HashSet<String>)> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return,
            }
            let store = self.store.clone();
            let seen = last.as_ref().map(|(serial, _)| *serial);
            let read = tokio::task::spawn_blocking(move || {
                let serial = store.revocation_serial()?;
                if Some(serial) == seen {
                    return Ok(None);
                }
                let revoked = store
                    .nodes()?
                    .into_iter()
                    .filter(|n| n.revoked_at.is_some())
                    .map(|n| n.node_id)
                    .collect::<std::collections::HashSet<_>>();
                Ok::<_, crate::store::StoreError>(Some((serial, revoked)))
            })
            .await;
            let (serial, revoked) = match read {
                Ok(Ok(Some(now))) => now,
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => {
                    tracing::warn!(%err, "cannot read the revocations in the database");
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "revocation read panicked");
                    continue;
                }
            };
            if let Some((_, before)) = &last {
                for id in revoked.difference(before) {
                    tracing::info!(node = %id, serial, "node revoked elsewhere: closing its room sockets here");
                    let _ = self.revocations.send(id.clone());
                }
            }
            last = Some((serial, revoked));
        }
    }

    /// Whether node `id` (hex) is revoked (or unknown).
    pub fn is_revoked(&self, id: &str) -> bool {
        !matches!(self.store.node(id), Ok(Some(n)) if n.revoked_at.is_none())
    }

    /// The announcement counters (registered with the tracker's metrics).
    pub fn announcements(&self) -> crate::metrics::Announcements {
        self.announcements.clone()
    }

    /// The current network keyring.
    pub fn keyring(&self) -> Arc<NetworkKeyring> {
        self.keys.borrow().clone()
    }

    fn revoked(&self, now: u64) -> Result<Vec<NodeId>, ApiError> {
        let mut out = Vec::new();
        for n in self.store.nodes()? {
            if n.revoked_at.is_some() && n.not_after > now {
                if let Ok(id) = n.node_id.parse() {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// `GET /.well-known/reelnet-network.json`.
    pub fn document(&self) -> Result<NetworkDocument, ApiError> {
        let now = now_secs();
        let ring = self.keyring();
        let serial = self.store.revocation_serial()?;
        let (list, signed) = ring
            .sign_revocations(serial, self.revoked(now)?, now)
            .map_err(ApiError::internal)?;
        Ok(NetworkDocument {
            network_id: ring.network_id().to_owned(),
            keys: ring.published(now),
            revocations: RevocationsDocument::of(&list, &signed),
        })
    }

    fn issue(&self, node: &NodeRecord, now: u64) -> Result<(Certificate, String), ApiError> {
        let id = parse_node_id(&node.node_id)?;
        let cert = Certificate {
            network_id: String::new(),
            node: id,
            roles: node.roles,
            open: node.open,
            origins: node.origins.clone(),
            issued_at: now,
            not_after: now + self.config.cert_lifetime_secs,
            serial: self.store.next_id()?,
            kid: String::new(),
        };
        let signed = self
            .keyring()
            .sign_certificate(cert)
            .map_err(ApiError::internal)?;
        let cert = signed.unverified().map_err(ApiError::internal)?;
        Ok((cert, signed.to_hex()))
    }

    async fn record_issue(&self, cert: &Certificate) -> Result<(), ApiError> {
        let (serial, issued_at, not_after) = (cert.serial, cert.issued_at, cert.not_after);
        self.store
            .update_node(cert.node.to_string(), move |n| {
                n.serial = serial;
                n.issued_at = issued_at;
                n.not_after = not_after;
                Ok::<_, ()>(())
            })
            .await?;
        Ok(())
    }

    /// `POST nodes/enroll`: an invite (or open enrollment) and a proof of possession of
    /// the node key give a certificate.
    pub async fn enroll(&self, req: EnrollRequest) -> Result<CertificateResponse, ApiError> {
        let now = now_secs();
        let network_id = self.keyring().network_id().to_owned();
        if req.timestamp.abs_diff(now) > ENROLL_WINDOW_SECS {
            return Err(bad(
                "bad_proof",
                "the proof's timestamp is more than 5 minutes (and 30 s of slack) from the tracker's clock: set the node's clock (NTP)",
            ));
        }
        if req.invite.len() > 256 {
            return Err(ApiError::forbidden("bad_invite", "unknown or used invite"));
        }
        membership::verify_enroll(
            &req.node_id,
            &network_id,
            &req.invite,
            req.timestamp,
            &req.proof,
        )
        .map_err(|_| {
            ApiError::forbidden(
                "bad_proof",
                "the proof of possession does not verify for this node id and network",
            )
        })?;
        if req.origins.len() > membership::MAX_ORIGINS {
            return Err(bad("invalid_origins", "at most 8 origins"));
        }
        for o in &req.origins {
            membership::check_origin(o).map_err(|e| bad("invalid_origins", e.to_string()))?;
        }
        let node_id = req.node_id.to_string();
        let origins = req.origins.clone();
        let record = if req.invite.is_empty() {
            if self.config.open_enrollment != "edge" {
                return Err(ApiError::forbidden(
                    "invite_required",
                    "this network takes new nodes only with an invite (ask its operator for one)",
                ));
            }
            let rec = NodeRecord {
                node_id: node_id.clone(),
                roles: Roles::of(&[RoleName::Edge]),
                open: true,
                origins,
                enrolled_at: now,
                invite: None,
                serial: 0,
                issued_at: 0,
                not_after: 0,
                revoked_at: None,
            };
            match self.store.put_open_node(rec).await? {
                Ok(rec) => rec,
                Err(RedeemError::Invited) => {
                    return Err(ApiError::conflict(
                        "already_member",
                        "this node is an invited member; renew its certificate instead",
                    ))
                }
                Err(_) => return Err(ApiError::forbidden("revoked", "this node was revoked")),
            }
        } else {
            let hash = invite_hash(&req.invite);
            let id = node_id.clone();
            let redeemed = self
                .store
                .redeem_invite(hash, node_id.clone(), now, move |invite, old| NodeRecord {
                    node_id: id.clone(),
                    roles: invite.roles,
                    open: false,
                    origins: origins.clone(),
                    enrolled_at: old.as_ref().map_or(now, |o| o.enrolled_at),
                    invite: Some(invite.id.clone()),
                    serial: old.as_ref().map_or(0, |o| o.serial),
                    issued_at: old.as_ref().map_or(0, |o| o.issued_at),
                    not_after: old.as_ref().map_or(0, |o| o.not_after),
                    revoked_at: None,
                })
                .await?;
            match redeemed {
                Ok(rec) => rec,
                Err(RedeemError::Unknown) => {
                    return Err(ApiError::forbidden("bad_invite", "unknown or used invite"))
                }
                Err(RedeemError::Expired) => {
                    return Err(ApiError::forbidden(
                        "invite_expired",
                        "this invite has expired",
                    ))
                }
                Err(RedeemError::Revoked | RedeemError::Invited) => {
                    return Err(ApiError::forbidden("revoked", "this node was revoked"))
                }
            }
        };
        let (cert, hex) = self.issue(&record, now)?;
        self.record_issue(&cert).await?;
        tracing::info!(node = %cert.node, roles = %cert.roles.to_list(), open = cert.open, serial = cert.serial, "node enrolled");
        Ok(CertificateResponse {
            certificate: hex,
            roles: cert.roles,
            not_after: cert.not_after,
        })
    }

    /// Checks a node's signed request: the certificate against the network (valid, not
    /// revoked, this network's), the signature over `method`, `path`, the time and `body`,
    /// and that this signature was not seen before. Returns the certificate.
    pub fn authenticate_node(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Certificate, ApiError> {
        self.authenticate(header, method, path, body)
            .map(|(cert, _)| cert)
    }

    /// [`Membership::authenticate_node`], with the node's record as stored. Revocation is
    /// read from that record (one lookup), not from the whole revocation list.
    fn authenticate(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(Certificate, NodeRecord), ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::unauthorized(
                "node_auth_required",
                "this route is for member nodes: sign the request (Reelnet-Node-Auth)",
            )
        })?;
        let auth = NodeAuth::parse(header)
            .map_err(|e| ApiError::unauthorized("bad_node_auth", e.to_string()))?;
        let now = now_secs();
        let unverified = auth
            .certificate
            .unverified()
            .map_err(|e| ApiError::unauthorized("bad_node_auth", e.to_string()))?;
        let cert = self
            .keyring()
            .trust(now)
            .check(&auth.certificate, &unverified.node, now)
            .map_err(|e| ApiError::forbidden("not_a_member", e.to_string()))?;
        auth.verify(&cert.node, method, path, body, now)
            .map_err(|e| ApiError::unauthorized("bad_node_auth", e.to_string()))?;
        self.check_replay(auth.replay_key(), now)?;
        let record = self
            .store
            .node(&cert.node.to_string())?
            .ok_or_else(|| ApiError::forbidden("not_a_member", "this node is not enrolled"))?;
        if record.revoked_at.is_some() {
            return Err(ApiError::forbidden(
                "not_a_member",
                format!("node {} is revoked", cert.node),
            ));
        }
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.insert(record.node_id.clone(), now);
        }
        Ok((cert, record))
    }

    /// Refuses a signature seen before, by this replica or any other on the same database:
    /// the replay guard lives in the store ([`Store::claim_once`], one atomic statement).
    fn check_replay(&self, key: [u8; 32], now: u64) -> Result<(), ApiError> {
        let until = now + 2 * membership::NODE_REQUEST_WINDOW_SECS;
        if self.store.claim_once(key, until)? {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "replayed",
                "this request signature was already used",
            ))
        }
    }

    /// [`Membership::authenticate_node`], then requires `role` (from the certificate).
    pub fn authenticate_node_role(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        body: &[u8],
        role: RoleName,
    ) -> Result<Certificate, ApiError> {
        let (cert, record) = self.authenticate(header, method, path, body)?;
        membership::require_role(&cert, role)
            .map_err(|e| ApiError::forbidden("missing_role", e.to_string()))?;
        // The roles the tracker has now count too: a role an operator took away is gone at
        // once here, not when the node's certificate expires.
        if !record.roles.has(role) {
            return Err(ApiError::forbidden(
                "missing_role",
                format!("this node no longer has the {} role", role.as_str()),
            ));
        }
        Ok(cert)
    }

    /// `POST nodes/renew`: a fresh certificate for a member, with the roles it has now.
    pub async fn renew(&self, cert: &Certificate) -> Result<CertificateResponse, ApiError> {
        let now = now_secs();
        let record = self
            .store
            .node(&cert.node.to_string())?
            .ok_or_else(|| ApiError::forbidden("not_a_member", "this node is not enrolled"))?;
        if record.revoked_at.is_some() {
            return Err(ApiError::forbidden("revoked", "this node was revoked"));
        }
        let (cert, hex) = self.issue(&record, now)?;
        self.record_issue(&cert).await?;
        tracing::info!(node = %cert.node, serial = cert.serial, "certificate renewed");
        Ok(CertificateResponse {
            certificate: hex,
            roles: cert.roles,
            not_after: cert.not_after,
        })
    }

    /// `GET nodes/me`: the node's record as the tracker has it.
    pub fn me(&self, cert: &Certificate) -> Result<NodeView, ApiError> {
        self.store
            .node(&cert.node.to_string())?
            .map(|n| NodeView::of(&n))
            .ok_or_else(|| ApiError::forbidden("not_a_member", "this node is not enrolled"))
    }

    /// Makes an invite.
    pub async fn create_invite(
        &self,
        by: &Operator,
        req: InviteRequest,
    ) -> Result<InviteCreated, ApiError> {
        let names = if req.roles.is_empty() {
            vec![RoleName::Replica]
        } else {
            req.roles
        };
        let roles = roles_of(&names)?;
        let uses = req.uses.unwrap_or(1);
        if !(1..=MAX_INVITE_USES).contains(&uses) {
            return Err(bad("invalid_uses", "uses: 1 to 10000"));
        }
        let ttl = req.ttl_secs.unwrap_or(24 * 3600);
        if !(1..=MAX_INVITE_TTL_SECS).contains(&ttl) {
            return Err(bad("invalid_ttl", "ttl: 1 second to 90 days"));
        }
        let now = now_secs();
        let token = format!("rninv_{}", hex::encode(rand::random::<[u8; 24]>()));
        let hash = invite_hash(&token);
        let id = hex::encode(&hash[..8]);
        let record = InviteRecord {
            id: id.clone(),
            roles,
            uses_left: uses,
            expires_at: now + ttl,
            created_at: now,
            created_by: by.name(),
        };
        self.store.put_invite(hash, record).await?;
        // Expired invites are dropped as new ones are made.
        self.store.purge_invites(now).await?;
        tracing::info!(invite = %id, roles = %roles.to_list(), uses, ttl, by = %by.name(), "invite created");
        Ok(InviteCreated {
            command: if self.public_url.is_empty() {
                format!("reelnet-node --invite {token}")
            } else {
                format!(
                    "reelnet-node --tracker {} --invite {token}",
                    self.public_url
                )
            },
            token,
            id,
            roles,
            uses,
            expires_at: now + ttl,
            network_id: self.keyring().network_id().to_owned(),
        })
    }

    /// Every node and every unexpired invite.
    pub fn list(&self) -> Result<NodesView, ApiError> {
        let now = now_secs();
        Ok(NodesView {
            network_id: self.keyring().network_id().to_owned(),
            nodes: {
                let mut by_origin: HashMap<String, Vec<String>> = HashMap::new();
                for m in self.movies()?.movies {
                    by_origin.entry(m.origin).or_default().push(m.movie);
                }
                let seen = self.last_seen.lock().map(|s| s.clone()).unwrap_or_default();
                self.store
                    .nodes()?
                    .iter()
                    .map(|n| {
                        let mut v = NodeView::of(n);
                        v.last_seen = v.last_seen.max(seen.get(&n.node_id).copied().unwrap_or(0));
                        v.movies = by_origin.remove(&n.node_id).unwrap_or_default();
                        v
                    })
                    .collect()
            },
            invites: self
                .store
                .invites()?
                .into_iter()
                .filter(|i| i.expires_at > now)
                .map(|i| InviteView {
                    id: i.id,
                    roles: i.roles,
                    uses_left: i.uses_left,
                    expires_at: i.expires_at,
                    created_by: i.created_by,
                })
                .collect(),
        })
    }

    /// Revokes a node: it goes on the revocation list and gets no certificate again.
    pub async fn revoke(&self, by: &Operator, node_id: &str) -> Result<NodeView, ApiError> {
        let id = parse_node_id(node_id)?.to_string();
        let now = now_secs();
        let node = self
            .store
            .update_node(id, move |n| {
                if n.revoked_at.is_none() {
                    n.revoked_at = Some(now);
                }
                Ok::<_, ApiError>(())
            })
            .await?
            .ok_or_else(|| ApiError::not_found("no such node"))??;
        // Every session bound to it ends; its room sockets close.
        let ended = self
            .store
            .revoke_node_families(node.node_id.clone())
            .await?;
        let _ = self.revocations.send(node.node_id.clone());
        tracing::warn!(node = %node.node_id, by = %by.name(), sessions = ended, "node revoked");
        Ok(NodeView::of(&node))
    }

    /// Sets a node's roles; they are in its next certificate (nodes check every 30 s).
    pub async fn set_roles(
        &self,
        by: &Operator,
        node_id: &str,
        names: &[RoleName],
    ) -> Result<NodeView, ApiError> {
        let id = parse_node_id(node_id)?.to_string();
        let roles = roles_of(names)?;
        let node = self
            .store
            .update_node(id, move |n| {
                if n.revoked_at.is_some() {
                    return Err(ApiError::conflict("revoked", "this node was revoked"));
                }
                n.roles = roles;
                Ok(())
            })
            .await?
            .ok_or_else(|| ApiError::not_found("no such node"))??;
        tracing::info!(node = %node.node_id, roles = %roles.to_list(), by = %by.name(), "node roles set");
        Ok(NodeView::of(&node))
    }
}
