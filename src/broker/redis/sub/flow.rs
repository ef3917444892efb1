//! Flow control from Redis into the reactors: the subscriber takes no more
//! from Redis while any reactor's inbox is full.
//!
//! Local sends are refused with `overloaded` while an inbox is full (see
//! `RedisBroker::publish`), but other nodes' messages arrive over pub/sub
//! and cannot be refused. Pushing them anyway grows an inbox without bound
//! when its reactor falls behind. So the subscriber holds instead: it
//! neither reads pub/sub nor backfills rooms until every inbox has room
//! again (joins and leaves are still served; each adds one bounded event).
//!
//! Meanwhile the messages wait in Redis, in this subscriber's output
//! buffer. If the reactor stays behind until that buffer passes Redis's
//! `client-output-buffer-limit pubsub`, Redis drops the subscriber; the
//! reconnect then backfills each room from its stream with no loss, or
//! resets members whose gap the stream no longer holds. Either way
//! memory here stays bounded: an inbox's capacity plus one step of work
//! (one pub/sub message with its gap fill, or one room's backfill, each at
//! most `history_size` messages per reactor).
//!
//! Why not drop the deliveries for the slow reactor alone? Its members
//! would then miss seqs and have to be reset, while a hold usually costs
//! nothing but latency, and a long one ends in the lossless backfill
//! above. The hold watches every inbox, not only those of the next
//! message's room: which room that is is only known by reading it, and
//! reading is what must wait. Revocations from other nodes wait too; a
//! reconnect reloads them all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::reactor::inbox::Inbox;

/// Holds shorter than this apart are not logged again at warn level.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Whether the subscriber may take work from Redis, and when it last said
/// that it may not.
#[derive(Default)]
pub struct Gate {
    held_since: Option<Instant>,
    warned_at: Option<Instant>,
}

impl Gate {
    /// Whether every inbox has room for more (the gate is open). Logs when
    /// a hold starts and ends.
    pub fn is_open(&mut self, inboxes: &[Arc<Inbox>]) -> bool {
        let full = inboxes.iter().any(|i| i.is_full());
        match (full, self.held_since) {
            (true, None) => self.hold(),
            (false, Some(since)) => {
                self.held_since = None;
                log::debug!(
                    "redis: reactors caught up; pub/sub held {:?}",
                    since.elapsed()
                );
            }
            _ => {}
        }
        !full
    }

    fn hold(&mut self) {
        let now = Instant::now();
        self.held_since = Some(now);
        if self.warned_at.is_some_and(|t| now - t < WARN_EVERY) {
            log::debug!("redis: a reactor inbox is full; holding pub/sub");
            return;
        }
        self.warned_at = Some(now);
        log::warn!("redis: a reactor inbox is full; holding pub/sub until it drains");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::inbox::Event;

    /// An inbox of `capacity` events, with the poll its waker needs.
    fn inbox(capacity: usize) -> (mio::Poll, Arc<Inbox>) {
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        (poll, Inbox::new(waker, capacity))
    }

    #[test]
    fn the_gate_closes_while_any_inbox_is_full_and_opens_when_it_drains() {
        let (_p1, quiet) = inbox(16);
        let (_p2, busy) = inbox(16);
        let inboxes = [quiet, busy.clone()];
        let mut gate = Gate::default();
        assert!(gate.is_open(&inboxes));

        for _ in 0..15 {
            busy.push(Event::Shutdown);
        }
        assert!(gate.is_open(&inboxes), "one slot left");
        busy.push(Event::Shutdown);
        assert!(!gate.is_open(&inboxes), "full: hold");
        assert!(!gate.is_open(&inboxes), "still full: still held");

        busy.take_all(&mut Vec::new());
        assert!(gate.is_open(&inboxes), "drained: open again");
    }
}
