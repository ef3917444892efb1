//! Counters each reactor updates and anyone may read: the basis of
//! `/healthz` now and of `/metrics` later. Relaxed atomics, written by one
//! reactor thread each, so an update costs no more than a plain add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default, Debug)]
pub struct ReactorStats {
    /// Connections currently open.
    pub connections: AtomicU64,
    pub accepted: AtomicU64,
    /// Chat messages received from clients.
    pub messages_in: AtomicU64,
    /// Room message frames queued to members.
    pub deliveries: AtomicU64,
    /// Connections closed for falling behind.
    pub slow_consumers: AtomicU64,
    /// Connections closed for not answering pings.
    pub ping_timeouts: AtomicU64,
}

impl ReactorStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The counters of every reactor of this process.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub reactors: Vec<Arc<ReactorStats>>,
}

impl Stats {
    pub fn sum(&self, field: impl Fn(&ReactorStats) -> &AtomicU64) -> u64 {
        self.reactors
            .iter()
            .map(|r| field(r).load(Ordering::Relaxed))
            .sum()
    }
}
