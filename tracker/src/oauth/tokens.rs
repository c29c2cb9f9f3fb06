//! The protocol endpoints' logic: the token endpoint (code, refresh and device-code
//! grants), revocation (RFC 7009), device authorization (RFC 8628) and the
//! authorization-server metadata (RFC 8414). The HTTP layer (`http::oauth`) parses the
//! form body, checks the node signature and renders.

use reelnet_proto::claims::{node_audience, ACCESS_TOKEN_AUDIENCE};
use reelnet_proto::membership::Certificate;
use reelnet_proto::oauth::{
    OauthError, TokenResponse, DEVICE_AUTHORIZATION_PATH, DEVICE_PAGE_PATH, GRANT_CODE,
    GRANT_DEVICE, GRANT_REFRESH, PUBLIC_CLIENT_ID, REVOKE_PATH, TOKEN_PATH,
};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::codes::CodeRefusal;
use super::device::{self, Poll};
use crate::accounts::SessionSpec;
use crate::api::Api;
use crate::clock::now_secs;
use crate::error::ApiError;

/// A refused protocol request: its status and RFC 6749 error body.
#[derive(Debug, Clone)]
pub struct OauthFailure {
    pub status: StatusCode,
    pub body: OauthError,
    pub retry_after: Option<u64>,
}

impl OauthFailure {
    fn new(status: StatusCode, error: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            body: OauthError {
                error: error.to_owned(),
                error_description: Some(description.into()),
            },
            retry_after: None,
        }
    }

    /// 400 with `error`.
    pub fn bad(error: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    /// 401 `invalid_client`.
    pub fn client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    /// 400 `invalid_grant`, the reason first in the description.
    fn grant(reason: &str, description: &str) -> Self {
        Self::bad("invalid_grant", format!("{reason}: {description}"))
    }
}

impl From<crate::store::StoreError> for OauthFailure {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for OauthFailure {
    fn from(e: ApiError) -> Self {
        let error = match e.status.as_u16() {
            401 | 403 => "invalid_grant",
            429 => "temporarily_unavailable",
            s if s >= 500 => "server_error",
            _ => "invalid_request",
        };
        let status = if e.status.as_u16() >= 500 || e.status.as_u16() == 429 {
            e.status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            body: OauthError {
                error: error.to_owned(),
                error_description: Some(format!("{}: {}", e.code, e.message)),
            },
            retry_after: e.retry_after,
        }
    }
}

/// The token endpoint's form (RFC 6749 §4.1.3, §6; RFC 8628 §3.4). Unknown fields are
/// ignored.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub client_id: Option<String>,
    pub refresh_token: Option<String>,
    pub device_code: Option<String>,
}

/// The revocation endpoint's form (RFC 7009).
#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    pub token: String,
    pub token_type_hint: Option<String>,
}

/// The device authorization endpoint's form.
#[derive(Debug, Default, Deserialize)]
pub struct DeviceForm {
    #[serde(default)]
    pub client_id: String,
    pub device_name: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
}

/// The device authorization answer (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// How a protocol request was signed: no `Reelnet-Node-Auth`, a verified member, or a
/// header that did not verify.
pub type NodeSigner = Option<Result<Certificate, ApiError>>;

/// A device's name: 1 to 64 printable characters.
fn device_name(name: Option<&str>) -> Result<String, OauthFailure> {
    let name = name.map(str::trim).unwrap_or("");
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(OauthFailure::bad(
            "invalid_request",
            "device_name: 1 to 64 printable characters",
        ));
    }
    Ok(name.to_owned())
}

impl Api {
    /// The signing node of a protocol request; a signature that does not verify (a
    /// stranger, a revoked node, a replay) is 401 `invalid_client`, counted as
    /// `unknown_client`.
    fn oauth_signer(&self, node: NodeSigner) -> Result<Option<Certificate>, OauthFailure> {
        match node {
            None => Ok(None),
            Some(Ok(cert)) => Ok(Some(cert)),
            Some(Err(e)) => {
                self.oauth_refused("unknown_client");
                Err(OauthFailure::client(format!(
                    "{}: the node signature did not verify: {}",
                    e.code, e.message
                )))
            }
        }
    }

    /// `POST /oauth/token`.
    pub async fn oauth_token(
        &self,
        form: TokenForm,
        node: NodeSigner,
    ) -> Result<TokenResponse, OauthFailure> {
        let signer = self.oauth_signer(node)?;
        match form.grant_type.as_str() {
            GRANT_CODE => self.grant_code(form, signer).await,
            GRANT_REFRESH => {
                let token = form
                    .refresh_token
                    .ok_or_else(|| OauthFailure::bad("invalid_request", "refresh_token missing"))?;
                let via = signer.as_ref().map(|c| c.node.to_string());
                let pair = self.refresh_as(&token, via.as_deref()).await?;
                Ok(pair.into_response())
            }
            GRANT_DEVICE => self.grant_device(form).await,
            "" => Err(OauthFailure::bad("invalid_request", "grant_type missing")),
            _ => Err(OauthFailure::bad(
                "unsupported_grant_type",
                "grant_type: authorization_code, refresh_token or device_code",
            )),
        }
    }

