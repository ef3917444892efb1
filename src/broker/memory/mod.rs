//! The embedded broker: rooms, sequence numbers, history, membership and
//! presence in process memory, for a single node with nothing installed.
//!
//! Each room sits behind its own mutex. A publish assigns the seq, stores the
//! encoded frame in the room's ring and queues a `Deliver` to every reactor
//! with members, all under that one lock, so every reactor sees a room's
//! messages in seq order and a `Joined` snapshot never overlaps or misses a
//! live message. History is lost when the process exits; the epoch, fresh at
//! every start, tells reconnecting clients so.

mod listing;
mod room;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{
    Broker, ConnRef, CreateRequest, HistoryRequest, InviteRequest, JoinRequest, PublishRequest,
    RoomName, RoomsRequest,
};
use crate::chat::request::ReqId;
use crate::chat::wire::{self, Frame, RoomInfo};
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Acked, Event, History, Inbox, Joined, Reply};
use listing::Listing;
use room::Room;

/// Sizes the embedded broker keeps to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages kept per room.
    pub history_size: usize,
    /// Messages replayed on a join without `since`.
    pub history_on_join: usize,
    /// Rooms held at once; past it, the least recently used room nobody
    /// is in is forgotten to make space.
    pub max_rooms: usize,
    /// Bytes of stored messages across all rooms; past it, idle rooms are
    /// forgotten first, then the busiest room's oldest messages.
    pub max_history_bytes: usize,
    /// Private rooms one user may create. Private rooms are never
    /// forgotten (their member list is what keeps others out), so this is
    /// what stops one account from filling `max_rooms` with them.
    pub max_owned_rooms: usize,
    /// Members one private room may have: invitations store names, and
    /// nothing else bounds how many one owner sends.
    pub max_room_members: usize,
}

/// Rooms a `rooms` answer lists at most (the Redis broker's cap too).
const MAX_LISTED: usize = 500;

/// What an eviction is making space for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A room slot (`max_rooms`): only public rooms are forgotten.
    Slot,
    /// History bytes (`max_history_bytes`): a public room is forgotten, a
    /// private one loses its stored messages but stays.
    Bytes,
}

/// Rooms looked at to find one to evict (approximate LRU, as Redis does).
const EVICTION_SAMPLE: usize = 64;

pub struct MemoryBroker {
    rooms: Mutex<HashMap<RoomName, Arc<Mutex<Room>>>>,
    /// Bytes of stored frames in all rooms.
    bytes: std::sync::atomic::AtomicIsize,
    /// A logical clock for least-recently-used eviction.
    tick: std::sync::atomic::AtomicU64,
    inboxes: Vec<Arc<Inbox>>,
    /// This process's epoch; each room's is this plus a count of rooms
    /// made so far.
    epoch: Arc<str>,
    rooms_made: std::sync::atomic::AtomicU64,
    listing: Mutex<Listing>,
    limits: Limits,
}

impl MemoryBroker {
    pub fn new(inboxes: Vec<Arc<Inbox>>, limits: Limits) -> MemoryBroker {
        MemoryBroker {
            rooms: Mutex::new(HashMap::new()),
            bytes: Default::default(),
            tick: Default::default(),
            inboxes,
            epoch: super::random_id().into(),
            rooms_made: Default::default(),
            listing: Default::default(),
            limits,
        }
    }

