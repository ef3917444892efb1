//! The local cluster from `scripts/cluster.sh` (Redis with AOF, three
//! parley nodes, nginx in front), driven through nginx by real WebSocket
//! clients that reconnect and resume with `since`, as a browser would.
//! Every test ends by counting: sent, acked, delivered, lost, duplicated.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// A cluster started by the project's own script, stopped when dropped.
struct Cluster {
    dir: PathBuf,
    state: HashMap<String, String>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "parley-cluster-{}-{}",
            std::process::id(),
            common::free_port()
        ));
        let mut cluster = Cluster {
            dir,
            state: HashMap::new(),
        };
        cluster.run(&["start"]);
        let text = std::fs::read_to_string(cluster.dir.join("state")).expect("state file");
        let state = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cluster.state = state;
        cluster
    }

    fn run(&self, args: &[&str]) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(args)
            .arg(&self.dir)
            .env("PARLEY_BIN", env!("CARGO_BIN_EXE_parley"))
            .env("CLUSTER_ALLOW_GUESTS", "1")
            .env("PARLEY_MESSAGE_RATE", "1000000")
            .output()
            .expect("cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn nginx(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.state["nginx_port"])
            .parse()
            .unwrap()
    }

    fn redis_cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.state["redis_port"]])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for log in ["node1.log", "node2.log", "node3.log"] {
                if let Ok(text) = std::fs::read_to_string(self.dir.join(log)) {
                    eprintln!("--- {log} ---\n{text}");
                }
            }
        }
        self.run(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A room member that keeps a connection through nginx, reconnecting and
/// resuming with `since` whenever it is dropped.
struct Member {
    name: String,
    room: String,
    addr: SocketAddr,
    ws: Option<WebSocket<TcpStream>>,
    seen: Vec<u64>,
    duplicates: usize,
    gaps: usize,
    reconnects: usize,
}

fn connect(addr: SocketAddr, name: &str) -> Option<WebSocket<TcpStream>> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let (ws, _) =
        tungstenite::client(format!("ws://{addr}/ws?name={name}").as_str(), stream).ok()?;
    Some(ws)
}

fn read_json(ws: &mut WebSocket<TcpStream>) -> Result<Option<Value>, ()> {
    match ws.read() {
        Ok(Message::Text(t)) => Ok(serde_json::from_str(t.as_str()).ok()),
        Ok(Message::Close(_)) => Err(()),
        Ok(_) => Ok(None),
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(_) => Err(()),
    }
}

impl Member {
    fn new(addr: SocketAddr, name: &str, room: &str) -> Member {
        let mut m = Member {
            name: name.into(),
            room: room.into(),
            addr,
            ws: None,
            seen: Vec::new(),
            duplicates: 0,
            gaps: 0,
            reconnects: 0,
        };
        assert!(m.ensure(), "{name} could not join");
        m
    }

    fn last(&self) -> u64 {
        self.seen.last().copied().unwrap_or(0)
    }

    /// (Re)connects and joins with `since` unless connected already.
    fn ensure(&mut self) -> bool {
        if self.ws.is_some() {
            return true;
        }
        let Some(mut ws) = connect(self.addr, &self.name) else {
            return false;
        };
        let mut join = json!({"type": "join", "room": self.room});
        if !self.seen.is_empty() {
            join["since"] = json!(self.last());
        }
        if ws.send(Message::text(join.to_string())).is_err() {
            return false;
        }
        loop {
            match read_json(&mut ws) {
                Ok(Some(v)) if v["type"] == "joined" => {
                    assert_eq!(v["reset"], false, "{}: history reached back", self.name);
                    break;
                }
                Ok(Some(v)) if v["type"] == "error" => return false,
                Ok(_) => {}
                Err(()) => return false,
            }
        }
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        self.ws = Some(ws);
        true
    }

