//! Joins in batches. Under a reconnect storm or steady churn, joins queue
//! up behind the subscriber thread; serving them one at a time costs three
//! Redis round trips each. Here every queued join of a room this node
//! already follows goes out in one pipeline (per join: the join script,
//! which checks access and marks the user online, and the backlog read),
//! so a batch costs one round trip. Joins of rooms not yet followed take
//! the single path, which subscribes first.
//!
//! The ordering promise holds as in the single path: no pub/sub message is
//! handled between reading a backlog and queueing its `Joined`, so the
//! backlog ends at `delivered` and live delivery continues from there.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::{PubSub, RedisResult, Value};

use super::super::entry::{parse_entries, Entry};
use super::super::keys::{self, channel, RoomKeys};
use super::super::scripts;
use super::SubThread;
use crate::broker::JoinRequest;
use crate::chat::ErrorCode;
use crate::reactor::inbox::{Event, Joined};

/// One join of a followed room, with what its backlog read asks for.
struct Planned {
    req: JoinRequest,
    delivered: u64,
    epoch: Option<String>,
    /// `since` was valid for this room's epoch and not in the future.
    resume: bool,
}

impl SubThread {
    /// Serves queued joins: followed rooms in one pipeline, others singly.
    pub(super) fn join_batch(
        &mut self,
        joins: Vec<JoinRequest>,
        pubsub: &mut PubSub<'_>,
    ) -> RedisResult<()> {
        let mut planned = Vec::with_capacity(joins.len());
        let mut fresh = Vec::new();
        for req in joins {
            self.pending_joins.fetch_sub(1, Ordering::Relaxed);
            match self.rooms.get(&req.room) {
                Some(room) => {
                    let delivered = room.delivered;
                    let epoch = room.epoch.clone();
                    let same_epoch = match (&req.epoch, &epoch) {
                        (Some(asked), Some(known)) => asked == known,
                        (Some(_), None) => false,
                        (None, _) => true,
                    };
                    let resume = same_epoch && req.since.is_some_and(|s| s <= delivered);
                    planned.push(Planned {
                        req,
                        delivered,
                        epoch,
                        resume,
                    });
                }
                None => fresh.push(req),
            }
        }
        if !planned.is_empty() {
            self.pipelined(planned, pubsub)?;
        }
        // Rooms not followed yet: subscribe first, one join at a time.
        let mut fresh = fresh.into_iter();
        while let Some(req) = fresh.next() {
            if let Err(e) = self.join(req, pubsub) {
                fresh.for_each(|req| self.refuse(req));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Joins of followed rooms, in one pipeline.
    fn pipelined(&mut self, planned: Vec<Planned>, pubsub: &mut PubSub<'_>) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for p in &planned {
            let k = RoomKeys::new(&p.req.room);
            pipe.cmd("EVALSHA")
                .arg(scripts::all().join.get_hash())
                .arg(5)
                .arg(&k.meta)
                .arg(&k.members)
                .arg(keys::PUBLIC_ROOMS)
                .arg(&k.online)
                .arg(keys::node_rooms(self.presence.node()))
                .arg(&*p.req.user)
                .arg(&*p.req.room)
                .arg(self.presence.node())
                .arg(channel(&p.req.room));
            match p.req.since.filter(|_| p.resume) {
                Some(since) => pipe
                    .cmd("XRANGE")
                    .arg(&k.log)
                    .arg(format!("{}-0", since + 1))
                    .arg(format!("{}-0", p.delivered)),
                None => pipe
                    .cmd("XREVRANGE")
                    .arg(&k.log)
                    .arg(format!("{}-0", p.delivered))
                    .arg("-")
                    .arg("COUNT")
                    .arg(self.history_on_join),
            };
        }
        // The side connection loads every script when it connects.
        let results: Option<Vec<RedisResult<Value>>> = self.side.run(|con| pipe.query(con));
        if results.iter().flatten().any(is_noscript) {
            // Scripts flushed under a live connection: reconnect, reload.
            self.side.failed();
        }
        let Some(results) = results else {
            for p in planned {
                let name = p.req.room.clone();
                self.refuse(p.req);
                self.drop_if_unused(&name, Some(pubsub))?;
            }
            return Ok(());
        };
        let mut results = results.into_iter();
        for p in planned {
            let (access, backlog) = (results.next(), results.next());
            self.finish_join(p, access, backlog, pubsub)?;
        }
        Ok(())
    }

    fn finish_join(
        &mut self,
        p: Planned,
        access: Option<RedisResult<Value>>,
        backlog: Option<RedisResult<Value>>,
        pubsub: &mut PubSub<'_>,
    ) -> RedisResult<()> {
        let (Some(Ok(Value::Array(access))), Some(Ok(backlog))) = (access, backlog) else {
            let name = p.req.room.clone();
            self.refuse(p.req);
            return self.drop_if_unused(&name, Some(pubsub));
        };
        let mut access = access.into_iter();
        if !matches!(access.next(), Some(Value::Int(1))) {
            let name = p.req.room.clone();
            self.refuse_with(p.req, ErrorCode::Forbidden);
            return self.drop_if_unused(&name, Some(pubsub));
        }
        let fields: Vec<String> = access
            .filter_map(|v| redis::from_redis_value::<String>(v).ok())
            .collect();
        self.presence.count_in(&p.req.room, &p.req.user);

        let mut entries = parse_entries(backlog);
        let mut reset = p.req.since.is_some() && !p.resume;
        if p.resume {
            let since = p.req.since.unwrap_or(0);
            if !super::recover::is_complete(&entries, since, p.delivered) {
                // The stream no longer reaches back to `since`.
                reset = true;
                entries = self.latest(&p.req.room, p.delivered).unwrap_or_default();
            }
        } else {
            entries.reverse();
        }
        self.admit(p, entries, fields, reset);
        Ok(())
    }

    /// Counts the membership and queues `Joined` with its backlog.
    fn admit(&mut self, p: Planned, entries: Vec<Entry>, fields: Vec<String>, reset: bool) {
        self.note_last(&p.req.room, &entries);
        if let Some(room) = self.rooms.get_mut(&p.req.room) {
            if let Some(n) = room.interest.get_mut(p.req.to.reactor) {
                *n += 1;
            }
        }
        let online = keys::users_of(&fields).into_iter().map(Arc::from).collect();
        let joined = Joined {
            to: p.req.to,
            user: p.req.user.clone(),
            online,
            backlog: entries.iter().map(|e| e.frame(&p.req.room)).collect(),
            room: p.req.room,
            seq: p.delivered,
            epoch: p.epoch.unwrap_or_default().into(),
            reset,
            id: p.req.id,
        };
        self.send(joined.to.reactor, Event::Joined(Box::new(joined)));
    }
}

fn is_noscript(result: &RedisResult<Value>) -> bool {
    matches!(result, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}
