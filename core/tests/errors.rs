//! Stream states (RFC 9113 §5.1), stream ids (§5.1.1), malformed requests (§8.1.1, §8.2,
//! §8.3), HPACK errors (§4.3), unknown frames (§4.1) and GOAWAY/RST_STREAM handling.

mod transport_support;
use transport_support::*;

fn with(fields: &[(&str, &str)]) -> ClientResponse {
    let mut p = pair();
    let s = p.client.alloc_stream();
    p.client.send_raw(&request(s, fields, b"m"));
    p.drive(&mut echo);
    let r = p.client.take_response(s).expect("response");
    // The connection survives and HPACK stays in sync.
    assert_eq!(p.client.goaway(), None);
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("next")
            .grpc_status,
        Some(0)
    );
    r
}

fn replace(name: &str, value: Option<&str>) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> =
        GOOD.iter().map(|(n, v)| (*n, (*v).to_string())).collect();
    v.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        v.push((
            Box::leak(name.to_string().into_boxed_str()),
            value.to_string(),
        ));
    }
    v
}

#[test]
fn good_raw_request_works() {
    let r = with(GOOD);
    assert_eq!(
        (r.grpc_status, r.message.as_deref()),
        (Some(0), Some(&b"m"[..]))
    );
}

#[test]
fn malformed_requests_are_reset_with_protocol_error() {
    let extra: &[&[(&str, &str)]] = &[
        &[("Content-Length", "1")],      // uppercase name (§8.2.1)
        &[("connection", "keep-alive")], // connection-specific (§8.2.2)
        &[("keep-alive", "1")],          //
        &[("transfer-encoding", "chunked")],
        &[("upgrade", "h2c")],
        &[("proxy-connection", "x")],
        &[("te", "gzip")],          // §8.2.2
        &[(":path", "/y")],         // pseudo after regular (§8.3)
        &[("x", " leading space")], // §8.2.1
        &[("x", "nul\0")],
        &[("bad name", "v")],
    ];
    for e in extra {
        let mut fields = GOOD.to_vec();
        fields.extend_from_slice(e);
        assert_eq!(with(&fields).reset, Some(Reason::PROTOCOL_ERROR.0), "{e:?}");
    }
    let pseudo_cases: &[&[(&str, &str)]] = &[
        &[
            (":method", "POST"),
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/x"),
        ], // duplicate
        &[(":method", "POST"), (":scheme", "http")], // no :path
        &[(":scheme", "http"), (":path", "/x")],     // no :method
        &[(":method", "POST"), (":path", "/x")],     // no :scheme
        &[(":method", "POST"), (":scheme", "http"), (":path", "")], // empty :path
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/x"),
            (":status", "200"),
        ], // response pseudo
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/x"),
            (":foo", "1"),
        ], // unknown pseudo
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/x"),
            (":authority", "a"),
            (":authority", "b"),
        ],
    ];
    for fields in pseudo_cases {
        let mut f = fields.to_vec();
        f.push(("content-type", "application/grpc"));
        assert_eq!(with(&f).reset, Some(Reason::PROTOCOL_ERROR.0), "{fields:?}");
    }
}

#[test]
fn replaced_fields_helper_sanity() {
    let f = replace(":authority", None);
    let refs: Vec<(&str, &str)> = f.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(with(&refs).grpc_status, Some(0));
}

#[test]
fn hpack_garbage_is_compression_error() {
    let mut p = pair();
    p.send(&frame(
        1,
        0x5,
        1,
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ));
    assert_eq!(goaway_code(&p), Some(Reason::COMPRESSION_ERROR.0));
    let mut p = pair();
    p.send(&frame(1, 0x5, 1, &[0x80])); // index 0
    assert_eq!(goaway_code(&p), Some(Reason::COMPRESSION_ERROR.0));
}

