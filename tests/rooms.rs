//! Rooms beyond the basics: private rooms and invitations, the room list,
//! presence (who is online, across tabs) and typing notices.

mod common;

use std::time::{Duration, Instant};

use common::{lists, recv_presence, recv_until, Client, Server};
use serde_json::{json, Value};

fn error_code(c: &mut Client) -> String {
    recv_until(c, |v| v["type"] == "error")["code"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn private_rooms_admit_invited_members_only() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    let mut carol = server.client("carol");

    alice.send(json!({"type":"create","room":"secret","private":true,"id":1}));
    let created = alice.recv_type("created");
    assert_eq!(
        (created["room"].as_str(), created["private"].as_bool()),
        (Some("secret"), Some(true))
    );
    alice.send(json!({"type":"create","room":"secret"}));
    assert_eq!(error_code(&mut alice), "room_exists");

    for req in [
        json!({"type":"join","room":"secret"}),
        json!({"type":"invite","room":"secret","user":"guest:carol"}),
    ] {
        bob.send(req.clone());
        assert_eq!(error_code(&mut bob), "forbidden", "{req}");
    }
    alice.join("secret", None);
    alice.send(json!({"type":"invite","room":"secret","user":"guest:bob"}));
    assert_eq!(alice.recv_type("invited")["user"], "guest:bob");
    let (joined, _) = bob.join("secret", None);
    assert_eq!(joined["room"], "secret");
    bob.say("secret", "thanks", "b1");
    assert_eq!(alice.recv_type("message")["from"], "guest:bob");

    carol.send(json!({"type":"join","room":"secret"}));
    assert_eq!(
        error_code(&mut carol),
        "forbidden",
        "still closed to others"
    );

    // The room list shows public rooms to all, private ones to members.
    carol.join("lobby", None);
    let list = |c: &mut Client| {
        c.send(json!({"type":"rooms"}));
        let v = c.recv_type("rooms");
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["room"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&mut carol), ["lobby"]);
    assert_eq!(list(&mut bob), ["lobby", "secret"]);
}

#[test]
fn presence_follows_users_not_tabs() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice");
    let (joined, _) = alice.join("p", None);
    assert_eq!(joined["online"], json!(["guest:alice"]));

    let mut bob1 = server.client("bob");
    let (joined, _) = bob1.join("p", None);
    assert_eq!(joined["online"], json!(["guest:alice", "guest:bob"]));
    recv_presence(&mut alice, "guest:bob", true);

    // A second tab is not news, and closing one of two is not either.
    let mut bob2 = server.client("bob");
    bob2.join("p", None);
    drop(bob1);
    bob2.say("p", "still here", "b2");
    let next = recv_until(&mut alice, |v| {
        lists(v, "guest:bob", false) || v["type"] == "message"
    });
    assert_eq!(
        next["type"], "message",
        "no presence change for a second tab: {next}"
    );

    drop(bob2);
    recv_presence(&mut alice, "guest:bob", false);
}

/// A burst of joins reaches a member as a few presence frames, not one per
/// joiner, and together they list every joiner exactly as online.
#[test]
fn a_burst_of_joins_comes_as_few_presence_frames() {
    let server = Server::start(&["--presence-interval-ms", "300"]);
    let mut watcher = server.client("watcher");
    watcher.join("burst", None);
    let joiners: Vec<Client> = (0..20)
        .map(|i| {
            let mut c = server.client(&format!("j{i}"));
            c.join("burst", None);
            c
        })
        .collect();

    let mut online = std::collections::BTreeSet::new();
    let mut frames = 0;
    while online.len() < joiners.len() {
        let v = watcher.recv_type("presence");
        frames += 1;
        assert_eq!(v["offline"], json!([]), "{v}");
        for name in v["online"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            if name != "guest:watcher" {
                assert!(online.insert(name.to_string()), "{name} listed twice");
            }
        }
    }
    let want: std::collections::BTreeSet<String> = (0..20).map(|i| format!("guest:j{i}")).collect();
    assert_eq!(online, want);
    assert!(frames < joiners.len(), "{frames} frames for 20 joins");
}

#[test]
fn typing_notices_reach_others_and_are_rate_limited() {
    let server = Server::start(&[]);
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    alice.join("t", None);
    bob.join("t", None);
    alice.send(json!({"type":"typing","room":"t"}));
    alice.send(json!({"type":"typing","room":"t"}));
    let typing = bob.recv_type("typing");
    assert_eq!(typing["user"], "guest:alice");
    alice.say("t", "done", "a1");
    // The second notice inside a second was dropped; the message is next.
    let next = recv_until(&mut bob, |v: &Value| {
        v["type"] == "typing" || v["type"] == "message"
    });
    assert_eq!(next["type"], "message");
    // The typist does not hear about itself.
    let own = recv_until(&mut alice, |v| v["type"] == "typing" || v["type"] == "ack");
    assert_eq!(own["type"], "ack");
    // After the interval, notices flow again.
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(1100));
    alice.send(json!({"type":"typing","room":"t"}));
    assert_eq!(bob.recv_type("typing")["user"], "guest:alice");
    assert!(start.elapsed() < Duration::from_secs(5));
    alice.send(json!({"type":"typing","room":"elsewhere"}));
    assert_eq!(error_code(&mut alice), "not_joined");
}

