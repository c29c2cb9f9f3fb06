//! Movie requests: users ask for a movie the network does not have, nodes with ingest
//! enabled claim the work with a lease, report progress (which renews the lease) and
//! finish it; everyone who asked gets an email and an in-app notification.
//!
//! State machine (see [`RequestState`]): `pending` (only when `requests.require_approval`)
//! → `open` → `claimed` → `downloading` / `transcoding` → `ready` | `failed`; admins may
//! `reject` (→ `rejected`) and `retry` (failed/rejected → `open`). A lease that was not
//! renewed in time makes the request claimable again; until someone claims it, it reads
//! as `open` (the lapse is computed at read and claim time, nothing has to sweep).
//!
//! One request per TMDb id is open at a time (`open_requests` index); asking again joins
//! it. Every change is one typed store operation (`store/requests.rs`, one writer job), so
//! it is ordered with every other write and durable before it is answered. Nodes sign each
//! claim and report with their key and membership certificate (`Reelnet-Node-Auth`, see
//! [`crate::network`]); only `ingest` members may claim, a node may hold at most
//! `network.max_claims_per_node` claims at once, and a claim can be reported on only by the
//! node that holds it.

use std::collections::HashMap;

use base64::Engine;
use reelnet_proto::membership::Certificate;
use reelnet_proto::{Claims, Role, Tier};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use crate::api::Api;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::mail::Email;
use crate::policy::effective_tier;
use crate::store::{
    AskOutcome, AskQuota, Lease, MovieRequest, Notification, RequestState, Requester, User, UserId,
};

pub use reelnet_proto::membership::NODE_AUTH_HEADER;

const MONTH_MS: u64 = 30 * 24 * 3600 * 1000;
const MAX_TORRENT_BYTES: usize = 512 * 1024;

/// `POST requests`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub tmdb_id: u64,
    pub title: Option<String>,
    pub year: Option<u16>,
    pub magnet: Option<String>,
    pub torrent_base64: Option<String>,
}

/// A request as its requesters see it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: String,
    pub tmdb_id: u64,
    pub title: Option<String>,
    pub year: Option<u16>,
    pub state: RequestState,
    /// Download progress, 0–100 (while downloading or transcoding).
    pub percent: f32,
    pub reason: Option<String>,
    pub movie_id: Option<String>,
    /// How many users asked for it.
    pub requesters: usize,
    pub has_source: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A request as an admin sees it.
#[derive(Debug, Serialize)]
pub struct AdminRequestView {
    #[serde(flatten)]
    pub request: RequestView,
    pub node: Option<String>,
    pub attempts: u32,
    pub requester_ids: Vec<String>,
}

pub use reelnet_proto::requests::{
    ClaimRequest, ClaimView, DoneReport, FailedReport, ProgressReport,
};

/// The store's state for a state named on the wire (`reelnet_proto::requests::RequestState`
/// has the same variants and names).
fn stored_state(s: reelnet_proto::requests::RequestState) -> RequestState {
    use reelnet_proto::requests::RequestState as Wire;
    match s {
        Wire::Pending => RequestState::Pending,
        Wire::Open => RequestState::Open,
        Wire::Claimed => RequestState::Claimed,
        Wire::Downloading => RequestState::Downloading,
        Wire::Transcoding => RequestState::Transcoding,
        Wire::Ready => RequestState::Ready,
        Wire::Failed => RequestState::Failed,
        Wire::Rejected => RequestState::Rejected,
    }
}

/// An admin's decision on a request.
#[derive(Debug, Clone, Copy)]
pub enum AdminAction {
    Approve,
    Reject,
    Retry,
}

fn lease_lapsed(r: &MovieRequest, now: u64) -> bool {
    matches!(
        r.state,
        RequestState::Claimed | RequestState::Downloading | RequestState::Transcoding
    ) && r.lease.as_ref().is_none_or(|l| l.lease_until_ms <= now)
}

