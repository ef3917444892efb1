//! Fuzzes the WebSocket decoder: no input may panic it, and where the
//! input is cut must not change what comes out.
//!
//! The first byte picks a cut point in the rest of the input; the rest is
//! decoded once whole and once in two pieces, as two reads would deliver
//! it, and both runs must yield the same messages and the same error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley::ws::{Decoder, Message, ProtocolError};

/// Small enough that the fuzzer reaches the size limit (1009) often.
const MAX_MESSAGE_BYTES: usize = 4096;

/// An owned copy of a message, so runs can be compared after the fact.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
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

/// Feeds `chunks` in order, draining each as a reactor would; stops at
/// the first error.
fn run(chunks: &[&[u8]]) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(MAX_MESSAGE_BYTES);
    let mut messages = Vec::new();
    for chunk in chunks {
        let mut buf = chunk.to_vec();
        let mut at = 0;
        while at < buf.len() {
            let left = buf.len() - at;
            match decoder.decode(&mut buf[at..]) {
                Ok(decoded) => {
                    assert!(decoded.consumed <= left);
                    match decoded.message {
                        Some(message) => messages.push(message.into()),
                        // No message means the whole input was absorbed.
                        None => assert_eq!(decoded.consumed, left),
                    }
                    at += decoded.consumed;
                }
                Err(err) => {
                    assert!(matches!(err.code, 1002 | 1007 | 1009));
                    // Poisoned: every later call repeats the error.
                    assert_eq!(decoder.decode(&mut [0x81, 0x80]), Err(err));
                    return (messages, Some(err));
                }
            }
        }
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(first) % (stream.len() + 1);
    let (head, tail) = stream.split_at(cut);

    let whole = run(&[stream]);
    let split = run(&[head, tail]);
    assert_eq!(whole, split, "cut at {cut}");
});
