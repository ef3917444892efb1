//! Test harness: runs the real `parley` binary on a free loopback port and
//! talks to it with real WebSocket clients (tungstenite) and raw sockets.

#![allow(dead_code)] // each test file uses a different part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// A fixed session key for tests (hex, 32 bytes).
pub const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `parley --listen 127.0.0.1:0 --allow-guests ARGS...` (most
    /// tests name their clients with `?name=`) and waits for it.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--allow-guests"];
        if !args.contains(&"--message-rate") {
            // Tests send in bursts; the rate limit has tests of its own.
            all.extend_from_slice(&["--message-rate", "1000000"]);
        }
        all.extend_from_slice(args);
        Server::start_exact(&all)
    }

    /// Starts `parley --listen 127.0.0.1:0 ARGS...`: accounts required.
    pub fn start_exact(args: &[&str]) -> Server {
        let level: &[&str] = if args.contains(&"--log-level") {
            &[]
        } else {
            &["--log-level", "info"]
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parley"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(level).args(args);
        Server::launch(cmd)
    }

    /// Starts a guests-allowed server that may hold at most `nofile` open
    /// descriptors (through the shell's `ulimit -n`, then `exec`, so the
    /// child is the server itself).
    pub fn start_with_fd_limit(nofile: u32, args: &[&str]) -> Server {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_parley"))
            .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
            .args(["--allow-guests", "--message-rate", "1000000"])
            .args(args);
        Server::launch(cmd)
    }

    fn launch(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn parley");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("server did not report its address")
            .parse()
            .expect("address");
        Server { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Starts a node of a Redis-backed cluster.
    pub fn start_node(redis: &Redis, args: &[&str]) -> Server {
        let url = redis.url();
        let mut all = vec!["--redis", url.as_str(), "--session-key", TEST_KEY];
        all.extend_from_slice(args);
        Server::start(&all)
    }

    pub fn client(&self, name: &str) -> Client {
        Client::connect(self.addr, &format!("/ws?name={name}"))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(start.elapsed() < WAIT, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(start.elapsed() < WAIT, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}--- end ---", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("handshake");
        Client { ws }
    }

    pub fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    /// The next JSON text frame (pings are answered by tungstenite).
    pub fn recv(&mut self) -> Value {
        loop {
            match self.ws.read().expect("read") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json"),
                Message::Close(c) => panic!("unexpected close: {c:?}"),
                _ => {}
            }
        }
    }

    /// Frames until one of type `kind`, returning the skipped ones too.
    pub fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv();
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Waits for the server's close frame and returns it.
    pub fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.ws.read() {
                Ok(Message::Close(c)) => return c,
                Ok(_) => {}
                Err(e) => panic!("no close frame: {e}"),
            }
        }
    }

    /// Joins `room` and returns the `joined` reply followed by its backlog.
    pub fn join(&mut self, room: &str, since: Option<u64>) -> (Value, Vec<Value>) {
        let mut req = json!({"type": "join", "room": room});
        if let Some(since) = since {
            req["since"] = json!(since);
        }
        self.send(req);
        let joined = self.recv_type("joined");
        let n = joined["backlog"].as_u64().unwrap();
        let backlog = (0..n).map(|_| self.recv()).collect();
        (joined, backlog)
    }

    pub fn say(&mut self, room: &str, text: &str, cid: &str) {
        self.send(json!({"type": "send", "room": room, "text": text, "cid": cid}));
    }
}

/// Opens a raw TCP connection with a read timeout.
pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Sends `request` and reads until the server closes or a full head (and
/// Content-Length body) arrived. Returns the raw response text.
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = raw(addr);
    s.write_all(request.as_bytes()).unwrap();
    if request.starts_with("HEAD ") {
        return read_head(&mut s);
    }
    read_response(&mut s)
}

/// Reads a response head only (for HEAD requests, which have no body).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => buf.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

