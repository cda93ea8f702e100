//! Each connection's reading thread in the blocking server, and how a closed connection
//! lingers so its peer reads our last bytes before we let go of the socket.

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use kms_plugin_core::ConnId;
use zeroize::Zeroize;

use super::Shared;

pub(super) fn connection_loop(shared: &Shared, stream: UnixStream, conn: ConnId) {
    read_connection(shared, stream, conn);
    shared.socket_closed();
}

/// Reads `conn` until EOF or until the core closes it. Backpressure (the loop contract): the
/// bytes a read makes the core produce are written by this thread, after unlocking, before
/// it reads again (a peer that does not read blocks it in `write`, for at most the write
/// timeout, after which the connection is shut down). So the core's queue is empty whenever
/// this thread reads, and `Plugin::wants_read` is false only for a closed connection, which
/// the writer map already tells.
fn read_connection(shared: &Shared, mut stream: UnixStream, conn: ConnId) {
    // Wakes an idle reader every LINGER: once we closed the connection and the peer stayed
    // silent that long, the thread ends (a blocked read is not woken by our half-close).
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.lock().writers.contains_key(&conn) {
                    continue;
                }
                return;
            }
            Err(_) => 0,
        };
        let mut open = true;
        shared.with(|st| {
            let now = st.driver.now();
            open = n > 0 && st.writers.contains_key(&conn);
            let _ = if open {
                st.driver.plugin.handle_bytes(conn, &buf[..n], now)
            } else {
                st.driver.plugin.handle_eof(conn, now)
            };
        });
        buf[..n].zeroize();
        if !open {
            if n > 0 {
                linger(&mut stream, &mut buf);
            }
            return;
        }
    }
}

/// How long a closed connection's socket is still read (and the input dropped) so the peer
/// can read our last bytes and hang up first; also what shutdown waits for that at most.
pub const LINGER: Duration = Duration::from_secs(2);

/// Reads and drops whatever the peer still sends after we half-closed, until it hangs up or
/// [`LINGER`] is over.
fn linger(stream: &mut UnixStream, buf: &mut [u8]) {
    let deadline = Instant::now() + LINGER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf[..n].zeroize(),
        }
    }
}
