//! Checking a WebSocket opening handshake and computing its answer.
//!
//! RFC 6455 §4.2.1 lists what a server must find in the client's request
//! before it may switch protocols; [`validate`] checks each item against an
//! already parsed [`Request`] and returns the Sec-WebSocket-Accept value
//! that proves to the client we read its key. Writing the 101 response is
//! `response`'s job, and choosing a subprotocol or checking Origin is the
//! application's: neither happens here.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::digest;

use super::request::{Method, Request};

/// Fixed by RFC 6455 §1.3; appended to the key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this server speaks (RFC 6455 §4.1).
const SUPPORTED_VERSION: &str = "13";

/// Base64 of a 16-byte nonce is always 24 characters with "==" padding;
/// checking the length first avoids decoding anything longer.
const ENCODED_KEY_LEN: usize = 24;
const DECODED_KEY_LEN: usize = 16;

/// Why a handshake was refused, with the status to answer it with.
///
/// On 426 the caller adds `Sec-WebSocket-Version: 13` to the response, so
/// the client knows which version to retry with (RFC 6455 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeError {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad_request(reason: &'static str) -> UpgradeError {
    UpgradeError {
        status: 400,
        reason,
    }
}

/// Validates a WebSocket opening handshake per RFC 6455 §4.2.1 and returns
/// the Sec-WebSocket-Accept value. GET and HTTP/1.1 required (else 400),
/// Host required (400), Upgrade must list websocket (400), Connection must
/// list upgrade (400), Sec-WebSocket-Version must be exactly 13 — otherwise
/// 426 (the caller then adds `Sec-WebSocket-Version: 13`),
/// Sec-WebSocket-Key must base64-decode to exactly 16 bytes (400).
pub fn validate(req: &Request) -> Result<String, UpgradeError> {
    // §4.2.1 item 1: an HTTP/1.1 or higher GET request.
    if req.method != Method::Get || req.minor_version != 1 {
        return Err(bad_request("WebSocket handshake must be an HTTP/1.1 GET"));
    }
    // §4.2.1 item 2: a Host header field naming the server.
    if req.host.as_deref().is_none_or(str::is_empty) {
        return Err(bad_request("WebSocket handshake without Host"));
    }
    // §4.2.1 item 3: Upgrade includes "websocket", case-insensitively.
    if !req.upgrade_websocket {
        return Err(bad_request("Upgrade does not list websocket"));
    }
    // §4.2.1 item 4: Connection includes "Upgrade", case-insensitively.
    if !req.connection_upgrade {
        return Err(bad_request("Connection does not list upgrade"));
    }
    // §4.2.1 item 6 and §4.4: any version but 13 is answered with 426 and
    // the versions we do speak.
    if req.ws_version.as_deref() != Some(SUPPORTED_VERSION) {
        return Err(UpgradeError {
            status: 426,
            reason: "unsupported Sec-WebSocket-Version",
        });
    }
    // §4.2.1 item 5: the key is base64 of exactly 16 bytes.
    let key = req.ws_key.as_deref().unwrap_or_default();
    if !is_valid_key(key) {
        return Err(bad_request("invalid Sec-WebSocket-Key"));
    }

    Ok(accept_key(key))
}

fn is_valid_key(key: &str) -> bool {
    key.len() == ENCODED_KEY_LEN
        && STANDARD
            .decode(key)
            .is_ok_and(|nonce| nonce.len() == DECODED_KEY_LEN)
}

/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) using
/// ring's SHA-1 (RFC 6455 §4.2.2 item 5.4).
pub fn accept_key(key: &str) -> String {
    // SHA-1 is what the RFC fixes here; it proves freshness, not secrecy.
    let mut context = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(ACCEPT_GUID.as_bytes());
    STANDARD.encode(context.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The RFC 6455 §1.3 example handshake, as a parsed request.
    fn handshake() -> Request {
        Request {
            method: Method::Get,
            path: "/chat".into(),
            query: String::new(),
            minor_version: 1,
            keep_alive: true,
            content_length: None,
            chunked: false,
            host: Some("server.example.com".into()),
            origin: Some("http://example.com".into()),
            upgrade_websocket: true,
            connection_upgrade: true,
            ws_key: Some(KEY.into()),
            ws_version: Some("13".into()),
            ws_protocols: vec!["chat".into(), "superchat".into()],
            cookie: None,
            authorization: None,
            forwarded_for: None,
        }
    }

    #[test]
    fn rfc_6455_example_accept_key() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            validate(&handshake()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn each_rule_has_its_status() {
        type Change = fn(&mut Request);
        let cases: &[(&str, Change, u16)] = &[
            ("POST", |r| r.method = Method::Post, 400),
            ("HEAD", |r| r.method = Method::Head, 400),
            ("HTTP/1.0", |r| r.minor_version = 0, 400),
            ("no Host", |r| r.host = None, 400),
            ("empty Host", |r| r.host = Some(String::new()), 400),
            ("no Upgrade", |r| r.upgrade_websocket = false, 400),
            ("no Connection", |r| r.connection_upgrade = false, 400),
            ("version 8", |r| r.ws_version = Some("8".into()), 426),
            (
                "version 13 13",
                |r| r.ws_version = Some("13, 13".into()),
                426,
            ),
            ("no version", |r| r.ws_version = None, 426),
            ("no key", |r| r.ws_key = None, 400),
            // 15 and 17 bytes, base64-encoded.
            (
                "15-byte key",
                |r| r.ws_key = Some("AAAAAAAAAAAAAAAAAAAA".into()),
                400,
            ),
            (
                "17-byte key",
                |r| r.ws_key = Some("AAAAAAAAAAAAAAAAAAAAAAA=".into()),
                400,
            ),
            (
                "bad base64",
                |r| r.ws_key = Some("dGhlIHNhbXBsZSBub25jZQ!!".into()),
                400,
            ),
            (
                "bad padding",
                |r| r.ws_key = Some("dGhlIHNhbXBsZSBub25jZQ=".into()),
                400,
            ),
            (
                "trailing bits",
                |r| r.ws_key = Some("dGhlIHNhbXBsZSBub25jZR==".into()),
                400,
            ),
        ];
        for (name, change, status) in cases {
            let mut request = handshake();
            change(&mut request);
            let error = validate(&request).expect_err(name);
            assert_eq!(error.status, *status, "{name}");
        }
    }

    #[test]
    fn parsed_handshakes_with_list_headers_pass() {
        use crate::http::head::{HeadParser, Limits};

        let heads = [
            "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket",
            "Connection: keep-alive\r\nConnection: upgrade\r\nUpgrade: websocket",
            "Connection: UPGRADE\r\nUpgrade: h2c, websocket",
        ];
        for lines in heads {
            let head = format!(
                "GET /chat HTTP/1.1\r\nHost: h\r\n{lines}\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            let parsed = HeadParser::new().parse(head.as_bytes(), &Limits::default());
            let (request, _) = parsed.unwrap().unwrap();
            assert_eq!(
                validate(&request).as_deref(),
                Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            );
        }
    }
}
