//! Graceful shutdown with GOAWAY (RFC 9113 §6.8).

mod transport_support;
use core::time::Duration;
use transport_support::*;

#[test]
fn graceful_shutdown_finishes_in_flight_and_refuses_new_streams() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.send(&bytes);
    p.conn.start_shutdown(p.now);
    p.drive(&mut |_| None);
    assert_eq!(p.client.goaway(), Some((s, 0)));
    assert!(p.saw(|e| *e == ConnEvent::ShutdownStarted { last_stream: s }));
    // A stream the client opened before seeing GOAWAY is refused.
    let (s2, bytes) = p.client.unary("/x", b"b", &opts());
    p.send(&bytes);
    assert_eq!(
        p.client.take_response(s2).expect("refused").reset,
        Some(Reason::REFUSED_STREAM.0)
    );
    assert!(!p.conn.is_closed());
    p.conn
        .respond(s, Response::ok(SecretBytes::copy_from(b"done")), p.now);
    p.drive(&mut |_| None);
    assert_eq!(
        p.client.take_response(s).expect("r").message.as_deref(),
        Some(&b"done"[..])
    );
    assert!(p.conn.is_closed());
    assert!(p.saw(|e| *e
        == ConnEvent::Closed {
            reason: Reason::NO_ERROR
        }));
}

#[test]
fn idle_shutdown_closes_at_once() {
    let mut p = pair();
    p.conn.start_shutdown(p.now);
    p.drive(&mut |_| None);
    assert!(p.conn.is_closed());
    assert_eq!(p.client.goaway(), Some((0, 0)));
}

#[test]
fn shutdown_grace_forces_close() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.send(&bytes);
    p.conn.start_shutdown(p.now);
    assert_eq!(p.conn.poll_timeout(), Some(Timestamp::from_millis(5_000)));
    p.advance(Duration::from_millis(4_999));
    assert!(!p.conn.is_closed());
    p.advance(Duration::from_millis(1));
    assert!(p.conn.is_closed());
    assert_eq!(p.cancelled, [s]);
    // A second shutdown call is a no-op.
    p.conn.start_shutdown(p.now);
}
