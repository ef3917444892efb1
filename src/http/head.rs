//! Finding where a request head ends, then parsing it exactly once.
//!
//! The reactor hands [`HeadParser::parse`] every byte received since the
//! request began, and a slow or hostile client may deliver them one byte per
//! read. Re-running httparse on each read would cost work quadratic in the
//! head size, so the parser only scans for the blank line that ends the head,
//! remembers how far it got, and runs httparse a single time once that line
//! is in the buffer. Turning header lines into a [`Request`] lives in
//! `request`; this file decides where the head is and whether it fits.
//!
//! Line endings follow httparse, which accepts a bare LF wherever CRLF is
//! expected (RFC 9112 §2.2 lets a recipient do so). The head therefore ends
//! at the first LF, optional CR, LF after the request line: "\r\n\r\n",
//! "\n\n", "\r\n\n" and "\n\r\n" all count.
//!
//! Empty lines before the request line are skipped, as RFC 9112 §2.2 asks of
//! a server (some clients send a stray CRLF after a body). They still count
//! towards `max_head_bytes` and are included in `head_len`, so a flood of
//! them is cut off by the same limit as any other oversized head.

use std::fmt;

use httparse::Status;

use super::request::Request;

/// The most header lines one head may carry, whatever [`Limits`] says: the
/// httparse slots live in a stack array of this size (about 2 KiB).
pub const HEADER_CAPACITY: usize = 64;

/// A terminator is at most "\n\r\n"; rescanning this many bytes of the
/// previous buffer catches one that straddles two reads.
const OVERLAP: usize = 3;

/// How much of a request head a connection will buffer and parse.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes from the start of the request through the blank line that ends
    /// the head. A head that has not ended within this many bytes gets 431,
    /// or 414 when even its request line has not.
    pub max_head_bytes: usize,
    /// Header lines allowed; values above [`HEADER_CAPACITY`] act as it.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 8 KiB holds a browser's head with a fair load of cookies; 32 lines
    /// is about twice what a browser sends on a WebSocket handshake.
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_headers: 32,
        }
    }
}

/// Why a request head was refused, with the status to answer it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

