//! Connection lifecycle under stress: slow consumers, silent peers, limits
//! on message size and kind, and graceful shutdown.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{client_frame, raw, read_response, Server, UPGRADE};
use serde_json::json;
use tungstenite::protocol::frame::coding::CloseCode;

/// Reads one unmasked server frame: (first byte, payload).
fn read_frame(s: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            usize::from(u16::from_be_bytes(l))
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            usize::try_from(u64::from_be_bytes(l)).unwrap()
        }
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).unwrap();
    (h[0], payload)
}

#[test]
fn a_consumer_that_stops_reading_is_cut_off_and_others_carry_on() {
    let server = Server::start(&["--max-outbound-bytes", "65536", "--reactors", "2"]);
    let mut slow = server.client("slow");
    slow.join("flood", None);
    let mut fast = server.client("fast");
    fast.join("flood", None);
    let mut sender = server.client("sender");
    sender.join("flood", None);

    // Far more than the kernel's socket buffers and the 64 KiB cap.
    let text = "x".repeat(4000);
    let total = 6000;
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        while got < total {
            if fast.recv()["type"] == "message" {
                got += 1;
            }
        }
        got
    });
    for i in 0..total {
        sender.say("flood", &text, &format!("c{i}"));
        if i % 100 == 99 {
            // Keep our own socket drained too: read up to this send's ack.
            let cid = format!("c{i}");
            loop {
                let v = sender.recv();
                if v["type"] == "ack" && v["cid"] == cid.as_str() {
                    break;
                }
            }
        }
    }
    assert_eq!(
        reader.join().unwrap(),
        total,
        "the fast reader got everything"
    );

    // The slow one gets what was already in flight, then a 1013 close.
    let close = slow.recv_close().expect("a close frame");
    assert_eq!(close.code, CloseCode::Again);
    assert_eq!(close.reason.as_str(), "slow consumer");
}

#[test]
fn silent_peers_are_pinged_then_closed() {
    let server = Server::start(&["--ping-interval-secs", "1", "--ping-timeout-secs", "1"]);
    let mut s = raw(server.addr);
    s.write_all(UPGRADE.as_bytes()).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 101"));
    let start = Instant::now();
    let (op, payload) = read_frame(&mut s);
    assert_eq!(op, 0x89, "a ping");
    assert!(payload.is_empty());
    // Say nothing; the server gives up and says why.
    let (op, payload) = read_frame(&mut s);
    assert_eq!(op, 0x88, "a close");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1013);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn answered_pings_keep_a_connection_open() {
    let server = Server::start(&["--ping-interval-secs", "1", "--ping-timeout-secs", "1"]);
    let mut c = server.client("c");
    c.join("r", None);
    // tungstenite answers pings while we read; wait through several.
    c.ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(4500) {
        match c.ws.read() {
            Ok(tungstenite::Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("connection lost: {e}"),
        }
    }
    assert!(pings >= 2, "pinged {pings} times");
    c.ws.get_mut().set_read_timeout(Some(common::WAIT)).unwrap();
    c.say("r", "alive", "c1");
    assert_eq!(c.recv_type("ack")["seq"], 1);
}

#[test]
fn oversized_and_binary_messages_close_with_their_codes() {
    let server = Server::start(&["--max-message-bytes", "2048", "--max-text-bytes", "1000"]);
    let mut s = raw(server.addr);
    s.write_all(UPGRADE.as_bytes()).unwrap();
    read_response(&mut s);
    s.write_all(&client_frame(0x1, &vec![b'a'; 4096])).unwrap();
    let (op, payload) = read_frame(&mut s);
    assert_eq!(
        (op, u16::from_be_bytes([payload[0], payload[1]])),
        (0x88, 1009)
    );

    let mut c = server.client("bin");
    c.ws.send(tungstenite::Message::binary(vec![1, 2, 3]))
        .unwrap();
    assert_eq!(c.recv_close().unwrap().code, CloseCode::Unsupported);
}

#[test]
fn unmasked_frames_are_a_protocol_error() {
    let server = Server::start(&[]);
    let mut s = raw(server.addr);
    s.write_all(UPGRADE.as_bytes()).unwrap();
    read_response(&mut s);
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let (op, payload) = read_frame(&mut s);
    assert_eq!(
        (op, u16::from_be_bytes([payload[0], payload[1]])),
        (0x88, 1002)
    );
    // After our close frame the server ends the stream.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn sigint_closes_clients_with_1001_and_exits_zero() {
    let mut server = Server::start(&["--reactors", "2"]);
    let mut clients: Vec<_> = (0..4).map(|i| server.client(&format!("u{i}"))).collect();
    for c in &mut clients {
        c.join("r", None);
    }
    clients[0].say("r", "before shutdown", "c");
    clients[0].recv_type("ack");
    let start = Instant::now();
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    for c in &mut clients {
        let close = c.recv_close().expect("close frame");
        assert_eq!(close.code, CloseCode::Away);
    }
    drop(clients);
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    // Bounded by the shutdown timeout (plus slack for a loaded machine).
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(server.log_text().contains("stopped"));
}

#[test]
fn shutdown_is_bounded_even_if_clients_never_answer() {
    let mut server = Server::start(&[
        "--shutdown-timeout-ms",
        "1000",
        "--drain-delay-ms",
        "0",
        "--drain-window-ms",
        "0",
    ]);
    // A client that completes the handshake and then never reads again.
    let mut s = raw(server.addr);
    s.write_all(UPGRADE.as_bytes()).unwrap();
    read_response(&mut s);
    s.write_all(&client_frame(
        0x1,
        json!({"type":"join","room":"r"}).to_string().as_bytes(),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let status = server.terminate();
    assert!(status.success());
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

/// User plus system CPU seconds of a process, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Out of descriptors (EMFILE), a reactor pauses accepting, logs once,
/// keeps serving the sockets it has, does not spin while paused, and
/// accepts again once descriptors are free.
#[test]
fn running_out_of_descriptors_pauses_accepts_without_spinning() {
    let server =
        Server::start_with_fd_limit(64, &["--reactors", "1", "--max-pending-per-ip", "1000"]);
    let mut early = server.client("early");
    early.join("r", None);

    let held: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    let start = Instant::now();
    while !server.log.lock().unwrap().contains("cannot accept") {
        assert!(start.elapsed() < common::WAIT, "no EMFILE warning");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Paused: the loop sleeps until the back-off ends, then retries.
    let pid = server.child.id();
    let before = cpu_secs(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let spent = cpu_secs(pid) - before;
    assert!(spent < 0.3, "{spent:.2} s of CPU in 1.5 s while paused");
    let warnings = server.log.lock().unwrap().matches("cannot accept").count();
    assert_eq!(warnings, 1, "one warning per episode");

    early.say("r", "still served", "e1");
    assert_eq!(early.recv_type("ack")["seq"], 1);

    drop(held);
    let mut late = server.client("late");
    late.join("r", None);
    late.say("r", "back", "l1");
    assert_eq!(late.recv_type("ack")["seq"], 2);
}
