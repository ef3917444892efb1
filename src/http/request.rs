//! The parts of a request head that Parley acts on, owned.
//!
//! httparse hands back slices borrowed from the read buffer; the reactor
//! needs to drop or reuse that buffer while the request is still being
//! served, so everything kept is copied into a [`Request`] here. Only the
//! fields the server uses are kept; any other header is ignored.
//!
//! This is also where header lines that disagree are refused. Framing
//! headers (Content-Length, Transfer-Encoding) and the single-valued fields
//! a handshake or login depends on must be unambiguous, because a proxy in
//! front of us may have read them differently (request smuggling). List
//! headers (Connection, Upgrade, Sec-WebSocket-Protocol) combine across
//! lines as RFC 9110 §5.3 says they may.

use super::head::HttpError;

pub use super::query::query_param;

/// Request methods the server distinguishes; the rest are `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 §9.1), so "get" is `Other`.
    fn from_token(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// One parsed request head, free of borrowed data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Request-target path without the query. For an absolute-form target
    /// this is the path part; for "*" or authority-form, the target itself.
    pub path: String,
    /// Raw query without '?', "" if none.
    pub query: String,
    /// 0 or 1.
    pub minor_version: u8,
    /// HTTP/1.1 default true unless Connection: close; 1.0 only with
    /// Connection: keep-alive.
    pub keep_alive: bool,
    pub content_length: Option<u64>,
    /// Transfer-Encoding is exactly "chunked".
    pub chunked: bool,
    /// The Host header, or the authority of an absolute-form target.
    pub host: Option<String>,
    pub origin: Option<String>,
    /// Upgrade lists "websocket" (case-insensitive) on an HTTP/1.1 request.
    pub upgrade_websocket: bool,
    /// Connection lists "upgrade" (case-insensitive).
    pub connection_upgrade: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    /// Sec-WebSocket-Protocol tokens, in order, from every such line.
    pub ws_protocols: Vec<String>,
    /// Several Cookie lines are joined with "; ".
    pub cookie: Option<String>,
    pub authorization: Option<String>,
    /// The last entry of X-Forwarded-For, as sent.
    pub forwarded_for: Option<String>,
}

/// Connection options seen so far across all Connection lines.
#[derive(Default)]
struct ConnectionOptions {
    close: bool,
    keep_alive: bool,
}

/// The framing headers, checked together once every line is read.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    /// Transfer codings listed, across all lines.
    codings: usize,
    last_is_chunked: bool,
}

impl Request {
    /// Copies what the server needs out of a completely parsed head.
    pub(crate) fn from_head(head: &httparse::Request<'_, '_>) -> Result<Request, HttpError> {
        let (Some(method), Some(target), Some(minor_version)) =
            (head.method, head.path, head.version)
        else {
            return Err(HttpError::bad_request("incomplete request line"));
        };

        let target = Target::split(target);
        let mut request = Request {
            method: Method::from_token(method),
            path: target.path.to_owned(),
            query: target.query.to_owned(),
            minor_version,
            keep_alive: false,
            content_length: None,
            chunked: false,
            host: None,
            origin: None,
            upgrade_websocket: false,
            connection_upgrade: false,
            ws_key: None,
            ws_version: None,
            ws_protocols: Vec::new(),
            cookie: None,
            authorization: None,
            forwarded_for: None,
        };

        let mut connection = ConnectionOptions::default();
        let mut framing = Framing::default();
        for header in head.headers.iter() {
            let value = field_text(header.value)?;
            request.absorb(header.name, value, &mut connection, &mut framing)?;
        }

        request.finish(target.authority, connection, framing)?;
        Ok(request)
    }

