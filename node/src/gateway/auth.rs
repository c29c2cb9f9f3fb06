//! Offline verification of the tracker's access tokens (JWTs).
//!
//! The node never asks the tracker whether a token is good: it checks the EdDSA signature
//! with the public keys the tracker publishes at `{tracker_url}/.well-known/jwks.json`
//! (the current replica's, see [`crate::trackers`]).
//! One task (the *key fetcher*) owns the HTTP client and is the only writer of the key
//! cache; readers get the current [`KeySet`] through a `tokio::sync::watch` channel, so a
//! verification is a lock-free lookup plus a signature check.
//!
//! The fetcher loads the keys at start, refreshes them periodically, and refetches when a
//! token names a `kid` it does not know (key rotation) — at most once per
//! [`VerifierConfig::min_refetch`], so tokens with forged kids cannot make the node hammer
//! the tracker. A failed fetch keeps the cached keys: a tracker that is down does not break
//! verification of tokens whose key is cached.
//!
//! Checks are strict: length ≤ [`MAX_TOKEN_BYTES`], algorithm pinned to EdDSA, `kid`
//! required and known, `exp`/`iss`/`aud`/`sub` required, `iss` = the configured issuer,
//! [`LEEWAY_SECS`] (the network's clock-skew tolerance, 5 minutes and 30 s) of leeway on `exp` — the token was
//! stamped by the tracker's clock, and a node whose clock runs ahead must not refuse a fresh
//! token early — `nbf`/`iat` not checked (a node whose clock runs behind would refuse a
//! token just issued), and `aud` = this node's audience
//! ([`node_audience`] of its node id: a token issued through this node). Network tokens
//! (`aud` = [`ACCESS_TOKEN_AUDIENCE`]) and tokens issued through other nodes are refused
//! with their own reasons ([`AuthError::NetworkToken`], [`AuthError::OtherNode`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reelnet_proto::claims::{audience_node, node_audience, ACCESS_TOKEN_AUDIENCE, MAX_TOKEN_BYTES};
use reelnet_proto::Claims;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest JWKS document accepted from the tracker.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys kept from one JWKS document.
pub const MAX_JWKS_KEYS: usize = 64;
/// Seconds of clock skew tolerated on `exp`: the network's
/// [`SKEW_TOLERANCE_SECS`](reelnet_proto::membership::SKEW_TOLERANCE_SECS) (5 minutes plus
/// 30 s of slack). The cost: a token is accepted here up to that long past its `exp` by this
/// node's clock; access tokens are short-lived and revocation does not rely on `exp` (see
/// `docs/clock-skew.md`).
pub const LEEWAY_SECS: u64 = reelnet_proto::membership::SKEW_TOLERANCE_SECS;

/// Why an access token was refused. Every variant means HTTP 401 to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm must be EdDSA")]
    Algorithm,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error(
        "this is a network token (from the tracker's own sign-in): a node takes only tokens \
         issued through it; sign in on this node's site (/auth/login)"
    )]
    NetworkToken,
    #[error(
        "this token was issued through another node ({0}): sign in on this node's site \
         (/auth/login)"
    )]
    OtherNode(String),
    #[error("token is not meant for this node (audience)")]
    Audience,
    #[error("token is from another issuer")]
    Issuer,
    #[error("token is invalid: {0}")]
    Invalid(String),
}

/// Why the JWKS could not be fetched (logged; verification goes on with cached keys).
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot reach the tracker: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the tracker answered {0}")]
    Status(u16),
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the JWKS is malformed: {0}")]
    Malformed(String),
}