/// The node holding `r` now (claimed, downloading or transcoding, lease not lapsed).
pub(crate) fn holder(r: &MovieRequest, now: u64) -> Option<&str> {
    if !matches!(
        r.state,
        RequestState::Claimed | RequestState::Downloading | RequestState::Transcoding
    ) || lease_lapsed(r, now)
    {
        return None;
    }
    r.lease.as_ref().map(|l| l.node.as_str())
}

/// The state as seen now (a lapsed lease reads as `open`).
fn state_now(r: &MovieRequest, now: u64) -> RequestState {
    if lease_lapsed(r, now) {
        RequestState::Open
    } else {
        r.state
    }
}

fn view(r: &MovieRequest, now: u64) -> RequestView {
    RequestView {
        id: r.id.to_string(),
        tmdb_id: r.tmdb_id,
        title: r.title.clone(),
        year: r.year,
        state: state_now(r, now),
        percent: r.percent,
        reason: r.reason.clone(),
        movie_id: r.movie_id.clone(),
        requesters: r.requesters.len(),
        has_source: r.magnet.is_some() || r.torrent.is_some(),
        created_at_ms: r.created_at_ms,
        updated_at_ms: r.updated_at_ms,
    }
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("no such request"))
}

fn lease_lost() -> ApiError {
    ApiError::conflict(
        "lease_lost",
        "this claim is no longer held (lease lapsed and another node took it, or it ended)",
    )
}

