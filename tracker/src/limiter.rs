//! The tracker's abuse limits, kept in memory (a restart forgives, the usual trade for not
//! writing on every attempt):
//!
//! - [`Limiter::take`]: attempts per key in a fixed window, **counted before the work** —
//!   a parallel burst takes its slots one by one under the lock, so it gets no more tries
//!   than a serial one. A success can hand its slot back ([`Limiter::give_back`]) where
//!   only failures should count (logins).
//! - [`Limiter::account_gate`] / [`Limiter::account_failed`]: the per-account backoff. A
//!   stranger who fails many logins on an account does not lock its owner out: past a
//!   threshold, attempts on the account from addresses it has not signed in from are
//!   spaced out (doubling, capped), while addresses it has signed in from recently
//!   ([`Limiter::known_good`]) pass.
//!
//! Time is tokio's, so tests with paused time see windows end without sleeping.
//!
//! **Per replica, by choice.** Several trackers on one PostgreSQL database (README,
//! "Running several tracker replicas") each keep their own limiter: behind a round-robin
//! balancer a limit of N per window becomes up to R×N with R replicas, so the operator
//! sets each limit to about N/R (or balances by client address). The alternative, counting
//! in the database, would turn every failed attempt of a password or registration flood
//! into a database write under the writers' lock — the flood the limits exist to absorb
//! would then slow every replica's real writes. Codes, device authorizations and node
//! replay keys, which must be exact across replicas, are in the store instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most keys kept per map; beyond it, expired entries are dropped, and if that is not
/// enough the oldest half goes (a flood of fresh keys cannot grow memory without bound).
const MAX_KEYS: usize = 200_000;
/// How long an address stays known-good for an account after a successful sign-in.
const KNOWN_GOOD_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

#[derive(Debug, Clone, Copy)]
struct AccountState {
    window_start: Instant,
    failures: u32,
    /// No attempt from an unknown address before this.
    next_allowed: Instant,
}

#[derive(Default)]
struct Maps {
    windows: HashMap<String, (Duration, Window)>,
    accounts: HashMap<String, AccountState>,
    known_good: HashMap<String, Instant>,
}

/// The per-account backoff's settings.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Failures (in `window`) before attempts from unknown addresses are spaced out.
    pub threshold: u32,
    pub window: Duration,
    /// The longest spacing.
    pub max: Duration,
}

/// Counts attempts by key (see the module docs).
#[derive(Default)]
pub struct Limiter {
    maps: Mutex<Maps>,
}

fn wait_secs(d: Duration) -> u64 {
    // Round up: "retry in 0 s" would invite an immediate retry.
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn trim<V>(
    map: &mut HashMap<String, V>,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_KEYS {
        return;
    }
    map.retain(|_, v| !expired(v));
    if map.len() >= MAX_KEYS {
        let mut ages: Vec<Instant> = map.values().map(&age).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        map.retain(|_, v| age(v) > cut);
    }
}

impl Limiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one of `max` attempts `key` has per `window`: `Err(seconds to wait)` when they
    /// are used up (nothing is counted then).
    pub fn take(&self, key: &str, max: u32, window: Duration) -> Result<(), u64> {
        let Ok(mut maps) = self.maps.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        trim(
            &mut maps.windows,
            |(w, win)| now.duration_since(win.start) >= *w,
            |(_, win)| win.start,
        );
        let entry = maps.windows.entry(key.to_owned()).or_insert((
            window,
            Window {
                start: now,
                count: 0,
            },
        ));
        if now.duration_since(entry.1.start) >= window {
            *entry = (
                window,
                Window {
                    start: now,
                    count: 0,
                },
            );
        }
        if entry.1.count >= max {
            return Err(wait_secs(window - now.duration_since(entry.1.start)).max(1));
        }
        entry.1.count += 1;
        Ok(())
    }

    /// Hands back an attempt taken with [`Limiter::take`] (it turned out not to count).
    pub fn give_back(&self, key: &str) {
        if let Ok(mut maps) = self.maps.lock() {
            if let Some((_, w)) = maps.windows.get_mut(key) {
                w.count = w.count.saturating_sub(1);
            }
        }
    }

    /// Forgets `key`'s attempts.
    pub fn clear(&self, key: &str) {
        if let Ok(mut maps) = self.maps.lock() {
            maps.windows.remove(key);
        }
    }

    /// Whether `addr` signed in to `account` recently.
    pub fn is_known_good(&self, account: &str, addr: &str) -> bool {
        let Ok(maps) = self.maps.lock() else {
            return false;
        };
        maps.known_good
            .get(&format!("{account}|{addr}"))
            .is_some_and(|at| at.elapsed() < KNOWN_GOOD_FOR)
    }

    /// Records a successful sign-in to `account` from `addr`: the address passes the
    /// account's backoff from now on, and the account's failures are forgiven.
    pub fn known_good(&self, account: &str, addr: &str) {
        if let Ok(mut maps) = self.maps.lock() {
            let now = Instant::now();
            trim(
                &mut maps.known_good,
                |at| now.duration_since(*at) >= KNOWN_GOOD_FOR,
                |at| *at,
            );
            maps.known_good.insert(format!("{account}|{addr}"), now);
            maps.accounts.remove(account);
        }
    }

    /// The account's backoff, for an attempt from an address it does not know: `Err(wait)`
    /// while attempts are spaced out. Passing reserves the next slot (a parallel burst
    /// from many addresses gets one attempt per spacing, not one each).
    pub fn account_gate(&self, account: &str, b: Backoff) -> Result<(), u64> {
        let Ok(mut maps) = self.maps.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let Some(state) = maps.accounts.get_mut(account) else {
            return Ok(());
        };
        if now.duration_since(state.window_start) >= b.window {
            maps.accounts.remove(account);
            return Ok(());
        }
        if state.failures < b.threshold {
            return Ok(());
        }
        if now < state.next_allowed {
            return Err(wait_secs(state.next_allowed - now).max(1));
        }
        state.next_allowed = now + spacing(state.failures, b);
        Ok(())
    }

    /// Records a failed login on `account`.
    pub fn account_failed(&self, account: &str, b: Backoff) {
        let Ok(mut maps) = self.maps.lock() else {
            return;
        };
        let now = Instant::now();
        trim(
            &mut maps.accounts,
            |s| now.duration_since(s.window_start) >= b.window,
            |s| s.window_start,
        );
        let state = maps
            .accounts
            .entry(account.to_owned())
            .or_insert(AccountState {
                window_start: now,
                failures: 0,
                next_allowed: now,
            });
        if now.duration_since(state.window_start) >= b.window {
            *state = AccountState {
                window_start: now,
                failures: 0,
                next_allowed: now,
            };
        }
        state.failures += 1;
        if state.failures >= b.threshold {
            state.next_allowed = state.next_allowed.max(now + spacing(state.failures, b));
        }
    }

    /// Forgets the account's failures (its password was reset).
    pub fn clear_account(&self, account: &str) {
        if let Ok(mut maps) = self.maps.lock() {
            maps.accounts.remove(account);
        }
    }
}

