//! The gateway's memory cache of hot segments: verified segment bytes kept in memory up to
//! a byte budget (`gateway.hot_cache_mib`), least recently served evicted first, so the
//! segments many viewers watch at once are served without reading and re-hashing them from
//! disk for every request. Segments are content-addressed and immutable, so an entry never
//! goes stale; only verified bytes (a store read that checked the BLAKE3 hash, or a
//! verified peer fetch) are put in.
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
        reply: oneshot::Sender<Option<Bytes>>,
    },
    Put {
        hash: SegmentHash,
        bytes: Bytes,
    },
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
        let tx = self.tx.as_ref()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Get { hash: *hash, reply }).await.ok()?;
        rx.await.ok().flatten()
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
                let _ = reply.send(lru.get(&hash));
            }
            Command::Put { hash, bytes } => lru.put(hash, bytes),
        }
    }
    Ok(())
}

/// Byte-bounded least-recently-used map.
struct Lru {
    budget: usize,
    used: usize,
    tick: u64,
    entries: HashMap<SegmentHash, (Bytes, u64)>,
    order: BTreeMap<u64, SegmentHash>,
}

impl Lru {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
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
        assert_eq!(lru.get(&a), Some(ab));
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
