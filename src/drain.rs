//! Draining a node without a reconnect storm: the timeline a reactor
//! follows after SIGTERM, kept free of sockets so it can be tested alone.
//!
//! 1. At once: readiness turns false (the caller sets `Stats::draining`),
//!    so load balancers stop sending new clients here.
//! 2. After `drain_delay_ms`: the listener closes. Until then it still
//!    accepts, because endpoint removal takes a while to propagate and a
//!    refused connect in that time is a failed client.
//! 3. Over `drain_window_ms`: every WebSocket is closed with 1012 at its
//!    own random moment in the window, in batches of whatever falls due at
//!    each timer sweep, so the clients' reconnects (and their `since`
//!    recovery reads) reach the other nodes spread out instead of at once.
//!    The close reason `reconnect retry_ms=N` adds a small random pause
//!    before reconnecting, to spread each batch as well.
//! 4. The reactor ends when its connections are gone, or at the shutdown
//!    deadline, whichever comes first.

use std::time::{Duration, Instant};

/// Largest `retry_ms` a close reason carries.
pub const MAX_RETRY_MS: u64 = 1000;

/// The close reason telling a client when to reconnect.
pub fn close_reason(retry_ms: u64) -> String {
    format!("reconnect retry_ms={retry_ms}")
}

/// One connection's turn: when it is closed and what it is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    pub due: Instant,
    pub key: usize,
    pub gen: u32,
    pub retry_ms: u64,
}

pub struct Drain {
    stop_at: Instant,
    window: Duration,
    /// Set when the listener closed: turns not yet taken, latest first.
    schedule: Option<Vec<Turn>>,
    end: Option<Instant>,
    rng: u64,
}

impl Drain {
    pub fn new(now: Instant, delay: Duration, window: Duration, seed: u64) -> Drain {
        Drain {
            stop_at: now + delay,
            window,
            schedule: None,
            end: None,
            rng: seed | 1,
        }
    }

    /// Whether the listener should close now (and the turns be dealt).
    pub fn should_stop_accepting(&self, now: Instant) -> bool {
        self.schedule.is_none() && now >= self.stop_at
    }

    /// Deals every connection a random turn in the window from `now`.
    pub fn plan(&mut self, now: Instant, conns: impl Iterator<Item = (usize, u32)>) {
        let window_us = u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX);
        let mut turns: Vec<Turn> = conns
            .map(|(key, gen)| Turn {
                due: now + Duration::from_micros(self.below(window_us)),
                key,
                gen,
                retry_ms: self.below(MAX_RETRY_MS + 1),
            })
            .collect();
        turns.sort_by_key(|t| std::cmp::Reverse(t.due));
        self.schedule = Some(turns);
        self.end = Some(now + self.window);
    }

    /// Turns due by `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<Turn> {
        let mut due = Vec::new();
        if let Some(schedule) = &mut self.schedule {
            while schedule.last().is_some_and(|t| t.due <= now) {
                due.extend(schedule.pop());
            }
        }
        due
    }

    /// Whether the window has passed: whatever is still open (say, an
    /// upgrade that finished after the plan) is closed at once.
    pub fn window_over(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }

    /// A random retry delay for a connection outside the plan.
    pub fn retry_ms(&mut self) -> u64 {
        self.below(MAX_RETRY_MS + 1)
    }

    /// A pseudo-random number below `n` (xorshift64*; spreading load
    /// needs no cryptographic quality).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_stops_after_the_delay_only() {
        let t0 = Instant::now();
        let d = Drain::new(t0, Duration::from_millis(2000), Duration::ZERO, 7);
        assert!(!d.should_stop_accepting(t0 + Duration::from_millis(1999)));
        assert!(d.should_stop_accepting(t0 + Duration::from_millis(2000)));
    }

    #[test]
    fn turns_spread_over_the_window_and_come_out_in_order() {
        let t0 = Instant::now();
        let window = Duration::from_secs(10);
        let mut d = Drain::new(t0, Duration::ZERO, window, 42);
        d.plan(t0, (0..1000).map(|k| (k, 1)));
        let mut taken = Vec::new();
        let mut batches = 0;
        let mut now = t0;
        while !d.window_over(now) {
            let batch = d.take_due(now);
            batches += usize::from(!batch.is_empty());
            taken.extend(batch);
            now += Duration::from_millis(250);
        }
        taken.extend(d.take_due(now));
        assert_eq!(taken.len(), 1000, "everyone gets a turn");
        assert!(taken.windows(2).all(|w| w[0].due <= w[1].due));
        assert!(batches >= 35, "spread over the window: {batches} batches");
        let first_half = taken.iter().filter(|t| t.due < t0 + window / 2).count();
        assert!((400..600).contains(&first_half), "{first_half}");
        assert!(taken.iter().all(|t| t.retry_ms <= MAX_RETRY_MS));
    }

    #[test]
    fn a_zero_window_closes_everyone_at_once() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, Duration::ZERO, Duration::ZERO, 1);
        assert!(d.should_stop_accepting(t0));
        d.plan(t0, [(1, 1), (2, 1)].into_iter());
        assert_eq!(d.take_due(t0).len(), 2);
        assert!(d.window_over(t0));
    }

    #[test]
    fn reason_format() {
        assert_eq!(close_reason(1234), "reconnect retry_ms=1234");
    }
}
