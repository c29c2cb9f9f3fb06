//! Offline account administration: `reelnet-tracker user add`, `user set-role` and
//! `admin set-tier` write straight into the tracker's store while the tracker is *not*
//! running (sled holds an exclusive lock on the database, so a running tracker makes these
//! commands fail with [`OfflineError::Locked`] and nothing is changed). On PostgreSQL
//! (`[storage] engine = "postgres"`) there is no such lock: the command's writes are
//! serialised with the running trackers' by the writers' advisory lock.
//!
//! Accounts are created with the same rules and hashing as `POST auth/register`
//! ([`crate::policy`]) and the same typed store operations; writes go through the store's
//! single [`crate::store::Writer`], so they are flushed before the command reports success.

use std::path::{Path, PathBuf};

use reelnet_proto::{Role, Tier};
use serde::{Deserialize, Serialize};

use crate::accounts::UserView;
use crate::clock::now_secs;
use crate::config::StorageConfig;
use crate::error::ApiError;
use crate::policy::{check_name, check_password, hash_password, normalize_email};
use crate::store::{Created, EmailToken, Store, StoreError, TokenKind, User, UserId};

/// Why an offline account command failed.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// Another process (a running tracker) holds the database lock.
    #[error(
        "the tracker database in {0} is in use — is the tracker running? Stop it first \
         (or create the account through the API: POST /api/v1/auth/register)"
    )]
    Locked(PathBuf),
    #[error("cannot open the tracker database in {path}: {source}")]
    Open { path: PathBuf, source: StoreError },
    #[error("an account with the email {0} already exists")]
    Exists(String),
    #[error("no account with the email {0}")]
    NoSuchUser(String),
    #[error("{}", .0.message)]
    Invalid(ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for OfflineError {
    fn from(e: ApiError) -> Self {
        OfflineError::Invalid(e)
    }
}

/// Opens the store (`storage`'s engine; sled under `data_dir`), runs `f`, then lets the
/// writer flush and stop.
pub(crate) async fn with_store<T, F, Fut>(
    data_dir: &Path,
    storage: &StorageConfig,
    f: F,
) -> Result<T, OfflineError>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<T, OfflineError>>,
{
    let path = data_dir.join("db");
    let open = storage
        .engine(data_dir)
        .and_then(|engine| Store::open_engine(&engine));
    let (store, writer) = open.map_err(|source| match &source {
        e if e.is_locked() => OfflineError::Locked(path.clone()),
        _ => OfflineError::Open {
            path: path.clone(),
            source,
        },
    })?;
    // The writer ends (after a last flush) once `f` has dropped its store handle.
    let (result, flushed) = tokio::join!(f(store), writer.run());
    let value = result?;
    flushed?;
    Ok(value)
}

/// A new account as the operator route takes it (`POST /api/v1/admin/users`, what
/// `reelnet-tracker user add` sends to a running tracker, or writes itself when the
/// tracker is stopped). `display_name` defaults to the part of the email before the `@`;
/// `verified` marks the address confirmed (no verification mail).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUserRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub admin: bool,
}

/// Checks and hashes a new account (blocking: call from a blocking thread).
fn new_user_record(new: &AddUserRequest) -> Result<User, ApiError> {
    let email = normalize_email(&new.email)?;
    check_password(&new.password)?;
    let display_name = check_name(
        new.display_name
            .as_deref()
            .unwrap_or_else(|| email.split('@').next().unwrap_or("reelnet")),
    )?;
    Ok(User {
        id: UserId::random(),
        email,
        display_name,
        password_hash: hash_password(&new.password)?,
        email_verified: new.verified,
        tier: Tier::Free,
        tier_until: None,
        role: if new.admin { Role::Admin } else { Role::User },
        created_at: now_secs(),
    })
}

/// Stores a new account made by the operator (no verification mail; `verified` says
/// whether the address counts as confirmed).
pub(crate) async fn create(store: &Store, new: AddUserRequest) -> Result<UserView, ApiError> {
    let email = new.email.clone();
    let user = tokio::task::spawn_blocking(move || new_user_record(&new))
        .await
        .map_err(ApiError::internal)??;
    match store.create_user(user, None, None, now_secs()).await? {
        Created::Created(u) => {
            tracing::info!(user = %u.id, role = ?u.role, "account added by the operator");
            Ok(UserView::of(&u))
        }
        _ => Err(ApiError::conflict(
            "email_taken",
            format!("an account with the email {email} already exists"),
        )),
    }
}

