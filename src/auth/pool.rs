//! The auth worker pool: a few threads that do what is too slow for a
//! reactor (PBKDF2 at 600 000 rounds costs hundreds of milliseconds; the
//! Redis user store blocks on the network) and answer the waiting HTTP
//! connection through its reactor's inbox.
//!
//! The queue in front of the workers is bounded; when it is full the
//! reactor answers 503 at once instead of letting logins pile up.

use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::token::Claims;
use super::{password, unix_now, Auth};
use crate::broker::ConnRef;
use crate::http::response::write_response;
use crate::reactor::inbox::{Event, HttpReply, Inbox};

/// Work for the pool; each job answers exactly one HTTP request.
pub enum Job {
    Signup(Credentials),
    Login(Credentials),
    Logout { reply: Reply, claims: Claims },
}

pub struct Credentials {
    pub reply: Reply,
    pub user: String,
    pub password: String,
    pub peer: IpAddr,
}

/// Where and how the answer goes.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub to: ConnRef,
    pub keep_alive: bool,
}

pub struct Pool {
    jobs: SyncSender<Job>,
    receiver: Arc<Mutex<Receiver<Job>>>,
}

impl Pool {
    pub fn new(queue: usize) -> Pool {
        let (jobs, receiver) = mpsc::sync_channel(queue);
        Pool {
            jobs,
            receiver: Arc::new(Mutex::new(receiver)),
        }
    }

    /// Queues a job, or hands it back when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }

    /// Starts `count` workers answering into `inboxes`.
    pub fn start(auth: &Arc<Auth>, count: usize, inboxes: Vec<Arc<Inbox>>) -> std::io::Result<()> {
        for i in 0..count {
            let receiver = auth.pool.receiver.clone();
            let worker = Worker {
                auth: auth.clone(),
                inboxes: inboxes.clone(),
            };
            std::thread::Builder::new()
                .name(format!("auth-{i}"))
                .spawn(move || loop {
                    let job = {
                        let rx = receiver.lock().unwrap_or_else(|p| p.into_inner());
                        rx.recv()
                    };
                    match job {
                        Ok(job) => worker.run(job),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(())
    }
}

struct Worker {
    auth: Arc<Auth>,
    inboxes: Vec<Arc<Inbox>>,
}

/// A record that takes as long to check as a real one, for unknown users,
/// so response time does not tell which user names exist.
fn decoy(iterations: u32) -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| password::hash("decoy password", iterations))
}

impl Worker {
    fn run(&self, job: Job) {
        let (reply, response) = match job {
            Job::Signup(c) => (c.reply, self.signup(&c)),
            Job::Login(c) => (c.reply, self.login(&c)),
            Job::Logout { reply, claims } => (reply, self.logout(&claims)),
        };
        let (status, body, cookie) = response;
        let mut bytes = Vec::new();
        let cookie_header;
        let mut headers: Vec<(&str, &str)> = vec![("Cache-Control", "no-store")];
        if let Some(cookie) = cookie {
            cookie_header = cookie;
            headers.push(("Set-Cookie", &cookie_header));
        }
        let body = if status == 204 {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let content_type = if status == 204 {
            ""
        } else {
            "application/json"
        };
        write_response(
            &mut bytes,
            status,
            content_type,
            &headers,
            &body,
            reply.keep_alive,
            false,
        );
        if let Some(inbox) = self.inboxes.get(reply.to.reactor) {
            inbox.push(Event::HttpReply(Box::new(HttpReply {
                to: reply.to,
                bytes,
                keep_alive: reply.keep_alive,
            })));
        }
    }

    fn signup(&self, c: &Credentials) -> (u16, serde_json::Value, Option<String>) {
        let record = password::hash(&c.password, self.auth.settings.password_iterations);
        match self.auth.store.create(&c.user, &record) {
            Ok(true) => {
                log::info!("signup user={}", c.user);
                self.session(201, &c.user)
            }
            Ok(false) => (
                409,
                error("username_taken", "that user name is taken"),
                None,
            ),
            Err(_) => unavailable(),
        }
    }

    fn login(&self, c: &Credentials) -> (u16, serde_json::Value, Option<String>) {
        let iterations = self.auth.settings.password_iterations;
        let record = match self.auth.store.get(&c.user) {
            Ok(record) => record,
            Err(_) => return unavailable(),
        };
        let ok = match &record {
            Some(record) => password::verify(&c.password, record),
            None => {
                let _ = password::verify(&c.password, decoy(iterations));
                false
            }
        };
        if !ok {
            self.auth
                .stats
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::debug!("login failed peer={}", c.peer);
            return (
                401,
                error("invalid_credentials", "user name or password is wrong"),
                None,
            );
        }
        self.session(200, &c.user)
    }

    fn logout(&self, claims: &Claims) -> (u16, serde_json::Value, Option<String>) {
        match self.auth.store.revoke(&claims.sid, claims.expires) {
            Ok(()) => (204, serde_json::Value::Null, Some(self.auth.clear_cookie())),
            Err(_) => unavailable(),
        }
    }

    fn session(&self, status: u16, user: &str) -> (u16, serde_json::Value, Option<String>) {
        let expires = unix_now() + self.auth.settings.session_ttl_secs;
        let (token, _) = self.auth.signer.issue(user, expires);
        let cookie = self.auth.cookie(&token);
        let body = json!({"username": user, "token": token, "expires": expires});
        (status, body, Some(cookie))
    }
}

/// The JSON error body every API error uses.
pub fn error(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

fn unavailable() -> (u16, serde_json::Value, Option<String>) {
    (
        503,
        error("unavailable", "account storage is unreachable; retry"),
        None,
    )
}
