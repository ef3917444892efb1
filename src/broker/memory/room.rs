//! One room of the embedded broker: its sequence, history ring, the cids
//! of the messages the ring holds (for retries), who may enter it, who is
//! in it, and which reactors have members.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::chat::wire::Frame;

struct Stored {
    seq: u64,
    frame: Frame,
    from: Arc<str>,
    cid: Box<str>,
}

#[derive(Default)]
pub struct Room {
    pub last_seq: u64,
    ring: VecDeque<Stored>,
    /// (sender, cid) of every message still in the ring, for retries.
    sent: HashMap<(Arc<str>, Box<str>), u64>,
    /// Memberships per reactor.
    pub interest: Vec<u32>,
    /// `Some(members)` for a private room.
    pub members: Option<HashSet<Arc<str>>>,
    pub owner: Option<Arc<str>>,
    /// Sockets per user in the room (presence: a user is online while
    /// any of their sockets is).
    pub online: HashMap<Arc<str>, u32>,
    /// Created by `create` or used by anyone: a name that is taken.
    pub used: bool,
    /// Bytes of the frames in the ring.
    pub bytes: usize,
    /// Broker clock tick of the last join or message, for eviction.
    pub touched: u64,
    /// This incarnation of the room: a room forgotten and made again
    /// starts its seqs over under a new epoch, so a client resuming with
    /// the old one is told to reset instead of being handed reused seqs.
    pub epoch: Arc<str>,
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

impl Room {
    pub fn new(reactors: usize, epoch: Arc<str>) -> Room {
        Room {
            interest: vec![0; reactors],
            epoch,
            ..Room::default()
        }
    }

    /// Whether `user` may read and write here.
    pub fn admits(&self, user: &str) -> bool {
        self.members.as_ref().is_none_or(|m| m.contains(user))
    }

    /// The (from, cid) retry lookup.
    pub fn seq_of(&self, from: &Arc<str>, cid: &str) -> Option<u64> {
        self.sent.get(&(from.clone(), Box::from(cid))).copied()
    }

    /// Stores a message, dropping the oldest past `cap`. Returns the bytes
    /// held now minus before (for the broker's memory budget).
    pub fn store(
        &mut self,
        seq: u64,
        frame: Frame,
        from: Arc<str>,
        cid: Box<str>,
        cap: usize,
    ) -> isize {
        self.last_seq = seq;
        let before = self.bytes;
        while self.ring.len() >= cap {
            self.drop_oldest();
        }
        self.bytes += frame.len();
        self.sent.insert((from.clone(), cid.clone()), seq);
        self.ring.push_back(Stored {
            seq,
            frame,
            from,
            cid,
        });
        signed(self.bytes) - signed(before)
    }

    /// Forgets the oldest stored message; returns the bytes freed.
    pub fn drop_oldest(&mut self) -> usize {
        let Some(old) = self.ring.pop_front() else {
            return 0;
        };
        self.sent.remove(&(old.from, old.cid));
        self.bytes -= old.frame.len();
        old.frame.len()
    }

    /// Messages held.
    pub fn stored(&self) -> usize {
        self.ring.len()
    }

    /// Forgets every stored message, keeping the room and its seq: a
    /// later `since` from before now gets a reset.
    pub fn forget_history(&mut self) -> usize {
        let freed = self.bytes;
        self.ring.clear();
        self.sent.clear();
        self.bytes = 0;
        freed
    }

    pub fn is_private(&self) -> bool {
        self.members.is_some()
    }

    /// Whether no socket anywhere on this node is in the room.
    pub fn is_idle(&self) -> bool {
        self.interest.iter().all(|n| *n == 0) && self.online.is_empty()
    }

    /// Messages after `since`, or the latest `page` with `reset` when the
    /// ring no longer reaches back to `since + 1` or `since` is in the future.
    pub fn backlog(&self, since: Option<u64>, page: usize) -> (Vec<Frame>, bool) {
        let oldest = self.ring.front().map_or(self.last_seq + 1, |m| m.seq);
        match since {
            Some(s) if s <= self.last_seq && s + 1 >= oldest => (self.after(s), false),
            Some(_) => (self.latest(page), true),
            None => (self.latest(page), false),
        }
    }

    fn after(&self, since: u64) -> Vec<Frame> {
        self.ring
            .iter()
            .filter(|m| m.seq > since)
            .map(|m| m.frame.clone())
            .collect()
    }

    fn latest(&self, n: usize) -> Vec<Frame> {
        let skip = self.ring.len().saturating_sub(n);
        self.ring
            .iter()
            .skip(skip)
            .map(|m| m.frame.clone())
            .collect()
    }

    /// Up to `limit` messages before `before` (default: all), oldest first,
    /// and whether older ones remain.
    pub fn page(&self, before: Option<u64>, limit: usize) -> (Vec<Frame>, bool) {
        let end = match before {
            Some(b) => self.ring.partition_point(|m| m.seq < b),
            None => self.ring.len(),
        };
        let start = end.saturating_sub(limit);
        let page = self
            .ring
            .range(start..end)
            .map(|m| m.frame.clone())
            .collect();
        (page, start > 0)
    }

    /// Counts a socket of `user` in; true if the user just came online.
    pub fn enter(&mut self, user: &Arc<str>) -> bool {
        let n = self.online.entry(user.clone()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Counts a socket of `user` out; true if the user just went offline.
    pub fn exit(&mut self, user: &Arc<str>) -> bool {
        match self.online.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.online.remove(user);
                true
            }
            None => false,
        }
    }

    /// Users online, sorted, for `joined`.
    pub fn online_users(&self) -> Vec<Arc<str>> {
        let mut users: Vec<Arc<str>> = self.online.keys().cloned().collect();
        users.sort();
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Frame {
        Arc::from(n.to_be_bytes().as_slice())
    }

    #[test]
    fn the_ring_forgets_old_messages_and_their_cids() {
        let mut r = Room::new(1, Arc::from("e"));
        let u: Arc<str> = Arc::from("u");
        for seq in 1..=5 {
            r.store(seq, frame(seq), u.clone(), format!("c{seq}").into(), 3);
        }
        assert_eq!(r.seq_of(&u, "c5"), Some(5));
        assert_eq!(r.seq_of(&u, "c2"), None, "evicted with its message");
        assert_eq!(
            r.backlog(Some(2), 2),
            (vec![frame(3), frame(4), frame(5)], false)
        );
        assert_eq!(r.backlog(Some(1), 2), (vec![frame(4), frame(5)], true));
        assert_eq!(r.backlog(Some(9), 1), (vec![frame(5)], true));
        assert_eq!(r.page(Some(5), 1), (vec![frame(4)], true));
    }

    #[test]
    fn presence_counts_sockets_per_user() {
        let mut r = Room::new(1, Arc::from("e"));
        let a: Arc<str> = Arc::from("a");
        assert!(r.enter(&a));
        assert!(!r.enter(&a), "a second tab is not news");
        assert!(!r.exit(&a));
        assert!(r.exit(&a));
        assert!(!r.exit(&a));
    }

    #[test]
    fn private_rooms_admit_members_only() {
        let mut r = Room::new(1, Arc::from("e"));
        assert!(r.admits("anyone"));
        r.members = Some([Arc::from("owner")].into_iter().collect());
        assert!(r.admits("owner") && !r.admits("anyone"));
    }
}
