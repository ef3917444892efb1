//! The only place connections touch their sockets: reading until the kernel
//! has nothing more (edge-triggered readiness), and flushing the outbound
//! queue with one `writev`, holding WRITABLE interest only while bytes wait.

use std::io::{self, ErrorKind, Read};
use std::net::Shutdown;

use mio::{Interest, Registry, Token};

use super::conn::{Conn, Phase};
use super::ctx::Ctx;
use super::input;

/// Bytes read from one connection per pass before others get a turn; the
/// connection is revisited on the next pass without waiting for an event.
const READ_BUDGET: usize = 256 * 1024;

/// Reads until `WouldBlock`, end of stream, or the budget. Edge-triggered
/// readiness fires once per arrival, so stopping early without a revisit
/// would strand bytes in the kernel.
pub fn read_ready(key: usize, conn: &mut Conn, ctx: &mut Ctx, scratch: &mut [u8]) {
    let mut taken = 0;
    while !conn.dead {
        match conn.socket.read(scratch) {
            Ok(0) => {
                log::debug!("conn={}:{key} peer closed", ctx.id);
                ctx.mark_dead(key, conn);
            }
            Ok(n) => {
                let Some(bytes) = scratch.get_mut(..n) else {
                    break;
                };
                conn.last_rx = ctx.clock.secs;
                conn.ping_sent = false;
                input::on_bytes(key, conn, ctx, bytes);
                taken += n;
                if taken >= READ_BUDGET && !conn.dead {
                    ctx.revisit.push(key);
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug!("conn={}:{key} read error: {e}", ctx.id);
                ctx.mark_dead(key, conn);
            }
        }
    }
    if !conn.out.is_empty() {
        ctx.mark_dirty(key, conn);
    }
}

/// Writes queued output. A short write means the socket buffer is full, so
/// WRITABLE interest is added instead of trying again at once; it is dropped
/// as soon as the queue empties.
pub fn flush(key: usize, conn: &mut Conn, ctx: &mut Ctx, registry: &Registry) {
    conn.dirty = false;
    if conn.dead {
        return;
    }
    let mut blocked = false;
    while !conn.out.is_empty() {
        match conn.out.write_to(&mut conn.socket) {
            Ok((0, _)) => {
                ctx.mark_dead(key, conn);
                return;
            }
            Ok((_, full)) => {
                if full {
                    blocked = true;
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug!("conn={}:{key} write error: {e}", ctx.id);
                ctx.mark_dead(key, conn);
                return;
            }
        }
    }
    if blocked != conn.writable {
        if let Err(e) = set_writable(key, conn, registry, blocked) {
            log::warn!("conn={}:{key} reregister failed: {e}", ctx.id);
            ctx.mark_dead(key, conn);
            return;
        }
    }
    if input::is_behind(conn, &ctx.config) {
        // Cutting off queues a close frame; the next pass flushes it.
        input::cut_off(key, conn, ctx);
    } else if conn.out.is_empty() {
        finish_close(key, conn, ctx);
    }
}

fn set_writable(key: usize, conn: &mut Conn, registry: &Registry, on: bool) -> io::Result<()> {
    let interest = if on {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    };
    registry.reregister(&mut conn.socket, Token(key), interest)?;
    conn.writable = on;
    Ok(())
}

/// Once a closing connection's last byte is out, shut the write side; the
/// peer sees end of stream after our close frame, and we keep reading
/// (discarding) until it hangs up, so no reset overtakes our last bytes.
fn finish_close(key: usize, conn: &mut Conn, ctx: &mut Ctx) {
    if let Phase::Closing(closing) = &mut conn.phase {
        if !closing.write_shut {
            closing.write_shut = true;
            if conn.socket.shutdown(Shutdown::Write).is_err() {
                ctx.mark_dead(key, conn);
            }
        }
    }
}
