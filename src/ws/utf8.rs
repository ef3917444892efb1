//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be cut anywhere: between frames, between reads, even
//! inside one multi-byte character. RFC 6455 §8.1 lets an endpoint fail the
//! connection as soon as the bytes seen so far can no longer be the start of
//! valid UTF-8, and Autobahn (cases 6.4.x) expects exactly that, before the
//! rest of the frame arrives. So the validator keeps only the state of a
//! character cut at a boundary (one byte), checks each new chunk once, and
//! never looks at earlier chunks again: total work is linear in the message.
//!
//! Whole chunks go through `std::str::from_utf8`, which is fast and exact;
//! only the few bytes of a character split across chunks walk the small
//! state machine below. Both accept the same language (Unicode 3.9, table
//! 3-7: no overlongs, no surrogates, nothing above U+10FFFF).

/// The bytes seen so far are not a prefix of any valid UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Where the validator stands inside a multi-byte character.
///
/// The names give the constraint on the next byte; `Tail` variants accept
/// any continuation byte (0x80..=0xBF).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Between characters.
    #[default]
    Start,
    /// One continuation byte still to come.
    Tail1,
    /// Two continuation bytes still to come.
    Tail2,
    /// Three continuation bytes still to come.
    Tail3,
    /// After 0xE0: next in 0xA0..=0xBF (else overlong).
    AfterE0,
    /// After 0xED: next in 0x80..=0x9F (else a surrogate).
    AfterED,
    /// After 0xF0: next in 0x90..=0xBF (else overlong).
    AfterF0,
    /// After 0xF4: next in 0x80..=0x8F (else above U+10FFFF).
    AfterF4,
}

impl State {
    /// Advances by one byte, or fails when the byte cannot follow.
    fn step(self, byte: u8) -> Result<State, InvalidUtf8> {
        let next = match (self, byte) {
            (State::Start, 0x00..=0x7F) => State::Start,
            (State::Start, 0xC2..=0xDF) => State::Tail1,
            (State::Start, 0xE0) => State::AfterE0,
            (State::Start, 0xE1..=0xEC | 0xEE..=0xEF) => State::Tail2,
            (State::Start, 0xED) => State::AfterED,
            (State::Start, 0xF0) => State::AfterF0,
            (State::Start, 0xF1..=0xF3) => State::Tail3,
            (State::Start, 0xF4) => State::AfterF4,
            (State::Tail1, 0x80..=0xBF) => State::Start,
            (State::Tail2, 0x80..=0xBF) => State::Tail1,
            (State::Tail3, 0x80..=0xBF) => State::Tail2,
            (State::AfterE0, 0xA0..=0xBF) => State::Tail1,
            (State::AfterED, 0x80..=0x9F) => State::Tail1,
            (State::AfterF0, 0x90..=0xBF) => State::Tail2,
            (State::AfterF4, 0x80..=0x8F) => State::Tail2,
            _ => return Err(InvalidUtf8),
        };
        Ok(next)
    }
}

