//! A drain under load across a two-node cluster, and the canary catching a
//! subscriber that died without an error. Real processes, a real Redis.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{metrics, recv_until, Client, Redis, Server};
use serde_json::{json, Value};
use tungstenite::Message;

const ROOM: &str = "draining";
const DELAY_MS: u64 = 500;
const WINDOW_MS: u64 = 3000;

/// What one client of node A saw.
struct Seen {
    seqs: Vec<u64>,
    close_after: Duration,
    retry_ms: u64,
}

/// Reads until the server's close frame, recording message seqs.
fn read_until_close(c: &mut Client, seqs: &mut Vec<u64>) -> (u16, String) {
    loop {
        match c.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "message" {
                    seqs.push(v["seq"].as_u64().unwrap());
                }
            }
            Ok(Message::Close(Some(f))) => return (u16::from(f.code), f.reason.to_string()),
            Ok(Message::Close(None)) => panic!("close without a code"),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

fn retry_ms(reason: &str) -> u64 {
    reason
        .strip_prefix("reconnect retry_ms=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("close reason {reason:?} has no retry_ms"))
}

/// One client: joins on A, is drained, waits retry_ms, resumes on B with
/// `since` and reads until it has seen `last` (known once sending ends).
fn client_life(
    i: usize,
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    sigterm: Arc<Mutex<Option<Instant>>>,
    last: Arc<AtomicU64>,
    joined: std::sync::mpsc::Sender<()>,
) -> Seen {
    let mut c = Client::connect(a, &format!("/ws?name=a{i}"));
    let (j, _) = c.join(ROOM, None);
    let epoch = j["epoch"].as_str().unwrap().to_string();
    joined.send(()).unwrap();
    let mut seqs = Vec::new();
    let (code, reason) = read_until_close(&mut c, &mut seqs);
    let at = sigterm.lock().unwrap().expect("closed before SIGTERM");
    assert_eq!(code, 1012, "client {i}: {reason}");
    let close_after = at.elapsed();
    let retry = retry_ms(&reason);
    drop(c);
    std::thread::sleep(Duration::from_millis(retry));

    let mut c = Client::connect(b, &format!("/ws?name=a{i}"));
    let since = seqs.last().copied().unwrap_or(0);
    let mut join = json!({"type":"join","room":ROOM,"since":since});
    if !epoch.is_empty() {
        // An empty room has no epoch yet: resume on `since` alone.
        join["epoch"] = json!(epoch);
    }
    c.send(join);
    let j = c.recv_type("joined");
    assert_eq!(j["reset"], false, "client {i}");
    // Short reads, so the end of sending (`last`) is noticed.
    c.ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = last.load(Ordering::SeqCst);
        if want > 0 && seqs.last().is_some_and(|&s| s >= want) {
            break;
        }
        assert!(Instant::now() < deadline, "client {i} stuck at {seqs:?}");
        match c.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "message" {
                    seqs.push(v["seq"].as_u64().unwrap());
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("client {i} on B: {e}"),
        }
    }
    Seen {
        seqs,
        close_after,
        retry_ms: retry,
    }
}

#[test]
fn a_drained_node_hands_every_client_to_another_without_loss() {
    const CLIENTS: usize = 24;
    let redis = Redis::start();
    let window = WINDOW_MS.to_string();
    let delay = DELAY_MS.to_string();
    let mut a = Server::start_node(
        &redis,
        &[
            "--reactors",
            "2",
            "--drain-delay-ms",
            &delay,
            "--drain-window-ms",
            &window,
            "--shutdown-timeout-ms",
            "8000",
        ],
    );
    let b = Server::start_node(&redis, &["--reactors", "2"]);

    let sigterm = Arc::new(Mutex::new(None));
    let last = Arc::new(AtomicU64::new(0));
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (sigterm, last, tx) = (sigterm.clone(), last.clone(), joined_tx.clone());
            let (a, b) = (a.addr, b.addr);
            std::thread::spawn(move || client_life(i, a, b, sigterm, last, tx))
        })
        .collect();
    for _ in 0..CLIENTS {
        joined_rx
            .recv_timeout(common::WAIT)
            .expect("a client joined");
    }

    // The sender on B: a message every 10 ms before, during and after the
    // drain, each waited for (acked) before the next.
    let mut sender = b.client("sender");
    sender.join(ROOM, None);
    let mut acked = BTreeMap::new();
    let mut sent = 0;
    let start = Instant::now();
    let mut terminated = None;
    let mut exited = None;
    while start.elapsed() < Duration::from_millis(DELAY_MS + WINDOW_MS + 2500) {
        if terminated.is_none() && start.elapsed() > Duration::from_millis(700) {
            *sigterm.lock().unwrap() = Some(Instant::now());
            std::process::Command::new("kill")
                .args(["-TERM", &a.child.id().to_string()])
                .status()
                .unwrap();
            terminated = Some(Instant::now());
        }
        sent += 1;
        let cid = format!("m{sent}");
        sender.say(ROOM, &format!("text {sent}"), &cid);
        let ack = recv_until(&mut sender, |v| v["type"] == "ack");
        assert_eq!(ack["cid"], cid.as_str());
        acked.insert(ack["seq"].as_u64().unwrap(), cid);
        if exited.is_none() && a.child.try_wait().unwrap().is_some() {
            exited = terminated.map(|t| t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let top = *acked.keys().last().unwrap();
    last.store(top, Ordering::SeqCst);

    let status = a.wait_exit();
    let exited_after = exited.unwrap_or_else(|| terminated.unwrap().elapsed());
    assert!(status.success(), "{status:?}");
    assert!(
        exited_after < Duration::from_millis(8000),
        "{exited_after:?}"
    );

    let want: Vec<u64> = (1..=top).collect();
    assert_eq!(acked.keys().copied().collect::<Vec<_>>(), want);
    let (mut delivered, mut lost, mut duplicated) = (0, 0, 0);
    let mut closes = Vec::new();
    for h in clients {
        let seen = h.join().expect("client thread");
        delivered += seen.seqs.len();
        let unique: HashSet<u64> = seen.seqs.iter().copied().collect();
        duplicated += seen.seqs.len() - unique.len();
        lost += want.iter().filter(|s| !unique.contains(s)).count();
        assert!(
            seen.seqs.windows(2).all(|w| w[0] < w[1]),
            "in order, once each"
        );
        assert!(seen.retry_ms <= 1000);
        closes.push(seen.close_after);
    }
    closes.sort();
    let (first, last_close) = (closes[0], closes[closes.len() - 1]);
    println!(
        "drain: clients={CLIENTS} sent={sent} acked={} delivered={delivered} \
         (expected {}) lost={lost} duplicated={duplicated}; closes from \
         {first:?} to {last_close:?} after SIGTERM; node A exited after \
         {exited_after:?}",
        acked.len(),
        CLIENTS * acked.len(),
    );
    assert_eq!((lost, duplicated), (0, 0));
    assert_eq!(delivered, CLIENTS * acked.len());
    assert!(first >= Duration::from_millis(DELAY_MS - 50), "{first:?}");
    let end = Duration::from_millis(DELAY_MS + WINDOW_MS + 500);
    assert!(last_close <= end, "{last_close:?}");
    assert!(
        last_close - first >= Duration::from_millis(WINDOW_MS / 3),
        "closes were not spread over the window: {closes:?}"
    );
}

/// A TCP proxy to Redis that can stop passing pub/sub traffic to its
/// subscriber connections while keeping them open: a subscriber that is
/// dead without knowing it.
struct Proxy {
    port: u16,
    blackhole: Arc<AtomicBool>,
}

impl Proxy {
    fn start(redis_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let hole = blackhole.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let server = TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
                let subscriber = Arc::new(AtomicBool::new(false));
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), {
                    let subscriber = subscriber.clone();
                    move |bytes: &[u8]| {
                        if bytes
                            .windows(9)
                            .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
                        {
                            subscriber.store(true, Ordering::SeqCst);
                        }
                        true
                    }
                });
                let hole = hole.clone();
                pipe(server, client, move |_: &[u8]| {
                    !(subscriber.load(Ordering::SeqCst) && hole.load(Ordering::SeqCst))
                });
            }
        });
        Proxy { port, blackhole }
    }
}

