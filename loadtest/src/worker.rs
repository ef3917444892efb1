//! One load-generating thread: a mio event loop owning many connections.
//!
//! The loop knows sockets, not scenarios. A [`Behaviour`] decides what to
//! send and when; it answers each event by filling an [`Out`], which the
//! loop applies after the callback returns, so the scenario never touches
//! a socket and the loop is the one place a connection is removed.
//!
//! Contract kept with mio: events may be spurious, so every handler just
//! tries; reads run until `WouldBlock` or a per-connection budget, and a
//! connection stopped by the budget is visited again next turn.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{Conn, Progress, ReadEnd};
use crate::credentials::Credentials;
use crate::shared::{Phase, Shared};
use crate::target::Targets;

/// Messages read from one connection per turn before others get a go.
const READ_BUDGET: usize = 64;
/// Longest sleep in `poll`: publishers need a fine-grained clock.
const TICK: Duration = Duration::from_millis(1);
/// How long connections get to finish closing once the run stops.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Scenario callbacks; `i` is the connection's slot in this worker.
pub trait Behaviour {
    fn on_open(&mut self, i: usize, handshake_ns: u64, out: &mut Out);
    fn on_text(&mut self, i: usize, text: &str, out: &mut Out);
    /// The connection ended: a server close (`Some(code)`), a failure to
    /// connect or upgrade, or an I/O error.
    fn on_end(&mut self, i: usize, how: End, out: &mut Out);
    /// Called every turn of the loop.
    fn tick(&mut self, out: &mut Out);
}

#[derive(Debug)]
pub enum End {
    Closed(Option<u16>),
    Failed(String),
}

/// What a behaviour wants done; applied by the loop in this order.
#[derive(Default)]
pub struct Out {
    pub sends: Vec<(usize, String)>,
    pub closes: Vec<usize>,
    pub connects: Vec<usize>,
    /// Connections to stop reading (see [`Conn::stall`]).
    pub stalls: Vec<usize>,
    /// Stalled connections to read their backlog once.
    pub backlog_reads: Vec<usize>,
}

impl Out {
    fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.closes.is_empty()
            && self.connects.is_empty()
            && self.stalls.is_empty()
            && self.backlog_reads.is_empty()
    }
}

pub struct Worker<B> {
    pub behaviour: B,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    /// Global connection number of each slot (for names and spreading).
    global: Vec<usize>,
    targets: Arc<Targets>,
    credentials: Arc<Credentials>,
    shared: Arc<Shared>,
    /// Connects waiting for an in-flight slot.
    queued: VecDeque<usize>,
    in_flight: usize,
    max_in_flight: usize,
    connect_timeout: Duration,
    again: Vec<usize>,
}

pub struct WorkerSetup {
    pub global: Vec<usize>,
    pub targets: Arc<Targets>,
    pub credentials: Arc<Credentials>,
    pub shared: Arc<Shared>,
    pub max_in_flight: usize,
    pub connect_timeout: Duration,
}

impl<B: Behaviour> Worker<B> {
    pub fn new(setup: WorkerSetup, behaviour: B) -> std::io::Result<Worker<B>> {
        Ok(Worker {
            behaviour,
            poll: Poll::new()?,
            conns: setup.global.iter().map(|_| None).collect(),
            global: setup.global,
            targets: setup.targets,
            credentials: setup.credentials,
            shared: setup.shared,
            queued: VecDeque::new(),
            in_flight: 0,
            max_in_flight: setup.max_in_flight.max(1),
            connect_timeout: setup.connect_timeout,
            again: Vec::new(),
        })
    }

