//! Malformed requests (RFC 9113 §8.1.1, §8.2, §8.3), stream states (§5.1), stream ids
//! (§5.1.1), HPACK errors (§4.3), unknown frames (§4.1), RST_STREAM and GOAWAY both ways.

use kms_plugin_core::h2::Reason;
use kms_plugin_core::{ConnEvent, TransportConfig};
use kms_plugin_testkit::client::{
    RequestOptions, goaway_frame, grpc_message, raw_frame, rst_stream_frame,
};
use kms_plugin_testkit::h2_harness::{Harness, echo, park};

const PATH: &str = "/v2.KeyManagementService/Status";

/// Sends one request whose header block is `fields` (plus a valid message); returns the
/// client's view of the stream and whether the service saw it.
fn with_fields(fields: &[(&str, &str)]) -> (Option<u32>, Option<u8>, bool) {
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.encode_block(fields);
    h.send(&raw_frame(0x1, 0x4, id, &block));
    h.send(&raw_frame(0x0, 0x1, id, &grpc_message(b"m")));
    let mut seen = false;
    h.pump(&mut |r| {
        seen = true;
        echo(r)
    });
    assert!(
        !h.conn.is_closed(),
        "{fields:?}: a malformed request is a stream error"
    );
    let r = h.client.take_response(id).expect("stream finished");
    (r.reset, r.grpc_status, seen)
}

const BASE: [(&str, &str); 5] = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", PATH),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
];

fn base_plus(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = BASE.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn well_formed_baseline_passes() {
    assert_eq!(
        with_fields(&base_plus(&[("te", "trailers")])),
        (None, Some(0), true)
    );
}

#[test]
fn malformed_requests_are_reset_with_protocol_error() {
    let p = Some(Reason::PROTOCOL_ERROR.0);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing :method", BASE[1..].to_vec()),
        ("missing :scheme", vec![BASE[0], BASE[2], BASE[3], BASE[4]]),
        ("missing :path", vec![BASE[0], BASE[1], BASE[3], BASE[4]]),
        ("empty :path", {
            let mut v = BASE.to_vec();
            v[2] = (":path", "");
            v
        }),
        (
            "duplicate :method",
            vec![BASE[0], BASE[0], BASE[1], BASE[2], BASE[4]],
        ),
        (
            "duplicate :path",
            vec![BASE[0], BASE[1], BASE[2], BASE[2], BASE[4]],
        ),
        (
            "duplicate :authority",
            vec![BASE[0], BASE[1], BASE[2], BASE[3], BASE[3], BASE[4]],
        ),
        (
            "pseudo after regular",
            vec![BASE[0], BASE[1], BASE[4], BASE[2]],
        ),
        (
            "unknown pseudo",
            vec![BASE[0], BASE[1], BASE[2], (":protocol", "x"), BASE[4]],
        ),
        (
            "response pseudo",
            vec![(":status", "200"), BASE[0], BASE[1], BASE[2], BASE[4]],
        ),
        ("uppercase name", base_plus(&[("X-Upper", "v")])),
        ("connection", base_plus(&[("connection", "keep-alive")])),
        ("keep-alive", base_plus(&[("keep-alive", "5")])),
        ("proxy-connection", base_plus(&[("proxy-connection", "x")])),
        (
            "transfer-encoding",
            base_plus(&[("transfer-encoding", "chunked")]),
        ),
        ("upgrade", base_plus(&[("upgrade", "h2c")])),
        ("te gzip", base_plus(&[("te", "gzip")])),
        ("NUL in value", base_plus(&[("x-a", "a\0b")])),
        ("LF in value", base_plus(&[("x-a", "a\nb")])),
        ("space in name", base_plus(&[("x a", "v")])),
    ];
    for (what, fields) in cases {
        let (reset, status, seen) = with_fields(&fields);
        assert_eq!((reset, status, seen), (p, None, false), "{what}");
    }
}

#[test]
fn malformed_trailers_reset_the_stream() {
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    h.send(&raw_frame(0x0, 0, id, &grpc_message(b"m")));
    let trailers = h.client.encode_block(&[(":path", "/x")]);
    h.send(&raw_frame(0x1, 0x4 | 0x1, id, &trailers));
    h.pump(&mut echo);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(1));
}

#[test]
fn valid_request_trailers_end_the_request() {
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    h.send(&raw_frame(0x0, 0, id, &grpc_message(b"m")));
    let trailers = h.client.encode_block(&[("x-trailer", "1")]);
    h.send(&raw_frame(0x1, 0x4 | 0x1, id, &trailers));
    h.pump(&mut echo);
    assert_eq!(
        h.client.take_response(id).and_then(|r| r.message),
        Some(b"m".to_vec())
    );
}

#[test]
fn second_headers_without_end_stream_resets() {
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    let more = h.client.encode_block(&[("x-more", "1")]);
    h.send(&raw_frame(0x1, 0x4, id, &more));
    h.pump(&mut echo);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(1));
}

#[test]
fn data_after_end_stream_is_stream_closed() {
    // §5.1 half-closed (remote): DATA is a stream error STREAM_CLOSED.
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&raw_frame(0x0, 0, id, b"more"));
    h.pump(&mut park);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(5));
    assert_eq!(h.cancelled, vec![id]);
    assert_eq!(h.conn.in_flight(), 0);
}

