//! Failed-login limits, per account and per client address, in fixed windows. Kept in
//! memory: a restart forgives, which is the usual trade for not writing on every failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts failures by key within a window.
pub struct FailureLimiter {
    window: Duration,
    buckets: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when `key` has reached `max` failures in the current window.
    pub fn blocked(&self, key: &str, max: u32) -> Option<u64> {
        let buckets = self.buckets.lock().ok()?;
        let (start, count) = buckets.get(key)?;
        let age = start.elapsed();
        (age < self.window && *count >= max).then(|| (self.window - age).as_secs().max(1))
    }

    /// Records one failure for `key`.
    pub fn fail(&self, key: &str) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let now = Instant::now();
        if buckets.len() > 100_000 {
            let window = self.window;
            buckets.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = buckets.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Forgets `key`'s failures (after a successful login).
    pub fn clear(&self, key: &str) {
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_clears() {
        let l = FailureLimiter::new(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.blocked("a", 3).is_none());
            l.fail("a");
        }
        assert!(l.blocked("a", 3).is_some());
        assert!(l.blocked("b", 3).is_none());
        l.clear("a");
        assert!(l.blocked("a", 3).is_none());
    }
}
