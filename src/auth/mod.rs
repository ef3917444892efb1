//! Accounts and sessions: who is on the other end of a socket.
//!
//! - `password`: PBKDF2 hashing and constant-time verification;
//! - `token`: HMAC-signed session tokens with expiry;
//! - `store`: users and revoked sessions, in memory or in Redis;
//! - `pool`: the worker threads that do the slow parts (hashing, store
//!   I/O) off the reactors, behind a bounded queue;
//! - `limits`: token buckets and connection counters for abuse limits;
//! - `proxies`: which peers' X-Forwarded-For is believed;
//! - `username`: the case and character rules for account names.
//!
//! [`Auth`] bundles them for the reactors: it identifies a WebSocket
//! upgrade from its cookie or bearer token (a MAC check and a set lookup,
//! cheap enough for a reactor) and checks the Origin.

pub mod limits;
pub mod password;
pub mod pool;
pub mod proxies;
pub mod store;
pub mod token;
pub mod username;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::Request;
use limits::{Counter, KeyedLimiter};
use proxies::TrustedProxies;
use store::{Revocations, UserStore};
use token::{Claims, Signer};

/// The cookie that carries the session token in browsers.
pub const COOKIE: &str = "parley_session";
/// The WebSocket subprotocol clients offer beside `bearer.<token>`; the
/// server selects it, since browsers refuse a handshake that selects none.
pub const SUBPROTOCOL: &str = "parley.v1";
/// Prefix of guest names (`--allow-guests`); `:` is not allowed in user
/// names, so a guest can never pass for a registered user.
pub const GUEST_PREFIX: &str = "guest:";

/// Settings the auth code needs, copied out of the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub allow_guests: bool,
    pub session_ttl_secs: u64,
    pub cookie_secure: bool,
    /// Allowed `Origin` values; empty means "same origin as Host".
    pub allowed_origins: Vec<String>,
    pub password_iterations: u32,
    /// Peers whose X-Forwarded-For names the client.
    pub trusted_proxies: TrustedProxies,
}

pub struct Auth {
    pub settings: Settings,
    pub signer: Signer,
    pub revoked: Arc<Revocations>,
    pub store: Arc<dyn UserStore>,
    pub pool: pool::Pool,
    pub attempts_by_ip: KeyedLimiter<IpAddr>,
    pub attempts_by_user: KeyedLimiter<String>,
    pub conns_by_ip: Counter<IpAddr>,
    pub conns_by_user: Counter<Arc<str>>,
    /// Connections before their upgrade, per address.
    pub pending_by_ip: Counter<IpAddr>,
    /// The process's counters (auth failures, rate-limit hits).
    pub stats: Arc<crate::stats::Stats>,
}

/// Who a WebSocket belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    User(Claims),
    /// Name-only access, with `--allow-guests` only.
    Guest(String),
}

impl Identity {
    /// The name messages carry.
    pub fn name(&self) -> String {
        match self {
            Identity::User(claims) => claims.user.clone(),
            Identity::Guest(name) => format!("{GUEST_PREFIX}{name}"),
        }
    }
}

/// Why an upgrade or API call is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials at all (401).
    Missing,
    /// A token that is forged, expired or revoked (401).
    Invalid,
}

impl Auth {
    /// The valid, unrevoked session a request carries, if any.
    pub fn session(&self, req: &Request) -> Result<Claims, Denied> {
        let token = credentials(req).ok_or(Denied::Missing)?;
        let claims = self
            .signer
            .verify(token, unix_now())
            .ok_or(Denied::Invalid)?;
        if self.revoked.contains(&claims.sid) {
            return Err(Denied::Invalid);
        }
        Ok(claims)
    }

    /// Whether a browser request comes from a page we serve (or from a
    /// non-browser client, which sends no Origin). Cross-site WebSocket
    /// hijacking needs a browser, and browsers always send Origin.
    pub fn origin_allowed(&self, req: &Request) -> bool {
        let Some(origin) = req.origin.as_deref() else {
            return true;
        };
        if self.settings.allowed_origins.is_empty() {
            return same_origin(origin, req.host.as_deref().unwrap_or(""));
        }
        self.settings
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The client's address for per-IP limits: the peer, or what a
    /// trusted proxy says in X-Forwarded-For.
    pub fn client_ip(&self, req: &Request, peer: IpAddr) -> IpAddr {
        client_ip(&self.settings.trusted_proxies, req, peer)
    }

    /// A `Set-Cookie` value carrying `token`.
    pub fn cookie(&self, token: &str) -> String {
        let secure = if self.settings.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.settings.session_ttl_secs
        )
    }

