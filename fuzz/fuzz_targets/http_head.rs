//! Fuzzes the request-head parser the way a slow client drives it.
//!
//! The first input byte picks where the rest is cut in two; both pieces
//! are fed as a growing buffer, the way the reactor accumulates reads, and
//! the answer must match parsing the whole input at once. Any panic, and
//! any disagreement between the incremental and one-shot paths, is a bug:
//! the parser's resumable search must not depend on how reads are split.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley::http::{HeadParser, Limits};

/// Small enough that the fuzzer reaches the size limit often.
const LIMITS: Limits = Limits {
    max_head_bytes: 1024,
    max_headers: 16,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    // Scale the selector onto 0..=len so every split point is reachable
    // for short inputs and spread evenly over long ones.
    let split = usize::from(selector) * input.len() / usize::from(u8::MAX);
    let (first, _) = input.split_at(split);

    let whole = HeadParser::new().parse(input, &LIMITS);

    let mut parser = HeadParser::new();
    let pieces = match parser.parse(first, &LIMITS) {
        Ok(None) => parser.parse(input, &LIMITS),
        answer => answer,
    };
    assert_eq!(pieces, whole, "split at {split} disagrees with one-shot");

    if let Ok(Some((_, head_len))) = &whole {
        assert!(*head_len <= input.len().min(LIMITS.max_head_bytes));
    }
});
