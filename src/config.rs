//! Runtime configuration: one list of settings, read from a TOML file, then
//! `PARLEY_*` environment variables, then command-line flags (each source
//! overrides the one before), and validated once before anything starts.
//!
//! Every setting is declared once in the `settings!` table below; the macro
//! derives the flag, the environment variable, the file key and the default
//! from that single line, so the three sources cannot drift apart.
//! `conf/parley.toml` documents every key with its default and unit.
//!
//! How the settings look as flags, and errors that name a variable, are
//! in `flags`.

pub mod flags;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::auth::proxies::TrustedProxies;

macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr, env $env:literal;
    )+) => {
        /// The effective configuration of a running server.
        #[derive(Debug, Clone, Serialize)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )+ }
            }
        }

        /// Settings as a config file states them; absent keys stay `None`.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileSettings {
            $( #[serde(default)] pub $name: Option<$ty>, )+
        }

        /// Settings as flags or environment variables state them.
        #[derive(Debug, Default, clap::Args)]
        pub struct FlagSettings {
            $(
                $(#[doc = $doc])+
                #[arg(long, env = $env,
                      num_args = flags::value_count::<$ty>(),
                      default_missing_value = flags::missing_value::<$ty>())]
                pub $name: Option<$ty>,
            )+
        }

        /// Each setting's key beside its environment variable.
        pub const ENV_VARS: &[(&str, &str)] = &[ $( (stringify!($name), $env), )+ ];

        impl Config {
            /// Layers `file` and then `flags` over the defaults.
            pub fn layered(file: FileSettings, flags: FlagSettings) -> Config {
                let mut config = Config::default();
                $(
                    if let Some(v) = file.$name { config.$name = v; }
                    if let Some(v) = flags.$name { config.$name = v; }
                )+
                config
            }
        }
    };
}

