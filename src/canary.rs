//! The canary: proof, from the inside, that this node both publishes and
//! receives room messages through the shared broker.
//!
//! Every `canary_interval_ms` each node publishes a numbered message to the
//! hidden room [`ROOM`] (names starting with `_` are refused to clients)
//! through the normal broker path, and is subscribed to it like any member.
//! Per publishing node it records receipt latency, gaps in the numbering
//! and when it last heard from that node. A subscriber that died without
//! an error (a half-open pub/sub socket, a stuck bridge thread) shows as
//! `parley_canary_last_seen_seconds` growing for every node, this one
//! included, while sends still succeed; a node whose publishing broke shows
//! as its series growing on every other node.
//!
//! Design: a small thread of its own that is, to the broker, one more
//! reactor: it owns an [`Inbox`] appended after the reactors' (so its
//! `ConnRef::reactor` is the last index) and talks only through the
//! [`Broker`] trait. That takes no slot in any reactor, cannot slow a
//! reactor down, and exercises exactly the path members use (join, the
//! subscriber thread, in-order delivery, the send script). It runs only
//! with Redis: the embedded broker has no subscriber to lose.
//!
//! Latency compares the publisher's wall clock (microseconds, carried in
//! the message text) with the receiver's, so across hosts it includes
//! their clock offset; on one host, or with NTP, it is the real figure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Poll};

use crate::broker::{Broker, ConnRef, JoinRequest, PublishRequest, RoomName};
use crate::chat::wire;
use crate::metrics::{Histogram, Snapshot};
use crate::reactor::inbox::{Event, Inbox};
use crate::stats::Stats;

/// The hidden room every node's canary publishes to.
pub const ROOM: &str = "_canary";
/// A node unheard of for this long is forgotten (bounds label count).
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Missed intervals of our own canary before a warning is logged.
const STALE_INTERVALS: u32 = 3;

/// What the canary measured, per publishing node, for `/metrics`.
#[derive(Debug, Default)]
pub struct CanaryStats {
    pub gaps: AtomicU64,
    nodes: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    last: u64,
    latency: Histogram,
}

/// One node's figures at scrape time.
pub struct NodeReport {
    pub node: String,
    pub last_seen: Duration,
    pub latency: Snapshot,
}

impl CanaryStats {
    /// Records message `n` from `node`; returns how many were skipped.
    pub fn record(&self, node: &str, n: u64, latency_us: u64) -> u64 {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        nodes.retain(|_, s| now.duration_since(s.at) < FORGET_AFTER);
        let seen = nodes.entry(node.to_string()).or_insert_with(|| Seen {
            at: now,
            last: n.saturating_sub(1),
            latency: Histogram::default(),
        });
        if n <= seen.last {
            return 0; // a repeat or a restarted counter: not a gap
        }
        let skipped = n - seen.last - 1;
        seen.last = n;
        seen.at = now;
        seen.latency.observe_us(latency_us);
        self.gaps.fetch_add(skipped, Ordering::Relaxed);
        skipped
    }

    /// How long ago `node` was last heard from.
    pub fn silence(&self, node: &str) -> Option<Duration> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.get(node).map(|s| s.at.elapsed())
    }

    pub fn report(&self) -> Vec<NodeReport> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<NodeReport> = nodes
            .iter()
            .map(|(node, s)| {
                let mut latency = Snapshot::default();
                s.latency.add_to(&mut latency);
                NodeReport {
                    node: node.clone(),
                    last_seen: s.at.elapsed(),
                    latency,
                }
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }
}

/// This process's name in canary messages: host name and pid, so nodes
/// sharing a host stay apart and a restart is a new series.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(48)
        .collect();
    format!("{host}-{}", std::process::id())
}

pub struct Canary {
    pub poll: Poll,
    pub inbox: Arc<Inbox>,
    /// This canary's index among the broker's inboxes.
    pub index: usize,
    pub broker: Arc<dyn Broker>,
    pub stats: Arc<Stats>,
    pub interval: Duration,
    pub node: String,
}

