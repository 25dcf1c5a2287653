//! Per-customer request counting over a sliding window, in bounded memory.
//!
//! Memory is bounded twice: at most `max_customers` customers are tracked (the least recently
//! seen is forgotten first), and each keeps at most `2 × limit + 1` timestamps, which is all the
//! velocity score can use (it saturates at twice the limit). With the defaults (10 000
//! customers, limit 20) that is about 6.5 MB in the worst case; a flood of fresh customer ids
//! only churns the table, it never grows it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A source of monotonic time, injectable so tests can move time by hand.
pub(crate) trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to, for deterministic tests.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct ManualClock {
    now: Mutex<Instant>,
}

#[cfg(test)]
impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
impl ManualClock {
    /// A clock stopped at the current instant.
    pub(crate) fn new() -> Self {
        Self {
            now: Mutex::new(Instant::now()),
        }
    }

    /// Moves the clock forward by `by`.
    pub(crate) fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many requests a customer made inside the window, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Velocity {
    /// Requests counted in the window (saturates at the per-customer cap).
    pub count: usize,
    /// True when `count` hit the cap, so the real number may be higher.
    pub saturated: bool,
}

#[derive(Debug)]
struct Entry {
    hits: VecDeque<Instant>,
    /// Key of this customer in `Inner::recency`.
    seen: u64,
}

#[derive(Debug, Default)]
struct Inner {
    customers: HashMap<String, Entry>,
    /// Customers by the sequence number of their last request, oldest first: the eviction order.
    recency: BTreeMap<u64, String>,
    seq: u64,
}

/// Sliding-window request counter per customer.
#[derive(Debug)]
pub(crate) struct VelocityTracker {
    window: Duration,
    cap: usize,
    max_customers: usize,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl VelocityTracker {
    /// Counts over `window`; keeps at most `max_customers` customers and, per customer, enough
    /// timestamps to see twice `limit`.
    pub(crate) fn new(
        window: Duration,
        limit: u32,
        max_customers: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let cap = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .saturating_add(1);
        Self {
            window,
            cap,
            max_customers: max_customers.max(1),
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records one request of `customer` now and returns the count inside the window.
    pub(crate) fn record(&self, customer: &str) -> Velocity {
        let now = self.clock.now();
        // A poisoned lock only means another request panicked mid-update; the counters are
        // still usable, and refusing to score would be worse.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            customers,
            recency,
            seq,
        } = &mut *inner;
        *seq += 1;
        let this_seq = *seq;

        let entry = match customers.get_mut(customer) {
            Some(entry) => {
                recency.remove(&entry.seen);
                entry.seen = this_seq;
                entry
            }
            None => customers.entry(customer.to_owned()).or_insert(Entry {
                hits: VecDeque::new(),
                seen: this_seq,
            }),
        };
        recency.insert(this_seq, customer.to_owned());

        // Early in the process's life `now - window` may predate the clock's origin; then
        // nothing can have expired yet.
        if let Some(horizon) = now.checked_sub(self.window) {
            while entry.hits.front().is_some_and(|&t| t <= horizon) {
                entry.hits.pop_front();
            }
        }
        entry.hits.push_back(now);
        while entry.hits.len() > self.cap {
            entry.hits.pop_front();
        }
        let count = entry.hits.len();

        while customers.len() > self.max_customers {
            let Some((_, oldest)) = recency.pop_first() else {
                break;
            };
            customers.remove(&oldest);
        }

        Velocity {
            count,
            saturated: count >= self.cap,
        }
    }

    /// How many customers are tracked now.
    #[cfg(test)]
    pub(crate) fn tracked_customers(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .customers
            .len()
    }

    /// Whether `customer` is tracked now.
    #[cfg(test)]
    pub(crate) fn is_tracked(&self, customer: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .customers
            .contains_key(customer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(limit: u32, max_customers: usize) -> (VelocityTracker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let tracker =
            VelocityTracker::new(Duration::from_secs(60), limit, max_customers, clock.clone());
        (tracker, clock)
    }

    #[test]
    fn window_slides_with_the_clock() {
        let (t, clock) = tracker(3, 10);
        assert_eq!(t.record("c").count, 1);
        clock.advance(Duration::from_secs(20));
        assert_eq!(t.record("c").count, 2);
        clock.advance(Duration::from_secs(20));
        assert_eq!(t.record("c").count, 3);
        // t=60: the hit at t=0 is exactly one window old and no longer counts.
        clock.advance(Duration::from_secs(20));
        assert_eq!(t.record("c").count, 3);
        // t=200: everything before t=140 has expired.
        clock.advance(Duration::from_secs(140));
        assert_eq!(t.record("c").count, 1);
    }

    #[test]
    fn customers_are_counted_separately() {
        let (t, _clock) = tracker(5, 10);
        t.record("a");
        t.record("a");
        assert_eq!(t.record("b").count, 1);
        assert_eq!(t.record("a").count, 3);
    }

    #[test]
    fn per_customer_timestamps_are_capped() {
        let (t, _clock) = tracker(4, 10);
        let mut last = Velocity {
            count: 0,
            saturated: false,
        };
        for _ in 0..100 {
            last = t.record("c");
        }
        assert_eq!(last.count, 9);
        assert!(last.saturated);
    }

    #[test]
    fn least_recently_seen_customer_is_evicted_at_the_bound() {
        let (t, _clock) = tracker(5, 3);
        t.record("a");
        t.record("b");
        t.record("c");
        // Touch "a" so "b" becomes the least recently seen.
        t.record("a");
        t.record("d");
        assert_eq!(t.tracked_customers(), 3);
        assert!(!t.is_tracked("b"));
        assert!(t.is_tracked("a") && t.is_tracked("c") && t.is_tracked("d"));
        // An evicted customer starts from zero.
        assert_eq!(t.record("b").count, 1);
    }

    #[test]
    fn a_flood_of_new_customers_never_grows_the_table() {
        let (t, _clock) = tracker(5, 100);
        for i in 0..10_000 {
            t.record(&format!("cust-{i}"));
        }
        assert_eq!(t.tracked_customers(), 100);
        assert!(t.is_tracked("cust-9999"));
        assert!(!t.is_tracked("cust-0"));
    }
}
