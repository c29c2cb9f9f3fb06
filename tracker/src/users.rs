//! Offline account administration: `reelnet-tracker user add`, `user set-role` and
//! `admin set-tier` write straight into the tracker's store while the tracker is *not*
//! running (sled holds an exclusive lock on the database, so a running tracker makes these
//! commands fail with [`OfflineError::Locked`] and nothing is changed).
//!
//! Accounts are created with the same rules and hashing as `POST auth/register`
//! ([`crate::policy`]) and the same typed store operations; writes go through the store's
//! single [`crate::store::Writer`], so they are flushed before the command reports success.

use std::path::{Path, PathBuf};

use reelnet_proto::{Role, Tier};

use crate::accounts::UserView;
use crate::clock::now_secs;
use crate::error::ApiError;
use crate::policy::{check_name, check_password, hash_password, normalize_email};
use crate::store::{Store, StoreError, User, UserId};

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

/// A new account for [`add_user`].
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    /// Defaults to the part of the email before the `@`.
    pub display_name: Option<String>,
    /// Mark the email as verified (no verification mail is sent).
    pub verified: bool,
    pub role: Role,
}

/// Opens the store under `data_dir`, runs `f`, then lets the writer flush and stop.
pub(crate) async fn with_store<T, F, Fut>(data_dir: &Path, f: F) -> Result<T, OfflineError>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<T, OfflineError>>,
{
    let path = data_dir.join("db");
    let (store, writer) = Store::open(&path).map_err(|source| match &source {
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

/// Creates an account in the tracker's store under `data_dir` (the tracker must be stopped).
pub async fn add_user(data_dir: &Path, new: NewUser) -> Result<UserView, OfflineError> {
    let email = normalize_email(&new.email)?;
    check_password(&new.password)?;
    let display_name = check_name(
        new.display_name
            .as_deref()
            .unwrap_or_else(|| email.split('@').next().unwrap_or("reelnet")),
    )?;
    let password = new.password.clone();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)??;
    let user = User {
        id: UserId::random(),
        email: email.clone(),
        display_name,
        password_hash,
        email_verified: new.verified,
        tier: Tier::Free,
        tier_until: None,
        role: new.role,
        created_at: now_secs(),
    };
    with_store(data_dir, move |store| async move {
        let created = store.create_user(user, None, false).await?;
        drop(store);
        created
            .map(|u| UserView::of(&u))
            .ok_or(OfflineError::Exists(email))
    })
    .await
}

/// Sets an existing account's role (the tracker must be stopped).
pub async fn set_role(data_dir: &Path, email: &str, role: Role) -> Result<UserView, OfflineError> {
    let email = normalize_email(email)?;
    with_store(data_dir, move |store| async move {
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
    email: &str,
    tier: Tier,
    until: Option<u64>,
) -> Result<UserView, OfflineError> {
    let email = normalize_email(email)?;
    with_store(data_dir, move |store| async move {
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
