//! HTTP routes: which request gets which response, and which becomes a
//! WebSocket. Responses are written into the connection's outbound queue;
//! the caller only learns whether to keep reading requests, close, or
//! switch to WebSocket framing.

use std::sync::Arc;

use super::conn::{ChatSession, Session};
use super::ctx::Ctx;
use super::outbuf::OutQueue;
use super::probes;
use crate::chat::names::is_valid_user;
use crate::http::request::query_param;
use crate::http::response::{write_error, write_response, write_switching_protocols};
use crate::http::{upgrade, Method, Request};
use crate::web;

pub enum Outcome {
    /// A response was queued; keep the connection for another request?
    Respond { keep_alive: bool },
    /// A 101 was queued; what follows are WebSocket frames for this session.
    Upgrade(Session),
}

pub fn handle(req: &Request, out: &mut OutQueue, ctx: &Ctx) -> Outcome {
    // Bodies are not read by any route; a request carrying one cannot be
    // followed by another on the same connection without parsing it.
    let keep_alive = req.keep_alive && !req.chunked && req.content_length.unwrap_or(0) == 0;
    let head_only = req.method == Method::Head;
    let readable = matches!(req.method, Method::Get | Method::Head);
    let mut buf = Vec::new();
    let outcome = match req.path.as_str() {
        "/ws" | "/echo" if req.method != Method::Get => {
            write_error(
                &mut buf,
                405,
                "use GET to open a WebSocket",
                &[("Allow", "GET")],
                keep_alive,
            );
            Outcome::Respond { keep_alive }
        }
        "/ws" => upgrade_chat(req, &mut buf),
        "/echo" if ctx.config.echo => upgrade_echo(req, &mut buf),
        "/readyz" if readable => {
            let (status, body) = probes::ready(ctx);
            write_response(
                &mut buf,
                status,
                "application/json",
                &[("Cache-Control", "no-store")],
                body.as_bytes(),
                keep_alive,
                head_only,
            );
            Outcome::Respond { keep_alive }
        }
        "/healthz" if readable => {
            let (status, body) = probes::alive(ctx);
            write_response(
                &mut buf,
                status,
                "application/json",
                &[("Cache-Control", "no-store")],
                body.as_bytes(),
                keep_alive,
                head_only,
            );
            Outcome::Respond { keep_alive }
        }
        "/metrics" if readable => {
            write_response(
                &mut buf,
                200,
                crate::metrics::render::CONTENT_TYPE,
                &[("Cache-Control", "no-store")],
                probes::metrics(ctx).as_bytes(),
                keep_alive,
                head_only,
            );
            Outcome::Respond { keep_alive }
        }
        path => match web::find(path) {
            Some(asset) if readable => {
                let headers = [
                    ("Content-Security-Policy", web::CONTENT_SECURITY_POLICY),
                    ("Cache-Control", web::CACHE_CONTROL),
                    ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"),
                ];
                write_response(
                    &mut buf,
                    200,
                    asset.content_type,
                    &headers,
                    asset.body,
                    keep_alive,
                    head_only,
                );
                Outcome::Respond { keep_alive }
            }
            Some(_) => not_allowed(&mut buf, keep_alive),
            None if probes::is_probe(path) => not_allowed(&mut buf, keep_alive),
            None => {
                write_error(&mut buf, 404, "no such page", &[], keep_alive);
                Outcome::Respond { keep_alive }
            }
        },
    };
    probes::count_response(&buf, ctx);
    out.push_vec(buf);
    outcome
}

fn not_allowed(buf: &mut Vec<u8>, keep_alive: bool) -> Outcome {
    write_error(
        buf,
        405,
        "method not allowed",
        &[("Allow", "GET, HEAD")],
        keep_alive,
    );
    Outcome::Respond { keep_alive }
}

fn upgrade_chat(req: &Request, buf: &mut Vec<u8>) -> Outcome {
    let accept = match upgrade::validate(req) {
        Ok(accept) => accept,
        Err(e) => return refuse_upgrade(buf, e),
    };
    let Some(name) = query_param(&req.query, "name").filter(|n| is_valid_user(n)) else {
        write_error(
            buf,
            400,
            "add ?name= with 1-32 of A-Z a-z 0-9 _ - .",
            &[],
            false,
        );
        return Outcome::Respond { keep_alive: false };
    };
    write_switching_protocols(buf, &accept, &[]);
    Outcome::Upgrade(Session::Chat(ChatSession {
        user: Arc::from(name),
        rooms: Vec::new(),
    }))
}

fn upgrade_echo(req: &Request, buf: &mut Vec<u8>) -> Outcome {
    match upgrade::validate(req) {
        Ok(accept) => {
            write_switching_protocols(buf, &accept, &[]);
            Outcome::Upgrade(Session::Echo)
        }
        Err(e) => refuse_upgrade(buf, e),
    }
}

fn refuse_upgrade(buf: &mut Vec<u8>, e: upgrade::UpgradeError) -> Outcome {
    let extra: &[(&str, &str)] = if e.status == 426 {
        &[("Sec-WebSocket-Version", "13")]
    } else {
        &[]
    };
    write_error(buf, e.status, e.reason, extra, false);
    Outcome::Respond { keep_alive: false }
}
