//! Presence through Redis: who is online in a room, across nodes.
//!
//! Each node counts its own sockets per (room, user) and touches Redis only
//! when a user's first local socket enters a room or the last one leaves:
//! the room's `online` hash holds a field "<node>|<user>" per node that has
//! the user, and a script announces "online" when the first node adds a
//! user and "offline" when the last removes them (as "P\n1\n<user>" /
//! "P\n0\n<user>" on the room's channel). A node that dies stops renewing
//! its lease (see `cmd.rs`); the survivors then remove its fields and
//! announce its users as gone.

use std::collections::HashMap;
use std::sync::Arc;

use super::keys::{self, channel, RoomKeys};
use super::link::Link;
use super::scripts;
use crate::broker::RoomName;

pub struct Presence {
    node: Arc<str>,
    local: HashMap<(RoomName, Arc<str>), u32>,
}

impl Presence {
    pub fn new(node: Arc<str>) -> Presence {
        Presence {
            node,
            local: HashMap::new(),
        }
    }

    /// Counts a socket of `user` in; returns the room's online users (this
    /// one included), or `None` if Redis could not be asked.
    pub fn enter(
        &mut self,
        link: &mut Link,
        room: &RoomName,
        user: &Arc<str>,
    ) -> Option<Vec<Arc<str>>> {
        let fields = self.announce(link, room, user)?;
        *self.local.entry((room.clone(), user.clone())).or_insert(0) += 1;
        Some(keys::users_of(&fields).into_iter().map(Arc::from).collect())
    }

    /// The node (this presence) as the scripts name it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Counts a socket in whose online entry a batched join script wrote.
    pub fn count_in(&mut self, room: &RoomName, user: &Arc<str>) {
        *self.local.entry((room.clone(), user.clone())).or_insert(0) += 1;
    }

    /// Counts a socket of `user` out; the last one takes the user offline.
    pub fn exit(&mut self, link: &mut Link, room: &RoomName, user: &Arc<str>) {
        let key = (room.clone(), user.clone());
        match self.local.get_mut(&key) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.local.remove(&key);
                let k = RoomKeys::new(room);
                let mut call = scripts::all().exit.prepare_invoke();
                call.key(&k.online)
                    .arg(&*self.node)
                    .arg(&**user)
                    .arg(channel(room));
                let _: Option<i64> = link.run(|con| call.invoke(con));
            }
            None => {}
        }
    }

    /// After a reconnect: puts every local user back (their entries may
    /// have been reaped while this node could not renew its lease).
    pub fn restore(&mut self, link: &mut Link) {
        let entries: Vec<(RoomName, Arc<str>)> = self.local.keys().cloned().collect();
        for (room, user) in entries {
            let _ = self.announce(link, &room, &user);
        }
    }

    fn announce(&self, link: &mut Link, room: &RoomName, user: &Arc<str>) -> Option<Vec<String>> {
        let k = RoomKeys::new(room);
        let mut call = scripts::all().enter.prepare_invoke();
        call.key(&k.online)
            .key(keys::node_rooms(&self.node))
            .arg(&*self.node)
            .arg(&**user)
            .arg(&**room)
            .arg(channel(room));
        link.run(|con| call.invoke(con))
    }
}
