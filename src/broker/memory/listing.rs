//! Which rooms the embedded broker lists, kept apart from the rooms so a
//! `rooms` request costs the length of its answer, not the number of
//! rooms: walking (and locking) every room on each request let one socket
//! stall everyone once a few thousand rooms existed.
//!
//! Public rooms are listed for everyone, private rooms for their members.
//! Rooms whose name starts with `_` are the server's own and never listed.
//! The index also counts the private rooms each user owns, for the
//! `max_owned_rooms` limit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::broker::RoomName;

#[derive(Default)]
pub struct Listing {
    public: BTreeSet<RoomName>,
    /// Private rooms by member.
    private: HashMap<Arc<str>, BTreeSet<RoomName>>,
    /// Private rooms by owner: how many each user created.
    owned: HashMap<Arc<str>, usize>,
}

fn hidden(name: &str) -> bool {
    name.starts_with('_')
}

impl Listing {
    pub fn add_public(&mut self, name: &RoomName) {
        if !hidden(name) {
            self.public.insert(name.clone());
        }
    }

    /// A forgotten public room (private rooms are never forgotten).
    pub fn remove_public(&mut self, name: &str) {
        self.public.remove(name);
    }

    /// Private rooms `owner` has created.
    pub fn owned_by(&self, owner: &str) -> usize {
        self.owned.get(owner).copied().unwrap_or(0)
    }

    pub fn add_private(&mut self, name: &RoomName, owner: &Arc<str>) {
        *self.owned.entry(owner.clone()).or_default() += 1;
        self.add_member(name, owner);
    }

    pub fn add_member(&mut self, name: &RoomName, user: &Arc<str>) {
        if !hidden(name) {
            let rooms = self.private.entry(user.clone()).or_default();
            rooms.insert(name.clone());
        }
    }

    /// The first `limit` rooms `user` may see, by name.
    pub fn visible(&self, user: &str, limit: usize) -> Vec<RoomName> {
        let public = self.public.iter().take(limit);
        let private = self.private.get(user).into_iter().flatten().take(limit);
        let mut names: Vec<RoomName> = public.chain(private).cloned().collect();
        names.sort_unstable();
        names.dedup();
        names.truncate(limit);
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RoomName {
        Arc::from(s)
    }

    fn names(v: Vec<RoomName>) -> Vec<String> {
        v.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn members_see_their_private_rooms_among_the_public_ones() {
        let mut l = Listing::default();
        let ann: Arc<str> = Arc::from("ann");
        for r in ["b", "d", "_canary"] {
            l.add_public(&name(r));
        }
        l.add_private(&name("c"), &ann);
        l.add_private(&name("a"), &ann);
        l.add_member(&name("a"), &Arc::from("bob"));
        assert_eq!(names(l.visible("ann", 10)), ["a", "b", "c", "d"]);
        assert_eq!(names(l.visible("bob", 10)), ["a", "b", "d"]);
        assert_eq!(names(l.visible("eve", 10)), ["b", "d"]);
        assert_eq!(l.owned_by("ann"), 2);
        assert_eq!(l.owned_by("bob"), 0);
    }

    #[test]
    fn the_answer_is_capped_and_in_name_order() {
        let mut l = Listing::default();
        let ann: Arc<str> = Arc::from("ann");
        for i in 0..50 {
            l.add_public(&name(&format!("p{i:02}")));
            l.add_private(&name(&format!("a{i:02}")), &ann);
        }
        let seen = names(l.visible("ann", 10));
        assert_eq!(seen.len(), 10);
        assert_eq!(seen.first().map(String::as_str), Some("a00"));
        assert_eq!(seen.last().map(String::as_str), Some("a09"));
        l.remove_public("p00");
        assert_eq!(names(l.visible("eve", 1)), ["p01"]);
    }
}