    async fn grant_code(
        &self,
        form: TokenForm,
        signer: Option<Certificate>,
    ) -> Result<TokenResponse, OauthFailure> {
        let Some(cert) = signer else {
            self.oauth_refused("unknown_client");
            return Err(OauthFailure::client(
                "node_auth_required: a code is redeemed by its node, signed (Reelnet-Node-Auth)",
            ));
        };
        let node = cert.node.to_string();
        if form.client_id.as_deref() != Some(node.as_str()) {
            self.oauth_refused("wrong_client");
            return Err(OauthFailure::client(
                "wrong_client: client_id must be the signing node's id",
            ));
        }
        let (Some(code), Some(redirect_uri)) = (form.code.as_deref(), form.redirect_uri.as_deref())
        else {
            return Err(OauthFailure::bad(
                "invalid_request",
                "code and redirect_uri are required",
            ));
        };
        let verifier = form.code_verifier.as_deref().unwrap_or("");
        let now = now_secs();
        let grant = match super::codes::redeem(
            self.store(),
            code,
            &node,
            redirect_uri,
            verifier,
            now,
        )
        .await?
        {
            Ok(g) => g,
            Err(refusal) => {
                self.oauth_refused(refusal.reason());
                if let CodeRefusal::CodeReused(Some(family)) = refusal {
                    self.store().revoke_family_id(family).await?;
                    tracing::warn!(node = %node, "authorization code redeemed twice; its session is ended");
                }
                let why = match refusal {
                    CodeRefusal::UnknownCode => "this code is not valid",
                    CodeRefusal::CodeExpired => "this code has expired",
                    CodeRefusal::CodeReused(_) => {
                        "this code was already redeemed; the session it started is ended"
                    }
                    CodeRefusal::WrongClient => "this code was issued to another client",
                    CodeRefusal::BadRedirectUri => {
                        "redirect_uri does not match the authorization request"
                    }
                    CodeRefusal::BadVerifier => "code_verifier does not match the challenge",
                };
                return Err(OauthFailure::grant(refusal.reason(), why));
            }
        };
        let user = self
            .user_by_id(&grant.user)?
            .ok_or_else(|| OauthFailure::grant("unknown_code", "the account no longer exists"))?;
        let (pair, family) = self
            .start_session(
                &user,
                SessionSpec {
                    client: format!("node:{node}"),
                    aud: node_audience(&node),
                    scope: None,
                },
            )
            .await?;
        if super::codes::started(self.store(), code, family).await? {
            self.store().revoke_family_id(family).await?;
            return Err(OauthFailure::grant(
                "code_reused",
                "this code was redeemed twice; the session it started is ended",
            ));
        }
        tracing::info!(user = %user.id, node = %node, "signed in through a node");
        Ok(pair.into_response())
    }

    async fn grant_device(&self, form: TokenForm) -> Result<TokenResponse, OauthFailure> {
        if form.client_id.as_deref() != Some(PUBLIC_CLIENT_ID) {
            return Err(OauthFailure::client(format!(
                "the device grant is for client_id={PUBLIC_CLIENT_ID}"
            )));
        }
        let code = form.device_code.unwrap_or_default();
        match super::device::poll(self.store(), &code, now_secs()).await? {
            Poll::Pending => Err(OauthFailure::bad(
                "authorization_pending",
                "the viewer has not answered yet",
            )),
            Poll::SlowDown => Err(OauthFailure::bad(
                "slow_down",
                "polling too fast: wait 5 more seconds between polls",
            )),
            Poll::Denied => Err(OauthFailure::bad(
                "access_denied",
                "the viewer did not allow this device",
            )),
            Poll::Expired => Err(OauthFailure::bad(
                "expired_token",
                "this device code has expired; start again",
            )),
            Poll::Unknown => {
                self.oauth_refused("unknown_code");
                Err(OauthFailure::grant(
                    "unknown_code",
                    "this device code is not valid",
                ))
            }
            Poll::Approved {
                user,
                device_name,
                resource,
            } => {
                let user = self.user_by_id(&user)?.ok_or_else(|| {
                    OauthFailure::grant("unknown_code", "the account no longer exists")
                })?;
                let aud = match resource {
                    Some(node) => {
                        self.current_member(&node)?;
                        node_audience(&node)
                    }
                    None => ACCESS_TOKEN_AUDIENCE.to_owned(),
                };
                let (pair, _) = self
                    .start_session(
                        &user,
                        SessionSpec {
                            client: format!("device:{device_name}"),
                            aud,
                            scope: None,
                        },
                    )
                    .await?;
                tracing::info!(user = %user.id, device = %device_name, "device signed in");
                Ok(pair.into_response())
            }
        }
    }

