//! What a connection does with the bytes it reads, by phase: HTTP heads go
//! to the router, WebSocket frames to the decoder and then to the session,
//! and a closing connection discards whatever still arrives.
//!
//! Also the one way out of a session, [`start_close`], which leaves every
//! room, queues the last frame and starts the linger.

use std::time::Duration;

use super::conn::{Closing, Conn, Phase, Session, SlotState, WsPhase};
use super::ctx::Ctx;
use super::{chat, probes, routes};
use crate::config::Config;
use crate::http::response::write_error;
use crate::http::{body_len, Limits};
use crate::stats::ReactorStats;
use crate::ws::{close, frame, Decoder, Message, Opcode};

/// How long a closing connection has to take our last bytes and hang up.
/// Long enough for a consumer that was cut off while not reading to read
/// its way to the close frame; shutdown is bounded separately.
pub const CLOSE_LINGER: Duration = Duration::from_secs(10);

pub fn on_bytes(key: usize, conn: &mut Conn, ctx: &mut Ctx, bytes: &mut [u8]) {
    match conn.phase {
        Phase::Http(_) => http_bytes(key, conn, ctx, bytes),
        Phase::Ws(_) => ws_bytes(key, conn, ctx, bytes),
        Phase::Closing(_) => {}
    }
}

fn http_bytes(key: usize, conn: &mut Conn, ctx: &mut Ctx, bytes: &[u8]) {
    let Phase::Http(http) = &mut conn.phase else {
        return;
    };
    http.buf.extend_from_slice(bytes);
    // While a worker prepares a response, pipelined input waits here;
    // bound it like one request.
    if http.buf.len() > ctx.config.max_head_bytes + ctx.config.max_body_bytes {
        log::debug!("conn={}:{key} too much pipelined input", ctx.id);
        return ctx.mark_dead(key, conn);
    }
    serve_http(key, conn, ctx);
}

/// Serves the complete requests in the buffer in order, stopping while a
/// body is incomplete or an auth worker is preparing a response.
pub fn serve_http(key: usize, conn: &mut Conn, ctx: &mut Ctx) {
    let limits = Limits {
        max_head_bytes: ctx.config.max_head_bytes,
        max_headers: ctx.config.max_headers,
    };
    let me = ctx.conn_ref(key, conn);
    let Phase::Http(http) = &mut conn.phase else {
        return;
    };
    while !http.waiting {
        let parsed = match http.pending.take() {
            Some(pending) => Ok(Some(*pending)),
            None => http
                .parser
                .parse(&http.buf, &limits)
                .map_err(|e| (e.status, e.reason)),
        };
        let (req, head_len) = match parsed {
            Ok(Some(done)) => done,
            Ok(None) => return,
            Err((status, reason)) => return refuse(key, conn, ctx, status, reason),
        };
        let body_len = match body_len(&req, ctx.config.max_body_bytes) {
            Ok(n) => n,
            Err(e) => {
                let response = routes::refuse_body(&req, e);
                return send_refusal(key, conn, ctx, e.status(), response);
            }
        };
        let end = head_len.saturating_add(body_len);
        let Some(body) = http.buf.get(head_len..end) else {
            http.pending = Some(Box::new((req, head_len)));
            return;
        };
        let outcome = routes::handle(&req, body, http.peer, me, &mut conn.out, ctx);
        let keep_alive = match outcome {
            routes::Outcome::Respond { keep_alive } => keep_alive,
            routes::Outcome::Deferred => {
                http.waiting = true;
                true
            }
            routes::Outcome::Upgrade(session) => {
                let mut rest = http.buf.split_off(end);
                ctx.leave_http(http.peer);
                conn.phase = Phase::Ws(WsPhase {
                    decoder: None,
                    session,
                });
                log::debug!("conn={}:{key} upgraded", ctx.id);
                // Frames may have come in the same read as the head.
                if !rest.is_empty() {
                    ws_bytes(key, conn, ctx, &mut rest);
                }
                return;
            }
        };
        if !keep_alive {
            return start_linger(conn, ctx);
        }
        http.buf.drain(..end);
        http.parser.reset();
        http.deadline = ctx.clock.now + Duration::from_millis(ctx.config.handshake_timeout_ms);
    }
}

