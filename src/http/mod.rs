//! HTTP/1.1 request heads and the responses Parley writes back, sans IO.
//!
//! Everything here works on byte slices and owned values: the reactor reads
//! from sockets, hands the bytes to [`HeadParser`], and writes whatever
//! [`response`] appends to its output buffer. Nothing in this module touches
//! a socket, a clock or a log, so every rule can be tested with plain bytes.
//!
//! Bodies are not parsed here. [`HeadParser`] reports where the head ends and
//! leaves the bytes after it alone, because they may be a request body or
//! the first WebSocket frames sent right behind the handshake; `body` only
//! decides from the head how many of them are a body.

pub mod body;
pub mod head;
mod query;
pub mod request;
pub mod response;
pub mod upgrade;

pub use body::{body_len, BodyError};
pub use head::{HeadParser, HttpError, Limits};
pub use request::{Method, Request};
