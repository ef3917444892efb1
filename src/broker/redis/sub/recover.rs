//! Bringing a room back in line with its stream after the live order
//! broke: a reconnect, a gap that could not be read, or history that
//! changed under the room's members.
//!
//! A room is delivered from the stream only as a whole: every seq from
//! `delivered + 1` on, without holes. When that is no longer possible
//! (trimmed past, or Redis lost data), the room's local members are reset:
//! closed with 1012, so that they rejoin and get `reset: true`, rather
//! than shown a jump or a reused number.
//!
//! Redis can also lose a room's last messages but keep its epoch key
//! (`appendfsync everysec` and a crash): the seq rolls back and new sends
//! reuse numbers that clients have seen. Resetting this node's members is
//! not enough then, since a client offline meanwhile would resume with
//! its old `since` and epoch and silently get the new messages under the
//! old numbers. So a node that sees the seq go backwards, or a different
//! message at the seq it delivered last, first gives the room a new epoch
//! in Redis. The rotation is a compare-and-set, so nodes that notice the
//! same loss rotate once. What this cannot see is in docs/durability.md.

use super::SubThread;
use crate::broker::random_id;
use crate::broker::redis::entry::Entry;
use crate::broker::redis::keys::RoomKeys;
use crate::broker::redis::scripts;
use crate::broker::RoomName;
use crate::reactor::inbox::Event;

impl SubThread {
    /// Catches up rooms that are behind the stream (after a resubscribe,
    /// or a gap that could not be read), one room at a time while every
    /// inbox has room.
    pub(super) fn retry_stalled(&mut self) {
        let stalled: Vec<RoomName> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.stalled)
            .map(|(k, _)| k.clone())
            .collect();
        for name in stalled {
            if !self.gate.is_open(&self.inboxes) {
                return;
            }
            self.catch_up(&name);
        }
    }

    /// Delivers everything stored after `delivered` (after a reconnect or
    /// a gap), or resets the room if that cannot be done whole. Leaves the
    /// room stalled if Redis cannot be asked.
    pub(super) fn catch_up(&mut self, name: &RoomName) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.stalled = true;
        let Some((seq, epoch)) = self.head(name) else {
            return;
        };
        let Some(room) = self.rooms.get(name) else {
            return;
        };
        let done = if room.epoch.is_some() && epoch != room.epoch {
            self.reset(name, seq, epoch, "its epoch changed (Redis lost data)");
            true
        } else if room.rolled_back || seq < room.delivered {
            self.rotate_epoch(name, seq)
        } else {
            self.backfill(name, seq, epoch)
        };
        if let Some(room) = self.rooms.get_mut(name).filter(|_| done) {
            room.stalled = false;
        }
    }

    /// Delivers `delivered + 1 ..= seq` from the stream, first checking
    /// that the message at `delivered` is still the one delivered (if this
    /// node knows it): another one there means the seq went back and new
    /// sends passed it again while this node was away. Returns false if
    /// the stream could not be read.
    fn backfill(&mut self, name: &RoomName, seq: u64, epoch: Option<String>) -> bool {
        let Some(room) = self.rooms.get_mut(name) else {
            return true;
        };
        room.epoch.clone_from(&epoch);
        let from = room.delivered;
        let last = room.last.filter(|_| from > 0);
        if seq == from && last.is_none() {
            return true;
        }
        let after = if last.is_some() { from - 1 } else { from };
        let Some(entries) = self.range(name, after, seq) else {
            return false;
        };
        let mut missed = &entries[..];
        if let (Some(tag), Some((first, rest))) = (last, entries.split_first()) {
            if first.seq == from {
                if first.tag() != tag {
                    return self.rotate_epoch(name, seq);
                }
                missed = rest;
            }
        }
        if is_complete(missed, from, seq) {
            for entry in missed {
                self.deliver(name, entry);
            }
        } else {
            // Trimmed past what members saw (more than `history_size`
            // sends while this node was away): say so, never skip.
            self.reset(name, seq, epoch, "the stream no longer holds a gap");
        }
        true
    }

    /// The room's seq went backwards under an unchanged epoch: gives the
    /// room a new epoch in Redis (unless another node already did), so
    /// that a client resuming with the old one gets `reset` on any node,
    /// then resets the local members. Returns false, with the rotation
    /// still owed, if Redis could not be asked.
    fn rotate_epoch(&mut self, name: &RoomName, seq: u64) -> bool {
        let Some(room) = self.rooms.get_mut(name) else {
            return true;
        };
        room.rolled_back = true;
        let known = room.epoch.clone().unwrap_or_default();
        let mut call = scripts::all().rotate.prepare_invoke();
        call.key(RoomKeys::new(name).epoch)
            .arg(known)
            .arg(random_id());
        let Some(epoch) = self.side.run(|con| call.invoke::<Option<String>>(con)) else {
            return false;
        };
        let why = "its seq went backwards (Redis lost data); new epoch";
        self.reset(name, seq, epoch, why);
        true
    }

    /// Remembers which message sits at `delivered`, from a join's backlog
    /// that ends there.
    pub(super) fn note_last(&mut self, name: &str, entries: &[Entry]) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if let Some(entry) = entries.last().filter(|e| e.seq == room.delivered) {
            room.last = Some(entry.tag());
        }
    }

    /// Members cannot be brought to `seq` without a jump or a reused
    /// number: make them reconnect (they then get `reset` on join).
    pub(super) fn reset(&mut self, name: &RoomName, seq: u64, epoch: Option<String>, why: &str) {
        log::warn!("redis: room {name}: {why}; resetting its members here");
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.delivered = seq;
        room.epoch = epoch;
        room.last = None;
        room.live = 0;
        room.rolled_back = false;
        let targets: Vec<usize> = room
            .interest
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, _)| i)
            .collect();
        for reactor in targets {
            self.send(reactor, Event::RoomReset { room: name.clone() });
        }
    }
}

/// Whether `entries` are exactly the seqs `after + 1 ..= upto`, in order:
/// the stream still reaches back to what members saw, with no hole. (The
/// send script stores every seq, so a missing one was trimmed or lost.)
pub(super) fn is_complete(entries: &[Entry], after: u64, upto: u64) -> bool {
    let mut want = after;
    let contiguous = entries.iter().all(|e| {
        want += 1;
        e.seq == want
    });
    contiguous && want == upto
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(seqs: &[u64]) -> Vec<Entry> {
        let entry = |&seq| Entry {
            seq,
            ts: 0,
            from: String::new(),
            cid: String::new(),
            text: String::new(),
        };
        seqs.iter().map(entry).collect()
    }

    #[test]
    fn a_range_is_complete_only_from_after_plus_one_to_upto_without_holes() {
        let cases: &[(&[u64], u64, u64, bool)] = &[
            (&[], 5, 5, true),
            (&[6, 7, 8], 5, 8, true),
            (&[7, 8], 5, 8, false),       // trimmed past 6
            (&[6, 8], 5, 8, false),       // a hole
            (&[6, 7], 5, 8, false),       // ends short of upto
            (&[], 5, 8, false),           // all trimmed
            (&[5, 6, 7, 8], 5, 8, false), // starts too early
        ];
        for (seqs, after, upto, want) in cases {
            let got = is_complete(&entries(seqs), *after, *upto);
            assert_eq!(got, *want, "{seqs:?} after {after} upto {upto}");
        }
    }
}
