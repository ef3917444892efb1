//! Inbox events applied to this reactor's connections: room deliveries to
//! every local member, and the broker's answers to one connection.
//!
//! An answer names its connection by slab key and generation; if the
//! connection closed in the meantime (or the slot now holds another one),
//! the answer is dropped, and a join it confirmed is undone.

use slab::Slab;

use super::conn::{Answer, Conn, SlotState};
use super::ctx::Ctx;
use super::inbox::{Event, Joined, Reply};
use super::input;
use super::presence;
use crate::broker::{ConnRef, RoomName};
use crate::chat::wire::{self, Frame};
use crate::stats::ReactorStats;
use crate::ws::close;

pub fn apply(event: Event, conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    match event {
        Event::Deliver { room, frame, ts } => {
            let late_ms = ctx.clock.wall_ms.saturating_sub(ts);
            ctx.stats
                .fanout_latency
                .observe_us(late_ms.saturating_mul(1000));
            deliver(&room, frame, conns, ctx)
        }
        Event::Joined(joined) => on_joined(*joined, conns, ctx),
        Event::JoinFailed(reply) => on_join_failed(*reply, conns, ctx),
        Event::Acked(a) => {
            let took = a.at.elapsed();
            ctx.stats.publish_latency.observe(took);
            let frame = wire::ack(&a.room, &a.cid, a.seq, a.id.as_ref());
            send(a.to, frame, conns, ctx);
        }
        Event::History(h) => {
            let frame = wire::history(&h.room, &h.messages, h.more, h.id.as_ref());
            send(h.to, frame, conns, ctx);
        }
        Event::Failed(r) => {
            let frame = wire::error(r.code, r.id.as_ref(), Some(&r.room), r.cid.as_deref());
            send(r.to, frame, conns, ctx);
        }
        Event::RoomReset { room } => reset_room(&room, conns, ctx),
        Event::Broadcast {
            room,
            frame,
            droppable,
            skip,
        } => broadcast(&room, frame, droppable, skip.as_deref(), conns, ctx),
        Event::Presence { room, user, online } => {
            if ctx.rooms.contains_key(&room) {
                let due = presence::deadline(ctx.clock.now, ctx.config.presence_interval_ms);
                ctx.presence.add(room, user, online, due);
            }
        }
        Event::Reply(reply) => {
            let (to, frame) = *reply;
            send(to, frame, conns, ctx);
        }
        Event::HttpReply(r) => {
            if let Some(conn) = target(r.to, conns) {
                input::finish_deferred(r.to.key, conn, ctx, r.bytes, r.keep_alive);
                ctx.mark_dirty(r.to.key, conn);
            }
        }
        Event::Shutdown | Event::Drain => {}
    }
}

/// The live connection `to` names, if it is still there.
fn target(to: ConnRef, conns: &mut Slab<Conn>) -> Option<&mut Conn> {
    conns.get_mut(to.key).filter(|c| c.gen == to.gen && !c.dead)
}

fn send(to: ConnRef, frame: Vec<u8>, conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    if let Some(conn) = target(to, conns) {
        conn.out.push_vec(frame);
        after_queue(to.key, conn, ctx);
    }
}

/// Every local member gets the same bytes, by reference.
fn deliver(room: &RoomName, frame: Frame, conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    let Some(members) = ctx.rooms.get(room) else {
        return;
    };
    let mut behind = Vec::new();
    for &key in members {
        let Some(conn) = conns.get_mut(key) else {
            continue;
        };
        conn.out.push_shared(frame.clone());
        if input::is_behind(conn, &ctx.config) {
            behind.push(key);
        } else if !conn.dirty {
            conn.dirty = true;
            ctx.dirty.push(key);
        }
    }
    ReactorStats::add(&ctx.stats.deliveries, members.len() as u64);
    ReactorStats::add(&ctx.stats.messages_out, members.len() as u64);
    for key in behind {
        if let Some(conn) = conns.get_mut(key) {
            input::cut_off(key, conn, ctx);
        }
    }
}

