//! Writing HTTP/1.1 responses into the connection's output buffer.
//!
//! Every response is appended whole to a `Vec<u8>` that the reactor drains
//! as the socket allows, so nothing here can block or fail. Responses always
//! carry their length or have none by definition; Parley never sends a
//! chunked or close-delimited body, which keeps keep-alive framing simple.
//!
//! Header names and values passed in are chosen by the server, never copied
//! from a request, so they are trusted; debug builds still check that none
//! contains CR or LF, which would let a value forge extra header lines.

use std::io::Write;

/// Standard reason phrases (RFC 9110 §15) for the statuses Parley sends;
/// others get "Unknown", which clients ignore anyway.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends a complete response: status line, Content-Length, Content-Type,
/// `Connection: keep-alive`/`close`, each extra header, blank line, then the
/// body unless `head_only` (HEAD request: headers as for GET, no body).
///
/// 1xx, 204 and 304 responses have no body by definition (RFC 9112 §6.3),
/// so for them Content-Length and the body are left out; an empty
/// `content_type` leaves out Content-Type.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) {
    let bodiless = has_no_body(status);
    debug_assert!(!bodiless || body.is_empty(), "{status} cannot carry a body");

    write_status_line(out, status);
    // RFC 9110 §8.6: no Content-Length on 1xx or 204; on HEAD it is the
    // length a GET would have had.
    if !bodiless {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    if !content_type.is_empty() {
        write_header(out, "Content-Type", content_type);
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write_header(out, "Connection", connection);
    write_extra(out, extra);
    out.extend_from_slice(b"\r\n");

    if !bodiless && !head_only {
        out.extend_from_slice(body);
    }
}

/// Plain-text error response with a one-line body
/// "<status> <reason>: <message>\n".
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    extra: &[(&str, &str)],
    keep_alive: bool,
) {
    debug_assert!(!message.contains(['\r', '\n']), "one-line message");
    let body = format!("{status} {}: {message}\n", reason_phrase(status));
    let content_type = "text/plain; charset=utf-8";
    write_response(
        out,
        status,
        content_type,
        extra,
        body.as_bytes(),
        keep_alive,
        false,
    );
}

/// 101 Switching Protocols with Upgrade/Connection/Sec-WebSocket-Accept and
/// any extra headers (RFC 6455 §4.2.2 item 5).
pub fn write_switching_protocols(out: &mut Vec<u8>, accept: &str, extra: &[(&str, &str)]) {
    write_status_line(out, 101);
    write_header(out, "Upgrade", "websocket");
    write_header(out, "Connection", "Upgrade");
    write_header(out, "Sec-WebSocket-Accept", accept);
    write_extra(out, extra);
    out.extend_from_slice(b"\r\n");
}

fn has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

fn write_status_line(out: &mut Vec<u8>, status: u16) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
}

fn write_extra(out: &mut Vec<u8>, extra: &[(&str, &str)]) {
    for (name, value) in extra {
        write_header(out, name, value);
    }
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    debug_assert!(
        !name.contains(['\r', '\n', ':']),
        "bad header name {name:?}"
    );
    debug_assert!(!value.contains(['\r', '\n']), "bad header value for {name}");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn full_response() {
        let mut out = Vec::new();
        let extra = [("Cache-Control", "no-store")];
        write_response(&mut out, 200, "text/plain", &extra, b"hi", true, false);
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\
             Connection: keep-alive\r\nCache-Control: no-store\r\n\r\nhi"
        );
    }

    #[test]
    fn head_response_keeps_length_drops_body() {
        let mut out = Vec::new();
        write_response(&mut out, 200, "text/plain", &[], b"hello", false, true);
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\
             Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn bodiless_statuses_have_no_length() {
        for status in [204, 304] {
            let mut out = Vec::new();
            write_response(&mut out, status, "", &[], b"", true, false);
            let expected = format!(
                "HTTP/1.1 {status} {}\r\nConnection: keep-alive\r\n\r\n",
                reason_phrase(status)
            );
            assert_eq!(text(&out), expected);
        }
    }

    #[test]
    fn error_response() {
        let mut out = Vec::new();
        let extra = [("Sec-WebSocket-Version", "13")];
        write_error(&mut out, 426, "use version 13", &extra, false);
        let body = "426 Upgrade Required: use version 13\n";
        let expected = format!(
            "HTTP/1.1 426 Upgrade Required\r\nContent-Length: {}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(text(&out), expected);
    }

    #[test]
    fn switching_protocols() {
        let mut out = b"kept".to_vec();
        let extra = [("Sec-WebSocket-Protocol", "chat")];
        write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &extra);
        assert_eq!(
            text(&out),
            "keptHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn reason_phrases() {
        let cases = [
            (200, "OK"),
            (400, "Bad Request"),
            (431, "Request Header Fields Too Large"),
            (505, "HTTP Version Not Supported"),
            (599, "Unknown"),
        ];
        for (status, reason) in cases {
            assert_eq!(reason_phrase(status), reason);
        }
    }

    #[test]
    #[should_panic(expected = "bad header value")]
    #[cfg(debug_assertions)]
    fn extra_header_with_newline_is_caught_in_debug() {
        let extra = [("X-Evil", "a\r\nSet-Cookie: x")];
        write_response(&mut Vec::new(), 200, "", &extra, b"", true, false);
    }
}
