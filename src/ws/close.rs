//! Close status codes: the ones Parley sends, and the rule for the ones a
//! client may send.
//!
//! The constants name every code the server uses so call sites read as
//! reasons, not numbers. `is_valid_received` encodes RFC 6455 §7.4: some
//! registered codes are only for local reporting and must never appear in
//! a close frame, and unregistered ranges are reserved; a client that sends
//! one has broken the protocol (the decoder answers 1002).

/// The purpose of the connection was fulfilled.
pub const NORMAL: u16 = 1000;
/// The server is shutting down or the client navigated away.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the framing rules.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A message type this endpoint does not accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// Payload inconsistent with its type, such as bad UTF-8 in text.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A message that breaks application policy.
pub const POLICY: u16 = 1008;
/// A message larger than this endpoint accepts.
pub const TOO_BIG: u16 = 1009;
/// The server hit an unexpected condition.
pub const INTERNAL: u16 = 1011;
/// Overloaded for now; the client may reconnect later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// Not sent: stands for "no code" where a close frame had none (§7.4.1);
/// used as a metrics label only.
pub const NO_STATUS: u16 = 1005;
/// The service is restarting (or, here, a room's history was reset):
/// reconnect.
pub const SERVICE_RESTART: u16 = 1012;

/// Whether a code received in a close frame is allowed on the wire
/// (RFC 6455 §7.4): 1000-1003, 1007-1014 and 3000-4999 are valid;
/// 1004/1005/1006/1015, below 1000, 1016-2999 and 5000 up are not.
///
/// 1005, 1006 and 1015 are reserved for reporting locally and must not be
/// sent (§7.4.1); 1004 and 1016-2999 are reserved for the protocol itself;
/// 3000-4999 belong to libraries and applications (§7.4.2). 1012-1014 were
/// registered with IANA after the RFC and are accepted.
pub fn is_valid_received(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_code_table() {
        let cases: &[(u16, bool)] = &[
            (0, false),
            (999, false),
            (NORMAL, true),
            (GOING_AWAY, true),
            (PROTOCOL_ERROR, true),
            (UNSUPPORTED_DATA, true),
            (1004, false),
            (1005, false),
            (1006, false),
            (INVALID_PAYLOAD, true),
            (POLICY, true),
            (TOO_BIG, true),
            (1010, true),
            (INTERNAL, true),
            (1012, true),
            (TRY_AGAIN_LATER, true),
            (1014, true),
            (1015, false),
            (1016, false),
            (1100, false),
            (2000, false),
            (2999, false),
            (3000, true),
            (3999, true),
            (4000, true),
            (4999, true),
            (5000, false),
            (u16::MAX, false),
        ];
        for &(code, valid) in cases {
            assert_eq!(is_valid_received(code), valid, "code {code}");
        }
    }
}
