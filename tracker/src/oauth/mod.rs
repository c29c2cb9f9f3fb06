//! The tracker as an OAuth 2.0 authorization server (docs/signin.md): clients are member
//! nodes (client id = node id, redirect URIs = their certificate's gateway origins +
//! [`CALLBACK_PATH`](reelnet_proto::oauth::CALLBACK_PATH)), codes with PKCE (S256), refresh
//! families with rotation and reuse detection, consents, the device grant, and the
//! sessions a user can see and end.
//!
//! This file is the seam between the protocol (codes, tokens, devices, consents: this
//! module and its children) and the tracker's pages (`crate::pages`: sign-in, consent,
//! account, device), which call the `Api` methods below.

pub mod codes;
pub mod device;
pub mod state;
pub mod tokens;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use reelnet_proto::oauth::{challenge_is_valid, redirect_uri, MAX_STATE_LEN};

use crate::accounts::Source;
use crate::api::Api;
use crate::clock::now_secs;
use crate::error::ApiError;
use crate::metrics::{ReasonLabels, Refusals};
use crate::store::{Consent, NodeRecord, User, UserId};

pub use state::{OauthState, REFUSAL_REASONS};
pub use tokens::{DeviceAuthorization, OauthFailure};

/// `url?k=v&…` (form-encoded values).
pub(crate) fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(pairs).unwrap_or_default();
    if q.is_empty() {
        url.to_owned()
    } else {
        format!("{url}?{q}")
    }
}

/// The query of `GET /oauth/authorize` (and the hidden fields of the consent form).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizeParams {
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub code_challenge: String,
    #[serde(default)]
    pub code_challenge_method: String,
    #[serde(default)]
    pub scope: Option<String>,
}

/// A client (member node) whose redirect URI checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OauthClient {
    /// The node id (`client_id`).
    pub node_id: String,
    /// The registered gateway origin the redirect URI is on (what the consent page shows).
    pub origin: String,
    /// The exact redirect URI (origin + callback path).
    pub redirect_uri: String,
    /// An open-enrollment member (not invited): flagged on the consent page.
    pub open: bool,
}

/// Why an authorization request was refused.
#[derive(Debug, Clone)]
pub struct AuthorizeError {
    /// The counted reason (`unknown_client`, `bad_redirect_uri`, `invalid_request`, …).
    pub reason: &'static str,
    /// What the error page says.
    pub message: String,
    /// `Some(url)` when the client and redirect URI are valid and the error may go back to
    /// the client (`<redirect_uri>?error=…&state=…&iss=…`); `None`: show an error page on
    /// the tracker, never redirect.
    pub redirect: Option<String>,
}

/// One session (refresh family) of a user, as the account page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The family id (hex): what `end_session` takes.
    pub sid: String,
    /// `node:<id>`, `script` or `device:<name>`.
    pub client: String,
    /// The node's registered origin for node sessions.
    pub origin: Option<String>,
    /// An open member's session.
    pub open: bool,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

/// A pending device authorization, as the device page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// The user code, normalised (`XXXX-XXXX`).
    pub user_code: String,
    /// The name the device gave itself.
    pub device_name: String,
    /// The origin of the node the device asked to be bound to, if any.
    pub node_origin: Option<String>,
    pub expires_at: u64,
}

impl Api {
    /// The refusal counters (registered with `/metrics`).
    pub fn oauth_refusals(&self) -> Refusals {
        self.inner.oauth.refused.clone()
    }

    /// The member node `client_id` if it is a current client: enrolled, not revoked, with a
    /// certificate that has not lapsed.
    fn oauth_client_record(&self, client_id: &str) -> Option<NodeRecord> {
        if client_id.len() != 64 || !client_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let rec = self.store().node(client_id).ok().flatten()?;
        (rec.revoked_at.is_none() && rec.not_after > now_secs()).then_some(rec)
    }

