//! The RFC 6455 §5.2 frame layout: opcodes, parsing a client frame header,
//! unmasking, and encoding the frames the server sends.
//!
//! Everything here works on one frame and keeps no state between calls;
//! joining frames into messages, and holding bytes across reads, is the
//! decoder's job. Header parsing checks every rule that the header alone
//! can break, as soon as the byte carrying it is present, so a bad frame
//! is refused before its payload is read. Server frames are never masked
//! (§5.1) and never fragmented, so encoding is a few lines.

use super::error::ProtocolError;

/// The frame type from the low four bits of the first header byte (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode for the four wire bits, or None for the reserved values
    /// 0x3-0x7 and 0xB-0xF.
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The four wire bits for this opcode.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Control frames (opcodes with the high bit set) may not be fragmented
    /// and may appear between the fragments of a message (§5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// The longest header the server writes: 2 bytes, an 8-byte length, and
/// no mask, because server frames are never masked.
pub const MAX_HEADER_LEN: usize = 10;

/// The longest header a client can send: a server header plus the 4-byte
/// masking key every client frame carries.
pub const MAX_CLIENT_HEADER_LEN: usize = MAX_HEADER_LEN + 4;

/// Control frame payloads are at most 125 bytes (§5.5), so their length
/// always fits the 7-bit field.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

const FIN: u8 = 0x80;
const RSV_BITS: u8 = 0x70;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LEN_BITS: u8 = 0x7F;
const LEN_16: u8 = 126;
const LEN_64: u8 = 127;

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload_len: u64,
    pub mask: [u8; 4],
    /// Bytes the header itself occupies: 6, 8 or 14.
    pub header_len: usize,
}

/// Parses a client frame header from the start of `bytes`.
///
/// Returns None when `bytes` is a valid but incomplete header prefix; any
/// `MAX_CLIENT_HEADER_LEN` bytes are always enough to decide. Only rules
/// the header alone can break are checked here; the order of frames and
/// the message size limit are the decoder's.
pub fn parse_header(bytes: &[u8]) -> Result<Option<Header>, &'static ProtocolError> {
    let [b0, rest @ ..] = bytes else {
        return Ok(None);
    };
    let fin = b0 & FIN != 0;
    // §5.2: RSV bits must be 0 unless an extension defines them, and
    // Parley negotiates none.
    if b0 & RSV_BITS != 0 {
        return Err(&ProtocolError::RESERVED_BITS);
    }
    // §5.2: an unknown opcode fails the connection.
    let opcode = Opcode::from_bits(b0 & OPCODE_BITS).ok_or(&ProtocolError::RESERVED_OPCODE)?;
    // §5.5: control frames must not be fragmented.
    if opcode.is_control() && !fin {
        return Err(&ProtocolError::FRAGMENTED_CONTROL);
    }

    let [b1, rest @ ..] = rest else {
        return Ok(None);
    };
    // §5.1: a server must close on any unmasked client frame.
    if b1 & MASK_BIT == 0 {
        return Err(&ProtocolError::UNMASKED);
    }
    let len7 = b1 & LEN_BITS;
    // §5.5: control payloads fit in 125 bytes.
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(&ProtocolError::CONTROL_TOO_LONG);
    }

    let Some((payload_len, rest)) = extended_length(len7, rest)? else {
        return Ok(None);
    };
    let Some((mask, rest)) = rest.split_first_chunk::<4>() else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        payload_len,
        mask: *mask,
        header_len: bytes.len() - rest.len(),
    }))
}

/// Reads the payload length that follows the 7-bit field, returning it
/// with the bytes after it, or None when those bytes have not arrived.
fn extended_length(len7: u8, rest: &[u8]) -> Result<Option<(u64, &[u8])>, &'static ProtocolError> {
    match len7 {
        LEN_16 => {
            let Some((ext, rest)) = rest.split_first_chunk::<2>() else {
                return Ok(None);
            };
            let len = u16::from_be_bytes(*ext);
            // §5.2: the minimal number of bytes must be used.
            if len < u16::from(LEN_16) {
                return Err(&ProtocolError::NON_MINIMAL_LENGTH);
            }
            Ok(Some((u64::from(len), rest)))
        }
        LEN_64 => {
            let Some((ext, rest)) = rest.split_first_chunk::<8>() else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(*ext);
            // §5.2: the most significant bit of a 64-bit length must be 0.
            if len >> 63 != 0 {
                return Err(&ProtocolError::LENGTH_HIGH_BIT);
            }
            if len <= u64::from(u16::MAX) {
                return Err(&ProtocolError::NON_MINIMAL_LENGTH);
            }
            Ok(Some((len, rest)))
        }
        short => Ok(Some((u64::from(short), rest))),
    }
}

