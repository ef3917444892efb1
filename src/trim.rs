//! Handing freed heap pages back to the kernel once a connection storm
//! has passed.
//!
//! A burst of handshakes lives on transient buffers (request heads,
//! `joined` frames listing a room's online users, out-queues for presence
//! frames) interleaved with what each connection keeps. When the burst is
//! over, the transient chunks are free but their pages stay resident:
//! glibc gives back only the top of an arena, never the middle. At 10 000
//! idle sockets that was about 120 bytes of resident memory per socket.
//! `malloc_trim(0)` walks the free chunks and releases whole pages inside
//! them.
//!
//! A thread looks at the accept and connection counters once a second and
//! trims when many connections came or went since the last trim and the
//! last second was calm, so a sustained churn never pays for page faults
//! on memory it is about to reuse. Trimming takes each arena's lock in
//! turn; a reactor allocating meanwhile waits for the walk of one arena.

use std::sync::Arc;
use std::time::Duration;

use crate::stats::{ReactorStats, Stats};

/// How often the counters are looked at.
const PERIOD: Duration = Duration::from_secs(1);
/// Connections opened or closed since the last trim that make a storm.
const STORM: u64 = 1000;
/// Connections opened or closed within the last period that mean the
/// storm is still going on.
const CALM: u64 = 50;

/// Counter readings the decision is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
}

impl Reading {
    fn take(stats: &Stats) -> Reading {
        Reading {
            accepted: stats.sum(|r: &ReactorStats| &r.accepted),
            open: stats.sum(|r: &ReactorStats| &r.connections),
        }
    }

    /// Connections opened plus connections closed since `earlier`.
    fn changes_since(&self, earlier: &Reading) -> u64 {
        let opened = self.accepted.saturating_sub(earlier.accepted);
        let closed = (earlier.open + opened).saturating_sub(self.open);
        opened + closed
    }
}

/// Whether to trim now, given the reading at the last trim, the one a
/// period ago and the current one.
pub fn due(at_last_trim: &Reading, a_period_ago: &Reading, now: &Reading) -> bool {
    now.changes_since(at_last_trim) >= STORM && now.changes_since(a_period_ago) < CALM
}

/// Starts the trimming thread for the life of the process.
pub fn start(stats: Arc<Stats>) -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("mem-trim".into())
        .spawn(move || {
            let mut last_trim = Reading::take(&stats);
            let mut previous = last_trim;
            loop {
                std::thread::sleep(PERIOD);
                let now = Reading::take(&stats);
                if due(&last_trim, &previous, &now) {
                    let released = malloc_trim();
                    log::debug!(
                        "heap trimmed after {} connection changes: released={released}",
                        now.changes_since(&last_trim)
                    );
                    last_trim = now;
                }
                previous = now;
            }
        })?;
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn supported() -> bool {
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn supported() -> bool {
    false
}

/// Whether any memory went back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // The crate's one foreign call; see the SAFETY note.
fn malloc_trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and touches only the
    // allocator's own free lists, under the same arena locks as every
    // malloc and free, so it is sound to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(accepted: u64, open: u64) -> Reading {
        Reading { accepted, open }
    }

    #[test]
    fn a_storm_that_has_passed_is_trimmed() {
        let start = at(0, 0);
        // 5 000 connections arrived, then a quiet second.
        assert!(due(&start, &at(5000, 5000), &at(5000, 5000)));
    }

    #[test]
    fn a_storm_still_going_on_is_left_alone() {
        assert!(!due(&at(0, 0), &at(4000, 4000), &at(5000, 5000)));
    }

    #[test]
    fn a_few_connections_are_no_storm() {
        assert!(!due(&at(0, 0), &at(300, 300), &at(300, 300)));
    }

    #[test]
    fn closing_counts_as_much_as_opening() {
        // 3 000 sockets open at the last trim, all closed since.
        let last = at(3000, 3000);
        assert_eq!(at(3000, 0).changes_since(&last), 3000);
        assert!(due(&last, &at(3000, 0), &at(3000, 0)));
        // 600 new ones replaced 600 that closed: 1 200 changes.
        assert_eq!(at(3600, 3000).changes_since(&last), 1200);
    }

    /// What the thread relies on: small blocks freed in the middle of the
    /// heap (as a storm's transient buffers are) leave pages that only a
    /// trim gives back.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_small_blocks_are_given_back() {
        let blocks: Vec<Vec<u8>> = (0..8192).map(|i| vec![i as u8; 1024]).collect();
        // Allocated after them and kept: the freed blocks are not the
        // top of the heap, which free() would give back by itself.
        let keep = Box::new([1u8; 64]);
        drop(blocks);
        assert!(
            malloc_trim(),
            "8 MiB of freed 1 KiB blocks released nothing"
        );
        assert_eq!(keep[0], 1);
    }
}
