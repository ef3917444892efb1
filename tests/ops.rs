//! Operations: the configuration commands, `/metrics` checked with the
//! reference Prometheus parser, readiness and liveness, reserved rooms.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{get_body, http, metrics, raw, read_response, recv_until, Redis, Server, TEST_KEY};
use serde_json::json;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;

fn parley(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parley"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run parley");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("parley-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_names_the_key_at_fault_and_exits_2() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/parley.toml");
    let (code, out, _) = parley(&["check-config", example], &[]);
    assert_eq!((code, out.trim()), (0, "ok"), "the example config is valid");

    let cases = [
        ("unknown", "max_txt_bytes = 10\n", "max_txt_bytes"),
        ("type", "max_text_bytes = \"big\"\n", "max_text_bytes: "),
        ("range", "max_headers = 1000\n", "max_headers: 1000"),
        ("level", "log_level = \"loud\"\n", "log_level: "),
        ("redis", "redis = \"http://x\"\n", "redis: "),
        (
            "drain",
            "drain_window_ms = 30000\n",
            "shutdown_timeout_ms: ",
        ),
        ("syntax", "listen = \n", "listen"),
    ];
    for (name, text, want) in cases {
        let path = temp_file(name, text);
        let (code, out, err) = parley(&["check-config", path.to_str().unwrap()], &[]);
        let _ = std::fs::remove_file(&path);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(out.is_empty(), "{name}: printed {out:?}");
        assert!(err.contains(want), "{name}: {err:?} should name {want:?}");
    }

    // The same checks stop the server itself, for every source.
    let path = temp_file("start", "max_txt_bytes = 10\n");
    let (code, _, err) = parley(&["--config", path.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 2);
    assert!(err.contains("max_txt_bytes"), "{err}");
    let (code, _, err) = parley(&[], &[("PARLEY_MAX_HEADERS", "1000")]);
    assert_eq!(code, 2);
    assert!(err.contains("max_headers: 1000"), "{err}");
    let (code, _, err) = parley(&["--drain-delay-ms", "19500"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("shutdown_timeout_ms"), "{err}");
}

#[test]
fn print_config_layers_sources_and_redacts_secrets() {
    let path = temp_file(
        "print",
        "redis = \"redis://app:hunter2@db.internal:6379/0\"\n\
         session_key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n\
         max_text_bytes = 100\nhistory_size = 70\nreactors = 3\n",
    );
    let (code, out, err) = parley(
        &[
            "print-config",
            "--config",
            path.to_str().unwrap(),
            "--reactors",
            "5",
        ],
        &[("PARLEY_HISTORY_SIZE", "90")],
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("hunter2"), "password leaked:\n{out}");
    assert!(!out.contains("0e0f1011"), "session key leaked:\n{out}");
    let table: toml::Table = toml::from_str(&out).expect("print-config prints TOML");
    assert_eq!(
        table["redis"].as_str(),
        Some("redis://app:<redacted>@db.internal:6379/0")
    );
    assert_eq!(table["max_text_bytes"].as_integer(), Some(100), "file");
    assert_eq!(
        table["history_size"].as_integer(),
        Some(90),
        "env beats file"
    );
    assert_eq!(table["reactors"].as_integer(), Some(5), "flag beats file");
    assert_eq!(
        table["drain_window_ms"].as_integer(),
        Some(10_000),
        "default"
    );
    println!("print-config:\n{out}");
}

/// A sample's value; the test fails if the series is missing.
fn v(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing from /metrics"))
}

fn limit(name: &str) -> String {
    format!("parley_rate_limit_hits_total{{limit=\"{name}\"}}")
}

fn status(code: u16) -> String {
    format!("parley_http_errors_total{{status=\"{code}\"}}")
}

/// What moved between two scrapes, for the failure message.
fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> String {
    let mut lines: Vec<String> = after
        .iter()
        .filter(|(k, n)| before.get(*k) != Some(*n) && !k.contains("_bucket"))
        .map(|(k, n)| format!("{k} {} -> {n}", before.get(k).copied().unwrap_or(0.0)))
        .collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let server = Server::start(&[
        "--reactors",
        "2",
        "--max-rooms-per-conn",
        "1",
        "--max-conns-per-user",
        "1",
    ]);
    let before = metrics(server.addr);
    for key in [
        "parley_connections{reactor=\"0\"}",
        "parley_connections{reactor=\"1\"}",
        "parley_rooms{}",
        "parley_bytes_queued{}",
        "parley_broker_info{kind=\"embedded\"}",
        "parley_auth_failures_total{}",
        "parley_messages_out_total{}",
        "parley_canary_gaps_total{}",
        "parley_publish_latency_seconds_bucket{le=\"0.0001\"}",
        "parley_fanout_latency_seconds_bucket{le=\"+Inf\"}",
    ] {
        v(&before, key);
    }
    for name in [
        "login_ip",
        "login_user",
        "message_rate",
        "conns_user",
        "conns_ip",
        "rooms_per_conn",
        "pending_handshakes",
        "pending_per_ip",
    ] {
        assert_eq!(v(&before, &limit(name)), 0.0, "{name}");
    }
    assert_eq!(v(&before, "parley_messages_in_total{}"), 0.0);
    assert!(
        !before.keys().any(|k| k.starts_with("parley_redis_")),
        "no Redis configured, so no parley_redis_* series"
    );

    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    alice.join("metered", None);
    bob.join("metered", None);
    for i in 0..5 {
        alice.say("metered", "hi", &format!("c{i}"));
        recv_until(&mut alice, |m| m["type"] == "ack");
    }
    for _ in 0..5 {
        recv_until(&mut bob, |m| m["type"] == "message");
    }
    // A later member gets the five as backlog: out, but not delivered live.
    let mut carol = server.client("carol");
    let (_, backlog) = carol.join("metered", None);
    assert_eq!(backlog.len(), 5);
    // One room per socket here: a second is refused, and counted.
    carol.send(json!({"type": "join", "room": "another", "id": 7}));
    assert_eq!(carol.recv_type("error")["code"], "too_many_rooms");
    // One socket per user here: alice's second is refused with 429.
    let second = http(
        server.addr,
        &common::UPGRADE.replace("name=raw", "name=alice"),
    );
    assert!(second.starts_with("HTTP/1.1 429"), "{second}");
    drop(carol); // hangs up: alice alone keeps the room open
    http(server.addr, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    http(server.addr, "GET /ws?name=x HTTP/1.1\r\nHost: t\r\n\r\n");
    bob.ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .unwrap();
    let _ = bob.ws.read();
    std::thread::sleep(Duration::from_millis(600)); // a sweep for gauges

    let after = metrics(server.addr);
    println!(
        "/metrics after traffic:\n{}",
        get_body(server.addr, "/metrics")
    );
    assert_eq!(v(&after, "parley_messages_in_total{}"), 5.0);
    assert_eq!(v(&after, "parley_deliveries_total{}"), 10.0);
    assert_eq!(
        v(&after, "parley_messages_out_total{}"),
        15.0,
        "10 live deliveries and carol's 5 of backlog:\n{}",
        moved(&before, &after)
    );
    assert_eq!(v(&after, &limit("rooms_per_conn")), 1.0);
    assert_eq!(v(&after, &limit("conns_user")), 1.0);
    assert_eq!(v(&after, &status(429)), 1.0);
    assert_eq!(v(&after, "parley_rooms{}"), 1.0);
    assert_eq!(v(&after, "parley_publish_latency_seconds_count{}"), 5.0);
    // One observation per message per reactor with members (1 or 2).
    let fanouts = v(&after, "parley_fanout_latency_seconds_count{}");
    assert!(fanouts == 5.0 || fanouts == 10.0, "{fanouts}");
    assert_eq!(v(&after, "parley_http_errors_total{status=\"404\"}"), 1.0);
    assert!(v(&after, "parley_http_errors_total{status=\"400\"}") >= 1.0);
    assert_eq!(v(&after, "parley_closes_total{code=\"1000\"}"), 1.0);
    let open = v(&after, "parley_connections{reactor=\"0\"}")
        + v(&after, "parley_connections{reactor=\"1\"}");
    assert!(open >= 2.0, "alice and the scrape: {open}");
    assert!(
        v(&after, "parley_connections_accepted_total{}")
            > v(&before, "parley_connections_accepted_total{}")
    );
    assert_eq!(v(&after, "parley_broker_info{kind=\"embedded\"}"), 1.0);
}

/// The account workers' answers count like the router's: wrong passwords
/// (401) and taken names (409) under `parley_http_errors_total`, failed
/// log-ins and bad tokens under `parley_auth_failures_total`, and each
/// log-in limit under its own label.
#[test]
fn account_failures_and_limits_are_counted() {
    let server =
        Server::start_exact(&["--session-key", TEST_KEY, "--login-attempts-per-user", "4"]);
    let post = |path: &str, user: &str, password: &str| {
        let body = json!({"username": user, "password": password}).to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let reply = http(server.addr, &request);
        reply[9..12].parse::<u16>().unwrap()
    };
    let before = metrics(server.addr);

    // Four attempts for "olga" (the per-user limit), then a fifth.
    assert_eq!(post("/api/signup", "olga", "correct horse battery"), 201);
    assert_eq!(post("/api/signup", "olga", "another password"), 409);
    assert_eq!(post("/api/login", "olga", "wrong password"), 401);
    assert_eq!(post("/api/login", "olga", "wrong again!"), 401);
    assert_eq!(post("/api/login", "olga", "correct horse battery"), 429);
    let me = http(
        server.addr,
        "GET /api/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer forged.token\r\n\r\n",
    );
    assert!(me.starts_with("HTTP/1.1 401"), "{me}");
    let ws = http(server.addr, &common::UPGRADE.replace("/ws?name=raw", "/ws"));
    assert!(ws.starts_with("HTTP/1.1 401"), "{ws}");

    let after = metrics(server.addr);
    let diff = moved(&before, &after);
    let delta = |key: &str| v(&after, key) - v(&before, key);
    assert_eq!(delta(&status(409)), 1.0, "{diff}");
    assert_eq!(delta(&status(401)), 4.0, "2 log-ins, /api/me, /ws:\n{diff}");
    assert_eq!(delta(&status(429)), 1.0, "{diff}");
    assert_eq!(delta("parley_auth_failures_total{}"), 4.0, "{diff}");
    assert_eq!(delta(&limit("login_user")), 1.0, "{diff}");
    assert_eq!(delta(&limit("login_ip")), 0.0, "{diff}");
}

/// Shed connections count as 503 and under their limit; a request that
/// stalls part way gets a 408, counted; an idle connection is closed
/// without one.
#[test]
fn shed_and_timed_out_connections_are_counted() {
    let server = Server::start(&[
        "--reactors",
        "1",
        "--max-pending-handshakes",
        "1",
        "--handshake-timeout-ms",
        "400",
    ]);
    let before = metrics(server.addr);

    let mut partial = raw(server.addr);
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let timed_out = read_response(&mut partial);
    assert!(timed_out.starts_with("HTTP/1.1 408"), "{timed_out}");
    drop(partial);

    let mut idle = raw(server.addr);
    std::thread::sleep(Duration::from_millis(100));
    let shed = http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(shed.contains("Retry-After: 1"), "{shed}");
    let mut rest = Vec::new();
    let n = std::io::Read::read_to_end(&mut idle, &mut rest).unwrap();
    assert_eq!(n, 0, "an idle connection times out without a response");

    let after = metrics(server.addr);
    let diff = moved(&before, &after);
    let delta = |key: &str| v(&after, key) - v(&before, key);
    assert_eq!(delta(&status(408)), 1.0, "{diff}");
    assert_eq!(delta(&status(503)), 1.0, "{diff}");
    assert_eq!(delta(&limit("pending_handshakes")), 1.0, "{diff}");
}

#[test]
fn readiness_turns_false_at_sigterm_while_the_listener_still_accepts() {
    let server = Server::start(&["--drain-delay-ms", "1500", "--drain-window-ms", "0"]);
    let ready = || http(server.addr, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(ready().starts_with("HTTP/1.1 200"));
    let mut c = server.client("stays");
    c.join("r", None);
    let start = Instant::now();
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let reply = ready();
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("draining"), "{reply}");
    // Liveness is not readiness: still alive, and still accepting.
    let health = http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert_eq!(metrics(server.addr)["parley_draining{}"], 1.0);
    let close = c.recv_close().expect("a close frame");
    let waited = start.elapsed();
    assert_eq!(u16::from(close.code), 1012);
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
}

#[test]
fn readiness_and_redis_metrics_follow_redis() {
    let mut redis = Redis::start();
    let node = Server::start_node(&redis, &["--canary-interval-ms", "0"]);
    let wait_for = |status: &str, up: f64| {
        let start = Instant::now();
        loop {
            let reply = http(node.addr, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
            let m = metrics(node.addr);
            if reply.starts_with(status) && m["parley_redis_up{}"] == up {
                return m;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "{reply}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let m = wait_for("HTTP/1.1 200", 1.0);
    assert_eq!(m["parley_redis_reconnects_total{}"], 0.0);
    assert_eq!(m["parley_broker_info{kind=\"redis\"}"], 1.0);
    redis.kill();
    wait_for("HTTP/1.1 503", 0.0);
    let health = http(node.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "liveness ignores Redis");
    redis.restart();
    let m = wait_for("HTTP/1.1 200", 1.0);
    assert!(m["parley_redis_reconnects_total{}"] >= 1.0);
}

#[test]
fn rooms_starting_with_underscore_are_reserved() {
    let server = Server::start(&[]);
    let mut c = server.client("nosy");
    c.send(json!({"type": "join", "room": "_canary", "id": 1}));
    let reply = c.recv();
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "invalid_room");
    c.send(json!({"type": "send", "room": "_canary", "text": "x", "cid": "1"}));
    assert_eq!(c.recv()["code"], "invalid_room");
}
