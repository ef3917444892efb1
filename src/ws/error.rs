//! The error that fails a WebSocket connection, and every reason for it.
//!
//! Each error knows the close code to send back (RFC 6455 §7.4.1), so the
//! reactor never has to map kinds to codes. The reasons are named constants
//! rather than an enum: the decoder can then hold the first error as one
//! pointer and return it again on every later call.

use std::fmt;

use super::close;

/// A violation that fails the connection, with the close code to send:
/// 1002 (protocol), 1007 (invalid payload) or 1009 (too big).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: u16,
    pub reason: &'static str,
}

impl ProtocolError {
    const fn protocol(reason: &'static str) -> Self {
        ProtocolError {
            code: close::PROTOCOL_ERROR,
            reason,
        }
    }

    pub(crate) const RESERVED_BITS: Self = Self::protocol("reserved bits set");
    pub(crate) const RESERVED_OPCODE: Self = Self::protocol("reserved opcode");
    pub(crate) const FRAGMENTED_CONTROL: Self = Self::protocol("fragmented control frame");
    pub(crate) const UNMASKED: Self = Self::protocol("client frame not masked");
    pub(crate) const CONTROL_TOO_LONG: Self = Self::protocol("control frame over 125 bytes");
    pub(crate) const NON_MINIMAL_LENGTH: Self = Self::protocol("length not minimally encoded");
    pub(crate) const LENGTH_HIGH_BIT: Self = Self::protocol("64-bit length with high bit set");
    pub(crate) const NO_MESSAGE_TO_CONTINUE: Self =
        Self::protocol("continuation without a message");
    pub(crate) const MESSAGE_NOT_FINISHED: Self =
        Self::protocol("new message before the last ended");
    pub(crate) const CLOSE_ONE_BYTE: Self = Self::protocol("close payload of one byte");
    pub(crate) const INVALID_CLOSE_CODE: Self = Self::protocol("invalid close code");
    pub(crate) const INVALID_UTF8: Self = ProtocolError {
        code: close::INVALID_PAYLOAD,
        reason: "invalid UTF-8",
    };
    pub(crate) const TOO_BIG: Self = ProtocolError {
        code: close::TOO_BIG,
        reason: "message too big",
    };
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket protocol error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

/// Errors are the named constants above, so a reference is enough and
/// keeps the poisoned state one pointer wide.
pub(crate) type Fail = &'static ProtocolError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_knows_its_close_code() {
        let cases: &[(ProtocolError, u16)] = &[
            (ProtocolError::RESERVED_BITS, 1002),
            (ProtocolError::RESERVED_OPCODE, 1002),
            (ProtocolError::FRAGMENTED_CONTROL, 1002),
            (ProtocolError::UNMASKED, 1002),
            (ProtocolError::CONTROL_TOO_LONG, 1002),
            (ProtocolError::NON_MINIMAL_LENGTH, 1002),
            (ProtocolError::LENGTH_HIGH_BIT, 1002),
            (ProtocolError::NO_MESSAGE_TO_CONTINUE, 1002),
            (ProtocolError::MESSAGE_NOT_FINISHED, 1002),
            (ProtocolError::CLOSE_ONE_BYTE, 1002),
            (ProtocolError::INVALID_CLOSE_CODE, 1002),
            (ProtocolError::INVALID_UTF8, 1007),
            (ProtocolError::TOO_BIG, 1009),
        ];
        for (err, code) in cases {
            assert_eq!(err.code, *code, "{err}");
            assert!(err.to_string().contains(err.reason));
        }
    }
}
