//! Listening sockets: one per reactor, all bound to the same address with
//! SO_REUSEPORT, so the kernel spreads new connections over the reactors.
//!
//! Why not one acceptor thread handing sockets over: with SO_REUSEPORT each
//! accept happens on the thread that will own the connection, so there is no
//! cross-thread hand-off, no extra wake-up per connection and no acceptor to
//! become the bottleneck during reconnect storms. The cost is that the
//! kernel balances by hash, not by load; with many short-lived clients the
//! spread is even. (`parley-loadtest churn` measures handshakes/s.)

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// Binds `count` listeners on `addr`. Port 0 picks one free port for all.
/// Returns them with the address actually bound.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    if addr.port() != 0 {
        ensure_free(addr)?;
    }
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![TcpListener::from_std(first)];
    for _ in 1..count {
        listeners.push(TcpListener::from_std(bind_one(bound)?));
    }
    Ok((listeners, bound))
}

/// SO_REUSEPORT would let a second server of the same user share the port
/// silently; a plain bind first makes "address in use" an error again.
fn ensure_free(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())
}

fn bind_one(addr: SocketAddr) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Accept errors that mean "out of a resource", after which retrying at
/// once would spin: back off instead.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_binds_every_listener_to_one_port() {
        let (ls, addr) = bind_all("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(ls.len(), 3);
        assert_ne!(addr.port(), 0);
        for l in &ls {
            assert_eq!(l.local_addr().unwrap(), addr);
        }
    }

    #[test]
    fn a_taken_port_is_refused() {
        let (_ls, addr) = bind_all("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let err = bind_all(addr, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
