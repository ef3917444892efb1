//! The Redis broker: many nodes, one chat.
//!
//! Two bridge threads own every Redis connection, so reactors never block
//! on Redis: they hand requests over through channels and get answers in
//! their inboxes, like with the embedded broker.
//!
//! - [`sub::SubThread`] owns the pub/sub connection (subscribed only to
//!   rooms with local members), the per-room delivery order, joins, gap
//!   filling and resubscription after failures;
//! - [`cmd::CmdThread`] runs the send script (pipelined) and history reads.
//!
//! Two threads rather than one because the sync pub/sub API blocks in
//! `get_message`: a single thread would add the pub/sub poll interval to
//! every send. Joins go through the subscriber thread, which alone knows
//! where the live stream of a room stands.

mod cmd;
mod entry;
mod keys;
pub mod link;
mod presence;
mod scripts;
mod sub;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender, TrySendError};
use std::sync::Arc;

use super::{
    Broker, ConnRef, CreateRequest, HistoryRequest, InviteRequest, JoinRequest, PublishRequest,
    RoomName, RoomsRequest,
};
use crate::auth::store::Revocations;
use crate::chat::request::ReqId;
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Event, Inbox, Reply};
use cmd::{CmdThread, Command};
use link::Link;
use sub::{Control, SubThread};

/// Sizes and limits of the Redis broker.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// Messages kept in each room's stream (and the cid dedup window).
    pub history_size: usize,
    pub history_on_join: usize,
    /// Requests waiting for the command thread before sends are refused
    /// with `overloaded`.
    pub max_pending: usize,
    /// Members a private room may have.
    pub max_room_members: usize,
}

pub struct RedisBroker {
    commands: SyncSender<Command>,
    control: Sender<Control>,
    inboxes: Vec<Arc<Inbox>>,
    pending_joins: Arc<AtomicUsize>,
    max_pending: usize,
    cmd_up: Arc<AtomicBool>,
    sub_up: Arc<AtomicBool>,
    reconnects: Arc<AtomicUsize>,
}

impl RedisBroker {
    /// Starts the bridge threads. Redis need not be reachable yet: the
    /// threads keep trying, and requests meanwhile get `unavailable`.
    pub fn start(
        options: Options,
        inboxes: Vec<Arc<Inbox>>,
        revoked: Arc<Revocations>,
    ) -> redis::RedisResult<RedisBroker> {
        let client = redis::Client::open(options.url.as_str())?;
        let (commands, command_rx) = mpsc::sync_channel(options.max_pending);
        let (control, control_rx) = mpsc::channel();
        let cmd_up = Arc::new(AtomicBool::new(false));
        let node: Arc<str> = crate::broker::random_id().into();
        log::info!("redis: this node's presence id is {node}");

        let cmd = CmdThread {
            link: Link::new(client.clone(), scripts::load),
            rx: command_rx,
            inboxes: inboxes.clone(),
            history_size: options.history_size,
            max_room_members: options.max_room_members,
            up: cmd_up.clone(),
            node: node.clone(),
        };
        let sub = SubThread::new(
            client,
            control_rx,
            inboxes.clone(),
            options.history_on_join,
            revoked,
            node,
        );
        let broker = RedisBroker {
            commands,
            control,
            inboxes,
            pending_joins: sub.pending_joins.clone(),
            max_pending: options.max_pending,
            cmd_up,
            sub_up: sub.up.clone(),
            reconnects: sub.reconnects.clone(),
        };
        spawn("redis-cmd", move || cmd.run())?;
        spawn("redis-sub", move || sub.run())?;
        Ok(broker)
    }

    fn fail(
        &self,
        to: ConnRef,
        room: RoomName,
        code: ErrorCode,
        cid: Option<Box<str>>,
        id: Option<ReqId>,
    ) {
        if let Some(inbox) = self.inboxes.get(to.reactor) {
            inbox.push(Event::failed(to, room, code, cid, id));
        }
    }

    fn submit(&self, command: Command) {
        let code = match self.commands.try_send(command) {
            Ok(()) => return,
            Err(TrySendError::Full(c)) => (c, ErrorCode::Overloaded),
            Err(TrySendError::Disconnected(c)) => (c, ErrorCode::Unavailable),
        };
        match code {
            (Command::Publish(p), code) => self.fail(p.to, p.room, code, Some(p.cid), p.id),
            (Command::History(h), code) => self.fail(h.to, h.room, code, None, h.id),
            (Command::Create(c), code) => self.fail(c.to, c.room, code, None, c.id),
            (Command::Invite(i), code) => self.fail(i.to, i.room, code, None, i.id),
            (Command::Rooms(r), code) => self.fail(r.to, Arc::from(""), code, None, r.id),
            (Command::Typing(..), _) => {}
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> redis::RedisResult<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(redis::RedisError::from)
}

impl Broker for RedisBroker {
    fn join(&self, req: JoinRequest) {
        if self.pending_joins.fetch_add(1, Ordering::Relaxed) >= self.max_pending {
            self.pending_joins.fetch_sub(1, Ordering::Relaxed);
            let reply = Reply {
                to: req.to,
                room: req.room,
                code: ErrorCode::Overloaded,
                cid: None,
                id: req.id,
            };
            if let Some(inbox) = self.inboxes.get(reply.to.reactor) {
                inbox.push(Event::JoinFailed(Box::new(reply)));
            }
            return;
        }
        // The subscriber thread outlives every reactor; a failed send means
        // the process is going down.
        let _ = self.control.send(Control::Join(req));
    }

    fn leave(&self, room: &RoomName, reactor: usize, user: &Arc<str>) {
        let _ = self
            .control
            .send(Control::Leave(room.clone(), reactor, user.clone()));
    }

    fn create(&self, req: CreateRequest) {
        self.submit(Command::Create(req));
    }

    fn invite(&self, req: InviteRequest) {
        self.submit(Command::Invite(req));
    }

    fn rooms(&self, req: RoomsRequest) {
        self.submit(Command::Rooms(req));
    }

    fn typing(&self, room: &RoomName, user: &Arc<str>) {
        // Ephemeral: dropped when the queue is full, never an error.
        let _ = self
            .commands
            .try_send(Command::Typing(room.clone(), user.clone()));
    }

    fn publish(&self, req: PublishRequest) {
        if self.inboxes.iter().any(|i| i.is_full()) {
            return self.fail(
                req.to,
                req.room,
                ErrorCode::Overloaded,
                Some(req.cid),
                req.id,
            );
        }
        self.submit(Command::Publish(req));
    }

    fn history(&self, req: HistoryRequest) {
        self.submit(Command::History(req));
    }

    fn is_ready(&self) -> bool {
        self.sub_up.load(Ordering::Relaxed) && self.cmd_up.load(Ordering::Relaxed)
    }

    /// Times the subscriber had to reconnect.
    fn reconnects(&self) -> u64 {
        u64::try_from(self.reconnects.load(Ordering::Relaxed)).unwrap_or(u64::MAX)
    }
}
