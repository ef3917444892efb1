//! State every worker thread and the coordinating thread see: the run's
//! phase and live counters for the progress line and the stop conditions.
//! Final figures are not kept here; each worker returns its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Opening connections and joining rooms.
    Connect = 0,
    /// The measured window: publishing, holding or churning.
    Run = 1,
    /// Publishing stopped; waiting for deliveries in flight.
    Drain = 2,
    /// Close everything and return.
    Stop = 3,
}

#[derive(Default)]
pub struct Shared {
    phase: AtomicU8,
    /// Start of the measured window, in `clock::now_ns` units.
    pub run_start_ns: AtomicU64,
    pub opened: AtomicU64,
    pub joined: AtomicU64,
    pub failed: AtomicU64,
    pub server_closes: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub send_errors: AtomicU64,
    /// Deliveries the acks so far oblige the members to receive.
    pub expected: AtomicU64,
    /// First deliveries (duplicates excluded) since the window opened.
    pub delivered: AtomicU64,
    pub handshakes: AtomicU64,
    /// Sends given up after a non-retryable error.
    pub abandoned: AtomicU64,
    /// fanout's slow members that joined, and those of them that ended.
    pub slow_joined: AtomicU64,
    pub slow_ended: AtomicU64,
    /// Times (in `clock::now_ns` units, 0 = not yet) after which members
    /// note their first delivery of a message sent later: how `chaos`
    /// times recovery.
    pub marks: [AtomicU64; MARKS],
    /// Why connects and upgrades failed, by reason. Failures are rare
    /// next to messages, so a mutex costs nothing that matters.
    connect_errors: Mutex<BTreeMap<String, u64>>,
}

/// How many recovery marks a run can set.
pub const MARKS: usize = 4;
/// Distinct failure reasons kept; the rest count as "other". A reason may
/// quote the server, so this bounds what a run remembers.
const MAX_REASONS: usize = 16;

impl Shared {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Relaxed) {
            0 => Phase::Connect,
            1 => Phase::Run,
            2 => Phase::Drain,
            _ => Phase::Stop,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts a connect or upgrade that failed, under its reason.
    pub fn connect_failed(&self, why: &str) {
        Self::add(&self.failed, 1);
        let Ok(mut errors) = self.connect_errors.lock() else {
            return;
        };
        let known = errors.len() < MAX_REASONS || errors.contains_key(why);
        let key = if known { why } else { "other" };
        *errors.entry(key.to_string()).or_default() += 1;
    }

    /// Failed connects and upgrades so far, by reason.
    pub fn connect_errors(&self) -> BTreeMap<String, u64> {
        self.connect_errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }
}
