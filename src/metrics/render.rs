//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! `# HELP` and `# TYPE` once per family, then its samples; histograms as
//! cumulative `_bucket{le=...}` lines ending at `+Inf`, with `_sum` and
//! `_count`. Label values come from a closed set (codes, limits, reactor
//! indexes) or from canary node names, which are escaped all the same.
//!
//! The `parley_redis_*` families exist only on a node configured with
//! Redis: on the embedded broker there is no Redis to be up, and a
//! constant 1 would read as "Redis fine" on a dashboard.
//! `parley_broker_info{kind}` names the broker either way.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Snapshot, LATENCY_BOUNDS_US};
use crate::broker::Broker;
use crate::stats::{ReactorStats, Stats};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric family of this process, as one exposition; `with_redis`
/// says whether `broker` is the Redis one.
pub fn render(stats: &Stats, broker: &dyn Broker, with_redis: bool) -> String {
    let mut out = String::with_capacity(8 * 1024);
    per_reactor(&mut out, stats);
    totals(&mut out, stats);
    codes(&mut out, stats);
    latencies(&mut out, stats);
    process(&mut out, stats);
    broker_state(&mut out, broker, with_redis);
    canary(&mut out, stats);
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn per_reactor(out: &mut String, stats: &Stats) {
    family(
        out,
        "parley_connections",
        "gauge",
        "Open connections (HTTP and WebSocket), by reactor.",
    );
    for (i, r) in stats.reactors.iter().enumerate() {
        let value = r.connections.load(Ordering::Relaxed);
        sample(
            out,
            "parley_connections",
            &format!("reactor=\"{i}\""),
            value,
        );
    }
}

fn totals(out: &mut String, stats: &Stats) {
    type Field = fn(&ReactorStats) -> &AtomicU64;
    let rows: [(&str, &str, &str, Field); 9] = [
        ("parley_rooms", "gauge", "Rooms with local members.", |r| {
            &r.rooms
        }),
        (
            "parley_connections_accepted_total",
            "counter",
            "Connections accepted.",
            |r| &r.accepted,
        ),
        (
            "parley_messages_in_total",
            "counter",
            "Chat messages received from clients.",
            |r| &r.messages_in,
        ),
        (
            "parley_deliveries_total",
            "counter",
            "Room message frames queued to local members as published.",
            |r| &r.deliveries,
        ),
        (
            "parley_messages_out_total",
            "counter",
            "Room messages queued to clients: deliveries plus backlog \
             replayed on join or resume.",
            |r| &r.messages_out,
        ),
        (
            "parley_bytes_queued",
            "gauge",
            "Bytes waiting in outbound queues (refreshed 4 times a second).",
            |r| &r.bytes_queued,
        ),
        (
            "parley_slow_consumer_disconnects_total",
            "counter",
            "Connections closed for falling behind (1013).",
            |r| &r.slow_consumers,
        ),
        (
            "parley_ping_timeouts_total",
            "counter",
            "Connections closed for not answering pings (1013).",
            |r| &r.ping_timeouts,
        ),
        (
            "parley_reactors_accepting",
            "gauge",
            "Reactors whose listener accepts connections.",
            |r| &r.accepting,
        ),
    ];
    for (name, kind, help, field) in rows {
        family(out, name, kind, help);
        sample(out, name, "", stats.sum(field));
    }
}

fn codes(out: &mut String, stats: &Stats) {
    let name = "parley_closes_total";
    family(out, name, "counter", "Close frames sent, by close code.");
    let mut closes: Vec<(String, u64)> = Vec::new();
    for r in &stats.reactors {
        add_pairs(&mut closes, r.closes.values());
    }
    for (code, n) in closes {
        sample(out, name, &format!("code=\"{code}\""), n);
    }

    let name = "parley_http_errors_total";
    family(
        out,
        name,
        "counter",
        "HTTP error responses (refused or shed connections, bad requests, \
         account API errors), by status.",
    );
    let mut errors: Vec<(String, u64)> = Vec::new();
    for r in &stats.reactors {
        add_pairs(&mut errors, r.http_errors.values());
    }
    for (status, n) in errors {
        sample(out, name, &format!("status=\"{status}\""), n);
    }
}

/// Adds `(label, n)` pairs into `into`, matching labels in order.
fn add_pairs(into: &mut Vec<(String, u64)>, values: impl Iterator<Item = (String, u64)>) {
    for (i, (label, n)) in values.enumerate() {
        match into.get_mut(i) {
            Some(slot) => slot.1 += n,
            None => into.push((label, n)),
        }
    }
}

fn latencies(out: &mut String, stats: &Stats) {
    let mut publish = Snapshot::default();
    let mut fanout = Snapshot::default();
    for r in &stats.reactors {
        r.publish_latency.add_to(&mut publish);
        r.fanout_latency.add_to(&mut fanout);
    }
    let name = "parley_publish_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "From a send handed to the broker to its ack (stored).",
    );
    histogram(out, name, "", &publish);
    let name = "parley_fanout_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "From a message's server timestamp to its frame queued to members \
         (millisecond resolution).",
    );
    histogram(out, name, "", &fanout);
}

