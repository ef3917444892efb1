//! The streaming decoder: client frames in, complete messages out.
//!
//! Sans-IO: the caller hands over whatever bytes a read produced and gets
//! back at most one message plus how much input was used. Incomplete input
//! is never an error; the decoder keeps what it needs so the caller can
//! drop the bytes: a cut header (at most 14 bytes) in an inline array, the
//! payload of a data message in `message`, and a cut control frame in a
//! small buffer allocated on first use. A whole unfragmented frame found in
//! the input is unmasked in place and returned as a slice of the input,
//! with no copy; this is the common case for chat traffic.
//!
//! Every rule of RFC 6455 that can fail a connection is checked here or in
//! `frame`, as early as the bytes allow: text is validated as it arrives,
//! and sizes are checked against the limit before any payload is kept.
//! The first error poisons the decoder, since the stream can no longer be
//! trusted to be in step with frame boundaries.

use super::error::Fail;
use super::frame::{self, Header, Opcode, MAX_CLIENT_HEADER_LEN, MAX_CONTROL_PAYLOAD};
use super::message;
use super::utf8::Utf8Validator;

pub use super::error::ProtocolError;
pub use super::message::Message;

/// The result of one `Decoder::decode` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Bytes of the input used; the caller passes the rest next time.
    pub consumed: usize,
    /// The message completed by those bytes, if any.
    pub message: Option<Message<'a>>,
}

/// A frame whose header has been read and whose payload has not all
/// arrived.
#[derive(Debug)]
struct Frame {
    opcode: Opcode,
    fin: bool,
    /// Rotated as bytes are unmasked, so it always fits the next byte.
    mask: [u8; 4],
    remaining: u64,
}

/// Room for one control frame payload cut across reads.
struct ControlBuf {
    len: usize,
    bytes: [u8; MAX_CONTROL_PAYLOAD],
}

impl ControlBuf {
    fn new_boxed() -> Box<Self> {
        Box::new(ControlBuf {
            len: 0,
            bytes: [0; MAX_CONTROL_PAYLOAD],
        })
    }