/// Answers with an error and closes: after a framing error the rest of
/// the input cannot be trusted.
fn refuse(key: usize, conn: &mut Conn, ctx: &mut Ctx, status: u16, reason: &str) {
    let mut response = Vec::new();
    write_error(&mut response, status, reason, &[], false);
    send_refusal(key, conn, ctx, status, response);
}

/// Queues a refusal written with `Connection: close` and closes.
fn send_refusal(key: usize, conn: &mut Conn, ctx: &mut Ctx, status: u16, response: Vec<u8>) {
    log::debug!("conn={}:{key} refused: {status}", ctx.id);
    ctx.stats.http_errors.count(status);
    conn.out.push_vec(response);
    start_linger(conn, ctx);
}

/// `handshake_timeout_ms` ran out on a connection still speaking HTTP.
/// A client part way through a request gets a 408 (RFC 9110 §15.5.9)
/// before the close. One that sent nothing since its last response (an
/// idle keep-alive connection, or a socket opened and left) is closed
/// silently: a client that reuses an idle connection just as it closes
/// would take a 408 for the answer to its new request. A request waiting
/// on an auth worker is our delay, not the client's: silent as well.
pub fn time_out(key: usize, conn: &mut Conn, ctx: &mut Ctx) {
    let partial = match &conn.phase {
        Phase::Http(http) => !http.waiting && !http.buf.is_empty(),
        _ => false,
    };
    if !partial || !conn.out.is_empty() {
        log::debug!("conn={}:{key} idle HTTP connection timed out", ctx.id);
        return ctx.mark_dead(key, conn);
    }
    refuse(key, conn, ctx, 408, "request not complete in time");
    ctx.mark_dirty(key, conn);
}

/// Delivers a worker's response to a waiting connection and goes on with
/// any requests that queued behind it.
pub fn finish_deferred(
    key: usize,
    conn: &mut Conn,
    ctx: &mut Ctx,
    bytes: Vec<u8>,
    keep_alive: bool,
) {
    let Phase::Http(http) = &mut conn.phase else {
        return;
    };
    if !http.waiting {
        return;
    }
    http.waiting = false;
    // The workers' answers (401, 409, 503...) count like the router's.
    probes::count_response(&bytes, ctx);
    conn.out.push_vec(bytes);
    if keep_alive {
        serve_http(key, conn, ctx);
    } else {
        start_linger(conn, ctx);
    }
}

