//! Corruption reports on the server side: which reports make the store re-hash a segment.
//!
//! A receiver whose check fails sends a [`CorruptReport`](reelnet_proto::CorruptReport); the
//! server answers it by re-reading its copy with the hash check. Re-hashing costs a full read
//! of the segment, so a peer must not be able to make the server do it without bound by
//! sending reports (about good copies, or the same copy again and again). [`ReportGate`]
//! decides, per report:
//! - a segment already queued for a re-check, or re-checked and found good within
//!   [`RECENT_GOOD`], is not re-checked again (its bytes just passed; a flipped bit since
//!   is the scrub's business);
//! - each peer has a token bucket: [`BURST`] re-checks at once, then one per
//!   [`REFILL_EVERY`]; beyond it reports are counted and dropped;
//! - the re-checks themselves run one at a time on one worker (the server's
//!   `recheck_worker`), behind a bounded queue, so all peers together cost at most one
//!   blocking thread hashing.
//!
//! The gate is pure bookkeeping with the time passed in, so it is tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use reelnet_proto::{NodeId, SegmentHash};

/// Re-checks one peer may trigger at once.
pub const BURST: u32 = 8;
/// One more re-check per peer after this long.
pub const REFILL_EVERY: Duration = Duration::from_secs(2);
/// A copy re-checked and found good is not re-checked again for this long.
pub const RECENT_GOOD: Duration = Duration::from_secs(60);
/// Good copies remembered at most (oldest forgotten first).
const RECENT_CAP: usize = 4096;
/// Peers whose buckets are remembered at most (full buckets are forgotten first).
const PEERS_CAP: usize = 4096;

/// What the gate says about one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Re-check the copy.
    Recheck,
    /// The copy was found good a moment ago, or its re-check is already queued: nothing
    /// more to do.
    Duplicate,
    /// The peer has used its re-checks: dropped.
    RateLimited,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When the bucket last gained a token (or was created).
    at: Instant,
}

/// Per-peer buckets and the recently-good copies. See the module docs.
#[derive(Debug, Default)]
pub struct ReportGate {
    peers: HashMap<NodeId, Bucket>,
    /// Re-checks queued and not yet done (bounded by the queue's capacity).
    pending: std::collections::HashSet<SegmentHash>,
    good: HashMap<SegmentHash, Instant>,
    good_order: VecDeque<(SegmentHash, Instant)>,
}

impl ReportGate {
    /// Decides what a report from `peer` about `hash` costs, at `now`.
    /// A [`Verdict::Recheck`] marks the copy pending until [`done`](Self::done) (or
    /// [`not_queued`](Self::not_queued)).
    pub fn admit(&mut self, peer: NodeId, hash: SegmentHash, now: Instant) -> Verdict {
        if self.pending.contains(&hash)
            || self
                .good
                .get(&hash)
                .is_some_and(|at| now.saturating_duration_since(*at) < RECENT_GOOD)
        {
            return Verdict::Duplicate;
        }
        if self.peers.len() >= PEERS_CAP && !self.peers.contains_key(&peer) {
            self.peers.retain(|_, b| refill(*b, now).tokens < BURST);
        }
        let bucket = self.peers.entry(peer).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        *bucket = refill(*bucket, now);
        if bucket.tokens == 0 {
            return Verdict::RateLimited;
        }
        bucket.tokens -= 1;
        self.pending.insert(hash);
        Verdict::Recheck
    }

    /// An admitted re-check could not be queued after all.
    pub fn not_queued(&mut self, hash: &SegmentHash) {
        self.pending.remove(hash);
    }

    /// The re-check of `hash` is done at `now`; `good`: the copy checked out.
    pub fn done(&mut self, hash: SegmentHash, good: bool, now: Instant) {
        self.pending.remove(&hash);
        if good {
            self.checked_good(hash, now);
        }
    }

