//! The building blocks of `/metrics`: fixed-bucket latency histograms and
//! counters keyed by a small, closed set of codes, all plain atomics.
//!
//! Each reactor owns its own copies (in its [`ReactorStats`]) and is their
//! only writer, so an update is an uncontended relaxed add; a scrape reads
//! every reactor's copies and sums them. Nothing here allocates on the
//! update path. The text exposition itself lives in `metrics/render.rs`.
//!
//! [`ReactorStats`]: crate::stats::ReactorStats

pub mod render;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, in microseconds: 0.1 ms to 10 s,
/// roughly three per decade. `+Inf` is implied.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A latency histogram. Buckets hold plain (not cumulative) counts; the
/// renderer accumulates them, so an observation touches one bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.observe_us(us);
    }

    pub fn observe_us(&self, us: u64) {
        let i = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Adds this histogram's counts into `into` (for summing reactors).
    pub fn add_to(&self, into: &mut Snapshot) {
        for (total, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            *total += bucket.load(Ordering::Relaxed);
        }
        into.sum_us += self.sum_us.load(Ordering::Relaxed);
    }
}

/// A histogram's counts at scrape time, possibly summed over reactors.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub buckets: [u64; BUCKETS],
    pub sum_us: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Counters for a closed list of codes (close codes, HTTP statuses), plus
/// one for any code not on the list, so a label never comes from a peer.
#[derive(Debug)]
pub struct CodeCounts {
    codes: &'static [u16],
    counts: Box<[AtomicU64]>,
}

impl CodeCounts {
    pub fn new(codes: &'static [u16]) -> CodeCounts {
        CodeCounts {
            codes,
            counts: (0..=codes.len()).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn count(&self, code: u16) {
        let i = self
            .codes
            .iter()
            .position(|&c| c == code)
            .unwrap_or(self.codes.len());
        if let Some(counter) = self.counts.get(i) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(label, count)` pairs, the unlisted codes last as "other".
    pub fn values(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let labels = self.codes.iter().map(u16::to_string);
        labels
            .chain(std::iter::once("other".to_string()))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
    }
}

/// Close codes the server sends (see `ws/close.rs`); 1005 stands for a
/// close frame without a code (the echo of an empty close).
pub const CLOSE_CODES: &[u16] = &[
    1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1011, 1012, 1013,
];

/// HTTP error statuses the server sends.
pub const ERROR_STATUSES: &[u16] = &[
    400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 426, 429, 431, 500, 501, 503, 505,
];

/// The limits whose refusals `parley_rate_limit_hits_total` counts, each
/// its own `limit` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Sign-up and log-in attempts per client address (429).
    LoginIp,
    /// Log-in attempts per user name (429).
    LoginUser,
    /// Requests (and pings) per chat socket: `rate_limited`, or a 1008
    /// close for a ping flood.
    MessageRate,
    /// Sockets per user on this node (429).
    ConnsUser,
    /// Sockets per client address on this node (429).
    ConnsIp,
    /// Rooms one socket may be in (`too_many_rooms`).
    RoomsPerConn,
    /// Connections before their upgrade, per reactor (503, shed).
    PendingHandshakes,
    /// Connections before their upgrade, per address (503, shed).
    PendingPerIp,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::LoginIp,
        Limit::LoginUser,
        Limit::MessageRate,
        Limit::ConnsUser,
        Limit::ConnsIp,
        Limit::RoomsPerConn,
        Limit::PendingHandshakes,
        Limit::PendingPerIp,
    ];

    /// The `limit` label value.
    pub fn label(self) -> &'static str {
        match self {
            Limit::LoginIp => "login_ip",
            Limit::LoginUser => "login_user",
            Limit::MessageRate => "message_rate",
            Limit::ConnsUser => "conns_user",
            Limit::ConnsIp => "conns_ip",
            Limit::RoomsPerConn => "rooms_per_conn",
            Limit::PendingHandshakes => "pending_handshakes",
            Limit::PendingPerIp => "pending_per_ip",
        }
    }
}

/// Refusals by limit. Process-wide: the login limits are hit from any
/// reactor, and a hit is rare next to the work it refuses.
#[derive(Debug, Default)]
pub struct LimitCounts {
    counts: [AtomicU64; Limit::ALL.len()],
}

impl LimitCounts {
    pub fn hit(&self, limit: Limit) {
        let i = Limit::ALL.iter().position(|&l| l == limit);
        if let Some(counter) = i.and_then(|i| self.counts.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(label, count)` for every limit, zeros included, so each series
    /// exists from the first scrape.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Limit::ALL
            .iter()
            .zip(&self.counts)
            .map(|(l, c)| (l.label(), c.load(Ordering::Relaxed)))
    }
}

/// Milliseconds since this process first asked, on the monotonic clock:
/// heartbeats compare against it, so wall-clock steps cannot fake a stall.
pub fn uptime_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        for us in [0, 100, 101, 10_000_000, 10_000_001] {
            h.observe_us(us);
        }
        let mut s = Snapshot::default();
        h.add_to(&mut s);
        assert_eq!(s.buckets[0], 2, "0 and 100 us are <= 0.1 ms");
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[LATENCY_BOUNDS_US.len() - 1], 1);
        assert_eq!(s.buckets[LATENCY_BOUNDS_US.len()], 1, "+Inf");
        assert_eq!(s.count(), 5);
        assert_eq!(s.sum_us, 20_000_202);
    }

    #[test]
    fn unknown_codes_count_as_other() {
        let c = CodeCounts::new(&[1000, 1001]);
        c.count(1001);
        c.count(4000);
        c.count(4001);
        let v: Vec<_> = c.values().collect();
        assert_eq!(
            v,
            [("1000".into(), 0), ("1001".into(), 1), ("other".into(), 2)]
        );
    }

    #[test]
    fn each_limit_counts_under_its_own_label() {
        let c = LimitCounts::default();
        c.hit(Limit::RoomsPerConn);
        c.hit(Limit::LoginUser);
        c.hit(Limit::LoginUser);
        let v: std::collections::HashMap<_, _> = c.values().collect();
        assert_eq!(v.len(), Limit::ALL.len(), "labels are distinct");
        assert_eq!(v["rooms_per_conn"], 1);
        assert_eq!(v["login_user"], 2);
        assert_eq!(v["pending_per_ip"], 0);
    }
}
