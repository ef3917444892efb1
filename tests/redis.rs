//! Many nodes, one chat: parley nodes sharing a real redis-server.
//! Ordering across nodes, recovery through node and Redis failures,
//! deduplication, gap filling and readiness.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{http, recv_presence, recv_until, Client, Redis, Server};
use serde_json::{json, Value};
use tungstenite::Message;

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

/// Node options that make the stream short enough to outrun in a test.
const SHORT_HISTORY: [&str; 4] = ["--history-size", "3", "--history-on-join", "3"];

/// The `message` frames a client receives until the server closes it, and
/// the close code.
fn messages_until_close(c: &mut Client) -> (Vec<Value>, u16) {
    let mut messages = Vec::new();
    loop {
        let frame = c
            .ws
            .read()
            .unwrap_or_else(|e| panic!("no close frame ({e}); messages: {:?}", seqs(&messages)));
        match frame {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "message" {
                    messages.push(v);
                }
            }
            Message::Close(frame) => {
                return (messages, frame.map_or(0, |f| u16::from(f.code)));
            }
            _ => {}
        }
    }
}

/// The ids of Redis's pub/sub clients (one per node: its subscriber).
fn pubsub_ids(redis: &Redis) -> Vec<String> {
    redis
        .cli(&["CLIENT", "LIST", "TYPE", "pubsub"])
        .lines()
        .filter_map(|l| l.strip_prefix("id="))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Stores `seq` the way the send script would, without publishing it.
fn store_unpublished(redis: &Redis, room: &str, seq: u64, text: &str) {
    redis.cli(&["SET", &format!("parley:{{{room}}}:seq"), &seq.to_string()]);
    let id = format!("{seq}-0");
    let cid = format!("ghost-{seq}-{text}");
    let log = format!("parley:{{{room}}}:log");
    let fields = ["f", "ghost", "c", &cid, "t", text, "ts", "1"];
    let mut args = vec!["XADD", &log, &id];
    args.extend_from_slice(&fields);
    let out = redis.cli(&args);
    assert_eq!(out.trim(), id, "XADD {id}");
}

/// Rolls room `room` back from seq `top` to `to`, keeping its epoch: what
/// Redis restarted from an AOF that lost its last second looks like.
fn roll_back(redis: &Redis, room: &str, top: u64, to: u64) {
    let log = format!("parley:{{{room}}}:log");
    let ids: Vec<String> = (to + 1..=top).map(|s| format!("{s}-0")).collect();
    let mut args = vec!["XDEL", log.as_str()];
    args.extend(ids.iter().map(String::as_str));
    redis.cli(&args);
    redis.cli(&["XSETID", &log, &format!("{to}-0")]);
    redis.cli(&["SET", &format!("parley:{{{room}}}:seq"), &to.to_string()]);
}

/// Joins `room` as `name`, resuming from `since` in `epoch`; returns
/// `joined`.
fn resume(node: &Server, name: &str, room: &str, since: u64, epoch: &str) -> Value {
    let mut c = node.client(name);
    c.send(json!({"type":"join","room":room,"since":since,"epoch":epoch}));
    c.recv_type("joined")
}

fn epoch_in_redis(redis: &Redis, room: &str) -> String {
    let out = redis.cli(&["GET", &format!("parley:{{{room}}}:epoch")]);
    out.trim().to_string()
}

/// Keeps Redis busy, in back-to-back 20 ms Lua loops, until dropped: as
/// a slow script or a big command from elsewhere would.
struct Busy {
    child: std::process::Child,
}

impl Busy {
    fn start(redis: &Redis) -> Busy {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-cli");
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let spin = "EVAL \"local t = redis.call('TIME') \
                local t0 = t[1] * 1000000 + t[2] repeat t = redis.call('TIME') \
                until t[1] * 1000000 + t[2] - t0 > 20000 return 1\" 0\n";
            // Ends when the child is killed and the pipe breaks.
            while stdin.write_all(spin.as_bytes()).is_ok() {}
        });
        Busy { child }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(node: &Server, sig: &str) {
    let pid = node.child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

#[test]
fn clients_on_different_nodes_see_one_order() {
    let redis = Redis::start();
    let nodes: Vec<Server> = (0..3).map(|_| Server::start_node(&redis, &[])).collect();
    const ROOMS: usize = 2;
    const PER_NODE: usize = 2;
    const EACH: usize = 30;
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..PER_NODE {
            for r in 0..ROOMS {
                let mut c = node.client(&format!("n{n}c{i}r{r}"));
                c.join(&format!("room{r}"), None);
                clients.push((r, c));
            }
        }
    }
    let per_room = nodes.len() * PER_NODE * EACH;
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(k, (r, mut c))| {
            std::thread::spawn(move || {
                let room = format!("room{r}");
                for n in 0..EACH {
                    c.say(&room, &format!("{k}-{n}"), &format!("{k}-{n}"));
                }
                let mut got = Vec::new();
                let mut acks = 0;
                while got.len() < per_room || acks < EACH {
                    let v = c.recv();
                    match v["type"].as_str() {
                        Some("message") => got.push((
                            v["seq"].as_u64().unwrap(),
                            v["text"].as_str().unwrap().to_string(),
                        )),
                        Some("ack") => acks += 1,
                        Some("presence") => {}
                        other => panic!("unexpected {other:?}: {v}"),
                    }
                }
                (r, got)
            })
        })
        .collect();
    let mut by_room: HashMap<usize, Vec<Vec<(u64, String)>>> = HashMap::new();
    for h in handles {
        let (r, got) = h.join().unwrap();
        by_room.entry(r).or_default().push(got);
    }
    for (r, views) in by_room {
        let first = &views[0];
        let want: Vec<u64> = (1..=per_room as u64).collect();
        assert_eq!(
            first.iter().map(|m| m.0).collect::<Vec<_>>(),
            want,
            "room{r}: every seq once, in order"
        );
        for v in &views {
            assert_eq!(v, first, "room{r}: identical on every node");
        }
    }
}

