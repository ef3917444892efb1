//! HTTP and the opening handshake over real sockets: routes, status codes,
//! limits, keep-alive, and bytes that follow the head in the same packet.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{client_frame, http, raw, read_response, Server, UPGRADE};

#[test]
fn routes_answer_with_proper_statuses() {
    let server = Server::start(&[]);
    let a = server.addr;
    let page = http(a, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Content-Security-Policy: default-src 'self'"));
    assert!(page.contains("<html"));
    assert!(http(a, "GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n").contains("text/javascript"));
    let health = http(a, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("\"status\":\"ok\""),
        "{health}"
    );
    assert!(http(a, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").starts_with("HTTP/1.1 404"));
    let post = http(a, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert!(
        post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET, HEAD"),
        "{post}"
    );
    let post_ws = http(
        a,
        "POST /ws HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post_ws.starts_with("HTTP/1.1 405"), "{post_ws}");
    // The echo endpoint exists only with --echo; without it, no method
    // learns otherwise (no 405, no Allow).
    let echo = UPGRADE.replace("/ws?name=raw", "/echo");
    assert!(http(a, &echo).starts_with("HTTP/1.1 404"));
    for method in ["POST", "HEAD", "OPTIONS", "PUT"] {
        let request = format!("{method} /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        let reply = http(a, &request);
        assert!(reply.starts_with("HTTP/1.1 404"), "{method}: {reply}");
        assert!(!reply.contains("Allow:"), "{method}: {reply}");
    }
    let echoing = Server::start(&["--echo"]);
    let post_echo = http(
        echoing.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        post_echo.starts_with("HTTP/1.1 405") && post_echo.contains("Allow: GET\r\n"),
        "{post_echo}"
    );
    let head = http(a, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && !head.contains("<html"),
        "{head}"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(&[]);
    let mut s = raw(server.addr);
    // Two requests in one write: pipelined.
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 404"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after Connection: close");
}

#[test]
fn upgrade_rules_follow_rfc6455() {
    let server = Server::start(&[]);
    let cases = [
        (
            UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
            "101",
        ),
        (
            UPGRADE.replace("Upgrade: websocket", "Upgrade: WebSocket"),
            "101",
        ),
        (
            UPGRADE.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            "426",
        ),
        (
            UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j"),
            "400",
        ),
        (
            UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
            "400",
        ),
        (
            UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive"),
            "400",
        ),
        (UPGRADE.replace("Upgrade: websocket\r\n", ""), "400"),
    ];
    for (request, status) in cases {
        let reply = http(server.addr, &request);
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}\n=> {reply}"
        );
        if status == "426" {
            assert!(reply.contains("Sec-WebSocket-Version: 13"), "{reply}");
        }
        if status == "101" {
            assert!(
                reply.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                "{reply}"
            );
        }
    }
}

#[test]
fn frames_in_the_same_packet_as_the_head_are_processed() {
    let server = Server::start(&[]);
    let mut s = raw(server.addr);
    let mut packet = UPGRADE.as_bytes().to_vec();
    packet.extend(client_frame(
        0x1,
        br#"{"type":"join","room":"fast","id":1}"#,
    ));
    s.write_all(&packet).unwrap();
    let head = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut frame = [0u8; 2];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 0x81);
    let mut body = vec![0; usize::from(frame[1])];
    s.read_exact(&mut body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "joined");
}

#[test]
fn oversized_heads_get_431() {
    let server = Server::start(&["--max-head-bytes", "1024", "--max-headers", "8"]);
    // A request line longer than the limit is a URI too long (RFC 9112 §3).
    let long_url = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "u".repeat(2000));
    let reply = http(server.addr, &long_url);
    assert!(reply.starts_with("HTTP/1.1 414 URI Too Long"), "{reply}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(2000)
    );
    assert!(http(server.addr, &big).starts_with("HTTP/1.1 431"));
    let many: String = (0..9).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    assert!(http(server.addr, &req).starts_with("HTTP/1.1 431"));
    assert!(http(server.addr, "GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
}

/// A client that trickles its head cannot hold a slot past the deadline,
/// however steadily it sends: it is told 408 and cut off.
#[test]
fn slow_heads_are_cut_at_the_handshake_deadline() {
    let server = Server::start(&["--handshake-timeout-ms", "500"]);
    let mut s = raw(server.addr);
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = Instant::now();
    let mut closed = false;
    for byte in UPGRADE.bytes().take(60) {
        if s.write_all(&[byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => closed = true,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    text.starts_with("HTTP/1.1 408 Request Timeout"),
                    "only a 408 may answer half a head: {text}"
                );
                closed = true;
            }
            Err(e) => {
                use std::io::ErrorKind::{TimedOut, WouldBlock};
                closed = !matches!(e.kind(), WouldBlock | TimedOut);
            }
        }
        if closed {
            break;
        }
    }
    assert!(closed, "still open after {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// Connections that have not finished their handshake are capped per
/// reactor; the next one is answered 503 at once, and served again once a
/// slot frees up.
#[test]
fn pending_handshakes_are_capped() {
    let server = Server::start(&["--reactors", "1", "--max-pending-handshakes", "2"]);
    let idle: Vec<_> = (0..2).map(|_| raw(server.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let shed = http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    let served = http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

/// One address cannot hold all the handshake slots: past
/// `max_pending_per_ip`, its next connection is refused while another
/// address is still served (and so are the probes).
#[test]
fn pending_handshakes_are_capped_per_address() {
    let server = Server::start(&["--max-pending-per-ip", "2"]);
    let idle: Vec<_> = (0..2).map(|_| raw(server.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let shed = http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");

    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    other.connect(&server.addr.into()).unwrap();
    let mut other: std::net::TcpStream = other.into();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let served = read_response(&mut other);
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    drop(idle);
}

/// HEAD gets the head a GET would get, never a body, errors included.
#[test]
fn head_responses_carry_no_body() {
    let server = Server::start(&[]);
    for path in ["/nope", "/api/me", "/ws", "/healthz", "/"] {
        let mut s = raw(server.addr);
        s.write_all(
            format!("HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.ends_with("\r\n\r\n"),
            "{path}: body after the head:\n{text}"
        );
    }
}
