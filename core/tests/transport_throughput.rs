//! Throughput of the transport alone (no KMS): complete unary exchanges through one
//! connection, measured with a wall clock. Ignored by default; run in release:
//! `cargo test --release -p kms-plugin-core --test transport_throughput -- --ignored --nocapture`
#![allow(clippy::disallowed_methods)] // Instant::now: this test measures wall time.

mod raw_peer;
use raw_peer::*;
use std::time::Instant;

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn unary_exchanges_per_second() {
    const N: u32 = 200_000;
    let mut conn = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut hello = PREFACE.to_vec();
    hello.extend(settings_frame(&[]));
    hello.extend(raw_frame(4, 1, 0, &[]));
    hello.extend(window_update_frame(0, (1 << 31) - 1 - 65_535));
    conn.handle_bytes(&hello, Timestamp::ZERO);
    let message = [0x5a_u8; 100];
    // Stream ids must increase; build each request's bytes on the fly into one buffer.
    let headers = block(GOOD);
    let data = grpc_message(&message);
    let mut input = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    for i in 0..N {
        let s = 2 * i + 1;
        input.clear();
        input.extend(raw_frame(1, 0x4, s, &headers));
        input.extend(raw_frame(0, 0x1, s, &data));
        conn.handle_bytes(&input, Timestamp::ZERO);
        let req = conn.poll_request().expect("request");
        let Request {
            stream, message, ..
        } = req;
        conn.respond(stream, Response::ok(message), Timestamp::ZERO);
        out.clear();
        conn.poll_transmit(&mut out);
        while conn.poll_event().is_some() {}
    }
    let elapsed = start.elapsed();
    println!(
        "{N} unary exchanges (100-byte message) in {elapsed:?}: {:.0} ns each, {:.0}/s (includes building the input frames)",
        elapsed.as_secs_f64() * 1e9 / f64::from(N),
        f64::from(N) / elapsed.as_secs_f64()
    );
}