/// Reads one HTTP response (head plus Content-Length body) from `s`.
pub fn read_response(s: &mut TcpStream) -> String {
    let head = read_head(s);
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// A masked client frame, for tests that speak WebSocket by hand.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

pub const UPGRADE: &str = "GET /ws?name=raw HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A real redis-server on a free loopback port, with AOF in a private
/// directory, killed when dropped.
pub struct Redis {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: std::path::PathBuf,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = std::env::temp_dir().join(format!(
            "parley-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir,
        };
        // The port was free a moment ago; another test may take it first.
        for _ in 0..5 {
            if redis.spawn() {
                return redis;
            }
            redis.port = free_port();
        }
        panic!("redis-server could not bind a free port");
    }

    /// Starts redis-server on `self.port`; false if the port was taken.
    /// The server that answers must be ours (its pid), never another
    /// test's that holds the port.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let pid = child.id();
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let exited = self.child.as_mut().map(|c| c.try_wait());
            if matches!(exited, Some(Ok(Some(_)))) {
                self.child = None;
                return false;
            }
            let info = self.cli(&["INFO", "server"]);
            if info.contains(&format!("process_id:{pid}\r")) {
                return true;
            }
            assert!(start.elapsed() < WAIT, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// kill -9: no shutdown save; only the AOF survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn restart(&mut self) {
        assert!(
            self.spawn(),
            "port {} was taken while redis was down",
            self.port
        );
    }

    /// Runs redis-cli against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads JSON frames until `pred` holds, failing after `WAIT`.
/// Whether a `presence` frame lists `user` as `online` (or as offline).
pub fn lists(presence: &Value, user: &str, online: bool) -> bool {
    let key = if online { "online" } else { "offline" };
    presence["type"] == "presence"
        && presence[key]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == user))
}

/// Waits for a `presence` frame that lists `user` as `online` (or offline).
pub fn recv_presence(c: &mut Client, user: &str, online: bool) -> Value {
    recv_until(c, |v| lists(v, user, online))
}

pub fn recv_until(c: &mut Client, mut pred: impl FnMut(&Value) -> bool) -> Value {
    loop {
        let v = c.recv();
        if pred(&v) {
            return v;
        }
    }
}

/// The body of `GET path` (one request on a fresh connection).
pub fn get_body(addr: SocketAddr, path: &str) -> String {
    let reply = http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    );
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The venv scripts/test.sh provisions with prometheus_client.
pub const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/py/bin/python");

const PARSE_METRICS: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;

/// Parses a Prometheus text exposition with the reference Python client's
/// parser; keys are `name{label="v",...}` with labels sorted. Fails the
/// test if the parser is missing or rejects the text.
pub fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run `bash scripts/test.sh packages` to install \
         prometheus_client (the metrics parser these tests need)"
    );
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE_METRICS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the prometheus_client parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics: {}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// Scrapes and parses `/metrics` of `addr`.
pub fn metrics(addr: SocketAddr) -> std::collections::HashMap<String, f64> {
    parse_metrics(&get_body(addr, "/metrics"))
}

/// Against a server started with `--max-room-members 2`: a private room
/// takes its creator and one invitee, refuses a third name with
/// `room_full`, and still accepts inviting a member again.
pub fn check_room_member_limit(server: &Server) {
    let mut owner = server.client("owner");
    owner.send(serde_json::json!({"type":"create","room":"small","private":true}));
    owner.recv_type("created");
    let mut invite = |user: &str| {
        owner.send(serde_json::json!({"type":"invite","room":"small","user":user}));
        recv_until(&mut owner, |v| {
            v["type"] == "invited" || v["type"] == "error"
        })
    };
    assert_eq!(invite("guest:one")["type"], "invited");
    let refused = invite("guest:two");
    assert_eq!(refused["code"], "room_full", "{refused}");
    assert_eq!(invite("guest:one")["type"], "invited", "already a member");
    let mut two = server.client("two");
    two.send(serde_json::json!({"type":"join","room":"small"}));
    assert_eq!(two.recv_type("error")["code"], "forbidden");
}
