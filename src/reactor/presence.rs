//! Presence changes held briefly and sent as one frame per room.
//!
//! Every change (a user's first socket entered a room, or their last one
//! left) used to be one frame to every member: a join storm into a room of
//! N members cost N frames per joiner, N² in all, and the write queues it
//! filled were most of what a burst of connections left behind in memory.
//! A reactor now gathers the changes of each room for `presence_interval_ms`
//! and sends every local member one frame listing who came online and who
//! went offline, encoded once for all of them.
//!
//! Each entry states a user's new state, not a difference, so applying a
//! frame twice or after `joined` already listed the user changes nothing:
//! a client keeps a set. Within one batch only a user's last state counts.
//! A frame that names one user only is not sent to that user's own
//! sockets: their `joined` already listed them, and a lone joiner should
//! not hear about itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::RoomName;
use crate::chat::wire::{self, Frame};

/// Names one frame lists at most; a larger batch becomes several frames,
/// so no member is handed one huge frame after a storm.
const NAMES_PER_FRAME: usize = 256;

#[derive(Default)]
pub struct PresenceBatch {
    /// Per room, changes in arrival order: (user, online).
    pending: HashMap<RoomName, Vec<(Arc<str>, bool)>>,
    /// When the held changes go out; `None` while nothing is held.
    due: Option<Instant>,
}

impl PresenceBatch {
    /// Holds a change; the first one held starts the interval.
    pub fn add(&mut self, room: RoomName, user: Arc<str>, online: bool, due: Instant) {
        self.pending.entry(room).or_default().push((user, online));
        self.due.get_or_insert(due);
    }

    /// When the held changes are due, if any are held.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether the held changes should go out at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|due| now >= due)
    }

    /// Takes every held change as frames, each with the room it is for
    /// and, when it names a single user, that user (who does not get it).
    pub fn take(&mut self) -> Vec<(RoomName, Frame, Option<Arc<str>>)> {
        self.due = None;
        let mut frames = Vec::new();
        for (room, changes) in self.pending.drain() {
            let (online, offline) = last_states(changes);
            let (mut on, mut off) = (&online[..], &offline[..]);
            while !on.is_empty() || !off.is_empty() {
                let n = on.len().min(NAMES_PER_FRAME);
                let m = off.len().min(NAMES_PER_FRAME - n);
                let (on_now, on_rest) = on.split_at(n);
                let (off_now, off_rest) = off.split_at(m);
                let only = match (on_now, off_now) {
                    ([one], []) | ([], [one]) => Some(one.clone()),
                    _ => None,
                };
                frames.push((room.clone(), wire::presence(&room, on_now, off_now), only));
                (on, off) = (on_rest, off_rest);
            }
        }
        frames
    }
}

/// The interval's deadline from `now`.
pub fn deadline(now: Instant, interval_ms: u64) -> Instant {
    now + Duration::from_millis(interval_ms)
}

/// Each user's last state in `changes`, split into (online, offline), in
/// the order users first appear.
fn last_states(changes: Vec<(Arc<str>, bool)>) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
    let mut last: HashMap<Arc<str>, (usize, bool)> = HashMap::with_capacity(changes.len());
    for (i, (user, online)) in changes.into_iter().enumerate() {
        last.entry(user)
            .and_modify(|state| state.1 = online)
            .or_insert((i, online));
    }
    let mut users: Vec<(Arc<str>, (usize, bool))> = last.into_iter().collect();
    users.sort_unstable_by_key(|(_, (first, _))| *first);
    let (on, off): (Vec<_>, Vec<_>) = users.into_iter().partition(|(_, (_, online))| *online);
    let names = |v: Vec<(Arc<str>, (usize, bool))>| v.into_iter().map(|(u, _)| u).collect();
    (names(on), names(off))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(frame: &Frame) -> Value {
        serde_json::from_slice(wire::payload(frame)).unwrap()
    }

    fn batch(changes: &[(&str, &str, bool)]) -> Vec<(String, Value)> {
        let mut b = PresenceBatch::default();
        let now = Instant::now();
        for &(room, user, online) in changes {
            b.add(Arc::from(room), Arc::from(user), online, now);
        }
        let mut frames: Vec<(String, Value)> = b
            .take()
            .iter()
            .map(|(room, frame, _)| (room.to_string(), json(frame)))
            .collect();
        frames.sort_by(|a, b| a.0.cmp(&b.0));
        frames
    }

    #[test]
    fn one_frame_per_room_with_each_users_last_state() {
        let frames = batch(&[
            ("a", "ann", true),
            ("a", "bob", true),
            ("b", "cat", false),
            ("a", "ann", false),
            ("a", "dan", true),
        ]);
        assert_eq!(frames.len(), 2);
        let (room, a) = &frames[0];
        assert_eq!(room, "a");
        assert_eq!(a["type"], "presence");
        assert_eq!(a["room"], "a");
        assert_eq!(a["online"], serde_json::json!(["bob", "dan"]));
        assert_eq!(a["offline"], serde_json::json!(["ann"]));
        let (_, b) = &frames[1];
        assert_eq!(b["online"], serde_json::json!([]));
        assert_eq!(b["offline"], serde_json::json!(["cat"]));
    }

    #[test]
    fn a_frame_naming_one_user_says_who_it_skips() {
        let mut b = PresenceBatch::default();
        let now = Instant::now();
        b.add(Arc::from("a"), Arc::from("ann"), true, now);
        b.add(Arc::from("b"), Arc::from("bob"), true, now);
        b.add(Arc::from("b"), Arc::from("cat"), false, now);
        let mut frames = b.take();
        frames.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(frames[0].2.as_deref(), Some("ann"));
        assert_eq!(frames[1].2, None);
    }

    #[test]
    fn a_user_who_left_and_came_back_is_online() {
        let frames = batch(&[("a", "ann", false), ("a", "ann", true)]);
        assert_eq!(frames[0].1["online"], serde_json::json!(["ann"]));
        assert_eq!(frames[0].1["offline"], serde_json::json!([]));
    }

    #[test]
    fn a_large_batch_is_split_and_loses_no_one() {
        let users: Vec<String> = (0..600).map(|i| format!("u{i}")).collect();
        let changes: Vec<(&str, &str, bool)> = users
            .iter()
            .enumerate()
            .map(|(i, u)| ("big", u.as_str(), i % 3 != 0))
            .collect();
        let frames = batch(&changes);
        assert_eq!(frames.len(), 3);
        let mut seen = Vec::new();
        for (_, f) in &frames {
            let on = f["online"].as_array().unwrap();
            let off = f["offline"].as_array().unwrap();
            assert!(on.len() + off.len() <= NAMES_PER_FRAME);
            seen.extend(
                on.iter()
                    .chain(off)
                    .map(|v| v.as_str().unwrap().to_string()),
            );
        }
        seen.sort();
        let mut want = users.clone();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn the_first_change_sets_the_deadline_and_taking_clears_it() {
        let mut b = PresenceBatch::default();
        let t0 = Instant::now();
        assert!(b.due().is_none());
        b.add(Arc::from("r"), Arc::from("u"), true, t0);
        b.add(
            Arc::from("r"),
            Arc::from("v"),
            true,
            t0 + Duration::from_secs(5),
        );
        assert_eq!(b.due(), Some(t0));
        assert!(b.is_due(t0));
        assert_eq!(b.take().len(), 1);
        assert!(b.due().is_none() && b.take().is_empty());
    }
}
