//! Chat behaviour end to end: rooms, ordering across reactors, recovery
//! with `since`, history, deduplication and error replies.

mod common;

use std::collections::HashSet;
use std::thread;

use common::{Client, Server};
use serde_json::{json, Value};

#[test]
fn two_clients_exchange_messages() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    alice.join("lobby", None);
    bob.join("lobby", None);

    alice.send(json!({"type":"send","room":"lobby","text":"hi bob","cid":"a1","id":7}));
    let ack = alice.recv_type("ack");
    assert_eq!(
        (ack["cid"].as_str(), ack["seq"].as_u64(), ack["id"].as_u64()),
        (Some("a1"), Some(1), Some(7))
    );
    let got = bob.recv_type("message");
    assert_eq!(got["from"], "guest:alice");
    assert_eq!(got["text"], "hi bob");
    assert_eq!(got["seq"], 1);
    assert!(got["ts"].as_u64().unwrap() > 1_700_000_000_000);

    bob.say("lobby", "hello alice", "b1");
    let got = alice.recv_type("message");
    assert_eq!(
        (got["from"].as_str(), got["seq"].as_u64()),
        (Some("guest:bob"), Some(2))
    );
}

/// Every client, whichever reactor holds it, sees the room's messages in
/// one order: seq 1..=N with no gap and no duplicate.
#[test]
fn members_on_every_reactor_see_one_order() {
    const EACH: usize = 50;
    let server = Server::start(&["--reactors", "2", "--log-level", "debug"]);
    // SO_REUSEPORT spreads connections by a hash of their ports: open
    // clients until both reactors hold some (at least 8, at most 64).
    let on_reactor = |r: usize| server.log_text().contains(&format!("conn={r}:"));
    let mut clients: Vec<Client> = Vec::new();
    while clients.len() < 8 || !(on_reactor(0) && on_reactor(1)) {
        assert!(clients.len() < 64, "every client landed on one reactor");
        clients.push(server.client(&format!("u{}", clients.len())));
    }
    let clients_n = clients.len();
    for c in &mut clients {
        c.join("order", None);
    }
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            thread::spawn(move || {
                for n in 0..EACH {
                    c.say("order", &format!("{i}-{n}"), &format!("c{i}-{n}"));
                }
                let mut seen = Vec::new();
                let mut acks = 0;
                while seen.len() < clients_n * EACH || acks < EACH {
                    let v = c.recv();
                    match v["type"].as_str() {
                        Some("message") => seen.push((
                            v["seq"].as_u64().unwrap(),
                            v["text"].as_str().unwrap().to_string(),
                        )),
                        Some("ack") => acks += 1,
                        Some("presence") => {}
                        other => panic!("unexpected {other:?}: {v}"),
                    }
                }
                seen
            })
        })
        .collect();
    let views: Vec<Vec<(u64, String)>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = &views[0];
    let seqs: Vec<u64> = first.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=(clients_n * EACH) as u64).collect::<Vec<_>>());
    for view in &views[1..] {
        assert_eq!(view, first, "every member sees the same sequence");
    }
    // Each sender's own messages keep their order.
    for i in 0..clients_n {
        let mine: Vec<&String> = first
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.starts_with(&format!("{i}-")))
            .collect();
        let want: Vec<String> = (0..EACH).map(|n| format!("{i}-{n}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>());
    }
}

#[test]
fn join_since_replays_exactly_what_was_missed() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice");
    alice.join("r", None);
    for i in 1..=5 {
        alice.say("r", &format!("m{i}"), &format!("c{i}"));
        alice.recv_type("ack");
    }
    let mut bob = server.client("bob");
    let (joined, backlog) = bob.join("r", Some(2));
    assert_eq!(joined["seq"], 5);
    assert_eq!(joined["reset"], false);
    let seqs: Vec<u64> = backlog.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [3, 4, 5]);

    alice.say("r", "m6", "c6");
    assert_eq!(
        bob.recv_type("message")["seq"],
        6,
        "live continues after the backlog"
    );

    // Nothing missed: an empty backlog.
    let mut carol = server.client("carol");
    let (_, backlog) = carol.join("r", Some(6));
    assert!(backlog.is_empty());
}