impl HttpError {
    pub(crate) const fn bad_request(reason: &'static str) -> Self {
        HttpError {
            status: 400,
            reason,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

const MALFORMED: HttpError = HttpError::bad_request("malformed request head");

const HEAD_TOO_LARGE: HttpError = HttpError {
    status: 431,
    reason: "request head too large",
};

const URI_TOO_LONG: HttpError = HttpError {
    status: 414,
    reason: "request target too long",
};

const TOO_MANY_HEADERS: HttpError = HttpError {
    status: 431,
    reason: "too many header fields",
};

const VERSION_NOT_SUPPORTED: HttpError = HttpError {
    status: 505,
    reason: "only HTTP/1.0 and HTTP/1.1 are supported",
};

/// Incremental search for the end of one request head.
///
/// Holds only how far the search has got; the bytes stay with the caller.
#[derive(Debug, Default)]
pub struct HeadParser {
    /// Where the request line begins, once leading empty lines are skipped.
    start: Option<usize>,
    /// Bytes before this offset have been looked at (less [`OVERLAP`]).
    scanned: usize,
    /// How often httparse ran, so tests can show the work stays linear.
    #[cfg(test)]
    httparse_runs: usize,
}

/// What the bytes before the request line looked like so far.
enum Leading {
    /// Only empty lines up to here; the rest has not arrived.
    NeedMore(usize),
    /// The request line starts here.
    RequestLine(usize),
}

impl HeadParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// `buf` holds every byte received since this request began (it only
    /// grows between calls until a head completes). Ok(None) = need more
    /// bytes. Ok(Some((request, head_len))) = complete; bytes after
    /// head_len belong to whatever follows (a body or WebSocket frames) and
    /// must not be touched.
    ///
    /// After a complete head or an error the parser is ready for a new
    /// request, as if [`reset`](Self::reset) had been called.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(Request, usize)>, HttpError> {
        if buf.len() < self.scanned {
            // The caller broke the "only grows" contract; start over rather
            // than slice past the end.
            self.reset();
        }

        // A terminator ending past the limit is refused anyway, so nothing
        // beyond it needs scanning.
        let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
        let found = self.find_end(window);
        if !matches!(found, Ok(None)) {
            self.reset();
        }

        match found? {
            Some(head) => {
                let request = self.run_httparse(head, limits)?;
                Ok(Some((request, head.len())))
            }
            None if buf.len() >= limits.max_head_bytes => {
                let error = self.overflow(window);
                self.reset();
                Err(error)
            }
            None => Ok(None),
        }
    }

    /// Forgets a partial head, for the next request on a kept-alive
    /// connection or after the caller discarded its buffer.
    pub fn reset(&mut self) {
        self.start = None;
        self.scanned = 0;
    }

    /// Why a head that fills `window` without ending is refused. RFC 9112
    /// §3 has a server answer 414 to a request-target longer than it will
    /// parse: that is the case when the request line itself has not ended
    /// within the limit, after a method and a space. Anything else, long
    /// header lines or bytes that are no request line at all, is 431.
    fn overflow(&self, window: &[u8]) -> HttpError {
        let line = self.start.and_then(|start| window.get(start..));
        let Some(line) = line else {
            return HEAD_TOO_LARGE;
        };
        let method_len = line.iter().take_while(|&&b| is_tchar(b)).count();
        let target_begun = method_len > 0 && line.get(method_len) == Some(&b' ');
        if target_begun && !line.contains(&b'\n') {
            URI_TOO_LONG
        } else {
            HEAD_TOO_LARGE
        }
    }

    /// The head as a prefix of `window`, if its terminator has arrived.
    fn find_end<'b>(&mut self, window: &'b [u8]) -> Result<Option<&'b [u8]>, HttpError> {
        let start = match self.start {
            Some(start) => start,
            None => match skip_empty_lines(window, self.scanned)? {
                Leading::NeedMore(pos) => {
                    self.scanned = pos;
                    return Ok(None);
                }
                Leading::RequestLine(start) => {
                    self.start = Some(start);
                    start
                }
            },
        };

        let from = self.scanned.saturating_sub(OVERLAP).max(start);
        let end = window
            .get(from..)
            .and_then(terminator_end)
            .and_then(|end| window.get(..from + end));
        if end.is_none() {
            self.scanned = window.len();
        }
        Ok(end)
    }

    /// The one httparse pass over a head whose end is already known.
    fn run_httparse(&mut self, head: &[u8], limits: &Limits) -> Result<Request, HttpError> {
        #[cfg(test)]
        {
            self.httparse_runs += 1;
        }

        let mut slots = [httparse::EMPTY_HEADER; HEADER_CAPACITY];
        let allowed = limits.max_headers.min(HEADER_CAPACITY);
        let headers = slots.get_mut(..allowed).unwrap_or_default();
        let mut parsed = httparse::Request::new(headers);

        match parsed.parse(head) {
            // Our terminator and httparse's must agree; anything else means
            // the two disagree about the framing, so refuse it.
            Ok(Status::Complete(len)) if len == head.len() => Request::from_head(&parsed),
            Ok(_) => Err(MALFORMED),
            Err(httparse::Error::TooManyHeaders) => Err(TOO_MANY_HEADERS),
            Err(httparse::Error::Version) => Err(version_error(head)),
            Err(_) => Err(MALFORMED),
        }
    }
}

/// Steps over empty lines from `pos`, matching what httparse skips: LF or
/// CRLF, where a CR followed by anything else is malformed.
fn skip_empty_lines(buf: &[u8], mut pos: usize) -> Result<Leading, HttpError> {
    loop {
        match (buf.get(pos), buf.get(pos + 1)) {
            (Some(b'\n'), _) => pos += 1,
            (Some(b'\r'), Some(b'\n')) => pos += 2,
            (Some(b'\r'), Some(_)) => return Err(MALFORMED),
            (Some(b'\r'), None) | (None, _) => return Ok(Leading::NeedMore(pos)),
            (Some(_), _) => return Ok(Leading::RequestLine(pos)),
        }
    }
}