#[test]
fn headers_after_end_stream_is_stream_closed() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    let more = h.client.encode_block(&[("x-more", "1")]);
    h.send(&raw_frame(0x1, 0x5, id, &more));
    h.pump(&mut park);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(5));
}

#[test]
fn data_on_an_idle_stream_is_protocol_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x0, 0, 5, b"x"));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((0, 1)));
}

#[test]
fn frames_on_stream_zero_that_need_a_stream_are_protocol_errors() {
    for (kind, payload) in [(0x0u8, &b"x"[..]), (0x1, b"\x82"), (0x3, b"\0\0\0\x08")] {
        let mut h = Harness::connected(&TransportConfig::default());
        h.send(&raw_frame(kind, 0x4, 0, payload));
        h.pump(&mut echo);
        assert_eq!(h.client.goaway().map(|g| g.1), Some(1), "type {kind}");
    }
}

#[test]
fn stream_ids_must_be_odd_and_increasing() {
    // §5.1.1: even ids and ids not above the last one are connection errors.
    for ids in [&[2u32][..], &[5, 3], &[5, 1]] {
        let mut h = Harness::connected(&TransportConfig::default());
        for &id in ids {
            let block = h.client.request_block(PATH, &RequestOptions::default());
            h.send(&raw_frame(0x1, 0x4, id, &block));
        }
        h.pump(&mut park);
        assert_eq!(h.client.goaway().map(|g| g.1), Some(1), "{ids:?}");
    }
}

#[test]
fn skipped_stream_ids_are_fine() {
    let mut h = Harness::connected(&TransportConfig::default());
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, 101, &block));
    h.send(&raw_frame(0x0, 0x1, 101, &grpc_message(b"x")));
    let mut got = Vec::new();
    h.pump(&mut |r| {
        got.push(r.stream);
        echo(r)
    });
    assert_eq!(got, vec![101]);
}

#[test]
fn hpack_errors_are_compression_errors() {
    // §4.3: a header block that cannot be decoded is a connection error COMPRESSION_ERROR.
    for block in [
        &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0xbe],
        &[0x3f, 0xe1, 0x7f],
    ] {
        let mut h = Harness::connected(&TransportConfig::default());
        h.send(&raw_frame(0x1, 0x5, 1, block));
        h.pump(&mut echo);
        assert_eq!(
            h.client.goaway(),
            Some((0, Reason::COMPRESSION_ERROR.0)),
            "{block:?}"
        );
    }
}

#[test]
fn unknown_frame_types_are_ignored() {
    // §4.1, §5.5.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x0a, 0xff, 0, b"altsvc-ish"));
    h.send(&raw_frame(0xff, 0, 7, b""));
    let r = h.call(PATH, b"ok", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"ok".to_vec()));
}

#[test]
fn push_promise_from_a_client_is_protocol_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x5, 0x4, 1, &[0, 0, 0, 2]));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway().map(|g| g.1), Some(1));
}

#[test]
fn rst_stream_errors() {
    // §6.4: length 4 (else FRAME_SIZE_ERROR); never on stream 0 or an idle stream.
    for (frame, code) in [
        (raw_frame(0x3, 0, 1, &[0, 0, 8]), Reason::FRAME_SIZE_ERROR),
        (rst_stream_frame(0, 8), Reason::PROTOCOL_ERROR),
        (rst_stream_frame(9, 8), Reason::PROTOCOL_ERROR),
    ] {
        let mut h = Harness::connected(&TransportConfig::default());
        h.send(&frame);
        h.pump(&mut echo);
        assert_eq!(h.client.goaway().map(|g| g.1), Some(code.0));
    }
}

#[test]
fn peer_goaway_is_reported_and_in_flight_streams_finish() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&goaway_frame(0, 0));
    h.collect();
    assert!(h.events.contains(&ConnEvent::PeerGoAway {
        reason: Reason::NO_ERROR,
        last_stream: 0
    }));
    assert!(
        !h.conn.is_closed(),
        "the in-flight request still gets its answer"
    );
    let req = h.parked.pop().expect("parked");
    h.respond(
        req.stream,
        kms_plugin_core::rpc::Response::ok(kms_plugin_core::secret::SecretBytes::copy_from(b"r")),
    );
    h.pump(&mut park);
    assert_eq!(
        h.client.take_response(id).and_then(|r| r.message),
        Some(b"r".to_vec())
    );
    assert!(h.conn.is_closed());
}

#[test]
fn malformed_goaway_is_an_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x7, 0, 0, &[0; 7]));
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x7, 0, 1, &[0; 8]));
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn connection_error_reports_the_last_processed_stream() {
    let mut h = Harness::connected(&TransportConfig::default());
    for _ in 0..3 {
        let r = h.call(PATH, b"m", &RequestOptions::default(), &mut echo);
        assert!(r.is_some());
    }
    h.send(&raw_frame(0x6, 0, 0, &[0; 3]));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((5, Reason::FRAME_SIZE_ERROR.0)));
}