    /// `POST /oauth/revoke` (RFC 7009): ends the session of a refresh token. A node's
    /// session only by that node (signed); unknown tokens are answered the same as known.
    pub async fn oauth_revoke(
        &self,
        form: RevokeForm,
        node: NodeSigner,
    ) -> Result<(), OauthFailure> {
        let signer = self.oauth_signer(node)?;
        if form.token.is_empty() || form.token.len() > 128 {
            return Ok(());
        }
        let hash = *blake3::hash(form.token.as_bytes()).as_bytes();
        let Some((id, family)) = self.store().refresh_family(&hash)? else {
            return Ok(());
        };
        if let Some(owner) = family.client_node() {
            if signer.as_ref().map(|c| c.node.to_string()).as_deref() != Some(owner) {
                self.oauth_refused("wrong_client");
                return Err(OauthFailure::client(
                    "wrong_client: this session belongs to a node; only that node revokes it",
                ));
            }
        }
        self.store().revoke_family_id(id).await?;
        Ok(())
    }

    /// Device authorizations one client address may start per hour.
    pub const DEVICE_STARTS_PER_ADDRESS_PER_HOUR: u32 = 30;

    /// `POST /oauth/device_authorization` from `src` (at most
    /// [`Api::DEVICE_STARTS_PER_ADDRESS_PER_HOUR`] per address).
    pub async fn oauth_device_authorization(
        &self,
        form: DeviceForm,
        src: &crate::accounts::Source,
    ) -> Result<DeviceAuthorization, OauthFailure> {
        if form.client_id != PUBLIC_CLIENT_ID {
            // 400, not 401: the client did not try to authenticate (RFC 6749 §5.2).
            return Err(OauthFailure::bad(
                "invalid_client",
                format!("the device grant is for client_id={PUBLIC_CLIENT_ID}"),
            ));
        }
        if form.scope.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            return Err(OauthFailure::bad(
                "invalid_scope",
                "device tokens carry no scope",
            ));
        }
        let name = device_name(form.device_name.as_deref())?;
        self.inner
            .limiter
            .take(
                &format!("device-start:addr:{}", src.addr),
                Self::DEVICE_STARTS_PER_ADDRESS_PER_HOUR,
                std::time::Duration::from_secs(3600),
            )
            .map_err(ApiError::rate_limited)?;
        let resource = match form.resource.as_deref().filter(|r| !r.is_empty()) {
            Some(id) => Some(
                self.current_member(id)
                    .map_err(|_| {
                        OauthFailure::bad("invalid_target", "resource: not a current member node")
                    })?
                    .node_id,
            ),
            None => None,
        };
        let (device_code, user_code) =
            super::device::start(self.store(), name, resource, now_secs())
                .await?
                .ok_or_else(|| {
                    OauthFailure::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "too many devices are waiting; try again later",
                    )
                })?;
        let page = format!(
            "{}{DEVICE_PAGE_PATH}",
            self.config().public_url.trim_end_matches('/')
        );
        Ok(DeviceAuthorization {
            verification_uri_complete: super::with_query(&page, &[("user_code", &user_code)]),
            verification_uri: page,
            device_code,
            user_code,
            expires_in: device::DEVICE_TTL_SECS,
            interval: device::POLL_INTERVAL_SECS,
        })
    }

    /// `GET /.well-known/oauth-authorization-server` (RFC 8414).
    pub fn oauth_metadata(&self) -> serde_json::Value {
        let base = self.config().public_url.trim_end_matches('/');
        serde_json::json!({
            "issuer": self.config().issuer,
            "authorization_endpoint": format!("{base}{}", reelnet_proto::oauth::AUTHORIZE_PATH),
            "token_endpoint": format!("{base}{TOKEN_PATH}"),
            "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
            "device_authorization_endpoint": format!("{base}{DEVICE_AUTHORIZATION_PATH}"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [GRANT_CODE, GRANT_REFRESH, GRANT_DEVICE],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "reelnet_node_signature"],
            "revocation_endpoint_auth_methods_supported": ["none", "reelnet_node_signature"],
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": [reelnet_proto::claims::SCOPE_ACCOUNT, reelnet_proto::claims::SCOPE_ADMIN],
        })
    }
}
