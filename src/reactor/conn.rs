//! One client connection as a reactor owns it: its socket, its outbound
//! queue, and the phase it is in. Phases own their data, so what a
//! connection holds tells what it can do:
//!
//! - `Http`: reading request heads (boxed: transient, and idle WebSockets
//!   should not pay for a head buffer);
//! - `Ws`: a WebSocket, decoding frames for a chat or echo session;
//! - `Closing`: a close frame or final response is being flushed; afterwards
//!   the write side is shut and input is discarded until the peer hangs up or
//!   the linger deadline passes, so the peer reads our last bytes instead of
//!   a reset.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

use super::outbuf::OutQueue;
use super::slots::RoomSlots;
use crate::auth::limits::Bucket;
use crate::broker::RoomName;
use crate::http::{HeadParser, Request};
use crate::ws::Decoder;

pub struct Conn {
    pub socket: TcpStream,
    /// Tells this connection from a later one in the same slab slot.
    pub gen: u32,
    pub out: OutQueue,
    pub phase: Phase,
    /// Reactor clock second of the last bytes from the peer.
    pub last_rx: u32,
    /// A ping went out and nothing came back yet.
    pub ping_sent: bool,
    /// Listed in the reactor's dirty list for this pass.
    pub dirty: bool,
    /// WRITABLE interest is registered (only while output is pending).
    pub writable: bool,
    /// Listed for removal at the end of this pass.
    pub dead: bool,
}

pub enum Phase {
    Http(Box<HttpPhase>),
    Ws(WsPhase),
    Closing(Closing),
}

pub struct HttpPhase {
    pub peer: IpAddr,
    pub parser: HeadParser,
    /// A parsed head whose body has not fully arrived: (head, head length).
    pub pending: Option<Box<(Request, usize)>>,
    /// An auth worker is preparing the response; input waits in `buf`.
    pub waiting: bool,
    /// Bytes of the request(s) not yet consumed.
    pub buf: Vec<u8>,
    /// When the current head must be complete.
    pub deadline: Instant,
}

pub struct WsPhase {
    /// Present only while a frame or message is partly received: an idle
    /// socket should not carry the decoder's buffers and state.
    pub decoder: Option<Box<Decoder>>,
    pub session: Session,
}

pub enum Session {
    /// RFC 6455 conformance endpoint: messages come back as they went in.
    Echo,
    Chat(ChatSession),
}

/// A chat socket's identity and rooms.
pub struct ChatSession {
    /// The name every message from this socket carries: the authenticated
    /// user, or `guest:<name>` with `--allow-guests`.
    pub user: Arc<str>,
    pub peer: IpAddr,
    pub rooms: RoomSlots,
    /// Requests this socket may still make (message rate limit).
    pub budget: Bucket,
    /// Reactor clock (ms) before which typing notices are dropped.
    pub next_typing_ms: u64,
    /// The session the socket was opened with (none for guests): a log-out
    /// or its expiry ends the socket too.
    pub sid: Option<Box<str>>,
    /// Unix seconds the session ends at; 0 for guests.
    pub expires: u64,
}

impl ChatSession {
    /// Whether the session behind this socket has been logged out or has
    /// expired at `now` (unix seconds).
    pub fn has_ended(&self, now: u64, revoked: &crate::auth::store::Revocations) -> bool {
        let expired = self.expires != 0 && now >= self.expires;
        expired || self.sid.as_deref().is_some_and(|sid| revoked.contains(sid))
    }
}

pub struct RoomSlot {
    pub name: RoomName,
    pub state: SlotState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Asked the broker; membership starts with its `Joined` event.
    Joining,
    /// Listed among the reactor's members of the room.
    Joined,
    /// Left before `Joined` arrived; that event will undo the join.
    Leaving,
}

pub struct Closing {
    /// Reactor clock second after which the socket is dropped regardless.
    pub deadline: u32,
    /// The write side has been shut after the last byte went out.
    pub write_shut: bool,
}

impl Conn {
    pub fn new(socket: TcpStream, peer: IpAddr, gen: u32, deadline: Instant, now: u32) -> Conn {
        Conn {
            socket,
            gen,
            out: OutQueue::default(),
            phase: Phase::Http(Box::new(HttpPhase {
                peer,
                pending: None,
                waiting: false,
                parser: HeadParser::new(),
                buf: Vec::new(),
                deadline,
            })),
            last_rx: now,
            ping_sent: false,
            dirty: false,
            writable: false,
            dead: false,
        }
    }

    /// The chat session, if this is a chat WebSocket.
    pub fn chat(&mut self) -> Option<&mut ChatSession> {
        match &mut self.phase {
            Phase::Ws(WsPhase {
                session: Session::Chat(chat),
                ..
            }) => Some(chat),
            _ => None,
        }
    }
}

impl ChatSession {
    pub fn slot(&self, room: &str) -> Option<usize> {
        self.rooms.position(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_stays_small() {
        // Every idle WebSocket costs one slab slot of this size; keep an eye
        // on it when adding fields.
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 160, "Conn grew to {size} bytes");
    }
}
