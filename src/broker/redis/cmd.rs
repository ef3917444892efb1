//! The command thread: stores and publishes messages (one script call
//! each, pipelined in batches), reads history pages, creates rooms and
//! invites, lists rooms, relays typing notices, and keeps this node's
//! presence lease. Answers go straight to the asking reactor's inbox; an
//! ack is sent only for a script call Redis has answered, and anything else
//! gets `unavailable`, which is safe to retry with the same cid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{RedisResult, Value};

use super::entry::parse_entries;
use super::keys::{self, channel, RoomKeys};
use super::link::Link;
use super::scripts;
use crate::broker::memory::now_ms;
use crate::broker::{
    ConnRef, CreateRequest, HistoryRequest, InviteRequest, PublishRequest, RoomName, RoomsRequest,
};
use crate::chat::request::ReqId;
use crate::chat::wire::{self, RoomInfo};
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Acked, Event, History, Inbox};

/// Requests taken into one pipeline at most.
const MAX_BATCH: usize = 512;
/// How often an idle command thread checks that Redis is there.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// How often the lease is renewed and dead nodes are looked for.
const LEASE_EVERY: Duration = Duration::from_secs(2);
/// Seconds a lease outlives its last renewal: how long a dead node's users
/// can still look online elsewhere.
pub const LEASE_SECS: u64 = 6;
/// Rooms a `rooms` reply lists at most.
const MAX_LISTED: usize = 500;

pub enum Command {
    Publish(PublishRequest),
    History(HistoryRequest),
    Create(CreateRequest),
    Invite(InviteRequest),
    Rooms(RoomsRequest),
    Typing(RoomName, Arc<str>),
}

pub struct CmdThread {
    pub link: Link,
    pub rx: Receiver<Command>,
    pub inboxes: Vec<Arc<Inbox>>,
    pub history_size: usize,
    /// Members a private room may have (invitations past it: `room_full`).
    pub max_room_members: usize,
    pub up: Arc<AtomicBool>,
    pub node: Arc<str>,
}

