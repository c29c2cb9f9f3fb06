//! Subscriptions in storage: applied billing event ids (webhook idempotency, in the same
//! transaction as the tier change) and which subscription emails went out.

use super::kv::Transactional;
use reelnet_proto::Tier;

use super::{codec, dec_tx, enc_tx, Store, StoreError, SubNotice, User, UserId};

/// What applying a billing event did.
#[derive(Debug, Clone)]
pub enum BillingApplied {
    /// The event id was applied before; nothing changed.
    Duplicate,
    /// Recorded, but it changes no account (no change asked, or the account is gone).
    Ignored,
    /// The account before and after the change.
    Changed { before: Box<User>, after: Box<User> },
}

impl Store {
    /// Records billing event `event_id` (at `now`) once and, with `change`, sets the tier
    /// and its end on account `uid` — in one transaction.
    pub async fn apply_billing_event(
        &self,
        event_id: String,
        uid: UserId,
        change: Option<(Tier, Option<u64>)>,
        now: u64,
    ) -> Result<BillingApplied, StoreError> {
        self.write(move |t| {
            (&t.billing_events, &t.users).transaction(|(events, users)| {
                if events.get(event_id.as_bytes())?.is_some() {
                    return Ok(BillingApplied::Duplicate);
                }
                events.insert(event_id.as_bytes(), now.to_be_bytes())?;
                let Some((tier, until)) = change else {
                    return Ok(BillingApplied::Ignored);
                };
                let Some(raw) = users.get(uid.0)? else {
                    return Ok(BillingApplied::Ignored);
                };
                let before: User = dec_tx(&raw)?;
                let mut after = before.clone();
                after.tier = tier;
                after.tier_until = until;
                users.insert(uid.0, enc_tx(&after)?)?;
                Ok(BillingApplied::Changed {
                    before: Box::new(before),
                    after: Box::new(after),
                })
            })
        })
        .await
    }

    /// Which subscription emails went out to `uid` (an unreadable record reads as none).
    pub fn sub_notice(&self, uid: &UserId) -> Result<Option<SubNotice>, StoreError> {
        Ok(self
            .trees
            .sub_notices
            .get(uid.0)?
            .and_then(|v| codec::decode(&v).ok()))
    }

    /// Records which subscription emails went out to `uid`.
    pub async fn put_sub_notice(&self, uid: UserId, notice: SubNotice) -> Result<(), StoreError> {
        let bytes = codec::encode(&notice)?;
        self.write(move |t| {
            t.sub_notices.insert(uid.0, bytes)?;
            Ok(())
        })
        .await
    }
}