settings! {
    /// Address to listen on, for example 127.0.0.1:8080 or [::1]:8080.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
        env "PARLEY_LISTEN";
    /// Reactor threads; 0 means one per available core.
    reactors: usize = 0, env "PARLEY_REACTORS";
    /// Serve the conformance echo endpoint at /echo (testing only).
    echo: bool = false, env "PARLEY_ECHO";
    /// Largest WebSocket message accepted, in bytes (close 1009 above).
    max_message_bytes: usize = 64 * 1024, env "PARLEY_MAX_MESSAGE_BYTES";
    /// Log level: error, warn, info, debug or trace.
    log_level: String = "info".into(), env "PARLEY_LOG_LEVEL";
    /// Largest HTTP request head, in bytes (431 above; 414 when the
    /// request line alone is longer).
    max_head_bytes: usize = 8 * 1024, env "PARLEY_MAX_HEAD_BYTES";
    /// Most header lines in an HTTP request head (431 above).
    max_headers: usize = 32, env "PARLEY_MAX_HEADERS";
    /// Time from accept to a complete request head, in milliseconds; also
    /// the idle limit between keep-alive requests.
    handshake_timeout_ms: u64 = 10_000, env "PARLEY_HANDSHAKE_TIMEOUT_MS";
    /// Seconds a WebSocket may be silent before the server pings it.
    ping_interval_secs: u64 = 25, env "PARLEY_PING_INTERVAL_SECS";
    /// Seconds after a ping without any frame from the peer before the
    /// connection is closed.
    ping_timeout_secs: u64 = 20, env "PARLEY_PING_TIMEOUT_SECS";
    /// Bytes queued for one connection before it counts as a slow consumer
    /// and is closed with 1013.
    max_outbound_bytes: usize = 1024 * 1024, env "PARLEY_MAX_OUTBOUND_BYTES";
    /// Messages each room keeps in memory for `since` recovery and history.
    history_size: usize = 1000, env "PARLEY_HISTORY_SIZE";
    /// Recent messages sent after `joined` when a join has no `since`.
    history_on_join: usize = 50, env "PARLEY_HISTORY_ON_JOIN";
    /// Largest page a `history` request may ask for.
    history_page_max: usize = 200, env "PARLEY_HISTORY_PAGE_MAX";
    /// Longest message text, in bytes of UTF-8.
    max_text_bytes: usize = 4096, env "PARLEY_MAX_TEXT_BYTES";
    /// Rooms one connection may be in at once.
    max_rooms_per_conn: usize = 32, env "PARLEY_MAX_ROOMS_PER_CONN";
    /// Rooms the embedded broker holds at once; past it, the least
    /// recently used room nobody is in is forgotten.
    max_rooms: usize = 100_000, env "PARLEY_MAX_ROOMS";
    /// Private rooms one user may create on the embedded broker (private
    /// rooms are never forgotten to make space).
    max_owned_rooms: usize = 100, env "PARLEY_MAX_OWNED_ROOMS";
    /// Members a private room may have; invitations past it are refused.
    max_room_members: usize = 10_000, env "PARLEY_MAX_ROOM_MEMBERS";
    /// Bytes of message history the embedded broker keeps in all rooms;
    /// past it, idle rooms are forgotten, then the oldest messages.
    max_history_bytes: usize = 256 * 1024 * 1024, env "PARLEY_MAX_HISTORY_BYTES";
    /// Events waiting for one reactor before new messages are refused with
    /// `overloaded` (backpressure instead of unbounded memory).
    max_reactor_queue: usize = 1_000_000, env "PARLEY_MAX_REACTOR_QUEUE";
    /// Milliseconds between SIGTERM (or SIGINT) and a forced exit; must
    /// exceed drain_delay_ms + drain_window_ms by at least a second.
    shutdown_timeout_ms: u64 = 20_000, env "PARLEY_SHUTDOWN_TIMEOUT_MS";
    /// Milliseconds after SIGTERM (readiness already false) before the
    /// listener stops accepting, for load balancers to notice.
    drain_delay_ms: u64 = 2_000, env "PARLEY_DRAIN_DELAY_MS";
    /// Milliseconds over which a drain closes connections (1012), each at
    /// a random moment, so their reconnects are spread out.
    drain_window_ms: u64 = 10_000, env "PARLEY_DRAIN_WINDOW_MS";
    /// Milliseconds a reactor holds presence changes to send them as one
    /// frame per room; 0 sends them at the end of each loop pass.
    presence_interval_ms: u64 = 100, env "PARLEY_PRESENCE_INTERVAL_MS";
    /// Milliseconds between canary messages (with Redis only); 0 disables.
    canary_interval_ms: u64 = 2_000, env "PARLEY_CANARY_INTERVAL_MS";
    /// Redis URL (redis://HOST:PORT/DB) for the shared broker; empty means
    /// the embedded single-node broker.
    redis: String = String::new(), env "PARLEY_REDIS";
    /// Sends and history reads waiting for Redis before new ones are
    /// refused with `overloaded`.
    redis_max_pending: usize = 65_536, env "PARLEY_REDIS_MAX_PENDING";
    /// Let sockets without a session pick a name with ?name= (shown as
    /// guest:<name>). For development and load tests only.
    allow_guests: bool = false, env "PARLEY_ALLOW_GUESTS";
    /// Session signing key, hex (at least 64 digits = 32 bytes). Secret.
    /// Required with redis, so every node accepts every node's tokens.
    session_key: String = String::new(), env "PARLEY_SESSION_KEY";
    /// File holding the session signing key (hex), instead of session_key.
    session_key_file: String = String::new(), env "PARLEY_SESSION_KEY_FILE";
    /// Seconds a session token stays valid.
    session_ttl_secs: u64 = 7 * 24 * 3600, env "PARLEY_SESSION_TTL_SECS";
    /// Comma-separated Origins allowed to open sockets and use the API
    /// (e.g. "https://chat.example.com"); empty means the same origin: an
    /// http:// or https:// Origin whose authority is the Host.
    allowed_origins: String = String::new(), env "PARLEY_ALLOWED_ORIGINS";
    /// Mark the session cookie Secure (serve over HTTPS, e.g. behind a
    /// TLS-terminating proxy).
    cookie_secure: bool = false, env "PARLEY_COOKIE_SECURE";
    /// Threads hashing passwords and talking to the user store; 0 means
    /// the available cores minus one, at least 1 (hashing competes with
    /// the reactors for the cores).
    auth_workers: usize = 0, env "PARLEY_AUTH_WORKERS";
    /// Log-ins and sign-ups waiting for a worker before new ones get 503.
    auth_queue: usize = 64, env "PARLEY_AUTH_QUEUE";
    /// PBKDF2-HMAC-SHA256 rounds for new password hashes (at least
    /// 600000, OWASP's current guidance).
    password_iterations: u32 = 600_000, env "PARLEY_PASSWORD_ITERATIONS";
    /// Log-in and sign-up attempts per minute from one IP address.
    login_attempts_per_ip: u32 = 20, env "PARLEY_LOGIN_ATTEMPTS_PER_IP";
    /// Log-in and sign-up attempts per minute for one user name.
    login_attempts_per_user: u32 = 10, env "PARLEY_LOGIN_ATTEMPTS_PER_USER";
    /// Requests per second one socket may make (burst: twice as many).
    message_rate: u32 = 20, env "PARLEY_MESSAGE_RATE";
    /// Sockets one user may have open on this node.
    max_conns_per_user: u32 = 32, env "PARLEY_MAX_CONNS_PER_USER";
    /// Sockets one IP address may have open on this node.
    max_conns_per_ip: u32 = 4096, env "PARLEY_MAX_CONNS_PER_IP";
    /// Comma-separated proxy addresses or CIDR ranges (e.g. "127.0.0.1,
    /// 10.0.0.0/8, fd00::/8") whose X-Forwarded-For is believed for
    /// per-IP limits; empty: none.
    trusted_proxies: String = String::new(), env "PARLEY_TRUSTED_PROXIES";
    /// Largest HTTP request body, bytes (413 above).
    max_body_bytes: usize = 4096, env "PARLEY_MAX_BODY_BYTES";
    /// Connections per reactor still before their upgrade (or between
    /// keep-alive requests); more are answered 503 and closed.
    max_pending_handshakes: usize = 1024, env "PARLEY_MAX_PENDING_HANDSHAKES";
    /// Connections from one address before their upgrade, across the
    /// node (not counted for trusted proxies); more are answered 503.
    max_pending_per_ip: u32 = 64, env "PARLEY_MAX_PENDING_PER_IP";
}

