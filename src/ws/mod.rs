//! WebSocket (RFC 6455) framing for the server side, sans IO.
//!
//! Nothing here touches a socket: the reactor feeds received bytes to a
//! `Decoder` and writes the bytes that `frame::write_frame` produces. The
//! opening handshake is not here: this module starts after it, on the
//! framed stream, and assumes no extensions were negotiated.
//!
//! - `frame`: opcodes, header parsing, unmasking, server frame encoding.
//! - `decoder`: joins frames into messages, enforcing the protocol rules.
//! - `utf8`: incremental UTF-8 validation so bad text fails fast.
//! - `close`: close codes and which ones a client may send.
//! - `error` and `message` (private, re-exported by `decoder`): what a
//!   decode call returns.

pub mod close;
pub mod decoder;
pub mod frame;
pub mod utf8;

mod error;
mod message;

#[cfg(test)]
mod test_client;

pub use decoder::{Decoded, Decoder, Message, ProtocolError};
pub use frame::Opcode;
