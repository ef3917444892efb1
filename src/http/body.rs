//! How long a request body is, decided from the head before any of it is
//! read, and why a body is refused.
//!
//! Parley's only bodies are small JSON documents sent to the account API,
//! whose clients all know the length up front, so a chunked body is
//! refused rather than decoded (411) and a length over the configured cap
//! is refused before anything is buffered for it (413). The refusal knows
//! its status and, for JSON routes, the stable error code; the router picks
//! the body format, since it knows which route the request was for.

use std::fmt;

use super::request::Request;

/// A body the server will not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// `Transfer-Encoding: chunked`: no length known up front.
    Chunked,
    /// A Content-Length above the limit (or beyond `usize`).
    TooLarge,
}

impl BodyError {
    /// RFC 9110 §15.5.12 (411) and §15.5.14 (413).
    pub fn status(self) -> u16 {
        match self {
            BodyError::Chunked => 411,
            BodyError::TooLarge => 413,
        }
    }

    /// One line for people.
    pub fn reason(self) -> &'static str {
        match self {
            BodyError::Chunked => "send a Content-Length",
            BodyError::TooLarge => "request body too large",
        }
    }

    /// The stable code an API error body carries.
    pub fn code(self) -> &'static str {
        match self {
            BodyError::Chunked => "length_required",
            BodyError::TooLarge => "body_too_large",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

impl std::error::Error for BodyError {}

/// Bytes of body that follow `req`'s head: its Content-Length, 0 without
/// one, or the reason it will not be read when that exceeds `max`.
pub fn body_len(req: &Request, max: usize) -> Result<usize, BodyError> {
    if req.chunked {
        return Err(BodyError::Chunked);
    }
    let len = req.content_length.unwrap_or(0);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(BodyError::TooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadParser, Limits};

    fn request(headers: &str) -> Request {
        let head = format!("POST /api/login HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        let parsed = HeadParser::new().parse(head.as_bytes(), &Limits::default());
        parsed.unwrap().unwrap().0
    }

    #[test]
    fn lengths_within_the_limit_are_read() {
        let cases: &[(&str, Result<usize, BodyError>)] = &[
            ("", Ok(0)),
            ("Content-Length: 0\r\n", Ok(0)),
            ("Content-Length: 100\r\n", Ok(100)),
            ("Content-Length: 101\r\n", Err(BodyError::TooLarge)),
            (
                "Content-Length: 18446744073709551615\r\n",
                Err(BodyError::TooLarge),
            ),
            ("Transfer-Encoding: chunked\r\n", Err(BodyError::Chunked)),
        ];
        for (headers, want) in cases {
            assert_eq!(body_len(&request(headers), 100), *want, "{headers:?}");
        }
    }

    #[test]
    fn refusals_know_their_status_and_code() {
        assert_eq!(
            (BodyError::Chunked.status(), BodyError::Chunked.code()),
            (411, "length_required")
        );
        assert_eq!(
            (BodyError::TooLarge.status(), BodyError::TooLarge.code()),
            (413, "body_too_large")
        );
    }
}
