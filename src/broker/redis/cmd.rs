//! The command thread: stores and publishes messages (one script call
//! each, pipelined in batches) and reads history pages. Answers go straight
//! to the asking reactor's inbox; an ack is sent only for a script call
//! Redis has answered, and anything else gets `unavailable`, which is safe
//! to retry with the same cid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use redis::{Connection, RedisResult, Script, Value};

use super::entry::parse_entries;
use super::keys::{channel, RoomKeys, SEND_SCRIPT};
use super::link::Link;
use crate::broker::memory::now_ms;
use crate::broker::{HistoryRequest, PublishRequest};
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Acked, Event, History, Inbox, Reply};

/// Requests taken into one pipeline at most.
const MAX_BATCH: usize = 512;
/// How often an idle command thread checks that Redis is there.
const IDLE_CHECK: Duration = Duration::from_millis(500);

pub enum Command {
    Publish(PublishRequest),
    History(HistoryRequest),
}

pub struct CmdThread {
    pub link: Link,
    pub rx: Receiver<Command>,
    pub inboxes: Vec<Arc<Inbox>>,
    pub history_size: usize,
    pub up: Arc<AtomicBool>,
}

pub fn load_script(con: &mut Connection) -> RedisResult<()> {
    Script::new(SEND_SCRIPT).load(con).map(drop)
}

impl CmdThread {
    pub fn run(mut self) {
        let script = Script::new(SEND_SCRIPT);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
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
            self.run_batch(&mut batch, script.get_hash());
            self.up.store(self.link.is_up(), Ordering::Relaxed);
        }
    }

    /// While idle: reconnect if due, and notice a dead Redis by PING, so
    /// readiness reflects Redis even when nobody is sending.
    fn check(&mut self) {
        let _: Option<String> = self.link.run(|con| redis::cmd("PING").query(con));
        self.up.store(self.link.is_up(), Ordering::Relaxed);
    }

    fn run_batch(&mut self, batch: &mut Vec<Command>, hash: &str) {
        let epoch = crate::broker::random_id();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for command in batch.iter() {
            match command {
                Command::Publish(p) => {
                    let keys = RoomKeys::new(&p.room);
                    pipe.cmd("EVALSHA")
                        .arg(hash)
                        .arg(4)
                        .arg(&keys.seq)
                        .arg(&keys.log)
                        .arg(&keys.cids)
                        .arg(&keys.epoch)
                        .arg(&*p.from)
                        .arg(&*p.cid)
                        .arg(&p.text)
                        .arg(now_ms())
                        .arg(self.history_size)
                        .arg(&epoch)
                        .arg(channel(&p.room));
                }
                Command::History(h) => {
                    let end = match h.before {
                        Some(b) => format!("({b}-0"),
                        None => "+".to_string(),
                    };
                    pipe.cmd("XREVRANGE")
                        .arg(RoomKeys::new(&h.room).log)
                        .arg(end)
                        .arg("-")
                        .arg("COUNT")
                        .arg(h.limit + 1);
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
        match (command, result) {
            (Command::Publish(p), Some(Ok(value))) => match parse_sent(value) {
                Some(seq) => {
                    let acked = Acked {
                        to: p.to,
                        room: p.room,
                        cid: p.cid,
                        seq,
                        id: p.id,
                        at: p.at,
                    };
                    self.send(p.to.reactor, Event::Acked(Box::new(acked)));
                }
                None => self.unavailable(p.to, p.room, Some(p.cid), p.id),
            },
            (Command::Publish(p), other) => {
                if let Some(Err(e)) = other {
                    log::warn!("redis: send script failed: {e}");
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) {
                        // Redis restarted under us or was flushed: reload.
                        self.link.failed();
                    }
                }
                self.unavailable(p.to, p.room, Some(p.cid), p.id);
            }
            (Command::History(h), Some(Ok(value))) => {
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
            (Command::History(h), _) => self.unavailable(h.to, h.room, None, h.id),
        }
    }

    fn unavailable(
        &self,
        to: crate::broker::ConnRef,
        room: crate::broker::RoomName,
        cid: Option<Box<str>>,
        id: Option<crate::chat::request::ReqId>,
    ) {
        let reply = Reply {
            to,
            room,
            code: ErrorCode::Unavailable,
            cid,
            id,
        };
        self.send(to.reactor, Event::Failed(Box::new(reply)));
    }

    fn send(&self, reactor: usize, event: Event) {
        if let Some(inbox) = self.inboxes.get(reactor) {
            inbox.push(event);
        }
    }
}

/// The seq from the send script's reply {seq, epoch, retry}.
fn parse_sent(value: Value) -> Option<u64> {
    let Value::Array(items) = value else {
        return None;
    };
    match items.first()? {
        Value::Int(seq) => u64::try_from(*seq).ok(),
        _ => None,
    }
}
