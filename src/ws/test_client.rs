//! Test support: a masking client encoder and a driver that feeds a byte
//! stream to a `Decoder` in chosen pieces.
//!
//! The decoder's tests compare what comes out of one stream cut in many
//! ways, so the driver turns borrowed messages into owned values and
//! records the error that ended the stream, if any.

use super::decoder::{Decoder, Message, ProtocolError};
use super::frame::{self, Opcode, MAX_HEADER_LEN};

/// The masking key from the RFC 6455 §5.7 examples.
pub const RFC_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: minimal length encoding, masked with `mask`.
pub fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut head = [0; MAX_HEADER_LEN];
    let n = frame::encode_header(opcode, payload.len(), &mut head);
    if !fin {
        head[0] &= 0x7F;
    }
    head[1] |= 0x80;

    let mut out = head[..n].to_vec();
    out.extend_from_slice(&mask);
    let mut body = payload.to_vec();
    frame::unmask(&mut body, &mut mask.clone());
    out.extend_from_slice(&body);
    out
}

/// A final client frame masked with the RFC key.
pub fn masked(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    frame(true, opcode, payload, RFC_MASK)
}

/// A non-final client frame masked with the RFC key.
pub fn fragment(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    frame(false, opcode, payload, RFC_MASK)
}

/// A close frame payload: code then reason.
pub fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

/// An owned copy of a `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

impl From<Message<'_>> for Owned {
    fn from(message: Message<'_>) -> Self {
        match message {
            Message::Text(s) => Owned::Text(s.to_owned()),
            Message::Binary(b) => Owned::Binary(b.to_vec()),
            Message::Ping(b) => Owned::Ping(b.to_vec()),
            Message::Pong(b) => Owned::Pong(b.to_vec()),
            Message::Close(c) => Owned::Close(c.map(|(code, r)| (code, r.to_owned()))),
        }
    }
}

/// Everything a decoder produced from a stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub messages: Vec<Owned>,
    pub error: Option<ProtocolError>,
}

impl Outcome {
    pub fn ok(messages: Vec<Owned>) -> Self {
        Outcome {
            messages,
            error: None,
        }
    }
}

/// Feeds one chunk as a reactor would: decode until the chunk is used up,
/// the way the API promises (a `None` message means all was absorbed).
pub fn feed(decoder: &mut Decoder, chunk: &[u8], out: &mut Outcome) {
    if out.error.is_some() {
        return;
    }
    let mut buf = chunk.to_vec();
    let mut at = 0;
    while at < buf.len() {
        let left = buf.len() - at;
        match decoder.decode(&mut buf[at..]) {
            Ok(decoded) => {
                assert!(decoded.consumed <= left);
                match decoded.message {
                    Some(message) => out.messages.push(message.into()),
                    None => assert_eq!(decoded.consumed, left, "absorbs all"),
                }
                at += decoded.consumed;
            }
            Err(err) => {
                // Poisoned: the same error again, whatever comes next.
                assert_eq!(decoder.decode(&mut [0x81]), Err(err));
                out.error = Some(err);
                return;
            }
        }
    }
}

/// Decodes `stream` cut at the given (sorted) offsets.
pub fn decode_cut(max: usize, stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(max);
    let mut out = Outcome::default();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(from, stream.len());
        feed(&mut decoder, &stream[from..cut], &mut out);
        from = cut;
    }
    out
}

/// Decodes `stream` in one piece.
pub fn one_shot(max: usize, stream: &[u8]) -> Outcome {
    decode_cut(max, stream, &[])
}

/// Decodes `stream` one byte per call.
pub fn byte_at_a_time(max: usize, stream: &[u8]) -> Outcome {
    let cuts: Vec<usize> = (1..stream.len()).collect();
    decode_cut(max, stream, &cuts)
}

/// Asserts that every way of cutting `stream` (once at each offset, and
/// into single bytes) gives the one-shot outcome; returns that outcome.
pub fn same_however_cut(max: usize, stream: &[u8]) -> Outcome {
    let whole = one_shot(max, stream);
    for cut in 0..=stream.len() {
        assert_eq!(decode_cut(max, stream, &[cut]), whole, "cut at {cut}");
    }
    assert_eq!(byte_at_a_time(max, stream), whole, "byte at a time");
    whole
}