#[test]
fn stream_id_rules() {
    // Even id (§5.1.1).
    let mut p = pair();
    p.send(&request(2, GOOD, b"a"));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
    // Decreasing id: implicitly closed by stream 5 (§5.1.1), so STREAM_CLOSED (§5.1).
    let mut p = pair();
    p.send(&request(5, GOOD, b"a"));
    p.send(&request(3, GOOD, b"a"));
    assert_eq!(
        p.client.take_response(3).expect("rst").reset,
        Some(Reason::STREAM_CLOSED.0)
    );
    assert_eq!(p.parked, [5]);
    // GOAWAY names the last stream we processed.
    p.send(&request(4, GOOD, b"a"));
    assert_eq!(p.client.goaway(), Some((5, 1)));
    // HEADERS on stream 0.
    let mut p = pair();
    p.send(&frame(1, 0x5, 0, &block(GOOD)));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn data_on_idle_closed_and_half_closed_streams() {
    // Idle: connection PROTOCOL_ERROR (§5.1).
    let mut p = pair();
    p.send(&frame(0, 0, 9, b"x"));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
    // Closed (answered and finished): STREAM_CLOSED.
    let mut p = pair();
    p.unary("/x", b"a", &opts(), &mut echo).expect("r");
    p.send(&frame(0, 0, 1, b"x"));
    assert_eq!(
        p.client.take_response(1).expect("rst").reset,
        Some(Reason::STREAM_CLOSED.0)
    );
    assert_eq!(p.client.goaway(), None);
    // Half-closed (remote), request dispatched: STREAM_CLOSED and the request is cancelled.
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.send(&bytes);
    p.send(&frame(0, 0, s, b"x"));
    assert_eq!(
        p.client.take_response(s).expect("rst").reset,
        Some(Reason::STREAM_CLOSED.0)
    );
    assert_eq!(p.cancelled, [s]);
    assert_eq!(p.conn.in_flight(), 0);
    // DATA on stream 0.
    let mut p = pair();
    p.send(&frame(0, 0, 0, b"x"));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn trailers_rules() {
    // Trailers with END_STREAM complete the request (§8.1).
    let mut p = pair();
    let s = p.client.alloc_stream();
    let mut bytes = frame(1, 0x4, s, &block(GOOD));
    bytes.extend(frame(0, 0, s, &[0, 0, 0, 0, 1, b'z']));
    bytes.extend(frame(1, 0x5, s, &block(&[("x-trailer", "1")])));
    p.client.send_raw(&bytes);
    p.drive(&mut echo);
    assert_eq!(
        p.client.take_response(s).expect("r").message.as_deref(),
        Some(&b"z"[..])
    );
    // Trailers without END_STREAM: stream PROTOCOL_ERROR.
    let mut p = pair();
    let mut bytes = frame(1, 0x4, 1, &block(GOOD));
    bytes.extend(frame(1, 0x4, 1, &block(&[("x-trailer", "1")])));
    p.send(&bytes);
    assert_eq!(
        p.client.take_response(1).expect("r").reset,
        Some(Reason::PROTOCOL_ERROR.0)
    );
    // Pseudo-headers in trailers: stream PROTOCOL_ERROR.
    let mut p = pair();
    let mut bytes = frame(1, 0x4, 1, &block(GOOD));
    bytes.extend(frame(1, 0x5, 1, &block(&[(":path", "/y")])));
    p.send(&bytes);
    assert_eq!(
        p.client.take_response(1).expect("r").reset,
        Some(Reason::PROTOCOL_ERROR.0)
    );
    // A second HEADERS after END_STREAM: STREAM_CLOSED.
    let mut p = pair();
    let mut bytes = frame(1, 0x5, 1, &block(GOOD));
    bytes.extend(frame(1, 0x5, 1, &block(&[("x", "1")])));
    p.send(&bytes);
    assert_eq!(
        p.client.take_response(1).expect("r").reset,
        Some(Reason::STREAM_CLOSED.0)
    );
}

#[test]
fn unknown_frames_and_push_promise() {
    let mut p = pair();
    p.send(&frame(0xfa, 0xff, 0, b"whatever"));
    p.send(&frame(0x20, 0, 3, b""));
    assert_eq!(p.client.goaway(), None);
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("r")
            .grpc_status,
        Some(0)
    );
    let mut p = pair();
    p.send(&frame(5, 4, 1, &[0, 0, 0, 2]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn rst_stream_rules() {
    let mut p = pair();
    p.send(&frame(3, 0, 1, &[0, 0, 0, 8]));
    assert_eq!(
        goaway_code(&p),
        Some(Reason::PROTOCOL_ERROR.0),
        "idle stream"
    );
    let mut p = pair();
    p.send(&frame(3, 0, 0, &[0, 0, 0, 8]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0), "stream 0");
    let mut p = pair();
    p.unary("/x", b"a", &opts(), &mut echo);
    p.send(&frame(3, 0, 1, &[0, 0, 0]));
    assert_eq!(goaway_code(&p), Some(Reason::FRAME_SIZE_ERROR.0), "length");
    // RST_STREAM on a closed stream is ignored.
    let mut p = pair();
    p.unary("/x", b"a", &opts(), &mut echo);
    p.send(&frame(3, 0, 1, &[0, 0, 0, 8]));
    assert_eq!(p.client.goaway(), None);
    // Frames after our RST_STREAM are ignored, not answered again.
    let mut p = pair();
    p.send(&frame(2, 0, 1, &[0, 0, 0, 0])); // PRIORITY with bad length: we reset stream 1
    let before = p.server_bytes.len();
    p.send(&frame(1, 0x4, 1, &block(GOOD)));
    assert_eq!(p.server_bytes.len(), before);
}

#[test]
fn peer_goaway_finishes_in_flight_then_closes() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.send(&bytes);
    p.client.send_goaway(s, Reason::NO_ERROR);
    p.drive(&mut |_| None);
    assert!(p.saw(|e| matches!(e, ConnEvent::PeerGoAway { last_stream: 1, .. })));
    assert!(!p.conn.is_closed());
    p.conn
        .respond(s, Response::ok(SecretBytes::copy_from(b"fin")), p.now);
    p.drive(&mut |_| None);
    assert_eq!(
        p.client.take_response(s).expect("r").message.as_deref(),
        Some(&b"fin"[..])
    );
    assert!(p.conn.is_closed());
    let mut p = pair();
    p.send(&frame(7, 0, 0, &[0; 7]));
    assert_eq!(goaway_code(&p), Some(Reason::FRAME_SIZE_ERROR.0));
}
