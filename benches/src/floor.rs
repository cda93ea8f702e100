//! The raw Unix-socket request/response floor: a length-prefixed echo protocol with the same
//! message sizes as the gRPC calls, so the table can say how far each server is from "bytes in,
//! bytes out" with no HTTP/2, no protobuf and no crypto.
//!
//! Request: `u32 len | u32 reply_len | padding` (big endian, `len` counts what follows).
//! Reply: `u32 reply_len | reply_len zero bytes`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::h2load::{ConnStats, Window};

/// Serves the echo protocol on `listener`, one thread per connection, forever.
pub fn serve(listener: &UnixListener) -> io::Result<()> {
    for conn in listener.incoming() {
        let conn = conn?;
        std::thread::spawn(move || {
            let _ = echo(conn);
        });
    }
    Ok(())
}

fn echo(mut sock: UnixStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let n = sock.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut pos = 0;
        while let Some(head) = buf[..filled].get(pos..pos + 8) {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let reply = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            if len < 4 || buf.len() < 4 + len {
                return Err(io::Error::other("bad request length"));
            }
            if filled < pos + 4 + len {
                break;
            }
            out.extend_from_slice(&reply.to_be_bytes());
            out.resize(out.len() + reply as usize, 0);
            pos += 4 + len;
        }
        sock.write_all(&out)?;
        out.clear();
        buf.copy_within(pos..filled, 0);
        filled -= pos;
    }
}

/// Runs one closed-loop floor connection: `in_flight` pipelined requests of `request_len`
/// wire bytes, each answered with `reply_len` bytes.
pub fn run_connection(
    socket: &Path,
    request_len: usize,
    reply_len: usize,
    in_flight: usize,
    window: Window,
) -> ConnStats {
    let mut stats = ConnStats::default();
    if let Err(e) = drive(
        socket,
        request_len.max(8),
        reply_len.max(4),
        in_flight,
        window,
        &mut stats,
    ) {
        stats.failure = Some(e.to_string());
    }
    stats
}

fn drive(
    socket: &Path,
    request_len: usize,
    reply_len: usize,
    in_flight: usize,
    window: Window,
    stats: &mut ConnStats,
) -> io::Result<()> {
    let mut sock = UnixStream::connect(socket)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = vec![0u8; request_len];
    request[..4].copy_from_slice(&((request_len - 4) as u32).to_be_bytes());
    request[4..8].copy_from_slice(&((reply_len - 4) as u32).to_be_bytes());
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    let mut to_issue = in_flight;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024 + reply_len];
    let mut filled = 0;
    loop {
        let now = Instant::now();
        if now <= window.end {
            for _ in 0..to_issue {
                out.extend_from_slice(&request);
                sent.push_back(now);
            }
            to_issue = 0;
        } else if sent.is_empty() {
            return Ok(());
        }
        if !out.is_empty() {
            sock.write_all(&out)?;
            out.clear();
        }
        let n = sock.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(io::Error::other("server closed the connection"));
        }
        filled += n;
        let mut pos = 0;
        while filled - pos >= reply_len {
            pos += reply_len;
            let done = Instant::now();
            if let Some(t) = sent.pop_front() {
                if t >= window.start && done <= window.end {
                    stats
                        .latencies_ns
                        .push(done.duration_since(t).as_nanos() as u64);
                }
                if done <= window.end {
                    to_issue += 1;
                }
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
    }
}
