//! The gateway's memory cache of hot segments: verified segment bytes kept in memory up to
//! a byte budget (`gateway.hot_cache_mib`), least recently served evicted first, so the
//! segments many viewers watch at once are served without reading and re-hashing them from
//! disk for every request. Segments are content-addressed and immutable, so an entry never
//! goes stale; only verified bytes (a store read that checked the BLAKE3 hash, or a
//! verified peer fetch) are put in.
//!
//! Admission is frequency-aware (TinyLFU-like): every lookup counts a request for the
//! segment (counts halve as they age), and once the cache is full a newcomer is admitted
//! only if it has been asked for more often than the entry it would evict. A working set
//! larger than the budget (many movies at once, a viewer scanning through a film) then
//! keeps the segments asked for most instead of each new one evicting the next one to be
//! asked for, and the disk path skips collecting a segment's bytes the cache would refuse
//! ([`Lookup::Miss`]).
//!
//! One task owns the cache; handlers talk to it through a cloneable [`HotSegments`] handle.
//! A handle with a zero budget (or after shutdown) caches nothing.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use reelnet_proto::SegmentHash;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

enum Command {
    Get {
        hash: SegmentHash,
        reply: oneshot::Sender<Lookup>,
    },
    Put {
        hash: SegmentHash,
        bytes: Bytes,
    },
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The segment's verified bytes.
    Hit(Bytes),
    /// Not cached; `admit` says whether the cache would take it now (worth collecting
    /// its bytes for [`HotSegments::put`]).
    Miss { admit: bool },
}

/// Handle to the hot-segment cache. Cheap to clone.
#[derive(Clone)]
pub struct HotSegments {
    tx: Option<mpsc::Sender<Command>>,
}

impl HotSegments {
    /// A cache that holds nothing.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Starts the cache task with `budget` bytes (0: a disabled handle and an idle task);
    /// it stops when `cancel` fires.
    pub fn start(budget: usize, cancel: CancellationToken) -> (Self, JoinHandle<()>) {
        if budget == 0 {
            let task = reelnet_runtime::shutdown::spawn("hot-segments", async {
                Ok::<(), std::convert::Infallible>(())
            });
            return (Self::disabled(), task);
        }
        let (tx, rx) = mpsc::channel(1024);
        let task =
            reelnet_runtime::shutdown::spawn("hot-segments", run(Lru::new(budget), rx, cancel));
        (Self { tx: Some(tx) }, task)
    }

    /// The segment's bytes, if cached.
    pub async fn get(&self, hash: &SegmentHash) -> Option<Bytes> {
        match self.lookup(hash).await {
            Lookup::Hit(bytes) => Some(bytes),
            Lookup::Miss { .. } => None,
        }
    }

    /// Looks `hash` up, counting the request: its bytes, or whether the cache would admit it.
    pub async fn lookup(&self, hash: &SegmentHash) -> Lookup {
        let closed = Lookup::Miss { admit: false };
        let Some(tx) = self.tx.as_ref() else {
            return closed;
        };
        let (reply, rx) = oneshot::channel();
        if tx.send(Command::Get { hash: *hash, reply }).await.is_err() {
            return closed;
        }
        rx.await.unwrap_or(closed)
    }

    /// Offers verified bytes of `hash` to the cache (dropped when the cache is busy).
    pub fn put(&self, hash: SegmentHash, bytes: Bytes) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Command::Put { hash, bytes });
        }
    }
}

async fn run(
    mut lru: Lru,
    mut rx: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    loop {
        let cmd = tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = rx.recv() => match cmd {
                Some(c) => c,
                None => break,
            },
        };
        match cmd {
            Command::Get { hash, reply } => {
                let _ = reply.send(lru.lookup(&hash));
            }
            Command::Put { hash, bytes } => lru.put(hash, bytes),
        }
    }
    Ok(())
}

/// Byte-bounded least-recently-used map with frequency-aware admission.
struct Lru {
    budget: usize,
    used: usize,
    tick: u64,
    entries: HashMap<SegmentHash, (Bytes, u64)>,
    order: BTreeMap<u64, SegmentHash>,
    /// Requests per segment (cached or not), halved every [`Lru::sample`] requests.
    freq: HashMap<SegmentHash, u32>,
    /// Requests since the last halving.
    counted: usize,
    /// Size of the last segment put (what a lookup assumes for a segment not read yet).
    typical: usize,
}

/// Most segments whose request counts are remembered (about 40 bytes each).
const MAX_COUNTED: usize = 100_000;

