//! Accounts and tokens: register, email verification, login, refresh rotation with reuse
//! detection, logout, password reset, and the profile (`me`).

use std::time::Duration;

use base64::Engine;
use reelnet_proto::{Claims, Role, Tier};
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::clock::now_secs;
use crate::error::ApiError;
use crate::limiter::Backoff;
use crate::mail::Email;
pub use crate::policy::{check_name, check_password, hash_password, normalize_email};
use crate::policy::{effective_tier, password_matches, AUDIENCE};
use crate::store::{
    Created, EmailToken, EmailTokenError, Family, RefreshToken, Rotation, TokenKind, User, UserId,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
    /// The token of an admin bootstrap link (`reelnet-tracker admin bootstrap`): the new
    /// account becomes the first admin.
    #[serde(default)]
    pub bootstrap: Option<String>,
}

/// Who sent a request, for the abuse limits: the client's address (the socket's, or the
/// viewer's when a member node vouches for it) and the vouching node, if any.
#[derive(Debug, Clone)]
pub struct Source {
    pub addr: String,
    pub node: Option<String>,
}

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A member node's id: the tokens are bound to that node (`aud = reelnet-node:<id>`,
    /// no scope) instead of being network tokens.
    #[serde(default)]
    pub resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmRequest {
    pub token: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchMeRequest {
    pub display_name: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    pub tier: Tier,
    pub tier_until: Option<u64>,
    pub role: Role,
    pub created_at: u64,
}

impl UserView {
    pub fn of(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            email_verified: user.email_verified,
            tier: effective_tier(user, now_secs()),
            tier_until: user.tier_until,
            role: user.role,
            created_at: user.created_at,
        }
    }
}

/// What a login or a refresh answers.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// Granted scopes, space-separated (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub user: UserView,
}

impl TokenPair {
    /// The token endpoint's form of this pair.
    pub fn into_response(self) -> reelnet_proto::oauth::TokenResponse {
        reelnet_proto::oauth::TokenResponse {
            access_token: self.access_token,
            token_type: self.token_type.to_owned(),
            expires_in: self.expires_in,
            refresh_token: self.refresh_token,
            refresh_expires_in: self.refresh_expires_in,
            scope: self.scope,
            user: serde_json::to_value(&self.user).ok(),
        }
    }
}

/// Who a new session is for: its client and the audience and scopes of its tokens.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// `node:<id>`, `script` or `device:<name>`.
    pub client: String,
    pub aud: String,
    pub scope: Option<String>,
}

/// A random token (32 bytes, base64url) and the hash it is stored under.
pub(crate) fn new_secret() -> (String, [u8; 32]) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = *blake3::hash(token.as_bytes()).as_bytes();
    (token, hash)
}

fn secret_hash(token: &str) -> Result<[u8; 32], ApiError> {
    if token.is_empty() || token.len() > 128 {
        return Err(ApiError::bad_request("invalid_token", "malformed token"));
    }
    Ok(*blake3::hash(token.as_bytes()).as_bytes())
}