    /// Folds one header line into the request.
    fn absorb(
        &mut self,
        name: &str,
        value: &str,
        connection: &mut ConnectionOptions,
        framing: &mut Framing,
    ) -> Result<(), HttpError> {
        let is = |known: &str| name.eq_ignore_ascii_case(known);

        if is("host") {
            // RFC 9112 §3.2: more than one Host line is a 400.
            set_once(&mut self.host, value, "repeated Host")?;
        } else if is("connection") {
            for option in tokens(value) {
                let is_option = |known: &str| option.eq_ignore_ascii_case(known);
                connection.close |= is_option("close");
                connection.keep_alive |= is_option("keep-alive");
                self.connection_upgrade |= is_option("upgrade");
            }
        } else if is("upgrade") {
            let websocket = |p: &str| p.eq_ignore_ascii_case("websocket");
            self.upgrade_websocket |= tokens(value).any(websocket);
        } else if is("content-length") {
            framing.add_content_length(value)?;
        } else if is("transfer-encoding") {
            framing.add_codings(value)?;
        } else if is("origin") {
            set_once(&mut self.origin, value, "repeated Origin")?;
        } else if is("sec-websocket-key") {
            set_once(&mut self.ws_key, value, "repeated Sec-WebSocket-Key")?;
        } else if is("sec-websocket-version") {
            set_once(
                &mut self.ws_version,
                value,
                "repeated Sec-WebSocket-Version",
            )?;
        } else if is("sec-websocket-protocol") {
            self.ws_protocols.extend(tokens(value).map(str::to_owned));
        } else if is("cookie") {
            append_cookie(&mut self.cookie, value);
        } else if is("authorization") {
            set_once(&mut self.authorization, value, "repeated Authorization")?;
        } else if is("x-forwarded-for") {
            // Several lines form one list; the last entry is the address
            // the nearest proxy saw (trusted only from a trusted proxy).
            if let Some(last) = value.rsplit(',').next().map(str::trim) {
                self.forwarded_for = Some(last.to_owned());
            }
        }
        Ok(())
    }

    /// Applies the rules that need every header line at once.
    fn finish(
        &mut self,
        authority: Option<&str>,
        connection: ConnectionOptions,
        framing: Framing,
    ) -> Result<(), HttpError> {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
        if self.minor_version == 1 && self.host.is_none() {
            return Err(HttpError::bad_request("missing Host"));
        }
        // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
        if let Some(authority) = authority {
            self.host = Some(authority.to_owned());
        }

        // RFC 9112 §9.3: 1.1 persists unless closed; 1.0 only when asked.
        let persistent_by_default = self.minor_version == 1;
        self.keep_alive = !connection.close && (persistent_by_default || connection.keep_alive);

        // RFC 9110 §7.8: an Upgrade field in an HTTP/1.0 request is ignored.
        if self.minor_version == 0 {
            self.upgrade_websocket = false;
        }

        self.chunked = framing.is_chunked(self.minor_version)?;
        self.content_length = framing.content_length;
        Ok(())
    }
}

impl Framing {
    /// RFC 9110 §8.6 allows a list of identical lengths ("5, 5") to count as
    /// one; differing values or anything but digits is a 400.
    fn add_content_length(&mut self, value: &str) -> Result<(), HttpError> {
        const BAD: HttpError = HttpError::bad_request("invalid Content-Length");

        for item in value.split(',').map(trim_ows) {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BAD);
            }
            let length: u64 = item.parse().map_err(|_| BAD)?;
            if self.content_length.is_some_and(|seen| seen != length) {
                return Err(HttpError::bad_request("conflicting Content-Length"));
            }
            self.content_length = Some(length);
        }
        Ok(())
    }

    fn add_codings(&mut self, value: &str) -> Result<(), HttpError> {
        let mut listed = false;
        for coding in tokens(value) {
            listed = true;
            self.codings += 1;
            self.last_is_chunked = coding.eq_ignore_ascii_case("chunked");
        }
        if !listed {
            return Err(HttpError::bad_request("empty Transfer-Encoding"));
        }
        Ok(())
    }

    /// Whether the body is chunked, refusing every framing a proxy could
    /// read differently from us.
    fn is_chunked(&self, minor_version: u8) -> Result<bool, HttpError> {
        if self.codings == 0 {
            return Ok(false);
        }
        // RFC 9112 §6.1: a sender MUST NOT send both, and Transfer-Encoding
        // in an HTTP/1.0 message means the framing is faulty.
        if self.content_length.is_some() {
            return Err(HttpError::bad_request(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if minor_version == 0 {
            return Err(HttpError::bad_request("Transfer-Encoding in HTTP/1.0"));
        }
        // RFC 9112 §6.3: a request whose final coding is not chunked has no
        // reliable length and MUST get 400.
        if !self.last_is_chunked {
            return Err(HttpError::bad_request("final transfer coding not chunked"));
        }
        // RFC 9112 §6.1: codings we cannot undo get 501.
        if self.codings > 1 {
            return Err(HttpError {
                status: 501,
                reason: "unsupported transfer coding",
            });
        }
        Ok(true)
    }
}

/// A request-target cut into the pieces the server keeps.
struct Target<'a> {
    authority: Option<&'a str>,
    path: &'a str,
    query: &'a str,
}

impl<'a> Target<'a> {
    /// Origin-form ("/p?q") is the usual case; absolute-form
    /// ("http://h/p?q") MUST be accepted too (RFC 9112 §3.2.2). Asterisk
    /// and authority forms have no query and stay whole.
    fn split(target: &'a str) -> Self {
        let (authority, rest) = match strip_scheme(target) {
            Some(after) => {
                let end = after.find(['/', '?']).unwrap_or(after.len());
                let (authority, rest) = after.split_at(end);
                (Some(authority), rest)
            }
            None => (None, target),
        };

        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = if authority.is_some() && path.is_empty() {
            "/"
        } else {
            path
        };
        Target {
            authority,
            path,
            query,
        }
    }
}

/// The target after "http://" or "https://" (schemes are case-insensitive).
fn strip_scheme(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    let is = |name: &str| scheme.eq_ignore_ascii_case(name);
    (is("http") || is("https")).then_some(rest)
}

/// A header value as text with optional whitespace trimmed; every field we
/// look at is ASCII or UTF-8 in practice, so other bytes are a 400.
fn field_text(value: &[u8]) -> Result<&str, HttpError> {
    std::str::from_utf8(value)
        .map(trim_ows)
        .map_err(|_| HttpError::bad_request("header value is not UTF-8"))
}

/// Trims OWS, which RFC 9110 §5.6.3 defines as spaces and tabs.
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// Elements of a comma-separated list, skipping empty ones (RFC 9110 §5.6.1).
fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(trim_ows).filter(|t| !t.is_empty())
}

