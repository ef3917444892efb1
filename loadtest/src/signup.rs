//! Accounts for `--signup`: before the run, each client signs up with the
//! server's account API (or logs in, if its name is taken) to get the
//! session token it then sends with its upgrade.
//!
//! This is set-up, not load, so it runs outside the event loop, on
//! blocking sockets, a few clients at a time, each bounded by the connect
//! timeout. A client left without a token fails the whole run: the run
//! could not be carried out as asked. The server's log-in limits and its
//! busy hash pool answer 429 and 503 with `Retry-After`; those waits are
//! honoured while the client's deadline allows.
//!
//! [`parse`] is sans-IO: it answers "need more bytes" or a whole reply.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};

use crate::report::excerpt;
use crate::target::{Target, Targets};

/// Largest response accepted; the account API's replies are well under
/// 1 KiB, so anything larger is not the API.
const MAX_RESPONSE: usize = 16 * 1024;
/// Header lines parsed in a response.
const MAX_HEADERS: usize = 32;
/// Longest single wait on `Retry-After`, whatever the server asks: a
/// longer one would outlast any sensible connect timeout anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A complete HTTP response, reduced to what sign-up needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Seconds, from `Retry-After`.
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

/// Where one client's requests go, and how long they may take.
struct Client<'a> {
    target: &'a Target,
    source: Option<IpAddr>,
    deadline: Instant,
}

/// Session tokens for users `PREFIX0..PREFIX{total-1}`, fetched on up to
/// `threads` threads; user `n` talks to the node and from the source
/// address its WebSocket will use. Stops at the first client that fails.
pub fn sessions(
    targets: &Targets,
    prefix: &str,
    total: usize,
    password: &str,
    threads: usize,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let threads = threads.clamp(1, total.max(1));
    let stop = AtomicBool::new(false);
    let mut tokens = vec![String::new(); total];
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let stop = &stop;
                scope.spawn(move || {
                    let mine = (t..total).step_by(threads);
                    sign_up_all(targets, prefix, mine, password, timeout, stop)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("signup thread panicked".into()))
            })
            .collect::<Vec<_>>()
    });
    for result in results {
        for (n, token) in result? {
            if let Some(slot) = tokens.get_mut(n) {
                *slot = token;
            }
        }
    }
    Ok(tokens)
}

/// One thread's share of [`sessions`].
fn sign_up_all(
    targets: &Targets,
    prefix: &str,
    clients: impl Iterator<Item = usize>,
    password: &str,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Vec<(usize, String)>, String> {
    let mut tokens = Vec::new();
    for n in clients {
        if stop.load(Relaxed) {
            break;
        }
        let (target, source) = targets.pick(n);
        let client = Client {
            target,
            source,
            deadline: Instant::now() + timeout,
        };
        let user = format!("{prefix}{n}");
        match client.session(&user, password) {
            Ok(token) => tokens.push((n, token)),
            Err(e) => {
                stop.store(true, Relaxed);
                return Err(format!("signup of {user} at {}: {e}", target.host()));
            }
        }
    }
    Ok(tokens)
}

impl Client<'_> {
    /// The session token of `user`: signs up, or logs in if the name is
    /// taken (an earlier run's account).
    fn session(&self, user: &str, password: &str) -> Result<String, String> {
        let body = json!({"username": user, "password": password}).to_string();
        let mut reply = self.post_patiently("/api/signup", &body)?;
        if reply.status == 409 {
            reply = self.post_patiently("/api/login", &body)?;
        }
        match reply.status {
            200 | 201 => token(&reply.body),
            _ => Err(refusal(&reply)),
        }
    }

    /// Posts `body`, waiting out 429 and 503 while the deadline allows;
    /// the last answer otherwise.
    fn post_patiently(&self, path: &str, body: &str) -> Result<Reply, String> {
        loop {
            let reply = self.post(path, body)?;
            if !matches!(reply.status, 429 | 503) {
                return Ok(reply);
            }
            let asked = Duration::from_secs(reply.retry_after.unwrap_or(1));
            let wait = asked.min(MAX_RETRY_AFTER);
            if Instant::now() + wait >= self.deadline {
                return Ok(reply);
            }
            std::thread::sleep(wait);
        }
    }

    /// One request on its own connection (`Connection: close`).
    fn post(&self, path: &str, body: &str) -> Result<Reply, String> {
        let mut stream = self.connect()?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.target.host(),
            body.len()
        );
        stream.set_write_timeout(Some(self.left()?)).map_err(io)?;
        stream.write_all(request.as_bytes()).map_err(io)?;
        self.read_reply(&mut stream)
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let addr = self.target.addr;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(io)?;
        if let Some(ip) = self.source {
            socket.bind(&SocketAddr::new(ip, 0).into()).map_err(io)?;
        }
        let left = self.left()?;
        socket.connect_timeout(&addr.into(), left).map_err(io)?;
        Ok(socket.into())
    }

    /// Reads until [`parse`] has a whole reply, within the deadline.
    fn read_reply(&self, stream: &mut TcpStream) -> Result<Reply, String> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            stream.set_read_timeout(Some(self.left()?)).map_err(io)?;
            let n = stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err("connection closed before a whole reply".into());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some(reply) = parse(&buf)? {
                return Ok(reply);
            }
            if buf.len() > MAX_RESPONSE {
                return Err(format!("reply over {MAX_RESPONSE} bytes"));
            }
        }
    }

    /// Time left before the deadline; an error once it has passed.
    fn left(&self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no account within --connect-timeout".into());
        }
        Ok(left)
    }
}

