//! The tracker as an OAuth 2.0 authorization server (docs/signin.md): clients are member
//! nodes (client id = node id, redirect URIs = their certificate's gateway origins +
//! [`CALLBACK_PATH`](reelnet_proto::oauth::CALLBACK_PATH)), codes with PKCE (S256), refresh
//! families with rotation and reuse detection, consents, the device grant, and the
//! sessions a user can see and end.
//!
//! This file is the seam between the protocol (codes, tokens, devices, consents: this
//! module and its children) and the tracker's pages (`crate::pages`: sign-in, consent,
//! account, device), which call the `Api` methods below.

use serde::{Deserialize, Serialize};

use crate::accounts::Source;
use crate::api::Api;
use crate::error::ApiError;
use crate::store::{User, UserId};

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

fn not_built() -> ApiError {
    ApiError::internal("the OAuth protocol is not built yet")
}

impl Api {
    /// Checks an authorization request's client and redirect URI (and then its other
    /// parameters) without side effects.
    pub fn oauth_check_authorize(
        &self,
        params: &AuthorizeParams,
    ) -> Result<OauthClient, AuthorizeError> {
        let _ = params;
        Err(AuthorizeError {
            reason: "unknown_client",
            message: "the OAuth protocol is not built yet".to_owned(),
            redirect: None,
        })
    }

    /// Whether `user` consented to `client_id` before.
    pub fn oauth_has_consent(&self, user: &UserId, client_id: &str) -> Result<bool, ApiError> {
        let _ = (user, client_id);
        Err(not_built())
    }

    /// Records `user`'s consent to `client`.
    pub async fn oauth_grant_consent(
        &self,
        user: &UserId,
        client: &OauthClient,
    ) -> Result<(), ApiError> {
        let _ = (user, client);
        Err(not_built())
    }

    /// Issues a code for `user` to `client` and returns the full redirect URL
    /// (`<redirect_uri>?code=…&state=…&iss=…`). `auth_time` is when the user signed in.
    pub async fn oauth_issue_code(
        &self,
        user: &User,
        client: &OauthClient,
        params: &AuthorizeParams,
        auth_time: u64,
    ) -> Result<String, ApiError> {
        let _ = (user, client, params, auth_time);
        Err(not_built())
    }

    /// The redirect URL that tells `client` the user said no (`error=access_denied`).
    pub fn oauth_denied_redirect(&self, client: &OauthClient, params: &AuthorizeParams) -> String {
        let _ = params;
        client.redirect_uri.clone()
    }

    /// The gateway origins of every current member (for the pages' `form-action`).
    pub fn oauth_registered_origins(&self) -> Vec<String> {
        Vec::new()
    }

    /// `user`'s sessions, newest first.
    pub fn oauth_sessions(&self, user: &UserId) -> Result<Vec<SessionView>, ApiError> {
        let _ = user;
        Err(not_built())
    }

    /// Ends one of `user`'s sessions (its refresh family; its access tokens are refused by
    /// the tracker from now on). Unknown or someone else's: 404.
    pub async fn oauth_end_session(&self, user: &UserId, sid: &str) -> Result<(), ApiError> {
        let _ = (user, sid);
        Err(not_built())
    }

    /// The pending device authorization with this user code. Wrong codes are counted per
    /// `src` (guesses are limited: 429 past the limit).
    pub fn device_lookup(&self, user_code: &str, src: &Source) -> Result<DeviceView, ApiError> {
        let _ = (user_code, src);
        Err(not_built())
    }

    /// Allows or denies the device authorization `user_code` for `user`.
    pub async fn device_decide(
        &self,
        user_code: &str,
        user: &User,
        allow: bool,
    ) -> Result<(), ApiError> {
        let _ = (user_code, user, allow);
        Err(not_built())
    }

    /// Counts a refused sign-in step in `reelnet_tracker_oauth_refused_total{reason}`.
    pub fn oauth_refused(&self, reason: &'static str) {
        let _ = reason;
    }
}