#[test]
fn join_without_since_gets_the_recent_page() {
    let server = Server::start(&["--history-on-join", "3"]);
    let mut a = server.client("a");
    a.join("r", None);
    for i in 1..=5 {
        a.say("r", "x", &format!("c{i}"));
        a.recv_type("ack");
    }
    let (joined, backlog) = server.client("b").join("r", None);
    assert_eq!(joined["backlog"], 3);
    assert_eq!(
        backlog
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3, 4, 5]
    );
}

#[test]
fn since_older_than_the_ring_resets() {
    let server = Server::start(&["--history-size", "4", "--history-on-join", "2"]);
    let mut a = server.client("a");
    a.join("r", None);
    for i in 1..=10 {
        a.say("r", "x", &format!("c{i}"));
        a.recv_type("ack");
    }
    let mut b = server.client("b");
    let (joined, backlog) = b.join("r", Some(3));
    assert_eq!(joined["reset"], true, "seqs 4..=6 are gone; say so");
    assert_eq!(
        backlog
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [9, 10]
    );

    // The oldest still held is 7, so since=6 is complete.
    let (joined, backlog) = server.client("c").join("r", Some(6));
    assert_eq!(joined["reset"], false);
    assert_eq!(backlog.len(), 4);

    // An epoch from another server life also resets.
    let mut d = server.client("d");
    d.send(json!({"type":"join","room":"r","since":8,"epoch":"not-this-one"}));
    assert_eq!(d.recv_type("joined")["reset"], true);
}

#[test]
fn a_retried_cid_is_stored_once() {
    let server = Server::start(&[]);
    let mut a = server.client("a");
    let mut b = server.client("b");
    a.join("r", None);
    b.join("r", None);
    a.say("r", "once", "same");
    let first = a.recv_type("ack")["seq"].as_u64();
    a.say("r", "once", "same");
    let second = a.recv_type("ack")["seq"].as_u64();
    assert_eq!(first, second);
    a.say("r", "next", "other");
    let got = b.recv_type("message");
    assert_eq!(got["cid"], "same");
    let got = b.recv_type("message");
    assert_eq!(
        (got["cid"].as_str(), got["seq"].as_u64()),
        (Some("other"), Some(2)),
        "no duplicate delivered"
    );
}

#[test]
fn history_pages_backwards() {
    let server = Server::start(&[]);
    let mut a = server.client("a");
    a.join("r", None);
    for i in 1..=7 {
        a.say("r", &format!("m{i}"), &format!("c{i}"));
        a.recv_type("ack");
    }
    a.send(json!({"type":"history","room":"r","limit":3,"id":"h1"}));
    let page = a.recv_type("history");
    let seqs = |p: &Value| {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&page), [5, 6, 7]);
    assert_eq!(
        (page["more"].as_bool(), page["id"].as_str()),
        (Some(true), Some("h1"))
    );
    a.send(json!({"type":"history","room":"r","before":5,"limit":3}));
    assert_eq!(seqs(&a.recv_type("history")), [2, 3, 4]);
    a.send(json!({"type":"history","room":"r","before":2,"limit":3}));
    let last = a.recv_type("history");
    assert_eq!(
        (seqs(&last), last["more"].as_bool()),
        (vec![1], Some(false))
    );
}

#[test]
fn leave_stops_delivery() {
    let server = Server::start(&[]);
    let mut a = server.client("a");
    let mut b = server.client("b");
    a.join("r", None);
    b.join("r", None);
    b.send(json!({"type":"leave","room":"r","id":1}));
    assert_eq!(b.recv_type("left")["room"], "r");
    a.say("r", "after", "c1");
    a.recv_type("ack");
    // "after" was acked, so had b still been a member it would be queued
    // ahead of anything b asks for now.
    b.send(json!({"type":"join","room":"other"}));
    assert_eq!(b.recv()["type"], "joined");
}

