//! Bringing a room back in line with its stream after the live order
//! broke: a reconnect, a gap that could not be read, or history that
//! changed under the room's members.
//!
//! A room is delivered from the stream only as a whole: every seq from
//! `delivered + 1` on, without holes. When that is no longer possible
//! (trimmed past, or Redis lost data), the room's local members are reset:
//! closed with 1012, so that they rejoin and get `reset: true`, rather
//! than shown a jump or a reused number.

use super::SubThread;
use crate::broker::redis::entry::Entry;
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
    /// a gap). Leaves the room stalled if Redis cannot be read.
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
        let lost = seq < room.delivered || (room.epoch.is_some() && epoch != room.epoch);
        if lost {
            self.reset(name, seq, epoch, "Redis lost data");
        } else if seq > room.delivered {
            let from = room.delivered;
            let Some(missed) = self.range(name, from, seq) else {
                return;
            };
            if is_complete(&missed, from, seq) {
                for entry in missed {
                    self.deliver(name, &entry);
                }
            } else {
                // Trimmed past what members saw (more than `history_size`
                // sends while this node was away): say so, never skip.
                self.reset(name, seq, epoch, "the stream no longer holds a gap");
            }
        }
        if let Some(room) = self.rooms.get_mut(name) {
            room.stalled = false;
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