/// Copies `from` to `to`, dropping chunks `pass` refuses.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    mut pass: impl FnMut(&[u8]) -> bool + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || (pass(&buf[..n]) && to.write_all(&buf[..n]).is_err()) {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

fn last_seen(addr: std::net::SocketAddr, pid: u32) -> Option<f64> {
    let m = metrics(addr);
    m.iter()
        .find(|(k, _)| {
            k.starts_with("parley_canary_last_seen_seconds{") && k.ends_with(&format!("-{pid}\"}}"))
        })
        .map(|(_, v)| *v)
}

#[test]
fn the_canary_catches_a_silently_dead_subscriber() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port);
    let via_proxy = format!("redis://127.0.0.1:{}/0", proxy.port);
    let canary = ["--canary-interval-ms", "200"];
    let mut args = vec![
        "--redis",
        via_proxy.as_str(),
        "--session-key",
        common::TEST_KEY,
    ];
    args.extend_from_slice(&canary);
    let a = Server::start(&args);
    let b = Server::start_node(&redis, &canary);
    let (pa, pb) = (a.child.id(), b.child.id());

    // Healthy: each node hears both canaries within a few intervals.
    let start = Instant::now();
    loop {
        let fresh = |addr, pid| last_seen(addr, pid).is_some_and(|s| s < 1.0);
        if fresh(a.addr, pa) && fresh(a.addr, pb) && fresh(b.addr, pa) && fresh(b.addr, pb) {
            break;
        }
        assert!(start.elapsed() < common::WAIT, "canaries never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = metrics(a.addr);
    let count_key = m
        .keys()
        .find(|k| k.starts_with("parley_canary_latency_seconds_count{"))
        .unwrap();
    assert!(m[count_key] >= 1.0);
    assert_eq!(m["parley_canary_gaps_total{}"], 0.0);

    // A's subscriber goes silent: no error, no disconnect.
    proxy.blackhole.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2000));
    let (a_of_b, a_of_a) = (
        last_seen(a.addr, pb).unwrap(),
        last_seen(a.addr, pa).unwrap(),
    );
    let b_of_a = last_seen(b.addr, pa).unwrap();
    println!(
        "after 2 s of a silent subscriber on A: on A, last seen B {a_of_b:.3} s and \
         A {a_of_a:.3} s ago; on B, last seen A {b_of_a:.3} s ago"
    );
    assert!(a_of_b > 1.5 && a_of_a > 1.5, "A should notice the silence");
    assert!(b_of_a < 1.0, "A still publishes; B still hears it");
    // Nothing else notices: A still says Redis is up and it is ready.
    assert_eq!(metrics(a.addr)["parley_redis_up{}"], 1.0);
    assert!(
        a.log_text().contains("the subscriber may be dead"),
        "{}",
        a.log_text()
    );
}