/// Milliseconds of the shutdown timeout left after a drain's window, for
/// the last close handshakes (each lingers at most 3 s; most take one RTT).
pub const DRAIN_MARGIN_MS: u64 = 1_000;

/// A configuration problem, naming the key at fault.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Reads a config file; unknown keys and ill-typed values name the key.
pub fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let key = e.span().and_then(|span| key_at(&text, span.start));
        let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
        ConfigError(format!("{key}{}: {e}", path.display()))
    })
}

/// The key of the `key = value` line holding byte `at`, so an ill-typed
/// value's error starts with its key like every other config error.
fn key_at(text: &str, at: usize) -> Option<&str> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let simple = key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (simple && !key.is_empty()).then_some(key)
}

impl Config {
    /// Reactor threads to start, resolving 0 to the available cores.
    pub fn reactor_count(&self) -> usize {
        match self.reactors {
            0 => available_cores(),
            n => n,
        }
    }

    /// Auth worker threads to start, resolving 0 with [`auth_workers_for`]
    /// the available cores.
    pub fn auth_worker_count(&self) -> usize {
        match self.auth_workers {
            0 => auth_workers_for(available_cores()),
            n => n,
        }
    }

    /// The log level as the `log` crate knows it.
    pub fn level(&self) -> log::LevelFilter {
        self.log_level.parse().unwrap_or(log::LevelFilter::Info)
    }