/// Unmasks `bytes` in place (§5.3) and rotates `mask` so that the next
/// call continues where this one stopped, whatever the chunk lengths.
pub fn unmask(bytes: &mut [u8], mask: &mut [u8; 4]) {
    // Eight bytes at a time: the key repeats every four, so a word-wide
    // key is the key twice.
    let [a, b, c, d] = *mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = bytes.chunks_exact_mut(8);
    for word in &mut words {
        let mut block = [0; 8];
        block.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(block) ^ wide).to_ne_bytes());
    }
    let tail = words.into_remainder();
    for (byte, key) in tail.iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
    mask.rotate_left(tail.len() % 4);
}

/// Writes a FIN, unmasked server frame header for a payload of `len` bytes
/// into the start of `buf`; returns the header length (2, 4 or 10), using
/// the shortest length encoding as §5.2 requires.
pub fn encode_header(opcode: Opcode, len: usize, buf: &mut [u8; MAX_HEADER_LEN]) -> usize {
    buf[0] = FIN | opcode.bits();
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if usize::from(short) <= MAX_CONTROL_PAYLOAD => {
            buf[1] = short;
            2
        }
        (_, Ok(medium)) => {
            buf[1] = LEN_16;
            buf[2..4].copy_from_slice(&medium.to_be_bytes());
            4
        }
        _ => {
            // usize is at most 64 bits on every target Rust supports.
            let long = u64::try_from(len).unwrap_or(u64::MAX);
            buf[1] = LEN_64;
            buf[2..10].copy_from_slice(&long.to_be_bytes());
            10
        }
    }
}

/// Appends a whole FIN unmasked frame.
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    let mut head = [0; MAX_HEADER_LEN];
    let head_len = encode_header(opcode, payload.len(), &mut head);
    out.reserve(head_len + payload.len());
    out.extend_from_slice(&head[..head_len]);
    out.extend_from_slice(payload);
}

