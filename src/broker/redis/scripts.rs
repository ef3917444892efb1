//! The Lua scripts, loaded once per connection and called by hash.

use std::sync::OnceLock;

use redis::{Connection, RedisResult, Script};

use super::keys;

/// Every script the bridge threads call.
pub struct Scripts {
    pub send: Script,
    pub access: Script,
    pub join: Script,
    pub history: Script,
    pub create: Script,
    pub invite: Script,
    pub enter: Script,
    pub exit: Script,
    pub reap: Script,
    pub rotate: Script,
}

pub fn all() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        send: Script::new(keys::SEND_SCRIPT),
        access: Script::new(keys::ACCESS_SCRIPT),
        join: Script::new(keys::JOIN_SCRIPT),
        history: Script::new(keys::HISTORY_SCRIPT),
        create: Script::new(keys::CREATE_SCRIPT),
        invite: Script::new(keys::INVITE_SCRIPT),
        enter: Script::new(keys::ENTER_SCRIPT),
        exit: Script::new(keys::EXIT_SCRIPT),
        reap: Script::new(keys::REAP_SCRIPT),
        rotate: Script::new(keys::ROTATE_SCRIPT),
    })
}

/// Loads every script into a new connection, so pipelines can use
/// EVALSHA without a NOSCRIPT round trip.
pub fn load(con: &mut Connection) -> RedisResult<()> {
    let s = all();
    let all = [
        &s.send, &s.access, &s.join, &s.history, &s.create, &s.invite, &s.enter, &s.exit, &s.reap,
        &s.rotate,
    ];
    for script in all {
        script.load(con)?;
    }
    Ok(())
}