#[test]
fn history_and_since_work_across_nodes_and_restarts() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let mut alice = a.client("alice");
    alice.join("r", None);
    for i in 1..=6 {
        alice.say("r", &format!("m{i}"), &format!("c{i}"));
        recv_until(&mut alice, |v| v["type"] == "ack");
    }
    drop(alice);
    drop(a);

    // A node that never saw those messages serves them from Redis.
    let b = Server::start_node(&redis, &["--history-on-join", "3"]);
    let mut bob = b.client("bob");
    let (joined, backlog) = bob.join("r", Some(2));
    assert_eq!(
        (joined["seq"].as_u64(), joined["reset"].as_bool()),
        (Some(6), Some(false))
    );
    assert_eq!(seqs(&backlog), [3, 4, 5, 6]);
    assert_eq!(backlog[0]["text"], "m3");
    let epoch = joined["epoch"].as_str().unwrap().to_string();
    assert!(!epoch.is_empty());

    let (_, recent) = b.client("carol").join("r", None);
    assert_eq!(seqs(&recent), [4, 5, 6]);

    bob.send(json!({"type":"history","room":"r","before":4,"limit":2}));
    let page = bob.recv_type("history");
    assert_eq!(seqs(page["messages"].as_array().unwrap()), [2, 3]);
    assert_eq!(page["more"], true);

    // A wrong epoch means the client's seqs belong to lost data: reset.
    let mut dave = b.client("dave");
    dave.send(json!({"type":"join","room":"r","since":5,"epoch":"0000"}));
    assert_eq!(dave.recv_type("joined")["reset"], true);
    let mut erin = b.client("erin");
    erin.send(json!({"type":"join","room":"r","since":5,"epoch":epoch}));
    let joined = erin.recv_type("joined");
    assert_eq!(
        (joined["reset"].as_bool(), joined["backlog"].as_u64()),
        (Some(false), Some(1))
    );
}

