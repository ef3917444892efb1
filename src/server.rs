//! Assembles a running server: listeners, reactors, the broker, and the
//! threads that run them. Used by `main` and by tests that want a server in
//! process.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::broker::memory::{Limits, MemoryBroker};
use crate::broker::redis::{Options, RedisBroker};
use crate::broker::Broker;
use crate::config::Config;
use crate::reactor::inbox::{Event, Inbox};
use crate::reactor::{listener, Reactor, Setup};
use crate::stats::{ReactorStats, Stats};

pub struct Server {
    threads: Vec<JoinHandle<()>>,
    inboxes: Vec<Arc<Inbox>>,
    local_addr: SocketAddr,
    stats: Arc<Stats>,
}

impl Server {
    /// Binds, starts every reactor thread and returns at once.
    pub fn start(config: Config) -> io::Result<Server> {
        let count = config.reactor_count();
        let (listeners, local_addr) = listener::bind_all(config.listen, count)?;
        let setups = (0..count)
            .map(|_| Setup::new(config.max_reactor_queue))
            .collect::<io::Result<Vec<_>>>()?;
        let inboxes: Vec<Arc<Inbox>> = setups.iter().map(|s| s.inbox.clone()).collect();
        let broker = make_broker(&config, inboxes.clone())?;
        let stats = Arc::new(Stats {
            reactors: (0..count)
                .map(|_| Arc::new(ReactorStats::default()))
                .collect(),
        });
        let config = Arc::new(config);

        let mut threads = Vec::with_capacity(count);
        for (id, (setup, listener)) in setups.into_iter().zip(listeners).enumerate() {
            let reactor = Reactor::new(
                id,
                setup,
                listener,
                config.clone(),
                broker.clone(),
                stats.clone(),
            )?;
            let thread = std::thread::Builder::new()
                .name(format!("reactor-{id}"))
                .spawn(move || reactor.run())?;
            threads.push(thread);
        }
        Ok(Server {
            threads,
            inboxes,
            local_addr,
            stats,
        })
    }

    /// The address actually bound (the port is chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// A handle that can start a graceful shutdown from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            inboxes: self.inboxes.clone(),
        }
    }

    /// Waits for every reactor to finish (after a shutdown).
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("a reactor thread panicked");
            }
        }
    }
}

/// The embedded broker, or the Redis one when a URL is configured.
fn make_broker(config: &Config, inboxes: Vec<Arc<Inbox>>) -> io::Result<Arc<dyn Broker>> {
    if config.redis.is_empty() {
        let limits = Limits {
            history_size: config.history_size,
            history_on_join: config.history_on_join,
            max_rooms: config.max_rooms,
        };
        return Ok(Arc::new(MemoryBroker::new(inboxes, limits)));
    }
    let options = Options {
        url: config.redis.clone(),
        history_size: config.history_size,
        history_on_join: config.history_on_join,
        max_pending: config.redis_max_pending,
    };
    let broker = RedisBroker::start(options, inboxes)
        .map_err(|e| io::Error::other(format!("redis: {e}")))?;
    Ok(Arc::new(broker))
}

#[derive(Clone)]
pub struct ShutdownHandle {
    inboxes: Vec<Arc<Inbox>>,
}

impl ShutdownHandle {
    /// Stops accepting and closes every connection with 1001; reactors
    /// exit when their connections are gone or the shutdown timeout passes.
    pub fn shutdown(&self) {
        for inbox in &self.inboxes {
            inbox.push(Event::Shutdown);
        }
    }
}