/// Queues `conn`'s output for the flush, or cuts it off if it is too far
/// behind.
fn after_queue(key: usize, conn: &mut Conn, ctx: &mut Ctx) {
    if input::is_behind(conn, &ctx.config) {
        input::cut_off(key, conn, ctx);
    } else {
        ctx.mark_dirty(key, conn);
    }
}

fn on_joined(j: Joined, conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    let joining = target(j.to, conns).and_then(|conn| {
        let chat = conn.chat()?;
        let i = chat.slot(&j.room)?;
        let slot = chat.rooms.get_mut(i)?;
        match slot.state.answer() {
            Answer::Own => {
                slot.state = SlotState::Joined;
                Some(conn)
            }
            Answer::Cancelled(Some(next)) => {
                slot.state = next;
                None
            }
            Answer::Cancelled(None) => {
                chat.rooms.swap_remove(i);
                None
            }
        }
    });
    let Some(conn) = joining else {
        // Gone, or left while joining: undo the broker's membership.
        ctx.broker.leave(&j.room, ctx.id, &j.user);
        return;
    };
    conn.out.push_vec(wire::joined(
        &j.room,
        j.seq,
        &j.epoch,
        j.backlog.len(),
        j.reset,
        &j.online,
        j.id.as_ref(),
    ));
    ReactorStats::add(&ctx.stats.messages_out, j.backlog.len() as u64);
    for frame in j.backlog {
        conn.out.push_shared(frame);
    }
    ctx.add_member(&j.room, j.to.key);
    after_queue(j.to.key, conn, ctx);
}

fn on_join_failed(r: Reply, conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    let Some(conn) = target(r.to, conns) else {
        return;
    };
    if let Some(chat) = conn.chat() {
        if let Some(i) = chat.slot(&r.room) {
            let answer = chat.rooms.get(i).map(|slot| slot.state.answer());
            if let Some(Answer::Cancelled(Some(next))) = answer {
                // A join the socket left failed: moot, nothing to undo.
                if let Some(slot) = chat.rooms.get_mut(i) {
                    slot.state = next;
                }
                return;
            }
            chat.rooms.swap_remove(i);
            if answer != Some(Answer::Own) {
                return;
            }
        }
    }
    conn.out
        .push_vec(wire::error(r.code, r.id.as_ref(), Some(&r.room), None));
    after_queue(r.to.key, conn, ctx);
}

/// Closes every local member of `room` with 1012; they reconnect, rejoin
/// with `since`, and learn from `reset: true` to clear their view.
fn reset_room(room: &RoomName, conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    let members = ctx.rooms.get(room).cloned().unwrap_or_default();
    for key in members {
        if let Some(conn) = conns.get_mut(key) {
            input::start_close(
                key,
                conn,
                ctx,
                Some(close::SERVICE_RESTART),
                "room history reset",
            );
        }
    }
}

/// Sends the presence changes held for this pass, one frame per room.
pub fn flush_presence(conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    for (room, frame, only) in ctx.presence.take() {
        broadcast(&room, frame, false, only.as_deref(), conns, ctx);
    }
}

/// A frame outside the room's sequence (presence, typing) for every local
/// member. Droppable ones skip members whose socket is backed up: they are
/// the first thing to give up under backpressure.
fn broadcast(
    room: &RoomName,
    frame: Frame,
    droppable: bool,
    skip: Option<&str>,
    conns: &mut Slab<Conn>,
    ctx: &mut Ctx,
) {
    let Some(members) = ctx.rooms.get(room) else {
        return;
    };
    for &key in members {
        let Some(conn) = conns.get_mut(key) else {
            continue;
        };
        // Backed up: the socket refused bytes, or half the cap is queued.
        let backed_up = conn.writable || conn.out.len() > ctx.config.max_outbound_bytes / 2;
        if droppable && backed_up {
            continue;
        }
        if skip.is_some() && conn.chat().map(|c| &*c.user) == skip {
            continue;
        }
        conn.out.push_shared(frame.clone());
        if !conn.dirty {
            conn.dirty = true;
            ctx.dirty.push(key);
        }
    }
}
