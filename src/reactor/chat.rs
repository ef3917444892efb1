//! A chat socket's requests, checked against the socket's own state (which
//! rooms it is in) and handed to the broker. Answers that need the broker
//! arrive later as inbox events; answers that do not are queued here.

use std::sync::Arc;

use super::conn::{ChatSession, RoomSlot, SlotState};
use super::ctx::Ctx;
use super::input::Ending;
use super::outbuf::OutQueue;
use crate::broker::{
    ConnRef, CreateRequest, HistoryRequest, InviteRequest, JoinRequest, PublishRequest, RoomName,
    RoomsRequest,
};
use crate::chat::request::{self, ReqId, Request};
use crate::chat::{wire, ErrorCode};
use crate::stats::ReactorStats;
use crate::ws::close;

/// At most one typing notice per socket per this many milliseconds.
const TYPING_INTERVAL_MS: u32 = 1000;

/// Messages a history request returns when it names no limit.
const DEFAULT_PAGE: u64 = 50;

pub fn on_text(
    text: &str,
    chat: &mut ChatSession,
    me: ConnRef,
    out: &mut OutQueue,
    ctx: &mut Ctx,
) -> Option<Ending> {
    if chat.has_ended(crate::auth::unix_now(), &ctx.auth.revoked) {
        return Some(Ending::Fail(close::POLICY, "session ended; log in again"));
    }
    if !chat.budget.take(ctx.message_rate(), ctx.clock.ms()) {
        ctx.hit_limit(crate::metrics::Limit::MessageRate);
        let r = request::refusal(text, ErrorCode::RateLimited);
        out.push_vec(wire::error(
            r.code,
            r.id.as_ref(),
            r.room.as_deref(),
            r.cid.as_deref(),
        ));
        return None;
    }
    let (req, id) = match request::parse(text, ctx.config.max_text_bytes) {
        Ok(parsed) => parsed,
        Err(rejected) => {
            out.push_vec(wire::error(
                rejected.code,
                rejected.id.as_ref(),
                rejected.room.as_deref(),
                rejected.cid.as_deref(),
            ));
            return None;
        }
    };
    let slot = chat.slot(req.room());
    let state = slot.and_then(|i| chat.rooms.get(i)).map(|s| s.state);
    let in_room = state.is_some_and(SlotState::is_in_room);
    match req {
        Request::Join { room, since, epoch } => {
            // Joining again a room left before its join was answered.
            let rejoin = state.filter(|_| !in_room).map(SlotState::after_rejoin);
            if let Some(next) = rejoin {
                let slot = slot.and_then(|i| chat.rooms.get_mut(i));
                match (next, slot) {
                    (Some(next), Some(slot)) => slot.state = next,
                    _ => return refuse(out, ErrorCode::Overloaded, id, &room, None),
                }
            } else if state.is_some() {
                return refuse(out, ErrorCode::AlreadyJoined, id, &room, None);
            } else if chat.rooms.len() >= ctx.config.max_rooms_per_conn {
                ctx.hit_limit(crate::metrics::Limit::RoomsPerConn);
                return refuse(out, ErrorCode::TooManyRooms, id, &room, None);
            }
            // One name per room on this reactor, not one per socket.
            let room: RoomName = match ctx.rooms.get_key_value(&*room) {
                Some((name, _)) => name.clone(),
                None => Arc::from(&*room),
            };
            if rejoin.is_none() {
                chat.rooms.push(RoomSlot {
                    name: room.clone(),
                    state: SlotState::Joining { undo: 0 },
                });
            }
            let epoch = epoch.map(|e| e.into_owned());
            ctx.broker.join(JoinRequest {
                to: me,
                room,
                user: chat.user.clone(),
                since,
                epoch,
                id,
            });
        }
        Request::Leave { room } => {
            let Some(i) = slot.filter(|_| in_room) else {
                return refuse(out, ErrorCode::NotJoined, id, &room, None);
            };
            leave(chat, i, me.key, ctx);
            out.push_vec(wire::left(&room, id.as_ref()));
        }
        Request::Send { room, text, cid } => {
            let Some(i) = slot.filter(|_| in_room) else {
                return refuse(out, ErrorCode::NotJoined, id, &room, Some(&cid));
            };
            ReactorStats::add(&ctx.stats.messages_in, 1);
            let room = chat.rooms.get(i).map(|s| s.name.clone())?;
            ctx.broker.publish(PublishRequest {
                to: me,
                room,
                from: chat.user.clone(),
                text: text.into_owned(),
                cid: cid.into(),
                id,
                at: std::time::Instant::now(),
            });
        }
        Request::History {
            room,
            before,
            limit,
        } => {
            let Some(i) = slot.filter(|_| in_room) else {
                return refuse(out, ErrorCode::NotJoined, id, &room, None);
            };
            let max = u64::try_from(ctx.config.history_page_max).unwrap_or(u64::MAX);
            let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, max);
            let room = chat.rooms.get(i).map(|s| s.name.clone())?;
            ctx.broker.history(HistoryRequest {
                to: me,
                room,
                user: chat.user.clone(),
                before,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                id,
            });
        }
        Request::Create { room, private } => {
            ctx.broker.create(CreateRequest {
                to: me,
                room: Arc::from(&*room),
                private,
                user: chat.user.clone(),
                id,
            });
        }
        Request::Invite { room, user } => {
            ctx.broker.invite(InviteRequest {
                to: me,
                room: Arc::from(&*room),
                by: chat.user.clone(),
                user: user.into_owned(),
                id,
            });
        }
        Request::Rooms => {
            ctx.broker.rooms(RoomsRequest {
                to: me,
                user: chat.user.clone(),
                id,
            });
        }
        Request::Typing { room } => {
            let Some(i) = slot.filter(|_| in_room) else {
                return refuse(out, ErrorCode::NotJoined, id, &room, None);
            };
            // Ephemeral: extra typing notices are dropped, not refused.
            if chat.take_typing_turn(ctx.clock.ms(), TYPING_INTERVAL_MS) {
                let room = chat.rooms.get(i).map(|s| s.name.clone())?;
                ctx.broker.typing(&room, &chat.user);
            }
        }
    }
    None
}

/// Leaves slot `i`: a joined room at once, a pending join when its
/// `Joined` event arrives.
fn leave(chat: &mut ChatSession, i: usize, key: usize, ctx: &mut Ctx) {
    let Some(slot) = chat.rooms.get_mut(i) else {
        return;
    };
    match slot.state.after_leave() {
        Some(next) => slot.state = next,
        None => {
            if let Some(slot) = chat.rooms.swap_remove(i) {
                ctx.remove_member(&slot.name, key, &chat.user);
            }
        }
    }
}

fn refuse(
    out: &mut OutQueue,
    code: ErrorCode,
    id: Option<ReqId>,
    room: &str,
    cid: Option<&str>,
) -> Option<Ending> {
    out.push_vec(wire::error(code, id.as_ref(), Some(room), cid));
    None
}