    /// Checks an authorization request's client and redirect URI (and then its other
    /// parameters) without side effects (the caller counts `reason` with
    /// [`Api::oauth_refused`]).
    pub fn oauth_check_authorize(
        &self,
        params: &AuthorizeParams,
    ) -> Result<OauthClient, AuthorizeError> {
        let Some(rec) = self.oauth_client_record(&params.client_id) else {
            return Err(AuthorizeError {
                reason: "unknown_client",
                message: "This site is not a current member of the network.".to_owned(),
                redirect: None,
            });
        };
        let Some(origin) = rec
            .origins
            .iter()
            .find(|o| redirect_uri(o) == params.redirect_uri)
        else {
            return Err(AuthorizeError {
                reason: "bad_redirect_uri",
                message: "The address this site asked to return to is not one it registered."
                    .to_owned(),
                redirect: None,
            });
        };
        let client = OauthClient {
            node_id: rec.node_id.clone(),
            origin: origin.clone(),
            redirect_uri: params.redirect_uri.clone(),
            open: rec.open,
        };
        let refuse = |error: &str, message: &str, keep_state: bool| {
            let state = params.state.as_deref().filter(|_| keep_state);
            AuthorizeError {
                reason: "invalid_request",
                message: message.to_owned(),
                redirect: Some(self.oauth_error_redirect(&client, error, message, state)),
            }
        };
        if params
            .state
            .as_deref()
            .is_some_and(|s| s.len() > MAX_STATE_LEN)
        {
            return Err(refuse("invalid_request", "state is too long", false));
        }
        if params.response_type != "code" {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be code",
                true,
            ));
        }
        if params.code_challenge_method != "S256" {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256",
                true,
            ));
        }
        if !challenge_is_valid(&params.code_challenge) {
            return Err(refuse(
                "invalid_request",
                "code_challenge must be an S256 challenge (43 base64url characters)",
                true,
            ));
        }
        Ok(client)
    }

    fn oauth_error_redirect(
        &self,
        client: &OauthClient,
        error: &str,
        description: &str,
        state: Option<&str>,
    ) -> String {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config().issuer));
        with_query(&client.redirect_uri, &pairs)
    }

    /// Whether `user` consented to `client_id` before.
    pub fn oauth_has_consent(&self, user: &UserId, client_id: &str) -> Result<bool, ApiError> {
        Ok(self.store().consent(user, client_id)?.is_some())
    }

    /// Records `user`'s consent to `client`.
    pub async fn oauth_grant_consent(
        &self,
        user: &UserId,
        client: &OauthClient,
    ) -> Result<(), ApiError> {
        self.store()
            .put_consent(
                *user,
                client.node_id.clone(),
                Consent {
                    granted_at: now_secs(),
                },
            )
            .await?;
        tracing::info!(user = %user, node = %client.node_id, "consent granted");
        Ok(())
    }

    /// Issues a code for `user` to `client` and returns the full redirect URL
    /// (`<redirect_uri>?code=…&state=…&iss=…`). `auth_time` is when the user signed in.
    /// Needs the user's consent to the client ([`Api::oauth_grant_consent`]; else 403
    /// `consent_required`) and re-checks the request ([`Api::oauth_check_authorize`]).
    pub async fn oauth_issue_code(
        &self,
        user: &User,
        client: &OauthClient,
        params: &AuthorizeParams,
        auth_time: u64,
    ) -> Result<String, ApiError> {
        // The pages checked; this is the last word before a code exists.
        let checked = self
            .oauth_check_authorize(params)
            .map_err(|e| ApiError::bad_request("invalid_request", e.message))?;
        if checked.node_id != client.node_id || checked.redirect_uri != client.redirect_uri {
            return Err(ApiError::bad_request(
                "invalid_request",
                "the client does not match the request",
            ));
        }
        // No silent grant: the consent page records the consent first.
        if !self.oauth_has_consent(&user.id, &client.node_id)? {
            return Err(ApiError::forbidden(
                "consent_required",
                "the viewer has not allowed this site yet",
            ));
        }
        let now = now_secs();
        let code = codes::issue(
            self.store(),
            codes::CodeGrant {
                client_id: client.node_id.clone(),
                redirect_uri: client.redirect_uri.clone(),
                user: user.id,
                challenge: params.code_challenge.clone(),
                auth_time,
                expires_at: now + codes::CODE_TTL_SECS,
            },
            now,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                warp::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many sign-ins in progress; try again in a minute",
            )
        })?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = params.state.as_deref() {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config().issuer));
        Ok(with_query(&client.redirect_uri, &pairs))
    }

    /// The redirect URL that tells `client` the user said no (`error=access_denied`).
    pub fn oauth_denied_redirect(&self, client: &OauthClient, params: &AuthorizeParams) -> String {
        let state = params.state.as_deref().filter(|s| s.len() <= MAX_STATE_LEN);
        self.oauth_error_redirect(
            client,
            "access_denied",
            "the viewer did not allow the sign-in",
            state,
        )
    }

    /// The gateway origins of every current member (for the pages' `form-action`).
    pub fn oauth_registered_origins(&self) -> Vec<String> {
        let now = now_secs();
        let mut out: Vec<String> = self
            .store()
            .nodes()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.revoked_at.is_none() && n.not_after > now)
            .flat_map(|n| n.origins)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `user`'s sessions, newest first.
    pub fn oauth_sessions(&self, user: &UserId) -> Result<Vec<SessionView>, ApiError> {
        let mut out = Vec::new();
        for (id, fam) in self.store().user_families(user)? {
            if fam.revoked {
                continue;
            }
            let node = fam
                .client_node()
                .or_else(|| reelnet_proto::claims::audience_node(&fam.aud))
                .and_then(|n| self.store().node(n).ok().flatten());
            out.push(SessionView {
                sid: hex::encode(id),
                client: fam.client.clone(),
                origin: node.as_ref().and_then(|n| n.origins.first().cloned()),
                open: node.as_ref().is_some_and(|n| n.open),
                created_at: fam.created_at,
                last_used_at: fam.last_used_at,
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(out)
    }

    /// Ends one of `user`'s sessions (its refresh family; its access tokens are refused by
    /// the tracker from now on). Unknown or someone else's: 404.
    pub async fn oauth_end_session(&self, user: &UserId, sid: &str) -> Result<(), ApiError> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(sid, &mut id).map_err(|_| ApiError::not_found("no such session"))?;
        match self.store().family(&id)? {
            Some(f) if f.user == *user => {
                self.store().revoke_family_id(id).await?;
                tracing::info!(user = %user, session = %sid, "session ended");
                Ok(())
            }
            _ => Err(ApiError::not_found("no such session")),
        }
    }

    /// The pending device authorization with this user code. Wrong codes are counted per
    /// `src` (guesses are limited: 429 past the limit).
    pub fn device_lookup(&self, user_code: &str, src: &Source) -> Result<DeviceView, ApiError> {
        let cfg = &self.config().oauth;
        // A viewer address vouched for by a member node counts as that node: nodes never
        // forward the device page, so such a request is a node typing codes itself, and
        // naming a new address on each would otherwise buy a new allowance each time.
        let limit_key = match &src.node {
            Some(node) => format!("device-guess:node:{node}"),
            None => format!("device-guess:addr:{}", src.addr),
        };
        let limiter = &self.inner.limiter;
        if let Err(wait) = limiter.take(
            &limit_key,
            cfg.device_guesses_per_address,
            Duration::from_secs(cfg.device_guess_window_secs),
        ) {
            self.oauth_refused("device_code_guess");
            return Err(ApiError::rate_limited(wait));
        }
        let now = now_secs();
        let found = match device::normalize_user_code(user_code) {
            Some(letters) => device::lookup(self.store(), &letters, now)?,
            None => None,
        };
        match found {
            Some(e) => {
                // A right code is no guess.
                limiter.give_back(&limit_key);
                let node_origin = e
                    .resource
                    .as_deref()
                    .and_then(|n| self.store().node(n).ok().flatten())
                    .and_then(|n| n.origins.first().cloned());
                Ok(DeviceView {
                    user_code: e.user_code,
                    device_name: e.device_name,
                    node_origin,
                    expires_at: e.expires_at,
                })
            }
            None => {
                self.oauth_refused("device_code_guess");
                Err(ApiError::not_found(
                    "no device is waiting with this code; check it and try again",
                ))
            }
        }
    }

    /// Allows or denies the device authorization `user_code` for `user`. A decision names
    /// the code itself, so it is a guess like [`Api::device_lookup`]: wrong codes are
    /// counted per account (the same limit as per address; 429 past it), else the form
    /// could try codes without the lookup's limit (and approve a stranger's device into
    /// this account, or deny every pending one).
    pub async fn device_decide(
        &self,
        user_code: &str,
        user: &User,
        allow: bool,
    ) -> Result<(), ApiError> {
        let cfg = &self.config().oauth;
        let limit_key = format!("device-guess:user:{}", user.id);
        let limiter = &self.inner.limiter;
        if let Err(wait) = limiter.take(
            &limit_key,
            cfg.device_guesses_per_address,
            Duration::from_secs(cfg.device_guess_window_secs),
        ) {
            self.oauth_refused("device_code_guess");
            return Err(ApiError::rate_limited(wait));
        }
        let decided = match device::normalize_user_code(user_code) {
            Some(letters) => {
                device::decide(self.store(), &letters, user.id, allow, now_secs()).await?
            }
            None => false,
        };
        if decided {
            // A right code is no guess.
            limiter.give_back(&limit_key);
            tracing::info!(user = %user.id, allow, "device authorization decided");
            Ok(())
        } else {
            self.oauth_refused("device_code_guess");
            Err(ApiError::not_found("no device is waiting with this code"))
        }
    }

    /// Counts a refused sign-in step in `reelnet_tracker_oauth_refused_total{reason}`.
    pub fn oauth_refused(&self, reason: &'static str) {
        self.inner
            .oauth
            .refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}