    /// Records that `hash` was re-checked at `now` and found good.
    fn checked_good(&mut self, hash: SegmentHash, now: Instant) {
        self.good.insert(hash, now);
        self.good_order.push_back((hash, now));
        while self.good_order.len() > RECENT_CAP
            || self
                .good_order
                .front()
                .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= RECENT_GOOD)
        {
            let Some((old, at)) = self.good_order.pop_front() else {
                break;
            };
            // Only if not refreshed since.
            if self.good.get(&old) == Some(&at) {
                self.good.remove(&old);
            }
        }
    }
}

fn refill(b: Bucket, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(b.at);
    let gained = (elapsed.as_millis() / REFILL_EVERY.as_millis()).min(u128::from(BURST)) as u32;
    if gained == 0 {
        return b;
    }
    let tokens = (b.tokens + gained).min(BURST);
    let at = if tokens == BURST {
        now
    } else {
        b.at + REFILL_EVERY * gained
    };
    Bucket { tokens, at }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn peer(n: u8) -> NodeId {
        let key = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
        NodeId::from_verifying_key(&key.verifying_key())
    }

    fn hash(n: u32) -> SegmentHash {
        SegmentHash::of(&n.to_le_bytes())
    }

    #[test]
    fn a_peer_gets_a_burst_then_one_recheck_per_refill() {
        let mut gate = ReportGate::default();
        let t0 = Instant::now();
        for i in 0..BURST {
            assert_eq!(gate.admit(peer(1), hash(i), t0), Verdict::Recheck);
            gate.done(hash(i), false, t0);
        }
        assert_eq!(gate.admit(peer(1), hash(100), t0), Verdict::RateLimited);
        // Another peer has its own bucket.
        assert_eq!(gate.admit(peer(2), hash(100), t0), Verdict::Recheck);
        // A flood over a minute costs at most BURST + 60 s / REFILL_EVERY re-checks.
        let mut rechecks = 0;
        for i in 0..6000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            if gate.admit(peer(1), hash(1000 + i), now) == Verdict::Recheck {
                rechecks += 1;
                gate.done(hash(1000 + i), false, now);
            }
        }
        assert_eq!(rechecks, 60 / REFILL_EVERY.as_secs() as u32 - 1);
        // After a long quiet spell the bucket is full again, not more.
        let later = t0 + Duration::from_secs(3600);
        for i in 0..BURST {
            assert_eq!(gate.admit(peer(1), hash(9000 + i), later), Verdict::Recheck);
        }
        assert_eq!(gate.admit(peer(1), hash(9999), later), Verdict::RateLimited);
    }

    #[test]
    fn a_copy_found_good_is_not_rechecked_again_for_a_while() {
        let mut gate = ReportGate::default();
        let t0 = Instant::now();
        assert_eq!(gate.admit(peer(1), hash(1), t0), Verdict::Recheck);
        // Queued: the same copy again costs nothing.
        assert_eq!(gate.admit(peer(2), hash(1), t0), Verdict::Duplicate);
        gate.done(hash(1), true, t0);
        for n in 0..100u8 {
            assert_eq!(gate.admit(peer(n), hash(1), t0), Verdict::Duplicate);
        }
        let later = t0 + RECENT_GOOD;
        assert_eq!(gate.admit(peer(1), hash(1), later), Verdict::Recheck);
        // A copy found bad (dropped) may be reported again at once (a new copy later).
        gate.done(hash(1), false, later);
        assert_eq!(gate.admit(peer(1), hash(1), later), Verdict::Recheck);
    }

    #[test]
    fn the_good_list_is_bounded() {
        let mut gate = ReportGate::default();
        let t0 = Instant::now();
        for i in 0..(RECENT_CAP as u32 + 100) {
            gate.done(hash(i), true, t0);
        }
        assert!(gate.good.len() <= RECENT_CAP && gate.good_order.len() <= RECENT_CAP);
        // The oldest were forgotten, the newest remembered.
        assert_eq!(gate.admit(peer(1), hash(0), t0), Verdict::Recheck);
        assert_eq!(
            gate.admit(peer(1), hash(RECENT_CAP as u32 + 99), t0),
            Verdict::Duplicate
        );
    }
}
