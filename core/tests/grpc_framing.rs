//! gRPC unary framing over the connection (gRPC PROTOCOL-HTTP2): requests, responses,
//! trailers-only errors, message prefix rules, timeouts, content-type, encoding.

mod transport_support;
use transport_support::*;

#[test]
fn echo_round_trip() {
    let mut p = pair();
    let r = p
        .unary(
            "/v2.KeyManagementService/Status",
            b"hello",
            &opts(),
            &mut echo,
        )
        .expect("response");
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.message.as_deref(), Some(&b"hello"[..]));
    assert_eq!(r.grpc_status, Some(0));
    assert_eq!(r.reset, None);
    assert!(
        r.headers
            .contains(&("content-type".into(), "application/grpc".into()))
    );
    assert_eq!(p.conn.in_flight(), 0);
}

#[test]
fn request_fields_reach_the_service() {
    let mut p = pair();
    let mut seen = None;
    let mut o = opts();
    o.timeout = Some("250m".into());
    p.now = Timestamp::from_millis(1000);
    p.unary("/a/b", b"xyz", &o, &mut |req: &Request| {
        seen = Some((
            req.stream,
            req.path.to_string(),
            req.message.expose().to_vec(),
            req.deadline,
            req.received,
        ));
        Some(Response::ok(SecretBytes::copy_from(b"")))
    })
    .expect("response");
    let (stream, path, msg, deadline, received) = seen.expect("request");
    assert_eq!(
        (stream, path.as_str(), msg.as_slice()),
        (1, "/a/b", &b"xyz"[..])
    );
    assert_eq!(deadline, Some(Timestamp::from_millis(1250)));
    assert_eq!(received, Timestamp::from_millis(1000));
}

#[test]
fn all_timeout_units() {
    for (t, nanos) in [
        ("1H", 3_600_000_000_000u64),
        ("2M", 120_000_000_000),
        ("3S", 3_000_000_000),
        ("4m", 4_000_000),
        ("5u", 5_000),
        ("6n", 6),
    ] {
        let mut p = pair();
        let mut o = opts();
        o.timeout = Some(t.into());
        let mut deadline = None;
        p.unary("/x", b"", &o, &mut |r: &Request| {
            deadline = r.deadline;
            echo(r)
        });
        assert_eq!(deadline, Some(Timestamp::from_nanos(nanos)), "{t}");
    }
}

#[test]
fn malformed_timeout_is_internal() {
    for t in ["", "123456789S", "1x", "S", "1.0S"] {
        let mut p = pair();
        let mut o = opts();
        o.timeout = Some(t.into());
        let r = p.unary("/x", b"a", &o, &mut echo).expect("response");
        assert_eq!(r.grpc_status, Some(Code::Internal.as_u8()), "{t}");
        assert_eq!(r.grpc_message.as_deref(), Some("malformed grpc-timeout"));
    }
}

#[test]
fn error_response_is_trailers_only_with_percent_encoded_message() {
    let mut p = pair();
    let r = p
        .unary("/x", b"a", &opts(), &mut |_: &Request| {
            Some(Response::error(
                Code::NotFound,
                "no key 100%\nnewline \u{e9}",
            ))
        })
        .expect("response");
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.grpc_status, Some(5));
    assert_eq!(
        r.grpc_message.as_deref(),
        Some("no key 100%\nnewline \u{e9}")
    );
    assert!(r.headers.contains(&(
        "grpc-message".into(),
        "no key 100%25%0Anewline %C3%A9".into()
    )));
    assert_eq!(r.message, None);
    // Exactly one HEADERS frame with END_STREAM (trailers-only).
    let headers: Vec<_> = p.client.frames.iter().filter(|f| f.stream == 1).collect();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].flags & 0x5, 0x5);
}

#[test]
fn non_post_is_405() {
    let mut p = pair();
    let mut o = opts();
    o.method = "GET".into();
    let r = p.unary("/x", b"a", &o, &mut echo).expect("response");
    assert_eq!(r.http_status, Some(405));
    assert_eq!(r.grpc_status, Some(Code::Internal.as_u8()));
}

#[test]
fn wrong_content_type_is_415() {
    for ct in [Some("application/json"), Some("application/grpcx"), None] {
        let mut p = pair();
        let mut o = opts();
        o.content_type = ct.map(Into::into);
        let r = p.unary("/x", b"a", &o, &mut echo).expect("response");
        assert_eq!(r.http_status, Some(415), "{ct:?}");
    }
    for ct in ["application/grpc+proto", "application/grpc;charset=utf-8"] {
        let mut p = pair();
        let mut o = opts();
        o.content_type = Some(ct.into());
        let r = p.unary("/x", b"a", &o, &mut echo).expect("response");
        assert_eq!((r.http_status, r.grpc_status), (Some(200), Some(0)), "{ct}");
    }
}

