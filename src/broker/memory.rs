//! The embedded broker: rooms, sequence numbers and history in process
//! memory, for a single node with nothing else installed.
//!
//! Each room sits behind its own mutex. A publish assigns the seq, stores the
//! encoded frame in the room's ring and queues a `Deliver` to every reactor
//! with members, all under that one lock, so every reactor sees a room's
//! messages in seq order and a `Joined` snapshot never overlaps or misses a
//! live message. History is lost when the process exits; the epoch, fresh at
//! every start, tells reconnecting clients so.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Broker, ConnRef, HistoryRequest, JoinRequest, PublishRequest, RoomName};
use crate::chat::wire::{self, Frame};
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Acked, Event, History, Inbox, Joined, Reply};

/// Sizes the embedded broker keeps to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages kept per room.
    pub history_size: usize,
    /// Messages replayed on a join without `since`.
    pub history_on_join: usize,
    /// Rooms held at once.
    pub max_rooms: usize,
}

pub struct MemoryBroker {
    rooms: Mutex<HashMap<RoomName, Arc<Mutex<Room>>>>,
    inboxes: Vec<Arc<Inbox>>,
    epoch: Arc<str>,
    limits: Limits,
}

struct Stored {
    seq: u64,
    frame: Frame,
    from: Arc<str>,
    cid: Box<str>,
}

#[derive(Default)]
struct Room {
    last_seq: u64,
    ring: VecDeque<Stored>,
    /// (sender, cid) of every message still in the ring, for retries.
    sent: HashMap<(Arc<str>, Box<str>), u64>,
    /// Memberships per reactor.
    interest: Vec<u32>,
}

impl MemoryBroker {
    pub fn new(inboxes: Vec<Arc<Inbox>>, limits: Limits) -> MemoryBroker {
        MemoryBroker {
            rooms: Mutex::new(HashMap::new()),
            inboxes,
            epoch: super::random_id().into(),
            limits,
        }
    }

    /// The room if it exists; `create` makes it unless there are too many.
    fn room(&self, name: &RoomName, create: bool) -> Option<Arc<Mutex<Room>>> {
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return Some(room.clone());
        }
        if !create || rooms.len() >= self.limits.max_rooms {
            return None;
        }
        let room = Arc::new(Mutex::new(Room {
            interest: vec![0; self.inboxes.len()],
            ..Room::default()
        }));
        rooms.insert(name.clone(), room.clone());
        Some(room)
    }

    fn reply(&self, to: ConnRef, event: Event) {
        if let Some(inbox) = self.inboxes.get(to.reactor) {
            inbox.push(event);
        }
    }

    fn fail(
        &self,
        to: ConnRef,
        room: RoomName,
        code: ErrorCode,
        cid: Option<Box<str>>,
        id: Option<crate::chat::request::ReqId>,
    ) {
        self.reply(
            to,
            Event::Failed(Box::new(Reply {
                to,
                room,
                code,
                cid,
                id,
            })),
        );
    }
}

impl Broker for MemoryBroker {
    fn join(&self, req: JoinRequest) {
        let Some(room) = self.room(&req.room, true) else {
            let reply = Reply {
                to: req.to,
                room: req.room,
                code: ErrorCode::Overloaded,
                cid: None,
                id: req.id,
            };
            return self.reply(req.to, Event::JoinFailed(Box::new(reply)));
        };
        let mut room = lock(&room);
        if let Some(n) = room.interest.get_mut(req.to.reactor) {
            *n += 1;
        }
        let same_epoch = req.epoch.as_deref().is_none_or(|e| *e == *self.epoch);
        let (backlog, reset) = room.backlog(
            req.since.filter(|_| same_epoch),
            self.limits.history_on_join,
        );
        let joined = Joined {
            to: req.to,
            room: req.room,
            seq: room.last_seq,
            epoch: self.epoch.clone(),
            reset: reset || (req.since.is_some() && !same_epoch),
            backlog,
            id: req.id,
        };
        // Queued under the room lock: ordered before any later Deliver.
        self.reply(req.to, Event::Joined(Box::new(joined)));
    }

    fn leave(&self, name: &RoomName, reactor: usize) {
        if let Some(room) = self.room(name, false) {
            if let Some(n) = lock(&room).interest.get_mut(reactor) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn publish(&self, req: PublishRequest) {
        let Some(room) = self.room(&req.room, false) else {
            return self.fail(
                req.to,
                req.room,
                ErrorCode::NotJoined,
                Some(req.cid),
                req.id,
            );
        };
        let mut room = lock(&room);
        let key = (req.from, req.cid);
        if let Some(&seq) = room.sent.get(&key) {
            // A retry of a stored message: confirm it again, publish nothing.
            let acked = Acked {
                to: req.to,
                room: req.room,
                cid: key.1,
                seq,
                id: req.id,
                at: req.at,
            };
            return self.reply(req.to, Event::Acked(Box::new(acked)));
        }
        let targets = || {
            room.interest
                .iter()
                .zip(&self.inboxes)
                .filter(|(n, _)| **n > 0)
        };
        if targets().any(|(_, inbox)| inbox.is_full()) {
            return self.fail(req.to, req.room, ErrorCode::Overloaded, Some(key.1), req.id);
        }

        let seq = room.last_seq + 1;
        let ts = now_ms();
        let frame = wire::message(&req.room, seq, &key.0, &req.text, ts, &key.1);
        for (_, inbox) in targets() {
            inbox.push(Event::Deliver {
                room: req.room.clone(),
                frame: frame.clone(),
                ts,
            });
        }
        room.store(seq, frame, key.0, key.1.clone(), self.limits.history_size);
        let acked = Acked {
            to: req.to,
            room: req.room,
            cid: key.1,
            seq,
            id: req.id,
            at: req.at,
        };
        self.reply(req.to, Event::Acked(Box::new(acked)));
    }

    fn history(&self, req: HistoryRequest) {
        let Some(room) = self.room(&req.room, false) else {
            return self.fail(req.to, req.room, ErrorCode::NotJoined, None, req.id);
        };
        let (messages, more) = lock(&room).page(req.before, req.limit);
        let history = History {
            to: req.to,
            room: req.room,
            messages,
            more,
            id: req.id,
        };
        self.reply(req.to, Event::History(Box::new(history)));
    }
}

impl Room {
    fn store(&mut self, seq: u64, frame: Frame, from: Arc<str>, cid: Box<str>, cap: usize) {
        self.last_seq = seq;
        while self.ring.len() >= cap {
            if let Some(old) = self.ring.pop_front() {
                self.sent.remove(&(old.from, old.cid));
            }
        }
        self.sent.insert((from.clone(), cid.clone()), seq);
        self.ring.push_back(Stored {
            seq,
            frame,
            from,
            cid,
        });
    }

    /// Messages after `since`, or the latest `page` with `reset` when the
    /// ring no longer reaches back to `since + 1` or `since` is in the future.
    fn backlog(&self, since: Option<u64>, page: usize) -> (Vec<Frame>, bool) {
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
    fn page(&self, before: Option<u64>, limit: usize) -> (Vec<Frame>, bool) {
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since the Unix epoch, for message timestamps.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