    /// Runs until the phase is `Stop`, then closes every connection and
    /// returns the behaviour with its results.
    pub fn run(mut self, initial: Vec<usize>) -> B {
        let mut events = Events::with_capacity(1024);
        let mut out = Out {
            connects: initial,
            ..Out::default()
        };
        let mut last_sweep = Instant::now();
        loop {
            self.apply(&mut out);
            if self.shared.phase() == Phase::Stop {
                break;
            }
            let timeout = if self.again.is_empty() {
                TICK
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("poll failed: {e}");
                    break;
                }
            }
            let mut ready: Vec<usize> = std::mem::take(&mut self.again);
            ready.extend(events.iter().map(|e| e.token().0));
            for i in ready {
                self.drive(i, &mut out);
                self.apply(&mut out);
            }
            self.behaviour.tick(&mut out);
            if last_sweep.elapsed() >= Duration::from_millis(100) {
                self.sweep_timeouts(&mut out);
                last_sweep = Instant::now();
            }
        }
        self.close_all();
        self.behaviour
    }

    /// Advances connection `i` as far as it goes, reporting to the
    /// behaviour.
    fn drive(&mut self, i: usize, out: &mut Out) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        match conn.advance() {
            Progress::Pending => return,
            Progress::Opened(ns) => {
                self.in_flight -= 1;
                Shared::add(&self.shared.opened, 1);
                self.behaviour.on_open(i, ns, out);
            }
            Progress::Open => {}
            Progress::Failed(e) => return self.end(i, End::Failed(e), out),
        }
        let behaviour = &mut self.behaviour;
        let Some(conn) = self.conns[i].as_mut() else {
            return;
        };
        match conn.read(READ_BUDGET, |text| behaviour.on_text(i, text, out)) {
            ReadEnd::Drained => {}
            ReadEnd::Budget => self.again.push(i),
            ReadEnd::Closed(code) => self.end(i, End::Closed(code), out),
            ReadEnd::Failed(e) => self.end(i, End::Failed(e), out),
        }
    }

    /// The one place a connection is removed.
    fn end(&mut self, i: usize, how: End, out: &mut Out) {
        let Some(conn) = self.conns[i].take() else {
            return;
        };
        if !conn.is_open() {
            self.in_flight -= 1;
            let why = match &how {
                End::Failed(e) => e.as_str(),
                End::Closed(_) => "closed during the upgrade",
            };
            self.shared.connect_failed(why);
        }
        self.behaviour.on_end(i, how, out);
    }

    /// Applies `out` until the behaviour stops asking for more.
    fn apply(&mut self, out: &mut Out) {
        while !out.is_empty() {
            let batch = std::mem::take(out);
            for (i, text) in batch.sends {
                let Some(conn) = self.conns[i].as_mut().filter(|c| c.is_open()) else {
                    continue;
                };
                if let Err(e) = conn.send(text) {
                    self.end(i, End::Failed(e), out);
                }
            }
            for i in batch.closes {
                if let Some(Err(e)) = self.conns[i].as_mut().map(Conn::close) {
                    self.end(i, End::Failed(e), out);
                } else {
                    self.again.push(i);
                }
            }
            self.queued.extend(batch.connects);
            for i in batch.stalls {
                if let Some(conn) = self.conns[i].as_mut() {
                    conn.stall();
                }
            }
            for i in batch.backlog_reads {
                if let Some(conn) = self.conns[i].as_mut() {
                    conn.read_backlog();
                    // Bytes already queued raise no new event.
                    self.again.push(i);
                }
            }
        }
        self.start_queued(out);
    }

    fn start_queued(&mut self, out: &mut Out) {
        while self.in_flight < self.max_in_flight {
            let Some(i) = self.queued.pop_front() else {
                break;
            };
            if self.conns[i].is_some() {
                continue;
            }
            let n = self.global[i];
            let (target, source) = self.targets.pick(n);
            let who = self.credentials.identity(n);
            let started = target
                .request(&who)
                .map_err(|e| e.to_string())
                .and_then(|req| {
                    let registry = self.poll.registry();
                    Conn::connect(registry, Token(i), target.addr, source, req)
                        .map_err(|e| format!("connect: {e}"))
                });
            match started {
                Ok(conn) => {
                    self.conns[i] = Some(conn);
                    self.in_flight += 1;
                    // A loopback connect may already be done: no edge
                    // would tell us.
                    self.again.push(i);
                }
                Err(e) => {
                    self.shared.connect_failed(&e);
                    self.behaviour.on_end(i, End::Failed(e), out);
                }
            }
        }
    }

    fn sweep_timeouts(&mut self, out: &mut Out) {
        for i in 0..self.conns.len() {
            let late = self.conns[i]
                .as_ref()
                .is_some_and(|c| !c.is_open() && c.age() > self.connect_timeout);
            if late {
                self.end(i, End::Failed("connect timeout".into()), out);
            }
        }
    }

    /// Sends a close on every open connection and reads until the server
    /// answers or `CLOSE_GRACE` passes; what is left is dropped. Stalled
    /// connections are dropped at once: a close handshake would mean
    /// reading their whole backlog first.
    fn close_all(&mut self) {
        for slot in &mut self.conns {
            let open = slot
                .as_mut()
                .is_some_and(|c| c.is_open() && !c.is_stalled() && c.close().is_ok());
            if !open {
                *slot = None;
            }
        }
        let deadline = Instant::now() + CLOSE_GRACE;
        let mut events = Events::with_capacity(1024);
        while Instant::now() < deadline && self.conns.iter().any(Option::is_some) {
            if self.poll.poll(&mut events, Some(TICK * 10)).is_err() {
                break;
            }
            for e in events.iter() {
                let i = e.token().0;
                let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                    continue;
                };
                if !matches!(conn.read(usize::MAX, |_| {}), ReadEnd::Drained) {
                    self.conns[i] = None;
                }
            }
        }
    }
}