/// How a frame's handling ends the connection, if it does.
pub enum Ending {
    /// Answer the peer's close frame (echoing its code) and hang up.
    Echo(Option<u16>),
    /// Close with our own code and reason.
    Fail(u16, &'static str),
}

fn ws_bytes(key: usize, conn: &mut Conn, ctx: &mut Ctx, input: &mut [u8]) {
    let me = ctx.conn_ref(key, conn);
    let Phase::Ws(ws) = &mut conn.phase else {
        return;
    };
    let max = ctx.config.max_message_bytes;
    let decoder = ws
        .decoder
        .get_or_insert_with(|| Box::new(Decoder::new(max)));
    let mut pos = 0;
    let mut ending = None;
    while ending.is_none() {
        let Some(rest) = input.get_mut(pos..) else {
            break;
        };
        if rest.is_empty() {
            break;
        }
        match decoder.decode(rest) {
            Ok(decoded) => {
                pos += decoded.consumed;
                let Some(message) = decoded.message else {
                    break;
                };
                ending = on_message(message, &mut ws.session, &mut conn.out, me, ctx);
            }
            Err(e) => {
                log::debug!(
                    "conn={}:{key} protocol error {}: {}",
                    ctx.id,
                    e.code,
                    e.reason
                );
                ending = Some(Ending::Fail(e.code, e.reason));
            }
        }
    }
    if decoder.is_idle() {
        // Between messages a socket keeps no decoder at all.
        ws.decoder = None;
    }
    match ending {
        Some(Ending::Echo(code)) => start_close(key, conn, ctx, code, ""),
        Some(Ending::Fail(code, reason)) => start_close(key, conn, ctx, Some(code), reason),
        None => {}
    }
}

fn on_message(
    message: Message<'_>,
    session: &mut Session,
    out: &mut super::outbuf::OutQueue,
    me: crate::broker::ConnRef,
    ctx: &mut Ctx,
) -> Option<Ending> {
    if let (Message::Ping(_), Session::Chat(chat)) = (&message, &mut *session) {
        // Pings cost a request each on chat sockets: a ping flood is cut
        // off like a message flood, not answered forever.
        if !chat.budget.take(ctx.message_rate(), ctx.clock.ms()) {
            ctx.hit_limit(crate::metrics::Limit::MessageRate);
            return Some(Ending::Fail(close::POLICY, "too many pings"));
        }
    }
    let mut frame_out = Vec::new();
    match (message, session) {
        (Message::Ping(payload), _) => frame::write_frame(&mut frame_out, Opcode::Pong, payload),
        (Message::Pong(_), _) => {}
        (Message::Close(close), _) => return Some(Ending::Echo(close.map(|(code, _)| code))),
        (Message::Text(text), Session::Echo) => {
            frame::write_frame(&mut frame_out, Opcode::Text, text.as_bytes())
        }
        (Message::Binary(data), Session::Echo) => {
            frame::write_frame(&mut frame_out, Opcode::Binary, data)
        }
        (Message::Text(text), Session::Chat(chat)) => {
            return chat::on_text(text, chat, me, out, ctx)
        }
        (Message::Binary(_), Session::Chat(_)) => {
            return Some(Ending::Fail(
                close::UNSUPPORTED_DATA,
                "binary frames are not part of the chat protocol",
            ));
        }
    }
    if !frame_out.is_empty() {
        out.push_vec(frame_out);
    }
    None
}

/// Ends a WebSocket: leaves its rooms, queues a close frame (`None`: an
/// empty one, as the reply to an empty close) and starts the linger. Does
/// nothing to a connection that is already closing.
pub fn start_close(key: usize, conn: &mut Conn, ctx: &mut Ctx, code: Option<u16>, reason: &str) {
    if !matches!(conn.phase, Phase::Ws(_)) {
        return;
    }
    retire_session(key, conn, ctx);
    ctx.stats.closes.count(code.unwrap_or(close::NO_STATUS));
    let mut frame_out = Vec::with_capacity(2 + 2 + reason.len());
    match code {
        Some(code) => frame::write_close(&mut frame_out, code, reason),
        None => frame::write_frame(&mut frame_out, Opcode::Close, &[]),
    }
    conn.out.push_vec(frame_out);
    start_linger(conn, ctx);
    ctx.mark_dirty(key, conn);
}

/// Whether queued output shows a consumer that cannot keep up: over the
/// cap while the socket is known to be full (a write already fell short).
/// A fast reader may exceed the cap within one pass; the flush at the end
/// of the pass then decides.
pub fn is_behind(conn: &Conn, config: &Config) -> bool {
    conn.writable && conn.out.len() > config.max_outbound_bytes
}

/// A consumer that does not read fast enough loses its queue and gets a
/// 1013 close; it reconnects and resumes with `since`, losing nothing.
pub fn cut_off(key: usize, conn: &mut Conn, ctx: &mut Ctx) {
    if !matches!(conn.phase, Phase::Ws(_)) {
        return;
    }
    ReactorStats::add(&ctx.stats.slow_consumers, 1);
    log::debug!("conn={}:{key} slow consumer cut off", ctx.id);
    conn.out.drop_unsent();
    start_close(
        key,
        conn,
        ctx,
        Some(close::TRY_AGAIN_LATER),
        "slow consumer",
    );
}

/// Moves to `Closing` once whatever is queued has been written.
fn start_linger(conn: &mut Conn, ctx: &mut Ctx) {
    if let Phase::Http(http) = &conn.phase {
        ctx.leave_http(http.peer);
    }
    conn.phase = Phase::Closing(Closing {
        deadline: ctx.clock.secs_after(CLOSE_LINGER),
        write_shut: false,
    });
}

/// Leaves every room the session is in. Joins still in flight are undone
/// when their `Joined` event finds the connection gone.
pub fn retire_session(key: usize, conn: &mut Conn, ctx: &mut Ctx) {
    let Some(chat) = conn.chat() else { return };
    ctx.auth.conns_by_ip.release(&chat.peer());
    ctx.auth.conns_by_user.release(&chat.user);
    let user = chat.user.clone();
    for slot in std::mem::take(&mut chat.rooms).as_slice() {
        if slot.state == SlotState::Joined {
            ctx.remove_member(&slot.name, key, &user);
        }
    }
}
