//! The broker: where room messages get their sequence numbers, are stored
//! for recovery, and are fanned out to the reactors that have members in
//! the room.
//!
//! Reactors talk to a broker only through the [`Broker`] trait, and every
//! answer comes back as an [`Event`] in the asking reactor's inbox, never as
//! a return value: a reactor must not wait, whether the broker is the
//! in-process [`memory::MemoryBroker`] or a Redis bridge thread.
//!
//! The ordering promise every implementation keeps: for one room, the
//! `Joined` event for a connection and the room's `Deliver` events reach a
//! reactor's inbox in sequence order, so a member sees the backlog and then
//! every live message exactly once.
//!
//! [`Event`]: crate::reactor::inbox::Event

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Instant;

use crate::chat::request::ReqId;

/// A room's name, shared by every structure that mentions the room.
pub type RoomName = Arc<str>;

/// Where an answer goes: a connection on a reactor. `gen` tells a live
/// connection from a later one that reuses the same slab slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    pub reactor: usize,
    pub key: usize,
    pub gen: u32,
}

/// Subscribe a connection to a room and send it the backlog.
#[derive(Debug)]
pub struct JoinRequest {
    pub to: ConnRef,
    pub room: RoomName,
    /// Who joins: checked against a private room's members, and counted
    /// for presence.
    pub user: Arc<str>,
    /// The last seq the client saw; the backlog is everything after it.
    pub since: Option<u64>,
    /// The epoch `since` belongs to; a different one forces a reset.
    pub epoch: Option<String>,
    pub id: Option<ReqId>,
}

/// Store and fan out one message.
#[derive(Debug)]
pub struct PublishRequest {
    pub to: ConnRef,
    pub room: RoomName,
    pub from: Arc<str>,
    pub text: String,
    pub cid: Box<str>,
    pub id: Option<ReqId>,
    /// When the reactor handed it over; comes back in `Acked` so the
    /// publish latency can be measured where the ack lands.
    pub at: Instant,
}

/// Fetch a page of history, newest last, strictly before `before`.
#[derive(Debug)]
pub struct HistoryRequest {
    pub to: ConnRef,
    pub room: RoomName,
    pub user: Arc<str>,
    pub before: Option<u64>,
    pub limit: usize,
    pub id: Option<ReqId>,
}

/// Create a room explicitly.
#[derive(Debug)]
pub struct CreateRequest {
    pub to: ConnRef,
    pub room: RoomName,
    pub private: bool,
    pub user: Arc<str>,
    pub id: Option<ReqId>,
}

/// Let `user` into a private room; only its creator (`by`) may.
#[derive(Debug)]
pub struct InviteRequest {
    pub to: ConnRef,
    pub room: RoomName,
    pub by: Arc<str>,
    pub user: String,
    pub id: Option<ReqId>,
}

/// List the rooms `user` may join.
#[derive(Debug)]
pub struct RoomsRequest {
    pub to: ConnRef,
    pub user: Arc<str>,
    pub id: Option<ReqId>,
}

/// The operations a reactor needs from a broker. Each call returns at once;
/// results arrive as events in the inbox of `to.reactor`.
pub trait Broker: Send + Sync {
    /// Answers with `Joined` (membership active from then on) or
    /// `JoinFailed`.
    fn join(&self, req: JoinRequest);

    /// Drops one membership of `user` on reactor `reactor` in `room`.
    /// Called once for every `Joined` that reached the reactor.
    fn leave(&self, room: &RoomName, reactor: usize, user: &Arc<str>);

    /// Answers with `Acked` once the message is stored (after the room's
    /// `Deliver` events are queued), or `Failed`.
    fn publish(&self, req: PublishRequest);

    /// Answers with `History` or `Failed`.
    fn history(&self, req: HistoryRequest);

    /// Answers with a `created` reply or `Failed` (room_exists).
    fn create(&self, req: CreateRequest);

    /// Answers with an `invited` reply or `Failed` (forbidden).
    fn invite(&self, req: InviteRequest);

    /// Answers with a `rooms` reply.
    fn rooms(&self, req: RoomsRequest);

    /// Tells the room's members that `user` is typing. Best effort.
    fn typing(&self, room: &RoomName, user: &Arc<str>);

    /// Whether the broker can take messages now (its storage is reachable).
    fn is_ready(&self) -> bool {
        true
    }

    /// Times the broker had to reconnect to its storage (for metrics).
    fn reconnects(&self) -> u64 {
        0
    }
}

/// A random 64-bit identifier in hex (broker and room epochs).
pub fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
