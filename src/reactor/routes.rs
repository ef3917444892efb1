//! HTTP routes: which request gets which response, and which becomes a
//! WebSocket. Responses are written into the connection's outbound queue;
//! the caller only learns whether to keep reading requests, close, wait
//! for an auth worker, or switch to WebSocket framing.

use std::net::IpAddr;
use std::sync::Arc;

use super::api;
use super::conn::{ChatSession, Session};
use super::ctx::Ctx;
use super::outbuf::OutQueue;
use super::probes;
use crate::auth::limits::Bucket;
use crate::auth::{Denied, Identity, SUBPROTOCOL};
use crate::broker::ConnRef;
use crate::chat::names::is_valid_user;
use crate::http::request::query_param;
use crate::http::response::{write_error, write_response, write_switching_protocols};
use crate::http::{upgrade, BodyError, Method, Request};
use crate::metrics::Limit;
use crate::stats::ReactorStats;
use crate::web;

pub enum Outcome {
    /// A response was queued; keep the connection for another request?
    Respond { keep_alive: bool },
    /// An auth worker will answer (see `Event::HttpReply`).
    Deferred,
    /// A 101 was queued; what follows are WebSocket frames for this session.
    Upgrade(Session),
}

pub fn handle(
    req: &Request,
    body: &[u8],
    peer: IpAddr,
    me: ConnRef,
    out: &mut OutQueue,
    ctx: &mut Ctx,
) -> Outcome {
    let keep_alive = req.keep_alive;
    let mut buf = Vec::new();
    let outcome = if req.path.starts_with("/api/") {
        let client = ctx.auth.client_ip(req, peer);
        api::handle(req, body, client, me, &mut buf, ctx)
    } else {
        match req.path.as_str() {
            // A disabled route is no route: 404 whatever the method, so
            // neither an Allow header nor a 405 advertises it.
            "/echo" if !ctx.config.echo => {
                write_error(&mut buf, 404, "no such page", &[], keep_alive);
                Outcome::Respond { keep_alive }
            }
            "/ws" | "/echo" if req.method != Method::Get => {
                let allow = [("Allow", "GET")];
                write_error(
                    &mut buf,
                    405,
                    "use GET to open a WebSocket",
                    &allow,
                    keep_alive,
                );
                Outcome::Respond { keep_alive }
            }
            "/ws" => {
                let client = ctx.auth.client_ip(req, peer);
                upgrade_chat(req, client, &mut buf, ctx)
            }
            "/echo" => upgrade_echo(req, &mut buf),
            path => page(req, path, &mut buf, ctx),
        }
    };
    probes::count_response(&buf, ctx);
    if req.method == Method::Head {
        strip_body(&mut buf);
    }
    out.push_vec(buf);
    outcome
}

/// The answer to a request whose body will not be read, written to close
/// the connection (the unread body cannot be skipped safely): a JSON error
/// under `/api/`, like every other API error; plain text elsewhere.
pub fn refuse_body(req: &Request, error: BodyError) -> Vec<u8> {
    let mut buf = Vec::new();
    let (status, reason) = (error.status(), error.reason());
    if req.path.starts_with("/api/") {
        api::write_error(&mut buf, status, error.code(), reason, false);
    } else {
        write_error(&mut buf, status, reason, &[], false);
    }
    if req.method == Method::Head {
        strip_body(&mut buf);
    }
    buf
}

/// A HEAD response carries the head a GET would, and no body (RFC 9110
/// §9.3.2), whichever route or error wrote it.
fn strip_body(response: &mut Vec<u8>) {
    if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        response.truncate(end + 4);
    }
}

