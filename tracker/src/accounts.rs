//! Accounts and tokens: register, email verification, login, refresh rotation with reuse
//! detection, logout, password reset, and the profile (`me`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use reelnet_proto::{Claims, Role, Tier};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::api::{effective_tier, now_secs, Api, AUDIENCE};
use crate::error::ApiError;
use crate::mail::Email;
use crate::store::{codec, EmailToken, Family, RefreshToken, StoreError, TokenKind, User, UserId};

const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 256;
const MAX_NAME: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

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
#[derive(Debug, Serialize)]
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
    pub user: UserView,
}

/// Normalises and checks an email address.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let bad = || ApiError::bad_request("invalid_email", "that is not a valid email address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    email.parse::<lettre::Address>().map_err(|_| bad())?;
    Ok(email)
}

/// Checks a new password's length (the rule registration and reset apply).
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("the password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(ApiError::bad_request(
            "invalid_password",
            format!("the password may have at most {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// Trims and checks a display name.
pub fn check_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("the display name must have 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Hashes a password with argon2id (blocking; call from a blocking thread).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// A random token (32 bytes, base64url) and the hash it is stored under.
fn new_secret() -> (String, [u8; 32]) {
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

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, ConflictableTransactionError<StoreError>> {
    codec::encode(v).or_else(abort)
}

fn dec<T: serde::de::DeserializeOwned>(
    v: &[u8],
) -> Result<T, ConflictableTransactionError<StoreError>> {
    codec::decode(v).or_else(abort)
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    StoreError::from(e)
}

impl Api {
    fn email_link(&self, path: &str, token: &str) -> String {
        format!(
            "{}/{path}?token={token}",
            self.config().web_url.trim_end_matches('/')
        )
    }

    async fn send_verification(&self, user: &User, token: &str) {
        let link = self.email_link("verify", token);
        self.inner
            .mailer
            .send(Email {
                to: user.email.clone(),
                subject: "Confirm your reelnet account".to_owned(),
                body: format!(
                    "Hello {},\r\n\r\nConfirm your email address to start watching:\r\n\r\n{link}\r\n\r\nThe link works once and expires in {} hours.\r\nIf you did not sign up, ignore this message.\r\n",
                    user.display_name,
                    self.config().auth.verify_ttl_secs / 3600
                ),
            })
            .await;
    }

    /// `POST auth/register`
    pub async fn register(&self, req: RegisterRequest) -> Result<UserView, ApiError> {
        let email = normalize_email(&req.email)?;
        let display_name = check_name(&req.display_name)?;
        check_password(&req.password)?;
        if self
            .store()
            .trees()
            .emails
            .contains_key(email.as_bytes())
            .map_err(StoreError::from)?
        {
            return Err(email_taken());
        }
        let password = req.password;
        let password_hash = blocking(move || hash_password(&password)).await??;
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
            expires_at: now + self.config().auth.verify_ttl_secs,
            used: false,
        };
        let stored = user.clone();
        let created = self
            .store()
            .write(move |t| {
                // The first account administers the tracker.
                let first = t.users.is_empty();
                (&t.users, &t.emails, &t.email_tokens)
                    .transaction(|(users, emails, tokens)| {
                        if emails.get(stored.email.as_bytes())?.is_some() {
                            return Ok(None);
                        }
                        let mut user = stored.clone();
                        if first {
                            user.role = Role::Admin;
                        }
                        users.insert(&user.id.0, enc(&user)?)?;
                        emails.insert(user.email.as_bytes(), &user.id.0)?;
                        tokens.insert(&token_hash, enc(&record)?)?;
                        Ok(Some(user))
                    })
                    .map_err(tx_err)
            })
            .await?;
        let user = created.ok_or_else(email_taken)?;
        tracing::info!(user = %user.id, "account registered");
        self.send_verification(&user, &token).await;
        Ok(UserView::of(&user))
    }

    /// `POST auth/resend-verification`: always answers the same, whether or not the
    /// account exists or is already verified.
    pub async fn resend_verification(&self, req: EmailRequest) -> Result<(), ApiError> {
        let email = normalize_email(&req.email)?;
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
        self.store()
            .write(move |t| {
                t.email_tokens.insert(hash, codec::encode(&record)?)?;
                Ok(())
            })
            .await?;
        self.send_verification(&user, &token).await;
        Ok(())
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>, ApiError> {
        let trees = self.store().trees();
        let Some(id) = trees
            .emails
            .get(email.as_bytes())
            .map_err(StoreError::from)?
        else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt("email index".to_owned()))?;
        self.user_by_id(&UserId(id))
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
        let outcome = self
            .store()
            .write(move |t| {
                (&t.email_tokens, &t.users)
                    .transaction(|(tokens, users)| {
                        let Some(raw) = tokens.get(hash)? else {
                            return Ok(Err("unknown"));
                        };
                        let mut rec: EmailToken = dec(&raw)?;
                        if rec.kind != kind {
                            return Ok(Err("unknown"));
                        }
                        if rec.used {
                            return Ok(Err("used"));
                        }
                        if rec.expires_at <= now {
                            return Ok(Err("expired"));
                        }
                        let Some(raw_user) = users.get(rec.user.0)? else {
                            return Ok(Err("unknown"));
                        };
                        let mut user: User = dec(&raw_user)?;
                        rec.used = true;
                        apply(&mut user);
                        tokens.insert(&hash, enc(&rec)?)?;
                        users.insert(&user.id.0, enc(&user)?)?;
                        Ok(Ok(user))
                    })
                    .map_err(tx_err)
            })
            .await?;
        outcome.map_err(|why| {
            ApiError::bad_request(
                "invalid_token",
                match why {
                    "used" => "this link has already been used",
                    "expired" => "this link has expired; ask for a new one",
                    _ => "this link is not valid",
                },
            )
        })
    }

    /// `POST auth/verify`
    pub async fn verify_email(&self, req: TokenRequest) -> Result<UserView, ApiError> {
        let user = self
            .use_email_token(&req.token, TokenKind::Verify, |u| u.email_verified = true)
            .await?;
        tracing::info!(user = %user.id, "email verified");
        Ok(UserView::of(&user))
    }

    /// `POST auth/login`
    pub async fn login(&self, req: LoginRequest, client: &str) -> Result<TokenPair, ApiError> {
        let auth = &self.config().auth;
        let email = normalize_email(&req.email).map_err(|_| {
            ApiError::unauthorized("invalid_credentials", "wrong email or password")
        })?;
        let account_key = format!("account:{email}");
        let client_key = format!("client:{client}");
        let limiter = &self.inner.limiter;
        if let Some(wait) = limiter
            .blocked(&account_key, auth.max_failures_per_account)
            .or_else(|| limiter.blocked(&client_key, auth.max_failures_per_address))
        {
            return Err(ApiError::rate_limited(wait));
        }
        let user = self.user_by_email(&email)?;
        let phc = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.inner.dummy_hash.clone());
        let password = req.password;
        let ok = blocking(move || password_matches(&password, &phc)).await?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => {
                limiter.fail(&account_key);
                limiter.fail(&client_key);
                return Err(ApiError::unauthorized(
                    "invalid_credentials",
                    "wrong email or password",
                ));
            }
        };
        limiter.clear(&account_key);
        let family: [u8; 16] = rand::random();
        let now = now_secs();
        let (refresh, refresh_hash) = new_secret();
        let rec = RefreshToken {
            user: user.id,
            family,
            expires_at: now + auth.refresh_ttl_secs,
            used: false,
        };
        let fam = Family {
            user: user.id,
            revoked: false,
            created_at: now,
        };
        let uid = user.id;
        self.store()
            .write(move |t| {
                (&t.refresh, &t.families, &t.user_families)
                    .transaction(|(refresh, families, user_families)| {
                        refresh.insert(&refresh_hash, enc(&rec)?)?;
                        families.insert(&family, enc(&fam)?)?;
                        user_families.insert(uid.key(&family), &[])?;
                        Ok(())
                    })
                    .map_err(tx_err)
            })
            .await?;
        tracing::info!(user = %user.id, "signed in");
        self.token_pair(&user, refresh)
    }

    fn token_pair(&self, user: &User, refresh_token: String) -> Result<TokenPair, ApiError> {
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
            email_verified: user.email_verified,
            role: user.role,
            exp,
            iat: now,
            iss: self.config().issuer.clone(),
            aud: AUDIENCE.to_owned(),
            jti: hex::encode(jti),
        };
        Ok(TokenPair {
            access_token: self.keyring().sign(&claims)?,
            token_type: "Bearer",
            expires_in: exp - now,
            refresh_token,
            refresh_expires_in: auth.refresh_ttl_secs,
            user: UserView::of(user),
        })
    }

    /// `POST auth/refresh`: rotates the refresh token. Presenting a token that was already
    /// rotated means it was copied; the whole family is revoked.
    pub async fn refresh(&self, req: RefreshRequest) -> Result<TokenPair, ApiError> {
        let hash = secret_hash(&req.refresh_token)
            .map_err(|_| ApiError::unauthorized("invalid_refresh", "refresh token is not valid"))?;
        let now = now_secs();
        let ttl = self.config().auth.refresh_ttl_secs;
        let (next, next_hash) = new_secret();
        enum Outcome {
            Rotated(UserId),
            Invalid(&'static str),
            Reused,
        }
        let outcome = self
            .store()
            .write(move |t| {
                (&t.refresh, &t.families)
                    .transaction(|(refresh, families)| {
                        let Some(raw) = refresh.get(hash)? else {
                            return Ok(Outcome::Invalid("refresh token is not valid"));
                        };
                        let mut rec: RefreshToken = dec(&raw)?;
                        let Some(raw_fam) = families.get(rec.family)? else {
                            return Ok(Outcome::Invalid("refresh token is not valid"));
                        };
                        let mut fam: Family = dec(&raw_fam)?;
                        if fam.revoked {
                            return Ok(Outcome::Invalid("this session has been signed out"));
                        }
                        if rec.used {
                            fam.revoked = true;
                            families.insert(&rec.family, enc(&fam)?)?;
                            return Ok(Outcome::Reused);
                        }
                        if rec.expires_at <= now {
                            return Ok(Outcome::Invalid("refresh token has expired"));
                        }
                        rec.used = true;
                        refresh.insert(&hash, enc(&rec)?)?;
                        let next_rec = RefreshToken {
                            user: rec.user,
                            family: rec.family,
                            expires_at: now + ttl,
                            used: false,
                        };
                        refresh.insert(&next_hash, enc(&next_rec)?)?;
                        Ok(Outcome::Rotated(rec.user))
                    })
                    .map_err(tx_err)
            })
            .await?;
        match outcome {
            Outcome::Rotated(uid) => {
                let user = self.user_by_id(&uid)?.ok_or_else(|| {
                    ApiError::unauthorized("invalid_refresh", "account no longer exists")
                })?;
                self.token_pair(&user, next)
            }
            Outcome::Invalid(why) => Err(ApiError::unauthorized("invalid_refresh", why)),
            Outcome::Reused => {
                tracing::warn!("refresh token reused; family revoked");
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
        self.store()
            .write(move |t| {
                let Some(raw) = t.refresh.get(hash)? else {
                    return Ok(());
                };
                let rec: RefreshToken = codec::decode(&raw)?;
                if let Some(raw_fam) = t.families.get(rec.family)? {
                    let mut fam: Family = codec::decode(&raw_fam)?;
                    fam.revoked = true;
                    t.families.insert(rec.family, codec::encode(&fam)?)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// `POST auth/password-reset`: emails a reset link when the account exists; answers the
    /// same either way.
    pub async fn password_reset(&self, req: EmailRequest) -> Result<(), ApiError> {
        let email = normalize_email(&req.email)?;
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
        self.store()
            .write(move |t| {
                t.email_tokens.insert(hash, codec::encode(&record)?)?;
                Ok(())
            })
            .await?;
        let link = self.email_link("reset-password", &token);
        self.inner
            .mailer
            .send(Email {
                to: user.email.clone(),
                subject: "Reset your reelnet password".to_owned(),
                body: format!(
                    "Hello {},\r\n\r\nSomeone asked to reset the password of this account. To choose a new one, open:\r\n\r\n{link}\r\n\r\nThe link works once and expires in {} minutes. If it was not you, ignore this message.\r\n",
                    user.display_name,
                    self.config().auth.reset_ttl_secs / 60
                ),
            })
            .await;
        Ok(())
    }

    /// `POST auth/password-reset/confirm`: sets the new password and signs out every session.
    pub async fn password_reset_confirm(&self, req: ResetConfirmRequest) -> Result<(), ApiError> {
        check_password(&req.password)?;
        let password = req.password;
        let hash = blocking(move || hash_password(&password)).await??;
        let user = self
            .use_email_token(&req.token, TokenKind::PasswordReset, move |u| {
                u.password_hash = hash.clone();
                // Following the emailed link proves the address too.
                u.email_verified = true;
            })
            .await?;
        self.revoke_all_sessions(user.id).await?;
        self.inner.limiter.clear(&format!("account:{}", user.email));
        tracing::info!(user = %user.id, "password reset");
        Ok(())
    }

    async fn revoke_all_sessions(&self, uid: UserId) -> Result<(), ApiError> {
        self.store()
            .write(move |t| {
                for item in t.user_families.scan_prefix(uid.0) {
                    let (key, _) = item?;
                    let family = &key[16..];
                    if let Some(raw) = t.families.get(family)? {
                        let mut fam: Family = codec::decode(&raw)?;
                        fam.revoked = true;
                        t.families.insert(family, codec::encode(&fam)?)?;
                    }
                }
                Ok(())
            })
            .await?;
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
        let uid = user.id;
        let updated = self
            .store()
            .write(move |t| {
                let Some(raw) = t.users.get(uid.0)? else {
                    return Ok(None);
                };
                let mut user: User = codec::decode(&raw)?;
                user.display_name = name;
                t.users.insert(uid.0, codec::encode(&user)?)?;
                Ok(Some(user))
            })
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "account no longer exists"))?;
        Ok(UserView::of(&updated))
    }

    /// `DELETE me`: removes the account and everything stored for it.
    pub async fn delete_me(&self, claims: &Claims) -> Result<(), ApiError> {
        let user = self.user(claims)?;
        self.revoke_all_sessions(user.id).await?;
        let uid = user.id;
        let email = user.email.clone();
        self.store()
            .write(move |t| {
                for tree in [&t.watchlist, &t.progress, &t.history, &t.user_families] {
                    let keys: Vec<_> = tree.scan_prefix(uid.0).keys().collect::<Result<_, _>>()?;
                    for k in keys {
                        tree.remove(k)?;
                    }
                }
                t.emails.remove(email.as_bytes())?;
                t.users.remove(uid.0)?;
                Ok(())
            })
            .await?;
        tracing::info!(user = %uid, "account deleted");
        Ok(())
    }
}

fn email_taken() -> ApiError {
    ApiError::conflict(
        "email_taken",
        "an account with this email already exists; sign in or reset its password",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" A@Example.org ").ok().as_deref(),
            Some("a@example.org")
        );
        for bad in [
            "", "a", "a@b", "a@@b.c", "@b.c", "a b@c.d", "a@.b", "a@b..c", "a@b.c.",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_passwords() {
        assert!(check_name("  ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert_eq!(check_name(" Ann ").ok().as_deref(), Some("Ann"));
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
    }

    #[test]
    fn argon2_round_trip() {
        let Ok(h) = hash_password("correct horse battery") else {
            panic!("hash failed")
        };
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong horse battery", &h));
    }
}
