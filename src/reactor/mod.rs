//! Reactors: one thread per core, each with its own `mio::Poll`, its own
//! listener (SO_REUSEPORT, see `listener.rs`) and its own connections in a
//! `Slab`. Nothing about a connection is shared with another thread; other
//! threads reach a reactor only through its [`inbox::Inbox`].
//!
//! One pass of the loop:
//! 1. wait for readiness (or the next timer);
//! 2. accept, read and decode; handlers queue output and mark connections
//!    dirty instead of writing;
//! 3. drain the inbox whole (room deliveries, broker answers);
//! 4. flush each dirty connection once;
//! 5. remove dead connections, in this one place;
//! 6. run timers (handshake deadlines, pings, lingering closes) when due.

pub mod conn;
pub mod inbox;
pub mod listener;

mod api;
mod chat;
mod ctx;
mod events;
mod input;
mod io;
mod outbuf;
mod presence;
mod probes;
mod routes;
mod slots;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::auth::Auth;
use crate::broker::Broker;
use crate::config::Config;
use crate::drain::{self, Drain};
use crate::metrics::Limit;
use crate::stats::{ReactorStats, Stats};
use conn::{Conn, Phase};
use ctx::{Clock, Ctx};
use inbox::{Event, Inbox};

/// Token of the listener; connection tokens are slab keys, far below it.
const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the inbox's waker.
pub const WAKER: Token = Token(usize::MAX);

/// Readiness events taken per `poll` call.
const EVENTS_CAPACITY: usize = 1024;
/// Bytes read per `read` call; a stack of received frames is decoded
/// straight out of it.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Events of inbox capacity kept between passes; more is given back.
const INBOX_KEEP: usize = 256;
/// Connections accepted per pass before others get a turn.
const ACCEPT_BUDGET: usize = 128;
/// How long accepting pauses after EMFILE and similar errors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The answer to a connection over `max_pending_handshakes` or
/// `max_pending_per_ip`. Load shedding, not a quota: the client did
/// nothing wrong by itself, so 503 and "come back in a second" rather
/// than a 429.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
    Retry-After: 1\r\nConnection: close\r\n\r\n";

/// How often timers are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The parts of a reactor created before its thread starts, so the broker
/// can be given every inbox first.
pub struct Setup {
    pub poll: Poll,
    pub inbox: Arc<Inbox>,
}

impl Setup {
    pub fn new(queue_capacity: usize) -> std::io::Result<Setup> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(Setup {
            poll,
            inbox: Inbox::new(waker, queue_capacity),
        })
    }
}

/// What every reactor of a server shares.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub broker: Arc<dyn Broker>,
    pub auth: Arc<Auth>,
    pub stats: Arc<Stats>,
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ctx: Ctx,
    inbox: Arc<Inbox>,
    scratch: Box<[u8]>,
    /// The dirty list being flushed (kept to reuse its allocation).
    flushing: Vec<usize>,
    next_gen: u32,
    /// Accepting is paused until then after running out of descriptors.
    accept_paused: Option<Instant>,
    /// Accepts stopped at the budget; continue next pass.
    accept_pending: bool,
    /// The EMFILE warning was logged for the current episode.
    exhaustion_logged: bool,
    next_sweep: Instant,
    /// Sweeps so far, to run some checks less often than every sweep.
    sweeps: u64,
    /// Set once shutdown begins: the time by which the loop ends anyway.
    shutdown_by: Option<Instant>,
    /// Set by SIGTERM: the drain timeline this reactor follows.
    drain: Option<Drain>,
}