#[test]
fn bad_requests_get_stable_error_codes() {
    let server = Server::start(&["--max-rooms-per-conn", "2", "--max-text-bytes", "10"]);
    let mut c = server.client("c");
    let cases = [
        (json!({"type":"dance","id":1}), "unknown_type"),
        (json!({"type":"join","room":"a b"}), "invalid_room"),
        (
            json!({"type":"send","room":"r","text":"x","cid":"1"}),
            "not_joined",
        ),
        (json!({"type":"history","room":"r"}), "not_joined"),
        (json!({"type":"leave","room":"r"}), "not_joined"),
        (json!(["not", "an", "object"]), "bad_request"),
    ];
    for (req, code) in cases {
        c.send(req.clone());
        assert_eq!(c.recv_type("error")["code"], code, "{req}");
    }
    c.ws.send(tungstenite::Message::text("{not json")).unwrap();
    assert_eq!(c.recv_type("error")["code"], "bad_request");

    c.join("r1", None);
    c.send(json!({"type":"join","room":"r1"}));
    assert_eq!(c.recv_type("error")["code"], "already_joined");
    c.join("r2", None);
    c.send(json!({"type":"join","room":"r3"}));
    assert_eq!(c.recv_type("error")["code"], "too_many_rooms");
    c.send(json!({"type":"send","room":"r1","text":"12345678901","cid":"x"}));
    assert_eq!(c.recv_type("error")["code"], "invalid_text");
    c.send(json!({"type":"send","room":"r1","text":"ok"}));
    assert_eq!(c.recv_type("error")["code"], "invalid_cid");
    // The connection survived every one of them.
    c.say("r1", "still here", "ok1");
    assert_eq!(c.recv_type("ack")["seq"], 1);
}

#[test]
fn names_are_checked_at_the_handshake() {
    let server = Server::start(&[]);
    for path in [
        "/ws",
        "/ws?name=",
        "/ws?name=a%20b",
        "/ws?name=%3Cscript%3E",
    ] {
        let request = common::UPGRADE.replace("/ws?name=raw", path);
        let reply = common::http(server.addr, &request);
        assert!(reply.starts_with("HTTP/1.1 400"), "{path}: {reply}");
    }
}

#[test]
fn many_rooms_stay_separate() {
    let server = Server::start(&["--reactors", "2"]);
    let mut clients: Vec<Client> = (0..6).map(|i| server.client(&format!("u{i}"))).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.join(&format!("room{}", i % 3), None);
    }
    for (i, c) in clients.iter_mut().enumerate().take(3) {
        c.say(&format!("room{i}"), &format!("for room{i}"), "c");
    }
    let mut seen = HashSet::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let m = c.recv_type("message");
        assert_eq!(m["room"], format!("room{}", i % 3));
        assert_eq!(m["text"], format!("for room{}", i % 3));
        seen.insert(m["room"].to_string());
    }
    assert_eq!(seen.len(), 3);
}

/// join, leave, join, leave, join in one write, before the first join
/// is answered: the leaves are answered, the last join completes, and the
/// socket is in the room.
#[test]
fn join_leave_join_in_one_write_ends_in_the_room() {
    let server = Server::start(&[]);
    let mut c = server.client("quick");
    for frame in [
        json!({"type":"join","room":"jlj","id":1}),
        json!({"type":"leave","room":"jlj","id":2}),
        json!({"type":"join","room":"jlj","id":3}),
        json!({"type":"leave","room":"jlj","id":4}),
        json!({"type":"join","room":"jlj","id":5}),
    ] {
        c.ws.write(tungstenite::Message::text(frame.to_string()))
            .unwrap();
    }
    c.ws.flush().unwrap();

    let mut left = Vec::new();
    loop {
        let v = c.recv();
        match v["type"].as_str() {
            Some("left") => left.push(v["id"].clone()),
            Some("joined") if v["id"] == 5 => break,
            Some("joined") => assert!(v["id"] == 1 || v["id"] == 3, "{v}"),
            Some("error") => panic!("{v}"),
            _ => {}
        }
    }
    assert_eq!(left, [2, 4], "both leaves were answered");
    c.say("jlj", "in", "c1");
    let ack = common::recv_until(&mut c, |v| v["type"] == "ack" || v["type"] == "error");
    assert_eq!(ack["type"], "ack", "{ack}");
}
