//! Catalog-sync budgets: how much sync one peer identity may take from this node, and give
//! to it, over time.
//!
//! Each [`PeerId`] has two token buckets of bytes and pages (requests): one for the pages
//! this node serves to the peer, one for the pages it takes from it. A bucket starts full
//! ([`SyncBudget::burst_bytes`], [`SyncBudget::burst_pages`]) and refills at a steady rate.
//! A page is asked for, or answered, only while its bucket has a page token and a positive
//! byte balance; its bytes are charged once the page exists (its size is not known before),
//! so the balance may go negative by one page, and the peer then waits for the refill to pay
//! that debt. Over any span `t`, one peer therefore gets or gives at most
//! `burst + rate * t` plus one page.
//!
//! The buckets live in the swarm task, keyed by peer identity, and survive disconnects: a
//! peer that reconnects does not start over. The map is bounded ([`SyncBudget::max_peers`]);
//! the least recently used peer is forgotten first (it comes back with full buckets, which
//! is what a peer silent that long would have earned anyway, unless the map is flooded; a
//! flood of identities is what membership is for: non-members are refused before any
//! budget).

use std::collections::{BTreeMap, HashMap};

use libp2p::PeerId;
use tokio::time::Instant;

/// The catalog-sync budget of every peer identity (config keys `p2p.sync_budget_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncBudget {
    /// Bytes a peer may take (or give) at once.
    pub burst_bytes: u64,
    /// Bytes per second the byte allowance refills.
    pub bytes_per_sec: u64,
    /// Pages (sync requests) a peer may take (or give) at once.
    pub burst_pages: u32,
    /// Pages per minute the page allowance refills.
    pub pages_per_min: u32,
    /// Peers whose budgets are remembered; beyond this, the least recently used is dropped.
    pub max_peers: usize,
}

impl Default for SyncBudget {
    /// 64 MiB and 64 pages at once, refilled at 1 MiB/s and one page a second: a full sync
    /// of a catalog of up to 64 MiB on every connection, and a peer that reconnects in a
    /// loop gets about 1 MiB/s, not a full catalog per reconnect.
    fn default() -> Self {
        Self {
            burst_bytes: 64 << 20,
            bytes_per_sec: 1 << 20,
            burst_pages: 64,
            pages_per_min: 60,
            max_peers: 4096,
        }
    }
}

/// One token bucket of bytes and pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    bytes: f64,
    pages: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(budget: &SyncBudget, now: Instant) -> Self {
        Self {
            bytes: budget.burst_bytes as f64,
            pages: f64::from(budget.burst_pages),
            at: now,
        }
    }

    fn refill(&mut self, budget: &SyncBudget, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.bytes =
            (self.bytes + secs * budget.bytes_per_sec as f64).min(budget.burst_bytes as f64);
        self.pages = (self.pages + secs * f64::from(budget.pages_per_min) / 60.0)
            .min(f64::from(budget.burst_pages));
    }

    /// Takes one page token if there is one and the byte balance is positive.
    pub fn take_page(&mut self, budget: &SyncBudget, now: Instant) -> bool {
        self.refill(budget, now);
        if self.pages >= 1.0 && self.bytes > 0.0 {
            self.pages -= 1.0;
            true
        } else {
            false
        }
    }

    /// Charges the bytes of a page (the balance may go negative: a debt the refill pays).
    pub fn charge_bytes(&mut self, budget: &SyncBudget, now: Instant, bytes: u64) {
        self.refill(budget, now);
        self.bytes -= bytes as f64;
    }
}

/// The two buckets of one peer.
#[derive(Debug, Clone)]
pub struct PeerBudget {
    /// Pages this node serves to the peer.
    pub serve: Bucket,
    /// Pages this node takes from the peer.
    pub take: Bucket,
}

/// The budgets of at most [`SyncBudget::max_peers`] peers, least recently used dropped.
#[derive(Debug)]
pub struct Budgets {
    budget: SyncBudget,
    peers: HashMap<PeerId, (u64, PeerBudget)>,
    /// Use stamp -> peer, oldest first.
    order: BTreeMap<u64, PeerId>,
    stamp: u64,
}

impl Budgets {
    pub fn new(budget: SyncBudget) -> Self {
        Self {
            budget,
            peers: HashMap::new(),
            order: BTreeMap::new(),
            stamp: 0,
        }
    }

