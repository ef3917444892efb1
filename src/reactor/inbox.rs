//! A reactor's inbox: the one way other threads (the broker, other
//! reactors, the Redis bridge, the signal thread) reach a reactor.
//!
//! A mutex-guarded `Vec` swapped out whole by the owning reactor, plus a
//! `mio::Waker`. A sender wakes the reactor only when it turns the queue
//! from empty to non-empty, so a burst of deliveries costs one wake-up, and
//! the reactor takes everything queued in one lock acquisition.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use crate::broker::{ConnRef, RoomName};
use crate::chat::request::ReqId;
use crate::chat::wire::Frame;
use crate::chat::ErrorCode;

/// Something for a reactor to do.
#[derive(Debug)]
pub enum Event {
    /// A room message for every local member of `room`; `ts` is the
    /// message's timestamp (ms since the Unix epoch), for fan-out latency.
    Deliver {
        room: RoomName,
        frame: Frame,
        ts: u64,
    },
    /// A join succeeded; membership starts with this event.
    Joined(Box<Joined>),
    /// A join was refused; the broker holds no membership for it.
    JoinFailed(Box<Reply>),
    /// A published message was stored as `seq`.
    Acked(Box<Acked>),
    /// A history page.
    History(Box<History>),
    /// A request failed after it reached the broker.
    Failed(Box<Reply>),
    /// A frame for every local member of `room` (typing): not part of the
    /// room's sequence. `droppable` frames are skipped for a member whose
    /// socket is backed up; `skip` names a user who does not get it (the
    /// typist).
    Broadcast {
        room: RoomName,
        frame: Frame,
        droppable: bool,
        skip: Option<Arc<str>>,
    },
    /// `user`'s first socket entered `room` (`online`) or their last one
    /// left it, anywhere; local members hear of it in the room's next
    /// presence frame.
    Presence {
        room: RoomName,
        user: Arc<str>,
        online: bool,
    },
    /// A reply frame for one connection.
    Reply(Box<(ConnRef, Vec<u8>)>),
    /// An auth worker's answer to a waiting HTTP request.
    HttpReply(Box<HttpReply>),
    /// The room's stored history changed under its members (Redis lost
    /// data): close them with 1012 so they rejoin and get `reset`.
    RoomReset { room: RoomName },
    /// Stop accepting, close every connection with 1001, exit.
    Shutdown,
    /// Begin a drain (SIGTERM): stop accepting after `drain_delay_ms`,
    /// then close connections with 1012 spread over `drain_window_ms`.
    Drain,
}

#[derive(Debug)]
pub struct HttpReply {
    pub to: ConnRef,
    /// A complete HTTP response.
    pub bytes: Vec<u8>,
    pub keep_alive: bool,
}

#[derive(Debug)]
pub struct Joined {
    pub to: ConnRef,
    pub room: RoomName,
    /// Who joined (to undo the join if the connection is gone).
    pub user: Arc<str>,
    pub seq: u64,
    pub epoch: Arc<str>,
    pub reset: bool,
    pub backlog: Vec<Frame>,
    /// Users online in the room, this one included.
    pub online: Vec<Arc<str>>,
    pub id: Option<ReqId>,
}

#[derive(Debug)]
pub struct Acked {
    pub to: ConnRef,
    pub room: RoomName,
    pub cid: Box<str>,
    pub seq: u64,
    pub id: Option<ReqId>,
    /// The `at` of the publish request.
    pub at: std::time::Instant,
}

#[derive(Debug)]
pub struct History {
    pub to: ConnRef,
    pub room: RoomName,
    pub messages: Vec<Frame>,
    pub more: bool,
    pub id: Option<ReqId>,
}

#[derive(Debug)]
pub struct Reply {
    pub to: ConnRef,
    pub room: RoomName,
    pub code: ErrorCode,
    pub cid: Option<Box<str>>,
    pub id: Option<ReqId>,
}

impl Event {
    /// The `Failed` answer to a request of `to`.
    pub fn failed(
        to: ConnRef,
        room: RoomName,
        code: ErrorCode,
        cid: Option<Box<str>>,
        id: Option<ReqId>,
    ) -> Event {
        Event::Failed(Box::new(Reply {
            to,
            room,
            code,
            cid,
            id,
        }))
    }
}

/// The queue in front of one reactor.
pub struct Inbox {
    queue: Mutex<Vec<Event>>,
    len: AtomicUsize,
    capacity: usize,
    waker: Waker,
}

impl Inbox {
    pub fn new(waker: Waker, capacity: usize) -> Arc<Inbox> {
        Arc::new(Inbox {
            queue: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
            capacity,
            waker,
        })
    }

    /// Queues one event, waking the reactor if it may be asleep.
    pub fn push(&self, event: Event) {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push(event);
            self.len.store(queue.len(), Ordering::Relaxed);
            queue.len() == 1
        };
        if was_empty {
            self.wake();
        }
    }

    /// Whether the reactor is so far behind that new work should be refused.
    /// Approximate by design: it steers admission, it does not bound memory
    /// by itself (senders check it before adding work, see the broker).
    pub fn is_full(&self) -> bool {
        self.len.load(Ordering::Relaxed) >= self.capacity
    }

    /// Moves every queued event into `out` (which must be empty), leaving
    /// `out`'s old allocation behind for the next round.
    pub fn take_all(&self, out: &mut Vec<Event>) {
        debug_assert!(out.is_empty());
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *queue, out);
        self.len.store(0, Ordering::Relaxed);
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("reactor wake-up failed: {e}");
        }
    }
}