/// `reelnet-tracker admin bootstrap`'s request: how long the link lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapRequest {
    pub ttl_secs: u64,
}

/// A single-use link that makes the account registered with it the first admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapLink {
    pub link: String,
    pub expires_at: u64,
}

/// Makes an admin bootstrap link — only while the network has no admin (after that,
/// admins are made with `user set-role` or `user add --admin`). The link is the tracker's
/// own registration page (`public_url`: `<public_url>/register?bootstrap=…`).
pub(crate) async fn bootstrap(
    store: &Store,
    public_url: &str,
    req: BootstrapRequest,
) -> Result<BootstrapLink, ApiError> {
    if store.has_admin() {
        return Err(ApiError::conflict(
            "admin_exists",
            "this tracker already has an admin; make another with `reelnet-tracker user set-role EMAIL admin` or `user add --admin`",
        ));
    }
    if req.ttl_secs == 0 || req.ttl_secs > 7 * 24 * 3600 {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "a bootstrap link lives between 1 second and 7 days",
        ));
    }
    let (token, hash) = crate::accounts::new_secret();
    let expires_at = now_secs() + req.ttl_secs;
    store
        .put_email_token(
            hash,
            EmailToken {
                user: UserId([0; 16]),
                kind: TokenKind::Bootstrap,
                expires_at,
                used: false,
            },
        )
        .await?;
    tracing::info!(expires_at, "admin bootstrap link made");
    Ok(BootstrapLink {
        link: format!(
            "{}/register?bootstrap={token}",
            public_url.trim_end_matches('/')
        ),
        expires_at,
    })
}

/// Creates an account in the tracker's sled store under `data_dir` (the tracker must be
/// stopped). The `user add` command goes through [`crate::operator::run`], which follows
/// the configured engine.
pub async fn add_user(data_dir: &Path, new: AddUserRequest) -> Result<UserView, OfflineError> {
    let email = new.email.clone();
    with_store(
        data_dir,
        &StorageConfig::default(),
        move |store| async move {
            let created = create(&store, new).await;
            drop(store);
            created.map_err(|e| match e.code {
                "email_taken" => OfflineError::Exists(email),
                _ => OfflineError::Invalid(e),
            })
        },
    )
    .await
}

impl crate::api::Api {
    /// `GET admin/users` (operator or admin): every account, oldest first.
    pub fn admin_users(&self) -> Result<Vec<UserView>, ApiError> {
        let mut users: Vec<UserView> = self.store().all_users().iter().map(UserView::of).collect();
        users.sort_by(|a, b| (a.created_at, &a.email).cmp(&(b.created_at, &b.email)));
        Ok(users)
    }

    /// `POST admin/users` (operator or admin).
    pub async fn admin_add_user(
        &self,
        _by: &crate::network::Operator,
        req: AddUserRequest,
    ) -> Result<UserView, ApiError> {
        create(self.store(), req).await
    }

    /// `POST admin/bootstrap` (the machine operator's token).
    pub async fn admin_bootstrap(&self, req: BootstrapRequest) -> Result<BootstrapLink, ApiError> {
        bootstrap(self.store(), &self.config().public_origin(), req).await
    }
}

/// Sets an existing account's role (with sled, the tracker must be stopped).
pub async fn set_role(
    data_dir: &Path,
    storage: &StorageConfig,
    email: &str,
    role: Role,
) -> Result<UserView, OfflineError> {
    let email = normalize_email(email)?;
    with_store(data_dir, storage, move |store| async move {
        let updated = store
            .update_user_by_email(email.clone(), move |user| user.role = role)
            .await?;
        drop(store);
        updated
            .map(|u| UserView::of(&u))
            .ok_or(OfflineError::NoSuchUser(email))
    })
    .await
}

/// Sets an existing account's tier and, for premium, when it ends (`None`: no end) — the
/// tracker must be stopped. The running tracker's subscription worker sends the
/// "started" email on its next pass.
pub async fn set_tier(
    data_dir: &Path,
    storage: &StorageConfig,
    email: &str,
    tier: Tier,
    until: Option<u64>,
) -> Result<UserView, OfflineError> {
    let email = normalize_email(email)?;
    with_store(data_dir, storage, move |store| async move {
        let updated = store
            .update_user_by_email(email.clone(), move |user| {
                user.tier = tier;
                user.tier_until = if tier == Tier::Premium { until } else { None };
            })
            .await?;
        drop(store);
        updated
            .map(|u| UserView::of(&u))
            .ok_or(OfflineError::NoSuchUser(email))
    })
    .await
}
