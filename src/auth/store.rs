//! Where accounts live: process memory for the embedded default, Redis when
//! the Redis broker is configured (one key per user, `parley:user:{name}`,
//! created with SET NX so two nodes cannot both sign up the same name).
//!
//! Also the revoked sessions: log out adds the session id with its expiry;
//! every reactor checks the in-process set at each WebSocket upgrade. With
//! Redis, a revocation is stored in the sorted set `parley:revoked` and
//! announced on the channel of the same name, which every node's
//! subscriber thread feeds into its own set (see broker::redis::sub).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::broker::redis::link::Link;

/// Redis names shared with the subscriber thread.
pub const REVOKED_KEY: &str = "parley:revoked";
pub const REVOKED_CHANNEL: &str = "parley:revoked";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

pub trait UserStore: Send + Sync {
    /// Stores a new user; `false` if the name is taken.
    fn create(&self, user: &str, record: &str) -> Result<bool, Unavailable>;
    /// The stored password record of `user`.
    fn get(&self, user: &str) -> Result<Option<String>, Unavailable>;
    /// Revokes session `sid` until `expires` (unix seconds), everywhere.
    fn revoke(&self, sid: &str, expires: u64) -> Result<(), Unavailable>;
}

/// Revoked session ids with their expiry; entries past it are purged.
#[derive(Default)]
pub struct Revocations {
    set: RwLock<HashMap<String, u64>>,
}

impl Revocations {
    pub fn insert(&self, sid: &str, expires: u64) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        set.insert(sid.to_string(), expires);
    }

    /// Checked by every reactor on every chat request: a read lock.
    pub fn contains(&self, sid: &str) -> bool {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        set.contains_key(sid)
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub fn purge(&self, now: u64) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        set.retain(|_, expires| *expires > now);
    }

    pub fn len(&self) -> usize {
        self.set.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accounts in process memory.
pub struct Memory {
    users: Mutex<HashMap<String, String>>,
    revoked: std::sync::Arc<Revocations>,
}

impl Memory {
    pub fn new(revoked: std::sync::Arc<Revocations>) -> Memory {
        Memory {
            users: Mutex::new(HashMap::new()),
            revoked,
        }
    }
}

impl UserStore for Memory {
    fn create(&self, user: &str, record: &str) -> Result<bool, Unavailable> {
        let mut users = lock(&self.users);
        if users.contains_key(user) {
            return Ok(false);
        }
        users.insert(user.to_string(), record.to_string());
        Ok(true)
    }

    fn get(&self, user: &str) -> Result<Option<String>, Unavailable> {
        Ok(lock(&self.users).get(user).cloned())
    }

    fn revoke(&self, sid: &str, expires: u64) -> Result<(), Unavailable> {
        self.revoked.insert(sid, expires);
        Ok(())
    }
}

/// Accounts in Redis, shared by every node.
pub struct RedisUsers {
    link: Mutex<Link>,
    revoked: std::sync::Arc<Revocations>,
}

impl RedisUsers {
    pub fn new(client: redis::Client, revoked: std::sync::Arc<Revocations>) -> RedisUsers {
        RedisUsers {
            link: Mutex::new(Link::new(client, |_| Ok(()))),
            revoked,
        }
    }
}

fn user_key(user: &str) -> String {
    format!("parley:user:{{{user}}}")
}

impl UserStore for RedisUsers {
    fn create(&self, user: &str, record: &str) -> Result<bool, Unavailable> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(user_key(user)).arg(record).arg("NX");
        let reply: Option<redis::Value> = lock(&self.link).run(|con| cmd.query(con));
        match reply {
            Some(redis::Value::Nil) => Ok(false),
            Some(_) => Ok(true),
            None => Err(Unavailable),
        }
    }

    fn get(&self, user: &str) -> Result<Option<String>, Unavailable> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(user_key(user));
        lock(&self.link)
            .run(|con| cmd.query(con))
            .ok_or(Unavailable)
    }

    fn revoke(&self, sid: &str, expires: u64) -> Result<(), Unavailable> {
        self.revoked.insert(sid, expires);
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(REVOKED_KEY)
            .arg(expires)
            .arg(sid)
            .ignore();
        pipe.cmd("PUBLISH")
            .arg(REVOKED_CHANNEL)
            .arg(format!("{sid} {expires}"))
            .ignore();
        let done: Option<()> = lock(&self.link).run(|con| pipe.query(con));
        done.ok_or(Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn memory_store_refuses_duplicates_and_revokes() {
        let revoked = Arc::new(Revocations::default());
        let store = Memory::new(revoked.clone());
        assert_eq!(store.create("alice", "h1"), Ok(true));
        assert_eq!(store.create("alice", "h2"), Ok(false));
        assert_eq!(store.get("alice"), Ok(Some("h1".into())));
        assert_eq!(store.get("bob"), Ok(None));
        store.revoke("s1", 100).unwrap();
        assert!(revoked.contains("s1"));
        revoked.purge(100);
        assert!(revoked.is_empty());
    }
}