/// Plain GET/HEAD resources: probes, metrics and the embedded web client.
fn page(req: &Request, path: &str, buf: &mut Vec<u8>, ctx: &Ctx) -> Outcome {
    let keep_alive = req.keep_alive;
    let head_only = req.method == Method::Head;
    let readable = matches!(req.method, Method::Get | Method::Head);
    let no_store = [("Cache-Control", "no-store")];
    let known = probes::is_probe(path) || web::find(path).is_some();
    let json = "application/json";
    if !known {
        write_error(buf, 404, "no such page", &[], keep_alive);
    } else if !readable {
        let allow = [("Allow", "GET, HEAD")];
        write_error(buf, 405, "method not allowed", &allow, keep_alive);
    } else if path == "/healthz" {
        let (status, body) = probes::alive(ctx);
        write_response(
            buf,
            status,
            json,
            &no_store,
            body.as_bytes(),
            keep_alive,
            head_only,
        );
    } else if path == "/readyz" {
        let (status, body) = probes::ready(ctx);
        write_response(
            buf,
            status,
            json,
            &no_store,
            body.as_bytes(),
            keep_alive,
            head_only,
        );
    } else if path == "/metrics" {
        let body = probes::metrics(ctx);
        let kind = crate::metrics::render::CONTENT_TYPE;
        write_response(
            buf,
            200,
            kind,
            &no_store,
            body.as_bytes(),
            keep_alive,
            head_only,
        );
    } else if let Some(asset) = web::find(path) {
        let headers = [
            ("Content-Security-Policy", web::CONTENT_SECURITY_POLICY),
            ("Cache-Control", web::CACHE_CONTROL),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ];
        write_response(
            buf,
            200,
            asset.content_type,
            &headers,
            asset.body,
            keep_alive,
            head_only,
        );
    }
    Outcome::Respond { keep_alive }
}

/// The chat socket: the handshake must be valid, come from an allowed
/// origin, and carry a session (or a name, with `--allow-guests`), within
/// the per-user and per-IP connection limits.
fn upgrade_chat(req: &Request, peer: IpAddr, buf: &mut Vec<u8>, ctx: &mut Ctx) -> Outcome {
    let accept = match upgrade::validate(req) {
        Ok(accept) => accept,
        Err(e) => return refuse_upgrade(buf, e.status, e.reason),
    };
    let auth = ctx.auth.clone();
    if !auth.origin_allowed(req) {
        return refuse_upgrade(buf, 403, "origin not allowed");
    }
    let identity = match auth.session(req) {
        Ok(claims) => Identity::User(claims),
        Err(Denied::Missing) if auth.settings.allow_guests => {
            match query_param(&req.query, "name").filter(|n| is_valid_user(n)) {
                Some(name) => Identity::Guest(name),
                None => {
                    return refuse_upgrade(buf, 400, "add ?name= with 1-32 of A-Z a-z 0-9 _ - .")
                }
            }
        }
        Err(_) => {
            ReactorStats::add(&auth.stats.auth_failures, 1);
            return refuse_upgrade(buf, 401, "log in first (session cookie or bearer token)");
        }
    };
    let user: Arc<str> = Arc::from(identity.name());
    let (sid, expires) = match &identity {
        Identity::User(claims) => (Some(Box::from(claims.sid.as_str())), claims.expires),
        Identity::Guest(_) => (None, 0),
    };
    // Counted as the session will release it: canonical.
    let peer = peer.to_canonical();
    if !auth.conns_by_ip.acquire(&peer) {
        ctx.hit_limit(Limit::ConnsIp);
        return refuse_upgrade(buf, 429, "too many connections from this address");
    }
    if !auth.conns_by_user.acquire(&user) {
        auth.conns_by_ip.release(&peer);
        ctx.hit_limit(Limit::ConnsUser);
        return refuse_upgrade(buf, 429, "too many connections for this user");
    }
    let offered = req.ws_protocols.iter().any(|p| p == SUBPROTOCOL);
    let extra: &[(&str, &str)] = if offered {
        &[("Sec-WebSocket-Protocol", SUBPROTOCOL)]
    } else {
        &[]
    };
    write_switching_protocols(buf, &accept, extra);
    let rate = ctx.message_rate();
    let budget = Bucket::full(rate, ctx.clock.ms());
    Outcome::Upgrade(Session::Chat(ChatSession::new(
        user, peer, budget, sid, expires,
    )))
}

fn upgrade_echo(req: &Request, buf: &mut Vec<u8>) -> Outcome {
    match upgrade::validate(req) {
        Ok(accept) => {
            write_switching_protocols(buf, &accept, &[]);
            Outcome::Upgrade(Session::Echo)
        }
        Err(e) => refuse_upgrade(buf, e.status, e.reason),
    }
}

fn refuse_upgrade(buf: &mut Vec<u8>, status: u16, reason: &str) -> Outcome {
    let extra: &[(&str, &str)] = if status == 426 {
        &[("Sec-WebSocket-Version", "13")]
    } else {
        &[]
    };
    write_error(buf, status, reason, extra, false);
    Outcome::Respond { keep_alive: false }
}
