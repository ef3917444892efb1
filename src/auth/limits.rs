//! Rate limits as token buckets: a bucket holds up to `burst` tokens and
//! refills at `per_sec`; each attempt takes one or is refused.
//!
//! [`Bucket`] is for one owner on one thread (a connection's message
//! rate). [`KeyedLimiter`] is shared by every reactor and the auth workers
//! (attempts per IP, per user name); it stays bounded by evicting buckets
//! that have refilled completely, since those carry no information.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets a keyed limiter keeps before it evicts full ones.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_sec: f32,
    pub burst: f32,
}

/// One token bucket. Time is passed in (milliseconds on any clock) so the
/// caller can read the clock once for many buckets. Eight bytes: every
/// socket holds one. The clock is kept modulo 2^32 ms (49 days); a bucket
/// idle for longer refills as if less time had passed, which errs safe.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f32,
    last_ms: u32,
}

/// The low 32 bits of a millisecond clock.
fn low32(ms: u64) -> u32 {
    u32::try_from(ms & u64::from(u32::MAX)).unwrap_or(0)
}

impl Bucket {
    pub fn full(rate: Rate, now_ms: u64) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last_ms: low32(now_ms),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> bool {
        let now = low32(now_ms);
        let elapsed = now.wrapping_sub(self.last_ms) as f32 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last_ms = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until a token is available (for Retry-After).
    pub fn wait_secs(&self, rate: Rate) -> u64 {
        if rate.per_sec <= 0.0 {
            return 60;
        }
        ((1.0 - self.tokens).max(0.0) / rate.per_sec).ceil() as u64
    }
}

/// Buckets by key, shared between threads.
pub struct KeyedLimiter<K> {
    rate: Rate,
    start: Instant,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate: Rate) -> KeyedLimiter<K> {
        KeyedLimiter {
            rate,
            start: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; on refusal, the seconds to wait.
    pub fn take(&self, key: &K) -> Result<(), u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let rate = self.rate;
            buckets.retain(|_, b| {
                let mut probe = *b;
                probe.take(rate, now);
                probe.tokens + 1.0 < rate.burst
            });
        }
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(self.rate, now));
        if bucket.take(self.rate, now) {
            Ok(())
        } else {
            Err(bucket.wait_secs(self.rate).max(1))
        }
    }
}

/// Live connections per key (user or IP), with a cap.
pub struct Counter<K> {
    max: u32,
    counts: Mutex<HashMap<K, u32>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    pub fn new(max: u32) -> Counter<K> {
        Counter {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more for `key` unless it is at the cap.
    pub fn acquire(&self, key: &K) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release(&self, key: &K) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate {
            per_sec: 2.0,
            burst: 3.0,
        };
        let mut b = Bucket::full(rate, 0);
        assert!(b.take(rate, 0) && b.take(rate, 0) && b.take(rate, 0));
        assert!(!b.take(rate, 0));
        assert_eq!(b.wait_secs(rate), 1);
        assert!(!b.take(rate, 400));
        assert!(b.take(rate, 500), "one token per 500 ms");
        assert!(b.take(rate, 10_000) && b.take(rate, 10_000) && b.take(rate, 10_000));
        assert!(!b.take(rate, 10_000), "refill stops at the burst");
    }

    #[test]
    fn a_bucket_survives_its_clock_wrapping() {
        let rate = Rate {
            per_sec: 1.0,
            burst: 1.0,
        };
        let before_wrap = u64::from(u32::MAX) - 100;
        let mut b = Bucket::full(rate, before_wrap);
        assert!(b.take(rate, before_wrap));
        assert!(!b.take(rate, before_wrap + 500));
        assert!(
            b.take(rate, before_wrap + 1000),
            "1 s later, across the wrap"
        );
        assert_eq!(std::mem::size_of::<Bucket>(), 8);
    }

    #[test]
    fn keyed_limits_are_per_key() {
        let l = KeyedLimiter::new(Rate {
            per_sec: 0.001,
            burst: 2.0,
        });
        assert!(l.take(&"a").is_ok() && l.take(&"a").is_ok());
        assert!(l.take(&"a").is_err());
        assert!(l.take(&"b").is_ok());
    }

    #[test]
    fn counters_cap_and_release() {
        let c = Counter::new(2);
        assert!(c.acquire(&1) && c.acquire(&1));
        assert!(!c.acquire(&1));
        c.release(&1);
        assert!(c.acquire(&1));
    }
}
