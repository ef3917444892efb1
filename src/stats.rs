//! Counters each reactor updates and anyone may read: the basis of
//! `/healthz`, `/readyz` and `/metrics`. Relaxed atomics, written by one
//! reactor thread each, so an update costs no more than a plain add; a
//! scrape sums the reactors. Process-wide state (draining, the canary,
//! counters the accounts work feeds) sits beside them in [`Stats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::canary::CanaryStats;
use crate::metrics::{CodeCounts, Histogram, LimitCounts, CLOSE_CODES, ERROR_STATUSES};

#[derive(Debug)]
pub struct ReactorStats {
    /// Connections currently open.
    pub connections: AtomicU64,
    pub accepted: AtomicU64,
    /// Chat messages received from clients.
    pub messages_in: AtomicU64,
    /// Room message frames queued to members as they are published.
    pub deliveries: AtomicU64,
    /// Room messages queued to clients: `deliveries` plus the backlog a
    /// join or resume replays.
    pub messages_out: AtomicU64,
    /// Connections closed for falling behind.
    pub slow_consumers: AtomicU64,
    /// Connections closed for not answering pings.
    pub ping_timeouts: AtomicU64,
    /// Gauge, refreshed each sweep: bytes waiting in outbound queues.
    pub bytes_queued: AtomicU64,
    /// Gauge, refreshed each sweep: rooms with local members.
    pub rooms: AtomicU64,
    /// [`crate::metrics::uptime_ms`] at the reactor's last sweep.
    pub heartbeat_ms: AtomicU64,
    /// Gauge: 1 while the reactor's listener accepts.
    pub accepting: AtomicU64,
    /// Close frames queued, by close code.
    pub closes: CodeCounts,
    /// HTTP error responses written, by status.
    pub http_errors: CodeCounts,
    /// From a send reaching the broker to its ack being applied.
    pub publish_latency: Histogram,
    /// From a message's `ts` to its frame being queued here.
    pub fanout_latency: Histogram,
}

impl Default for ReactorStats {
    fn default() -> Self {
        ReactorStats {
            connections: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            slow_consumers: AtomicU64::new(0),
            ping_timeouts: AtomicU64::new(0),
            bytes_queued: AtomicU64::new(0),
            rooms: AtomicU64::new(0),
            heartbeat_ms: AtomicU64::new(crate::metrics::uptime_ms()),
            accepting: AtomicU64::new(1),
            closes: CodeCounts::new(CLOSE_CODES),
            http_errors: CodeCounts::new(ERROR_STATUSES),
            publish_latency: Histogram::default(),
            fanout_latency: Histogram::default(),
        }
    }
}

impl ReactorStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }
}

/// The counters of every reactor of this process, and process-wide state.
#[derive(Default, Debug)]
pub struct Stats {
    pub reactors: Vec<Arc<ReactorStats>>,
    /// Set at SIGTERM: readiness is false from then on.
    pub draining: AtomicBool,
    /// Failed logins and bad tokens.
    pub auth_failures: AtomicU64,
    /// Requests refused by a rate limit or connection cap, by limit.
    pub rate_limit_hits: LimitCounts,
    pub canary: CanaryStats,
}

impl Stats {
    /// Stats for `count` reactors, all zero.
    pub fn new(count: usize) -> Stats {
        Stats {
            reactors: (0..count).map(|_| Arc::default()).collect(),
            ..Stats::default()
        }
    }

    pub fn sum(&self, field: impl Fn(&ReactorStats) -> &AtomicU64) -> u64 {
        self.reactors
            .iter()
            .map(|r| field(r).load(Ordering::Relaxed))
            .sum()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Reactors whose last sweep is more than `stale_ms` ago.
    pub fn stalled_reactors(&self, stale_ms: u64) -> usize {
        let now = crate::metrics::uptime_ms();
        self.reactors
            .iter()
            .filter(|r| now.saturating_sub(r.heartbeat_ms.load(Ordering::Relaxed)) > stale_ms)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reactor_that_stops_sweeping_counts_as_stalled() {
        let stats = Stats::new(2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = crate::metrics::uptime_ms();
        ReactorStats::set(&stats.reactors[0].heartbeat_ms, now);
        assert_eq!(stats.stalled_reactors(10_000), 0);
        assert_eq!(stats.stalled_reactors(10), 1, "reactor 1 never swept");
    }
}