    /// Checks every value against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.log_level.parse::<log::LevelFilter>().is_err() {
            return Err(ConfigError(format!(
                "log_level: {:?} is not one of off, error, warn, info, \
                 debug, trace",
                self.log_level
            )));
        }
        let u = |v: usize| v as u64;
        let checks: &[(&str, u64, u64, u64)] = &[
            ("reactors", u(self.reactors), 0, 1024),
            ("max_message_bytes", u(self.max_message_bytes), 125, 1 << 30),
            ("max_head_bytes", u(self.max_head_bytes), 256, 1 << 20),
            ("max_headers", u(self.max_headers), 4, 64),
            (
                "handshake_timeout_ms",
                self.handshake_timeout_ms,
                100,
                600_000,
            ),
            ("ping_interval_secs", self.ping_interval_secs, 1, 3600),
            ("ping_timeout_secs", self.ping_timeout_secs, 1, 3600),
            (
                "max_outbound_bytes",
                u(self.max_outbound_bytes),
                4096,
                1 << 32,
            ),
            ("history_size", u(self.history_size), 1, 1_000_000),
            ("history_on_join", u(self.history_on_join), 0, 10_000),
            ("history_page_max", u(self.history_page_max), 1, 10_000),
            ("max_text_bytes", u(self.max_text_bytes), 1, 1 << 20),
            ("max_rooms_per_conn", u(self.max_rooms_per_conn), 1, 10_000),
            ("max_rooms", u(self.max_rooms), 1, 100_000_000),
            ("max_owned_rooms", u(self.max_owned_rooms), 1, 1_000_000),
            ("max_room_members", u(self.max_room_members), 1, 10_000_000),
            (
                "max_history_bytes",
                u(self.max_history_bytes),
                1 << 16,
                1 << 40,
            ),
            ("max_reactor_queue", u(self.max_reactor_queue), 16, 1 << 32),
            (
                "shutdown_timeout_ms",
                self.shutdown_timeout_ms,
                0,
                3_600_000,
            ),
            ("redis_max_pending", u(self.redis_max_pending), 1, 1 << 24),
            (
                "session_ttl_secs",
                self.session_ttl_secs,
                60,
                366 * 24 * 3600,
            ),
            ("auth_workers", u(self.auth_workers), 0, 64),
            ("auth_queue", u(self.auth_queue), 1, 100_000),
            (
                "password_iterations",
                u64::from(self.password_iterations),
                600_000,
                100_000_000,
            ),
            (
                "login_attempts_per_ip",
                u64::from(self.login_attempts_per_ip),
                1,
                1_000_000,
            ),
            (
                "login_attempts_per_user",
                u64::from(self.login_attempts_per_user),
                1,
                1_000_000,
            ),
            ("message_rate", u64::from(self.message_rate), 1, 1_000_000),
            (
                "max_conns_per_user",
                u64::from(self.max_conns_per_user),
                1,
                1_000_000,
            ),
            (
                "max_conns_per_ip",
                u64::from(self.max_conns_per_ip),
                1,
                10_000_000,
            ),
            ("max_body_bytes", u(self.max_body_bytes), 64, 1 << 20),
            (
                "max_pending_per_ip",
                u64::from(self.max_pending_per_ip),
                1,
                1_000_000,
            ),
            (
                "max_pending_handshakes",
                u(self.max_pending_handshakes),
                1,
                1_000_000,
            ),
            ("drain_delay_ms", self.drain_delay_ms, 0, 600_000),
            ("drain_window_ms", self.drain_window_ms, 0, 3_600_000),
            ("canary_interval_ms", self.canary_interval_ms, 0, 3_600_000),
            ("presence_interval_ms", self.presence_interval_ms, 0, 10_000),
        ];
        for &(key, value, min, max) in checks {
            if value < min || value > max {
                return Err(ConfigError(format!(
                    "{key}: {value} is outside the allowed range {min}..={max}"
                )));
            }
        }
        if self.shutdown_timeout_ms < self.drain_delay_ms + self.drain_window_ms + DRAIN_MARGIN_MS {
            return Err(ConfigError(format!(
                "shutdown_timeout_ms: {} leaves no room for the drain: it must \
                 be at least drain_delay_ms + drain_window_ms + {DRAIN_MARGIN_MS} \
                 (for the last closes to finish) = {}",
                self.shutdown_timeout_ms,
                self.drain_delay_ms + self.drain_window_ms + DRAIN_MARGIN_MS
            )));
        }
        if !self.redis.is_empty() && !self.redis.starts_with("redis://") {
            return Err(ConfigError(format!(
                "redis: {:?} is not a redis://HOST:PORT/DB URL",
                self.redis
            )));
        }
        if !self.session_key.is_empty() && decode_hex_key(&self.session_key).is_none() {
            return Err(ConfigError(
                "session_key: must be at least 64 hex digits (32 bytes)".into(),
            ));
        }
        if !self.redis.is_empty() && self.session_key.is_empty() && self.session_key_file.is_empty()
        {
            return Err(ConfigError(
                "session_key: required with redis, so every node accepts every \
                 node's sessions (or set session_key_file)"
                    .into(),
            ));
        }
        self.proxies()?;
        if self.history_on_join > self.history_size {
            return Err(ConfigError(
                "history_on_join: must not exceed history_size".into(),
            ));
        }
        if self.echo && self.max_outbound_bytes < self.max_message_bytes + 16 {
            return Err(ConfigError(
                "max_outbound_bytes: with echo on it must exceed \
                 max_message_bytes, or every large echo is cut off"
                    .into(),
            ));
        }
        if self.max_text_bytes + 1024 > self.max_message_bytes {
            return Err(ConfigError(
                "max_text_bytes: must be at least 1 KiB below \
                 max_message_bytes, to leave room for the JSON around it"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Cores this process may run on (its CPU affinity and cgroup quota
/// included), 1 when that cannot be told.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The default auth worker count on `cores` cores: one fewer than the
/// cores, so a burst of log-ins (each hash a few hundred ms of CPU) leaves
/// a core to the reactors; at least one. On 2 cores, 2 workers raised chat
/// p99 about 6x during a log-in burst, 1 worker kept it under 1 ms
/// (BENCHMARKS.md).
pub fn auth_workers_for(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// A signing key from hex, if it has at least 32 bytes.
pub fn decode_hex_key(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if hex.len() < 64 || hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

impl Config {
    /// The session signing key: configured inline, read from a file, or
    /// `None` when neither is set.
    pub fn session_secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if !self.session_key.is_empty() {
            return Ok(decode_hex_key(&self.session_key));
        }
        if self.session_key_file.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.session_key_file)
            .map_err(|e| ConfigError(format!("session_key_file: {e}")))?;
        decode_hex_key(&text)
            .map(Some)
            .ok_or_else(|| ConfigError("session_key_file: must hold at least 64 hex digits".into()))
    }

    /// `trusted_proxies` as address ranges; a bad entry names the key.
    pub fn proxies(&self) -> Result<TrustedProxies, ConfigError> {
        TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError(format!("trusted_proxies: {e}")))
    }

    /// `allowed_origins` as a list.
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let file: FileSettings =
            toml::from_str("max_text_bytes = 100\nhistory_size = 7\n").unwrap();
        let flags = FlagSettings {
            history_size: Some(9),
            ..Default::default()
        };
        let c = Config::layered(file, flags);
        assert_eq!(c.max_text_bytes, 100);
        assert_eq!(c.history_size, 9);
        assert_eq!(c.ping_interval_secs, 25);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = toml::from_str::<FileSettings>("max_txt_bytes = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_txt_bytes"), "{err}");
    }

    #[test]
    fn an_ill_typed_value_is_named() {
        let path = std::env::temp_dir().join(format!("parley-cfg-{}.toml", std::process::id()));
        std::fs::write(&path, "echo = false\nmax_text_bytes = \"x\"\n").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.starts_with("max_text_bytes: "), "{err}");
    }

    #[test]
    fn echo_needs_an_outbound_cap_above_the_message_limit() {
        let c = Config {
            echo: true,
            max_message_bytes: 1 << 24,
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("max_outbound_bytes:"), "{err}");
    }

    #[test]
    fn the_shutdown_timeout_must_fit_the_drain() {
        let c = Config {
            drain_delay_ms: 5_000,
            drain_window_ms: 15_000,
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("shutdown_timeout_ms:"), "{err}");
    }

    #[test]
    fn auth_workers_leave_a_core_to_the_reactors() {
        let cases = [(0, 1), (1, 1), (2, 1), (3, 2), (8, 7), (64, 63)];
        for (cores, workers) in cases {
            assert_eq!(auth_workers_for(cores), workers, "{cores} cores");
        }
        let d = Config::default();
        assert_eq!(d.auth_workers, 0, "sized by the machine");
        assert_eq!(d.auth_worker_count(), auth_workers_for(available_cores()));
        let fixed = Config {
            auth_workers: 3,
            ..Config::default()
        };
        assert_eq!(fixed.auth_worker_count(), 3);
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let c = Config {
            trusted_proxies: "127.0.0.1, 10.0.0.0/8, fd00::/8".into(),
            ..Config::default()
        };
        c.validate().unwrap();
        let proxies = c.proxies().unwrap();
        assert!(proxies.contains(&"10.200.0.1".parse().unwrap()));
        assert!(!proxies.contains(&"192.0.2.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.1.0.0/8", "proxy.internal"] {
            let c = Config {
                trusted_proxies: bad.into(),
                ..Config::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(err.starts_with("trusted_proxies:"), "{err}");
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn out_of_range_value_is_named() {
        let c = Config {
            max_headers: 1000,
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("max_headers:"), "{err}");
    }

    #[test]
    fn example_config_in_conf_matches_defaults() {
        let text = include_str!("../conf/parley.toml");
        let file: FileSettings = toml::from_str(text).unwrap();
        let c = Config::layered(file, FlagSettings::default());
        let d = Config::default();
        let documented: toml::Table = toml::from_str(text).unwrap();
        let fields = serde_json::to_value(&d).unwrap();
        let fields = fields.as_object().unwrap();
        assert_eq!(documented.len(), fields.len(), "a key is undocumented");
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::to_value(&d).unwrap()
        );
    }
}