impl Lru {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            freq: HashMap::new(),
            counted: 0,
            typical: (2 << 20).min(budget / 8),
        }
    }

    /// Requests counted before every count is halved: ten times the segments the budget
    /// holds (2 MiB each), at least 1000, so counts follow what is watched now.
    fn sample(&self) -> usize {
        (self.budget / (2 << 20))
            .saturating_mul(10)
            .clamp(1000, MAX_COUNTED)
    }

    fn count(&mut self, hash: &SegmentHash) {
        self.counted += 1;
        if self.counted >= self.sample() || self.freq.len() >= MAX_COUNTED {
            self.counted = 0;
            self.freq.retain(|_, n| {
                *n /= 2;
                *n > 0
            });
        }
        let n = self.freq.entry(*hash).or_insert(0);
        *n = n.saturating_add(1);
    }

    fn freq_of(&self, hash: &SegmentHash) -> u32 {
        self.freq.get(hash).copied().unwrap_or(0)
    }

    /// Whether a segment of `len` bytes asked for `freq` times would be admitted now: there
    /// is room, or it is asked for more often than the least recently served entry.
    fn would_admit(&self, len: usize, freq: u32) -> bool {
        if len > self.budget / 8 {
            return false;
        }
        if self.used + len <= self.budget {
            return true;
        }
        match self.order.first_key_value() {
            Some((_, victim)) => freq > self.freq_of(victim),
            None => true,
        }
    }

    fn lookup(&mut self, hash: &SegmentHash) -> Lookup {
        self.count(hash);
        match self.get(hash) {
            Some(bytes) => Lookup::Hit(bytes),
            // The typical segment size decides before the bytes are read.
            None => Lookup::Miss {
                admit: self.would_admit(self.typical, self.freq_of(hash)),
            },
        }
    }

    fn get(&mut self, hash: &SegmentHash) -> Option<Bytes> {
        self.tick += 1;
        let (bytes, at) = self.entries.get_mut(hash)?;
        self.order.remove(at);
        *at = self.tick;
        self.order.insert(self.tick, *hash);
        Some(bytes.clone())
    }

    fn put(&mut self, hash: SegmentHash, bytes: Bytes) {
        // One segment may take at most an eighth of the budget.
        if bytes.len() > self.budget / 8 || self.entries.contains_key(&hash) {
            return;
        }
        self.typical = bytes.len();
        if !self.would_admit(bytes.len(), self.freq_of(&hash)) {
            return;
        }
        while self.used + bytes.len() > self.budget {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((b, _)) = self.entries.remove(&old) {
                self.used -= b.len();
            }
        }
        self.tick += 1;
        self.used += bytes.len();
        self.order.insert(self.tick, hash);
        self.entries.insert(hash, (bytes, self.tick));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seg(n: u8, len: usize) -> (SegmentHash, Bytes) {
        let b = Bytes::from(vec![n; len]);
        (SegmentHash::of(&b), b)
    }

    #[test]
    fn keeps_within_budget_and_evicts_least_recently_served() {
        let mut lru = Lru::new(800);
        let (a, ab) = seg(1, 100);
        let (b, bb) = seg(2, 100);
        let (c, cb) = seg(3, 100);
        lru.put(a, ab.clone());
        lru.put(b, bb);
        for n in 10..16 {
            let (h, bytes) = seg(n, 100);
            lru.put(h, bytes);
        }
        assert_eq!(lru.used, 800);
        // `a` is served again, so `b` is now the oldest.
        assert_eq!(lru.lookup(&a), Lookup::Hit(ab));
        // `c` is asked for (as every segment is before it is put) more often than `b`.
        assert_eq!(lru.lookup(&c), Lookup::Miss { admit: true });
        lru.put(c, cb.clone());
        assert!(lru.used <= 800);
        assert_eq!(lru.get(&b), None);
        assert!(lru.get(&a).is_some());
        assert_eq!(lru.get(&c), Some(cb));
    }

    #[test]
    fn refuses_segments_over_an_eighth_of_the_budget() {
        let mut lru = Lru::new(800);
        let (h, b) = seg(1, 101);
        lru.put(h, b);
        assert_eq!(lru.used, 0);
        assert_eq!(lru.get(&h), None);
    }

    #[test]
    fn a_working_set_bigger_than_the_budget_keeps_what_is_asked_for_most() {
        // Room for 8 segments; 20 are asked for in turn, over and over (a scan).
        let mut lru = Lru::new(800);
        let segs: Vec<_> = (0..20).map(|n| seg(n, 100)).collect();
        let mut hits = 0;
        for round in 0..10 {
            for (h, b) in &segs {
                match lru.lookup(h) {
                    Lookup::Hit(_) => hits += usize::from(round > 0),
                    Lookup::Miss { admit } => {
                        if admit {
                            lru.put(*h, b.clone());
                        }
                    }
                }
            }
        }
        // Plain LRU serves a scan over more than its budget from the cache never; here
        // the first 8 stay and are hit every round after the first.
        assert_eq!(hits, 8 * 9);
        assert!(lru.used <= 800);
        // A segment asked for more often than the oldest entry gets in.
        let (hot, hb) = seg(99, 100);
        for _ in 0..50 {
            lru.count(&hot);
        }
        assert_eq!(lru.lookup(&hot), Lookup::Miss { admit: true });
        lru.put(hot, hb.clone());
        assert_eq!(lru.get(&hot), Some(hb));
    }

    #[tokio::test]
    async fn a_zero_budget_caches_nothing() {
        let (hot, task) = HotSegments::start(0, CancellationToken::new());
        let (h, b) = seg(1, 10);
        hot.put(h, b);
        assert_eq!(hot.get(&h).await, None);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_task_serves_what_was_put() {
        let cancel = CancellationToken::new();
        let (hot, task) = HotSegments::start(1 << 20, cancel.clone());
        let (h, b) = seg(7, 1000);
        hot.put(h, b.clone());
        assert_eq!(hot.get(&h).await, Some(b));
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(hot.get(&h).await, None);
    }
}