/// The tracker's public keys as last fetched, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl KeySet {
    /// Parses a JWKS document. Only Ed25519 OKP keys with a `kid` are kept; others are
    /// skipped (a tracker may one day publish more kinds).
    pub fn from_jwks(json: &[u8]) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<Jwk>,
        }
        #[derive(Deserialize)]
        struct Jwk {
            kty: String,
            #[serde(default)]
            crv: Option<String>,
            #[serde(default)]
            alg: Option<String>,
            #[serde(default)]
            kid: Option<String>,
            #[serde(default)]
            x: Option<String>,
        }
        let doc: Jwks =
            serde_json::from_slice(json).map_err(|e| JwksError::Malformed(e.to_string()))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut keys = HashMap::new();
        for jwk in doc.keys.into_iter().take(MAX_JWKS_KEYS) {
            let ed25519 = jwk.kty == "OKP"
                && jwk.crv.as_deref() == Some("Ed25519")
                && jwk.alg.as_deref().is_none_or(|a| a == "EdDSA");
            let (Some(kid), Some(x)) = (jwk.kid, jwk.x) else {
                continue;
            };
            if !ed25519 || kid.is_empty() || kid.len() > 128 {
                continue;
            }
            let Ok(raw) = b64.decode(x.as_bytes()) else {
                continue;
            };
            if raw.len() != 32 {
                continue;
            }
            keys.insert(kid, DecodingKey::from_ed_der(&raw));
        }
        Ok(Self { keys })
    }

    /// Whether a key with this `kid` is cached.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The cached `kid`s.
    pub fn kids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where the keys come from and how often they are refreshed.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The tracker replicas (the JWKS is fetched from the current one).
    pub trackers: crate::trackers::Trackers,
    /// The `iss` the tracker signs with (`tracker.issuer`).
    pub issuer: String,
    /// The only `aud` accepted: [`node_audience`] of this node's id.
    pub audience: String,
    /// Periodic refresh of the JWKS.
    pub refresh_every: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    pub min_refetch: Duration,
    /// Timeout of one JWKS fetch.
    pub fetch_timeout: Duration,
}

impl VerifierConfig {
    /// For node `node_id` (it accepts [`node_audience`]`(node_id)` only). Defaults:
    /// refresh every 5 minutes, refetch on unknown kid at most every 10 s.
    pub fn new(tracker_url: &str, issuer: &str, node_id: &str) -> Self {
        Self::with_trackers(
            crate::trackers::Trackers::single(tracker_url),
            issuer,
            node_id,
        )
    }

    /// Like [`Self::new`], with the node's tracker replicas.
    pub fn with_trackers(trackers: crate::trackers::Trackers, issuer: &str, node_id: &str) -> Self {
        Self {
            trackers,
            issuer: issuer.to_owned(),
            audience: node_audience(node_id),
            refresh_every: Duration::from_secs(300),
            min_refetch: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// A request to the key fetcher: "this kid is unknown, refetch if you may"; answered when
/// the cache is as fresh as it is going to get.
struct Miss {
    kid: String,
    done: oneshot::Sender<()>,
}

/// Verifies access tokens; cheap to share behind an `Arc`.
pub struct JwtVerifier {
    keys: watch::Receiver<Arc<KeySet>>,
    misses: mpsc::Sender<Miss>,
    issuer: String,
    audience: String,
    wait: Duration,
}

impl JwtVerifier {
    /// Starts the key fetcher (which loads the keys at once, in the background) and returns
    /// the verifier and the fetcher's task, which stops on `cancel`.
    pub fn start(config: VerifierConfig, cancel: CancellationToken) -> (Self, JoinHandle<()>) {
        let (tx, rx) = watch::channel(Arc::new(KeySet::default()));
        let (miss_tx, miss_rx) = mpsc::channel(256);
        let verifier = Self {
            keys: rx,
            misses: miss_tx,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            wait: config.fetch_timeout + Duration::from_secs(1),
        };
        let fetcher = Fetcher::new(config, tx);
        let task = reelnet_runtime::shutdown::spawn("jwks", fetcher.run(miss_rx, cancel));
        (verifier, task)
    }

    /// The keys cached now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.borrow().clone()
    }

    /// Waits until at least one key is cached (or `timeout` passes); true if there is one.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut rx = self.keys.clone();
        tokio::time::timeout(timeout, rx.wait_for(|k| !k.is_empty()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Verifies a bearer token (the part after `Bearer `) and returns its claims.
    pub async fn verify(&self, bearer: &str) -> Result<Claims, AuthError> {
        let token = bearer.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        if kid.is_empty() || kid.len() > 128 {
            return Err(AuthError::UnknownKey);
        }
        let mut keys = self.keys();
        if !keys.contains(&kid) {
            self.refetch(&kid).await;
            keys = self.keys();
        }
        let key = keys.keys.get(&kid).ok_or(AuthError::UnknownKey)?;
        self.check(token, key)
    }

    fn check(&self, token: &str, key: &DecodingKey) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[self.issuer.as_str()]);
        // The audience is checked below, after the signature, to say why it is wrong.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        // Stated, not left to the library's default: a node behind the tracker's clock
        // must accept a token issued "in its future".
        validation.validate_nbf = false;
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidIssuer => AuthError::Issuer,
                ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                    AuthError::Malformed
                }
                other => AuthError::Invalid(format!("{other:?}")),
            })?;
        check_audience(&claims.aud, &self.audience)?;
        Ok(claims)
    }

    /// Asks the fetcher to refetch for an unknown kid and waits (bounded) for its answer.
    async fn refetch(&self, kid: &str) {
        let (done, wait) = oneshot::channel();
        let miss = Miss {
            kid: kid.to_owned(),
            done,
        };
        // A full queue means many misses are already waiting for the same fetch.
        if self.misses.try_send(miss).is_ok() {
            let _ = tokio::time::timeout(self.wait, wait).await;
        }
    }
}