#[test]
fn unsupported_encoding_is_unimplemented() {
    let mut p = pair();
    let mut o = opts();
    o.extra_headers
        .push(("grpc-encoding".into(), "gzip".into()));
    let r = p.unary("/x", b"a", &o, &mut echo).expect("response");
    assert_eq!(r.grpc_status, Some(Code::Unimplemented.as_u8()));
    assert!(
        r.headers
            .contains(&("grpc-accept-encoding".into(), "identity".into()))
    );
    let mut o = opts();
    o.extra_headers
        .push(("grpc-encoding".into(), "identity".into()));
    assert_eq!(
        pair()
            .unary("/x", b"a", &o, &mut echo)
            .expect("r")
            .grpc_status,
        Some(0)
    );
}

#[test]
fn compressed_flag_is_internal() {
    let mut p = pair();
    let mut o = opts();
    o.raw_body = true;
    let r = p
        .unary("/x", &[1, 0, 0, 0, 1, 7], &o, &mut echo)
        .expect("response");
    assert_eq!(r.grpc_status, Some(Code::Internal.as_u8()));
    assert_eq!(
        r.grpc_message.as_deref(),
        Some("compressed message without grpc-encoding")
    );
}

#[test]
fn zero_two_or_truncated_messages_are_internal() {
    let cases: [(&[u8], &str); 4] = [
        (&[], "unary request carries no message"),
        (
            &[0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0],
            "unary request carries more than one message",
        ),
        (&[0, 0, 0, 0, 9, 1], "request message truncated"),
        (&[2, 0, 0, 0, 0], "invalid message flag"),
    ];
    for (body, msg) in cases {
        let mut p = pair();
        let mut o = opts();
        o.raw_body = true;
        let r = p.unary("/x", body, &o, &mut echo).expect("response");
        assert_eq!(r.grpc_status, Some(Code::Internal.as_u8()), "{msg}");
        assert_eq!(r.grpc_message.as_deref(), Some(msg));
        assert!(
            p.events
                .iter()
                .any(|e| matches!(e, ConnEvent::RequestRejected { .. }))
        );
        assert_eq!(p.conn.in_flight(), 0);
    }
}

#[test]
fn message_too_large_is_resource_exhausted_from_prefix() {
    let cfg = TransportConfig {
        max_message_size: 1000,
        max_buffered_bytes: 1000,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    let mut o = opts();
    o.raw_body = true;
    o.end_stream = false;
    // Only the prefix arrives: the decision needs no buffering.
    let r = p
        .unary("/x", &[0, 0, 0, 3, 233], &o, &mut echo)
        .expect("response");
    assert_eq!(r.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    // The stream was still open on the client side: RST_STREAM(NO_ERROR) follows (§8.1).
    assert_eq!(r.reset, Some(Reason::NO_ERROR.0));
}

#[test]
fn te_trailers_is_accepted_and_other_te_is_malformed() {
    let mut p = pair();
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("r")
            .grpc_status,
        Some(0)
    );
    let mut o = opts();
    o.extra_headers = vec![("te".into(), "gzip".into())];
    let r = p.unary("/x", b"a", &o, &mut echo).expect("r");
    assert_eq!(r.reset, Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn parked_request_answered_later() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"later", &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut |_| None);
    assert_eq!(p.parked, vec![s]);
    assert_eq!(p.conn.in_flight(), 1);
    p.conn
        .respond(s, Response::ok(SecretBytes::copy_from(b"done")), p.now);
    p.drive(&mut |_| None);
    let r = p.client.take_response(s).expect("response");
    assert_eq!(r.message.as_deref(), Some(&b"done"[..]));
    assert_eq!(p.conn.in_flight(), 0);
    // A second respond for the same stream is ignored.
    p.conn
        .respond(s, Response::ok(SecretBytes::copy_from(b"again")), p.now);
    let mut out = Vec::new();
    assert!(!p.conn.poll_transmit(&mut out));
}

#[test]
fn peer_reset_cancels_dispatched_request() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut |_| None);
    p.client.reset(s, Reason::CANCEL);
    p.drive(&mut |_| None);
    assert_eq!(p.cancelled, vec![s]);
    assert_eq!(p.conn.in_flight(), 0);
    assert!(p.saw(|e| matches!(e, ConnEvent::StreamReset { by_peer: true, .. })));
    // Answering a cancelled stream is a no-op.
    p.conn
        .respond(s, Response::ok(SecretBytes::copy_from(b"x")), p.now);
    let mut out = Vec::new();
    assert!(!p.conn.poll_transmit(&mut out));
}