    /// A `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.settings.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// Whether `origin` is a page served from `host`: an `http` or `https`
/// origin (RFC 6454 §6.1: scheme "://" host [":" port]) whose authority is
/// the Host the request was sent to. Any other scheme (a browser
/// extension, `file`, or one made up to match the authority) is another
/// origin, whatever follows it.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    web && !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// The token in a request: the session cookie, an `Authorization: Bearer`
/// header, or a `bearer.<token>` WebSocket subprotocol (for clients that
/// cannot set headers). Never the URL, which ends up in logs.
pub fn credentials(req: &Request) -> Option<&str> {
    if let Some(token) = req.authorization.as_deref().and_then(bearer_token) {
        return Some(token);
    }
    if let Some(token) = req
        .ws_protocols
        .iter()
        .find_map(|p| p.strip_prefix("bearer."))
    {
        return Some(token);
    }
    req.cookie.as_deref()?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

/// The token of an `Authorization: Bearer <token>` value. The scheme name
/// is case-insensitive and may be followed by several spaces (RFC 9110
/// §11.1 and §11.4, formerly RFC 7235 §2.1).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The client's address: `peer`, unless `peer` is a trusted proxy and the
/// request carries a parsable X-Forwarded-For.
pub fn client_ip(trusted: &TrustedProxies, req: &Request, peer: IpAddr) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    req.forwarded_for
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(peer)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str) -> Request {
        let head = format!("GET /ws HTTP/1.1\r\nHost: chat.example:8080\r\n{extra}\r\n");
        let mut parser = crate::http::HeadParser::new();
        let limits = crate::http::Limits {
            max_head_bytes: 4096,
            max_headers: 32,
        };
        parser.parse(head.as_bytes(), &limits).unwrap().unwrap().0
    }

    #[test]
    fn x_forwarded_for_counts_from_trusted_proxies_only() {
        let req = request("X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n");
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let named: IpAddr = "198.51.100.7".parse().unwrap();
        let trusted = TrustedProxies::parse("127.0.0.1").unwrap();
        let nobody = TrustedProxies::default();
        assert_eq!(client_ip(&trusted, &req, proxy), named);
        assert_eq!(client_ip(&nobody, &req, proxy), proxy, "untrusted: ignored");
        let bare = request("");
        assert_eq!(client_ip(&trusted, &bare, proxy), proxy);
        let junk = request("X-Forwarded-For: not-an-ip\r\n");
        assert_eq!(client_ip(&trusted, &junk, proxy), proxy);
    }

    #[test]
    fn proxies_may_be_named_by_range() {
        let req = request("X-Forwarded-For: 198.51.100.7\r\n");
        let named: IpAddr = "198.51.100.7".parse().unwrap();
        let trusted = TrustedProxies::parse("10.0.0.0/8, fd00::/8").unwrap();
        for proxy in ["10.20.30.40", "fd00::5", "::ffff:10.0.0.1"] {
            let proxy: IpAddr = proxy.parse().unwrap();
            assert_eq!(client_ip(&trusted, &req, proxy), named, "{proxy}");
        }
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(&trusted, &req, outside), outside);
    }

    #[test]
    fn same_origin_needs_a_web_scheme_and_the_host() {
        let cases = [
            ("http://chat.example:8080", "chat.example:8080", true),
            ("https://chat.example:8080", "chat.example:8080", true),
            ("HTTPS://Chat.Example:8080", "chat.example:8080", true),
            ("evil://chat.example:8080", "chat.example:8080", false),
            (
                "chrome-extension://chat.example:8080",
                "chat.example:8080",
                false,
            ),
            ("://chat.example:8080", "chat.example:8080", false),
            ("http://chat.example:8081", "chat.example:8080", false),
            ("http://chat.example:8080/", "chat.example:8080", false),
            ("null", "chat.example:8080", false),
            ("http://", "", false),
        ];
        for (origin, host, same) in cases {
            assert_eq!(same_origin(origin, host), same, "{origin} vs {host}");
        }
    }

    #[test]
    fn credentials_come_from_cookie_bearer_or_subprotocol() {
        assert_eq!(
            credentials(&request("Cookie: a=1; parley_session=tok; b=2\r\n")),
            Some("tok")
        );
        for bearer in ["Bearer tok2", "bearer tok2", "BEARER  tok2", "bEaReR tok2 "] {
            let header = format!("Authorization: {bearer}\r\n");
            assert_eq!(credentials(&request(&header)), Some("tok2"), "{bearer}");
        }
        for other in ["Basic tok2", "Bearertok2", "Bearer"] {
            let header = format!("Authorization: {other}\r\n");
            assert_eq!(credentials(&request(&header)), None, "{other}");
        }
        let proto = "Sec-WebSocket-Protocol: parley.v1, bearer.tok3\r\n";
        assert_eq!(credentials(&request(proto)), Some("tok3"));
        assert_eq!(credentials(&request("Cookie: parley_session=\r\n")), None);
        assert_eq!(credentials(&request("")), None);
    }
}
