//! One client connection over a non-blocking mio socket: TCP connect,
//! the WebSocket upgrade, then frames.
//!
//! The socket is registered once, for reading and writing, when it is
//! created; the handshake and the WebSocket take ownership of the same
//! stream without re-registering (registration belongs to the descriptor).
//! mio is edge-triggered, so every call here reads until `WouldBlock` (or
//! a budget) and the caller must call again after any state change, since
//! bytes already buffered raise no new event.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::client::Request;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::report::excerpt;

/// Bytes read per `read` call (see [`config`]).
const READ_BUFFER: usize = 4096;

type Mid = MidHandshake<ClientHandshake<TcpStream>>;

enum Link {
    Connecting(TcpStream, Request),
    Handshaking(Mid),
    Open(WebSocket<TcpStream>),
    Gone,
}

/// Whether a connection reads its socket. A stalled reader leaves its
/// input in the kernel, so the server's queue for it grows: how fanout's
/// slow members look to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    On,
    Stalled,
    /// Stalled, but reading what is queued, once, down to `WouldBlock`.
    Once,
}

pub struct Conn {
    link: Link,
    started: Instant,
    /// The close code the server sent, once it sent one.
    close_code: Option<u16>,
    reading: Reading,
}

/// What [`Conn::advance`] achieved.
pub enum Progress {
    /// Still connecting or upgrading.
    Pending,
    /// Upgraded just now, after this many nanoseconds since connect.
    Opened(u64),
    /// Already open.
    Open,
    Failed(String),
}

/// How a read pass ended.
pub enum ReadEnd {
    /// Nothing more to read for now.
    Drained,
    /// The budget ran out with input left: call again next turn.
    Budget,
    /// The WebSocket is closed; the server's close code if it sent one.
    Closed(Option<u16>),
    Failed(String),
}

impl Conn {
    /// Starts a non-blocking connect from `source` (port chosen by the
    /// kernel) to `addr` and registers the socket under `token`.
    pub fn connect(
        registry: &Registry,
        token: Token,
        addr: SocketAddr,
        source: Option<IpAddr>,
        request: Request,
    ) -> io::Result<Conn> {
        let started = Instant::now();
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if let Some(ip) = source {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Conn {
            link: Link::Connecting(stream, request),
            started,
            close_code: None,
            reading: Reading::On,
        })
    }

    pub fn is_open(&self) -> bool {
        matches!(self.link, Link::Open(_))
    }

    /// Stops reading: [`Conn::read`] leaves the socket alone from now on.
    pub fn stall(&mut self) {
        self.reading = Reading::Stalled;
    }

    /// Lets a stalled connection read what is queued for it, down to
    /// `WouldBlock`, and then stall again.
    pub fn read_backlog(&mut self) {
        if self.reading == Reading::Stalled {
            self.reading = Reading::Once;
        }
    }

    pub fn is_stalled(&self) -> bool {
        self.reading != Reading::On
    }

    pub fn age(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Moves connect and upgrade forward as far as the socket allows.
    pub fn advance(&mut self) -> Progress {
        let link = std::mem::replace(&mut self.link, Link::Gone);
        let result = match link {
            Link::Connecting(stream, request) => match connected(&stream) {
                Ok(false) => {
                    self.link = Link::Connecting(stream, request);
                    return Progress::Pending;
                }
                Ok(true) => {
                    tungstenite::client::client_with_config(request, stream, Some(config()))
                }
                Err(e) => return Progress::Failed(format!("connect: {e}")),
            },
            Link::Handshaking(mid) => mid.handshake(),
            Link::Open(ws) => {
                self.link = Link::Open(ws);
                return Progress::Open;
            }
            Link::Gone => return Progress::Failed("connection is gone".into()),
        };
        match result {
            Ok((ws, _response)) => {
                self.link = Link::Open(ws);
                let ns = self.started.elapsed().as_nanos();
                Progress::Opened(u64::try_from(ns).unwrap_or(u64::MAX))
            }
            Err(HandshakeError::Interrupted(mid)) => {
                self.link = Link::Handshaking(mid);
                Progress::Pending
            }
            Err(HandshakeError::Failure(e)) => Progress::Failed(upgrade_error(e)),
        }
    }

    /// Reads up to `budget` messages, handing each text to `on_text`, then
    /// flushes whatever the reads queued (pongs, close replies). A stalled
    /// connection reads nothing.
    pub fn read(&mut self, budget: usize, mut on_text: impl FnMut(&str)) -> ReadEnd {
        if self.reading == Reading::Stalled {
            return ReadEnd::Drained;
        }
        let Link::Open(ws) = &mut self.link else {
            return ReadEnd::Drained;
        };
        for _ in 0..budget {
            match ws.read() {
                Ok(Message::Text(text)) => on_text(text.as_str()),
                Ok(Message::Close(frame)) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(e) => return self.read_error(e),
            }
        }
        match self.flush() {
            Ok(()) => ReadEnd::Budget,
            Err(e) => ReadEnd::Failed(e),
        }
    }

    fn read_error(&mut self, e: tungstenite::Error) -> ReadEnd {
        use tungstenite::Error::{AlreadyClosed, ConnectionClosed, Io};
        match e {
            Io(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.reading == Reading::Once {
                    self.reading = Reading::Stalled;
                }
                match self.flush() {
                    Ok(()) => ReadEnd::Drained,
                    Err(e) => ReadEnd::Failed(e),
                }
            }
            ConnectionClosed | AlreadyClosed => ReadEnd::Closed(self.close_code),
            e => ReadEnd::Failed(e.to_string()),
        }
    }

    /// Queues a text message and writes as much as the socket takes.
    pub fn send(&mut self, text: String) -> Result<(), String> {
        let Link::Open(ws) = &mut self.link else {
            return Err("not open".into());
        };
        match ws.send(Message::text(text)) {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes queued bytes; `WouldBlock` leaves the rest for the next
    /// writable event.
    pub fn flush(&mut self) -> Result<(), String> {
        let Link::Open(ws) = &mut self.link else {
            return Ok(());
        };
        match ws.flush() {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(tungstenite::Error::ConnectionClosed) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Starts the closing handshake (1000); reads then end in `Closed`.
    pub fn close(&mut self) -> Result<(), String> {
        let Link::Open(ws) = &mut self.link else {
            return Ok(());
        };
        let frame = tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        match ws.close(Some(frame)) {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(tungstenite::Error::AlreadyClosed) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Socket settings for every client. tungstenite zero-fills its read
/// buffer up to `read_buffer_size` before each read; the 128 KiB default
/// cost ~20 µs per read and 128 KiB per connection. Chat frames are small,
/// and larger ones are still read, in several calls.
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Why an upgrade failed. A refusal names its status and, when the server
/// gave one, its reason, so a report can tell "log in first" (401) from
/// "too many connections" (429).
fn upgrade_error(e: tungstenite::Error) -> String {
    let tungstenite::Error::Http(response) = e else {
        return format!("upgrade: {e}");
    };
    let status = response.status();
    let said = response.body().as_deref().map(excerpt).unwrap_or_default();
    if said.starts_with(status.as_str()) {
        // Parley's refusals repeat the status: "401 Unauthorized: why".
        format!("upgrade refused: {said}")
    } else if said.is_empty() {
        format!("upgrade refused: {status}")
    } else {
        format!("upgrade refused: {status}; server said: {said}")
    }
}

/// Whether a non-blocking connect has finished; an error if it failed.
fn connected(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}