/// Parses a response at the start of `buf`: `Ok(None)` while it is
/// incomplete. The body must be framed by `Content-Length`, as the
/// account API's are.
pub fn parse(buf: &[u8]) -> Result<Option<Reply>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad reply: {e}")),
    };
    let status = response.code.ok_or("bad reply: no status")?;
    let number = |name: &str| {
        let h = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(h.value)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    let length = number("content-length").ok_or("reply without Content-Length")?;
    let length = usize::try_from(length)
        .ok()
        .filter(|&l| l <= MAX_RESPONSE)
        .ok_or_else(|| format!("reply body over {MAX_RESPONSE} bytes"))?;
    let Some(body) = buf.get(head..head + length) else {
        return Ok(None);
    };
    Ok(Some(Reply {
        status,
        retry_after: number("retry-after"),
        body: body.to_vec(),
    }))
}

/// The token of a sign-up or log-in answer.
fn token(body: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("bad reply: {e}"))?;
    value["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "reply without a token".into())
}

/// A refusal as one line: status, and the API's error code and message
/// when the body has them.
fn refusal(reply: &Reply) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match error.and_then(|e| Some((e["code"].as_str()?, e["message"].as_str()?))) {
        Some((code, message)) => format!("HTTP {} {code}: {message}", reply.status),
        None => format!("HTTP {}: {}", reply.status, excerpt(&reply.body)),
    }
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with `head` lines and a JSON `body`, framed by length.
    fn response(head: &str, body: &str) -> Vec<u8> {
        let len = body.len();
        format!("{head}\r\nContent-Length: {len}\r\n\r\n{body}").into_bytes()
    }

    #[test]
    fn a_reply_split_at_every_byte_is_incomplete_until_its_last() {
        let created = response("HTTP/1.1 201 Created", r#"{"token":"abc.def"}"#);
        for cut in 0..created.len() {
            assert_eq!(parse(&created[..cut]), Ok(None), "cut at {cut}");
        }
        let reply = parse(&created).unwrap().unwrap();
        assert_eq!((reply.status, reply.retry_after), (201, None));
        assert_eq!(token(&reply.body).unwrap(), "abc.def");
    }

    #[test]
    fn limits_and_malformed_replies_are_errors() {
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n";
        assert!(parse(huge).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n\r\n").is_err(), "no length");
        assert!(parse(b"NOT HTTP\r\n\r\n").is_err());
        assert!(token(b"{}").is_err() && token(b"junk").is_err());
    }

    #[test]
    fn refusals_name_the_status_and_the_api_error() {
        let limited = response(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3",
            r#"{"error":{"code":"rate_limited","message":"wait a bit"}}"#,
        );
        let reply = parse(&limited).unwrap().unwrap();
        assert_eq!(reply.retry_after, Some(3));
        assert_eq!(refusal(&reply), "HTTP 429 rate_limited: wait a bit");
        let plain = Reply {
            status: 500,
            retry_after: None,
            body: b"oops\n".to_vec(),
        };
        assert_eq!(refusal(&plain), "HTTP 500: oops");
    }
}
