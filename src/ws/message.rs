//! What the decoder hands out: complete messages, and the checks that can
//! only be made on a complete payload.
//!
//! A message borrows its payload from wherever the decoder assembled it,
//! either the caller's input or the decoder's own buffers, so nothing is
//! copied to lend it. Text and close reasons become `&str` here.

use super::close;
use super::error::{Fail, ProtocolError};
use super::frame::Opcode;

/// One complete message from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A complete text message, all fragments joined, valid UTF-8.
    Text(&'a str),
    /// A complete binary message, all fragments joined.
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The code and reason, or None when the close frame had no payload.
    Close(Option<(u16, &'a str)>),
}

/// Turns a complete payload into a message, or fails with the close code
/// its content calls for. Text assembled from fragments
/// was validated on arrival; this one linear pass gives the `&str` without
/// unsafe code.
pub(crate) fn from_payload(opcode: Opcode, payload: &[u8]) -> Result<Message<'_>, Fail> {
    match opcode {
        Opcode::Text => std::str::from_utf8(payload)
            .map(Message::Text)
            .map_err(|_| &ProtocolError::INVALID_UTF8),
        Opcode::Binary => Ok(Message::Binary(payload)),
        Opcode::Ping => Ok(Message::Ping(payload)),
        Opcode::Pong => Ok(Message::Pong(payload)),
        Opcode::Close => close_message(payload),
        // The decoder resolves a continuation to its message's kind, so this
        // is never reached; refusing it keeps the function total.
        Opcode::Continuation => Err(&ProtocolError::NO_MESSAGE_TO_CONTINUE),
    }
}

/// A close body is empty, or a valid code and a UTF-8 reason.
fn close_message(payload: &[u8]) -> Result<Message<'_>, Fail> {
    match payload {
        [] => Ok(Message::Close(None)),
        // §5.5.1: a close body starts with a two-byte code.
        [_] => Err(&ProtocolError::CLOSE_ONE_BYTE),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            // §7.4: reserved and local-only codes must not be sent.
            if !close::is_valid_received(code) {
                return Err(&ProtocolError::INVALID_CLOSE_CODE);
            }
            // §5.5.1: the reason is UTF-8.
            let reason = std::str::from_utf8(reason).map_err(|_| &ProtocolError::INVALID_UTF8)?;
            Ok(Message::Close(Some((code, reason))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_to_messages() {
        type Case = (Opcode, &'static [u8], Result<Message<'static>, u16>);
        let cases: &[Case] = &[
            (Opcode::Text, b"hi", Ok(Message::Text("hi"))),
            (Opcode::Text, b"", Ok(Message::Text(""))),
            (Opcode::Text, &[0xC3], Err(1007)),
            (Opcode::Binary, &[0xC3], Ok(Message::Binary(&[0xC3]))),
            (Opcode::Ping, b"", Ok(Message::Ping(b""))),
            (Opcode::Pong, b"p", Ok(Message::Pong(b"p"))),
            (Opcode::Close, b"", Ok(Message::Close(None))),
            (Opcode::Close, &[0x03], Err(1002)),
            (
                Opcode::Close,
                &[0x03, 0xE8],
                Ok(Message::Close(Some((1000, "")))),
            ),
            (
                Opcode::Close,
                b"\x0b\xb8ok",
                Ok(Message::Close(Some((3000, "ok")))),
            ),
            (Opcode::Close, &[0x03, 0xED], Err(1002)),
            (Opcode::Close, &[0x03, 0xE8, 0xFF], Err(1007)),
            (Opcode::Continuation, b"", Err(1002)),
        ];
        for &(opcode, payload, want) in cases {
            let got = from_payload(opcode, payload).map_err(|e| e.code);
            assert_eq!(got, want, "{opcode:?} {payload:02X?}");
        }
    }
}