impl CmdThread {
    pub fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut next_lease = Instant::now();
        loop {
            if Instant::now() >= next_lease {
                next_lease = Instant::now() + LEASE_EVERY;
                self.maintain();
            }
            let first = match self.rx.recv_timeout(IDLE_CHECK) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    self.check();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.run_batch(&mut batch);
            self.up.store(self.link.is_up(), Ordering::Relaxed);
        }
    }

    /// While idle: reconnect if due, and notice a dead Redis by PING, so
    /// readiness reflects Redis even when nobody is sending.
    fn check(&mut self) {
        let _: Option<String> = self.link.run(|con| redis::cmd("PING").query(con));
        self.up.store(self.link.is_up(), Ordering::Relaxed);
    }

    /// Renews this node's lease and reaps the presence of nodes whose
    /// lease has expired, so a dead node's users leave everyone's lists.
    fn maintain(&mut self) {
        let node = self.node.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys::lease(&node))
            .arg(1)
            .arg("EX")
            .arg(LEASE_SECS)
            .ignore();
        pipe.cmd("SADD").arg(keys::NODES).arg(&*node).ignore();
        pipe.cmd("SMEMBERS").arg(keys::NODES);
        let Some((nodes,)): Option<(Vec<String>,)> = self.link.run(|con| pipe.query(con)) else {
            return;
        };
        for other in nodes.iter().filter(|n| **n != *node) {
            let mut exists = redis::cmd("EXISTS");
            exists.arg(keys::lease(other));
            if self.link.run(|con| exists.query::<i64>(con)) != Some(0) {
                continue;
            }
            log::info!("redis: node {other} lost its lease; clearing its presence");
            let reap = &scripts::all().reap;
            let mut call = reap.prepare_invoke();
            call.key(keys::NODES)
                .key(keys::node_rooms(other))
                .arg(other.as_str());
            let _: Option<i64> = self.link.run(|con| call.invoke(con));
        }
    }

    fn run_batch(&mut self, batch: &mut Vec<Command>) {
        let epoch = crate::broker::random_id();
        let s = scripts::all();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for command in batch.iter() {
            match command {
                Command::Publish(p) => {
                    let k = RoomKeys::new(&p.room);
                    pipe.cmd("EVALSHA")
                        .arg(s.send.get_hash())
                        .arg(6)
                        .arg(&k.seq)
                        .arg(&k.log)
                        .arg(&k.cids)
                        .arg(&k.epoch)
                        .arg(&k.meta)
                        .arg(&k.members)
                        .arg(&*p.from)
                        .arg(&*p.cid)
                        .arg(&p.text)
                        .arg(now_ms())
                        .arg(self.history_size)
                        .arg(&epoch)
                        .arg(channel(&p.room));
                }
                Command::History(h) => {
                    let k = RoomKeys::new(&h.room);
                    let end = match h.before {
                        Some(b) => format!("({b}-0"),
                        None => "+".to_string(),
                    };
                    pipe.cmd("EVALSHA")
                        .arg(s.history.get_hash())
                        .arg(3)
                        .arg(&k.meta)
                        .arg(&k.members)
                        .arg(&k.log)
                        .arg(&*h.user)
                        .arg(end)
                        .arg(h.limit + 1);
                }
                Command::Create(c) => {
                    let k = RoomKeys::new(&c.room);
                    pipe.cmd("EVALSHA")
                        .arg(s.create.get_hash())
                        .arg(5)
                        .arg(&k.meta)
                        .arg(&k.members)
                        .arg(&k.seq)
                        .arg(keys::PUBLIC_ROOMS)
                        .arg(keys::user_rooms(&c.user))
                        .arg(&*c.user)
                        .arg(if c.private { "1" } else { "0" })
                        .arg(&*c.room);
                }
                Command::Invite(i) => {
                    let k = RoomKeys::new(&i.room);
                    pipe.cmd("EVALSHA")
                        .arg(s.invite.get_hash())
                        .arg(3)
                        .arg(&k.meta)
                        .arg(&k.members)
                        .arg(keys::user_rooms(&i.user))
                        .arg(&*i.by)
                        .arg(&i.user)
                        .arg(&*i.room)
                        .arg(self.max_room_members);
                }
                Command::Rooms(r) => {
                    pipe.cmd("SUNION")
                        .arg(keys::PUBLIC_ROOMS)
                        .arg(keys::user_rooms(&r.user));
                }
                Command::Typing(room, user) => {
                    pipe.cmd("PUBLISH")
                        .arg(channel(room))
                        .arg(format!("T\n{user}"));
                }
            }
        }
        // Retried once on a fresh connection if the old one had died: safe,
        // because the script recognises a cid it has already stored.
        let results: Option<Vec<RedisResult<Value>>> = self.link.run(|con| pipe.query(con));
        let mut results = results.map(Vec::into_iter);
        for command in batch.drain(..) {
            let result = results.as_mut().and_then(Iterator::next);
            self.answer(command, result);
        }
    }

    fn answer(&mut self, command: Command, result: Option<RedisResult<Value>>) {
        let value = match result {
            Some(Ok(value)) => Some(value),
            Some(Err(e)) => {
                log::warn!("redis: script failed: {e}");
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) {
                    // Redis restarted under us or was flushed: reload.
                    self.link.failed();
                }
                None
            }
            None => None,
        };
        match (command, value) {
            (Command::Publish(p), Some(value)) => match int_at(&value, 0) {
                Some(seq) if seq > 0 => {
                    let acked = Acked {
                        to: p.to,
                        room: p.room,
                        cid: p.cid,
                        seq: seq.unsigned_abs(),
                        id: p.id,
                        at: p.at,
                    };
                    self.send(p.to.reactor, Event::Acked(Box::new(acked)));
                }
                Some(_) => self.fail(p.to, p.room, ErrorCode::Forbidden, Some(p.cid), p.id),
                None => self.fail(p.to, p.room, ErrorCode::Unavailable, Some(p.cid), p.id),
            },
            (Command::History(h), Some(Value::Int(_))) => {
                self.fail(h.to, h.room, ErrorCode::Forbidden, None, h.id)
            }
            (Command::History(h), Some(value)) => {
                let mut entries = parse_entries(value);
                let more = entries.len() > h.limit;
                entries.truncate(h.limit);
                entries.reverse();
                let messages = entries.iter().map(|e| e.frame(&h.room)).collect();
                let history = History {
                    to: h.to,
                    room: h.room,
                    messages,
                    more,
                    id: h.id,
                };
                self.send(h.to.reactor, Event::History(Box::new(history)));
            }
            (Command::Create(c), Some(Value::Int(1))) => {
                self.reply(c.to, wire::created(&c.room, c.private, c.id.as_ref()));
            }
            (Command::Create(c), Some(_)) => {
                self.fail(c.to, c.room, ErrorCode::RoomExists, None, c.id)
            }
            (Command::Invite(i), Some(Value::Int(1))) => {
                self.reply(i.to, wire::invited(&i.room, &i.user, i.id.as_ref()));
            }
            (Command::Invite(i), Some(Value::Int(-1))) => {
                self.fail(i.to, i.room, ErrorCode::RoomFull, None, i.id)
            }
            (Command::Invite(i), Some(_)) => {
                self.fail(i.to, i.room, ErrorCode::Forbidden, None, i.id)
            }
            (Command::Rooms(r), Some(value)) => {
                let names: Vec<String> = redis::from_redis_value(value).unwrap_or_default();
                let list = self.describe(names, &r.user);
                self.reply(r.to, wire::rooms(&list, r.id.as_ref()));
            }
            (Command::Typing(..), _) => {}
            (Command::Publish(p), None) => {
                self.fail(p.to, p.room, ErrorCode::Unavailable, Some(p.cid), p.id)
            }
            (Command::History(h), None) => {
                self.fail(h.to, h.room, ErrorCode::Unavailable, None, h.id)
            }
            (Command::Create(c), None) => {
                self.fail(c.to, c.room, ErrorCode::Unavailable, None, c.id)
            }
            (Command::Invite(i), None) => {
                self.fail(i.to, i.room, ErrorCode::Unavailable, None, i.id)
            }
            (Command::Rooms(r), None) => {
                self.fail(r.to, Arc::from(""), ErrorCode::Unavailable, None, r.id)
            }
        }
    }

    /// Privacy and online counts for a room list.
    fn describe(&mut self, mut names: Vec<String>, _user: &str) -> Vec<RoomInfo> {
        // Rooms starting with `_` are the server's own (the canary's).
        names.retain(|n| !n.starts_with('_'));
        names.sort();
        names.truncate(MAX_LISTED);
        let mut pipe = redis::pipe();
        for name in &names {
            let k = RoomKeys::new(name);
            pipe.cmd("HGET").arg(&k.meta).arg("private");
            pipe.cmd("HKEYS").arg(&k.online);
        }
        let facts: Vec<(Option<String>, Vec<String>)> =
            match self.link.run(|con| pipe.query::<Vec<Value>>(con)) {
                Some(values) => values
                    .chunks(2)
                    .map(|pair| {
                        let private = pair
                            .first()
                            .and_then(|v| redis::from_redis_value_ref(v).ok());
                        let online = pair
                            .get(1)
                            .and_then(|v| redis::from_redis_value_ref(v).ok());
                        (private, online.unwrap_or_default())
                    })
                    .collect(),
                None => Vec::new(),
            };
        names
            .into_iter()
            .zip(facts)
            .map(|(room, (private, online))| RoomInfo {
                room,
                private: private.as_deref() == Some("1"),
                online: keys::users_of(&online).len(),
            })
            .collect()
    }

    fn reply(&self, to: ConnRef, frame: Vec<u8>) {
        self.send(to.reactor, Event::Reply(Box::new((to, frame))));
    }

    fn fail(
        &self,
        to: ConnRef,
        room: RoomName,
        code: ErrorCode,
        cid: Option<Box<str>>,
        id: Option<ReqId>,
    ) {
        self.send(to.reactor, Event::failed(to, room, code, cid, id));
    }

    fn send(&self, reactor: usize, event: Event) {
        if let Some(inbox) = self.inboxes.get(reactor) {
            inbox.push(event);
        }
    }
}

/// The integer at `i` of an array reply.
fn int_at(value: &Value, i: usize) -> Option<i64> {
    match value {
        Value::Array(items) => match items.get(i)? {
            Value::Int(n) => Some(*n),
            _ => None,
        },
        _ => None,
    }
}
