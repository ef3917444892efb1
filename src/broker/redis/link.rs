//! A Redis connection that comes back by itself: connects on demand with
//! timeouts, and after a failure waits out a capped, jittered back-off
//! before trying again, so a Redis outage costs one failed attempt per
//! back-off period instead of a connect per request.

use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisResult};

/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one command may take before the connection counts as broken.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

pub struct Link {
    client: Client,
    con: Option<Connection>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// What to run on every new connection (loading the script).
    on_connect: fn(&mut Connection) -> RedisResult<()>,
}

impl Link {
    pub fn new(client: Client, on_connect: fn(&mut Connection) -> RedisResult<()>) -> Link {
        Link {
            client,
            con: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            on_connect,
        }
    }

    /// The connection, connecting first if the back-off allows; `None`
    /// while Redis is unreachable.
    pub fn get(&mut self) -> Option<&mut Connection> {
        if self.con.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            match self.connect() {
                Ok(con) => {
                    self.con = Some(con);
                    self.retry_at = None;
                    self.backoff = FIRST_BACKOFF;
                }
                Err(e) => {
                    log::debug!("redis connect failed: {e}");
                    self.failed();
                    return None;
                }
            }
        }
        self.con.as_mut()
    }

    /// Drops the connection after an error; the next `get` reconnects
    /// after the back-off.
    pub fn failed(&mut self) {
        self.con = None;
        self.retry_at = Some(Instant::now() + jitter(self.backoff));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Runs `f` on the connection. A connection that broke while idle (the
    /// usual case after a Redis restart) is replaced at once and `f` tried
    /// again, before the failure counts and the back-off starts.
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Option<T> {
        let fresh = self.con.is_none();
        let first = f(self.get()?);
        match first {
            Ok(value) => return Some(value),
            Err(e) if fresh || !is_connection_error(&e) => {
                log::debug!("redis: {e}");
                self.failed();
                return None;
            }
            Err(_) => self.con = None,
        }
        match f(self.get()?) {
            Ok(value) => Some(value),
            Err(e) => {
                log::debug!("redis: {e}");
                self.failed();
                None
            }
        }
    }

    pub fn is_up(&self) -> bool {
        self.con.is_some()
    }

    fn connect(&self) -> RedisResult<Connection> {
        let mut con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        (self.on_connect)(&mut con)?;
        Ok(con)
    }
}

/// `d` scaled by a random factor in [0.5, 1.5), so nodes that lost Redis
/// together do not all come back in the same millisecond.
pub fn jitter(d: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut byte = [0u8; 1];
    let _ = ring::rand::SystemRandom::new().fill(&mut byte);
    d.mul_f64(0.5 + f64::from(byte[0]) / 256.0)
}

/// Whether an error means the connection itself is gone.
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// Whether an error only means a read timed out (the connection is fine).
pub fn is_timeout(e: &redis::RedisError) -> bool {
    e.is_timeout()
}
