//! Where connections go and what they say when they get there.
//!
//! A [`Target`] is one `ws://` URL resolved once at start. [`Targets`]
//! hands out (target, source address) pairs round-robin, so connections
//! spread evenly over the nodes under test and over loopback source
//! addresses 127.0.0.1..=127.0.0.N: each source address has its own
//! ephemeral port range, so many addresses keep a churn run from running
//! out of ports while closed sockets sit in TIME_WAIT.
//!
//! [`Identity`] is how a client names itself: a guest by `?name=` (the
//! server must allow guests), a user by an `Authorization: Bearer` token,
//! which never goes into the URL, since URLs end up in logs. Where the
//! tokens come from is [`crate::credentials`]'s business.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::http::header::{HeaderValue, AUTHORIZATION};

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as the URL gave it, for the Host header.
    host: String,
    /// Path and query as the URL gave them, without a `name`.
    path: String,
}

/// How a connection identifies itself to the server.
#[derive(Debug, Clone)]
pub enum Identity {
    /// `?name=NAME` on the upgrade request (guest access).
    Guest(String),
    /// A session token, sent as `Authorization: Bearer TOKEN`.
    Bearer(String),
}

impl Target {
    /// Parses `ws://host:port/path?query` and resolves the host.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: host did not resolve"))?;
        Ok(Target {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// `host:port` as the URL gave it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The upgrade request for one connection.
    pub fn request(&self, who: &Identity) -> Result<Request, tungstenite::Error> {
        match who {
            Identity::Guest(name) => {
                let sep = if self.path.contains('?') { '&' } else { '?' };
                let url = format!("ws://{}{}{sep}name={name}", self.host, self.path);
                url.into_client_request()
            }
            Identity::Bearer(token) => {
                let url = format!("ws://{}{}", self.host, self.path);
                let mut request = url.into_client_request()?;
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(tungstenite::http::Error::from)?;
                request.headers_mut().insert(AUTHORIZATION, value);
                Ok(request)
            }
        }
    }
}

pub struct Targets {
    targets: Vec<Target>,
    sources: Vec<IpAddr>,
}

impl Targets {
    /// `source_addrs` loopback source addresses are used for loopback
    /// targets; other targets connect from the default address.
    pub fn new(urls: &[String], source_addrs: u8) -> Result<Targets, String> {
        let targets = urls
            .iter()
            .map(|u| Target::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err("no --url given".into());
        }
        let sources = (1..=source_addrs.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect();
        Ok(Targets { targets, sources })
    }

    /// The target and source address of connection number `n`.
    pub fn pick(&self, n: usize) -> (&Target, Option<IpAddr>) {
        let target = &self.targets[n % self.targets.len()];
        let source = if target.addr.ip().is_loopback() && target.addr.is_ipv4() {
            let i = (n / self.targets.len()) % self.sources.len();
            Some(self.sources[i])
        } else {
            None
        };
        (target, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_the_guest_request() {
        let t = Target::parse("ws://127.0.0.1:9/ws").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9".parse().unwrap());
        let req = t.request(&Identity::Guest("lt-1".into())).unwrap();
        assert_eq!(req.uri().to_string(), "ws://127.0.0.1:9/ws?name=lt-1");
        let t = Target::parse("ws://127.0.0.1:9/ws?x=1").unwrap();
        let req = t.request(&Identity::Guest("a".into())).unwrap();
        assert_eq!(req.uri().query(), Some("x=1&name=a"));
        assert!(Target::parse("wss://127.0.0.1:9/").is_err());
    }

    #[test]
    fn a_bearer_goes_in_a_header_not_the_url() {
        let t = Target::parse("ws://127.0.0.1:9/ws").unwrap();
        let req = t.request(&Identity::Bearer("tok.mac".into())).unwrap();
        assert_eq!(req.uri().to_string(), "ws://127.0.0.1:9/ws");
        let auth = req.headers().get("authorization").unwrap();
        assert_eq!(auth.to_str().unwrap(), "Bearer tok.mac");
        assert!(t.request(&Identity::Bearer("a\nb".into())).is_err());
    }

    #[test]
    fn spreads_over_targets_then_sources() {
        let urls = vec!["ws://127.0.0.1:1/".into(), "ws://127.0.0.1:2/".into()];
        let t = Targets::new(&urls, 3).unwrap();
        let picks: Vec<_> = (0..6).map(|n| t.pick(n)).collect();
        assert_eq!(picks[0].0.addr.port(), 1);
        assert_eq!(picks[1].0.addr.port(), 2);
        assert_eq!(picks[2].1, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(picks[5].1, Some("127.0.0.3".parse().unwrap()));
    }
}