/// Cumulative buckets, `_sum` and `_count`; `labels` go before `le`.
fn histogram(out: &mut String, name: &str, labels: &str, s: &Snapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (bound, n) in LATENCY_BOUNDS_US.iter().zip(&s.buckets) {
        cumulative += n;
        let le = seconds(*bound);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let count = s.count();
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {}", braces(labels), seconds(s.sum_us));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

/// Microseconds as a decimal number of seconds, without float noise.
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn process(out: &mut String, stats: &Stats) {
    let gauges = [
        (
            "parley_draining",
            "gauge",
            "1 once SIGTERM started a drain.",
            u64::from(stats.is_draining()),
        ),
        (
            "parley_auth_failures_total",
            "counter",
            "Failed authentications.",
            stats.auth_failures.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in gauges {
        family(out, name, kind, help);
        sample(out, name, "", value);
    }

    let name = "parley_rate_limit_hits_total";
    family(
        out,
        name,
        "counter",
        "Requests or connections refused by a limit, by limit.",
    );
    for (limit, n) in stats.rate_limit_hits.values() {
        sample(out, name, &format!("limit=\"{limit}\""), n);
    }
}

/// Which broker this node runs, and Redis's state when it is Redis.
fn broker_state(out: &mut String, broker: &dyn Broker, with_redis: bool) {
    let name = "parley_broker_info";
    family(
        out,
        name,
        "gauge",
        "Always 1; the kind label names the broker (embedded or redis).",
    );
    let kind = if with_redis { "redis" } else { "embedded" };
    sample(out, name, &format!("kind=\"{kind}\""), 1);
    if !with_redis {
        return;
    }
    let name = "parley_redis_up";
    family(out, name, "gauge", "1 while Redis is reachable.");
    sample(out, name, "", u64::from(broker.is_ready()));
    let name = "parley_redis_reconnects_total";
    family(
        out,
        name,
        "counter",
        "Times the broker had to reconnect to Redis.",
    );
    sample(out, name, "", broker.reconnects());
}

fn canary(out: &mut String, stats: &Stats) {
    let nodes = stats.canary.report();
    let name = "parley_canary_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "Canary messages: publish (sender's clock) to receipt, by sender.",
    );
    for n in &nodes {
        histogram(out, name, &node_label(&n.node), &n.latency);
    }
    let name = "parley_canary_gaps_total";
    family(out, name, "counter", "Canary messages that never arrived.");
    sample(out, name, "", stats.canary.gaps.load(Ordering::Relaxed));
    let name = "parley_canary_last_seen_seconds";
    family(
        out,
        name,
        "gauge",
        "Seconds since a canary message from each node was received.",
    );
    for n in &nodes {
        let _ = writeln!(
            out,
            "{name}{{{}}} {:.3}",
            node_label(&n.node),
            n.last_seen.as_secs_f64()
        );
    }
}

/// `node="..."`, escaped as the format requires.
fn node_label(node: &str) -> String {
    let mut v = String::with_capacity(node.len());
    for c in node.chars() {
        match c {
            '\\' => v.push_str("\\\\"),
            '"' => v.push_str("\\\""),
            '\n' => v.push_str("\\n"),
            c => v.push(c),
        }
    }
    format!("node=\"{v}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn every_family_has_help_and_type() {
        let stats = Stats::new(2);
        stats.canary.record("n\"1", 1, 300);
        stats.reactors[0].closes.count(1012);
        let broker = crate::broker::memory::MemoryBroker::new(
            Vec::new(),
            crate::broker::memory::Limits {
                history_size: 1,
                history_on_join: 1,
                max_rooms: 1,
                max_history_bytes: 1 << 20,
                max_owned_rooms: 1,
                max_room_members: 1,
            },
        );
        let text = render(&stats, &broker, false);
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(helps, types);
        assert!(text.contains("parley_connections{reactor=\"1\"} 0"));
        assert!(text.contains("parley_closes_total{code=\"1012\"} 1"));
        assert!(
            text.contains("parley_canary_latency_seconds_bucket{node=\"n\\\"1\",le=\"0.0005\"} 1")
        );
        assert!(text.contains("parley_publish_latency_seconds_bucket{le=\"+Inf\"} 0"));
        assert!(text.contains("parley_broker_info{kind=\"embedded\"} 1"));
        assert!(
            !text.contains("parley_redis_up"),
            "no Redis, no Redis gauge"
        );
        assert!(text.contains("parley_rate_limit_hits_total{limit=\"rooms_per_conn\"} 0"));
        assert!(render(&stats, &broker, true).contains("parley_redis_up 1"));
    }
}
