//! Subscriptions: a user's tier (`free` or `premium` until a date), the signed billing
//! webhook that changes it, and the worker that sends the subscription emails.
//!
//! The tier lives on the [`User`] record (`tier`, `tier_until`); [`effective_tier`] reads
//! it against the clock, so a premium period ends on time without anyone writing anything
//! (tokens issued after that carry `free`, and access tokens of a premium period never
//! outlive it). The webhook has the shape of a real payment provider's: the provider signs
//! `timestamp + "." + raw body` with HMAC-SHA256 and a shared secret and sends
//! `Reelnet-Signature: t=<unix seconds>,v1=<hex>`; stale timestamps are refused (replay),
//! the MAC is compared in constant time, and each event id is applied once (recorded in
//! the `billing_events` tree in the same transaction as the tier change).

use std::path::Path;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use reelnet_proto::{Claims, Tier};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sled::transaction::{ConflictableTransactionError, Transactional};
use tokio_util::sync::CancellationToken;

use crate::api::{effective_tier, now_secs, Api};
use crate::error::ApiError;
use crate::mail::Email;
use crate::store::{codec, StoreError, SubNotice, User, UserId};

/// The header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "reelnet-signature";

/// What premium unlocks (shown by `GET me/subscription` and the web app).
pub const PREMIUM_FEATURES: &[&str] = &["top_renditions", "host_watch_parties", "more_requests"];

/// Why the webhook secret could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("billing webhook secret {path}: {source}")]
pub struct SecretError {
    pub path: String,
    pub source: std::io::Error,
}

/// The webhook secret: `billing.webhook_secret` when set, else the one kept in
/// `<data_dir>/billing_webhook_secret` (made on first start, mode 0600).
pub fn webhook_secret(configured: &str, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("billing_webhook_secret");
    let err = |source| SecretError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    reelnet_runtime::fs::write_private(&path, secret.as_bytes()).map_err(err)?;
    tracing::info!(path = %path.display(), "generated the billing webhook secret");
    Ok(secret.into_bytes())
}

/// The signature header value for `body` at `timestamp` (what a provider sends).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut m = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return Vec::new(),
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn bad_signature(message: &str) -> ApiError {
    ApiError::bad_request("bad_signature", message)
}

/// Checks a `Reelnet-Signature` header against the raw body (constant-time compare of
/// every `v1=` given, timestamp within `tolerance` of `now`).
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: u64,
    tolerance: u64,
) -> Result<(), ApiError> {
    let header = header.ok_or_else(|| bad_signature("missing Reelnet-Signature header"))?;
    let mut timestamp = None;
    let mut macs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<u64>().ok(),
            Some(("v1", v)) => macs.push(hex::decode(v).unwrap_or_default()),
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| bad_signature("signature header has no valid t=timestamp"))?;
    if macs.is_empty() {
        return Err(bad_signature("signature header has no v1= signature"));
    }
    if now.abs_diff(timestamp) > tolerance {
        return Err(ApiError::bad_request(
            "stale_signature",
            format!("signature timestamp is more than {tolerance} s away from now (replay?)"),
        ));
    }
    for candidate in &macs {
        let mut m = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| ApiError::internal("bad HMAC key"))?;
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        if m.verify_slice(candidate).is_ok() {
            return Ok(());
        }
    }
    Err(bad_signature("signature does not match"))
}

/// A billing event as the provider sends it.
#[derive(Debug, Deserialize)]
pub struct WebhookEvent {
    /// Unique per event; a repeated id is acknowledged and not applied again.
    pub id: String,
    /// `subscription.activated`, `subscription.renewed`, `subscription.canceled`; others
    /// are acknowledged and ignored.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: WebhookData,
}

#[derive(Debug, Deserialize)]
pub struct WebhookData {
    pub email: String,
    #[serde(default)]
    pub tier: Option<Tier>,
    /// End of the paid period, unix seconds (none: no end).
    #[serde(default)]
    pub until: Option<u64>,
}

/// What the webhook answers.
#[derive(Debug, Serialize)]
pub struct WebhookResult {
    /// `applied`, `duplicate` or `ignored`.
    pub status: &'static str,
    pub event_id: String,
}

/// `GET me/subscription`
#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    /// The tier in effect now.
    pub tier: Tier,
    /// When the premium period ends (unix seconds); null for no end or when free.
    pub until: Option<u64>,
    /// `active` (premium now), `expired` (premium that ended) or `none`.
    pub status: &'static str,
    /// What premium unlocks.
    pub premium_features: Vec<&'static str>,
    /// Movie requests allowed in 30 days at the current tier, and used.
    pub request_quota: u32,
    pub requests_used: u32,
}

enum Change {
    Set(Tier, Option<u64>),
    Ignore,
}

fn tx_abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

