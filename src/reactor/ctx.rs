//! Everything a reactor's handlers share apart from the connections
//! themselves: configuration, the broker, local room membership, the lists
//! of connections to flush or remove at the end of the pass, and the clock.
//!
//! Kept apart from the connection slab so a handler can hold one connection
//! mutably and the context mutably at the same time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::presence::PresenceBatch;
use crate::auth::limits::Rate;
use crate::auth::Auth;
use crate::broker::{Broker, ConnRef, RoomName};
use crate::config::Config;
use crate::metrics::Limit;
use crate::stats::{ReactorStats, Stats};

pub struct Ctx {
    /// This reactor's index.
    pub id: usize,
    pub config: Arc<Config>,
    pub broker: Arc<dyn Broker>,
    pub auth: Arc<Auth>,
    pub stats: Arc<ReactorStats>,
    /// Every reactor's counters, for health and metrics pages.
    pub all_stats: Arc<Stats>,
    /// Local members (slab keys) of each room, joined connections only.
    pub rooms: HashMap<RoomName, Vec<usize>>,
    /// Connections with output queued this pass, flushed once at its end.
    pub dirty: Vec<usize>,
    /// Connections to remove at the end of this pass.
    pub dead: Vec<usize>,
    /// Connections that stopped reading at their budget with input left.
    pub revisit: Vec<usize>,
    /// Presence changes waiting to go out, one frame per room.
    pub presence: PresenceBatch,
    /// Connections still in the HTTP phase (handshakes pending).
    pub handshakes: usize,
    pub clock: Clock,
}

/// The reactor's notion of time: one `Instant` read per loop pass, plus a
/// coarse second counter small enough to store in every connection.
pub struct Clock {
    start: Instant,
    pub now: Instant,
    pub secs: u32,
    /// Wall clock, ms since the Unix epoch, read once per pass: coarse,
    /// but enough to compare with a message's `ts`.
    pub wall_ms: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let now = Instant::now();
        Clock {
            start: now,
            now,
            secs: 0,
            wall_ms: crate::broker::memory::now_ms(),
        }
    }

    pub fn tick(&mut self) {
        self.now = Instant::now();
        let secs = self.now.duration_since(self.start).as_secs();
        self.secs = u32::try_from(secs).unwrap_or(u32::MAX);
        self.wall_ms = crate::broker::memory::now_ms();
    }

    /// Milliseconds since the reactor started, as of this pass.
    pub fn ms(&self) -> u64 {
        u64::try_from(self.now.duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// The coarse second `d` from now.
    pub fn secs_after(&self, d: Duration) -> u32 {
        let d = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        self.secs.saturating_add(d)
    }
}

impl Ctx {
    /// Each socket's request budget.
    pub fn message_rate(&self) -> Rate {
        let per_sec = self.config.message_rate as f32;
        Rate {
            per_sec,
            burst: per_sec * 2.0,
        }
    }

    /// Counts a refusal under its `limit` label of
    /// `parley_rate_limit_hits_total`.
    pub fn hit_limit(&self, limit: Limit) {
        self.auth.stats.rate_limit_hits.hit(limit);
    }

    pub fn conn_ref(&self, key: usize, conn: &Conn) -> ConnRef {
        ConnRef {
            reactor: self.id,
            key,
            gen: conn.gen,
        }
    }

    /// A connection enters the HTTP phase; false if its address already
    /// has `max_pending_per_ip` handshakes pending (a trusted proxy is not
    /// limited: its clients are told apart only after the head).
    pub fn enter_http(&mut self, peer: std::net::IpAddr) -> bool {
        let proxy = self.auth.settings.trusted_proxies.contains(&peer);
        if !proxy && !self.auth.pending_by_ip.acquire(&peer) {
            return false;
        }
        self.handshakes += 1;
        true
    }

    /// A connection leaves the HTTP phase (upgraded, closing or gone).
    pub fn leave_http(&mut self, peer: std::net::IpAddr) {
        self.handshakes = self.handshakes.saturating_sub(1);
        if !self.auth.settings.trusted_proxies.contains(&peer) {
            self.auth.pending_by_ip.release(&peer);
        }
    }

    /// Lists `conn` for this pass's flush if it is not listed yet.
    pub fn mark_dirty(&mut self, key: usize, conn: &mut Conn) {
        if !conn.dirty && !conn.dead {
            conn.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Lists `conn` for removal; it takes part in nothing from now on.
    pub fn mark_dead(&mut self, key: usize, conn: &mut Conn) {
        if !conn.dead {
            conn.dead = true;
            self.dead.push(key);
        }
    }

    /// Adds a joined member to the local room list.
    pub fn add_member(&mut self, room: &RoomName, key: usize) {
        self.rooms.entry(room.clone()).or_default().push(key);
    }

    /// Removes a member and tells the broker this reactor holds one
    /// membership fewer.
    pub fn remove_member(&mut self, room: &RoomName, key: usize, user: &Arc<str>) {
        if let Some(members) = self.rooms.get_mut(room) {
            if let Some(i) = members.iter().position(|&k| k == key) {
                members.swap_remove(i);
            }
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
        self.broker.leave(room, self.id, user);
    }
}
