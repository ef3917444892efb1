//! Assembles a running server: listeners, reactors, the broker, and the
//! threads that run them. Used by `main` and by tests that want a server in
//! process.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::auth::limits::{Counter, KeyedLimiter, Rate};
use crate::auth::pool::Pool;
use crate::auth::store::{self, Revocations, UserStore};
use crate::auth::token::Signer;
use crate::auth::{Auth, Settings};
use crate::broker::memory::{Limits, MemoryBroker};
use crate::broker::redis::{Options, RedisBroker};
use crate::broker::Broker;
use crate::canary::{self, Canary};
use crate::config::Config;
use crate::reactor::inbox::{Event, Inbox};
use crate::reactor::{listener, Reactor, Setup, Shared};
use crate::stats::Stats;

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
        let mut inboxes: Vec<Arc<Inbox>> = setups.iter().map(|s| s.inbox.clone()).collect();
        // The canary is one more inbox for the broker, after the reactors'.
        let canary_setup = if canary_enabled(&config) {
            Some(Setup::new(config.max_reactor_queue)?)
        } else {
            None
        };
        inboxes.extend(canary_setup.iter().map(|s| s.inbox.clone()));
        let revoked = Arc::new(Revocations::default());
        let broker = make_broker(&config, inboxes.clone(), revoked.clone())?;
        let stats = Arc::new(Stats::new(count));
        let auth = Arc::new(make_auth(&config, revoked, stats.clone())?);
        Pool::start(&auth, config.auth_worker_count(), inboxes.clone())?;
        crate::trim::start(stats.clone())?;
        if let Some(setup) = canary_setup {
            start_canary(setup, count, &config, &broker, &stats)?;
        }
        let shared = Shared {
            config: Arc::new(config),
            broker,
            auth,
            stats: stats.clone(),
        };

        let mut threads = Vec::with_capacity(count);
        for (id, (setup, listener)) in setups.into_iter().zip(listeners).enumerate() {
            let reactor = Reactor::new(id, setup, listener, &shared)?;
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
            stats: self.stats.clone(),
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

/// Accounts, sessions and abuse limits, with users in Redis when the Redis
/// broker is configured and in memory otherwise.
fn make_auth(config: &Config, revoked: Arc<Revocations>, stats: Arc<Stats>) -> io::Result<Auth> {
    let secret = match config
        .session_secret()
        .map_err(|e| io::Error::other(e.to_string()))?
    {
        Some(secret) => secret,
        None => {
            log::warn!(
                "no session_key configured: using a random key; sessions end \
                 when this process does"
            );
            Signer::random_secret()
        }
    };
    let store: Arc<dyn UserStore> = if config.redis.is_empty() {
        Arc::new(store::Memory::new(revoked.clone()))
    } else {
        let client = redis::Client::open(config.redis.as_str())
            .map_err(|e| io::Error::other(format!("redis: {e}")))?;
        Arc::new(store::RedisUsers::new(client, revoked.clone()))
    };
    if config.allow_guests {
        log::warn!(
            "GUEST ACCESS ENABLED (allow_guests): anyone may connect as \
             guest:<any name>; for development and load tests only"
        );
    }
    let per_minute = |n: u32| Rate {
        per_sec: n as f32 / 60.0,
        burst: n as f32,
    };
    Ok(Auth {
        settings: Settings {
            allow_guests: config.allow_guests,
            session_ttl_secs: config.session_ttl_secs,
            cookie_secure: config.cookie_secure,
            allowed_origins: config.origins(),
            password_iterations: config.password_iterations,
            trusted_proxies: config
                .proxies()
                .map_err(|e| io::Error::other(e.to_string()))?,
        },
        signer: Signer::new(&secret),
        revoked,
        store,
        pool: Pool::new(config.auth_queue),
        attempts_by_ip: KeyedLimiter::new(per_minute(config.login_attempts_per_ip)),
        attempts_by_user: KeyedLimiter::new(per_minute(config.login_attempts_per_user)),
        conns_by_ip: Counter::new(config.max_conns_per_ip),
        conns_by_user: Counter::new(config.max_conns_per_user),
        pending_by_ip: Counter::new(config.max_pending_per_ip),
        stats,
    })
}

/// The canary runs with Redis only, and can be turned off.
fn canary_enabled(config: &Config) -> bool {
    !config.redis.is_empty() && config.canary_interval_ms > 0
}

fn start_canary(
    setup: Setup,
    index: usize,
    config: &Config,
    broker: &Arc<dyn Broker>,
    stats: &Arc<Stats>,
) -> io::Result<()> {
    let canary = Canary {
        poll: setup.poll,
        inbox: setup.inbox,
        index,
        broker: broker.clone(),
        stats: stats.clone(),
        interval: std::time::Duration::from_millis(config.canary_interval_ms),
        node: canary::node_name(),
    };
    std::thread::Builder::new()
        .name("canary".into())
        .spawn(move || canary.run())
        .map(drop)
}

/// The embedded broker, or the Redis one when a URL is configured.
fn make_broker(
    config: &Config,
    inboxes: Vec<Arc<Inbox>>,
    revoked: Arc<Revocations>,
) -> io::Result<Arc<dyn Broker>> {
    if config.redis.is_empty() {
        let limits = Limits {
            history_size: config.history_size,
            history_on_join: config.history_on_join,
            max_rooms: config.max_rooms,
            max_history_bytes: config.max_history_bytes,
            max_owned_rooms: config.max_owned_rooms,
            max_room_members: config.max_room_members,
        };
        return Ok(Arc::new(MemoryBroker::new(inboxes, limits)));
    }
    let options = Options {
        url: config.redis.clone(),
        history_size: config.history_size,
        history_on_join: config.history_on_join,
        max_pending: config.redis_max_pending,
        max_room_members: config.max_room_members,
    };
    let broker = RedisBroker::start(options, inboxes, revoked)
        .map_err(|e| io::Error::other(format!("redis: {e}")))?;
    Ok(Arc::new(broker))
}

#[derive(Clone)]
pub struct ShutdownHandle {
    inboxes: Vec<Arc<Inbox>>,
    stats: Arc<Stats>,
}

impl ShutdownHandle {
    /// Stops accepting and closes every connection with 1001; reactors
    /// exit when their connections are gone or the shutdown timeout passes.
    pub fn shutdown(&self) {
        for inbox in &self.inboxes {
            inbox.push(Event::Shutdown);
        }
    }

    /// Starts a drain (see `drain.rs`): readiness false now, listeners
    /// closed after `drain_delay_ms`, connections closed with 1012 over
    /// `drain_window_ms`; reactors exit when their connections are gone.
    pub fn drain(&self) {
        self.stats
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for inbox in &self.inboxes {
            inbox.push(Event::Drain);
        }
    }
}
