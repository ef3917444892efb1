//! The account API under `/api/`: JSON in, JSON out.
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/signup` `{"username","password"}` | 201 + session, 409 taken |
//! | `POST /api/login` `{"username","password"}` | 200 + session, 401 |
//! | `POST /api/logout` | 204, the session is revoked |
//! | `GET /api/me` | 200 `{"username","expires"}`, 401 |
//!
//! Cheap checks happen here on the reactor (JSON shape, name and password
//! rules, origin, rate limits); hashing and storage go to the auth worker
//! pool, whose answer arrives as an `HttpReply` event.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::json;

use super::ctx::Ctx;
use super::routes::Outcome;
use crate::auth::pool::{error, Credentials, Job, Reply};
use crate::auth::{password, username, Denied};
use crate::broker::ConnRef;
use crate::http::response::write_response;
use crate::http::{Method, Request};
use crate::metrics::Limit;
use crate::stats::ReactorStats;

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

pub fn handle(
    req: &Request,
    body: &[u8],
    peer: IpAddr,
    me: ConnRef,
    buf: &mut Vec<u8>,
    ctx: &Ctx,
) -> Outcome {
    let keep_alive = req.keep_alive;
    let reply = Reply { to: me, keep_alive };
    let auth = &ctx.auth;
    let route = (req.method, req.path.as_str());
    let post = matches!(route.1, "/api/signup" | "/api/login" | "/api/logout");
    match route {
        (Method::Get, "/api/me") => match auth.session(req) {
            Ok(claims) => {
                let body = json!({"username": claims.user, "expires": claims.expires});
                respond(buf, 200, &body, &[], keep_alive)
            }
            Err(denied) => {
                // No session is the normal logged-out state; a forged,
                // expired or revoked token is a failed authentication.
                if denied == Denied::Invalid {
                    ReactorStats::add(&auth.stats.auth_failures, 1);
                }
                respond(
                    buf,
                    401,
                    &error("unauthenticated", "not logged in"),
                    &[],
                    keep_alive,
                )
            }
        },
        (Method::Post, _) if post && !auth.origin_allowed(req) => respond(
            buf,
            403,
            &error("forbidden_origin", "origin not allowed"),
            &[],
            keep_alive,
        ),
        (Method::Post, "/api/logout") => {
            let cookie = auth.clear_cookie();
            match auth.session(req) {
                Ok(claims) => submit(Job::Logout { reply, claims }, buf, ctx, keep_alive),
                Err(_) => {
                    write_response(
                        buf,
                        204,
                        "",
                        &[("Set-Cookie", &cookie)],
                        b"",
                        keep_alive,
                        false,
                    );
                    Outcome::Respond { keep_alive }
                }
            }
        }
        (Method::Post, "/api/signup" | "/api/login") => {
            let signup = route.1 == "/api/signup";
            credentials(body, signup, peer, reply, buf, ctx)
        }
        (_, "/api/me") => not_allowed(buf, "GET", keep_alive),
        (_, _) if post => not_allowed(buf, "POST", keep_alive),
        _ => respond(
            buf,
            404,
            &error("not_found", "no such API route"),
            &[],
            keep_alive,
        ),
    }
}

fn credentials(
    body: &[u8],
    signup: bool,
    peer: IpAddr,
    reply: Reply,
    buf: &mut Vec<u8>,
    ctx: &Ctx,
) -> Outcome {
    let keep_alive = reply.keep_alive;
    let Ok(login) = serde_json::from_slice::<Login>(body) else {
        let e = error(
            "bad_request",
            "send JSON {\"username\": ..., \"password\": ...}",
        );
        return respond(buf, 400, &e, &[], keep_alive);
    };
    // User names are case-insensitive: "Alice" and "alice" are one
    // account, stored and shown in lower case.
    let user = if signup {
        username::for_new_account(&login.username)
    } else {
        username::for_login(&login.username)
    };
    let user = match user {
        Some(user) => user,
        None if signup => {
            let e = error("invalid_username", username::RULE);
            return respond(buf, 400, &e, &[], keep_alive);
        }
        None => return wrong_credentials(buf, keep_alive, ctx),
    };
    if signup && !password::is_acceptable(&login.password) {
        let e = error("invalid_password", "passwords are 8-128 characters");
        return respond(buf, 400, &e, &[], keep_alive);
    }
    if !signup && login.password.len() > 1024 {
        return wrong_credentials(buf, keep_alive, ctx);
    }
    let auth = &ctx.auth;
    let limited = match auth.attempts_by_ip.take(&peer) {
        Err(wait) => Err((wait, Limit::LoginIp)),
        Ok(()) => auth
            .attempts_by_user
            .take(&user)
            .map_err(|wait| (wait, Limit::LoginUser)),
    };
    if let Err((wait, limit)) = limited {
        ctx.hit_limit(limit);
        let retry = wait.to_string();
        let e = error("rate_limited", "too many attempts; wait and retry");
        return respond(buf, 429, &e, &[("Retry-After", &retry)], keep_alive);
    }
    let c = Credentials {
        reply,
        user,
        password: login.password,
        peer,
    };
    submit(
        if signup {
            Job::Signup(c)
        } else {
            Job::Login(c)
        },
        buf,
        ctx,
        keep_alive,
    )
}

/// The same answer for an unknown user and a wrong password: here, a
/// log-in no account could match, counted as a failed log-in all the same.
fn wrong_credentials(buf: &mut Vec<u8>, keep_alive: bool, ctx: &Ctx) -> Outcome {
    ReactorStats::add(&ctx.auth.stats.auth_failures, 1);
    let e = error("invalid_credentials", "user name or password is wrong");
    respond(buf, 401, &e, &[], keep_alive)
}

fn submit(job: Job, buf: &mut Vec<u8>, ctx: &Ctx, keep_alive: bool) -> Outcome {
    match ctx.auth.pool.submit(job) {
        Ok(()) => Outcome::Deferred,
        Err(_) => {
            let e = error("busy", "too many logins in progress; retry");
            respond(buf, 503, &e, &[("Retry-After", "1")], keep_alive)
        }
    }
}

fn respond(
    buf: &mut Vec<u8>,
    status: u16,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
    keep_alive: bool,
) -> Outcome {
    let mut headers = vec![("Cache-Control", "no-store")];
    headers.extend_from_slice(extra);
    let body = body.to_string();
    write_response(
        buf,
        status,
        "application/json",
        &headers,
        body.as_bytes(),
        keep_alive,
        false,
    );
    Outcome::Respond { keep_alive }
}

/// Appends a JSON error response, for callers outside this module that
/// answer an API request (a refused body).
pub fn write_error(buf: &mut Vec<u8>, status: u16, code: &str, message: &str, keep_alive: bool) {
    respond(buf, status, &error(code, message), &[], keep_alive);
}

fn not_allowed(buf: &mut Vec<u8>, allow: &str, keep_alive: bool) -> Outcome {
    let e = error("method_not_allowed", "method not allowed");
    respond(buf, 405, &e, &[("Allow", allow)], keep_alive)
}
