//! Accounts and sessions end to end: sign up, log in, connect with the
//! cookie or a bearer token, and every way that must fail; abuse limits.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{http, Server, TEST_KEY, WAIT};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::{Message, WebSocket};

/// A POST with a JSON body; returns (status, headers, body).
fn post(addr: SocketAddr, path: &str, body: &str, extra: &str) -> (u16, String, Value) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    split(&http(addr, &request))
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Value) {
    split(&http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n"),
    ))
}

fn split(response: &str) -> (u16, String, Value) {
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        status,
        head.to_string(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn creds(user: &str, password: &str) -> String {
    json!({"username": user, "password": password}).to_string()
}

/// Signs up and returns the token.
fn signup(addr: SocketAddr, user: &str) -> String {
    let (status, _, body) = post(
        addr,
        "/api/signup",
        &creds(user, "correct horse battery"),
        "",
    );
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// Opens /ws with extra request headers; Err(status) if refused.
fn connect(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<WebSocket<TcpStream>, u16> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        request
            .headers_mut()
            .insert(name, HeaderValue::from_str(value).unwrap());
    }
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    match tungstenite::client(request, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

fn recv(ws: &mut WebSocket<TcpStream>, kind: &str) -> Value {
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

fn send(ws: &mut WebSocket<TcpStream>, v: Value) {
    ws.send(Message::text(v.to_string())).unwrap();
}

#[test]
fn sign_up_log_in_and_chat_as_yourself() {
    let server = Server::start_exact(&[]);
    let a = server.addr;
    let (status, head, body) = post(
        a,
        "/api/signup",
        &creds("alice", "correct horse battery"),
        "",
    );
    assert_eq!((status, body["username"].as_str()), (201, Some("alice")));
    assert!(head.contains("Set-Cookie: parley_session="), "{head}");
    assert!(
        head.contains("HttpOnly") && head.contains("SameSite=Strict"),
        "{head}"
    );

    let (status, _, body) = post(a, "/api/signup", &creds("alice", "another password"), "");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("username_taken"))
    );

    let (status, _, wrong) = post(a, "/api/login", &creds("alice", "wrong password"), "");
    assert_eq!(status, 401);
    let (status, _, unknown) = post(a, "/api/login", &creds("nobody", "wrong password"), "");
    assert_eq!(status, 401);
    assert_eq!(
        wrong, unknown,
        "a failed login does not say which part was wrong"
    );

    let (status, _, body) = post(
        a,
        "/api/login",
        &creds("alice", "correct horse battery"),
        "",
    );
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap();
    let (status, _, me) = get(a, "/api/me", &format!("Authorization: Bearer {token}\r\n"));
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")));
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let (status, _, me) = get(a, "/api/me", &format!("Authorization: bearer {token}\r\n"));
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")));
    let lower = format!("bearer {token}");
    assert!(connect(a, &[("Authorization", &lower)]).is_ok());

    // The cookie, as a browser sends it; `from` is the account, whatever
    // the client claims.
    let cookie = format!("parley_session={token}");
    let mut ws = connect(
        a,
        &[("Cookie", &cookie), ("Origin", &format!("http://{a}"))],
    )
    .unwrap();
    send(&mut ws, json!({"type":"join","room":"r"}));
    recv(&mut ws, "joined");
    send(
        &mut ws,
        json!({"type":"send","room":"r","text":"hi","cid":"1","from":"mallory"}),
    );
    assert_eq!(recv(&mut ws, "message")["from"], "alice");

    // A bearer token in a subprotocol, for clients that cannot set headers.
    let protocols = format!("parley.v1, bearer.{token}");
    let mut ws = connect(a, &[("Sec-WebSocket-Protocol", &protocols)]).unwrap();
    send(&mut ws, json!({"type":"join","room":"r"}));
    recv(&mut ws, "joined");
}

#[test]
fn sockets_without_a_valid_session_are_refused() {
    let server = Server::start_exact(&["--session-key", TEST_KEY]);
    let a = server.addr;
    let token = signup(a, "bob");
    assert_eq!(connect(a, &[]).err(), Some(401), "no token");
    assert_eq!(
        connect(a, &[("Authorization", "Bearer nonsense")]).err(),
        Some(401)
    );
    let mut tampered = token.clone().into_bytes();
    tampered[5] ^= 1;
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        connect(a, &[("Authorization", &format!("Bearer {tampered}"))]).err(),
        Some(401)
    );
    // Guests are off by default.
    let reply = http(a, common::UPGRADE);
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    let (_, _, health) = get(a, "/healthz", "");
    assert_eq!(health["guests_allowed"], false);

    // Another site's page may not open a socket with the user's cookie.
    let cookie = format!("parley_session={token}");
    let evil = [
        ("Cookie", cookie.as_str()),
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(connect(a, &evil).err(), Some(403));
    // Nor may a page whose origin only copies our authority under another
    // scheme; the default same-origin check wants http or https.
    let spoofed = format!("evil://{a}");
    let evil = [("Cookie", cookie.as_str()), ("Origin", spoofed.as_str())];
    assert_eq!(connect(a, &evil).err(), Some(403));
    let login = post(
        a,
        "/api/login",
        &creds("bob", "correct horse battery"),
        &format!("Origin: {spoofed}\r\n"),
    );
    assert_eq!(
        (login.0, login.2["error"]["code"].as_str()),
        (403, Some("forbidden_origin"))
    );
    let same = format!("https://{a}");
    let ok = [("Cookie", cookie.as_str()), ("Origin", same.as_str())];
    assert!(connect(a, &ok).is_ok());

    // Logging out revokes the token everywhere at once.
    let bearer = format!("Bearer {token}");
    assert!(connect(a, &[("Authorization", &bearer)]).is_ok());
    let (status, head, _) = post(
        a,
        "/api/logout",
        "",
        &format!("Authorization: {bearer}\r\n"),
    );
    assert_eq!(status, 204);
    assert!(head.contains("parley_session=;"), "{head}");
    assert_eq!(connect(a, &[("Authorization", &bearer)]).err(), Some(401));
    assert_eq!(
        get(a, "/api/me", &format!("Authorization: {bearer}\r\n")).0,
        401
    );
}

#[test]
fn minted_tokens_work_until_they_expire() {
    let server = Server::start_exact(&["--session-key", TEST_KEY]);
    let mint = |ttl: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args([
                "mint-token",
                "loadbot",
                "--session-key",
                TEST_KEY,
                "--ttl-secs",
                ttl,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let long = mint("600");
    let short = mint("1");
    assert!(connect(server.addr, &[("Authorization", &format!("Bearer {long}"))]).is_ok());
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        connect(
            server.addr,
            &[("Authorization", &format!("Bearer {short}"))]
        )
        .err(),
        Some(401)
    );

    let other = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["mint-token", "x"])
        .output()
        .unwrap();
    assert!(!other.status.success(), "no key configured: refuse to mint");
}

/// `mint-token` names its user as sign-up would (lower case, the same
/// rules) and refuses a token that could never be used.
#[test]
fn minted_tokens_follow_the_sign_up_rules() {
    let mint = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_parley"))
            .arg("mint-token")
            .args(args)
            .args(["--session-key", TEST_KEY])
            .output()
            .unwrap()
    };
    let out = mint(&["BOB"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("\"bob\""),
        "says whom it minted for: {stderr}"
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let server = Server::start_exact(&["--session-key", TEST_KEY]);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (status, _, me) = get(server.addr, "/api/me", &bearer);
    assert_eq!((status, me["username"].as_str()), (200, Some("bob")));

    for bad in [".", "..", "-", "a b", "x:y", ""] {
        let out = mint(&[bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{bad:?}");
        assert!(
            stderr.contains("not a valid user name"),
            "{bad:?}: {stderr}"
        );
    }

    let out = mint(&["bob", "--ttl-secs", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("--ttl-secs must be at least 1"), "{stderr}");
}

#[test]
fn the_api_rejects_bad_input_with_json_errors() {
    let server = Server::start_exact(&["--max-body-bytes", "256"]);
    let a = server.addr;
    let cases = [
        ("not json", 400, "bad_request"),
        (
            r#"{"username":"a b","password":"long enough"}"#,
            400,
            "invalid_username",
        ),
        (
            r#"{"username":"carol","password":"short"}"#,
            400,
            "invalid_password",
        ),
        // Names need a letter or digit: no "." or ".." accounts.
        (
            r#"{"username":".","password":"long enough"}"#,
            400,
            "invalid_username",
        ),
        (
            r#"{"username":"..","password":"long enough"}"#,
            400,
            "invalid_username",
        ),
        (
            r#"{"username":"-","password":"long enough"}"#,
            400,
            "invalid_username",
        ),
        (
            r#"{"username":"_.-","password":"long enough"}"#,
            400,
            "invalid_username",
        ),
    ];
    for (body, status, code) in cases {
        let (got, _, err) = post(a, "/api/signup", body, "");
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let big = format!(r#"{{"username":"carol","password":"{}"}}"#, "p".repeat(400));
    let reply = http(
        a,
        &format!(
            "POST /api/signup HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        ),
    );
    let (status, head, err) = split(&reply);
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{reply}"
    );
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let chunked = http(
        a,
        "POST /api/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         2\r\n{}\r\n0\r\n\r\n",
    );
    let (status, _, err) = split(&chunked);
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (411, Some("length_required")),
        "{chunked}"
    );
    // Outside the API, the same refusal stays plain text.
    let page = http(
        a,
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9999\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 413"), "{page}");
    assert!(page.contains("Content-Type: text/plain"), "{page}");
    assert_eq!(get(a, "/api/signup", "").0, 405);
    assert_eq!(get(a, "/api/nope", "").0, 404);
    let cross = post(
        a,
        "/api/login",
        &creds("x", "yyyyyyyy"),
        "Origin: https://evil.example\r\n",
    );
    assert_eq!(cross.0, 403);
}

#[test]
fn log_in_attempts_are_rate_limited() {
    let server = Server::start_exact(&["--login-attempts-per-ip", "3"]);
    for _ in 0..3 {
        assert_eq!(
            post(
                server.addr,
                "/api/login",
                &creds("dave", "wrong password"),
                ""
            )
            .0,
            401
        );
    }
    let (status, head, body) = post(
        server.addr,
        "/api/login",
        &creds("dave", "wrong password"),
        "",
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert!(head.contains("Retry-After: "), "{head}");
}

#[test]
fn per_user_login_attempts_are_limited_across_addresses() {
    let server = Server::start_exact(&["--login-attempts-per-user", "2"]);
    for _ in 0..2 {
        assert_eq!(
            post(
                server.addr,
                "/api/login",
                &creds("erin", "wrong password"),
                ""
            )
            .0,
            401
        );
    }
    assert_eq!(
        post(
            server.addr,
            "/api/login",
            &creds("erin", "wrong password"),
            ""
        )
        .0,
        429
    );
    assert_eq!(
        post(
            server.addr,
            "/api/login",
            &creds("frank", "wrong password"),
            ""
        )
        .0,
        401,
        "other users unaffected"
    );
}

#[test]
fn message_rate_and_connection_limits() {
    let server = Server::start(&["--message-rate", "5", "--max-conns-per-user", "2"]);
    let mut c = server.client("chatty");
    c.join("r", None);
    let mut limited = 0;
    for i in 0..15 {
        c.say("r", "x", &format!("c{i}"));
    }
    let mut acks = 0;
    while acks + limited < 15 {
        let v = c.recv();
        match (v["type"].as_str(), v["code"].as_str()) {
            (Some("ack"), _) => acks += 1,
            (Some("error"), Some("rate_limited")) => {
                // Names the refused message, so the client knows what to
                // send again.
                assert_eq!(v["room"], "r", "{v}");
                assert!(v["cid"].as_str().is_some_and(|c| c.starts_with('c')), "{v}");
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(limited > 0 && acks >= 9, "acks={acks} limited={limited}");
    // Still connected: limits never disconnect a well-behaved socket.
    std::thread::sleep(Duration::from_millis(500));
    c.say("r", "later", "later");
    assert_eq!(
        common::recv_until(&mut c, |v| v["type"] == "ack" || v["type"] == "error")["type"],
        "ack"
    );

    let _second = server.client("chatty");
    let third = http(
        server.addr,
        &common::UPGRADE.replace("name=raw", "name=chatty"),
    );
    assert!(third.starts_with("HTTP/1.1 429"), "{third}");
    let _other = server.client("quiet");
}

/// Behind a proxy, per-IP limits count the client X-Forwarded-For names,
/// but only when the proxy is trusted; otherwise the header is ignored
/// (a client cannot spoof its way past the limit).
#[test]
fn per_ip_limits_believe_only_trusted_proxies() {
    let upgrade_from = |addr: SocketAddr, ip: &str| {
        let mut s = common::raw(addr);
        let request = common::UPGRADE.replace(
            "\r\n\r\n",
            &format!("\r\nX-Forwarded-For: 10.9.8.7, {ip}\r\n\r\n"),
        );
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        let head = common::read_head(&mut s);
        (s, head)
    };
    // A range, as a pool of load balancers is configured.
    let trusting = Server::start(&[
        "--max-conns-per-ip",
        "1",
        "--trusted-proxies",
        "::1, 127.0.0.0/8",
    ]);
    let (_a, first) = upgrade_from(trusting.addr, "192.0.2.1");
    let (_b, other) = upgrade_from(trusting.addr, "192.0.2.2");
    let (_c, again) = upgrade_from(trusting.addr, "192.0.2.1");
    assert!(
        first.starts_with("HTTP/1.1 101") && other.starts_with("HTTP/1.1 101"),
        "{first}{other}"
    );
    assert!(again.starts_with("HTTP/1.1 429"), "{again}");

    let wary = Server::start(&["--max-conns-per-ip", "1"]);
    let (_d, first) = upgrade_from(wary.addr, "192.0.2.1");
    let (_e, spoofed) = upgrade_from(wary.addr, "192.0.2.2");
    assert!(first.starts_with("HTTP/1.1 101"), "{first}");
    assert!(spoofed.starts_with("HTTP/1.1 429"), "{spoofed}");
}

/// A socket lives no longer than its session: log-out or expiry closes it
/// (1008) within about a second, even if it stays silent.
#[test]
fn logging_out_or_expiry_ends_open_sockets() {
    let server = Server::start_exact(&["--session-key", TEST_KEY]);
    let a = server.addr;
    let token = signup(a, "gina");
    let bearer = format!("Bearer {token}");
    let mut ws = connect(a, &[("Authorization", &bearer)]).unwrap();
    send(&mut ws, json!({"type":"join","room":"r"}));
    recv(&mut ws, "joined");
    assert_eq!(
        post(
            a,
            "/api/logout",
            "",
            &format!("Authorization: {bearer}\r\n")
        )
        .0,
        204
    );
    let close = loop {
        match ws.read().expect("a close frame") {
            Message::Close(c) => break c.expect("with a code"),
            _ => continue,
        }
    };
    assert_eq!(u16::from(close.code), 1008, "{close:?}");

    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([
            "mint-token",
            "hal",
            "--session-key",
            TEST_KEY,
            "--ttl-secs",
            "2",
        ])
        .output()
        .unwrap();
    let short = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut ws = connect(a, &[("Authorization", &format!("Bearer {short}"))]).unwrap();
    let start = std::time::Instant::now();
    let close = loop {
        match ws.read().expect("a close frame") {
            Message::Close(c) => break c.expect("with a code"),
            _ => continue,
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn user_names_are_case_insensitive() {
    let server = Server::start_exact(&[]);
    let a = server.addr;
    signup(a, "Iris");
    let (status, _, body) = post(a, "/api/signup", &creds("IRIS", "another password"), "");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("username_taken"))
    );
    let (status, _, body) = post(a, "/api/login", &creds("iRiS", "correct horse battery"), "");
    assert_eq!((status, body["username"].as_str()), (200, Some("iris")));
}

/// Pings cost a request each on a chat socket; a ping flood is cut off.
#[test]
fn ping_floods_are_cut_off() {
    let server = Server::start(&["--message-rate", "5"]);
    let mut c = server.client("pinger");
    for _ in 0..100 {
        if c.ws.send(Message::Ping(vec![0u8; 125].into())).is_err() {
            break;
        }
    }
    let close = c.recv_close().expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
}
