//! A deliberately faulty chat server for the load tester's own tests.
//!
//! It speaks enough of Parley's protocol (join with `since`, send, ack,
//! message with seq) over tungstenite, one thread per connection, and
//! injects the faults it is told to: to the first member that joins, it
//! drops one seq, swaps two, repeats one, or cuts the connection with 1013
//! at one seq (resuming with `since` then works). Loopback only; every
//! socket read times out so threads notice their peers leaving.

#![allow(dead_code)] // each test file uses a part

pub mod run;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

#[derive(Default, Clone, Copy)]
pub struct Faults {
    pub drop: Option<u64>,
    pub swap: Option<(u64, u64)>,
    pub dup: Option<u64>,
    pub cut: Option<u64>,
}

enum Cmd {
    Text(String),
    Cut,
}

#[derive(Default)]
struct Room {
    seq: u64,
    history: Vec<(u64, String)>,
    members: Vec<(u64, Sender<Cmd>)>,
    victim: Option<u64>,
    held: Option<String>,
}

/// Starts the server on 127.0.0.1 and returns its address.
pub fn faulty_server(faults: Faults) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let room = Arc::new(Mutex::new(Room::default()));
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let room = room.clone();
            std::thread::spawn(move || serve(id as u64, stream, room, faults));
        }
    });
    addr
}

fn serve(id: u64, stream: TcpStream, room: Arc<Mutex<Room>>, faults: Faults) {
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(2)));
    let (tx, rx): (Sender<Cmd>, Receiver<Cmd>) = channel();
    'conn: loop {
        while let Ok(cmd) = rx.try_recv() {
            let sent = match cmd {
                Cmd::Text(t) => ws.send(Message::text(t)),
                Cmd::Cut => {
                    let frame = CloseFrame {
                        code: CloseCode::Again,
                        reason: "slow consumer".into(),
                    };
                    let _ = ws.close(Some(frame));
                    let _ = ws.flush();
                    break 'conn;
                }
            };
            if sent.is_err() {
                break 'conn;
            }
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                for reply in handle(id, t.as_str(), &room, &tx, faults) {
                    if ws.send(Message::text(reply)).is_err() {
                        break 'conn;
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    room.lock().unwrap().members.retain(|(m, _)| *m != id);
}

/// Handles one request; returns the direct replies.
fn handle(id: u64, text: &str, room: &Mutex<Room>, tx: &Sender<Cmd>, f: Faults) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let name = req["room"].as_str().unwrap_or("").to_string();
    let mut r = room.lock().unwrap();
    match req["type"].as_str() {
        Some("join") => {
            r.members.push((id, tx.clone()));
            r.victim.get_or_insert(id);
            let since = req["since"].as_u64();
            let backlog: Vec<String> = r
                .history
                .iter()
                .filter(|(s, _)| since.is_some_and(|n| *s > n))
                .map(|(_, m)| m.clone())
                .collect();
            let joined = json!({"type": "joined", "room": name, "seq": r.seq,
                "backlog": backlog.len(), "reset": false});
            let mut out = vec![joined.to_string()];
            out.extend(backlog);
            out
        }
        Some("send") => {
            r.seq += 1;
            let seq = r.seq;
            let cid = req["cid"].clone();
            let msg = json!({"type": "message", "room": name, "seq": seq,
                "from": "x", "text": req["text"], "ts": 0, "cid": cid})
            .to_string();
            r.history.push((seq, msg.clone()));
            fan_out(&mut r, seq, msg, f);
            vec![json!({"type": "ack", "room": name, "cid": cid, "seq": seq}).to_string()]
        }
        _ => Vec::new(),
    }
}

fn fan_out(r: &mut Room, seq: u64, msg: String, f: Faults) {
    let victim = r.victim;
    let mut held = r.held.take();
    for (m, tx) in &r.members {
        if Some(*m) != victim {
            let _ = tx.send(Cmd::Text(msg.clone()));
            continue;
        }
        if f.cut == Some(seq) {
            let _ = tx.send(Cmd::Cut);
        } else if f.drop == Some(seq) {
        } else if f.swap.is_some_and(|(a, _)| a == seq) {
            held = Some(msg.clone());
        } else if f.swap.is_some_and(|(_, b)| b == seq) {
            let _ = tx.send(Cmd::Text(msg.clone()));
            if let Some(h) = held.take() {
                let _ = tx.send(Cmd::Text(h));
            }
        } else {
            let _ = tx.send(Cmd::Text(msg.clone()));
            if f.dup == Some(seq) {
                let _ = tx.send(Cmd::Text(msg.clone()));
            }
        }
    }
    r.held = held;
}