#[test]
fn a_retry_with_the_same_cid_is_stored_once() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let b = Server::start_node(&redis, &[]);
    let mut sender = a.client("s");
    let mut watcher = b.client("w");
    sender.join("r", None);
    watcher.join("r", None);
    sender.say("r", "hello", "dup");
    let first = recv_until(&mut sender, |v| v["type"] == "ack")["seq"].as_u64();
    sender.say("r", "hello", "dup");
    let again = recv_until(&mut sender, |v| v["type"] == "ack")["seq"].as_u64();
    assert_eq!(first, again);
    sender.say("r", "next", "other");
    assert_eq!(watcher.recv_type("message")["cid"], "dup");
    let next = watcher.recv_type("message");
    assert_eq!(
        (next["cid"].as_str(), next["seq"].as_u64()),
        (Some("other"), Some(2))
    );
    assert_eq!(redis.cli(&["XLEN", "parley:{r}:log"]).trim(), "2");
}

/// A message that reached the stream but whose publish was lost (pub/sub
/// is at-most-once) is filled in before the next live one.
#[test]
fn a_gap_in_pubsub_is_filled_from_the_stream() {
    let redis = Redis::start();
    let node = Server::start_node(&redis, &[]);
    let mut a = node.client("a");
    let mut b = node.client("b");
    a.join("g", None);
    b.join("g", None);
    a.say("g", "one", "c1");
    assert_eq!(b.recv_type("message")["seq"], 1);
    // Store seq 2 the way the script would, without publishing it.
    redis.cli(&["INCR", "parley:{g}:seq"]);
    redis.cli(&[
        "XADD",
        "parley:{g}:log",
        "2-0",
        "f",
        "ghost",
        "c",
        "c2",
        "t",
        "two",
        "ts",
        "1",
    ]);
    a.say("g", "three", "c3");
    let m2 = b.recv_type("message");
    let m3 = b.recv_type("message");
    assert_eq!(
        (m2["seq"].as_u64(), m2["text"].as_str()),
        (Some(2), Some("two"))
    );
    assert_eq!(
        (m3["seq"].as_u64(), m3["text"].as_str()),
        (Some(3), Some("three"))
    );
}

/// A publish whose gap reaches further back than the (trimmed) stream
/// cannot be filled: members are reset, not handed a jump in seq.
#[test]
fn a_gap_the_stream_no_longer_holds_resets_members() {
    let redis = Redis::start();
    let node = Server::start_node(&redis, &SHORT_HISTORY);
    let mut a = node.client("a");
    let mut b = node.client("b");
    a.join("g", None);
    b.join("g", None);
    a.say("g", "one", "c1");
    assert_eq!(b.recv_type("message")["seq"], 1);

    // Seqs 2..=6 were stored but their publishes lost, and the stream
    // has since been trimmed to its last 3: 2 and 3 are gone.
    for seq in 2..=6 {
        store_unpublished(&redis, "g", seq, "lost");
    }
    redis.cli(&["XTRIM", "parley:{g}:log", "MAXLEN", "3"]);
    a.say("g", "seven", "c7");
    let (messages, code) = messages_until_close(&mut b);
    assert_eq!(seqs(&messages), Vec::<u64>::new(), "no silent jump");
    assert_eq!(code, 1012, "told to reconnect");

    let (joined, backlog) = node.client("b").join("g", Some(1));
    assert_eq!(joined["reset"], true);
    assert_eq!(seqs(&backlog), [5, 6, 7]);
}