impl Reactor {
    pub fn new(
        id: usize,
        setup: Setup,
        mut listener: TcpListener,
        shared: &Shared,
    ) -> std::io::Result<Reactor> {
        let all_stats = shared.stats.clone();
        setup
            .poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let stats = all_stats.reactors.get(id).cloned().unwrap_or_default();
        let clock = Clock::new();
        Ok(Reactor {
            next_sweep: clock.now + SWEEP_EVERY,
            sweeps: 0,
            poll: setup.poll,
            listener: Some(listener),
            conns: Slab::new(),
            ctx: Ctx {
                id,
                config: shared.config.clone(),
                broker: shared.broker.clone(),
                auth: shared.auth.clone(),
                stats,
                all_stats,
                rooms: Default::default(),
                dirty: Vec::new(),
                dead: Vec::new(),
                revisit: Vec::new(),
                presence: Default::default(),
                handshakes: 0,
                clock,
            },
            inbox: setup.inbox,
            scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
            flushing: Vec::new(),
            next_gen: 0,
            accept_paused: None,
            accept_pending: false,
            exhaustion_logged: false,
            shutdown_by: None,
            drain: None,
        })
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut queued = Vec::new();
        let mut revisit = Vec::new();
        log::debug!("reactor {} running", self.ctx.id);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("reactor {} poll failed: {e}", self.ctx.id);
                    break;
                }
            }
            self.ctx.clock.tick();

            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(key) => self.on_ready(key, event.is_readable(), event.is_writable()),
                }
            }
            std::mem::swap(&mut revisit, &mut self.ctx.revisit);
            for key in revisit.drain(..) {
                self.on_ready(key, true, false);
            }
            // A pause ends on the pass its deadline wakes: left to the
            // sweep, an expired deadline would make every poll until then
            // return at once (a busy loop while out of descriptors).
            if self.accept_paused.is_some_and(|t| t <= self.ctx.clock.now) {
                self.accept_paused = None;
                self.accept_pending = true;
            }
            if self.accept_pending {
                self.accept();
            }

            self.inbox.take_all(&mut queued);
            for event in queued.drain(..) {
                self.on_event(event);
            }
            // A join storm can queue thousands of events in one pass; the
            // two buffers that take turns here should not keep that size.
            if queued.capacity() > INBOX_KEEP {
                queued.shrink_to(INBOX_KEEP);
            }
            if self.ctx.presence.is_due(self.ctx.clock.now) {
                events::flush_presence(&mut self.conns, &mut self.ctx);
            }

            self.flush_dirty();
            self.reap();
            if self.ctx.clock.now >= self.next_sweep {
                self.sweep();
            }
            if self.finished() {
                break;
            }
        }
        log::debug!("reactor {} stopped", self.ctx.id);
    }

    fn poll_timeout(&self) -> Duration {
        if !self.ctx.revisit.is_empty() || !self.ctx.dirty.is_empty() || self.accept_pending {
            return Duration::ZERO;
        }
        let mut until = self.next_sweep;
        if let Some(resume) = self.accept_paused {
            until = until.min(resume);
        }
        if let Some(due) = self.ctx.presence.due() {
            until = until.min(due);
        }
        until.saturating_duration_since(Instant::now())
    }

    fn on_ready(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return; // spurious: the connection is already gone
        };
        if readable && !conn.dead {
            io::read_ready(key, conn, &mut self.ctx, &mut self.scratch);
        }
        if writable && !conn.out.is_empty() {
            self.ctx.mark_dirty(key, conn);
        }
    }

    fn accept(&mut self) {
        self.accept_pending = false;
        if self.accept_paused.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((socket, peer)) => {
                    self.exhaustion_logged = false;
                    self.register(socket, peer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if listener::is_exhaustion(&e) => {
                    if !self.exhaustion_logged {
                        self.exhaustion_logged = true;
                        log::warn!(
                            "reactor {}: cannot accept ({e}); pausing accepts, \
                             {} connections open here",
                            self.ctx.id,
                            self.conns.len()
                        );
                    }
                    self.accept_paused = Some(self.ctx.clock.now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => log::debug!("reactor {}: accept failed: {e}", self.ctx.id),
            }
        }
        self.accept_pending = true;
    }

    fn register(&mut self, mut socket: mio::net::TcpStream, peer: std::net::SocketAddr) {
        if let Err(e) = socket.set_nodelay(true) {
            log::debug!(
                "reactor {}: TCP_NODELAY failed for {peer}: {e}",
                self.ctx.id
            );
        }
        let shed = if self.ctx.handshakes >= self.ctx.config.max_pending_handshakes {
            Some(Limit::PendingHandshakes)
        } else if !self.ctx.enter_http(peer.ip()) {
            Some(Limit::PendingPerIp)
        } else {
            None
        };
        if let Some(limit) = shed {
            // Shed load before spending memory on it: one best-effort
            // write, then close. Slowloris floods end here.
            self.ctx.hit_limit(limit);
            self.ctx.stats.http_errors.count(503);
            let _ = std::io::Write::write(&mut socket, SHED_RESPONSE);
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            log::warn!("reactor {}: register failed: {e}", self.ctx.id);
            self.ctx.leave_http(peer.ip());
            return;
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        let deadline =
            self.ctx.clock.now + Duration::from_millis(self.ctx.config.handshake_timeout_ms);
        entry.insert(Conn::new(
            socket,
            peer.ip(),
            self.next_gen,
            deadline,
            self.ctx.clock.secs,
        ));
        ReactorStats::add(&self.ctx.stats.connections, 1);
        ReactorStats::add(&self.ctx.stats.accepted, 1);
        log::debug!("conn={}:{key} accepted from {peer}", self.ctx.id);
    }

    fn flush_dirty(&mut self) {
        let registry = self.poll.registry();
        std::mem::swap(&mut self.flushing, &mut self.ctx.dirty);
        for key in self.flushing.drain(..) {
            if let Some(conn) = self.conns.get_mut(key) {
                io::flush(key, conn, &mut self.ctx, registry);
            }
        }
    }

    /// Removes dead connections: the one place a connection ends.
    fn reap(&mut self) {
        while let Some(key) = self.ctx.dead.pop() {
            let Some(mut conn) = self.conns.try_remove(key) else {
                continue;
            };
            input::retire_session(key, &mut conn, &mut self.ctx);
            if let Phase::Http(http) = &conn.phase {
                self.ctx.leave_http(http.peer);
            }
            if let Err(e) = self.poll.registry().deregister(&mut conn.socket) {
                log::debug!("conn={}:{key} deregister failed: {e}", self.ctx.id);
            }
            ReactorStats::sub(&self.ctx.stats.connections, 1);
            log::debug!("conn={}:{key} closed", self.ctx.id);
        }
    }

    /// Timers: handshake deadlines, pings and ping timeouts, and lingering
    /// closes. A scan of every connection, four times a second: at 20 000
    /// connections that is well under a millisecond.
    fn sweep(&mut self) {
        self.next_sweep = self.ctx.clock.now + SWEEP_EVERY;
        let now = self.ctx.clock.now;
        let secs = self.ctx.clock.secs;
        let interval = u32::try_from(self.ctx.config.ping_interval_secs).unwrap_or(u32::MAX);
        let timeout = u32::try_from(self.ctx.config.ping_timeout_secs).unwrap_or(u32::MAX);
        let mut queued = 0;
        // Once a second: sockets whose session was logged out or expired.
        self.sweeps = self.sweeps.wrapping_add(1);
        let session_check = self.sweeps % 4 == 0;
        let unix = crate::auth::unix_now();
        for (key, conn) in self.conns.iter_mut() {
            queued += conn.out.len();
            let idle = secs.saturating_sub(conn.last_rx);
            let ended = session_check
                && conn
                    .chat()
                    .is_some_and(|chat| chat.has_ended(unix, &self.ctx.auth.revoked));
            if ended {
                log::debug!("conn={}:{key} session ended", self.ctx.id);
                let reason = "session ended; log in again";
                input::start_close(
                    key,
                    conn,
                    &mut self.ctx,
                    Some(crate::ws::close::POLICY),
                    reason,
                );
                continue;
            }
            match &conn.phase {
                Phase::Http(http) if now >= http.deadline => {
                    input::time_out(key, conn, &mut self.ctx)
                }
                Phase::Ws(_) if conn.ping_sent && idle >= interval.saturating_add(timeout) => {
                    ReactorStats::add(&self.ctx.stats.ping_timeouts, 1);
                    log::debug!("conn={}:{key} ping timeout", self.ctx.id);
                    input::start_close(
                        key,
                        conn,
                        &mut self.ctx,
                        Some(crate::ws::close::TRY_AGAIN_LATER),
                        "ping timeout",
                    );
                }
                Phase::Ws(_) if !conn.ping_sent && idle >= interval => {
                    conn.ping_sent = true;
                    let mut ping = Vec::with_capacity(2);
                    crate::ws::frame::write_frame(&mut ping, crate::ws::Opcode::Ping, &[]);
                    conn.out.push_vec(ping);
                    self.ctx.mark_dirty(key, conn);
                }
                Phase::Closing(c) if secs >= c.deadline => self.ctx.mark_dead(key, conn),
                _ => {}
            }
        }
        self.publish_gauges(queued);
        self.drain_step();
        self.flush_dirty();
        self.reap();
    }

    /// Gauges and the liveness heartbeat, once per sweep.
    fn publish_gauges(&self, queued: usize) {
        let stats = &self.ctx.stats;
        ReactorStats::set(&stats.bytes_queued, queued as u64);
        ReactorStats::set(&stats.rooms, self.ctx.rooms.len() as u64);
        ReactorStats::set(&stats.heartbeat_ms, crate::metrics::uptime_ms());
    }

    /// SIGTERM: keep accepting for `drain_delay_ms`, then take turns
    /// closing (see `drain.rs`); the loop ends when everyone is gone.
    fn begin_drain(&mut self) {
        if self.shutdown_by.is_some() {
            return;
        }
        let config = &self.ctx.config;
        let now = self.ctx.clock.now;
        self.shutdown_by = Some(now + Duration::from_millis(config.shutdown_timeout_ms));
        let seed = crate::metrics::uptime_ms() ^ ((self.ctx.id as u64) << 32) ^ 0x9e37_79b9;
        self.drain = Some(Drain::new(
            now,
            Duration::from_millis(config.drain_delay_ms),
            Duration::from_millis(config.drain_window_ms),
            seed,
        ));
        log::debug!("reactor {} draining", self.ctx.id);
        self.drain_step();
    }

    fn drain_step(&mut self) {
        let now = self.ctx.clock.now;
        if self
            .drain
            .as_ref()
            .is_some_and(|d| d.should_stop_accepting(now))
        {
            self.stop_accepting();
        }
        let Some(drain) = &mut self.drain else {
            return;
        };
        if drain.should_stop_accepting(now) {
            let ws = self
                .conns
                .iter()
                .filter(|(_, c)| matches!(c.phase, Phase::Ws(_)));
            drain.plan(now, ws.map(|(key, c)| (key, c.gen)));
        }
        for turn in drain.take_due(now) {
            if let Some(conn) = self.conns.get_mut(turn.key).filter(|c| c.gen == turn.gen) {
                close_for_drain(turn.key, conn, &mut self.ctx, turn.retry_ms);
            }
        }
        if drain.window_over(now) {
            for (key, conn) in self.conns.iter_mut() {
                match conn.phase {
                    Phase::Ws(_) => close_for_drain(key, conn, &mut self.ctx, drain.retry_ms()),
                    Phase::Http(_) => self.ctx.mark_dead(key, conn),
                    Phase::Closing(_) => {}
                }
            }
        }
    }

    fn stop_accepting(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_pending = false;
        ReactorStats::set(&self.ctx.stats.accepting, 0);
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_by.is_some() {
            return;
        }
        let grace = Duration::from_millis(self.ctx.config.shutdown_timeout_ms);
        self.shutdown_by = Some(self.ctx.clock.now + grace);
        self.stop_accepting();
        for (key, conn) in self.conns.iter_mut() {
            match conn.phase {
                Phase::Ws(_) => input::start_close(
                    key,
                    conn,
                    &mut self.ctx,
                    Some(crate::ws::close::GOING_AWAY),
                    "server shutting down",
                ),
                Phase::Http(_) => self.ctx.mark_dead(key, conn),
                Phase::Closing(_) => {}
            }
        }
        log::debug!(
            "reactor {} draining {} connections",
            self.ctx.id,
            self.conns.len()
        );
    }

    fn finished(&self) -> bool {
        match self.shutdown_by {
            Some(by) => {
                (self.listener.is_none() && self.conns.is_empty()) || self.ctx.clock.now >= by
            }
            None => false,
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Shutdown => self.begin_shutdown(),
            Event::Drain => self.begin_drain(),
            other => events::apply(other, &mut self.conns, &mut self.ctx),
        }
    }
}

/// Closes a WebSocket with 1012 and the delay its client should wait.
fn close_for_drain(key: usize, conn: &mut Conn, ctx: &mut Ctx, retry_ms: u64) {
    let reason = drain::close_reason(retry_ms);
    input::start_close(
        key,
        conn,
        ctx,
        Some(crate::ws::close::SERVICE_RESTART),
        &reason,
    );
}