    /// The room if it exists; `create` makes it unless there are too many.
    fn room(&self, name: &RoomName, create: bool) -> Option<Arc<Mutex<Room>>> {
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return Some(room.clone());
        }
        if !create {
            return None;
        }
        if rooms.len() >= self.limits.max_rooms && !self.evict_one(&mut rooms, Need::Slot) {
            return None;
        }
        let made = self
            .rooms_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let epoch = format!("{}-{made}", self.epoch);
        let room = Arc::new(Mutex::new(Room::new(self.inboxes.len(), epoch.into())));
        rooms.insert(name.clone(), room.clone());
        Some(room)
    }

    fn now(&self) -> u64 {
        self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes space from the least recently used idle room among a sample;
    /// false if no sampled room can give any. The caller holds the map
    /// lock; room locks are only tried, never waited for.
    fn evict_one(&self, rooms: &mut HashMap<RoomName, Arc<Mutex<Room>>>, need: Need) -> bool {
        let gives = |room: &Room| {
            room.is_idle()
                && match need {
                    Need::Slot => !room.is_private(),
                    Need::Bytes => room.bytes > 0,
                }
        };
        let victim = rooms
            .iter()
            .filter_map(|(name, room)| {
                let guard = room.try_lock().ok()?;
                gives(&guard).then(|| (guard.touched, name.clone(), room.clone()))
            })
            .take(EVICTION_SAMPLE)
            .min_by_key(|(touched, _, _)| *touched);
        let Some((_, name, victim)) = victim else {
            return false;
        };
        // Tried, not waited for: a publisher holds its room's lock while it
        // waits for the map lock we hold. Rechecked: it was let go.
        let Ok(mut room) = victim.try_lock() else {
            return false;
        };
        if !gives(&room) {
            return false;
        }
        let freed = if room.is_private() {
            room.forget_history()
        } else {
            rooms.remove(&name);
            lock(&self.listing).remove_public(&name);
            room.bytes
        };
        self.bytes.fetch_sub(
            isize::try_from(freed).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        log::debug!("memory broker: evicted an idle room's history to make space");
        true
    }

    /// Brings stored bytes under the budget: idle rooms go first, then the
    /// oldest messages of `busy` (the room being written, already locked).
    fn enforce_budget(&self, busy: &mut Room) {
        let budget = isize::try_from(self.limits.max_history_bytes).unwrap_or(isize::MAX);
        let over = || self.bytes.load(std::sync::atomic::Ordering::Relaxed) > budget;
        while over() {
            let evicted = {
                let mut rooms = lock(&self.rooms);
                self.evict_one(&mut rooms, Need::Bytes)
            };
            if evicted {
                continue;
            }
            if busy.stored() <= 1 {
                break;
            }
            let freed = busy.drop_oldest();
            self.bytes.fetch_sub(
                isize::try_from(freed).unwrap_or(0),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    fn reply(&self, to: ConnRef, event: Event) {
        if let Some(inbox) = self.inboxes.get(to.reactor) {
            inbox.push(event);
        }
    }

    fn frame_to(&self, to: ConnRef, frame: Vec<u8>) {
        self.reply(to, Event::Reply(Box::new((to, frame))));
    }

    fn fail(
        &self,
        to: ConnRef,
        room: RoomName,
        code: ErrorCode,
        cid: Option<Box<str>>,
        id: Option<ReqId>,
    ) {
        self.reply(to, Event::failed(to, room, code, cid, id));
    }

    /// A join that did not get in.
    fn refuse_join(&self, req: JoinRequest, code: ErrorCode) {
        let reply = Reply {
            to: req.to,
            room: req.room,
            code,
            cid: None,
            id: req.id,
        };
        self.reply(req.to, Event::JoinFailed(Box::new(reply)));
    }

    /// The inboxes of the reactors with members in `room`.
    fn members_of<'a>(&'a self, room: &'a Room) -> impl Iterator<Item = &'a Arc<Inbox>> + 'a {
        let with_members = room.interest.iter().map(|n| *n > 0);
        self.inboxes
            .iter()
            .zip(with_members)
            .filter_map(|(i, m)| m.then_some(i))
    }

    /// Queues `frame` for every reactor with members in `room`.
    fn broadcast(
        &self,
        room: &Room,
        name: &RoomName,
        frame: Frame,
        droppable: bool,
        skip: Option<Arc<str>>,
    ) {
        for inbox in self.members_of(room) {
            inbox.push(Event::Broadcast {
                room: name.clone(),
                frame: frame.clone(),
                droppable,
                skip: skip.clone(),
            });
        }
    }

    /// Tells every reactor with members in `room` that `user` came online
    /// or went offline there.
    fn announce(&self, room: &Room, name: &RoomName, user: &Arc<str>, online: bool) {
        for inbox in self.members_of(room) {
            inbox.push(Event::Presence {
                room: name.clone(),
                user: user.clone(),
                online,
            });
        }
    }
}

impl Broker for MemoryBroker {
    fn join(&self, req: JoinRequest) {
        let Some(room) = self.room(&req.room, true) else {
            return self.refuse_join(req, ErrorCode::Overloaded);
        };
        let mut room = lock(&room);
        if !room.admits(&req.user) {
            return self.refuse_join(req, ErrorCode::Forbidden);
        }
        if !room.used {
            room.used = true;
            lock(&self.listing).add_public(&req.room);
        }
        room.touched = self.now();
        if let Some(n) = room.interest.get_mut(req.to.reactor) {
            *n += 1;
        }
        let came_online = room.enter(&req.user);
        let same_epoch = req.epoch.as_deref().is_none_or(|e| *e == *room.epoch);
        let since = req.since.filter(|_| same_epoch);
        let (backlog, reset) = room.backlog(since, self.limits.history_on_join);
        let joined = Joined {
            to: req.to,
            room: req.room.clone(),
            user: req.user.clone(),
            seq: room.last_seq,
            epoch: room.epoch.clone(),
            reset: reset || (req.since.is_some() && !same_epoch),
            backlog,
            online: room.online_users(),
            id: req.id,
        };
        // Queued under the room lock: ordered before any later Deliver.
        self.reply(req.to, Event::Joined(Box::new(joined)));
        if came_online {
            self.announce(&room, &req.room, &req.user, true);
        }
    }

    fn leave(&self, name: &RoomName, reactor: usize, user: &Arc<str>) {
        let Some(room) = self.room(name, false) else {
            return;
        };
        let mut room = lock(&room);
        if let Some(n) = room.interest.get_mut(reactor) {
            *n = n.saturating_sub(1);
        }
        if room.exit(user) {
            self.announce(&room, name, user, false);
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
        if !room.admits(&req.from) {
            // Checked on every message, not only at join.
            return self.fail(
                req.to,
                req.room,
                ErrorCode::Forbidden,
                Some(req.cid),
                req.id,
            );
        }
        if let Some(seq) = room.seq_of(&req.from, &req.cid) {
            // A retry of a stored message: confirm it again, publish nothing.
            let acked = Acked {
                to: req.to,
                room: req.room,
                cid: req.cid,
                seq,
                id: req.id,
                at: req.at,
            };
            return self.reply(req.to, Event::Acked(Box::new(acked)));
        }
        if self.members_of(&room).any(|inbox| inbox.is_full()) {
            return self.fail(
                req.to,
                req.room,
                ErrorCode::Overloaded,
                Some(req.cid),
                req.id,
            );
        }

        let seq = room.last_seq + 1;
        let ts = now_ms();
        let frame = wire::message(&req.room, seq, &req.from, &req.text, ts, &req.cid);
        for inbox in self.members_of(&room) {
            inbox.push(Event::Deliver {
                room: req.room.clone(),
                frame: frame.clone(),
                ts,
            });
        }
        room.touched = self.now();
        let grown = room.store(
            seq,
            frame,
            req.from,
            req.cid.clone(),
            self.limits.history_size,
        );
        self.bytes
            .fetch_add(grown, std::sync::atomic::Ordering::Relaxed);
        self.enforce_budget(&mut room);
        let acked = Acked {
            to: req.to,
            room: req.room,
            cid: req.cid,
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
        let room = lock(&room);
        if !room.admits(&req.user) {
            return self.fail(req.to, req.room, ErrorCode::Forbidden, None, req.id);
        }
        let (messages, more) = room.page(req.before, req.limit);
        let history = History {
            to: req.to,
            room: req.room,
            messages,
            more,
            id: req.id,
        };
        self.reply(req.to, Event::History(Box::new(history)));
    }

    fn create(&self, req: CreateRequest) {
        let Some(room) = self.room(&req.room, true) else {
            return self.fail(req.to, req.room, ErrorCode::Overloaded, None, req.id);
        };
        let mut room = lock(&room);
        if room.used {
            return self.fail(req.to, req.room, ErrorCode::RoomExists, None, req.id);
        }
        let mut listing = lock(&self.listing);
        if req.private {
            if listing.owned_by(&req.user) >= self.limits.max_owned_rooms {
                return self.fail(req.to, req.room, ErrorCode::TooManyRooms, None, req.id);
            }
            listing.add_private(&req.room, &req.user);
            room.members = Some([req.user.clone()].into_iter().collect());
        } else {
            listing.add_public(&req.room);
        }
        drop(listing);
        room.used = true;
        room.touched = self.now();
        room.owner = Some(req.user);
        self.frame_to(
            req.to,
            wire::created(&req.room, req.private, req.id.as_ref()),
        );
    }

    fn invite(&self, req: InviteRequest) {
        let room = self.room(&req.room, false);
        let mut room = room.as_ref().map(|r| lock(r));
        let allowed = room
            .as_ref()
            .is_some_and(|r| r.members.is_some() && r.owner.as_deref() == Some(&*req.by));
        match room
            .as_mut()
            .and_then(|r| r.members.as_mut())
            .filter(|_| allowed)
        {
            Some(members)
                if members.len() >= self.limits.max_room_members
                    && !members.contains(req.user.as_str()) =>
            {
                self.fail(req.to, req.room, ErrorCode::RoomFull, None, req.id)
            }
            Some(members) => {
                let user: Arc<str> = Arc::from(req.user.as_str());
                lock(&self.listing).add_member(&req.room, &user);
                members.insert(user);
                self.frame_to(req.to, wire::invited(&req.room, &req.user, req.id.as_ref()));
            }
            None => self.fail(req.to, req.room, ErrorCode::Forbidden, None, req.id),
        }
    }

    fn rooms(&self, req: RoomsRequest) {
        let names = lock(&self.listing).visible(&req.user, MAX_LISTED);
        let rooms: Vec<(RoomName, Arc<Mutex<Room>>)> = {
            let map = lock(&self.rooms);
            let found = names
                .into_iter()
                .filter_map(|n| Some((n.clone(), map.get(&n)?.clone())));
            found.collect()
        };
        let list: Vec<RoomInfo> = rooms
            .into_iter()
            .filter_map(|(name, room)| {
                let room = lock(&room);
                room.admits(&req.user).then(|| RoomInfo {
                    room: name.to_string(),
                    private: room.is_private(),
                    online: room.online.len(),
                })
            })
            .collect();
        self.frame_to(req.to, wire::rooms(&list, req.id.as_ref()));
    }

    fn typing(&self, name: &RoomName, user: &Arc<str>) {
        let Some(room) = self.room(name, false) else {
            return;
        };
        let room = lock(&room);
        if room.admits(user) {
            let frame = wire::typing(name, user);
            self.broadcast(&room, name, frame, true, Some(user.clone()));
        }
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
