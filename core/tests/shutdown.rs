//! Graceful shutdown (RFC 9113 §6.8): GOAWAY(NO_ERROR, last stream), in-flight streams
//! finish, new ones are refused, forced close after the grace period; EOF cancels.

use core::time::Duration;

use kms_plugin_core::h2::Reason;
use kms_plugin_core::rpc::Response;
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::{ConnEvent, TransportConfig};
use kms_plugin_testkit::client::{RequestOptions, raw_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo, park};

const PATH: &str = "/v2.KeyManagementService/Decrypt";

#[test]
fn idle_connection_shuts_down_at_once() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.conn.start_shutdown(h.now);
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((0, Reason::NO_ERROR.0)));
    assert!(h.conn.is_closed());
}

#[test]
fn in_flight_requests_finish_and_new_streams_are_refused() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (a, bytes) = h.client.unary(PATH, b"a", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.conn.start_shutdown(h.now);
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), Some((a, 0)));
    assert!(!h.conn.is_closed());
    // A stream above the last id is refused (§6.8).
    let (b, bytes) = h.client.unary(PATH, b"b", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    assert_eq!(
        h.client.take_response(b).and_then(|r| r.reset),
        Some(Reason::REFUSED_STREAM.0)
    );
    assert_eq!(h.parked.len(), 1);
    // A second shutdown call changes nothing.
    h.conn.start_shutdown(h.now);
    let req = h.parked.pop().expect("parked");
    h.respond(req.stream, Response::ok(SecretBytes::copy_from(b"A")));
    h.pump(&mut park);
    assert_eq!(
        h.client.take_response(a).and_then(|r| r.message),
        Some(b"A".to_vec())
    );
    assert!(h.conn.is_closed());
    assert!(h.cancelled.is_empty());
}

#[test]
fn shutdown_is_forced_after_the_grace_period() {
    let cfg = TransportConfig {
        shutdown_grace: Duration::from_secs(5),
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let (a, bytes) = h.client.unary(PATH, b"a", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.conn.start_shutdown(h.now);
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now.saturating_add(cfg.shutdown_grace))
    );
    h.advance(Duration::from_millis(4999));
    assert!(!h.conn.is_closed());
    h.advance(Duration::from_millis(1));
    assert!(h.conn.is_closed());
    assert_eq!(h.cancelled, vec![a], "the parked request is cancelled");
    assert_eq!(h.conn.in_flight(), 0);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, ConnEvent::Closed { .. }))
    );
    // Its late answer goes nowhere.
    h.respond(a, Response::ok(SecretBytes::copy_from(b"late")));
    let before = h.transcript.len();
    let _ = h.take_server_output();
    assert_eq!(
        h.transcript.len(),
        before + 8 + 9,
        "only the GOAWAY was still queued"
    );
}

#[test]
fn shutdown_before_the_preface_closes() {
    let mut h = Harness::new(&TransportConfig::default());
    h.conn.start_shutdown(h.now);
    assert!(h.conn.is_closed());
}

#[test]
fn eof_cancels_handed_out_requests() {
    let mut h = Harness::connected(&TransportConfig::default());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
        h.send(&bytes);
        ids.push(id);
    }
    h.pump(&mut park);
    assert_eq!(h.conn.in_flight(), 3);
    h.conn.handle_eof(h.now);
    h.collect();
    let mut cancelled = h.cancelled.clone();
    cancelled.sort_unstable();
    assert_eq!(cancelled, ids);
    assert_eq!(h.conn.in_flight(), 0);
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.poll_request().map(|r| r.stream), None);
}

#[test]
fn connection_error_cancels_handed_out_requests() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&raw_frame(0x6, 0, 0, &[0; 3]));
    h.collect();
    assert_eq!(h.cancelled, vec![id]);
}

#[test]
fn goaway_after_graceful_goaway_never_raises_the_last_stream_id() {
    // RFC 9113 §6.8: "Endpoints MUST NOT increase the value they send in the last stream
    // identifier". Found by the plugin_session fuzz target.
    let mut h = Harness::connected(&TransportConfig::default());
    let (a, bytes) = h.client.unary(PATH, b"a", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.conn.start_shutdown(h.now);
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), Some((a, Reason::NO_ERROR.0)));
    // A stream opened after our GOAWAY (refused), then a connection error (PING on a stream).
    let (_, bytes) = h.client.unary(PATH, b"b", &RequestOptions::default());
    h.send(&bytes);
    h.send(&raw_frame(0x6, 0, 1, &[0; 8]));
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), Some((a, Reason::PROTOCOL_ERROR.0)));
    assert!(
        h.client.protocol_errors.is_empty(),
        "{:?}",
        h.client.protocol_errors
    );
}