fn set_once(
    slot: &mut Option<String>,
    value: &str,
    repeated: &'static str,
) -> Result<(), HttpError> {
    if slot.is_some() {
        return Err(HttpError::bad_request(repeated));
    }
    *slot = Some(value.to_owned());
    Ok(())
}

/// RFC 6265 §5.4 has a client send one Cookie line; if several come, they
/// are read as one list.
fn append_cookie(cookie: &mut Option<String>, value: &str) {
    match cookie {
        Some(joined) => {
            joined.push_str("; ");
            joined.push_str(value);
        }
        None => *cookie = Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{HeadParser, Limits};

    fn parse(head: &str) -> Result<Request, HttpError> {
        let (request, _) = HeadParser::new()
            .parse(head.as_bytes(), &Limits::default())?
            .expect("complete head");
        Ok(request)
    }

    /// A head with the given request line and header lines.
    fn head(line: &str, headers: &[&str]) -> String {
        let mut head = format!("{line}\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head
    }

    fn get11(headers: &[&str]) -> Result<Request, HttpError> {
        let mut all = vec!["Host: h"];
        all.extend_from_slice(headers);
        parse(&head("GET / HTTP/1.1", &all))
    }

    #[test]
    fn request_line_pieces() {
        let cases = [
            ("GET /a/b?x=1&y HTTP/1.1", Method::Get, "/a/b", "x=1&y"),
            ("HEAD / HTTP/1.1", Method::Head, "/", ""),
            ("POST /p? HTTP/1.1", Method::Post, "/p", ""),
            ("PUT /p HTTP/1.1", Method::Put, "/p", ""),
            ("DELETE /p HTTP/1.1", Method::Delete, "/p", ""),
            ("OPTIONS * HTTP/1.1", Method::Options, "*", ""),
            ("PATCH /p HTTP/1.1", Method::Patch, "/p", ""),
            ("get /p HTTP/1.1", Method::Other, "/p", ""),
            ("CONNECT h:443 HTTP/1.1", Method::Other, "h:443", ""),
            ("GET http://other:8/x?q HTTP/1.1", Method::Get, "/x", "q"),
            ("GET HTTP://other?q HTTP/1.1", Method::Get, "/", "q"),
        ];
        for (line, method, path, query) in cases {
            let request = parse(&head(line, &["Host: h"])).unwrap();
            assert_eq!(request.method, method, "{line}");
            assert_eq!(
                (request.path.as_str(), request.query.as_str()),
                (path, query)
            );
        }
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let request = parse(&head("GET http://other:8/x HTTP/1.1", &["Host: h"])).unwrap();
        assert_eq!(request.host.as_deref(), Some("other:8"));
    }

    #[test]
    fn keep_alive_rules() {
        let cases = [
            ("HTTP/1.1", None, true),
            ("HTTP/1.1", Some("Connection: close"), false),
            ("HTTP/1.1", Some("Connection: Keep-Alive"), true),
            ("HTTP/1.1", Some("Connection: upgrade, CLOSE"), false),
            ("HTTP/1.0", None, false),
            ("HTTP/1.0", Some("Connection: keep-alive"), true),
            ("HTTP/1.0", Some("Connection: Keep-Alive, close"), false),
            ("HTTP/1.0", Some("Connection: close"), false),
        ];
        for (version, connection, keep_alive) in cases {
            let mut headers = vec!["Host: h"];
            headers.extend(connection);
            let request = parse(&head(&format!("GET / {version}"), &headers)).unwrap();
            assert_eq!(request.keep_alive, keep_alive, "{version} {connection:?}");
        }
    }

    #[test]
    fn list_headers_combine_across_lines() {
        let request = get11(&[
            "connection: keep-alive",
            "CONNECTION: Upgrade",
            "Upgrade: h2c",
            "upgrade: WebSocket",
            "Sec-WebSocket-Protocol: chat, , superchat",
            "sec-websocket-protocol: v2.chat",
        ])
        .unwrap();
        assert!(request.connection_upgrade && request.upgrade_websocket);
        assert_eq!(request.ws_protocols, ["chat", "superchat", "v2.chat"]);
    }

    #[test]
    fn upgrade_is_ignored_in_http_1_0() {
        let line = "GET / HTTP/1.0";
        let request = parse(&head(line, &["Upgrade: websocket"])).unwrap();
        assert!(!request.upgrade_websocket);
    }

    #[test]
    fn kept_fields_are_copied_and_trimmed() {
        let request = get11(&[
            "Origin: \thttps://o.example ",
            "Sec-WebSocket-Key:  k==",
            "Sec-WebSocket-Version: 13",
            "Cookie: a=1",
            "Cookie: b=2",
            "Authorization: Bearer t",
            "Content-Length: 5, 5",
            "Content-Length: 5",
        ])
        .unwrap();
        assert_eq!(request.host.as_deref(), Some("h"));
        assert_eq!(request.origin.as_deref(), Some("https://o.example"));
        assert_eq!(request.ws_key.as_deref(), Some("k=="));
        assert_eq!(request.ws_version.as_deref(), Some("13"));
        assert_eq!(request.cookie.as_deref(), Some("a=1; b=2"));
        assert_eq!(request.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(request.content_length, Some(5));
        assert!(!request.chunked);
    }

    #[test]
    fn chunked_framing() {
        let request = get11(&["Transfer-Encoding: Chunked"]).unwrap();
        assert!(request.chunked);
        assert_eq!(request.content_length, None);
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        let cases: &[(&[&str], u16)] = &[
            (&["Sec-WebSocket-Key: a", "Sec-WebSocket-Key: a"], 400),
            (
                &["Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13"],
                400,
            ),
            (&["Origin: a", "Origin: b"], 400),
            (&["Authorization: a", "Authorization: b"], 400),
            (&["Host: again"], 400),
            (&["Content-Length: 5", "Content-Length: 6"], 400),
            (&["Content-Length: 5, 6"], 400),
            (&["Content-Length: +5"], 400),
            (&["Content-Length: "], 400),
            (&["Content-Length: 99999999999999999999999"], 400),
            (&["Content-Length: 3", "Transfer-Encoding: chunked"], 400),
            (&["Transfer-Encoding: chunked, gzip"], 400),
            (&["Transfer-Encoding: ,"], 400),
            (
                &["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
                501,
            ),
        ];
        for (headers, status) in cases {
            let error = get11(headers).expect_err("should be refused");
            assert_eq!(error.status, *status, "{headers:?}");
        }
    }

    #[test]
    fn http_1_1_needs_exactly_one_host() {
        assert_eq!(parse(&head("GET / HTTP/1.1", &[])).unwrap_err().status, 400);
        assert_eq!(parse(&head("GET / HTTP/1.0", &[])).unwrap().host, None);
    }

    #[test]
    fn transfer_encoding_in_http_1_0_is_refused() {
        let head = head("POST / HTTP/1.0", &["Transfer-Encoding: chunked"]);
        assert_eq!(parse(&head).unwrap_err().status, 400);
    }

    #[test]
    fn non_utf8_values_are_refused() {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: \xff\r\n\r\n".to_vec();
        let mut parser = HeadParser::new();
        let error = parser.parse(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(error.status, 400);

        // Valid UTF-8 beyond ASCII is kept as it is.
        bytes = "GET / HTTP/1.1\r\nHost: h\r\nCookie: n=é\r\n\r\n".into();
        let (request, _) = parser.parse(&bytes, &Limits::default()).unwrap().unwrap();
        assert_eq!(request.cookie.as_deref(), Some("n=é"));
    }
}
