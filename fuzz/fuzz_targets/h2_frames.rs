//! One HTTP/2 server connection (`kms_plugin_testkit::Connection`) fed arbitrary bytes,
//! after a valid preface + SETTINGS or without, in fuzzer-chosen chunks, with time steps, EOF
//! and graceful shutdown; every complete request is answered (OK with a body, an error, or
//! left pending for a while).
//!
//! Input: `flags | (op | arg | chunk)*`. `flags` bit 0: start with a valid preface and
//! SETTINGS; bit 1: follow it with a valid request.
//!
//! Checks: no panic; the server's output is always well-formed HTTP/2 with decodable header
//! blocks ([`ServerOutput`]); requests come out only on odd stream ids, each at most once;
//! `poll_timeout()` after `handle_timeout(now)` is after `now`; a closed connection stays
//! closed and writes nothing more.
#![no_main]

use std::collections::BTreeSet;

use kms_plugin_core::Timestamp;
use kms_plugin_core::TransportConfig;
use kms_plugin_testkit::Connection;
use kms_plugin_core::rpc::{Code, Response};
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_fuzz::{PATHS, ServerOutput, client_start, request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Timestamp::from_millis(1_000);
    let mut conn = Connection::new(&TransportConfig::default(), now);
    let mut out = ServerOutput::default();
    let mut seen = BTreeSet::new();
    let mut pending: Vec<u32> = Vec::new();
    let mut closed = false;
    let mut buf = Vec::new();

    let mut input = Vec::new();
    if flags & 1 != 0 {
        client_start(&mut input);
        if flags & 2 != 0 {
            request(&mut input, 1, PATHS[0], &[], Some("1S"));
        }
    }
    conn.handle_bytes(&input, now);

    let mut step =
        |conn: &mut Connection, now: Timestamp, pending: &mut Vec<u32>, closed: &mut bool| {
            while let Some(req) = conn.poll_request() {
                assert!(req.stream % 2 == 1, "request on even stream {}", req.stream);
                assert!(
                    seen.insert(req.stream),
                    "stream {} delivered twice",
                    req.stream
                );
                pending.push(req.stream);
            }
            while conn.poll_cancelled().is_some() {}
            while conn.poll_event().is_some() {}
            buf.clear();
            while conn.poll_transmit(&mut buf) {}
            if *closed {
                assert!(buf.is_empty(), "bytes after close");
            }
            out.feed(&buf);
            if conn.is_closed() {
                *closed = true;
            }
            let _ = now;
        };
    step(&mut conn, now, &mut pending, &mut closed);

    while let [op, arg, tail @ ..] = rest {
        let n = usize::from(*arg).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        match op % 8 {
            0..=2 => conn.handle_bytes(chunk, now),
            3 => {
                // Answer the oldest pending request: OK with a body, or an error.
                if !pending.is_empty() {
                    let stream = pending.remove(0);
                    let response = if arg % 3 == 0 {
                        Response::error(Code::InvalidArgument, "bad request")
                    } else {
                        Response::ok(SecretBytes::new(chunk.to_vec()))
                    };
                    conn.respond(stream, response, now);
                }
            }
            4 => {
                now = now.saturating_add(core::time::Duration::from_millis(u64::from(*arg) * 40));
                if conn.poll_timeout().is_some_and(|t| t <= now) {
                    conn.handle_timeout(now);
                }
                if let Some(t) = conn.poll_timeout() {
                    assert!(t > now, "deadline not after now after handle_timeout");
                }
            }
            5 if *arg == 0 => conn.handle_eof(now),
            6 if *arg < 8 => conn.start_shutdown(now),
            _ => conn.handle_bytes(chunk, now),
        }
        step(&mut conn, now, &mut pending, &mut closed);
    }
});