/// A subscriber that was away while another node sent more than
/// `history_size` messages cannot backfill them all: its members are
/// reset, not handed a jump in seq.
#[test]
fn a_subscriber_away_past_the_history_resets_its_members() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &SHORT_HISTORY);
    let mut watcher = a.client("watcher");
    watcher.join("t", None);
    let a_sub = pubsub_ids(&redis);
    assert_eq!(a_sub.len(), 1, "only node a subscribes yet");
    let b = Server::start_node(&redis, &SHORT_HISTORY);
    let mut sender = b.client("sender");
    sender.join("t", None);
    sender.say("t", "m1", "c1");
    recv_until(&mut sender, |v| v["type"] == "ack");
    assert_eq!(watcher.recv_type("message")["seq"], 1);

    // Node a's subscriber is cut off (as by client-output-buffer-limit)
    // and stays away while node b sends 5 messages through a 3-long
    // stream.
    signal(&a, "-STOP");
    redis.cli(&["CLIENT", "KILL", "ID", &a_sub[0]]);
    for i in 2..=6 {
        let cid = format!("c{i}");
        sender.say("t", &format!("m{i}"), &cid);
        recv_until(&mut sender, |v| v["type"] == "ack" && v["cid"] == cid);
    }
    signal(&a, "-CONT");

    let (messages, code) = messages_until_close(&mut watcher);
    assert_eq!(seqs(&messages), Vec::<u64>::new(), "no silent jump");
    assert_eq!(code, 1012, "told to reconnect");
    let (joined, backlog) = a.client("watcher").join("t", Some(1));
    assert_eq!(joined["reset"], true);
    assert_eq!(seqs(&backlog), [4, 5, 6]);
}

/// Redis lost the tail of a room but kept its epoch key (appendfsync
/// everysec and a crash). Nodes subscribed to the room see a seq go
/// backwards and give the room a new epoch, once, so a client that was
/// offline meanwhile and resumes with the old epoch gets `reset` rather
/// than new messages under numbers it has seen.
#[test]
fn a_seq_seen_going_backwards_gives_the_room_a_new_epoch() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let b = Server::start_node(&redis, &[]);
    let mut watcher = a.client("watcher");
    watcher.join("rb", None);
    let mut sender = b.client("sender");
    sender.join("rb", None);
    for i in 1..=5 {
        let cid = format!("c{i}");
        sender.say("rb", &format!("m{i}"), &cid);
        recv_until(&mut sender, |v| v["type"] == "ack" && v["cid"] == cid);
    }
    for want in 1..=5 {
        assert_eq!(watcher.recv_type("message")["seq"], want);
    }
    // A client that has seen all five goes offline.
    let (joined, _) = b.client("late").join("rb", None);
    let old = joined["epoch"].as_str().unwrap().to_string();
    assert_eq!((joined["seq"].as_u64(), old.len()), (Some(5), 16));

    roll_back(&redis, "rb", 5, 2);
    sender.say("rb", "reuses 3", "r3");
    let (messages, code) = messages_until_close(&mut watcher);
    assert_eq!(seqs(&messages), Vec::<u64>::new(), "no reused seq shown");
    assert_eq!(code, 1012, "told to reconnect");
    assert_eq!(messages_until_close(&mut sender).1, 1012);
    let new = epoch_in_redis(&redis, "rb");
    assert_ne!(new, old, "a new epoch");

    // New sends pass the offline client's `since` under the new epoch.
    let mut again = a.client("sender");
    again.join("rb", None);
    for i in 4..=6 {
        let cid = format!("n{i}");
        again.say("rb", &format!("new {i}"), &cid);
        let ack = recv_until(&mut again, |v| v["type"] == "ack" && v["cid"] == cid);
        assert_eq!(ack["seq"], i);
    }
    for node in [&a, &b] {
        let joined = resume(node, "late", "rb", 5, &old);
        assert_eq!(joined["reset"], true, "old epoch: {joined}");
        assert_eq!(joined["epoch"], new.as_str(), "rotated once: {joined}");
        let joined = resume(node, "fresh", "rb", 5, &new);
        assert_eq!(joined["reset"], false, "new epoch: {joined}");
    }
}