/// Valid `http(s)://host[:port]` only (what goes into emails).
pub fn clean_node_url(proto: Option<&str>, host: Option<&str>) -> Option<String> {
    let host = host?.trim();
    let proto = match proto.map(str::trim) {
        Some("https") => "https",
        _ => "http",
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{proto}://{host}"))
}

impl Api {
    /// Requests allowed in 30 days at `tier`.
    pub fn request_quota(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Free => self.config().requests.free_per_month,
            Tier::Premium => self.config().requests.premium_per_month,
        }
    }

    /// Requests `user` made in the last 30 days.
    pub fn requests_used(&self, user: &UserId) -> Result<u32, ApiError> {
        let since = now_ms().saturating_sub(MONTH_MS);
        Ok(self.store().requests_asked_since(user, since)?)
    }

    fn load_request(&self, id: u64) -> Result<Option<MovieRequest>, ApiError> {
        Ok(self.store().request(id)?)
    }

    /// `POST requests`: a new request, or this user joining the open one for the same
    /// movie. Returns the request and whether it was created.
    pub async fn create_request(
        &self,
        claims: &Claims,
        req: NewRequest,
        node_url: Option<String>,
    ) -> Result<(RequestView, bool), ApiError> {
        let user = self.user(claims)?;
        if self.config().auth.require_verified_email && !user.email_verified {
            return Err(ApiError::forbidden(
                "email_not_verified",
                "verify your email address before requesting movies",
            ));
        }
        if req.tmdb_id == 0 {
            return Err(ApiError::bad_request(
                "invalid_request",
                "tmdb_id must be positive",
            ));
        }
        // A movie the network has (bound to a source) is not ingested again.
        let movie = reelnet_proto::MovieId::from_tmdb(req.tmdb_id);
        if self.store().binding(movie.as_str())?.is_some() {
            return Err(ApiError::conflict(
                "already_available",
                format!("{} is already available", movie.as_str()),
            )
            .with_movie_id(movie.as_str()));
        }
        if let Some(t) = &req.title {
            if t.trim().is_empty() || t.chars().count() > 200 {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "title: 1 to 200 characters",
                ));
            }
        }
        if let Some(m) = &req.magnet {
            if !m.starts_with("magnet:?") || m.len() > 4096 {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "magnet must be a magnet:? link of at most 4096 characters",
                ));
            }
        }
        let torrent = match &req.torrent_base64 {
            Some(b) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|_| {
                        ApiError::bad_request("invalid_request", "torrent_base64 is not base64")
                    })?;
                if bytes.is_empty() || bytes.len() > MAX_TORRENT_BYTES || bytes[0] != b'd' {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "torrent_base64 must be a bencoded .torrent of at most 512 KiB",
                    ));
                }
                Some(bytes)
            }
            None => None,
        };
        let now = now_ms();
        let tier = effective_tier(&user, now / 1000);
        let quota = self.request_quota(tier);
        let quota_exceeded = |used: u32| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                format!("{used} of {quota} requests used in the last 30 days ({tier:?} tier)"),
            )
        };
        // A first look spares TMDb and the id counter; the store checks and counts again
        // atomically with the write (parallel requests cannot pass the quota).
        let used = self.requests_used(&user.id)?;
        if used >= quota {
            return Err(quota_exceeded(used));
        }
        // TMDb (when configured) vouches for the id and names the movie.
        let mut req = req;
        if let Some(tmdb) = &self.inner.tmdb {
            match tmdb.movie(req.tmdb_id).await {
                Ok(Some(m)) => {
                    req.title = Some(m.title);
                    req.year = m.year.or(req.year);
                }
                Ok(None) => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unknown_movie",
                        format!("TMDb has no movie {}", req.tmdb_id),
                    ))
                }
                Err(err) => tracing::warn!(
                    %err,
                    tmdb = req.tmdb_id,
                    "TMDb lookup failed; the request keeps the asker's title"
                ),
            }
        }
        let new_id = self.store().next_id()?;
        let initial = if self.config().requests.require_approval {
            RequestState::Pending
        } else {
            RequestState::Open
        };
        let uid = user.id;
        let new = MovieRequest {
            id: new_id,
            tmdb_id: req.tmdb_id,
            title: req.title.as_ref().map(|t| t.trim().to_owned()),
            year: req.year,
            magnet: None,
            torrent: None,
            requesters: Vec::new(),
            state: initial,
            percent: 0.0,
            reason: None,
            lease: None,
            attempts: 0,
            movie_id: None,
            manifest: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let tmdb_id = req.tmdb_id;
        let ask_quota = AskQuota {
            limit: quota,
            since_ms: now.saturating_sub(MONTH_MS),
        };
        let outcome = self
            .store()
            .ask_for_movie(uid, tmdb_id, now, ask_quota, new, move |r| {
                if r.requesters.iter().any(|q| q.user == uid) {
                    return false;
                }
                // A joiner may add the source the first asker did not have.
                if r.magnet.is_none() {
                    r.magnet = req.magnet.clone();
                }
                if r.torrent.is_none() {
                    r.torrent = torrent.clone();
                }
                if r.title.is_none() {
                    r.title = req.title.as_ref().map(|t| t.trim().to_owned());
                }
                r.requesters.push(Requester {
                    user: uid,
                    node_url: node_url.clone(),
                    asked_at_ms: now,
                });
                r.updated_at_ms = now;
                true
            })
            .await?;
        let (request, created) = match outcome {
            AskOutcome::Asked(request, created) => (*request, created),
            AskOutcome::QuotaExceeded { used } => {
                tracing::debug!(user = %uid, used, quota, "movie request over quota");
                return Err(quota_exceeded(used));
            }
        };
        if created {
            tracing::info!(id = request.id, tmdb = request.tmdb_id, "movie requested");
        }
        Ok((view(&request, now), created))
    }

    /// `GET requests`: the caller's requests, newest first.
    pub fn my_requests(&self, claims: &Claims) -> Result<Vec<RequestView>, ApiError> {
        let user = self.user(claims)?;
        let now = now_ms();
        let mut out = Vec::new();
        for id in self.store().user_request_ids(&user.id)? {
            if let Some(r) = self.load_request(id)? {
                out.push(view(&r, now));
            }
        }
        Ok(out)
    }

    fn require_admin(&self, claims: &Claims) -> Result<User, ApiError> {
        let user = self.user(claims)?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden("not_admin", "only admins may do this"));
        }
        Ok(user)
    }

    /// `GET admin/requests`: every request, newest first.
    pub fn admin_requests(&self, claims: &Claims) -> Result<Vec<AdminRequestView>, ApiError> {
        self.require_admin(claims)?;
        self.operator_requests()
    }

    /// Every request, newest first, for a caller already known to be an operator or admin
    /// ([`Api::operator`]).
    pub fn operator_requests(&self) -> Result<Vec<AdminRequestView>, ApiError> {
        let now = now_ms();
        let mut out = Vec::new();
        for r in self.store().requests_newest_first()? {
            out.push(AdminRequestView {
                request: view(&r, now),
                node: r.lease.as_ref().map(|l| l.node.clone()),
                attempts: r.attempts,
                requester_ids: r.requesters.iter().map(|q| q.user.to_string()).collect(),
            });
        }
        Ok(out)
    }

    /// `POST admin/requests/{id}/{approve|reject|retry}`
    pub async fn admin_request_action(
        &self,
        claims: &Claims,
        id: &str,
        action: AdminAction,
        reason: Option<String>,
    ) -> Result<RequestView, ApiError> {
        self.require_admin(claims)?;
        self.operator_request_action(id, action, reason).await
    }

    /// [`Api::admin_request_action`] for a caller already known to be an operator or
    /// admin ([`Api::operator`]).
    pub async fn operator_request_action(
        &self,
        id: &str,
        action: AdminAction,
        reason: Option<String>,
    ) -> Result<RequestView, ApiError> {
        let id = parse_id(id)?;
        let now = now_ms();
        let r = self
            .update_request(id, move |r| {
                let ok = match action {
                    AdminAction::Approve => r.state == RequestState::Pending,
                    AdminAction::Reject => !r.state.finished(),
                    AdminAction::Retry => {
                        matches!(r.state, RequestState::Failed | RequestState::Rejected)
                    }
                };
                if !ok {
                    return Err(ApiError::conflict(
                        "invalid_state",
                        format!("cannot {action:?} a request that is {:?}", r.state),
                    ));
                }
                match action {
                    AdminAction::Approve | AdminAction::Retry => {
                        r.state = RequestState::Open;
                        r.reason = None;
                        r.percent = 0.0;
                        r.lease = None;
                    }
                    AdminAction::Reject => {
                        r.state = RequestState::Rejected;
                        r.reason = Some(
                            reason
                                .clone()
                                .unwrap_or_else(|| "rejected by an admin".to_owned()),
                        );
                        r.lease = None;
                    }
                }
                r.updated_at_ms = now;
                Ok(())
            })
            .await?;
        if r.state == RequestState::Rejected {
            self.notify_requesters(&r).await?;
        }
        Ok(view(&r, now))
    }

    /// Applies `f` to request `id` in write order (keeps the open index in step) and
    /// returns the result.
    async fn update_request<F>(&self, id: u64, f: F) -> Result<MovieRequest, ApiError>
    where
        F: Fn(&mut MovieRequest) -> Result<(), ApiError> + Send + 'static,
    {
        self.store()
            .update_request(id, f)
            .await?
            .unwrap_or_else(|| Err(ApiError::not_found("no such request")))
    }

    /// `POST requests/claim`: the oldest claimable request, leased to the node; `None`
    /// when there is no work.
    pub async fn claim_request(
        &self,
        by: &Certificate,
        req: ClaimRequest,
    ) -> Result<Option<ClaimView>, ApiError> {
        let node = by.node.to_string();
        if req.node_id != node {
            return Err(ApiError::bad_request(
                "invalid_request",
                "node_id must be the signing node's id",
            ));
        }
        let max = self.config().network.max_claims_per_node;
        let now = now_ms();
        let held = self
            .store()
            .requests_newest_first()?
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    RequestState::Claimed | RequestState::Downloading | RequestState::Transcoding
                ) && !lease_lapsed(r, now)
                    && r.lease.as_ref().is_some_and(|l| l.node == node)
            })
            .count();
        if held >= max as usize {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_claims",
                format!(
                    "this node already holds {held} claims (network.max_claims_per_node = {max})"
                ),
            ));
        }
        let lease_secs = self.config().requests.lease_secs;
        let token = hex::encode(rand::random::<[u8; 16]>());
        let claimed = self
            .store()
            .claim_first(move |r| {
                let now = now_ms();
                if !(r.state == RequestState::Open || lease_lapsed(r, now)) {
                    return false;
                }
                if let Some(old) = &r.lease {
                    tracing::warn!(id = r.id, node = %old.node, "lease lapsed; request released");
                }
                r.state = RequestState::Claimed;
                r.percent = 0.0;
                r.attempts += 1;
                r.lease = Some(Lease {
                    node: node.clone(),
                    token: token.clone(),
                    lease_until_ms: now + lease_secs * 1000,
                });
                r.updated_at_ms = now;
                true
            })
            .await?;
        Ok(claimed.map(|r| {
            tracing::info!(id = r.id, tmdb = r.tmdb_id, node = ?r.lease.as_ref().map(|l| &l.node), "request claimed");
            ClaimView {
                id: r.id.to_string(),
                tmdb_id: r.tmdb_id,
                title: r.title.clone(),
                year: r.year,
                magnet: r.magnet.clone(),
                torrent_base64: r
                    .torrent
                    .as_ref()
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
                claim_token: token_of(&r),
                lease_secs,
            }
        }))
    }

    /// `POST requests/{id}/progress`: renews the lease.
    pub async fn request_progress(
        &self,
        by: &Certificate,
        id: &str,
        rep: ProgressReport,
    ) -> Result<RequestView, ApiError> {
        if !matches!(
            stored_state(rep.state),
            RequestState::Claimed | RequestState::Downloading | RequestState::Transcoding
        ) || !(0.0..=100.0).contains(&rep.percent)
        {
            return Err(ApiError::bad_request(
                "invalid_request",
                "state must be claimed, downloading or transcoding and percent 0–100",
            ));
        }
        let id = parse_id(id)?;
        let node = by.node.to_string();
        let lease_ms = self.config().requests.lease_secs * 1000;
        let r = self
            .update_request(id, move |r| {
                holds(r, &node, &rep.claim_token)?;
                let now = now_ms();
                r.state = stored_state(rep.state);
                r.percent = rep.percent;
                if let Some(l) = &mut r.lease {
                    l.lease_until_ms = now + lease_ms;
                }
                r.updated_at_ms = now;
                Ok(())
            })
            .await?;
        Ok(view(&r, now_ms()))
    }

    /// `POST requests/{id}/done`
    pub async fn request_done(
        &self,
        by: &Certificate,
        id: &str,
        rep: DoneReport,
    ) -> Result<RequestView, ApiError> {
        reelnet_proto::MovieId::new(rep.movie_id.clone())
            .map_err(|e| ApiError::bad_request("invalid_request", format!("movie_id: {e}")))?;
        let id = parse_id(id)?;
        let node = by.node.to_string();
        let (movie, manifest) = (rep.movie_id.clone(), rep.manifest.clone());
        let r = self
            .update_request(id, move |r| {
                holds(r, &node, &rep.claim_token)?;
                r.state = RequestState::Ready;
                r.percent = 100.0;
                r.reason = None;
                r.movie_id = Some(rep.movie_id.clone());
                r.manifest = rep.manifest.clone();
                r.updated_at_ms = now_ms();
                Ok(())
            })
            .await?;
        tracing::info!(id = r.id, movie = ?r.movie_id, "request ready");
        // The ingest that fulfilled the request becomes the movie's source if it has none.
        if let Some(manifest) = manifest {
            self.membership()
                .bind_for_request(&by.node, r.id, &movie, &manifest)
                .await?;
        }
        self.notify_requesters(&r).await?;
        Ok(view(&r, now_ms()))
    }

    /// `POST requests/{id}/failed`
    pub async fn request_failed(
        &self,
        by: &Certificate,
        id: &str,
        rep: FailedReport,
    ) -> Result<RequestView, ApiError> {
        let id = parse_id(id)?;
        let node = by.node.to_string();
        let reason: String = rep.reason.chars().take(500).collect();
        let r = self
            .update_request(id, move |r| {
                holds(r, &node, &rep.claim_token)?;
                r.state = RequestState::Failed;
                r.reason = Some(reason.clone());
                r.lease = None;
                r.updated_at_ms = now_ms();
                Ok(())
            })
            .await?;
        tracing::info!(id = r.id, reason = ?r.reason, "request failed");
        self.notify_requesters(&r).await?;
        Ok(view(&r, now_ms()))
    }

    /// Emails and notifies everyone who asked for `r` that it is ready, failed or rejected.
    async fn notify_requesters(&self, r: &MovieRequest) -> Result<(), ApiError> {
        let title = r
            .title
            .clone()
            .unwrap_or_else(|| format!("TMDb movie {}", r.tmdb_id));
        let mut by_user: HashMap<UserId, Option<String>> = HashMap::new();
        for q in &r.requesters {
            by_user.insert(q.user, q.node_url.clone());
        }
        for (uid, node_url) in by_user {
            let Some(user) = self.user_by_id(&uid)? else {
                continue;
            };
            let base = node_url.unwrap_or_else(|| self.config().web_url.clone());
            let base = base.trim_end_matches('/');
            let (kind, subject, message, link) = match (r.state, &r.movie_id) {
                (RequestState::Ready, Some(movie)) => (
                    "request_ready",
                    format!("{title} is ready to watch on reelnet"),
                    format!("{title}, which you requested, is ready to watch."),
                    Some(format!("{base}/movie/{movie}")),
                ),
                (RequestState::Rejected, _) => (
                    "request_rejected",
                    format!("Your request for {title} was declined"),
                    format!(
                        "Your request for {title} was declined: {}",
                        r.reason.as_deref().unwrap_or("no reason given")
                    ),
                    Some(format!("{base}/requests")),
                ),
                _ => (
                    "request_failed",
                    format!("Your request for {title} could not be fulfilled"),
                    format!(
                        "Your request for {title} failed: {}",
                        r.reason.as_deref().unwrap_or("unknown reason")
                    ),
                    Some(format!("{base}/requests")),
                ),
            };
            self.inner.mailer.send(Email {
                to: user.email.clone(),
                subject,
                body: format!(
                    "Hello {},\r\n\r\n{message}\r\n\r\n{}\r\n",
                    user.display_name,
                    link.as_deref().unwrap_or("")
                ),
            });
            let nid = self.store().next_id()?;
            let n = Notification {
                id: nid,
                kind: kind.to_owned(),
                message,
                link,
                request_id: Some(r.id),
                created_at_ms: now_ms(),
            };
            self.store().add_notification(uid, n).await?;
        }
        Ok(())
    }

    /// `GET me/notifications`: newest first (at most 100).
    pub fn notifications(&self, claims: &Claims) -> Result<Vec<NotificationView>, ApiError> {
        let user = self.user(claims)?;
        let mut out = Vec::new();
        for n in self.store().notifications(&user.id, 100)? {
            out.push(NotificationView {
                id: n.id.to_string(),
                kind: n.kind,
                message: n.message,
                link: n.link,
                request_id: n.request_id.map(|i| i.to_string()),
                created_at_ms: n.created_at_ms,
            });
        }
        Ok(out)
    }
}

/// A notification as the API shows it.
#[derive(Debug, Serialize)]
pub struct NotificationView {
    pub id: String,
    pub kind: String,
    pub message: String,
    pub link: Option<String>,
    pub request_id: Option<String>,
    pub created_at_ms: u64,
}

fn token_of(r: &MovieRequest) -> String {
    r.lease
        .as_ref()
        .map(|l| l.token.clone())
        .unwrap_or_default()
}

/// The report's claim token names the current lease (lapsed is fine while nobody else
/// took the request over).
fn holds(r: &MovieRequest, node: &str, token: &str) -> Result<(), ApiError> {
    let ok = matches!(
        r.state,
        RequestState::Claimed | RequestState::Downloading | RequestState::Transcoding
    ) && r.lease.as_ref().is_some_and(|l| {
        l.node == node && blake3::hash(l.token.as_bytes()) == blake3::hash(token.as_bytes())
    });
    if ok {
        Ok(())
    } else {
        Err(lease_lost())
    }
}
