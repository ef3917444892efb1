//! The subscriber thread: owns the pub/sub connection and the per-room
//! delivery order of this node.
//!
//! For each room with local members it knows `delivered`, the last seq
//! handed to the reactors. Live messages are delivered strictly in seq
//! order: an old or repeated seq is dropped, a jump is first filled from the
//! room's history stream (pub/sub is at-most-once). Joins are handled here
//! too, so a join's backlog ends exactly at `delivered` and the live stream
//! continues from there: no gap, no duplicate.
//!
//! When the subscription breaks (Redis restart, failover, output-buffer
//! limit), the thread reconnects with back-off, resubscribes every room
//! and backfills each from its stream. If a room's epoch changed, Redis
//! lost its data: local members are told to reconnect (they then get
//! `reset` on join) instead of being handed a silent gap. The same happens
//! when a gap or a backfill is no longer whole in the stream (trimmed past
//! `delivered + 1`): a fill is delivered only if it is every seq from
//! `delivered + 1` on, without holes. If a room's seq went backwards under
//! an unchanged epoch (Redis lost its last messages but kept the epoch
//! key), the room first gets a new epoch in Redis: see `recover`.

mod batch;
mod flow;
mod recover;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use redis::{Client, PubSub, RedisResult, Value};

use super::entry::{parse_entries, parse_published, Entry};
use super::keys::{channel, room_of, RoomKeys};
use super::link::{is_timeout, jitter, Link, IO_TIMEOUT};
use super::presence::Presence;
use super::scripts;
use crate::auth::store::{Revocations, REVOKED_CHANNEL, REVOKED_KEY};
use crate::broker::{JoinRequest, RoomName};
use crate::chat::wire;
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Event, Inbox, Joined, Reply};
use flow::Gate;

/// How long a pub/sub read waits before control requests are looked at.
/// Only for polling: (un)subscribe replies get `IO_TIMEOUT` (see
/// `with_io_timeout`).
const POLL: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

pub enum Control {
    Join(JoinRequest),
    Leave(RoomName, usize, Arc<str>),
}

struct Room {
    delivered: u64,
    /// `Entry::tag` of the message at `delivered`, once this node has seen
    /// it: another message there later means the seq was reused.
    last: Option<u64>,
    /// The highest seq read from the room's channel since subscribing (or
    /// the last reset). Pub/sub carries a room's messages in the order the
    /// send script ran, each seq above the one before, so a seq at or
    /// below it means the room's counter went backwards.
    live: u64,
    /// The seq went backwards under an unchanged epoch: nothing more is
    /// delivered until `catch_up` has given the room a new epoch.
    rolled_back: bool,
    epoch: Option<String>,
    interest: Vec<u32>,
    /// Not caught up with the stream yet: just resubscribed, or a gap
    /// could not be read. `SubThread::retry_stalled` backfills it while
    /// the reactors keep up; live messages wait until then.
    stalled: bool,
}

impl Room {
    fn total(&self) -> u32 {
        self.interest.iter().sum()
    }
}

pub struct SubThread {
    pub client: Client,
    pub side: Link,
    pub rx: Receiver<Control>,
    pub inboxes: Vec<Arc<Inbox>>,
    pub history_on_join: usize,
    pub up: Arc<AtomicBool>,
    pub pending_joins: Arc<AtomicUsize>,
    pub reconnects: Arc<AtomicUsize>,
    /// Logged-out sessions, fed from the revocation channel.
    revoked: Arc<Revocations>,
    presence: Presence,
    rooms: HashMap<RoomName, Room>,
    /// Closed while a reactor is behind (see `flow`).
    gate: Gate,
}

/// Runs a (un)subscribe, whose reply is read on the pub/sub socket, with
/// the command timeout rather than the 2 ms poll: a Redis busy for longer
/// than that is not a broken connection.
fn with_io_timeout<'a, T>(
    pubsub: &mut PubSub<'a>,
    f: impl FnOnce(&mut PubSub<'a>) -> RedisResult<T>,
) -> RedisResult<T> {
    pubsub.set_read_timeout(Some(IO_TIMEOUT))?;
    let result = f(pubsub);
    pubsub.set_read_timeout(Some(POLL))?;
    result
}

