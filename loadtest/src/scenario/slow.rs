//! `fanout --slow-members N`: consumers that stop reading, to see a server
//! past saturation cut them (Parley closes them with 1013 once their queue
//! passes `max_outbound_bytes`) while every other member keeps up.
//!
//! The slow members are the last N connections, so they are spread over
//! the rooms and are never publishers. Once joined, a slow member stalls:
//! its socket is left unread for the whole publishing window, so its input
//! piles up in the kernel's buffers (on loopback, ~4 MB before the
//! server's own queue even starts to grow) and then in the server's
//! queue. Once publishing ends it reads what piled up, discarding it, to
//! find how it ended: a cut shows only at the end of that backlog. It
//! does not reconnect. Its deliveries count nowhere: not in loss, order,
//! latency or the figure of expected deliveries.
//!
//! Known limit: Parley keeps a close frame waiting for its reader 10 s,
//! then drops the connection, so a member cut more than 10 s before
//! publishing ends finds no 1013 at the end of its backlog, only the
//! stream's end; it is counted as ended otherwise, with that reason.
//! Reading earlier would relieve the very pressure that gets it cut.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::report::{reasons, Report};
use crate::shared::{Phase, Shared};
use crate::worker::{End, Out};

/// How often, once publishing is over, a slow member reads what piled up:
/// a cut member's close frame comes after its backlog, which may take a
/// read or two to reach.
const READ_EVERY_NS: u64 = 50_000_000;

/// Members of each room that read normally, those a delivery is owed to,
/// when the last `slow` of `rooms * members` connections are slow.
pub fn normal_per_room(rooms: usize, members: usize, slow: usize) -> Vec<u64> {
    let total = rooms * members;
    let mut normal = vec![members as u64; rooms];
    for g in total.saturating_sub(slow)..total {
        normal[g % rooms] = normal[g % rooms].saturating_sub(1);
    }
    normal
}

/// One thread's slow members: when each reads next, and how they ended.
#[derive(Default)]
pub struct SlowMembers {
    /// Slot of each stalled member and when it next reads its backlog
    /// (0: as soon as publishing ends).
    stalled: Vec<(usize, u64)>,
    pub cut_1013: u64,
    /// Ends other than a 1013, by how they ended.
    pub other_ends: BTreeMap<String, u64>,
}

impl SlowMembers {
    /// Slot `i` joined: it stops reading now.
    pub fn joined(&mut self, i: usize, shared: &Shared, out: &mut Out) {
        out.stalls.push(i);
        self.stalled.push((i, 0));
        Shared::add(&shared.slow_joined, 1);
    }

    /// Slot `i`, joined once, ended: counted by how.
    pub fn ended(&mut self, i: usize, how: End, shared: &Shared) {
        self.stalled.retain(|&(slot, _)| slot != i);
        Shared::add(&shared.slow_ended, 1);
        match how {
            End::Closed(Some(1013)) => self.cut_1013 += 1,
            End::Closed(Some(code)) => self.other(format!("closed with {code}")),
            End::Closed(None) => self.other("closed without a code".into()),
            End::Failed(e) => self.other(e),
        }
    }

    fn other(&mut self, how: String) {
        *self.other_ends.entry(how).or_default() += 1;
    }

    /// Once publishing is over, asks for the backlog reads that are due.
    pub fn tick(&mut self, phase: Phase, now: u64, out: &mut Out) {
        if phase < Phase::Drain {
            return;
        }
        for (i, due) in &mut self.stalled {
            if *due <= now {
                out.backlog_reads.push(*i);
                *due = now + READ_EVERY_NS;
            }
        }
    }
}

/// How long the run waits, once its deliveries are in, for the slow
/// members to read how they ended: a cut one needs a backlog read or two.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Whether every slow member that joined has ended.
pub fn all_ended(s: &Shared) -> bool {
    Shared::get(&s.slow_ended) >= Shared::get(&s.slow_joined)
}

/// The slow members' figures: how many, how they ended, and a note for
/// those the server never cut.
pub fn report<'a>(
    slow: usize,
    joined: u64,
    threads: impl IntoIterator<Item = &'a SlowMembers>,
    report: &mut Report,
) {
    let mut cut_1013 = 0;
    let mut others = BTreeMap::new();
    for t in threads {
        cut_1013 += t.cut_1013;
        for (how, n) in &t.other_ends {
            *others.entry(how.clone()).or_insert(0u64) += n;
        }
    }
    let other: u64 = others.values().sum();
    let not_cut = joined.saturating_sub(cut_1013 + other);
    report.add("slow_members", slow as u64, "");
    report.add("slow_joined", joined, "");
    report.add("slow_cut_1013", cut_1013, "");
    report.add("slow_ended_otherwise", other, "");
    report.add("slow_not_cut", not_cut, "");
    if other > 0 {
        report.notes.push(format!(
            "slow members ended otherwise: {} (a stream that ends without a \
             close frame may be a cut over 10 s before publishing ended)",
            reasons(&others)
        ));
    }
    if not_cut > 0 {
        report.notes.push(format!(
            "{not_cut} slow members were never cut: their rooms' traffic did \
             not outgrow the socket buffers plus the server's queue (raise \
             --duration, --rate or --size, or lower max_outbound_bytes)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_members_are_the_last_connections_spread_over_rooms() {
        // 7..=11 are slow: rooms 1, 2, 0, 1, 2.
        assert_eq!(normal_per_room(3, 4, 5), vec![3, 2, 2]);
        assert_eq!(normal_per_room(3, 4, 0), vec![4, 4, 4]);
    }

    #[test]
    fn stalled_members_read_their_backlog_only_once_publishing_ends() {
        let shared = Shared::default();
        let mut slow = SlowMembers::default();
        let mut out = Out::default();
        slow.joined(3, &shared, &mut out);
        assert_eq!(out.stalls, vec![3]);
        let mut out = Out::default();
        slow.tick(Phase::Run, u64::MAX / 2, &mut out);
        assert!(out.backlog_reads.is_empty(), "never while publishing");
        slow.tick(Phase::Drain, 1_000, &mut out);
        assert_eq!(out.backlog_reads, vec![3], "at once when publishing ends");
        slow.tick(Phase::Drain, 1_000 + READ_EVERY_NS - 1, &mut out);
        slow.tick(Phase::Drain, 1_000 + READ_EVERY_NS, &mut out);
        assert_eq!(out.backlog_reads, vec![3, 3], "then every READ_EVERY_NS");
        slow.ended(3, End::Closed(Some(1013)), &shared);
        let mut out = Out::default();
        slow.tick(Phase::Drain, u64::MAX, &mut out);
        assert!(out.backlog_reads.is_empty());
        assert!(all_ended(&shared) && slow.cut_1013 == 1);
    }
}