impl Api {
    /// `GET me/subscription`
    pub fn subscription(&self, claims: &Claims) -> Result<SubscriptionView, ApiError> {
        let user = self.user(claims)?;
        let now = now_secs();
        let tier = effective_tier(&user, now);
        let status = match (user.tier, tier) {
            (_, Tier::Premium) => "active",
            (Tier::Premium, Tier::Free) => "expired",
            _ => "none",
        };
        Ok(SubscriptionView {
            tier,
            until: if user.tier == Tier::Premium {
                user.tier_until
            } else {
                None
            },
            status,
            premium_features: PREMIUM_FEATURES.to_vec(),
            request_quota: self.request_quota(tier),
            requests_used: self.requests_used(&user.id)?,
        })
    }

    /// `POST billing/webhook`: verifies the signature over the raw body, then applies the
    /// event once.
    pub async fn billing_webhook(
        &self,
        signature: Option<&str>,
        body: Bytes,
    ) -> Result<WebhookResult, ApiError> {
        verify(
            &self.inner.webhook_secret,
            signature,
            &body,
            now_secs(),
            self.config().billing.tolerance_secs,
        )?;
        let event: WebhookEvent = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("event: {e}")))?;
        if event.id.is_empty() || event.id.len() > 200 {
            return Err(ApiError::bad_request(
                "invalid_event",
                "event id must have 1 to 200 characters",
            ));
        }
        let change = match event.kind.as_str() {
            "subscription.activated" | "subscription.renewed" | "subscription.updated" => {
                let tier = event.data.tier.unwrap_or(Tier::Premium);
                if let (Tier::Premium, Some(until)) = (tier, event.data.until) {
                    if until <= now_secs() {
                        return Err(ApiError::bad_request(
                            "invalid_event",
                            "`until` is in the past",
                        ));
                    }
                }
                Change::Set(tier, event.data.until.filter(|_| tier == Tier::Premium))
            }
            "subscription.canceled" | "subscription.expired" => Change::Set(Tier::Free, None),
            _ => Change::Ignore,
        };
        let email = crate::accounts::normalize_email(&event.data.email)?;
        let Some(uid) = self
            .store()
            .trees()
            .emails
            .get(email.as_bytes())
            .map_err(StoreError::from)?
        else {
            // Not recorded: the provider retries, and a retry after sign-up applies.
            return Err(ApiError::new(
                warp::http::StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_account",
                "no account with this email",
            ));
        };
        let event_id = event.id.clone();
        let now = now_secs();
        let outcome = self
            .store()
            .write(move |t| {
                (&t.billing_events, &t.users)
                    .transaction(|(events, users)| {
                        if events.get(event_id.as_bytes())?.is_some() {
                            return Ok(None);
                        }
                        events.insert(event_id.as_bytes(), &now.to_be_bytes())?;
                        let Change::Set(tier, until) = change else {
                            return Ok(Some(None));
                        };
                        let Some(raw) = users.get(&uid)? else {
                            return Ok(Some(None));
                        };
                        let mut user: User = codec::decode(&raw).or_else(tx_abort)?;
                        let before = effective_tier(&user, now);
                        user.tier = tier;
                        user.tier_until = until;
                        users.insert(&uid, codec::encode(&user).or_else(tx_abort)?)?;
                        Ok(Some(Some((before, user))))
                    })
                    .map_err(StoreError::from)
            })
            .await?;
        let status = match outcome {
            None => "duplicate",
            Some(None) => "ignored",
            Some(Some((before, user))) => {
                tracing::info!(user = %user.id, tier = ?user.tier, until = ?user.tier_until, event = %event.id, "tier changed by billing");
                if user.tier == Tier::Premium {
                    self.send_started(&user).await?;
                } else if before == Tier::Premium {
                    self.send_expired(&user, "Your reelnet premium subscription was canceled")
                        .await?;
                }
                "applied"
            }
        };
        Ok(WebhookResult {
            status,
            event_id: event.id,
        })
    }

    fn until_text(until: Option<u64>) -> String {
        match until {
            Some(u) => format!("until {} (UTC)", format_date(u)),
            None => "with no end date".to_owned(),
        }
    }

    /// Sends the "started" email and records it for this period.
    async fn send_started(&self, user: &User) -> Result<(), ApiError> {
        self.inner
            .mailer
            .send(Email {
                to: user.email.clone(),
                subject: "Your reelnet premium subscription has started".to_owned(),
                body: format!(
                    "Hello {},\r\n\r\nYour premium subscription is active {}.\r\nPremium unlocks the best picture quality, hosting watch parties and {} movie requests a month.\r\n\r\n{}/account\r\n",
                    user.display_name,
                    Self::until_text(user.tier_until),
                    self.config().requests.premium_per_month,
                    self.config().web_url.trim_end_matches('/'),
                ),
            })
            .await;
        let notice = SubNotice {
            until: user.tier_until,
            started: true,
            ..SubNotice::default()
        };
        self.put_notice(user.id, notice).await
    }

    async fn send_expired(&self, user: &User, subject: &str) -> Result<(), ApiError> {
        self.inner
            .mailer
            .send(Email {
                to: user.email.clone(),
                subject: subject.to_owned(),
                body: format!(
                    "Hello {},\r\n\r\nYour reelnet account is on the free tier now. Renew any time to get premium back:\r\n\r\n{}/account\r\n",
                    user.display_name,
                    self.config().web_url.trim_end_matches('/'),
                ),
            })
            .await;
        let notice = SubNotice {
            until: user.tier_until,
            started: true,
            warned: true,
            expired: true,
        };
        self.put_notice(user.id, notice).await
    }

    async fn put_notice(&self, user: UserId, notice: SubNotice) -> Result<(), ApiError> {
        let bytes = codec::encode(&notice)?;
        self.store()
            .write(move |t| {
                t.sub_notices.insert(user.0, bytes)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// One pass of the subscription worker: "started" for periods set without an email
    /// (the admin command), "about to expire" within `expiry_warning_secs` of the end, and
    /// "expired" after it. Each goes out once per period.
    pub async fn subscription_notices(&self) -> Result<(), ApiError> {
        let now = now_secs();
        let warn = self.config().billing.expiry_warning_secs;
        let users: Vec<User> = self
            .store()
            .trees()
            .users
            .iter()
            .values()
            .filter_map(|v| v.ok().and_then(|v| codec::decode(&v).ok()))
            .collect();
        for user in users {
            if user.tier != Tier::Premium {
                continue;
            }
            let stored: Option<SubNotice> = self
                .store()
                .trees()
                .sub_notices
                .get(user.id.0)
                .map_err(StoreError::from)?
                .and_then(|v| codec::decode(&v).ok());
            let mut notice = match stored {
                Some(n) if n.until == user.tier_until => n,
                _ => SubNotice {
                    until: user.tier_until,
                    ..SubNotice::default()
                },
            };
            let before = notice.clone();
            let live = user.tier_until.is_none_or(|u| u > now);
            if !notice.started && live {
                self.send_started(&user).await?;
                notice.started = true;
            }
            if let Some(until) = user.tier_until {
                if !notice.warned && until > now && until - now <= warn {
                    self.inner
                        .mailer
                        .send(Email {
                            to: user.email.clone(),
                            subject: "Your reelnet premium subscription is about to expire"
                                .to_owned(),
                            body: format!(
                                "Hello {},\r\n\r\nYour premium subscription ends on {} (UTC). Renew to keep the best picture quality, watch parties and more requests:\r\n\r\n{}/account\r\n",
                                user.display_name,
                                format_date(until),
                                self.config().web_url.trim_end_matches('/'),
                            ),
                        })
                        .await;
                    notice.warned = true;
                }
                if !notice.expired && until <= now {
                    self.send_expired(&user, "Your reelnet premium subscription has expired")
                        .await?;
                    // send_expired recorded the whole period as done.
                    continue;
                }
            }
            if notice != before {
                self.put_notice(user.id, notice).await?;
            }
        }
        Ok(())
    }
}

/// Runs [`Api::subscription_notices`] every `billing.check_interval_secs` until shutdown.
pub async fn run_worker(api: Api, cancel: CancellationToken) -> Result<(), ApiError> {
    let every = std::time::Duration::from_secs(api.config().billing.check_interval_secs);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        if let Err(err) = api.subscription_notices().await {
            tracing::warn!(%err, "subscription worker pass failed");
        }
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD HH:MM` of unix seconds (UTC).
pub fn format_date(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Parses `YYYY-MM-DD` (end of that day, UTC), `YYYY-MM-DDTHH:MM:SSZ`, or unix seconds.
pub fn parse_date(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let secs_of_day = match time {
        None => 86399,
        Some(t) => {
            let mut p = t.split(':');
            let h: u64 = p.next()?.parse().ok()?;
            let mi: u64 = p.next()?.parse().ok()?;
            let se: u64 = p.next().map_or(Some(0), |v| v.parse().ok())?;
            if h > 23 || mi > 59 || se > 60 {
                return None;
            }
            h * 3600 + mi * 60 + se
        }
    };
    u64::try_from(days).ok().map(|d| d * 86400 + secs_of_day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(b"s3cret", 1000, body);
        verify(b"s3cret", Some(&header), body, 1100, 300).unwrap();
        assert_eq!(
            verify(b"other", Some(&header), body, 1100, 300)
                .unwrap_err()
                .code,
            "bad_signature"
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), b"{}", 1100, 300)
                .unwrap_err()
                .code,
            "bad_signature"
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), body, 1400, 300)
                .unwrap_err()
                .code,
            "stale_signature"
        );
        assert!(verify(b"s3cret", None, body, 1000, 300).is_err());
        assert!(verify(b"s3cret", Some("t=1000"), body, 1000, 300).is_err());
        assert!(verify(b"s3cret", Some("v1=00"), body, 1000, 300).is_err());
        // A second, matching signature (key rotation at the provider) is accepted.
        let two = format!("{header},v1=abcd");
        verify(b"s3cret", Some(&two), body, 1000, 300).unwrap();
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(86399));
        assert_eq!(parse_date("2030-02-28T12:00:00Z"), Some(1_898_510_400));
        assert_eq!(parse_date("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_date("2030-02-30"), None);
        assert_eq!(parse_date("2030-13-01"), None);
        assert_eq!(parse_date("soon"), None);
        assert_eq!(format_date(1_898_510_400), "2030-02-28 12:00");
    }
}
