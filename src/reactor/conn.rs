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

use std::net::{IpAddr, Ipv6Addr};
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
    /// The client address its connection counts against, IPv4 as
    /// IPv4-mapped: 16 bytes where `IpAddr` takes 17 and pads the slot.
    peer: Ipv6Addr,
    pub rooms: RoomSlots,
    /// Requests this socket may still make (message rate limit).
    pub budget: Bucket,
    /// Reactor clock in ms, modulo 2^32, at which the next typing notice
    /// may go out (see [`ChatSession::take_typing_turn`]).
    typing_at: u32,
    /// Unix seconds the session ends at (u32 lasts until 2106); 0 for
    /// guests.
    expires: u32,
    /// The session the socket was opened with (none for guests): a log-out
    /// or its expiry ends the socket too.
    pub sid: Option<Box<str>>,
}

impl ChatSession {
    /// A new chat session; `expires` is 0 for guests.
    pub fn new(
        user: Arc<str>,
        peer: IpAddr,
        budget: Bucket,
        sid: Option<Box<str>>,
        expires: u64,
    ) -> ChatSession {
        let peer = match peer {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        ChatSession {
            user,
            peer,
            rooms: RoomSlots::default(),
            budget,
            typing_at: 0,
            expires: u32::try_from(expires).unwrap_or(u32::MAX),
            sid,
        }
    }

    /// The client address, as it was given to [`ChatSession::new`] once
    /// canonical (an IPv4-mapped IPv6 address comes back as IPv4).
    pub fn peer(&self) -> IpAddr {
        IpAddr::V6(self.peer).to_canonical()
    }

    /// Whether a typing notice may go out at reactor time `now_ms`; if so,
    /// the next may follow `interval_ms` later. The next turn is never
    /// more than `interval_ms` ahead, so any other distance on the 2^32 ms
    /// circle is a turn already passed: no wrap-around ever blocks typing.
    pub fn take_typing_turn(&mut self, now_ms: u64, interval_ms: u32) -> bool {
        let now = u32::try_from(now_ms & u64::from(u32::MAX)).unwrap_or(0);
        let wait = self.typing_at.wrapping_sub(now);
        if wait != 0 && wait <= interval_ms {
            return false;
        }
        self.typing_at = now.wrapping_add(interval_ms);
        true
    }

    /// Whether the session behind this socket has been logged out or has
    /// expired at `now` (unix seconds).
    pub fn has_ended(&self, now: u64, revoked: &crate::auth::store::Revocations) -> bool {
        let expired = self.expires != 0 && now >= u64::from(self.expires);
        expired || self.sid.as_deref().is_some_and(|sid| revoked.contains(sid))
    }
}

pub struct RoomSlot {
    pub name: RoomName,
    pub state: SlotState,
}

/// Where a socket stands in one room. The broker answers a socket's
/// joins of a room in the order they were asked, so a slot only needs to
/// count the joins it left before they were answered: their answers
/// come first and are undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Asked the broker; membership starts with its `Joined` event, after
    /// the answers to `undo` earlier joins the socket left.
    Joining { undo: u8 },
    /// Listed among the reactor's members of the room.
    Joined,
    /// Left before the joins in flight were answered; each of their
    /// `pending` answers is undone, and the last one frees the slot.
    Leaving { pending: u8 },
}

/// What the broker's answer to one of a slot's joins means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The slot's own join: it applies (joined, or failed).
    Own,
    /// A join the socket left before it was answered: undo its
    /// membership; the slot goes on as `Some(state)`, or goes.
    Cancelled(Option<SlotState>),
}

impl SlotState {
    /// Joined, or on its way: requests on the room are the socket's.
    pub fn is_in_room(self) -> bool {
        !matches!(self, SlotState::Leaving { .. })
    }

    /// After the socket leaves: `None` if the slot goes at once (it was
    /// joined; the caller leaves the room).
    pub fn after_leave(self) -> Option<SlotState> {
        match self {
            SlotState::Joined => None,
            SlotState::Joining { undo } => Some(SlotState::Leaving {
                pending: undo.saturating_add(1),
            }),
            leaving @ SlotState::Leaving { .. } => Some(leaving),
        }
    }