    /// Takes whatever has arrived; a dropped connection is re-established.
    fn pump(&mut self) {
        if !self.ensure() {
            return;
        }
        let Some(ws) = self.ws.as_mut() else { return };
        loop {
            match read_json(ws) {
                Ok(Some(v)) if v["type"] == "message" => {
                    let seq = v["seq"].as_u64().unwrap();
                    let last = self.seen.last().copied().unwrap_or(0);
                    if seq <= last {
                        self.duplicates += 1;
                    } else {
                        if seq != last + 1 {
                            self.gaps += 1;
                        }
                        self.seen.push(seq);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(()) => {
                    self.ws = None;
                    self.reconnects += 1;
                    return;
                }
            }
        }
    }
}

/// Sends numbered messages through nginx, retrying each with its cid until
/// acked (through `unavailable` errors and dropped connections).
struct Sender {
    member: Member,
    acked: Vec<u64>,
    sent: usize,
    unavailable: usize,
}

impl Sender {
    fn send_acked(&mut self, i: usize, deadline: Instant, members: &mut [Member]) {
        let cid = format!("c{i}");
        loop {
            assert!(Instant::now() < deadline, "message {i} never acked");
            for m in members.iter_mut() {
                m.pump();
            }
            if !self.member.ensure() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let ws = self.member.ws.as_mut().unwrap();
            let req =
                json!({"type":"send","room": self.member.room,"text": format!("m{i}"),"cid": cid});
            self.sent += 1;
            if ws.send(Message::text(req.to_string())).is_err() {
                self.member.ws = None;
                continue;
            }
            let asked = Instant::now();
            let outcome = loop {
                if asked.elapsed() > Duration::from_secs(3) {
                    break None;
                }
                match read_json(ws) {
                    Ok(Some(v)) if v["cid"] == cid.as_str() && v["type"] == "ack" => {
                        break Some(Ok(v["seq"].as_u64().unwrap()))
                    }
                    Ok(Some(v)) if v["cid"] == cid.as_str() && v["type"] == "error" => {
                        break Some(Err(v["code"].as_str().unwrap_or("").to_string()))
                    }
                    Ok(_) => {}
                    Err(()) => break None,
                }
            };
            match outcome {
                Some(Ok(seq)) => {
                    self.acked.push(seq);
                    return;
                }
                Some(Err(code)) => {
                    assert!(code == "unavailable" || code == "overloaded", "{code}");
                    self.unavailable += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                None => self.member.ws = None,
            }
        }
    }
}

/// Lets every member catch up to `upto`, then checks and reports.
fn settle_and_check(label: &str, members: &mut [Member], sender: &Sender) {
    let upto = sender.acked.iter().copied().max().unwrap_or(0);
    let start = Instant::now();
    while members.iter().any(|m| m.last() < upto) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "members did not catch up"
        );
        for m in members.iter_mut() {
            m.pump();
        }
    }
    let want: Vec<u64> = (1..=upto).collect();
    let mut acked = sender.acked.clone();
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(
        acked.len(),
        sender.acked.len(),
        "every send acked once with its own seq"
    );
    let delivered: usize = members.iter().map(|m| m.seen.len()).sum();
    let duplicated: usize = members.iter().map(|m| m.duplicates).sum();
    let mut lost = 0;
    for m in members.iter() {
        lost += acked
            .iter()
            .filter(|s| m.seen.binary_search(s).is_err())
            .count();
        assert_eq!(m.seen, want, "{}: every seq once, in order", m.name);
        assert_eq!(m.gaps, 0, "{}", m.name);
    }
    let reconnects: usize = members.iter().map(|m| m.reconnects).sum();
    eprintln!(
        "{label}: sent={} acked={} delivered={delivered} lost={lost} duplicated={duplicated} \
         unavailable={} member_reconnects={reconnects}",
        sender.sent,
        sender.acked.len(),
        sender.unavailable
    );
    assert_eq!((lost, duplicated), (0, 0));
}

fn members(addr: SocketAddr, room: &str, n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member::new(addr, &format!("{room}-m{i}"), room))
        .collect()
}

#[test]
fn through_nginx_every_member_sees_every_message_once_in_order() {
    let cluster = Cluster::start();
    let addr = cluster.nginx();
    let deadline = Instant::now() + Duration::from_secs(60);
    for room in ["alpha", "beta"] {
        let mut ms = members(addr, room, 6);
        let mut sender = Sender {
            member: Member::new(addr, &format!("{room}-s"), room),
            acked: Vec::new(),
            sent: 0,
            unavailable: 0,
        };
        for i in 0..60 {
            sender.send_acked(i, deadline, &mut ms);
        }
        settle_and_check(&format!("nginx {room}"), &mut ms, &sender);
    }
}

#[test]
fn killing_a_node_mid_stream_loses_nothing() {
    let cluster = Cluster::start();
    let addr = cluster.nginx();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ms = members(addr, "chaos", 9);
    let mut sender = Sender {
        member: Member::new(addr, "chaos-s", "chaos"),
        acked: Vec::new(),
        sent: 0,
        unavailable: 0,
    };
    for i in 0..80 {
        if i == 25 {
            cluster.run(&["kill-node", "1"]);
        }
        if i == 50 {
            cluster.run(&["kill-node", "2"]);
            cluster.run(&["restart-node", "1"]);
        }
        sender.send_acked(i, deadline, &mut ms);
    }
    settle_and_check("node kill", &mut ms, &sender);
    assert!(
        ms.iter().map(|m| m.reconnects).sum::<usize>() > 0,
        "some member was on a killed node"
    );
}

#[test]
fn a_redis_restart_mid_stream_loses_no_acked_message() {
    let cluster = Cluster::start();
    let addr = cluster.nginx();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ms = members(addr, "durable", 6);
    let mut sender = Sender {
        member: Member::new(addr, "durable-s", "durable"),
        acked: Vec::new(),
        sent: 0,
        unavailable: 0,
    };
    for i in 0..70 {
        if i == 30 {
            cluster.run(&["kill-redis"]);
            // A send while Redis is down is refused, never acked.
            let cid = format!("c{i}");
            let ws = sender.member.ws.as_mut().expect("sender connected");
            let req = json!({"type":"send","room":"durable","text":format!("m{i}"),"cid":cid});
            ws.send(Message::text(req.to_string())).unwrap();
            sender.sent += 1;
            let reply = loop {
                match read_json(ws) {
                    Ok(Some(v)) if v["cid"] == cid.as_str() => break v,
                    Ok(_) => {}
                    Err(()) => panic!("the sender's connection dropped during the outage"),
                }
            };
            assert_eq!(
                (reply["type"].as_str(), reply["code"].as_str()),
                (Some("error"), Some("unavailable")),
                "{reply}"
            );
            sender.unavailable += 1;
            cluster.run(&["restart-redis"]);
        }
        // Retries the same cid until Redis is back and it is stored.
        sender.send_acked(i, deadline, &mut ms);
    }
    settle_and_check("redis restart", &mut ms, &sender);
    assert_eq!(
        cluster.redis_cli(&["XLEN", "parley:{durable}:log"]),
        "70",
        "every acked message is in the history"
    );
}