/// The embedded broker's memory is bounded: at `max_rooms`, the least
/// recently used room nobody is in makes space (no lock-out), and stored
/// history stays under `max_history_bytes`.
#[test]
fn idle_rooms_make_space_and_history_stays_in_budget() {
    let server = Server::start(&["--max-rooms", "3", "--max-history-bytes", "65536"]);
    let mut c = server.client("roamer");
    for i in 0..10 {
        let room = format!("r{i}");
        let (joined, _) = c.join(&room, None);
        assert_eq!(joined["room"], room.as_str(), "room {i} could be made");
        c.send(json!({"type":"leave","room": room}));
        c.recv_type("left");
    }
    // Three rooms in use: the fourth cannot evict any of them.
    let mut holders: Vec<Client> = (0..3).map(|i| server.client(&format!("h{i}"))).collect();
    for (i, h) in holders.iter_mut().enumerate() {
        h.join(&format!("busy{i}"), None);
    }
    c.send(json!({"type":"join","room":"one-too-many"}));
    assert_eq!(error_code(&mut c), "overloaded");

    let text = "x".repeat(4000);
    let h = &mut holders[0];
    for i in 0..40 {
        h.say("busy0", &text, &format!("c{i}"));
        recv_until(h, |v| {
            v["type"] == "ack" && v["cid"] == format!("c{i}").as_str()
        });
    }
    h.send(json!({"type":"history","room":"busy0","limit":200}));
    let page = h.recv_type("history");
    let kept = page["messages"].as_array().unwrap().len();
    assert!(
        (5..=16).contains(&kept),
        "64 KiB holds about 15 of these, kept {kept}"
    );
    assert_eq!(page["more"], false);
}

/// Joins and leaves `n` throwaway rooms, so a broker capped at a few rooms
/// has to forget the idle ones.
fn churn_rooms(c: &mut Client, prefix: &str, n: usize) {
    for i in 0..n {
        let room = format!("{prefix}{i}");
        c.join(&room, None);
        c.send(json!({"type":"leave","room": room}));
        c.recv_type("left");
    }
}

/// A private room is never forgotten to make space: its member list is
/// what keeps others out, and a forgotten one would come back public.
#[test]
fn a_private_room_is_never_forgotten_for_space() {
    let server = Server::start(&["--max-rooms", "3"]);
    let mut alice = server.client("alice");
    alice.send(json!({"type":"create","room":"secret","private":true}));
    alice.recv_type("created");
    alice.join("secret", None);
    alice.say("secret", "the launch code is 1234", "a1");
    alice.recv_type("ack");
    alice.send(json!({"type":"leave","room":"secret"}));
    alice.recv_type("left");

    let mut mallory = server.client("mallory");
    mallory.send(json!({"type":"join","room":"secret"}));
    assert_eq!(error_code(&mut mallory), "forbidden");
    churn_rooms(&mut mallory, "filler", 6);
    mallory.send(json!({"type":"join","room":"secret"}));
    assert_eq!(error_code(&mut mallory), "forbidden");
    mallory.send(json!({"type":"create","room":"secret","private":true}));
    assert_eq!(error_code(&mut mallory), "room_exists");

    let (_, backlog) = alice.join("secret", None);
    assert_eq!(backlog.len(), 1, "alice's message is still there");
}

/// A public room forgotten and made again starts its seqs over under a new
/// epoch: a client resuming with the old epoch is told to reset instead
/// of being handed reused numbers as if they were what it missed.
#[test]
fn a_room_made_again_after_eviction_has_a_new_epoch() {
    let server = Server::start(&["--max-rooms", "3"]);
    let mut alice = server.client("alice");
    let (joined, _) = alice.join("news", None);
    let epoch = joined["epoch"].as_str().unwrap().to_string();
    for i in 1..=3 {
        alice.say("news", &format!("old {i}"), &format!("o{i}"));
        alice.recv_type("ack");
    }
    drop(alice);

    let mut bob = server.client("bob");
    churn_rooms(&mut bob, "other", 6);
    bob.join("news", None);
    for i in 1..=5 {
        bob.say("news", &format!("new {i}"), &format!("n{i}"));
        recv_until(&mut bob, |v| v["type"] == "ack");
    }

    let mut alice = server.client("alice");
    alice.send(json!({"type":"join","room":"news","since":3,"epoch":epoch}));
    let joined = alice.recv_type("joined");
    assert_eq!(joined["reset"], true, "{joined}");
    assert_ne!(joined["epoch"].as_str().unwrap(), epoch);
    assert_eq!(joined["seq"], 5);
}

/// Private rooms cannot be forgotten, so one user may only make so many.
#[test]
fn private_rooms_per_owner_are_capped() {
    let server = Server::start(&["--max-owned-rooms", "2"]);
    let mut c = server.client("maker");
    for room in ["p1", "p2"] {
        c.send(json!({"type":"create","room":room,"private":true}));
        c.recv_type("created");
    }
    c.send(json!({"type":"create","room":"p3","private":true}));
    assert_eq!(error_code(&mut c), "too_many_rooms");
    c.send(json!({"type":"create","room":"open","private":false}));
    c.recv_type("created");
}

/// Invitations store names: a private room's members are capped.
#[test]
fn private_room_members_are_capped() {
    let server = Server::start(&["--max-room-members", "2"]);
    common::check_room_member_limit(&server);
}