    fn payload(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Where the payload of a finished message lies, without borrowing it, so
/// the decoding loop can end before the message is lent out.
enum Ready {
    /// A whole frame in the input; payload at `start..end`.
    Input {
        opcode: Opcode,
        start: usize,
        end: usize,
    },
    /// A data message (Text or Binary) assembled in `Decoder::message`.
    Message(Opcode),
    /// A control frame assembled in `Decoder::control`.
    Control(Opcode),
}

/// Decodes the frames of one client connection.
///
/// Bytes reported as consumed now belong to the decoder: pass only new
/// bytes on the next call. Feeding the same bytes again (say, from a read
/// buffer that only grows) would decode them twice.
pub struct Decoder {
    max_message_bytes: usize,
    /// The start of a header cut by the end of the input.
    head: [u8; MAX_CLIENT_HEADER_LEN],
    head_len: usize,
    /// The frame whose payload is being read, if any.
    frame: Option<Frame>,
    /// The kind (Text or Binary) of a data message still being assembled.
    open: Option<Opcode>,
    utf8: Utf8Validator,
    message: Vec<u8>,
    control: Option<Box<ControlBuf>>,
    poisoned: Option<Fail>,
}

impl Decoder {
    /// A decoder that refuses data messages over `max_message_bytes` (1009).
    pub fn new(max_message_bytes: usize) -> Self {
        Decoder {
            max_message_bytes,
            head: [0; MAX_CLIENT_HEADER_LEN],
            head_len: 0,
            frame: None,
            open: None,
            utf8: Utf8Validator::new(),
            message: Vec::new(),
            control: None,
            poisoned: None,
        }
    }

    /// Decodes client frames from `input`, unmasking payload bytes IN PLACE.
    /// Returns after the first complete message, with `consumed` = bytes of
    /// input used so far (caller calls again with the rest); when no message
    /// completes, it absorbs all of the input into its own state and returns
    /// `consumed == input.len()` with `message: None`. Incomplete input is
    /// never an error. After an error the decoder is poisoned and keeps
    /// returning it.
    pub fn decode<'a>(&'a mut self, input: &'a mut [u8]) -> Result<Decoded<'a>, ProtocolError> {
        if let Some(err) = self.poisoned {
            return Err(*err);
        }
        // The previous call may have lent out a finished message from here.
        if self.open.is_none() {
            self.message.clear();
        }

        let (consumed, ready) = match self.advance(input) {
            Ok(step) => step,
            Err(err) => {
                self.poisoned = Some(err);
                return Err(*err);
            }
        };
        let message = match ready {
            Some(ready) => Some(self.lend(ready, input)?),
            None => None,
        };
        Ok(Decoded { consumed, message })
    }

    /// True when no partial frame or message is held (safe to release memory).
    pub fn is_idle(&self) -> bool {
        self.head_len == 0 && self.frame.is_none() && self.open.is_none()
    }

    /// Frees any buffer capacity held (call when idle to keep idle
    /// connections small). Buffers still in use are kept, so calling it at
    /// any other time is harmless but frees less.
    pub fn release_buffers(&mut self) {
        if self.open.is_none() {
            self.message = Vec::new();
        }
        let control_in_flight = self.frame.as_ref().is_some_and(|f| f.opcode.is_control());
        if !control_in_flight {
            self.control = None;
        }
    }

    /// Runs frames through the state machine until a message completes or
    /// the input runs out; returns the bytes used and what completed.
    fn advance(&mut self, input: &mut [u8]) -> Result<(usize, Option<Ready>), Fail> {
        let mut pos = 0;
        loop {
            let rest = input.get_mut(pos..).unwrap_or_default();
            if self.frame.is_none() {
                if rest.is_empty() {
                    return Ok((pos, None));
                }
                let Some(used) = self.read_header(rest)? else {
                    return Ok((input.len(), None));
                };
                pos += used;
                if let Some(ready @ Ready::Input { end, .. }) = self.take_whole_frame(input, pos) {
                    return Ok((end, Some(ready)));
                }
                continue;
            }

            pos += self.read_payload(rest)?;
            if self.frame.as_ref().is_some_and(|f| f.remaining > 0) {
                return Ok((pos, None));
            }
            if let Some(ready) = self.finish_frame()? {
                return Ok((pos, Some(ready)));
            }
        }
    }

    /// Reads a frame header from the start of `input`, joining it to any
    /// earlier cut part. Returns the input bytes it used once the header is
    /// complete, or None after keeping all of `input` as a partial header.
    fn read_header(&mut self, input: &[u8]) -> Result<Option<usize>, Fail> {
        if self.head_len == 0 {
            if let Some(header) = frame::parse_header(input)? {
                self.start_frame(&header)?;
                return Ok(Some(header.header_len));
            }
        }

        // A header cut by the end of a read. Fourteen bytes always decide a
        // header, so bytes that do not fit in `head` belong to the payload.
        let held = self.head_len;
        let room = self.head.get_mut(held..).unwrap_or_default();
        let copy = room.len().min(input.len());
        for (slot, byte) in room.iter_mut().zip(input) {
            *slot = *byte;
        }
        let known = self.head.get(..held + copy).unwrap_or_default();
        match frame::parse_header(known)? {
            Some(header) => {
                self.head_len = 0;
                self.start_frame(&header)?;
                Ok(Some(header.header_len.saturating_sub(held)))
            }
            None => {
                debug_assert_eq!(copy, input.len(), "14 bytes decide a header");
                self.head_len = held + copy;
                Ok(None)
            }
        }
    }

    /// Checks a header against the frames before it and the size limit,
    /// then makes it the current frame.
    fn start_frame(&mut self, header: &Header) -> Result<(), Fail> {
        let held = match header.opcode {
            // §5.4: a continuation frame needs a message to continue...
            Opcode::Continuation if self.open.is_none() => {
                return Err(&ProtocolError::NO_MESSAGE_TO_CONTINUE);
            }
            Opcode::Continuation => self.message.len(),
            // ...and a new message may not start while one is open; only
            // control frames may be interleaved.
            Opcode::Text | Opcode::Binary if self.open.is_some() => {
                return Err(&ProtocolError::MESSAGE_NOT_FINISHED);
            }
            _ => 0,
        };

        if header.opcode.is_control() {
            if let Some(control) = &mut self.control {
                control.len = 0;
            }
        } else {
            // §10.4: cap message size; checked on the declared length before
            // a byte of payload is kept.
            let room = widen(self.max_message_bytes).saturating_sub(widen(held));
            if header.payload_len > room {
                return Err(&ProtocolError::TOO_BIG);
            }
        }

        if matches!(header.opcode, Opcode::Text | Opcode::Binary) {
            self.open = Some(header.opcode);
            self.message.clear();
            self.utf8.reset();
        }
        self.frame = Some(Frame {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            remaining: header.payload_len,
        });
        Ok(())
    }

    /// The zero-copy path: when the current frame is a whole message and
    /// its payload lies entirely in `input` from `start`, unmasks it there.
    fn take_whole_frame(&mut self, input: &mut [u8], start: usize) -> Option<Ready> {
        let frame = self.frame.as_mut()?;
        let whole =
            frame.opcode.is_control() || (frame.fin && frame.opcode != Opcode::Continuation);
        if !whole {
            return None;
        }
        let end = start.checked_add(usize::try_from(frame.remaining).ok()?)?;
        let payload = input.get_mut(start..end)?;

        frame::unmask(payload, &mut frame.mask);
        let opcode = frame.opcode;
        self.frame = None;
        if !opcode.is_control() {
            self.open = None;
        }
        Some(Ready::Input { opcode, start, end })
    }

    /// Unmasks and keeps as much of the current frame's payload as `chunk`
    /// holds; returns the bytes used.
    fn read_payload(&mut self, chunk: &mut [u8]) -> Result<usize, Fail> {
        let Some(frame) = self.frame.as_mut() else {
            return Ok(0);
        };
        let take =
            usize::try_from(frame.remaining).map_or(chunk.len(), |left| left.min(chunk.len()));
        let bytes = chunk.get_mut(..take).unwrap_or_default();
        frame::unmask(bytes, &mut frame.mask);
        frame.remaining -= widen(take);

        if frame.opcode.is_control() {
            self.keep_control(bytes)?;
        } else {
            self.keep_data(bytes)?;
        }
        Ok(take)
    }

    fn keep_control(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        let control = self.control.get_or_insert_with(ControlBuf::new_boxed);
        let end = control.len + bytes.len();
        // The header check capped the payload at 125 bytes, so this fits.
        let slot = control
            .bytes
            .get_mut(control.len..end)
            .ok_or(&ProtocolError::CONTROL_TOO_LONG)?;
        slot.copy_from_slice(bytes);
        control.len = end;
        Ok(())
    }

    fn keep_data(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        // §8.1: text must be UTF-8; fail as soon as it cannot be, even in
        // the middle of a frame whose remainder has not arrived.
        if self.open == Some(Opcode::Text) {
            self.utf8
                .feed(bytes)
                .map_err(|_| &ProtocolError::INVALID_UTF8)?;
        }
        // Grows with the bytes received, not the declared length, so a
        // client cannot make the server allocate for data it never sends.
        self.message.extend_from_slice(bytes);
        Ok(())
    }

    /// Called when the current frame's payload is complete; returns what
    /// it completed, if anything.
    fn finish_frame(&mut self) -> Result<Option<Ready>, Fail> {
        let Some(frame) = self.frame.take() else {
            return Ok(None);
        };
        if frame.opcode.is_control() {
            return Ok(Some(Ready::Control(frame.opcode)));
        }
        if !frame.fin {
            return Ok(None);
        }
        let Some(kind) = self.open.take() else {
            return Ok(None);
        };
        // §8.1: the message as a whole must be UTF-8, so it cannot end
        // inside a character.
        if kind == Opcode::Text && !self.utf8.is_complete() {
            return Err(&ProtocolError::INVALID_UTF8);
        }
        Ok(Some(Ready::Message(kind)))
    }

    /// Lends out a finished message, checking what can only be checked on
    /// the whole payload.
    fn lend<'a>(&'a mut self, ready: Ready, input: &'a [u8]) -> Result<Message<'a>, ProtocolError> {
        // Split borrows: the message borrows one buffer while an error can
        // still poison the decoder.
        let Decoder {
            message: assembled,
            control,
            poisoned,
            ..
        } = self;
        let (opcode, payload): (Opcode, &'a [u8]) = match ready {
            Ready::Input { opcode, start, end } => {
                (opcode, input.get(start..end).unwrap_or_default())
            }
            Ready::Message(kind) => (kind, assembled.as_slice()),
            Ready::Control(opcode) => (opcode, control.as_deref().map_or(&[], ControlBuf::payload)),
        };
        message::from_payload(opcode, payload).map_err(|err| {
            *poisoned = Some(err);
            *err
        })
    }
}

/// usize to u64 without `as`: usize is at most 64 bits on every target.
fn widen(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::test_client::*;
    use super::*;
    use proptest::prelude::*;

    const BIG: usize = 1 << 20;

    fn text(s: &str) -> Owned {
        Owned::Text(s.to_owned())
    }

    fn err(code: u16) -> impl Fn(&Outcome) -> bool {
        move |out: &Outcome| out.error.map(|e| e.code) == Some(code)
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    #[test]
    fn decoder_is_small() {
        let size = std::mem::size_of::<Decoder>();
        println!("size_of::<Decoder>() = {size}");
        assert!(size <= 96);
    }

    #[test]
    fn rfc_6455_section_5_7_examples() {
        // A single-frame masked text message, byte for byte from the RFC.
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(masked(Opcode::Text, b"Hello"), hello);
        // The masked pong from the RFC.
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let kib64 = vec![0xAB; 65536];
        let bytes256 = vec![7; 256];

        let cases: Vec<(&str, Vec<u8>, Vec<Owned>)> = vec![
            ("masked Hello", hello.to_vec(), vec![text("Hello")]),
            (
                "fragmented Hel+lo",
                cat(&[
                    fragment(Opcode::Text, b"Hel"),
                    masked(Opcode::Continuation, b"lo"),
                ]),
                vec![text("Hello")],
            ),
            (
                "ping",
                masked(Opcode::Ping, b"Hello"),
                vec![Owned::Ping(b"Hello".to_vec())],
            ),
            (
                "masked pong",
                pong.to_vec(),
                vec![Owned::Pong(b"Hello".to_vec())],
            ),
            (
                "256 bytes",
                masked(Opcode::Binary, &bytes256),
                vec![Owned::Binary(bytes256.clone())],
            ),
            (
                "64 KiB",
                masked(Opcode::Binary, &kib64),
                vec![Owned::Binary(kib64.clone())],
            ),
        ];
        for (name, stream, want) in cases {
            assert_eq!(one_shot(BIG, &stream), Outcome::ok(want), "{name}");
        }

        // The RFC's length encodings for 256 bytes and 64 KiB.
        assert_eq!(
            masked(Opcode::Binary, &bytes256)[..4],
            [0x82, 0xFE, 0x01, 0x00]
        );
        let long = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(masked(Opcode::Binary, &kib64)[..10], long);
    }

    /// Streams that must fail, with the close code, for a 1000-byte limit.
    fn error_cases() -> Vec<(&'static str, Vec<u8>, u16)> {
        let open = fragment(Opcode::Text, b"ab");
        let mut cases = vec![
            (
                "unmasked (RFC example)",
                vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
                1002,
            ),
            ("rsv1", vec![0xC1, 0x80, 0, 0, 0, 0], 1002),
            ("rsv2", vec![0xA1, 0x80, 0, 0, 0, 0], 1002),
            ("rsv3", vec![0x91, 0x80, 0, 0, 0, 0], 1002),
            ("ping without FIN", vec![0x09, 0x80, 0, 0, 0, 0], 1002),
            ("ping of 126 bytes", masked(Opcode::Ping, &[0; 126]), 1002),
            ("close of 126 bytes", masked(Opcode::Close, &[0; 126]), 1002),
            (
                "16-bit length of 125",
                vec![0x82, 0xFE, 0, 125, 0, 0, 0, 0],
                1002,
            ),
            (
                "64-bit length of 65535",
                vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
                1002,
            ),
            (
                "64-bit length of 2^63",
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
                1002,
            ),
            (
                "64-bit length of 2^63-1",
                [&[0x82, 0xFF, 0x7F][..], &[0xFF; 11]].concat(),
                1009,
            ),
            ("1001 bytes", masked(Opcode::Binary, &[0; 1001]), 1009),
            (
                "fragments over the limit",
                cat(&[
                    fragment(Opcode::Binary, &[0; 600]),
                    masked(Opcode::Continuation, &[0; 401]),
                ]),
                1009,
            ),
            (
                "continuation first",
                masked(Opcode::Continuation, b"x"),
                1002,
            ),
            (
                "continuation after a finished message",
                cat(&[
                    masked(Opcode::Text, b"a"),
                    masked(Opcode::Continuation, b"b"),
                ]),
                1002,
            ),
            (
                "text inside a message",
                cat(&[open.clone(), masked(Opcode::Text, b"c")]),
                1002,
            ),
            (
                "binary inside a message",
                cat(&[open.clone(), masked(Opcode::Binary, b"c")]),
                1002,
            ),
            ("close of one byte", masked(Opcode::Close, &[3]), 1002),
            (
                "close reason not UTF-8",
                masked(Opcode::Close, &close_body(1000, &[0xFF])),
                1007,
            ),
            (
                "text not UTF-8",
                masked(Opcode::Text, &[b'a', 0xC0, 0x80]),
                1007,
            ),
            (
                "text ending inside a character",
                masked(Opcode::Text, &[b'a', 0xE2, 0x82]),
                1007,
            ),
            (
                "last fragment ending inside a character",
                cat(&[
                    fragment(Opcode::Text, &[0xE2]),
                    masked(Opcode::Continuation, &[0x82]),
                ]),
                1007,
            ),
            (
                "bad UTF-8 across fragments",
                cat(&[
                    fragment(Opcode::Text, &[0xED]),
                    masked(Opcode::Continuation, &[0xA0, 0x80]),
                ]),
                1007,
            ),
        ];
        for bits in (0x3..=0x7).chain(0xB..=0xF) {
            cases.push(("reserved opcode", vec![0x80 | bits, 0x80, 0, 0, 0, 0], 1002));
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            cases.push((
                "invalid close code",
                masked(Opcode::Close, &close_body(code, b"")),
                1002,
            ));
        }
        cases
    }

    #[test]
    fn every_error_has_its_code_however_cut() {
        for (name, stream, code) in error_cases() {
            let out = same_however_cut(1000, &stream);
            assert!(err(code)(&out), "{name}: {out:?}");
        }
    }

    /// Name, message size limit, stream, and the payload length decoded or
    /// the close code.
    type LimitCase = (&'static str, usize, Vec<u8>, Result<usize, u16>);

    #[test]
    fn limits_at_their_boundaries() {
        let cases: Vec<LimitCase> = vec![
            ("ping of 125", BIG, masked(Opcode::Ping, &[1; 125]), Ok(125)),
            (
                "close of 125",
                BIG,
                masked(Opcode::Close, &close_body(1000, &[b'r'; 123])),
                Ok(123),
            ),
            (
                "text of 125",
                BIG,
                masked(Opcode::Text, &[b'a'; 125]),
                Ok(125),
            ),
            (
                "text of 126",
                BIG,
                masked(Opcode::Text, &[b'a'; 126]),
                Ok(126),
            ),
            (
                "binary of 65535",
                BIG,
                masked(Opcode::Binary, &[2; 65535]),
                Ok(65535),
            ),
            (
                "binary of 65536",
                BIG,
                masked(Opcode::Binary, &[2; 65536]),
                Ok(65536),
            ),
            (
                "exactly the limit",
                300,
                masked(Opcode::Binary, &[3; 300]),
                Ok(300),
            ),
            (
                "one over the limit",
                300,
                masked(Opcode::Binary, &[3; 301]),
                Err(1009),
            ),
            (
                "fragments summing to the limit",
                300,
                cat(&[
                    fragment(Opcode::Text, &[b'x'; 150]),
                    masked(Opcode::Continuation, &[b'y'; 150]),
                ]),
                Ok(300),
            ),
            (
                "fragments one over",
                300,
                cat(&[
                    fragment(Opcode::Text, &[b'x'; 150]),
                    masked(Opcode::Continuation, &[b'y'; 151]),
                ]),
                Err(1009),
            ),
            (
                "zero limit, empty message",
                0,
                masked(Opcode::Binary, b""),
                Ok(0),
            ),
            (
                "zero limit, ping still fine",
                0,
                masked(Opcode::Ping, b"p"),
                Ok(1),
            ),
        ];
        for (name, max, stream, want) in cases {
            let out = one_shot(max, &stream);
            let got = match (&out.error, out.messages.as_slice()) {
                (Some(e), _) => Err(e.code),
                (None, [Owned::Text(t)]) => Ok(t.len()),
                (None, [Owned::Binary(b) | Owned::Ping(b)]) => Ok(b.len()),
                (None, [Owned::Close(Some((_, r)))]) => Ok(r.len()),
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn size_limit_is_checked_before_anything_is_kept() {
        // A header declaring 2^62 bytes fails at once, with no payload sent.
        let header = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        let mut decoder = Decoder::new(BIG);
        assert_eq!(decoder.decode(&mut header.clone()).unwrap_err().code, 1009);

        // Within the limit, a declared length reserves nothing up front.
        let mut decoder = Decoder::new(usize::MAX);
        let mut input = header;
        let got = decoder.decode(&mut input).unwrap();
        assert_eq!((got.consumed, got.message), (14, None));
        assert_eq!(decoder.message.capacity(), 0);
    }

    #[test]
    fn control_frames_between_fragments() {
        let stream = cat(&[
            fragment(Opcode::Text, "fra".as_bytes()),
            masked(Opcode::Ping, b"p1"),
            frame(false, Opcode::Continuation, &[0xE2, 0x82], [9, 8, 7, 6]),
            masked(Opcode::Pong, b""),
            masked(Opcode::Ping, &[0; 125]),
            masked(Opcode::Continuation, &[0xAC]),
            fragment(Opcode::Binary, b""),
            masked(Opcode::Close, &close_body(1000, "bye".as_bytes())),
            masked(Opcode::Continuation, b"\x00\x01"),
            masked(Opcode::Close, b""),
        ]);
        let want = vec![
            Owned::Ping(b"p1".to_vec()),
            Owned::Pong(vec![]),
            Owned::Ping(vec![0; 125]),
            text("fra€"),
            Owned::Close(Some((1000, "bye".to_owned()))),
            Owned::Binary(vec![0, 1]),
            Owned::Close(None),
        ];
        assert_eq!(same_however_cut(BIG, &stream), Outcome::ok(want));
    }

    #[test]
    fn valid_streams_decode_the_same_however_cut() {
        let streams: Vec<Vec<u8>> = vec![
            masked(Opcode::Text, "κόσμε".as_bytes()),
            cat(&[masked(Opcode::Text, b""), masked(Opcode::Binary, b"")]),
            cat(&[
                fragment(Opcode::Text, &[0xF0, 0x9F]),
                fragment(Opcode::Continuation, &[]),
                masked(Opcode::Continuation, &[0x98, 0x80]),
            ]),
            masked(Opcode::Binary, &[5; 300]),
            masked(Opcode::Close, &close_body(4999, "é".as_bytes())),
            cat(&[
                masked(Opcode::Ping, b"a"),
                masked(Opcode::Text, b"b"),
                masked(Opcode::Pong, b"c"),
            ]),
        ];
        for stream in streams {
            let out = same_however_cut(BIG, &stream);
            assert_eq!(out.error, None, "{out:?}");
        }
    }

    #[test]
    fn bad_utf8_fails_before_the_frame_ends() {
        // Autobahn 6.4.x: the invalid byte arrives, the rest of the frame
        // does not; the decoder must fail on what it has.
        let cases: &[(&[u8], usize)] = &[
            // "κόσμε" then a surrogate: fails on 0xA0, at index 12.
            (
                &[
                    0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0,
                    0x80, b'x',
                ],
                12,
            ),
            // A code point above U+10FFFF: fails on 0x90.
            (&[0xCE, 0xBA, 0xF4, 0x90, 0x80, 0x80, b'x'], 3),
            (&[b'o', b'k', 0xFF, b'x'], 2),
        ];
        for &(payload, bad_at) in cases {
            let stream = masked(Opcode::Text, payload);
            let header = stream.len() - payload.len();
            let mut decoder = Decoder::new(BIG);
            let mut good = stream[..header + bad_at].to_vec();
            let good_len = good.len();
            let got = decoder.decode(&mut good).unwrap();
            assert_eq!((got.consumed, got.message), (good_len, None));
            let mut bad = stream[header + bad_at..=header + bad_at].to_vec();
            assert_eq!(
                decoder.decode(&mut bad).unwrap_err().code,
                1007,
                "{payload:02X?}"
            );
        }
    }

    #[test]
    fn whole_frames_are_lent_from_the_input_without_copying() {
        let mut stream = cat(&[masked(Opcode::Text, b"one"), masked(Opcode::Ping, b"two")]);
        let first_len = stream.len() / 2;
        let range = stream.as_ptr_range();
        let mut decoder = Decoder::new(BIG);

        let got = decoder.decode(&mut stream).unwrap();
        assert_eq!(got.consumed, first_len);
        let Some(Message::Text(s)) = got.message else {
            panic!()
        };
        assert_eq!(s, "one");
        assert!(range.contains(&s.as_ptr()));

        let got = decoder.decode(&mut stream[first_len..]).unwrap();
        assert_eq!(got.message, Some(Message::Ping(b"two")));
        assert_eq!(
            (decoder.message.capacity(), decoder.control.is_none()),
            (0, true)
        );
    }

    #[test]
    fn split_frames_are_kept_then_memory_released() {
        let stream = cat(&[
            masked(Opcode::Binary, &[1; 40]),
            masked(Opcode::Ping, b"abc"),
        ]);
        let mut decoder = Decoder::new(BIG);
        assert!(decoder.is_idle());

        let mut part = stream[..1].to_vec();
        assert_eq!(decoder.decode(&mut part).unwrap().consumed, 1);
        assert!(!decoder.is_idle());
        let mut part = stream[1..20].to_vec();
        assert_eq!(decoder.decode(&mut part).unwrap().message, None);
        assert!(!decoder.is_idle());
        decoder.release_buffers();
        let mut part = stream[20..50].to_vec();
        let got = decoder.decode(&mut part).unwrap();
        assert_eq!(
            (got.consumed, got.message),
            (26, Some(Message::Binary(&[1; 40])))
        );
        assert!(decoder.is_idle());

        let mut part = stream[46..53].to_vec();
        assert_eq!(decoder.decode(&mut part).unwrap().message, None);
        assert!(decoder.control.is_some());
        let mut part = stream[53..].to_vec();
        let got = decoder.decode(&mut part).unwrap();
        assert_eq!(got.message, Some(Message::Ping(b"abc")));

        assert!(decoder.is_idle());
        decoder.release_buffers();
        assert_eq!(
            (decoder.message.capacity(), decoder.control.is_none()),
            (0, true)
        );
    }

    #[test]
    fn errors_poison_the_decoder() {
        let mut decoder = Decoder::new(BIG);
        let mut bad = masked(Opcode::Close, &[3]);
        let first = decoder.decode(&mut bad).unwrap_err();
        let mut good = masked(Opcode::Text, b"fine");
        assert_eq!(decoder.decode(&mut good), Err(first));
        assert_eq!(first, ProtocolError::CLOSE_ONE_BYTE);
        assert!(first.to_string().contains("1002"));
    }

    /// One item of a generated client stream.
    #[derive(Debug, Clone)]
    enum Item {
        /// A data message cut into fragments at the given byte offsets,
        /// with control frames after some fragments.
        Data {
            text: bool,
            payload: Vec<u8>,
            cuts: Vec<usize>,
            pings: Vec<Vec<u8>>,
        },
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(u16, String),
    }

    fn item() -> impl Strategy<Value = Item> {
        let control = proptest::collection::vec(any::<u8>(), 0..=125);
        prop_oneof![
            (
                "\\PC{0,60}",
                proptest::collection::vec(any::<usize>(), 0..4),
                proptest::collection::vec(control.clone(), 0..3),
            )
                .prop_map(|(s, cuts, pings)| Item::Data {
                    text: true,
                    payload: s.into_bytes(),
                    cuts,
                    pings
                }),
            (
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(any::<usize>(), 0..4),
            )
                .prop_map(|(payload, cuts)| Item::Data {
                    text: false,
                    payload,
                    cuts,
                    pings: vec![]
                }),
            control.clone().prop_map(Item::Ping),
            control.prop_map(Item::Pong),
            (
                prop_oneof![1000..=1003u16, 1007..=1014u16, 3000..=4999u16],
                "\\PC{0,20}"
            )
                .prop_map(|(code, reason)| Item::Close(code, reason)),
        ]
    }

    /// The client frames for `items` and the messages they should decode to.
    fn encode(items: &[Item], mask: [u8; 4]) -> (Vec<u8>, Vec<Owned>) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for item in items {
            match item {
                Item::Data {
                    text,
                    payload,
                    cuts,
                    pings,
                } => {
                    let mut points: Vec<usize> =
                        cuts.iter().map(|c| c % (payload.len() + 1)).collect();
                    points.sort_unstable();
                    points.push(payload.len());
                    let mut from = 0;
                    let mut opcode = if *text { Opcode::Text } else { Opcode::Binary };
                    for (i, &to) in points.iter().enumerate() {
                        let fin = i + 1 == points.len();
                        stream.extend(frame(fin, opcode, &payload[from..to], mask));
                        opcode = Opcode::Continuation;
                        from = to;
                        if let (false, Some(ping)) = (fin, pings.get(i)) {
                            stream.extend(frame(true, Opcode::Ping, ping, mask));
                            want.push(Owned::Ping(ping.clone()));
                        }
                    }
                    want.push(match text {
                        true => Owned::Text(String::from_utf8(payload.clone()).unwrap()),
                        false => Owned::Binary(payload.clone()),
                    });
                }
                Item::Ping(p) => {
                    stream.extend(frame(true, Opcode::Ping, p, mask));
                    want.push(Owned::Ping(p.clone()));
                }
                Item::Pong(p) => {
                    stream.extend(frame(true, Opcode::Pong, p, mask));
                    want.push(Owned::Pong(p.clone()));
                }
                Item::Close(code, reason) => {
                    let body = close_body(*code, reason.as_bytes());
                    stream.extend(frame(true, Opcode::Close, &body, mask));
                    want.push(Owned::Close(Some((*code, reason.clone()))));
                }
            }
        }
        (stream, want)
    }

    fn sorted_cuts(cuts: &[usize], len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    proptest! {
        #[test]
        fn random_streams_decode_the_same_however_cut(
            items in proptest::collection::vec(item(), 0..6),
            mask in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let (stream, want) = encode(&items, mask);
            let whole = one_shot(BIG, &stream);
            prop_assert_eq!(&whole, &Outcome::ok(want));
            let cuts = sorted_cuts(&cuts, stream.len());
            prop_assert_eq!(decode_cut(BIG, &stream, &cuts), whole);
        }

        #[test]
        fn damaged_streams_never_panic_and_agree_however_cut(
            items in proptest::collection::vec(item(), 1..4),
            mask in any::<[u8; 4]>(),
            damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            max in 0usize..400,
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let (mut stream, _) = encode(&items, mask);
            for (at, byte) in damage {
                let len = stream.len();
                stream[at % len] ^= byte;
            }
            let whole = one_shot(max, &stream);
            let cuts = sorted_cuts(&cuts, stream.len());
            prop_assert_eq!(decode_cut(max, &stream, &cuts), whole);
        }

        /// Payload lengths at the edges of the three length encodings,
        /// against a limit just under, at and over them.
        #[test]
        fn boundary_lengths_decode_the_same_however_cut(
            len in prop_oneof![
                Just(0usize), Just(125), Just(126), Just(127),
                Just(65535), Just(65536), Just(65537)
            ],
            slack in 0usize..3,
            mask in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let payload = vec![0x5a; len];
            let stream = frame(true, Opcode::Binary, &payload, mask);
            let max = (len + slack).saturating_sub(1);
            let whole = one_shot(max, &stream);
            if len <= max {
                prop_assert_eq!(&whole, &Outcome::ok(vec![Owned::Binary(payload)]));
            } else {
                prop_assert!(err(1009)(&whole), "{len} over {max}: {whole:?}");
            }
            let cuts = sorted_cuts(&cuts, stream.len());
            prop_assert_eq!(decode_cut(max, &stream, &cuts), whole);
        }

        /// Raw 64-bit length fields: the top bit set (RFC 6455 §5.2: it
        /// must be 0) and non-minimal encodings are protocol errors, and
        /// no value allocates or panics, however the header is cut.
        #[test]
        fn raw_64_bit_lengths_never_panic_and_agree_however_cut(
            len in prop_oneof![
                Just(0u64), Just(125), Just(126), Just(65535), Just(65536),
                Just(1u64 << 63), Just(u64::MAX), any::<u64>()
            ],
            tail in proptest::collection::vec(any::<u8>(), 0..16),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut stream = vec![0x82, 0x80 | 127];
            stream.extend(len.to_be_bytes());
            stream.extend([1, 2, 3, 4]);
            stream.extend(tail);
            let whole = one_shot(BIG, &stream);
            if !(65536..1 << 63).contains(&len) {
                prop_assert!(err(1002)(&whole), "{len}: {whole:?}");
            } else if len > BIG as u64 {
                prop_assert!(err(1009)(&whole), "{len}: {whole:?}");
            }
            let cuts = sorted_cuts(&cuts, stream.len());
            prop_assert_eq!(decode_cut(BIG, &stream, &cuts), whole);
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
        ) {
            // Either an error or "need more": feed() checks that a call
            // without a message absorbed everything.
            let whole = one_shot(BIG, &bytes);
            let cuts = sorted_cuts(&cuts, bytes.len());
            prop_assert_eq!(decode_cut(BIG, &bytes, &cuts), whole);
        }
    }
}