/// Why the inner loop ended.
enum Exit {
    Reconnect,
    Shutdown,
}

impl SubThread {
    pub fn new(
        client: Client,
        rx: Receiver<Control>,
        inboxes: Vec<Arc<Inbox>>,
        history_on_join: usize,
        revoked: Arc<Revocations>,
        node: Arc<str>,
    ) -> SubThread {
        SubThread {
            revoked,
            presence: Presence::new(node),
            side: Link::new(client.clone(), scripts::load),
            client,
            rx,
            inboxes,
            history_on_join,
            up: Arc::default(),
            pending_joins: Arc::default(),
            reconnects: Arc::default(),
            rooms: HashMap::new(),
            gate: Gate::default(),
        }
    }

    pub fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        let mut first = true;
        loop {
            let mut con = match self
                .client
                .get_connection_with_timeout(super::link::CONNECT_TIMEOUT)
            {
                Ok(con) => con,
                Err(e) => {
                    if first {
                        log::warn!("redis: subscriber cannot connect ({e}); retrying");
                        first = false;
                    }
                    if self.wait(jitter(backoff)).is_err() {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let mut pubsub = con.as_pubsub();
            if let Err(e) = pubsub
                .set_read_timeout(Some(POLL))
                .and_then(|()| self.resubscribe(&mut pubsub))
            {
                log::warn!("redis: resubscribe failed: {e}");
                if self.wait(jitter(backoff)).is_err() {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            if !first {
                self.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            log::info!("redis: subscriber connected ({} rooms)", self.rooms.len());
            first = false;
            backoff = Duration::from_millis(50);
            self.up.store(true, Ordering::Relaxed);
            let exit = self.serve(&mut pubsub);
            self.up.store(false, Ordering::Relaxed);
            match exit {
                Exit::Shutdown => return,
                Exit::Reconnect => log::warn!("redis: subscriber connection lost; reconnecting"),
            }
        }
    }

    fn serve(&mut self, pubsub: &mut PubSub<'_>) -> Exit {
        loop {
            // Consecutive joins are served as one batch; a leave between
            // them keeps its place in the order.
            let mut joins = Vec::new();
            loop {
                let control = match self.rx.try_recv() {
                    Ok(control) => control,
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return Exit::Shutdown,
                };
                let result = match control {
                    Control::Join(req) => {
                        joins.push(req);
                        Ok(())
                    }
                    leave => self
                        .join_batch(std::mem::take(&mut joins), pubsub)
                        .and_then(|()| self.control(leave, Some(pubsub))),
                };
                if result.is_err() {
                    return Exit::Reconnect;
                }
            }
            if !joins.is_empty() && self.join_batch(joins, pubsub).is_err() {
                return Exit::Reconnect;
            }
            if !self.gate.is_open(&self.inboxes) {
                // A reactor is behind: leave other nodes' messages in
                // Redis rather than in its inbox (see `flow`).
                std::thread::sleep(POLL);
                continue;
            }
            self.retry_stalled();
            match pubsub.get_message() {
                Ok(msg) if msg.get_channel_name() == REVOKED_CHANNEL => {
                    self.on_revoked(msg.get_payload_bytes());
                }
                Ok(msg) => {
                    let Some(room) = room_of(msg.get_channel_name()) else {
                        continue;
                    };
                    let payload = msg.get_payload_bytes().to_vec();
                    self.on_published(room, &payload);
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => {
                    log::debug!("redis: pub/sub read failed: {e}");
                    return Exit::Reconnect;
                }
            }
        }
    }

    /// Waits out a back-off while still answering control requests: joins
    /// fail as `unavailable`, leaves are recorded.
    fn wait(&mut self, d: Duration) -> Result<(), ()> {
        let until = std::time::Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.rx.recv_timeout(left) {
                Ok(control) => {
                    let _ = self.control(control, None);
                }
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => return Err(()),
            }
        }
    }

    /// After (re)connecting: subscribe to every room with local members.
    /// What they missed meanwhile is delivered by `retry_stalled`, room by
    /// room while the reactors keep up, before any live message.
    fn resubscribe(&mut self, pubsub: &mut PubSub<'_>) -> RedisResult<()> {
        let mut channels: Vec<String> = self.rooms.keys().map(|r| channel(r)).collect();
        channels.push(REVOKED_CHANNEL.to_string());
        with_io_timeout(pubsub, |p| p.subscribe(channels))?;
        self.load_revoked();
        self.presence.restore(&mut self.side);
        for room in self.rooms.values_mut() {
            room.stalled = true;
        }
        Ok(())
    }

    fn control(&mut self, control: Control, pubsub: Option<&mut PubSub<'_>>) -> RedisResult<()> {
        match control {
            Control::Join(req) => {
                self.pending_joins.fetch_sub(1, Ordering::Relaxed);
                match pubsub {
                    Some(pubsub) => self.join(req, pubsub),
                    None => {
                        self.refuse(req);
                        Ok(())
                    }
                }
            }
            Control::Leave(room, reactor, user) => {
                self.presence.exit(&mut self.side, &room, &user);
                self.leave(&room, reactor, pubsub)
            }
        }
    }

    fn join(&mut self, req: JoinRequest, pubsub: &mut PubSub<'_>) -> RedisResult<()> {
        match self.access(&req.room, &req.user) {
            Some(true) => {}
            Some(false) => {
                self.refuse_with(req, ErrorCode::Forbidden);
                return Ok(());
            }
            None => {
                self.refuse(req);
                return Ok(());
            }
        }
        if !self.rooms.contains_key(&req.room) {
            if let Err(e) = with_io_timeout(pubsub, |p| p.subscribe(channel(&req.room))) {
                self.refuse(req);
                return Err(e);
            }
            let Some((seq, epoch)) = self.head(&req.room) else {
                let _ = with_io_timeout(pubsub, |p| p.unsubscribe(channel(&req.room)));
                self.refuse(req);
                return Ok(());
            };
            let room = Room {
                delivered: seq,
                last: None,
                live: 0,
                rolled_back: false,
                epoch,
                interest: vec![0; self.inboxes.len()],
                stalled: false,
            };
            self.rooms.insert(req.room.clone(), room);
        }
        let Some(room) = self.rooms.get(&req.room) else {
            return Ok(());
        };
        let (delivered, epoch) = (room.delivered, room.epoch.clone());
        let same_epoch = match (&req.epoch, &epoch) {
            (Some(asked), Some(known)) => asked == known,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let backlog = match req.since {
            Some(since) if same_epoch && since <= delivered => {
                self.range(&req.room, since, delivered).map(|b| {
                    let complete = recover::is_complete(&b, since, delivered);
                    (b, !complete)
                })
            }
            _ => None,
        };
        let (entries, reset) = match backlog {
            Some((entries, false)) => (Some(entries), false),
            _ => (self.latest(&req.room, delivered), req.since.is_some()),
        };
        let Some(entries) = entries else {
            let name = req.room.clone();
            self.refuse(req);
            return self.drop_if_unused(&name, Some(pubsub));
        };
        self.note_last(&req.room, &entries);
        let Some(online) = self.presence.enter(&mut self.side, &req.room, &req.user) else {
            let name = req.room.clone();
            self.refuse(req);
            return self.drop_if_unused(&name, Some(pubsub));
        };
        if let Some(room) = self.rooms.get_mut(&req.room) {
            if let Some(n) = room.interest.get_mut(req.to.reactor) {
                *n += 1;
            }
        }
        let joined = Joined {
            to: req.to,
            user: req.user.clone(),
            online,
            backlog: entries.iter().map(|e| e.frame(&req.room)).collect(),
            room: req.room,
            seq: delivered,
            epoch: epoch.unwrap_or_default().into(),
            reset,
            id: req.id,
        };
        self.send(joined.to.reactor, Event::Joined(Box::new(joined)));
        Ok(())
    }

    fn leave(
        &mut self,
        name: &RoomName,
        reactor: usize,
        pubsub: Option<&mut PubSub<'_>>,
    ) -> RedisResult<()> {
        if let Some(room) = self.rooms.get_mut(name) {
            if let Some(n) = room.interest.get_mut(reactor) {
                *n = n.saturating_sub(1);
            }
        }
        self.drop_if_unused(name, pubsub)
    }

    /// Forgets a room nobody here is in any more, and unsubscribes.
    fn drop_if_unused(
        &mut self,
        name: &RoomName,
        pubsub: Option<&mut PubSub<'_>>,
    ) -> RedisResult<()> {
        if self.rooms.get(name).is_some_and(|r| r.total() == 0) {
            self.rooms.remove(name);
            if let Some(pubsub) = pubsub {
                with_io_timeout(pubsub, |p| p.unsubscribe(channel(name)))?;
            }
        }
        Ok(())
    }

    fn refuse(&self, req: JoinRequest) {
        self.refuse_with(req, ErrorCode::Unavailable);
    }

    fn refuse_with(&self, req: JoinRequest, code: ErrorCode) {
        let reply = Reply {
            to: req.to,
            room: req.room,
            code,
            cid: None,
            id: req.id,
        };
        self.send(reply.to.reactor, Event::JoinFailed(Box::new(reply)));
    }

    /// Whether `user` may enter the room (`None`: Redis unreachable).
    fn access(&mut self, room: &str, user: &str) -> Option<bool> {
        let k = RoomKeys::new(room);
        let mut call = scripts::all().access.prepare_invoke();
        call.key(&k.meta)
            .key(&k.members)
            .key(super::keys::PUBLIC_ROOMS)
            .arg(user)
            .arg(room);
        self.side.run(|con| call.invoke::<i64>(con)).map(|n| n == 1)
    }

    /// Presence ("P\n1\nuser") and typing ("T\nuser") notices: passed to
    /// local members as they come, outside the room's sequence.
    fn on_notice(&mut self, name: &str, payload: &[u8]) {
        let Some((key, room)) = self.rooms.get_key_value(name) else {
            return;
        };
        let text = String::from_utf8_lossy(payload);
        let event: Box<dyn Fn() -> Event> = if let Some(rest) = text.strip_prefix("P\n") {
            let Some((state, user)) = rest.split_once('\n') else {
                return;
            };
            let (user, online) = (Arc::<str>::from(user), state == "1");
            Box::new(move || Event::Presence {
                room: key.clone(),
                user: user.clone(),
                online,
            })
        } else if let Some(user) = text.strip_prefix("T\n") {
            let (frame, user) = (wire::typing(key, user), Arc::<str>::from(user));
            Box::new(move || Event::Broadcast {
                room: key.clone(),
                frame: frame.clone(),
                droppable: true,
                skip: Some(user.clone()),
            })
        } else {
            return;
        };
        for (inbox, n) in self.inboxes.iter().zip(&room.interest) {
            if *n > 0 {
                inbox.push(event());
            }
        }
    }

    fn on_published(&mut self, name: &str, payload: &[u8]) {
        if payload.starts_with(b"P\n") || payload.starts_with(b"T\n") {
            return self.on_notice(name, payload);
        }
        let Some(published) = parse_published(payload) else {
            log::debug!("redis: unparsable message on room {name}");
            return;
        };
        let Some((key, _)) = self.rooms.get_key_value(name) else {
            return;
        };
        let key = key.clone();
        let Some(room) = self.rooms.get_mut(&key) else {
            return;
        };
        let seq = published.entry.seq;
        let went_back = seq <= room.live;
        room.live = seq;
        if room.epoch.as_ref().is_some_and(|e| *e != published.epoch) {
            return self.reset(&key, seq, Some(published.epoch), "its epoch changed");
        }
        if went_back || room.rolled_back {
            // Not a late duplicate of a backfilled message: those are
            // below `delivered` but still above `live`. The counter went
            // backwards; `catch_up` rotates the epoch at the next turn.
            room.rolled_back = true;
            room.stalled = true;
            return;
        }
        if seq <= room.delivered {
            return;
        }
        if seq > room.delivered + 1 {
            let from = room.delivered;
            let Some(missed) = self.range(&key, from, seq - 1) else {
                // Never deliver past a hole: wait until the stream (which
                // holds this message too) can be read.
                log::warn!("redis: cannot fill gap {}..{seq} yet", from + 1);
                if let Some(room) = self.rooms.get_mut(&key) {
                    room.stalled = true;
                }
                return;
            };
            if !recover::is_complete(&missed, from, seq - 1) {
                let epoch = Some(published.epoch);
                return self.reset(&key, seq, epoch, "the stream no longer holds a gap");
            }
            for entry in missed {
                self.deliver(&key, &entry);
            }
        }
        if let Some(room) = self.rooms.get_mut(&key) {
            room.epoch = Some(published.epoch);
        }
        self.deliver(&key, &published.entry);
    }

    fn deliver(&mut self, name: &RoomName, entry: &Entry) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if entry.seq <= room.delivered {
            return;
        }
        room.delivered = entry.seq;
        room.last = Some(entry.tag());
        let frame = entry.frame(name);
        for (inbox, n) in self.inboxes.iter().zip(&room.interest) {
            if *n > 0 {
                inbox.push(Event::Deliver {
                    room: name.clone(),
                    frame: frame.clone(),
                    ts: entry.ts,
                });
            }
        }
    }

    /// The room's last seq and epoch, from the side connection.
    fn head(&mut self, name: &str) -> Option<(u64, Option<String>)> {
        let keys = RoomKeys::new(name);
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&keys.seq).arg(&keys.epoch);
        let (seq, epoch): (Option<u64>, Option<String>) = self.side.run(|con| cmd.query(con))?;
        Some((seq.unwrap_or(0), epoch))
    }

    /// Entries with `after < seq <= upto`, oldest first.
    fn range(&mut self, name: &str, after: u64, upto: u64) -> Option<Vec<Entry>> {
        if upto <= after {
            return Some(Vec::new());
        }
        let start = format!("{}-0", after + 1);
        let end = format!("{upto}-0");
        self.read(
            redis::cmd("XRANGE")
                .arg(RoomKeys::new(name).log)
                .arg(start)
                .arg(end),
        )
    }

    /// The most recent page up to `upto`, oldest first.
    fn latest(&mut self, name: &str, upto: u64) -> Option<Vec<Entry>> {
        if self.history_on_join == 0 || upto == 0 {
            return Some(Vec::new());
        }
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(RoomKeys::new(name).log)
            .arg(format!("{upto}-0"))
            .arg("-")
            .arg("COUNT")
            .arg(self.history_on_join);
        let mut entries = self.read(&mut cmd)?;
        entries.reverse();
        Some(entries)
    }

    fn read(&mut self, cmd: &mut redis::Cmd) -> Option<Vec<Entry>> {
        let value: Value = self.side.run(|con| cmd.query(con))?;
        Some(parse_entries(value))
    }

    /// Loads every revocation that has not expired (after subscribing, so
    /// none announced meanwhile is missed).
    fn load_revoked(&mut self) {
        let now = crate::auth::unix_now();
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(REVOKED_KEY).arg(now).arg("+inf").arg("WITHSCORES");
        let entries: Option<Vec<(String, u64)>> = self.side.run(|con| cmd.query(con));
        for (sid, expires) in entries.unwrap_or_default() {
            self.revoked.insert(&sid, expires);
        }
        self.revoked.purge(now);
    }

    /// "sid expires" from another node's log-out.
    fn on_revoked(&mut self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        if let Some((sid, expires)) = text.split_once(' ') {
            if let Ok(expires) = expires.parse() {
                self.revoked.insert(sid, expires);
            }
        }
    }

    fn send(&self, reactor: usize, event: Event) {
        if let Some(inbox) = self.inboxes.get(reactor) {
            inbox.push(event);
        }
    }
}
