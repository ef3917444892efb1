//! A connection's outbound queue: whole frames waiting for the socket.
//!
//! Shared room frames are queued by reference (one allocation for every
//! recipient); per-connection replies are copied into an owned chunk that
//! later small replies extend. A flush hands up to `MAX_IOVECS` chunks to
//! one `writev`. The queue tracks its byte count so the reactor can cut off
//! a consumer that falls behind, and drops its allocation when it empties so
//! an idle connection costs nothing here.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::chat::wire::Frame;

/// Chunks handed to one `writev`; Linux allows 1024, 64 covers any burst
/// that fits a socket buffer.
const MAX_IOVECS: usize = 64;

/// An owned chunk stops growing past this, so one reply burst cannot make a
/// single large allocation that then lingers.
const OWNED_CHUNK_MAX: usize = 16 * 1024;

enum Chunk {
    Shared(Frame),
    Owned(Vec<u8>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Shared(f) => f,
            Chunk::Owned(v) => v,
        }
    }
}

/// The queue; allocated only while something waits, so an idle
/// connection carries one null pointer here.
#[derive(Default)]
pub struct OutQueue {
    inner: Option<Box<Inner>>,
}

#[derive(Default)]
struct Inner {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    sent: usize,
    /// Bytes queued and not yet written; never 0 while `Inner` exists.
    queued: usize,
}

impl OutQueue {
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.queued)
    }

    fn inner(&mut self) -> &mut Inner {
        self.inner.get_or_insert_with(Box::default)
    }

    /// Queues a frame shared with other connections.
    pub fn push_shared(&mut self, frame: Frame) {
        if frame.is_empty() {
            return;
        }
        let inner = self.inner();
        inner.queued += frame.len();
        inner.chunks.push_back(Chunk::Shared(frame));
    }

    /// Queues bytes owned by this connection alone.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let inner = self.inner();
        inner.queued += bytes.len();
        if let Some(Chunk::Owned(last)) = inner.chunks.back_mut() {
            if last.len() + bytes.len() <= OWNED_CHUNK_MAX {
                last.extend_from_slice(bytes);
                return;
            }
        }
        inner.chunks.push_back(Chunk::Owned(bytes.to_vec()));
    }

    /// Queues an owned buffer without copying it.
    pub fn push_vec(&mut self, bytes: Vec<u8>) {
        if bytes.len() < 256 {
            return self.push_bytes(&bytes);
        }
        let inner = self.inner();
        inner.queued += bytes.len();
        inner.chunks.push_back(Chunk::Owned(bytes));
    }

    /// Writes as much as one `writev` takes. Returns the bytes written and
    /// whether the socket took less than was offered (it is full).
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<(usize, bool)> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok((0, false));
        };
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut offered = 0;
        let mut count = 0;
        for (i, chunk) in inner.chunks.iter().take(MAX_IOVECS).enumerate() {
            let bytes = chunk.bytes();
            let bytes = if i == 0 {
                bytes.get(inner.sent..).unwrap_or_default()
            } else {
                bytes
            };
            slices[i] = IoSlice::new(bytes);
            offered += bytes.len();
            count = i + 1;
        }
        let n = w.write_vectored(&slices[..count])?;
        inner.advance(n);
        if inner.queued == 0 {
            // Give the queue back: idle connections hold no buffers.
            self.inner = None;
        }
        Ok((n, n < offered))
    }

    /// Drops everything not yet started, keeping a partly written frame so
    /// the stream stays well-formed for a close frame queued after it.
    pub fn drop_unsent(&mut self) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let keep = usize::from(inner.sent > 0);
        while inner.chunks.len() > keep {
            if let Some(chunk) = inner.chunks.pop_back() {
                inner.queued -= chunk.bytes().len();
            }
        }
        if inner.queued == 0 {
            self.inner = None;
        }
    }
}

impl Inner {
    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.sent;
            if n < left {
                self.sent += n;
                return;
            }
            n -= left;
            self.sent = 0;
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer that accepts at most `cap` bytes per call.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.cap);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut total = 0;
            for b in bufs {
                let n = self.write(&b[..b.len().min(self.cap - total)])?;
                total += n;
                if total == self.cap {
                    break;
                }
            }
            Ok(total)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut q = OutQueue::default();
        let shared: Frame = Arc::from(&b"shared-frame"[..]);
        q.push_bytes(b"ab");
        q.push_shared(shared.clone());
        q.push_bytes(b"cd");
        q.push_shared(shared);
        let total = q.len();
        let mut w = Trickle {
            got: Vec::new(),
            cap: 5,
        };
        let mut rounds = 0;
        while !q.is_empty() {
            let before = q.len();
            let (n, full) = q.write_to(&mut w).unwrap();
            assert_eq!(n, before.min(5));
            assert_eq!(full, n < before);
            rounds += 1;
        }
        assert_eq!(w.got, b"abshared-framecdshared-frame");
        assert_eq!(rounds, total.div_ceil(5));
        assert!(q.inner.is_none(), "an empty queue frees its allocation");
    }

    #[test]
    fn small_owned_replies_coalesce() {
        let mut q = OutQueue::default();
        q.push_bytes(b"one");
        q.push_vec(b"two".to_vec());
        assert_eq!(q.inner.as_ref().map(|i| i.chunks.len()), Some(1));
        assert_eq!(q.len(), 6);
    }

    #[test]
    fn drop_unsent_keeps_a_started_frame() {
        let mut q = OutQueue::default();
        q.push_shared(Arc::from(&b"0123456789"[..]));
        q.push_shared(Arc::from(&b"abcdef"[..]));
        let mut w = Trickle {
            got: Vec::new(),
            cap: 4,
        };
        q.write_to(&mut w).unwrap();
        q.drop_unsent();
        assert_eq!(q.len(), 6, "rest of the started frame stays");
        q.push_bytes(b"CLOSE");
        w.cap = 100;
        q.write_to(&mut w).unwrap();
        assert_eq!(w.got, b"0123456789CLOSE");
    }
}