/// Whether `aud` is `wanted` (this node's audience); if not, why.
pub fn check_audience(aud: &str, wanted: &str) -> Result<(), AuthError> {
    if aud == wanted {
        return Ok(());
    }
    if aud == ACCESS_TOKEN_AUDIENCE {
        return Err(AuthError::NetworkToken);
    }
    match audience_node(aud) {
        Some(node) => Err(AuthError::OtherNode(node.to_owned())),
        None => Err(AuthError::Audience),
    }
}

/// Pulls the token out of an `Authorization: Bearer <token>` header value.
pub fn bearer(value: Option<&str>) -> Result<&str, AuthError> {
    let value = value.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

/// Pulls the bearer token out of request headers.
pub fn bearer_from_headers(headers: &warp::http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(warp::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| AuthError::Malformed))
        .transpose()?;
    bearer(value)
}

/// The one owner of the key cache.
struct Fetcher {
    config: VerifierConfig,
    http: reqwest::Client,
    tx: watch::Sender<Arc<KeySet>>,
    last_fetch: Option<Instant>,
}

impl Fetcher {
    fn new(config: VerifierConfig, tx: watch::Sender<Arc<KeySet>>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            tx,
            last_fetch: None,
        }
    }

    async fn run(
        mut self,
        mut misses: mpsc::Receiver<Miss>,
        cancel: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let retry = self.config.min_refetch;
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(next) => {
                    let ok = self.fetch().await;
                    next = tokio::time::Instant::now()
                        + if ok { self.config.refresh_every } else { retry };
                }
                Some(miss) = misses.recv() => {
                    self.on_miss(miss, &cancel).await;
                    // Everyone who queued meanwhile sees the fresh set (or is rate-limited).
                    while let Ok(miss) = misses.try_recv() {
                        self.on_miss(miss, &cancel).await;
                    }
                }
            }
        }
    }

    async fn on_miss(&mut self, miss: Miss, cancel: &CancellationToken) {
        let known = self.tx.borrow().contains(&miss.kid);
        let allowed = self
            .last_fetch
            .is_none_or(|at| at.elapsed() >= self.config.min_refetch);
        if !known && allowed {
            tracing::debug!(kid = %miss.kid, "unknown key id; refetching the JWKS");
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = self.fetch() => {}
            }
        }
        let _ = miss.done.send(());
    }

    /// Fetches the JWKS; replaces the cache on success, keeps it on failure.
    async fn fetch(&mut self) -> bool {
        self.last_fetch = Some(Instant::now());
        match self.get().await {
            Ok(set) => {
                let before = self.tx.borrow().kids();
                let mut after = set.kids();
                after.sort();
                tracing::debug!(keys = ?after, "JWKS fetched");
                if before.len() != after.len() || before.iter().any(|k| !set.contains(k)) {
                    tracing::info!(keys = ?after, "tracker signing keys updated");
                }
                self.tx.send_replace(Arc::new(set));
                true
            }
            Err(err) => {
                tracing::warn!(%err, cached = self.tx.borrow().len(), "cannot fetch the tracker's JWKS; keeping cached keys");
                false
            }
        }
    }

    async fn get(&self) -> Result<KeySet, JwksError> {
        let mut res = self
            .config
            .trackers
            .send(crate::trackers::Retry::Idempotent, |base| {
                self.http.get(format!("{base}/.well-known/jwks.json"))
            })
            .await?;
        if !res.status().is_success() {
            return Err(JwksError::Status(res.status().as_u16()));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks(&body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Bearer")), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Missing));
        assert_eq!(bearer(None), Err(AuthError::Missing));
    }

    #[test]
    fn jwks_parsing_keeps_only_ed25519_keys() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let x = b64.encode([7u8; 32]);
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "good", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "noalg", "x": x},
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "alg": "HS256", "kid": "hs", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": b64.encode([1u8; 31])},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        let mut kids = set.kids();
        kids.sort();
        assert_eq!(kids, vec!["good".to_owned(), "noalg".to_owned()]);
        assert!(KeySet::from_jwks(b"{").is_err());
        assert!(KeySet::from_jwks(b"{\"keys\": 5}").is_err());
    }

    #[test]
    fn only_this_nodes_audience_passes() {
        let own = node_audience("node-a");
        assert_eq!(check_audience("reelnet-node:node-a", &own), Ok(()));
        assert_eq!(
            check_audience(ACCESS_TOKEN_AUDIENCE, &own),
            Err(AuthError::NetworkToken)
        );
        assert_eq!(
            check_audience("reelnet-node:node-b", &own),
            Err(AuthError::OtherNode("node-b".to_owned()))
        );
        assert_eq!(
            check_audience("reelnet-node:", &own),
            Err(AuthError::Audience)
        );
        assert_eq!(check_audience("", &own), Err(AuthError::Audience));
        assert_eq!(
            check_audience("reelnet-node:node-a ", &own),
            Err(AuthError::OtherNode("node-a ".to_owned()))
        );
    }

    /// Signs `claims` with a fresh Ed25519 key whose JWKS is `kid`; checks the whole path
    /// (signature, issuer, audience) through [`JwtVerifier::check`].
    #[tokio::test]
    async fn signed_tokens_are_judged_by_audience() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let der = sk.to_pkcs8_der().unwrap();
        let enc = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        let dec = DecodingKey::from_ed_der(sk.verifying_key().as_bytes());
        let cancel = CancellationToken::new();
        let (v, task) = JwtVerifier::start(
            VerifierConfig::new("http://127.0.0.1:9", "iss", "node-a"),
            cancel.clone(),
        );
        let now = reelnet_runtime::clock::unix_secs();
        let token = |aud: &str, iss: &str| {
            let claims = Claims {
                sub: "u1".into(),
                email: "a@example.org".into(),
                tier: Default::default(),
                tier_until: None,
                email_verified: true,
                role: Default::default(),
                exp: now + 600,
                iat: now,
                iss: iss.into(),
                aud: aud.into(),
                jti: "j".into(),
                sid: None,
                scope: None,
            };
            let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
            header.kid = Some("k".into());
            jsonwebtoken::encode(&header, &claims, &enc).unwrap()
        };
        assert_eq!(
            v.check(&token("reelnet-node:node-a", "iss"), &dec)
                .unwrap()
                .sub,
            "u1"
        );
        assert_eq!(
            v.check(&token("reelnet", "iss"), &dec),
            Err(AuthError::NetworkToken)
        );
        assert_eq!(
            v.check(&token("reelnet-node:node-b", "iss"), &dec),
            Err(AuthError::OtherNode("node-b".into()))
        );
        assert_eq!(
            v.check(&token("reelnet-node:node-a", "other"), &dec),
            Err(AuthError::Issuer)
        );
        cancel.cancel();
        task.await.unwrap();
    }

    /// Clock skew, by shifting the tracker's stamps against this node's clock: a token
    /// issued by a tracker 300 s ahead (iat in this node's future) passes; one whose `exp`
    /// passed 300 s ago by this clock (this node 300 s ahead of a tracker that just issued
    /// a token about to expire) passes; one that expired beyond the tolerance fails.
    #[tokio::test]
    async fn tokens_pass_at_five_minutes_of_skew_either_way_and_fail_beyond() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let der = sk.to_pkcs8_der().unwrap();
        let enc = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        let dec = DecodingKey::from_ed_der(sk.verifying_key().as_bytes());
        let cancel = CancellationToken::new();
        let (v, task) = JwtVerifier::start(
            VerifierConfig::new("http://127.0.0.1:9", "iss", "node-a"),
            cancel.clone(),
        );
        let now = reelnet_runtime::clock::unix_secs();
        let token = |iat: u64, exp: u64| {
            let claims = Claims {
                sub: "u1".into(),
                email: "a@example.org".into(),
                tier: Default::default(),
                tier_until: None,
                email_verified: true,
                role: Default::default(),
                exp,
                iat,
                iss: "iss".into(),
                aud: "reelnet-node:node-a".into(),
                jti: "j".into(),
                sid: None,
                scope: None,
            };
            let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
            header.kid = Some("k".into());
            jsonwebtoken::encode(&header, &claims, &enc).unwrap()
        };
        let skew = reelnet_proto::membership::MAX_CLOCK_SKEW_SECS;
        assert_eq!(LEEWAY_SECS, reelnet_proto::membership::SKEW_TOLERANCE_SECS);
        // This node 300 s behind the tracker: the token is issued in its future.
        assert!(v.check(&token(now + skew, now + skew + 900), &dec).is_ok());
        // This node 300 s ahead: a fresh token's exp is already (nearly) 300 s past here.
        // (A few seconds of margin: the library reads the clock again.)
        assert!(v.check(&token(now - 900, now - skew + 5), &dec).is_ok());
        // Beyond the tolerance: expired.
        assert_eq!(
            v.check(&token(now - 900, now - LEEWAY_SECS - 5), &dec),
            Err(AuthError::Expired)
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn garbage_is_refused_before_any_key_lookup() {
        let cancel = CancellationToken::new();
        // Port 9 on loopback: nothing listens, every fetch fails fast.
        let (v, task) = JwtVerifier::start(
            VerifierConfig::new("http://127.0.0.1:9", "iss", "node-a"),
            cancel.clone(),
        );
        assert_eq!(v.verify("").await, Err(AuthError::Missing));
        assert_eq!(v.verify("a.b").await, Err(AuthError::Malformed));
        assert_eq!(v.verify("x.y.z").await, Err(AuthError::Malformed));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(v.verify(&long).await, Err(AuthError::TooLong));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let hs = format!(
            "{}.{}.sig",
            b64.encode(br#"{"alg":"HS256","typ":"JWT","kid":"k"}"#),
            b64.encode(b"{}")
        );
        assert_eq!(v.verify(&hs).await, Err(AuthError::Algorithm));
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(b"{}")
        );
        assert!(v.verify(&none).await.is_err());
        let nokid = format!(
            "{}.{}.sig",
            b64.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#),
            b64.encode(b"{}")
        );
        assert_eq!(v.verify(&nokid).await, Err(AuthError::UnknownKey));
        cancel.cancel();
        task.await.unwrap();
    }
}