/// Offset just past the first LF [CR] LF in `bytes`.
fn terminator_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match (bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// A method is a token (RFC 9110 §9.1, §5.6.2).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn is_digit(byte: &u8) -> bool {
    byte.is_ascii_digit()
}

/// httparse reports any version it cannot read the same way; answer 505
/// only when the request line does name some HTTP/x.y (RFC 9110 §15.6.6),
/// and 400 when the version is simply garbage.
fn version_error(head: &[u8]) -> HttpError {
    let line = head
        .split(|&b| b == b'\n')
        .find(|line| !line.is_empty() && *line != b"\r")
        .unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();

    match version.strip_prefix(b"HTTP/") {
        Some([major, b'.', minor]) if is_digit(major) && is_digit(minor) => VERSION_NOT_SUPPORTED,
        _ => MALFORMED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Outcome = Result<Option<(Request, usize)>, HttpError>;

    const LIMITS: Limits = Limits {
        max_head_bytes: 8192,
        max_headers: 32,
    };

    const WS_HANDSHAKE: &[u8] = b"GET /chat?room=a HTTP/1.1\r\n\
        Host: example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// Heads exercising each way a head may end or fail.
    const HEADS: &[&[u8]] = &[
        WS_HANDSHAKE,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"\r\n\r\n\nGET / HTTP/1.0\r\n\r\n",
        b"POST /m HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"\rGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ];

    fn one_shot(bytes: &[u8], limits: &Limits) -> Outcome {
        HeadParser::new().parse(bytes, limits)
    }

    /// Feeds growing prefixes ending at each cut, then the whole input,
    /// stopping at the first answer that is not "need more".
    fn fed(bytes: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
        let mut parser = HeadParser::new();
        for &cut in cuts.iter().chain([&bytes.len()]) {
            match parser.parse(&bytes[..cut], limits) {
                Ok(None) => continue,
                answer => return answer,
            }
        }
        Ok(None)
    }

    fn status(outcome: Outcome) -> u16 {
        outcome.expect_err("expected an error").status
    }

    fn head_len(outcome: Outcome) -> usize {
        outcome.expect("parse error").expect("incomplete").1
    }

    /// A valid head exactly `len` bytes long, padded with one header.
    fn head_of_len(len: usize) -> Vec<u8> {
        let bare = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n".len();
        let pad = "p".repeat(len - bare);
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
    }

    fn head_with_headers(count: usize) -> Vec<u8> {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..count {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    #[test]
    fn split_at_every_offset_agrees_with_one_shot() {
        for head in HEADS {
            let whole = one_shot(head, &LIMITS);
            for cut in 0..=head.len() {
                assert_eq!(fed(head, &[cut], &LIMITS), whole, "{head:?} cut {cut}");
            }
            let every: Vec<usize> = (0..=head.len()).collect();
            assert_eq!(fed(head, &every, &LIMITS), whole, "{head:?} bytewise");
        }
    }

    #[test]
    fn head_endings_and_errors() {
        let cases: &[(&[u8], Result<usize, u16>)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(27)),
            (b"GET / HTTP/1.1\nHost: a\n\n", Ok(24)),
            (b"GET / HTTP/1.1\r\nHost: a\n\r\n", Ok(26)),
            (b"\r\n\nGET / HTTP/1.0\r\n\r\n", Ok(21)),
            (b"GET / HTTP/2.0\r\n\r\n", Err(505)),
            (b"GET / HTTP/1.2\r\n\r\n", Err(505)),
            (b"GET / HTTQ/1.1\r\n\r\n", Err(400)),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Err(400)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", Err(400)),
            (b"GET /\r\n\r\n", Err(400)),
            (b"\rGET / HTTP/1.1\r\n\r\n", Err(400)),
        ];
        for (head, expected) in cases {
            let got = one_shot(head, &LIMITS).map(|done| done.expect("complete").1);
            assert_eq!(got.map_err(|e| e.status), *expected, "{head:?}");
        }
    }

    #[test]
    fn incomplete_head_needs_more() {
        for head in [&b""[..], b"\r\n", b"\r", b"GET / HTTP/1.1\r\nHost: a\r\n\r"] {
            assert_eq!(one_shot(head, &LIMITS), Ok(None), "{head:?}");
        }
    }

    #[test]
    fn head_size_limit_is_inclusive() {
        let limits = Limits {
            max_head_bytes: 100,
            ..LIMITS
        };
        assert_eq!(head_len(one_shot(&head_of_len(100), &limits)), 100);
        assert_eq!(status(one_shot(&head_of_len(101), &limits)), 431);

        let every: Vec<usize> = (0..=101).collect();
        assert_eq!(status(fed(&head_of_len(101), &every, &limits)), 431);
    }

    #[test]
    fn oversized_head_is_refused_without_waiting() {
        let limits = Limits {
            max_head_bytes: 100,
            ..LIMITS
        };
        let partial = &head_of_len(200)[..100];
        assert_eq!(status(one_shot(partial, &limits)), 431);
        assert_eq!(one_shot(&partial[..99], &limits), Ok(None));

        let blank_lines = b"\r\n".repeat(50);
        assert_eq!(status(one_shot(&blank_lines, &limits)), 431);
    }

    #[test]
    fn a_request_line_past_the_limit_is_414() {
        let limits = Limits {
            max_head_bytes: 100,
            ..LIMITS
        };
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "t".repeat(200));
        let long_target = long_target.as_bytes();
        assert_eq!(status(one_shot(long_target, &limits)), 414);
        let every: Vec<usize> = (0..=long_target.len()).collect();
        assert_eq!(status(fed(long_target, &every, &limits)), 414);
        let blank_first = [b"\r\n\r\n".as_slice(), long_target].concat();
        assert_eq!(status(one_shot(&blank_first, &limits)), 414);

        // The request line fits and a header does not: 431, as before.
        assert_eq!(status(one_shot(&head_of_len(200), &limits)), 431);
        // No method and space first: not a request line worth naming.
        let junk = "x".repeat(200);
        assert_eq!(status(one_shot(junk.as_bytes(), &limits)), 431);
        let no_method = format!(" /{}", "t".repeat(200));
        assert_eq!(status(one_shot(no_method.as_bytes(), &limits)), 431);
        // A line that ends exactly at the limit is no longer too long.
        let line = format!("GET /{} HTTP/1.1\n", "t".repeat(85));
        assert_eq!(line.len(), 100);
        assert_eq!(status(one_shot(line.as_bytes(), &limits)), 431);
    }

    #[test]
    fn header_count_limit_is_inclusive() {
        let limits = Limits {
            max_headers: 10,
            ..LIMITS
        };
        assert!(one_shot(&head_with_headers(10), &limits).is_ok());
        assert_eq!(status(one_shot(&head_with_headers(11), &limits)), 431);
    }

    #[test]
    fn header_count_limit_is_capped_by_capacity() {
        let limits = Limits {
            max_headers: 1000,
            ..LIMITS
        };
        let at_cap = head_with_headers(HEADER_CAPACITY);
        assert!(one_shot(&at_cap, &limits).is_ok());
        let over = head_with_headers(HEADER_CAPACITY + 1);
        assert_eq!(status(one_shot(&over, &limits)), 431);
    }

    #[test]
    fn bytes_after_the_head_are_left_alone() {
        // A masked WebSocket text frame, plus bytes that look like a head end.
        let frame = [0x81, 0x85, 1, 2, 3, 4, b'\r', b'\n', b'\r', b'\n', 0];
        let mut buf = WS_HANDSHAKE.to_vec();
        buf.extend_from_slice(&frame);
        let before = buf.clone();

        let (request, len) = one_shot(&buf, &LIMITS).unwrap().unwrap();
        assert_eq!(len, WS_HANDSHAKE.len());
        assert_eq!(&buf[len..], &frame);
        assert_eq!(buf, before);
        assert_eq!(request.path, "/chat");
    }

    #[test]
    fn httparse_runs_once_for_a_head_fed_bytewise() {
        let head = head_with_headers(60);
        let limits = Limits {
            max_headers: HEADER_CAPACITY,
            ..LIMITS
        };
        let mut parser = HeadParser::new();
        let mut done = None;
        for end in 1..=head.len() {
            done = parser.parse(&head[..end], &limits).unwrap();
            if done.is_some() {
                assert_eq!(end, head.len());
            }
        }
        assert_eq!(done.map(|(_, len)| len), Some(head.len()));
        assert_eq!(parser.httparse_runs, 1);
    }

    #[test]
    fn reset_forgets_a_partial_head() {
        let mut parser = HeadParser::new();
        assert_eq!(parser.parse(b"\r\nPOST /x HTTP/1.1\r\n", &LIMITS), Ok(None));
        parser.reset();
        let head = b"GET /y HTTP/1.0\r\n\r\n";
        let (request, len) = parser.parse(head, &LIMITS).unwrap().unwrap();
        assert_eq!((request.path.as_str(), len), ("/y", head.len()));
    }

    #[test]
    fn shrinking_buffer_restarts_instead_of_panicking() {
        let mut parser = HeadParser::new();
        let long = b"GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaa";
        assert_eq!(parser.parse(long, &LIMITS), Ok(None));
        let short = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(head_len(parser.parse(short, &LIMITS)), short.len());
    }

    /// Plausible heads: mixed line endings, optional leading blank lines and
    /// whatever follows the head.
    fn head_strategy() -> impl Strategy<Value = Vec<u8>> {
        let line_end = prop_oneof![Just("\r\n"), Just("\n")];
        let header = ("[A-Za-z-]{1,12}", "[ -~]{0,20}", line_end.clone());
        (
            prop::collection::vec(line_end.clone(), 0..3),
            prop_oneof![Just("GET"), Just("POST"), Just("get")],
            "/[a-z0-9/?=&%+]{0,20}",
            prop_oneof![Just("1.1"), Just("1.0"), Just("2.0")],
            line_end.clone(),
            prop::collection::vec(header, 0..8),
            line_end,
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(
                |(blank, method, target, version, eol, headers, end, tail)| {
                    let mut out = blank.concat().into_bytes();
                    out.extend(format!("{method} {target} HTTP/{version}{eol}").bytes());
                    for (name, value, eol) in headers {
                        out.extend(format!("{name}: {value}{eol}").bytes());
                    }
                    out.extend(end.bytes());
                    out.extend(tail);
                    out
                },
            )
    }

    fn sorted_cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(0..=len, 0..6).prop_map(|mut cuts| {
            cuts.sort_unstable();
            cuts
        })
    }

    proptest! {
        #[test]
        fn random_splits_agree_with_one_shot(
            (head, cuts) in head_strategy()
                .prop_flat_map(|h| { let n = h.len(); (Just(h), sorted_cuts(n)) }),
            max_head_bytes in 20usize..300,
        ) {
            let limits = Limits { max_head_bytes, max_headers: 6 };
            prop_assert_eq!(fed(&head, &cuts, &limits), one_shot(&head, &limits));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            (bytes, cuts) in prop::collection::vec(any::<u8>(), 0..512)
                .prop_flat_map(|b| { let n = b.len(); (Just(b), sorted_cuts(n)) }),
            max_head_bytes in 0usize..600,
            max_headers in 0usize..80,
        ) {
            let limits = Limits { max_head_bytes, max_headers };
            let whole = one_shot(&bytes, &limits);
            if let Ok(Some((_, len))) = &whole {
                prop_assert!(*len <= bytes.len().min(max_head_bytes));
            }
            prop_assert_eq!(fed(&bytes, &cuts, &limits), whole);
        }
    }
}