/// Validates a byte stream chunk by chunk; one byte of state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    state: State,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            state: State::Start,
        }
    }

    /// Forgets any partial character, ready for a new message.
    pub fn reset(&mut self) {
        self.state = State::Start;
    }

    /// True when the bytes so far end on a character boundary, so the
    /// message may end here.
    pub fn is_complete(&self) -> bool {
        self.state == State::Start
    }

    /// Checks the next chunk of the stream. Fails as soon as the stream so
    /// far cannot be extended to valid UTF-8; a character cut at the end of
    /// `chunk` is remembered, not reported. After an error the state is
    /// unspecified: call `reset` before reuse.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), InvalidUtf8> {
        let mut rest = chunk;

        // Finish a character left open by the previous chunk (at most three
        // bytes), so that `rest` starts on a character boundary.
        while self.state != State::Start {
            let Some((&byte, tail)) = rest.split_first() else {
                return Ok(());
            };
            self.state = self.state.step(byte)?;
            rest = tail;
        }

        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            // `error_len` is Some for a definite error, None when the chunk
            // merely ends inside a character.
            Err(err) if err.error_len().is_some() => Err(InvalidUtf8),
            Err(err) => {
                let cut = rest.get(err.valid_up_to()..).unwrap_or_default();
                for &byte in cut {
                    self.state = self.state.step(byte)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` one byte at a time; returns the index of the byte that
    /// made the stream invalid, or None with the completeness at the end.
    fn first_failure(bytes: &[u8]) -> Result<bool, usize> {
        let mut v = Utf8Validator::new();
        for (i, &b) in bytes.iter().enumerate() {
            v.feed(&[b]).map_err(|_| i)?;
        }
        Ok(v.is_complete())
    }

    /// The same question answered by std on every prefix: the first index
    /// at which the prefix stops being a prefix of valid UTF-8.
    fn std_first_failure(bytes: &[u8]) -> Result<bool, usize> {
        for end in 1..=bytes.len() {
            if let Err(e) = std::str::from_utf8(&bytes[..end]) {
                if e.error_len().is_some() {
                    return Err(end - 1);
                }
            }
        }
        Ok(std::str::from_utf8(bytes).is_ok())
    }

    #[test]
    fn table_of_sequences() {
        // (bytes, index of the failing byte, or complete-at-end)
        let cases: &[(&[u8], Result<bool, usize>)] = &[
            (b"", Ok(true)),
            (b"hello", Ok(true)),
            ("κόσμε".as_bytes(), Ok(true)),
            ("\u{10FFFF}".as_bytes(), Ok(true)),
            ("\u{FFFF}\u{E000}\u{D7FF}".as_bytes(), Ok(true)),
            (&[0xCE], Ok(false)),
            (&[0xF0, 0x9F, 0x98], Ok(false)),
            (&[0x80], Err(0)),
            (&[0xBF], Err(0)),
            (&[0xC0, 0x80], Err(0)),
            (&[0xC1, 0xBF], Err(0)),
            (&[0xF5], Err(0)),
            (&[0xFF], Err(0)),
            (&[0xE0, 0x9F], Err(1)),
            (&[0xED, 0xA0, 0x80], Err(1)),
            (&[0xF0, 0x8F], Err(1)),
            (&[0xF4, 0x90], Err(1)),
            (
                &[
                    0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0,
                    0x80,
                ],
                Err(12),
            ),
            (&[b'a', 0xE1, 0x80, b'b'], Err(3)),
        ];
        for (bytes, want) in cases {
            assert_eq!(first_failure(bytes), *want, "{bytes:02X?}");
            assert_eq!(std_first_failure(bytes), *want, "{bytes:02X?}");
        }
    }

    #[test]
    fn every_split_point_agrees_with_std() {
        let samples: &[&[u8]] = &[
            "aκόσμε\u{10000}z".as_bytes(),
            &[0x61, 0xF0, 0x90, 0x80, 0x80, 0xED, 0x9F, 0xBF],
            &[0x61, 0xF0, 0x90, 0x80, 0xC0],
            &[0xE0, 0xA0],
        ];
        for bytes in samples {
            let whole = std::str::from_utf8(bytes).is_ok();
            for cut in 0..=bytes.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&bytes[..cut]).is_ok() && v.feed(&bytes[cut..]).is_ok();
                assert_eq!(ok && v.is_complete(), whole, "{bytes:02X?} cut {cut}");
            }
        }
    }

    #[test]
    fn reset_forgets_partial_character() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xE2, 0x82]).unwrap();
        assert!(!v.is_complete());
        v.reset();
        assert!(v.is_complete());
        v.feed(b"ok").unwrap();
    }

    proptest! {
        #[test]
        fn byte_at_a_time_fails_where_std_does(
            bytes in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            prop_assert_eq!(first_failure(&bytes), std_first_failure(&bytes));
        }

        #[test]
        fn random_chunks_agree_with_std(
            text in "\\PC{0,40}",
            noise in proptest::collection::vec(any::<u8>(), 0..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut bytes = text.into_bytes();
            let at = bytes.len() / 2;
            bytes.splice(at..at, noise);
            let mut points: Vec<usize> =
                cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();

            let mut v = Utf8Validator::new();
            let ok = points
                .windows(2)
                .all(|w| v.feed(&bytes[w[0]..w[1]]).is_ok());
            let whole = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(ok && v.is_complete(), whole);
        }
    }
}