/// The same loss, overtaken by new sends while a node's subscriber was
/// away (as when Redis crashes and other nodes get back first): the seq
/// is past the node's again, but the stored message at the last seq it
/// delivered is another one. The node gives the room a new epoch.
#[test]
fn a_reused_seq_found_on_reconnect_gives_the_room_a_new_epoch() {
    let redis = Redis::start();
    let node = Server::start_node(&redis, &[]);
    let mut watcher = node.client("watcher");
    watcher.join("rb", None);
    let mut sender = node.client("sender");
    sender.join("rb", None);
    for i in 1..=5 {
        sender.say("rb", &format!("m{i}"), &format!("c{i}"));
        assert_eq!(watcher.recv_type("message")["seq"], i);
    }
    let old = epoch_in_redis(&redis, "rb");
    let sub = pubsub_ids(&redis);
    assert_eq!(sub.len(), 1);

    roll_back(&redis, "rb", 5, 2);
    for seq in 3..=7 {
        store_unpublished(&redis, "rb", seq, "after the loss");
    }
    redis.cli(&["CLIENT", "KILL", "ID", &sub[0]]);
    let (messages, code) = messages_until_close(&mut watcher);
    assert_eq!(seqs(&messages), Vec::<u64>::new(), "no reused seq shown");
    assert_eq!(code, 1012, "told to reconnect");
    let new = epoch_in_redis(&redis, "rb");
    assert_ne!(new, old, "a new epoch");
    let joined = resume(&node, "late", "rb", 5, &old);
    assert_eq!(joined["reset"], true, "{joined}");
    assert_eq!(joined["epoch"], new.as_str());
}

/// kill -9 a node mid-stream: its clients reconnect to another node with
/// `since` and end with exactly the messages they missed.
#[test]
fn clients_of_a_killed_node_resume_elsewhere_without_loss() {
    let redis = Redis::start();
    let mut doomed = Server::start_node(&redis, &[]);
    let survivor = Server::start_node(&redis, &[]);
    let mut sender = survivor.client("sender");
    sender.join("k", None);
    let mut victim = doomed.client("victim");
    victim.join("k", None);

    let mut seen = Vec::new();
    for i in 1..=20u64 {
        sender.say("k", &format!("m{i}"), &format!("c{i}"));
        recv_until(&mut sender, |v| v["type"] == "ack");
        if i == 10 {
            // Read what arrived so far, then the node dies.
            while seen.len() < 10 {
                seen.push(victim.recv_type("message")["seq"].as_u64().unwrap());
            }
            doomed.child.kill().unwrap();
            doomed.child.wait().unwrap();
        }
    }
    let last = *seen.last().unwrap();
    let mut back = survivor.client("victim");
    let (joined, backlog) = back.join("k", Some(last));
    assert_eq!(joined["reset"], false);
    seen.extend(seqs(&backlog));
    assert_eq!(seen, (1..=20).collect::<Vec<_>>(), "no loss, no duplicate");
}

