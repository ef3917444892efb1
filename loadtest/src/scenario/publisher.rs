//! One publishing connection of `fanout`: its schedule slots, and the
//! sends it still owes an ack.
//!
//! With Parley's protocol a send is retried, with the same cid and the
//! same frame, until it is acknowledged: after a retryable error
//! (`unavailable`, `overloaded`, `rate_limited`) with back-off, after the connection was
//! cut (once the publisher has joined again), and after `ACK_TIMEOUT`
//! without an answer. The server stores a cid once, so a retry of a send
//! that was stored after all is acked with its first seq, not stored
//! twice. A send refused for good (any other error) is abandoned and
//! counted. Targets without cids keep a FIFO of sends instead.

use std::collections::{BTreeMap, VecDeque};

/// Resend a send that got no answer at all after this long.
const ACK_TIMEOUT_NS: u64 = 5_000_000_000;
/// First retry delay after a refusal; doubles per attempt up to the cap.
const BACKOFF_NS: u64 = 50_000_000;
const BACKOFF_CAP_NS: u64 = 1_000_000_000;
/// How often the outstanding sends are scanned for due retries.
const SCAN_NS: u64 = 5_000_000;

/// Error codes after which the same send may succeed later.
pub fn retryable(code: &str) -> bool {
    matches!(code, "unavailable" | "overloaded" | "rate_limited")
}

struct Pending {
    frame: String,
    /// When the last attempt went out.
    sent_at: u64,
    /// When to try again, if a refusal or a disconnect asked for it.
    retry_at: Option<u64>,
    attempts: u32,
}

pub struct Publisher {
    pub slot: usize,
    pub id: u32,
    /// Schedule slots passed (sent or skipped while disconnected).
    pub slots: u64,
    pub sent: u64,
    pub skipped: u64,
    /// Targets without cids: numbers sent and not yet acked, oldest first.
    pub unacked: VecDeque<u64>,
    /// Parley: sends not yet acked, by message number.
    outstanding: BTreeMap<u64, Pending>,
    next_scan: u64,
    pub retries: u64,
    pub refused: u64,
    pub abandoned: u64,
}

impl Publisher {
    pub fn new(slot: usize, id: u32) -> Publisher {
        Publisher {
            slot,
            id,
            slots: 0,
            sent: 0,
            skipped: 0,
            unacked: VecDeque::new(),
            outstanding: BTreeMap::new(),
            next_scan: 0,
            retries: 0,
            refused: 0,
            abandoned: 0,
        }
    }

    /// Remembers send `n` until its ack.
    pub fn track(&mut self, n: u64, frame: String, now: u64) {
        let pending = Pending {
            frame,
            sent_at: now,
            retry_at: None,
            attempts: 0,
        };
        self.outstanding.insert(n, pending);
    }

    /// An ack for `n`: true the first time (a retried send may be acked
    /// twice, with the same seq).
    pub fn acked(&mut self, n: u64) -> bool {
        self.outstanding.remove(&n).is_some()
    }

    /// An error for send `n`: schedule a retry, or give it up. Returns
    /// whether it was given up.
    pub fn refused(&mut self, n: u64, code: &str, now: u64) -> bool {
        let Some(p) = self.outstanding.get_mut(&n) else {
            return false;
        };
        self.refused += 1;
        if !retryable(code) {
            self.outstanding.remove(&n);
            self.abandoned += 1;
            return true;
        }
        let backoff = (BACKOFF_NS << p.attempts.min(8)).min(BACKOFF_CAP_NS);
        // A little spread, so a burst of refusals does not retry as one.
        let jitter = (n * 7_919) % (BACKOFF_NS / 2);
        p.retry_at = Some(now + backoff + jitter);
        false
    }

    /// The connection was cut: every outstanding send goes again once
    /// the publisher has joined again.
    pub fn disconnected(&mut self) {
        for p in self.outstanding.values_mut() {
            p.retry_at = Some(0);
        }
        self.next_scan = 0;
    }

    /// Frames due for another attempt, oldest first.
    pub fn due(&mut self, now: u64, mut send: impl FnMut(String)) {
        if now < self.next_scan {
            return;
        }
        self.next_scan = now + SCAN_NS;
        for p in self.outstanding.values_mut() {
            let due = match p.retry_at {
                Some(at) => at <= now,
                None => now.saturating_sub(p.sent_at) >= ACK_TIMEOUT_NS,
            };
            if due {
                p.attempts += 1;
                p.sent_at = now;
                p.retry_at = None;
                self.retries += 1;
                send(p.frame.clone());
            }
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(p: &mut Publisher, now: u64) -> Vec<String> {
        let mut out = Vec::new();
        p.due(now, |f| out.push(f));
        out
    }

    #[test]
    fn retries_refusals_with_backoff_and_abandons_the_rest() {
        let mut p = Publisher::new(0, 1);
        p.track(1, "a".into(), 0);
        p.track(2, "b".into(), 0);
        assert!(!p.refused(1, "unavailable", 0));
        assert!(p.refused(2, "invalid_text", 0));
        assert_eq!((p.abandoned, p.outstanding()), (1, 1));
        assert!(frames(&mut p, 1).is_empty());
        assert_eq!(frames(&mut p, BACKOFF_CAP_NS + 1), vec!["a"]);
        assert_eq!(p.retries, 1);
        assert!(p.acked(1));
        assert!(!p.acked(1), "a second ack of a retried send");
    }

    #[test]
    fn resends_after_a_disconnect_and_after_silence() {
        let mut p = Publisher::new(0, 1);
        p.track(1, "a".into(), 0);
        p.track(2, "b".into(), 10);
        p.disconnected();
        assert_eq!(frames(&mut p, 20), vec!["a", "b"]);
        assert!(frames(&mut p, 20 + SCAN_NS).is_empty());
        assert_eq!(frames(&mut p, 20 + ACK_TIMEOUT_NS), vec!["a", "b"]);
        assert!(
            !p.refused(9, "unavailable", 0),
            "unknown numbers are ignored"
        );
    }
}