impl Api {
    /// A link to the tracker's own page `path` (mail links point at the tracker, never
    /// at a node: reset and verification tokens are only ever sent to the tracker).
    fn email_link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}?token={token}", self.config().public_origin())
    }

    fn email_link_plain(&self, path: &str) -> String {
        format!("{}/{path}", self.config().public_origin())
    }

    /// Queues an account mail to `to`, unless that address has had its hourly share
    /// (`auth.mails_per_address_per_hour`): a stranger cannot flood someone's inbox
    /// through the reset or registration forms. The request is answered the same either
    /// way.
    fn account_mail(&self, to: &str, subject: &str, body: String) {
        let auth = &self.config().auth;
        if self
            .inner
            .limiter
            .take(&format!("mail:{to}"), auth.mails_per_address_per_hour, HOUR)
            .is_err()
        {
            tracing::info!(
                subject,
                "account mail to this address held back (hourly limit)"
            );
            return;
        }
        self.inner.mailer.send(Email {
            to: to.to_owned(),
            subject: subject.to_owned(),
            body,
        });
    }

    fn send_verification(&self, user: &User, token: &str) {
        let link = self.email_link("verify", token);
        self.account_mail(
            &user.email,
            "Confirm your reelnet account",
            format!(
                "Hello {},\r\n\r\nConfirm your email address to start watching:\r\n\r\n{link}\r\n\r\nThe link works once and expires in {} hours.\r\nIf you did not sign up, ignore this message.\r\n",
                user.display_name,
                self.config().auth.verify_ttl_secs / 3600
            ),
        );
    }

    /// Takes one attempt of `limit` per `window` for `what` from `src` (its address, and
    /// its vouching node at `per_node_factor` times the limit): 429 when used up.
    fn limit_source(
        &self,
        what: &str,
        src: &Source,
        limit: u32,
        window: Duration,
    ) -> Result<(), ApiError> {
        let limiter = &self.inner.limiter;
        if let Some(node) = &src.node {
            let factor = self.config().auth.per_node_factor.max(1);
            limiter
                .take(
                    &format!("{what}:node:{node}"),
                    limit.saturating_mul(factor),
                    window,
                )
                .map_err(ApiError::rate_limited)?;
        }
        let taken = limiter.take(&format!("{what}:addr:{}", src.addr), limit, window);
        if let (Err(wait), Some(node)) = (taken, &src.node) {
            limiter.give_back(&format!("{what}:node:{node}"));
            return Err(ApiError::rate_limited(wait));
        }
        taken.map_err(ApiError::rate_limited)
    }

    /// Hands back what [`Api::limit_source`] took (the attempt did not count).
    fn give_back_source(&self, what: &str, src: &Source) {
        let limiter = &self.inner.limiter;
        if let Some(node) = &src.node {
            limiter.give_back(&format!("{what}:node:{node}"));
        }
        limiter.give_back(&format!("{what}:addr:{}", src.addr));
    }

    fn backoff(&self) -> Backoff {
        let auth = &self.config().auth;
        Backoff {
            threshold: auth.max_failures_per_account.max(1),
            window: Duration::from_secs(auth.failure_window_secs),
            max: Duration::from_secs(auth.account_backoff_max_secs.max(1)),
        }
    }

    /// `POST auth/register`. Answers the same for a new and a taken email (202, "check
    /// your email"): a new account gets its verification mail, the owner of a taken
    /// address a mail saying someone tried to register with it. The password is hashed
    /// either way, so the time does not tell them apart either.
    pub async fn register(&self, req: RegisterRequest, src: &Source) -> Result<(), ApiError> {
        let email = normalize_email(&req.email)?;
        let display_name = check_name(&req.display_name)?;
        check_password(&req.password)?;
        let bootstrap = req.bootstrap.as_deref().map(secret_hash).transpose()?;
        let auth = &self.config().auth;
        self.limit_source(
            "register",
            src,
            auth.registrations_per_address_per_hour,
            HOUR,
        )?;
        let password = req.password;
        let password_hash = self
            .inner
            .hashes
            .run(move || hash_password(&password))
            .await??;
        let now = now_secs();
        let user = User {
            id: UserId::random(),
            email: email.clone(),
            display_name,
            password_hash,
            email_verified: false,
            tier: Tier::Free,
            tier_until: None,
            role: Role::User,
            created_at: now,
        };
        let (token, token_hash) = new_secret();
        let record = EmailToken {
            user: user.id,
            kind: TokenKind::Verify,
            expires_at: now + auth.verify_ttl_secs,
            used: false,
        };
        // No account becomes admin by being first: only a bootstrap link makes one.
        match self
            .store()
            .create_user(user, Some((token_hash, record)), bootstrap, now)
            .await?
        {
            Created::Created(user) => {
                tracing::info!(user = %user.id, admin = user.role == Role::Admin, "account registered");
                self.send_verification(&user, &token);
            }
            Created::EmailTaken => {
                tracing::info!("registration for an address that has an account; owner notified");
                self.account_mail(
                    &email,
                    "Someone tried to create a reelnet account with your address",
                    format!(
                        "Hello,\r\n\r\nSomeone tried to create a new reelnet account with this email address, which already has one. If it was you, sign in — or reset your password if you forgot it:\r\n\r\n{}\r\n\r\nIf it was not you, ignore this message; your account is unchanged.\r\n",
                        self.email_link_plain("reset"),
                    ),
                );
            }
            Created::BadBootstrap(why) => {
                return Err(ApiError::bad_request(
                    "invalid_bootstrap",
                    match why {
                        EmailTokenError::Used => "this admin link has already been used",
                        EmailTokenError::Expired => {
                            "this admin link has expired; make a new one with `reelnet-tracker admin bootstrap`"
                        }
                        EmailTokenError::Unknown => "this admin link is not valid",
                    },
                ));
            }
        }
        Ok(())
    }

    /// `POST auth/resend-verification`: always answers the same, whether or not the
    /// account exists or is already verified.
    pub async fn resend_verification(
        &self,
        req: EmailRequest,
        src: &Source,
    ) -> Result<(), ApiError> {
        let email = normalize_email(&req.email)?;
        self.limit_source(
            "resend",
            src,
            self.config().auth.resends_per_address_per_hour,
            HOUR,
        )?;
        let Some(user) = self.user_by_email(&email)? else {
            return Ok(());
        };
        if user.email_verified {
            return Ok(());
        }
        let (token, hash) = new_secret();
        let record = EmailToken {
            user: user.id,
            kind: TokenKind::Verify,
            expires_at: now_secs() + self.config().auth.verify_ttl_secs,
            used: false,
        };
        self.store().put_email_token(hash, record).await?;
        self.send_verification(&user, &token);
        Ok(())
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>, ApiError> {
        match self.store().user_id_by_email(email)? {
            Some(id) => self.user_by_id(&id),
            None => Ok(None),
        }
    }

    /// Marks a single-use email token used and applies `apply` to its user, atomically.
    async fn use_email_token(
        &self,
        token: &str,
        kind: TokenKind,
        apply: impl Fn(&mut User) + Send + Sync + 'static,
    ) -> Result<User, ApiError> {
        let hash = secret_hash(token)?;
        let now = now_secs();
        let outcome = self.store().use_email_token(hash, kind, now, apply).await?;
        outcome.map_err(email_token_error)
    }

    /// `POST auth/verify`
    pub async fn verify_email(&self, req: TokenRequest) -> Result<UserView, ApiError> {
        let user = self
            .use_email_token(&req.token, TokenKind::Verify, |u| u.email_verified = true)
            .await?;
        tracing::info!(user = %user.id, "email verified");
        Ok(UserView::of(&user))
    }

    /// `POST auth/login`. Every attempt is counted before the password is checked (a
    /// parallel burst gets no more guesses than a serial one): per account and address,
    /// per address, per vouching node; and, from addresses the account has not signed in
    /// from, the account's backoff. A success hands its attempts back.
    pub async fn login(&self, req: LoginRequest, src: &Source) -> Result<TokenPair, ApiError> {
        // A bad resource is refused before the password is checked (no guess is spent).
        let node = match req.resource.as_deref() {
            Some(id) => Some(self.current_member(id)?.node_id),
            None => None,
        };
        let user = self
            .check_credentials(&req.email, req.password, src)
            .await?;
        let spec = match node {
            Some(id) => SessionSpec {
                client: "script".to_owned(),
                aud: reelnet_proto::claims::node_audience(&id),
                scope: None,
            },
            None => SessionSpec {
                client: "script".to_owned(),
                aud: AUDIENCE.to_owned(),
                scope: Some(network_scope(&user)),
            },
        };
        let (pair, _) = self.start_session(&user, spec).await?;
        tracing::info!(user = %user.id, "signed in");
        Ok(pair)
    }

    /// Starts a session (refresh family) for `user` and issues its first token pair;
    /// returns the pair and the family id.
    pub(crate) async fn start_session(
        &self,
        user: &User,
        spec: SessionSpec,
    ) -> Result<(TokenPair, [u8; 16]), ApiError> {
        let auth = &self.config().auth;
        let family: [u8; 16] = rand::random();
        let now = now_secs();
        let (refresh, refresh_hash) = new_secret();
        let rec = RefreshToken {
            user: user.id,
            family,
            expires_at: now + auth.refresh_ttl_secs,
            used: false,
            // Unused: when it was issued.
            used_at: Some(now),
        };
        let fam = Family {
            user: user.id,
            revoked: false,
            created_at: now,
            client: spec.client,
            aud: spec.aud,
            scope: spec.scope,
            last_used_at: None,
        };
        let pair = self.token_pair(user, refresh, &family, &fam.aud, fam.scope.as_deref())?;
        self.store()
            .start_session(refresh_hash, rec, family, fam)
            .await?;
        Ok((pair, family))
    }

    /// The enrolled, unrevoked member node `id` (400 `invalid_resource` otherwise).
    pub(crate) fn current_member(&self, id: &str) -> Result<crate::store::NodeRecord, ApiError> {
        let bad =
            || ApiError::bad_request("invalid_resource", "resource: not a current member node");
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        match self.store().node(id)? {
            Some(n) if n.revoked_at.is_none() => Ok(n),
            _ => Err(bad()),
        }
    }

    /// Checks an email and password with every abuse limit of [`Api::login`] (counted
    /// before the hash; a success hands its attempts back) and returns the account. Used by
    /// the JSON login and the tracker's sign-in page.
    pub async fn check_credentials(
        &self,
        email: &str,
        password: String,
        src: &Source,
    ) -> Result<User, ApiError> {
        let auth = &self.config().auth;
        let email = normalize_email(email).map_err(|_| {
            ApiError::unauthorized("invalid_credentials", "wrong email or password")
        })?;
        let window = Duration::from_secs(auth.failure_window_secs);
        let limiter = &self.inner.limiter;
        let pair_key = format!("login:{email}|{}", src.addr);
        self.limit_source("login", src, auth.max_failures_per_address, window)?;
        // Hands back the attempts taken so far: what was refused or not checked is no guess.
        let hand_back = |pair_taken: bool| {
            self.give_back_source("login", src);
            if pair_taken {
                limiter.give_back(&pair_key);
            }
        };
        if let Err(wait) =
            limiter.take(&pair_key, auth.max_failures_per_account_and_address, window)
        {
            hand_back(false);
            return Err(ApiError::rate_limited(wait));
        }
        if !limiter.is_known_good(&email, &src.addr) {
            if let Err(wait) = limiter.account_gate(&email, self.backoff()) {
                hand_back(true);
                return Err(ApiError::rate_limited(wait));
            }
        }
        let user = self.user_by_email(&email)?;
        let phc = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.inner.dummy_hash.clone());
        let checked = self
            .inner
            .hashes
            .run(move || password_matches(&password, &phc))
            .await;
        let ok = match checked {
            Ok(ok) => ok,
            Err(busy) => {
                hand_back(true);
                return Err(busy);
            }
        };
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => {
                limiter.account_failed(&email, self.backoff());
                return Err(ApiError::unauthorized(
                    "invalid_credentials",
                    "wrong email or password",
                ));
            }
        };
        hand_back(false);
        limiter.clear(&pair_key);
        limiter.known_good(&email, &src.addr);
        Ok(user)
    }

    fn token_pair(
        &self,
        user: &User,
        refresh_token: String,
        family: &[u8; 16],
        aud: &str,
        scope: Option<&str>,
    ) -> Result<TokenPair, ApiError> {
        let auth = &self.config().auth;
        let now = now_secs();
        let jti: [u8; 12] = rand::random();
        let tier = effective_tier(user, now);
        // A premium token never outlives the premium period: the client refreshes and
        // gets a free one.
        let exp = match (tier, user.tier_until) {
            (Tier::Premium, Some(until)) => (now + auth.access_ttl_secs).min(until.max(now + 1)),
            _ => now + auth.access_ttl_secs,
        };
        let claims = Claims {
            sub: user.id.to_string(),
            email: user.email.clone(),
            tier,
            // Nodes cap premium playback at the end of the period (issue 16).
            tier_until: user.tier_until.filter(|_| tier == Tier::Premium),
            email_verified: user.email_verified,
            role: user.role,
            exp,
            iat: now,
            iss: self.config().issuer.clone(),
            aud: aud.to_owned(),
            jti: hex::encode(jti),
            sid: Some(hex::encode(family)),
            scope: scope.map(str::to_owned),
        };
        Ok(TokenPair {
            access_token: self.keyring().sign(&claims)?,
            token_type: "Bearer",
            expires_in: exp - now,
            refresh_token,
            refresh_expires_in: auth.refresh_ttl_secs,
            scope: scope.map(str::to_owned),
            user: UserView::of(user),
        })
    }

    /// `POST auth/refresh`: rotates the refresh token of a `script` or `device` session
    /// (a node's sessions are refreshed by that node at the token endpoint).
    pub async fn refresh(&self, req: RefreshRequest) -> Result<TokenPair, ApiError> {
        self.refresh_as(&req.refresh_token, None).await
    }

    /// Rotates a refresh token presented by `via` (the node that signed the request, or
    /// `None` for a direct request). Presenting a token that was rotated longer ago than
    /// `[oauth] refresh_grace_secs` means it was copied: the whole family is revoked.
    pub(crate) async fn refresh_as(
        &self,
        token: &str,
        via: Option<&str>,
    ) -> Result<TokenPair, ApiError> {
        let invalid = || ApiError::unauthorized("invalid_refresh", "refresh token is not valid");
        let hash = secret_hash(token).map_err(|_| invalid())?;
        let Some((_, family)) = self.store().refresh_family(&hash)? else {
            return Err(invalid());
        };
        if family.client_node() != via {
            self.oauth_refused("wrong_client");
            return Err(ApiError::unauthorized(
                "wrong_client",
                match family.client_node() {
                    Some(_) => "this session belongs to a node: only that node refreshes it",
                    None => "this session is not a node's: refresh it directly at the tracker",
                },
            ));
        }
        let now = now_secs();
        let ttl = self.config().auth.refresh_ttl_secs;
        let grace = self.config().oauth.refresh_grace_secs;
        let (next, next_hash) = new_secret();
        let outcome = self
            .store()
            .rotate_refresh(hash, next_hash, now, ttl, grace)
            .await?;
        match outcome {
            Rotation::Rotated { family_id, family } => {
                let user = self.user_by_id(&family.user)?.ok_or_else(|| {
                    ApiError::unauthorized("invalid_refresh", "account no longer exists")
                })?;
                // An admin scope lasts only as long as the role.
                let scope = family
                    .scope
                    .as_deref()
                    .map(|s| {
                        s.split(' ')
                            .filter(|x| {
                                *x != reelnet_proto::claims::SCOPE_ADMIN || user.role == Role::Admin
                            })
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .filter(|s| !s.is_empty());
                self.token_pair(&user, next, &family_id, &family.aud, scope.as_deref())
            }
            Rotation::Unknown => Err(invalid()),
            Rotation::Revoked => {
                self.oauth_refused("refresh_revoked");
                Err(ApiError::unauthorized(
                    "invalid_refresh",
                    "this session has been signed out",
                ))
            }
            Rotation::Expired => Err(ApiError::unauthorized(
                "invalid_refresh",
                "refresh token has expired",
            )),
            Rotation::Reused => {
                tracing::warn!("refresh token reused; family revoked");
                self.oauth_refused("refresh_reused");
                Err(ApiError::unauthorized(
                    "refresh_reused",
                    "this refresh token was already used; every session it started is signed out",
                ))
            }
        }
    }

    /// `POST auth/logout`: revokes the refresh token's family. Idempotent.
    pub async fn logout(&self, req: RefreshRequest) -> Result<(), ApiError> {
        let Ok(hash) = secret_hash(&req.refresh_token) else {
            return Ok(());
        };
        self.store().revoke_family_of(hash).await?;
        Ok(())
    }

    /// `POST auth/password-reset`: emails a reset link when the account exists; answers the
    /// same either way.
    pub async fn password_reset(&self, req: EmailRequest, src: &Source) -> Result<(), ApiError> {
        let email = normalize_email(&req.email)?;
        self.limit_source(
            "reset",
            src,
            self.config().auth.reset_requests_per_address_per_hour,
            HOUR,
        )?;
        let Some(user) = self.user_by_email(&email)? else {
            return Ok(());
        };
        let (token, hash) = new_secret();
        let record = EmailToken {
            user: user.id,
            kind: TokenKind::PasswordReset,
            expires_at: now_secs() + self.config().auth.reset_ttl_secs,
            used: false,
        };
        self.store().put_email_token(hash, record).await?;
        let link = self.email_link("reset/confirm", &token);
        self.account_mail(
            &user.email,
            "Reset your reelnet password",
            format!(
                "Hello {},\r\n\r\nSomeone asked to reset the password of this account. To choose a new one, open:\r\n\r\n{link}\r\n\r\nThe link works once and expires in {} minutes. If it was not you, ignore this message.\r\n",
                user.display_name,
                self.config().auth.reset_ttl_secs / 60
            ),
        );
        Ok(())
    }

    /// `POST auth/password-reset/confirm`: sets the new password and signs out every
    /// session. Counted per address before anything else; a dead link is refused before
    /// the new password is hashed.
    pub async fn password_reset_confirm(
        &self,
        req: ResetConfirmRequest,
        src: &Source,
    ) -> Result<(), ApiError> {
        check_password(&req.password)?;
        let auth = &self.config().auth;
        self.limit_source(
            "reset-confirm",
            src,
            auth.reset_confirms_per_address,
            Duration::from_secs(auth.failure_window_secs),
        )?;
        let token_hash = secret_hash(&req.token)?;
        if let Err(why) =
            self.store()
                .check_email_token(&token_hash, TokenKind::PasswordReset, now_secs())?
        {
            return Err(email_token_error(why));
        }
        let password = req.password;
        let hash = self
            .inner
            .hashes
            .run(move || hash_password(&password))
            .await??;
        let user = self
            .use_email_token(&req.token, TokenKind::PasswordReset, move |u| {
                u.password_hash = hash.clone();
                // Following the emailed link proves the address too.
                u.email_verified = true;
            })
            .await?;
        self.revoke_all_sessions(user.id).await?;
        self.store()
            .delete_user_browser_sessions(user.id, None)
            .await?;
        self.inner.limiter.clear_account(&user.email);
        tracing::info!(user = %user.id, "password reset");
        Ok(())
    }

    async fn revoke_all_sessions(&self, uid: UserId) -> Result<(), ApiError> {
        self.store().revoke_all_sessions(uid).await?;
        Ok(())
    }

    /// `GET me`
    pub fn me(&self, claims: &Claims) -> Result<UserView, ApiError> {
        Ok(UserView::of(&self.user(claims)?))
    }

    /// `PATCH me`
    pub async fn patch_me(
        &self,
        claims: &Claims,
        req: PatchMeRequest,
    ) -> Result<UserView, ApiError> {
        let user = self.user(claims)?;
        let name = match req.display_name {
            Some(n) => check_name(&n)?,
            None => return Ok(UserView::of(&user)),
        };
        let updated = self
            .store()
            .update_user(user.id, move |u| u.display_name = name)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "account no longer exists"))?;
        Ok(UserView::of(&updated))
    }

    /// `DELETE me`: removes the account and everything stored for it.
    pub async fn delete_me(&self, claims: &Claims) -> Result<(), ApiError> {
        let user = self.user(claims)?;
        self.delete_account(&user).await
    }

    /// Removes `user` and everything stored for it: sessions (token families, the
    /// tracker's browser sessions), passkeys, lists.
    pub async fn delete_account(&self, user: &User) -> Result<(), ApiError> {
        self.revoke_all_sessions(user.id).await?;
        let uid = user.id;
        self.store().delete_user_pages(uid).await?;
        self.store().delete_user(uid, user.email.clone()).await?;
        tracing::info!(user = %uid, "account deleted");
        Ok(())
    }

    /// Changes `user`'s password (the account page): checks `current` with every limit of
    /// a sign-in (a wrong one counts as a failed sign-in), hashes `new` through the
    /// hashing gate, signs out every token family and every browser session but `keep`.
    pub async fn change_password(
        &self,
        user: &User,
        current: String,
        new: String,
        src: &Source,
        keep: Option<[u8; 32]>,
    ) -> Result<(), ApiError> {
        check_password(&new)?;
        let checked = self.check_credentials(&user.email, current, src).await?;
        if checked.id != user.id {
            return Err(ApiError::unauthorized(
                "invalid_credentials",
                "wrong email or password",
            ));
        }
        let hash = self.inner.hashes.run(move || hash_password(&new)).await??;
        self.store()
            .update_user(user.id, move |u| u.password_hash = hash)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "account no longer exists"))?;
        self.revoke_all_sessions(user.id).await?;
        self.store()
            .delete_user_browser_sessions(user.id, keep)
            .await?;
        tracing::info!(user = %user.id, "password changed");
        Ok(())
    }
}

/// The scopes of a network token from the JSON login: `account`, plus `admin` for admins.
fn network_scope(user: &User) -> String {
    if user.role == Role::Admin {
        format!(
            "{} {}",
            reelnet_proto::claims::SCOPE_ACCOUNT,
            reelnet_proto::claims::SCOPE_ADMIN
        )
    } else {
        reelnet_proto::claims::SCOPE_ACCOUNT.to_owned()
    }
}

fn email_token_error(why: EmailTokenError) -> ApiError {
    ApiError::bad_request(
        "invalid_token",
        match why {
            EmailTokenError::Used => "this link has already been used",
            EmailTokenError::Expired => "this link has expired; ask for a new one",
            EmailTokenError::Unknown => "this link is not valid",
        },
    )
}