/// kill -9 Redis mid-stream and restart it from its AOF: sends during the
/// outage get `unavailable`, nodes resubscribe, and every acked message is
/// in the history and delivered exactly once.
#[test]
fn redis_restart_loses_no_acked_message() {
    let mut redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let b = Server::start_node(&redis, &[]);
    let mut sender = a.client("sender");
    let mut watcher = b.client("watcher");
    sender.join("z", None);
    watcher.join("z", None);

    let mut acked = Vec::new();
    let mut unavailable = 0;
    let mut restarted = false;
    let start = Instant::now();
    let mut i = 0;
    while acked.len() < 30 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stuck: {} acked",
            acked.len()
        );
        i += 1;
        if i == 10 {
            redis.kill();
        }
        if i == 15 && !restarted {
            redis.restart();
            restarted = true;
        }
        let cid = format!("c{i}");
        sender.say("z", &format!("m{i}"), &cid);
        let reply = recv_until(&mut sender, |v| {
            (v["type"] == "ack" || v["type"] == "error") && v["cid"] == cid.as_str()
        });
        match reply["type"].as_str() {
            Some("ack") => acked.push(reply["seq"].as_u64().unwrap()),
            _ => {
                assert_eq!(reply["code"], "unavailable", "{reply}");
                unavailable += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert!(unavailable > 0, "the outage was noticed");
    assert_eq!(acked, (1..=30).collect::<Vec<_>>());

    // The watcher, connected throughout, sees each acked message once.
    let mut got = Vec::new();
    while got.len() < acked.len() {
        got.push(watcher.recv_type("message")["seq"].as_u64().unwrap());
    }
    assert_eq!(got, acked);
    assert_eq!(redis.cli(&["XLEN", "parley:{z}:log"]).trim(), "30");

    // Nothing more arrives (no duplicate replays).
    watcher.say("z", "marker", "marker");
    let next = watcher.recv_type("message");
    assert_eq!(
        (next["cid"].as_str(), next["seq"].as_u64()),
        (Some("marker"), Some(31))
    );
}

/// A Redis busy for longer than the subscriber's 2 ms pub/sub poll delays
/// joins of new rooms (each subscribes); it does not fail them, nor cost
/// the subscriber its connection.
#[test]
fn joins_wait_out_a_busy_redis() {
    let redis = Redis::start();
    let node = Server::start_node(&redis, &[]);
    let mut c = node.client("joiner");
    let busy = Busy::start(&redis);
    for i in 0..20 {
        c.send(json!({"type":"join","room":format!("busy{i}")}));
        let reply = recv_until(&mut c, |v| v["type"] == "joined" || v["type"] == "error");
        assert_eq!(reply["type"], "joined", "join {i}: {reply}");
    }
    drop(busy);
    let log = node.log_text();
    assert!(!log.contains("connection lost"), "{log}");
}

#[test]
fn readiness_follows_redis() {
    let mut redis = Redis::start();
    let node = Server::start_node(&redis, &[]);
    let ready = |node: &Server| http(node.addr, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    let wait_for = |node: &Server, status: &str| {
        let start = Instant::now();
        loop {
            let reply = ready(node);
            if reply.starts_with(&format!("HTTP/1.1 {status}")) {
                return reply;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "readyz never became {status}: {reply}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&node, "200");
    redis.kill();
    wait_for(&node, "503");
    // Liveness does not depend on Redis.
    assert!(http(node.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").starts_with("HTTP/1.1 200"));
    redis.restart();
    wait_for(&node, "200");
}

#[test]
fn only_nodes_with_members_subscribe() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let _b = Server::start_node(&redis, &[]);
    let mut c = a.client("c");
    c.join("lonely", None);
    let subs = redis.cli(&["PUBSUB", "NUMSUB", "parley:{lonely}"]);
    assert!(subs.lines().nth(1).map(str::trim) == Some("1"), "{subs}");
    c.send(json!({"type":"leave","room":"lonely"}));
    c.recv_type("left");
    let start = Instant::now();
    loop {
        let subs = redis.cli(&["PUBSUB", "NUMSUB", "parley:{lonely}"]);
        if subs.lines().nth(1).map(str::trim) == Some("0") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still subscribed: {subs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Accounts live in Redis: sign up on one node, log in on another, and a
/// log-out on one node revokes the session on every node.
#[test]
fn accounts_and_revocations_are_shared_by_every_node() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let b = Server::start_node(&redis, &[]);
    let post = |node: &Server, path: &str, body: &str, extra: &str| {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        http(node.addr, &req)
    };
    let creds = r#"{"username":"shared","password":"correct horse battery"}"#;
    assert!(post(&a, "/api/signup", creds, "").starts_with("HTTP/1.1 201"));
    assert!(
        post(&b, "/api/signup", creds, "").starts_with("HTTP/1.1 409"),
        "one namespace"
    );
    let login = post(&b, "/api/login", creds, "");
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let body: Value = serde_json::from_str(login.split_once("\r\n\r\n").unwrap().1).unwrap();
    let bearer = format!(
        "Authorization: Bearer {}\r\n",
        body["token"].as_str().unwrap()
    );
    let me = |node: &Server| {
        http(
            node.addr,
            &format!("GET /api/me HTTP/1.1\r\nHost: t\r\n{bearer}\r\n"),
        )
    };
    assert!(
        me(&a).starts_with("HTTP/1.1 200"),
        "node a accepts node b's session"
    );

    assert!(post(&a, "/api/logout", "", &bearer).starts_with("HTTP/1.1 204"));
    let start = Instant::now();
    while !me(&b).starts_with("HTTP/1.1 401") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "node b never learned of the log-out"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Private rooms through Redis: membership is checked by the send script
/// on every message, so removing a member takes effect at once.
#[test]
fn private_room_membership_is_checked_on_every_message() {
    let redis = Redis::start();
    let a = Server::start_node(&redis, &[]);
    let b = Server::start_node(&redis, &[]);
    let mut owner = a.client("owner");
    let mut guest = b.client("guest");
    owner.send(json!({"type":"create","room":"vault","private":true}));
    owner.recv_type("created");
    guest.send(json!({"type":"join","room":"vault"}));
    assert_eq!(
        recv_until(&mut guest, |v| v["type"] == "error")["code"],
        "forbidden"
    );
    owner.send(json!({"type":"invite","room":"vault","user":"guest:guest"}));
    owner.recv_type("invited");
    guest.join("vault", None);
    guest.say("vault", "in", "g1");
    recv_until(&mut guest, |v| v["type"] == "ack");

    redis.cli(&["SREM", "parley:{vault}:members", "guest:guest"]);
    guest.say("vault", "still in?", "g2");
    let reply = recv_until(&mut guest, |v| v["cid"] == "g2");
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    guest.send(json!({"type":"history","room":"vault"}));
    assert_eq!(
        recv_until(&mut guest, |v| v["type"] == "error")["code"],
        "forbidden"
    );

    let mut other = b.client("other");
    other.send(json!({"type":"rooms"}));
    let rooms = other.recv_type("rooms");
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["room"] != "vault"),
        "{rooms}"
    );
}

/// Presence across nodes: users on another node appear in `joined` and in
/// presence events; when a node dies, its users leave everyone's lists
/// within the lease time.
#[test]
fn presence_spans_nodes_and_a_dead_node_leaves_no_ghosts() {
    let redis = Redis::start();
    let mut doomed = Server::start_node(&redis, &[]);
    let survivor = Server::start_node(&redis, &[]);
    let mut watcher = survivor.client("watcher");
    watcher.join("hall", None);
    let mut ghost = doomed.client("ghost");
    let (joined, _) = ghost.join("hall", None);
    assert_eq!(joined["online"], json!(["guest:ghost", "guest:watcher"]));
    recv_presence(&mut watcher, "guest:ghost", true);

    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    let killed = Instant::now();
    recv_presence(&mut watcher, "guest:ghost", false);
    let took = killed.elapsed();
    eprintln!("ghost left the list {took:?} after its node died");
    assert!(took < Duration::from_secs(12), "{took:?}");
    let (joined, _) = survivor.client("late").join("hall", None);
    assert_eq!(joined["online"], json!(["guest:late", "guest:watcher"]));
}

/// The member cap holds with Redis too (in the invite script).
#[test]
fn private_room_members_are_capped_in_redis() {
    let redis = Redis::start();
    let node = Server::start_node(&redis, &["--max-room-members", "2"]);
    common::check_room_member_limit(&node);
}
