//! Closed-stream handling (RFC 9113 §5.1 "closed", §6.1), self-dependency (§5.3.1) and the
//! cancellation contract of `poll_request` / `poll_cancelled`.

use kms_plugin_core::Timestamp;
use kms_plugin_core::TransportConfig;
use kms_plugin_core::h2::Reason;
use kms_plugin_testkit::Connection;
use kms_plugin_testkit::client::{RequestOptions, grpc_message, raw_frame, rst_stream_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo, park};

const PATH: &str = "/v1beta1.KeyManagementService/Encrypt";

fn rst_frames(h: &Harness, stream: u32) -> Vec<u32> {
    let mut codes = Vec::new();
    let mut rest = &h.transcript[..];
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        if rest[3] == 0x3 && id == stream {
            codes.push(u32::from_be_bytes([rest[9], rest[10], rest[11], rest[12]]));
        }
        rest = &rest[9 + len..];
    }
    codes
}

#[test]
fn data_on_a_normally_closed_stream_is_stream_closed() {
    // §6.1: DATA on a stream not open or half-closed (local) -> stream error STREAM_CLOSED.
    let mut h = Harness::connected(&TransportConfig::default());
    let r = h.call(PATH, b"m", &RequestOptions::default(), &mut echo);
    assert!(r.is_some());
    h.send(&raw_frame(0x0, 0, 1, b"late"));
    h.send(&raw_frame(0x0, 0, 1, b"later"));
    h.pump(&mut echo);
    assert_eq!(
        rst_frames(&h, 1),
        vec![Reason::STREAM_CLOSED.0],
        "one RST, then ignored"
    );
    assert_eq!(h.client.goaway(), None);
}

#[test]
fn frames_after_our_reset_are_ignored() {
    // §5.1 "closed": after sending RST_STREAM, frames the peer had in flight are ignored.
    let cfg = TransportConfig {
        max_concurrent_streams: 1,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let (_, a) = h.client.unary(PATH, b"a", &RequestOptions::default());
    h.send(&a);
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block)); // refused: REFUSED_STREAM
    h.send(&raw_frame(0x0, 0, id, &grpc_message(b"in flight")));
    let trailers = h.client.encode_block(&[("x-t", "1")]);
    h.send(&raw_frame(0x1, 0x5, id, &trailers));
    h.pump(&mut park);
    assert_eq!(rst_frames(&h, id), vec![Reason::REFUSED_STREAM.0]);
    assert_eq!(h.client.goaway(), None);
    assert!(!h.conn.is_closed());
}

#[test]
fn headers_after_the_peer_reset_is_stream_closed() {
    // §5.1 "closed": frames other than PRIORITY after the peer's RST_STREAM.
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&rst_stream_frame(id, 8));
    // PRIORITY and WINDOW_UPDATE on the closed stream are fine.
    h.send(&raw_frame(0x2, 0, id, &[0, 0, 0, 0, 1]));
    h.send(&raw_frame(0x8, 0, id, &[0, 0, 0, 1]));
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), None);
    let block = h.client.encode_block(&[("x-t", "1")]);
    h.send(&raw_frame(0x1, 0x5, id, &block));
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), Some((id, Reason::STREAM_CLOSED.0)));
}

#[test]
fn headers_on_a_lower_unused_id_is_protocol_error() {
    // §5.1.1: opening stream 5 implicitly closes idle stream 3; using it is PROTOCOL_ERROR.
    let mut h = Harness::connected(&TransportConfig::default());
    for id in [5, 3] {
        let block = h.client.request_block(PATH, &RequestOptions::default());
        h.send(&raw_frame(0x1, 0x4, id, &block));
    }
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), Some((5, Reason::PROTOCOL_ERROR.0)));
}

#[test]
fn a_stream_cannot_depend_on_itself() {
    // §5.3.1: stream error PROTOCOL_ERROR, for PRIORITY frames and HEADERS with PRIORITY.
    let mut h = Harness::connected(&TransportConfig::default());
    assert_eq!(h.client.allocate_stream(), 1);
    assert_eq!(h.client.allocate_stream(), 3);
    let block = h.client.request_block(PATH, &RequestOptions::default());
    let mut payload = vec![0, 0, 0, 1, 16];
    payload.extend_from_slice(&block);
    h.send(&raw_frame(0x1, 0x4 | 0x20, 1, &payload));
    h.pump(&mut park);
    assert_eq!(rst_frames(&h, 1), vec![Reason::PROTOCOL_ERROR.0]);
    assert!(h.parked.is_empty());
    // A PRIORITY frame on an open stream (on an idle one it is a connection error, see
    // padding.rs).
    let block = h.client.request_block(PATH, &RequestOptions::default());
    let headers = h
        .client
        .headers_frames(3, &block, false, &RequestOptions::default());
    h.send(&headers);
    h.send(&raw_frame(0x2, 0, 3, &[0, 0, 0, 3, 16]));
    h.pump(&mut park);
    assert_eq!(rst_frames(&h, 3), vec![Reason::PROTOCOL_ERROR.0]);
    assert!(h.parked.is_empty());
    // HPACK stayed in sync and the connection works.
    let r = h.call(PATH, b"ok", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"ok".to_vec()));
}

#[test]
fn a_request_reset_before_it_was_polled_is_dropped_not_cancelled() {
    let mut conn = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut c = kms_plugin_testkit::client::TestClient::new();
    let mut input = c.handshake();
    input.extend_from_slice(&c.unary(PATH, b"m", &RequestOptions::default()).1);
    input.extend_from_slice(&rst_stream_frame(1, 8));
    conn.handle_bytes(&input, Timestamp::ZERO);
    assert!(
        conn.poll_request().is_none(),
        "the reset request is never handed out"
    );
    assert_eq!(conn.poll_cancelled(), None);
    assert_eq!(conn.in_flight(), 0);
}

#[test]
fn in_flight_counts_requests_until_answered() {
    let mut h = Harness::connected(&TransportConfig::default());
    for _ in 0..3 {
        let (_, b) = h.client.unary(PATH, b"m", &RequestOptions::default());
        h.send(&b);
    }
    h.pump(&mut park);
    assert_eq!(h.conn.in_flight(), 3);
    let req = h.parked.remove(0);
    h.respond(
        req.stream,
        kms_plugin_core::rpc::Response::error(kms_plugin_core::rpc::Code::Aborted, "x"),
    );
    assert_eq!(h.conn.in_flight(), 2);
}

#[test]
fn content_length_must_match_the_data() {
    // §8.1.1: a request whose content-length differs from the DATA length is malformed.
    for (declared, ok) in [
        ("6", true),
        ("5", false),
        ("7", false),
        ("0", false),
        ("x", false),
        ("9", false),
        ("-1", false),
        ("", false),
    ] {
        let mut h = Harness::connected(&TransportConfig::default());
        let opts = RequestOptions {
            extra_headers: vec![("content-length".into(), declared.into())],
            data_chunk: Some(2),
            ..RequestOptions::default()
        };
        let r = h.call(PATH, b"m", &opts, &mut echo).expect("finished");
        if ok {
            assert_eq!(r.message, Some(b"m".to_vec()));
        } else {
            assert_eq!(r.reset, Some(Reason::PROTOCOL_ERROR.0), "{declared}");
            assert!(h.parked.is_empty());
        }
        assert!(!h.conn.is_closed());
    }
}
