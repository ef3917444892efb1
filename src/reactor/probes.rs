//! What the operational endpoints answer: `/healthz` (liveness),
//! `/readyz` (readiness) and `/metrics`, plus the count of HTTP error
//! responses by status that `/metrics` reports.
//!
//! Liveness never looks at Redis: a Redis blip must not get every node
//! restarted. It fails only when a reactor stopped ticking, which a restart
//! does fix. Readiness is the opposite: any reason not to send new clients
//! here (draining, a listener closed, the broker unreachable).

use std::sync::atomic::Ordering;

use super::ctx::Ctx;

/// A reactor that has not swept for this long counts as hung.
const STALL_MS: u64 = 10_000;

/// `(status, JSON body)` for `/healthz`.
pub fn alive(ctx: &Ctx) -> (u16, String) {
    let stats = &ctx.all_stats;
    let connections = stats.sum(|r| &r.connections);
    let stalled = stats.stalled_reactors(STALL_MS);
    let (status, word) = if stalled == 0 {
        (200, "ok")
    } else {
        (503, "stalled")
    };
    let body = format!(
        "{{\"status\":\"{word}\",\"connections\":{connections},\
         \"reactors\":{},\"stalled_reactors\":{stalled},\"guests_allowed\":{}}}",
        stats.reactors.len(),
        ctx.auth.settings.allow_guests
    );
    (status, body)
}

/// `(status, JSON body)` for `/readyz`.
pub fn ready(ctx: &Ctx) -> (u16, &'static str) {
    let stats = &ctx.all_stats;
    let accepting = stats
        .reactors
        .iter()
        .all(|r| r.accepting.load(Ordering::Relaxed) == 1);
    if stats.is_draining() {
        (503, "{\"ready\":false,\"reason\":\"draining\"}")
    } else if !accepting {
        (503, "{\"ready\":false,\"reason\":\"not accepting\"}")
    } else if !ctx.broker.is_ready() {
        (503, "{\"ready\":false,\"reason\":\"broker unavailable\"}")
    } else {
        (200, "{\"ready\":true}")
    }
}

pub fn metrics(ctx: &Ctx) -> String {
    let with_redis = !ctx.config.redis.is_empty();
    crate::metrics::render::render(&ctx.all_stats, &*ctx.broker, with_redis)
}

/// Counts a response the router wrote if it is an error: `response` is
/// our own `HTTP/1.1 NNN ...` bytes.
pub fn count_response(response: &[u8], ctx: &Ctx) {
    let status = response
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    if let Some(status) = status.filter(|&s| s >= 400) {
        ctx.stats.http_errors.count(status);
    }
}

/// Paths served here (anything but GET and HEAD gets 405 on them).
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}
