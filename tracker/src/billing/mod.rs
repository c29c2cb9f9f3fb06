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

use bytes::Bytes;
use reelnet_proto::{Claims, Tier};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

mod dates;

pub use crate::billing_signature::{sign, verify, webhook_secret, SecretError, SIGNATURE_HEADER};
pub use dates::{format_date, parse_date};

use crate::api::Api;
use crate::clock::now_secs;
use crate::error::ApiError;
use crate::mail::Email;
use crate::policy::{effective_tier, normalize_email};
use crate::store::{BillingApplied, SubNotice, User, UserId};

/// What premium unlocks (shown by `GET me/subscription` and the web app).
pub const PREMIUM_FEATURES: &[&str] = &["top_renditions", "host_watch_parties", "more_requests"];

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
        let email = normalize_email(&event.data.email)?;
        let Some(uid) = self.store().user_id_by_email(&email)? else {
            // Not recorded: the provider retries, and a retry after sign-up applies.
            return Err(ApiError::new(
                warp::http::StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_account",
                "no account with this email",
            ));
        };
        let now = now_secs();
        let change = match change {
            Change::Set(tier, until) => Some((tier, until)),
            Change::Ignore => None,
        };
        let outcome = self
            .store()
            .apply_billing_event(event.id.clone(), uid, change, now)
            .await?;
        let status = match outcome {
            BillingApplied::Duplicate => "duplicate",
            BillingApplied::Ignored => "ignored",
            BillingApplied::Changed {
                before,
                after: user,
            } => {
                let before = effective_tier(&before, now);
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
            });
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
            });
        let notice = SubNotice {
            until: user.tier_until,
            started: true,
            warned: true,
            expired: true,
        };
        self.put_notice(user.id, notice).await
    }

    async fn put_notice(&self, user: UserId, notice: SubNotice) -> Result<(), ApiError> {
        self.store().put_sub_notice(user, notice).await?;
        Ok(())
    }

    /// One pass of the subscription worker: "started" for periods set without an email
    /// (the admin command), "about to expire" within `expiry_warning_secs` of the end, and
    /// "expired" after it. Each goes out once per period.
    pub async fn subscription_notices(&self) -> Result<(), ApiError> {
        let now = now_secs();
        let warn = self.config().billing.expiry_warning_secs;
        let users: Vec<User> = self.store().all_users();
        for user in users {
            if user.tier != Tier::Premium {
                continue;
            }
            let stored: Option<SubNotice> = self.store().sub_notice(&user.id)?;
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
                        });
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