/// The spacing after `failures` failures: 1 s at the threshold, doubling, at most `b.max`.
fn spacing(failures: u32, b: Backoff) -> Duration {
    let over = failures.saturating_sub(b.threshold).min(20);
    Duration::from_secs(1u64 << over).min(b.max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        threshold: 3,
        window: Duration::from_secs(900),
        max: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn take_counts_before_and_the_window_ends() {
        let l = Limiter::new();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.take("a", 3, w).is_ok());
        }
        let wait = l.take("a", 3, w).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        assert!(l.take("b", 3, w).is_ok());
        l.give_back("a");
        assert!(l.take("a", 3, w).is_ok());
        assert!(l.take("a", 3, w).is_err());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.take("a", 3, w).is_ok());
        l.clear("a");
        for _ in 0..3 {
            assert!(l.take("a", 3, w).is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn account_backoff_spaces_strangers_and_passes_known_addresses() {
        let l = Limiter::new();
        for _ in 0..2 {
            l.account_failed("acct", B);
            assert!(l.account_gate("acct", B).is_ok());
        }
        // At the threshold, attempts are spaced out, doubling.
        l.account_failed("acct", B);
        let wait = l.account_gate("acct", B).unwrap_err();
        assert_eq!(wait, 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(l.account_gate("acct", B).is_ok());
        // The slot is taken: a second attempt at the same moment waits.
        assert!(l.account_gate("acct", B).is_err());
        for _ in 0..10 {
            l.account_failed("acct", B);
        }
        let wait = l.account_gate("acct", B).unwrap_err();
        assert!(wait <= 60, "spacing is capped: {wait}");
        // The owner's usual address is not asked to wait.
        l.known_good("acct", "198.51.100.7");
        assert!(l.is_known_good("acct", "198.51.100.7"));
        assert!(!l.is_known_good("acct", "203.0.113.9"));
        // A successful sign-in forgives the account's failures.
        assert!(l.account_gate("acct", B).is_ok());
        // The window ends on its own too.
        for _ in 0..5 {
            l.account_failed("other", B);
        }
        assert!(l.account_gate("other", B).is_err());
        tokio::time::advance(Duration::from_secs(901)).await;
        assert!(l.account_gate("other", B).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_keys_stays_bounded() {
        let l = Limiter::new();
        for i in 0..(MAX_KEYS + 10) {
            let _ = l.take(&format!("k{i}"), 1, Duration::from_secs(60));
        }
        let n = l.maps.lock().map(|m| m.windows.len()).unwrap_or(0);
        assert!(n <= MAX_KEYS, "{n}");
    }
}
