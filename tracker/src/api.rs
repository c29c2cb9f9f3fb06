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
    /// Refusal counters of sign-in through the tracker (its codes and pending devices are
    /// in the store, shared by every replica).
    pub oauth: crate::oauth::state::OauthState,
    /// Access tokens whose signature was checked, until they expire.
    pub tokens: crate::token_cache::TokenCache,
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
        let membership = Membership::new(store.clone(), network_keys, config.network.clone())
            .with_public_url(&config.public_origin());
        let limiter = Limiter::new();
        let hashes = HashGate::new(config.auth.hash_concurrency, config.auth.hash_queue)
            .map_err(ApiError::internal)?;
        let dummy_hash = crate::policy::hash_password("not a real password")?;
        let webhook_secret = crate::billing_signature::webhook_secret(
            &config.billing.webhook_secret,
            &config.data_dir,
        )
        .map_err(ApiError::internal)?;
        let tokens = crate::token_cache::TokenCache::new(config.auth.token_cache_entries);
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
                oauth: crate::oauth::state::OauthState::default(),
                tokens,
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

    /// Checks an `Authorization: Bearer` header of a request that did not come through a
    /// member's proxy and returns the token's claims (see [`Api::authenticate_via`]).
    pub fn authenticate(&self, header: Option<&str>) -> Result<Claims, ApiError> {
        self.authenticate_via(header, None)
    }

    /// Checks an `Authorization: Bearer` header of a request that came through node `via`
    /// (its `Reelnet-Node-Auth` verified) or directly (`None`). A node token is accepted
    /// only through its own node, a network token only directly (else 401
    /// `wrong_audience`); a token of an ended session is refused (401 `session_ended`).
    pub fn authenticate_via(
        &self,
        header: Option<&str>,
        via: Option<&str>,
    ) -> Result<Claims, ApiError> {
        let claims = self.verify_bearer(header)?;
        let ok = match claims.node() {
            Some(node) => via == Some(node),
            None => via.is_none(),
        };
        if !ok {
            self.oauth_refused("wrong_audience");
            return Err(ApiError::unauthorized(
                "wrong_audience",
                match claims.node() {
                    Some(_) => "this token is bound to another node's site; sign in here",
                    None => "a network token is not accepted through a node; sign in on this site",
                },
            ));
        }
        self.check_session(&claims)?;
        Ok(claims)
    }

    /// Checks the bearer token of an account or network change: a network token with
    /// `scope`, not through a node (`via_node`: the request carried `Reelnet-Node-Auth`).
    /// A node token (or any token through a node) gets 403 `node_token_not_allowed`, a
    /// token without the scope 403 `scope_required`.
    pub fn authenticate_change(
        &self,
        header: Option<&str>,
        via_node: bool,
        scope: &str,
    ) -> Result<Claims, ApiError> {
        let claims = self.verify_bearer(header)?;
        if via_node || claims.node().is_some() {
            self.oauth_refused("node_token_on_account_route");
            return Err(ApiError::forbidden(
                "node_token_not_allowed",
                "account and network changes are made at the tracker, not through a node's site",
            ));
        }
        if claims.aud != AUDIENCE {
            return Err(ApiError::unauthorized("invalid_token", "unknown audience"));
        }
        self.check_session(&claims)?;
        if !claims.has_scope(scope) {
            if scope == reelnet_proto::claims::SCOPE_ADMIN && !claims.is_admin() {
                return Err(ApiError::forbidden("not_admin", "only admins may do this"));
            }
            return Err(ApiError::forbidden(
                "scope_required",
                format!("this needs a token with the {scope} scope (sign in at the tracker)"),
            ));
        }
        Ok(claims)
    }

    /// A bearer token's signature, issuer and expiry; its audience must be the network's
    /// or a node's.
    fn verify_bearer(&self, header: Option<&str>) -> Result<Claims, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::unauthorized("missing_token", "sign in first (no Authorization header)")
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "expected `Bearer <token>`"))?;
        let token = token.trim();
        let now = now_secs();
        let keyring = self.keyring();
        let cached = self
            .inner
            .tokens
            .get(token, now, |kid| keyring.accepts_kid(kid, now));
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let (claims, kid) =
                    keyring.verify_any_audience_kid(token, &self.inner.config.issuer, now)?;
                self.inner.tokens.insert(token, kid, &claims, now);
                claims
            }
        };
        if claims.aud != AUDIENCE && claims.node().is_none() {
            return Err(ApiError::unauthorized("invalid_token", "unknown audience"));
        }
        Ok(claims)
    }

    /// Refuses a token whose session (`sid`) has ended.
    fn check_session(&self, claims: &Claims) -> Result<(), ApiError> {
        let Some(sid) = claims.sid.as_deref() else {
            return Ok(());
        };
        let mut id = [0u8; 16];
        if hex::decode_to_slice(sid, &mut id).is_err() {
            return Err(ApiError::unauthorized("invalid_token", "bad session id"));
        }
        match self.store().family(&id)? {
            Some(f) if !f.revoked => Ok(()),
            _ => Err(ApiError::unauthorized(
                "session_ended",
                "this session has ended; sign in again",
            )),
        }
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
        let claims = self.authenticate_change(auth, false, reelnet_proto::claims::SCOPE_ADMIN)?;
        let user = self.user(&claims)?;
        if user.role != reelnet_proto::Role::Admin {
            return Err(ApiError::forbidden("not_admin", "only admins may do this"));
        }
        Ok(Operator::Admin(user.email))
    }
}