impl Canary {
    pub fn run(mut self) {
        let me = ConnRef {
            reactor: self.index,
            key: 0,
            gen: 0,
        };
        let room: RoomName = Arc::from(ROOM);
        let mut events = Events::with_capacity(16);
        let mut queued = Vec::new();
        let mut joined = false;
        let mut n = 0u64;
        let mut next = Instant::now();
        let mut warned = false;
        log::info!("canary: node {} every {:?}", self.node, self.interval);
        loop {
            let timeout = next.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("canary: poll failed: {e}");
                    return;
                }
            }
            self.inbox.take_all(&mut queued);
            for event in queued.drain(..) {
                match event {
                    Event::Joined(_) => joined = true,
                    Event::JoinFailed(_) => joined = false,
                    Event::Deliver { frame, .. } => self.on_message(&frame),
                    Event::Shutdown => return,
                    _ => {}
                }
            }
            if Instant::now() < next {
                continue;
            }
            next = Instant::now() + self.interval;
            if !joined {
                self.broker.join(JoinRequest {
                    to: me,
                    room: room.clone(),
                    user: Arc::from(self.node.as_str()),
                    since: None,
                    epoch: None,
                    id: None,
                });
                continue;
            }
            n += 1;
            self.publish(me, &room, n);
            warned = self.check_own(warned);
        }
    }

    fn publish(&self, me: ConnRef, room: &RoomName, n: u64) {
        self.broker.publish(PublishRequest {
            to: me,
            room: room.clone(),
            from: Arc::from(self.node.as_str()),
            text: format!("{n} {}", wall_us()),
            cid: format!("{}-{n}", self.node).into(),
            id: None,
            at: Instant::now(),
        });
    }

    fn on_message(&self, frame: &[u8]) {
        let Some((node, n, sent_us)) = parse(wire::payload(frame)) else {
            return;
        };
        let latency = wall_us().saturating_sub(sent_us);
        let skipped = self.stats.canary.record(&node, n, latency);
        if skipped > 0 {
            log::warn!("canary: {skipped} message(s) from {node} never arrived");
        }
    }

    /// Warns once per episode when our own messages stop coming back.
    fn check_own(&self, warned: bool) -> bool {
        let limit = self.interval * STALE_INTERVALS;
        let stale = self
            .stats
            .canary
            .silence(&self.node)
            .is_some_and(|d| d > limit);
        if stale && !warned {
            log::warn!(
                "canary: own messages not received for over {limit:?}; \
                 the subscriber may be dead"
            );
        }
        if !stale && warned {
            log::info!("canary: own messages arriving again");
        }
        stale
    }
}

/// `(from, n, sent_us)` of a canary message payload.
fn parse(payload: &[u8]) -> Option<(String, u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let from = v.get("from")?.as_str()?.to_string();
    let mut text = v.get("text")?.as_str()?.split(' ');
    let n = text.next()?.parse().ok()?;
    let sent_us = text.next()?.parse().ok()?;
    Some((from, n, sent_us))
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_per_node_and_repeats_ignored() {
        let s = CanaryStats::default();
        assert_eq!(s.record("a", 5, 100), 0, "first sight is no gap");
        assert_eq!(s.record("a", 6, 100), 0);
        assert_eq!(s.record("a", 9, 100), 2);
        assert_eq!(s.record("a", 9, 100), 0);
        assert_eq!(s.record("b", 1, 100), 0);
        assert_eq!(s.gaps.load(Ordering::Relaxed), 2);
        let r = s.report();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].latency.count(), 3);
    }

    #[test]
    fn payloads_parse() {
        let frame = wire::message(ROOM, 3, "h-1", "7 1000", 5, "h-1-7");
        assert_eq!(parse(wire::payload(&frame)), Some(("h-1".into(), 7, 1000)));
        assert_eq!(parse(b"{\"from\":\"x\",\"text\":\"hi\"}"), None);
    }

    #[test]
    fn node_names_are_label_safe() {
        let n = node_name();
        assert!(n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
    }
}
