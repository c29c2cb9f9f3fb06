//! The tracker's API as plain async methods (the HTTP layer in `http` only parses and
//! renders). Accounts and tokens live in [`accounts`](crate::accounts), a user's own lists in
//! [`library`](crate::library), and so on: each domain module adds an `impl Api` block. This
//! module holds what they share (configuration, store, keyring, mailer, authentication) and
//! imports none of them; what they share below it is in [`policy`](crate::policy) and
//! [`clock`](crate::clock).

use std::sync::Arc;

use reelnet_proto::Claims;
use tokio::sync::watch;

// Kept here too so `api::now_secs` etc. keep working for callers outside the crate.
pub use crate::clock::{now_ms, now_secs};
pub use crate::policy::{effective_tier, AUDIENCE};

use crate::config::TrackerConfig;
use crate::error::ApiError;
use crate::hashing::HashGate;
use crate::keys::Keyring;
use crate::limiter::Limiter;
use crate::mail::Mailer;
use crate::network::keys::NetworkKeyring;
use crate::network::{Membership, Operator};
use crate::store::{Store, User, UserId};

/// The facade every route calls.
#[derive(Clone)]
pub struct Api {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: TrackerConfig,
    pub store: Store,
    pub keys: watch::Receiver<Arc<Keyring>>,
    pub mailer: Mailer,
    pub limiter: Limiter,
    /// The bound on password hashing.
    pub hashes: HashGate,
    /// A valid argon2 hash to check against when an account does not exist, so a login
    /// takes as long for an unknown email as for a wrong password.
    pub dummy_hash: String,
    /// The billing webhook's HMAC key ([`crate::billing_signature::webhook_secret`]).
    pub webhook_secret: Vec<u8>,
    /// TMDb, for titling requests (`None` without a key).
    pub tmdb: Option<crate::tmdb::Tmdb>,
    /// The network membership authority.
    pub membership: Membership,
    /// The token in `<data_dir>/operator.json` (`None`: no operator access over HTTP).
    pub operator_token: Option<String>,
}

impl Api {
    pub fn new(
        config: TrackerConfig,
        store: Store,
        keys: watch::Receiver<Arc<Keyring>>,
        mailer: Mailer,
        network_keys: watch::Receiver<Arc<NetworkKeyring>>,
        operator_token: Option<String>,
    ) -> Result<Self, ApiError> {
        let membership = Membership::new(store.clone(), network_keys, config.network.clone());
        let limiter = Limiter::new();
        let hashes = HashGate::new(config.auth.hash_concurrency, config.auth.hash_queue)
            .map_err(ApiError::internal)?;
        let dummy_hash = crate::policy::hash_password("not a real password")?;
        let webhook_secret = crate::billing_signature::webhook_secret(
            &config.billing.webhook_secret,
            &config.data_dir,
        )
        .map_err(ApiError::internal)?;
        let tmdb =
            crate::tmdb::Tmdb::new(&config.requests.tmdb_api_url, &config.requests.tmdb_api_key)
                .map_err(ApiError::internal)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                keys,
                mailer,
                limiter,
                hashes,
                dummy_hash,
                webhook_secret,
                tmdb,
                membership,
                operator_token,
            }),
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Gauges for `/metrics`, read from the store now.
    pub fn metrics_gauges(&self) -> crate::metrics::Gauges {
        let c = self.store().counts();
        crate::metrics::Gauges {
            users: c.users,
            open_requests: c.open_requests,
            rooms: c.rooms,
            bound_movies: self.store().bound_movies(),
        }
    }

    /// The current keyring.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.inner.keys.borrow().clone()
    }

    /// The JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        self.keyring().jwks(now_secs())
    }

    /// Checks an `Authorization: Bearer` header and returns the token's claims.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Claims, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::unauthorized("missing_token", "sign in first (no Authorization header)")
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "expected `Bearer <token>`"))?;
        let claims = self.keyring().verify(
            token.trim(),
            &self.inner.config.issuer,
            AUDIENCE,
            now_secs(),
        )?;
        Ok(claims)
    }

    /// The account behind verified claims; a deleted account's tokens stop working.
    pub fn user(&self, claims: &Claims) -> Result<User, ApiError> {
        let id = UserId::parse(&claims.sub)
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "bad subject"))?;
        self.user_by_id(&id)?
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "account no longer exists"))
    }

    pub(crate) fn user_by_id(&self, id: &UserId) -> Result<Option<User>, ApiError> {
        Ok(self.store().user(id)?)
    }

    /// The network membership authority.
    pub fn membership(&self) -> &Membership {
        &self.inner.membership
    }

    /// Who may act on the network: the machine operator (the token from `operator.json`
    /// in `Reelnet-Operator-Token`) or a signed-in admin.
    pub fn operator(
        &self,
        auth: Option<&str>,
        operator_token: Option<&str>,
    ) -> Result<Operator, ApiError> {
        if let Some(given) = operator_token {
            let ok = self.inner.operator_token.as_deref().is_some_and(|t| {
                // Compare hashes so the time does not depend on where they differ.
                blake3::hash(t.as_bytes()) == blake3::hash(given.as_bytes())
            });
            if !ok {
                return Err(ApiError::forbidden(
                    "bad_operator_token",
                    "wrong operator token (see operator.json in the tracker's data directory)",
                ));
            }
            return Ok(Operator::Local);
        }
        let claims = self.authenticate(auth)?;
        let user = self.user(&claims)?;
        if user.role != reelnet_proto::Role::Admin {
            return Err(ApiError::forbidden("not_admin", "only admins may do this"));
        }
        Ok(Operator::Admin(user.email))
    }
}
