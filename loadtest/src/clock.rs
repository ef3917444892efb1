//! One monotonic epoch for the whole process.
//!
//! Publishers write "nanoseconds since the epoch" into each message and
//! receivers on other threads subtract it from their own reading, so every
//! thread must read the same clock from the same origin. A monotonic clock
//! is immune to wall-clock steps; the price is that sender and receiver must
//! live in one load-test process, which they do.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process epoch (fixed by the first call).
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