/// Appends a close frame; the reason is truncated at a char boundary so the
/// payload fits in 125 bytes (§5.5). The code is written as given: callers
/// must not send the reserved codes 1005, 1006 or 1015 (§7.4.1).
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let room = MAX_CONTROL_PAYLOAD - 2;
    let mut end = reason.len().min(room);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = reason.get(..end).unwrap_or_default();

    let mut payload = [0; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    write_frame(out, Opcode::Close, &payload[..2 + reason.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header a client would send for the same frame: mask bit set and
    /// a key after the length.
    fn as_client_header(server: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = server.to_vec();
        out[1] |= MASK_BIT;
        out.extend_from_slice(&mask);
        out
    }

    #[test]
    fn opcode_bits_round_trip_and_reserved_are_refused() {
        for bits in 0..=0x0F {
            match Opcode::from_bits(bits) {
                Some(op) => assert_eq!(op.bits(), bits),
                None => assert!(matches!(bits, 0x3..=0x7 | 0xB..=0xF)),
            }
        }
        assert!(Opcode::Ping.is_control() && !Opcode::Binary.is_control());
    }

    #[test]
    fn encode_header_is_minimal_and_round_trips() {
        let cases: &[(usize, usize, &[u8])] = &[
            (0, 2, &[0x82, 0]),
            (125, 2, &[0x82, 125]),
            (126, 4, &[0x82, 126, 0, 126]),
            (65535, 4, &[0x82, 126, 0xFF, 0xFF]),
            (65536, 10, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
            (
                usize::MAX,
                10,
                &[0x82, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ];
        for &(len, want_len, want) in cases {
            let mut buf = [0; MAX_HEADER_LEN];
            let n = encode_header(Opcode::Binary, len, &mut buf);
            assert_eq!((n, &buf[..n]), (want_len, want), "len {len}");
            if len >> 63 != 0 {
                continue; // not a legal wire length; covered by the error table
            }
            let client = as_client_header(&buf[..n], [1, 2, 3, 4]);
            let head = parse_header(&client).unwrap().unwrap();
            assert_eq!(head.payload_len, u64::try_from(len).unwrap());
            assert_eq!(head.header_len, n + 4);
            assert_eq!(
                (head.fin, head.opcode, head.mask),
                (true, Opcode::Binary, [1, 2, 3, 4])
            );
        }
    }

    #[test]
    fn header_errors() {
        type Case = (&'static [u8], u16, &'static str);
        let cases: &[Case] = &[
            (&[0xC1, 0x80], 1002, "rsv1"),
            (&[0xA1, 0x80], 1002, "rsv2"),
            (&[0x91, 0x80], 1002, "rsv3"),
            (&[0x83], 1002, "opcode 3"),
            (&[0x87], 1002, "opcode 7"),
            (&[0x8B], 1002, "opcode B"),
            (&[0x8F], 1002, "opcode F"),
            (&[0x09], 1002, "ping without FIN"),
            (&[0x08], 1002, "close without FIN"),
            (&[0x81, 0x05], 1002, "unmasked"),
            (&[0x89, 0xFE], 1002, "ping with 16-bit length"),
            (&[0x89, 0xFF], 1002, "ping with 64-bit length"),
            (&[0x82, 0xFE, 0, 125], 1002, "16-bit length 125"),
            (
                &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
                1002,
                "64-bit length 65535",
            ),
            (
                &[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
                1002,
                "64-bit length 2^63",
            ),
        ];
        for &(bytes, code, what) in cases {
            let err = parse_header(bytes).unwrap_err();
            assert_eq!(err.code, code, "{what}");
        }
    }

    #[test]
    fn header_limits_accept_boundaries() {
        let cases: &[(&[u8], u64)] = &[
            (&[0x89, 0xFD, 1, 2, 3, 4], 125),
            (&[0x82, 0xFE, 0, 126, 1, 2, 3, 4], 126),
            (&[0x82, 0xFE, 0xFF, 0xFF, 1, 2, 3, 4], 65535),
            (&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4], 65536),
            (
                &[
                    0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
                ],
                (1 << 63) - 1,
            ),
        ];
        for &(bytes, len) in cases {
            let head = parse_header(bytes).unwrap().unwrap();
            assert_eq!((head.payload_len, head.header_len), (len, bytes.len()));
            // Every strict prefix is "need more", never an error.
            for cut in 0..bytes.len() {
                assert_eq!(parse_header(&bytes[..cut]), Ok(None), "cut {cut}");
            }
        }
    }

    #[test]
    fn unmask_is_independent_of_chunking() {
        let key = [0x37, 0xFA, 0x21, 0x3D];
        let plain: Vec<u8> = (0..=40).collect();
        let mut masked = plain.clone();
        unmask(&mut masked, &mut key.clone());
        for cut_a in 0..plain.len() {
            for cut_b in cut_a..plain.len() {
                let mut bytes = masked.clone();
                let mut mask = key;
                let (a, rest) = bytes.split_at_mut(cut_a);
                let (b, c) = rest.split_at_mut(cut_b - cut_a);
                unmask(a, &mut mask);
                unmask(b, &mut mask);
                unmask(c, &mut mask);
                assert_eq!(bytes, plain);
            }
        }
    }

    #[test]
    fn write_frame_and_close() {
        let mut out = Vec::new();
        write_frame(&mut out, Opcode::Text, b"Hello");
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);

        let mut out = Vec::new();
        write_close(&mut out, 1000, "");
        assert_eq!(out, [0x88, 0x02, 0x03, 0xE8]);

        // 123 bytes of reason fit exactly; one more is cut.
        let cases: &[(String, usize)] = &[
            ("a".repeat(123), 123),
            ("a".repeat(124), 123),
            // 'é' is two bytes: 61 of them are 122 bytes, a 62nd would not fit.
            ("é".repeat(70), 122),
            (format!("{}€", "a".repeat(121)), 121),
        ];
        for (reason, kept) in cases {
            let mut out = Vec::new();
            write_close(&mut out, 1001, reason);
            assert_eq!(usize::from(out[1]), 2 + kept);
            assert_eq!(&out[2..4], &[0x03, 0xE9]);
            assert!(std::str::from_utf8(&out[4..]).is_ok());
            assert!(reason.starts_with(std::str::from_utf8(&out[4..]).unwrap()));
        }
    }
}