    pub fn budget(&self) -> &SyncBudget {
        &self.budget
    }

    /// Peers remembered now.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The buckets of `peer` (full ones for a peer not remembered), marked as used now.
    pub fn get(&mut self, peer: PeerId, now: Instant) -> &mut PeerBudget {
        self.stamp += 1;
        let stamp = self.stamp;
        if let Some((old, _)) = self.peers.get(&peer) {
            self.order.remove(old);
        } else {
            while self.peers.len() >= self.budget.max_peers.max(1) {
                let Some((_, oldest)) = self.order.pop_first() else {
                    break;
                };
                self.peers.remove(&oldest);
            }
        }
        self.order.insert(stamp, peer);
        let budget = self.budget;
        let entry = self.peers.entry(peer).or_insert_with(|| {
            (
                stamp,
                PeerBudget {
                    serve: Bucket::full(&budget, now),
                    take: Bucket::full(&budget, now),
                },
            )
        });
        entry.0 = stamp;
        &mut entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn small() -> SyncBudget {
        SyncBudget {
            burst_bytes: 1000,
            bytes_per_sec: 100,
            burst_pages: 3,
            pages_per_min: 60,
            max_peers: 2,
        }
    }

    #[test]
    fn bucket_spends_and_refills() {
        let b = small();
        let t0 = Instant::now();
        let mut bucket = Bucket::full(&b, t0);
        // Three pages at once, then none: the page allowance binds.
        for _ in 0..3 {
            assert!(bucket.take_page(&b, t0));
            bucket.charge_bytes(&b, t0, 10);
        }
        assert!(!bucket.take_page(&b, t0));
        // One page a second comes back.
        assert!(bucket.take_page(&b, t0 + Duration::from_secs(1)));
        // A page larger than what is left: served, then a debt that blocks until repaid.
        bucket.charge_bytes(&b, t0 + Duration::from_secs(1), 1950);
        let t = t0 + Duration::from_secs(5);
        assert!(!bucket.take_page(&b, t), "in debt: {bucket:?}");
        // At t0+1s: 970 refilled to the burst (1000), less 1950: -950, repaid at 100/s.
        assert!(!bucket.take_page(&b, t0 + Duration::from_secs(10)));
        assert!(bucket.take_page(&b, t0 + Duration::from_secs(11)));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(3600);
        let mut full = bucket.clone();
        full.refill(&b, later);
        assert_eq!(full, Bucket::full(&b, later));
        // Time going backwards (it cannot with Instant, but a stale `now`) gives nothing.
        let mut bucket = Bucket::full(&b, later);
        bucket.charge_bytes(&b, later, 1000);
        assert!(!bucket.take_page(&b, t0));
    }

    #[test]
    fn zero_refill_is_a_lifetime_budget() {
        let b = SyncBudget {
            bytes_per_sec: 0,
            pages_per_min: 0,
            ..small()
        };
        let t0 = Instant::now();
        let mut bucket = Bucket::full(&b, t0);
        assert!(bucket.take_page(&b, t0));
        bucket.charge_bytes(&b, t0, 1000);
        assert!(!bucket.take_page(&b, t0 + Duration::from_secs(86_400)));
    }

    #[test]
    fn budgets_survive_and_drop_least_recently_used() {
        let b = small();
        let mut budgets = Budgets::new(b);
        let t0 = Instant::now();
        let (p1, p2, p3) = (PeerId::random(), PeerId::random(), PeerId::random());
        budgets.get(p1, t0).serve.charge_bytes(&b, t0, 1000);
        budgets.get(p2, t0).take.charge_bytes(&b, t0, 1000);
        // p1's budget is remembered (a reconnect does not refill it).
        assert!(!budgets.get(p1, t0).serve.take_page(&b, t0));
        assert!(budgets.get(p1, t0).take.take_page(&b, t0));
        // A third peer drops the least recently used one, p2.
        budgets.get(p3, t0);
        assert_eq!(budgets.len(), 2);
        assert!(!budgets.get(p1, t0).serve.take_page(&b, t0));
        // p2 comes back with full buckets (dropping p3, now the oldest).
        assert!(budgets.get(p2, t0).take.take_page(&b, t0));
        assert_eq!(budgets.len(), 2);
        assert!(!budgets.get(p1, t0).serve.take_page(&b, t0));
    }
}