    /// After the socket joins again while leaving: `None` if so many joins
    /// are in flight already that the count would overflow.
    pub fn after_rejoin(self) -> Option<SlotState> {
        match self {
            SlotState::Leaving { pending } if pending < u8::MAX => {
                Some(SlotState::Joining { undo: pending })
            }
            _ => None,
        }
    }

    /// What the next answer from the broker is for.
    pub fn answer(self) -> Answer {
        match self {
            SlotState::Joining { undo: 0 } => Answer::Own,
            SlotState::Joining { undo } => {
                Answer::Cancelled(Some(SlotState::Joining { undo: undo - 1 }))
            }
            SlotState::Leaving { pending } if pending > 1 => {
                Answer::Cancelled(Some(SlotState::Leaving {
                    pending: pending - 1,
                }))
            }
            SlotState::Leaving { .. } => Answer::Cancelled(None),
            // Not asked for: undo it and keep the membership there is.
            SlotState::Joined => Answer::Cancelled(Some(SlotState::Joined)),
        }
    }
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
        // Debug builds of mio keep a selector id in every socket.
        let limit = if cfg!(debug_assertions) { 136 } else { 120 };
        assert!(size <= limit, "Conn grew to {size} bytes");
    }

    fn session(peer: &str) -> ChatSession {
        let peer = peer.parse().unwrap();
        let rate = crate::auth::limits::Rate {
            per_sec: 10.0,
            burst: 20.0,
        };
        ChatSession::new(Arc::from("ann"), peer, Bucket::full(rate, 0), None, 0)
    }

    #[test]
    fn the_peer_comes_back_as_given() {
        for ip in ["10.1.2.3", "::1", "2001:db8::7", "127.0.0.1"] {
            assert_eq!(session(ip).peer().to_string(), ip);
        }
    }

    #[test]
    fn join_leave_flapping_answers_only_the_last_join() {
        // join, leave, join, leave, join before any answer: three joins
        // in flight, the first two cancelled.
        let mut s = SlotState::Joining { undo: 0 };
        for _ in 0..2 {
            s = s.after_leave().unwrap();
            assert!(!s.is_in_room());
            s = s.after_rejoin().unwrap();
            assert!(s.is_in_room());
        }
        assert_eq!(s, SlotState::Joining { undo: 2 });
        for _ in 0..2 {
            match s.answer() {
                Answer::Cancelled(Some(next)) => s = next,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(s.answer(), Answer::Own);

        // Left for good: the last cancelled answer frees the slot.
        let mut s = SlotState::Joining { undo: 1 }.after_leave().unwrap();
        assert_eq!(s, SlotState::Leaving { pending: 2 });
        match s.answer() {
            Answer::Cancelled(Some(next)) => s = next,
            other => panic!("{other:?}"),
        }
        assert_eq!(s.answer(), Answer::Cancelled(None));
        assert_eq!(SlotState::Joined.after_leave(), None);
        let full = SlotState::Leaving { pending: u8::MAX };
        assert_eq!(full.after_rejoin(), None);
    }

    #[test]
    fn typing_turns_are_a_second_apart() {
        let mut s = session("::1");
        assert!(s.take_typing_turn(5_000, 1000));
        assert!(!s.take_typing_turn(5_001, 1000));
        assert!(!s.take_typing_turn(5_999, 1000));
        assert!(s.take_typing_turn(6_000, 1000));
        assert!(s.take_typing_turn(9_000, 1000));
    }

    #[test]
    fn typing_turns_survive_the_clock_wrapping() {
        let mut s = session("::1");
        let wrap = 1u64 << 32;
        // A first notice long after the reactor started.
        assert!(s.take_typing_turn(3 * wrap + 17, 1000));
        assert!(!s.take_typing_turn(3 * wrap + 500, 1000));
        // Across the wrap of the low 32 bits.
        assert!(s.take_typing_turn(4 * wrap - 10, 1000));
        assert!(!s.take_typing_turn(4 * wrap + 100, 1000));
        assert!(s.take_typing_turn(4 * wrap + 990, 1000));
        // Weeks of silence, then typing again: allowed at once.
        assert!(s.take_typing_turn(4 * wrap + 990 + (40 << 24), 1000));
    }
}
