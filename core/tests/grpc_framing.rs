//! gRPC over HTTP/2 (gRPC `doc/PROTOCOL-HTTP2.md`): request validation, the 5-byte message
//! prefix, `grpc-timeout`, response layout and trailers, golden bytes of our responses.

use core::time::Duration;

use kms_plugin_core::Timestamp;
use kms_plugin_core::metrics::CODES;
use kms_plugin_core::rpc::{Code, Response};
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::{ConnEvent, TransportConfig};
use kms_plugin_testkit::client::{RequestOptions, grpc_message, raw_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo, park};

const PATH: &str = "/v2.KeyManagementService/Encrypt";

fn opts_with(f: impl FnOnce(&mut RequestOptions)) -> RequestOptions {
    let mut o = RequestOptions::default();
    f(&mut o);
    o
}

#[test]
fn ok_response_is_headers_data_trailers() {
    let mut h = Harness::connected(&TransportConfig::default());
    let r = h
        .call(PATH, b"hello", &RequestOptions::default(), &mut echo)
        .expect("done");
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.header_blocks, 2);
    assert_eq!(r.grpc_status, Some(0));
    assert_eq!(r.grpc_message, None);
    assert_eq!(r.message, Some(b"hello".to_vec()));
    assert!(
        r.headers
            .contains(&("content-type".into(), "application/grpc".into()))
    );
    let kinds: Vec<(u8, u8)> = h
        .client
        .frames
        .iter()
        .filter(|f| f.stream == 1)
        .map(|f| (f.kind, f.flags))
        .collect();
    assert_eq!(kinds, vec![(0x1, 0x4), (0x0, 0x0), (0x1, 0x5)]);
}

#[test]
fn ok_response_golden_bytes() {
    let mut h = Harness::connected(&TransportConfig::default());
    let _ = h.take_server_output();
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    let req = h.conn.poll_request().expect("request");
    assert_eq!(req.stream, id);
    h.conn
        .respond(id, Response::ok(SecretBytes::copy_from(b"hi")), h.now);
    let out = h.take_server_output();
    let expected = hex::decode(concat!(
        // HEADERS(END_HEADERS) :status 200 (static 8), content-type: application/grpc
        // (literal without indexing, static name 31).
        "000014010400000001",
        "88",
        "0f10",
        "10",
        "6170706c69636174696f6e2f67727063",
        // DATA: uncompressed, length 2, "hi".
        "000007000000000001",
        "000000000268",
        "69",
        // HEADERS(END_STREAM|END_HEADERS): grpc-status: 0 (literal, new name).
        "00000f010500000001",
        "000b677270632d737461747573",
        "0130",
    ))
    .unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&expected));
}

#[test]
fn error_response_is_trailers_only_golden_bytes() {
    let mut h = Harness::connected(&TransportConfig::default());
    let _ = h.take_server_output();
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    let _ = h.conn.poll_request();
    h.conn
        .respond(id, Response::error(Code::NotFound, "no 100% é"), h.now);
    let out = h.take_server_output();
    // One HEADERS(END_STREAM|END_HEADERS): :status 200, content-type, grpc-status: 5,
    // grpc-message: "no 100%25 %C3%A9" (percent-encoded '%' and non-ASCII octets).
    let expected = hex::decode(concat!(
        "000042010500000001",
        "88",
        "0f10",
        "10",
        "6170706c69636174696f6e2f67727063",
        "000b677270632d737461747573",
        "0135",
        "000c677270632d6d657373616765",
        "10",
        "6e6f2031303025323520254333254139",
    ))
    .unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&expected));
    h.client.receive(&out);
    let r = h.client.take_response(id).expect("trailers-only");
    assert_eq!(r.header_blocks, 1);
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.grpc_status, Some(5));
    assert_eq!(r.grpc_message.as_deref(), Some("no 100% é"));
    assert_eq!(r.message, None);
    let raw = r
        .headers
        .iter()
        .find(|(n, _)| n == "grpc-message")
        .map(|(_, v)| v.clone());
    assert_eq!(raw.as_deref(), Some("no 100%25 %C3%A9"));
}

fn rejected(opts: &RequestOptions, body: &[u8]) -> (Option<u16>, Option<u8>, Option<String>) {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary_raw_body(PATH, body, opts);
    h.send(&bytes);
    let mut seen = false;
    h.pump(&mut |r| {
        seen = true;
        echo(r)
    });
    assert!(!seen, "the transport answers its own errors");
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, ConnEvent::RequestRejected { stream, .. } if *stream == id))
    );
    let r = h.client.take_response(id).expect("answered");
    assert_eq!(r.header_blocks, 1, "trailers-only");
    assert!(!h.conn.is_closed());
    (r.http_status, r.grpc_status, r.grpc_message)
}

#[test]
fn non_post_gets_http_405() {
    // gRPC PROTOCOL-HTTP2: only POST; like grpc-go we answer 405 trailers-only.
    let (status, code, _) = rejected(&opts_with(|o| o.method = "GET".into()), &grpc_message(b"x"));
    assert_eq!((status, code), (Some(405), Some(Code::Internal.as_u8())));
}

#[test]
fn non_grpc_content_type_gets_http_415() {
    // gRPC PROTOCOL-HTTP2 "Content-Type": otherwise 415 Unsupported Media Type.
    for ct in [
        Some("application/json"),
        Some("application/grpcx"),
        Some(""),
        None,
    ] {
        let o = opts_with(|o| o.content_type = ct.map(String::from));
        let (status, _, _) = rejected(&o, &grpc_message(b"x"));
        assert_eq!(status, Some(415), "{ct:?}");
    }
}

#[test]
fn grpc_content_type_variants_are_accepted() {
    for ct in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;charset=utf-8",
    ] {
        let mut h = Harness::connected(&TransportConfig::default());
        let o = opts_with(|o| o.content_type = Some(ct.into()));
        let r = h.call(PATH, b"x", &o, &mut echo).expect("done");
        assert_eq!(r.grpc_status, Some(0), "{ct}");
    }
}

#[test]
fn compressed_flag_gets_unimplemented() {
    // We advertise no grpc-accept-encoding, so a compressed message cannot be decoded.
    let mut body = grpc_message(b"x");
    body[0] = 1;
    let (status, code, msg) = rejected(&RequestOptions::default(), &body);
    assert_eq!(
        (status, code),
        (Some(200), Some(Code::Unimplemented.as_u8()))
    );
    assert!(msg.unwrap_or_default().contains("compress"));
    body[0] = 2;
    let (_, code, _) = rejected(&RequestOptions::default(), &body);
    assert_eq!(code, Some(Code::Internal.as_u8()));
}

#[test]
fn grpc_encoding_other_than_identity_gets_unimplemented() {
    let o = opts_with(|o| {
        o.extra_headers
            .push(("grpc-encoding".into(), "gzip".into()));
    });
    let (_, code, _) = rejected(&o, &grpc_message(b"x"));
    assert_eq!(code, Some(Code::Unimplemented.as_u8()));
    let mut h = Harness::connected(&TransportConfig::default());
    let o = opts_with(|o| {
        o.extra_headers
            .push(("grpc-encoding".into(), "identity".into()));
    });
    assert_eq!(
        h.call(PATH, b"x", &o, &mut echo)
            .and_then(|r| r.grpc_status),
        Some(0)
    );
}

#[test]
fn unary_needs_exactly_one_message() {
    // gRPC PROTOCOL-HTTP2 "Length-Prefixed-Message"; grpc-go answers a unary call with no
    // request message, or with two, with an error status.
    let (_, code, _) = rejected(&RequestOptions::default(), b"");
    assert_eq!(code, Some(Code::Unimplemented.as_u8()));
    let mut two = grpc_message(b"one");
    two.extend_from_slice(&grpc_message(b"two"));
    let (_, code, msg) = rejected(&RequestOptions::default(), &two);
    assert_eq!(code, Some(Code::Unimplemented.as_u8()));
    assert!(msg.unwrap_or_default().contains("more than one"));
}

#[test]
fn truncated_message_gets_internal() {
    let body = grpc_message(b"abcdef");
    let (_, code, _) = rejected(&RequestOptions::default(), &body[..8]);
    assert_eq!(code, Some(Code::Internal.as_u8()));
    let (_, code, _) = rejected(&RequestOptions::default(), &body[..3]);
    assert_eq!(code, Some(Code::Unimplemented.as_u8()));
}

#[test]
fn empty_message_is_valid() {
    let mut h = Harness::connected(&TransportConfig::default());
    let r = h
        .call(PATH, b"", &RequestOptions::default(), &mut echo)
        .expect("done");
    assert_eq!(r.message, Some(Vec::new()));
    assert_eq!(r.grpc_status, Some(0));
}

#[test]
fn grpc_timeout_becomes_an_absolute_deadline() {
    let cases = [
        ("1H", Duration::from_secs(3600)),
        ("2M", Duration::from_secs(120)),
        ("3S", Duration::from_secs(3)),
        ("2999m", Duration::from_millis(2999)),
        ("250m", Duration::from_millis(250)),
        ("7u", Duration::from_micros(7)),
        ("99999999u", Duration::from_micros(99_999_999)),
        ("7n", Duration::from_nanos(7)),
    ];
    for (value, dur) in cases {
        let mut h = Harness::connected(&TransportConfig::default());
        h.now = Timestamp::from_millis(5000);
        let (_, bytes) = h
            .client
            .unary(PATH, b"x", &opts_with(|o| o.timeout = Some(value.into())));
        h.send(&bytes);
        let req = h.conn.poll_request().expect("request");
        assert_eq!(req.deadline, Some(h.now.saturating_add(dur)), "{value}");
        assert_eq!(req.received, h.now);
    }
    let mut h = Harness::connected(&TransportConfig::default());
    let (_, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    assert_eq!(h.conn.poll_request().and_then(|r| r.deadline), None);
}

#[test]
fn invalid_grpc_timeout_gets_internal() {
    // grpc-go rejects an unparseable grpc-timeout with INTERNAL; so do we.
    for bad in [
        "",
        "S",
        "123456789S",
        "1s",
        "-1S",
        "1.5S",
        "10",
        "3 seconds",
    ] {
        let o = opts_with(|o| o.timeout = Some(bad.into()));
        let (status, code, _) = rejected(&o, &grpc_message(b"x"));
        assert_eq!(
            (status, code),
            (Some(200), Some(Code::Internal.as_u8())),
            "{bad:?}"
        );
    }
}

#[test]
fn te_trailers_is_optional() {
    let mut h = Harness::connected(&TransportConfig::default());
    let r = h.call(PATH, b"x", &opts_with(|o| o.te_trailers = false), &mut echo);
    assert_eq!(r.and_then(|r| r.grpc_status), Some(0));
}

#[test]
fn long_grpc_messages_are_truncated_and_percent_encoded() {
    for long in ["é".repeat(2000), "€".repeat(2000), "a€".repeat(1000)] {
        let mut h = Harness::connected(&TransportConfig::default());
        let r = h
            .call(PATH, b"x", &RequestOptions::default(), &mut |_| {
                Some(Response::error(Code::InvalidArgument, long.clone()))
            })
            .expect("done");
        assert_eq!(r.grpc_status, Some(3));
        let raw = r
            .headers
            .iter()
            .find(|(n, _)| n == "grpc-message")
            .map(|(_, v)| v.clone());
        let raw = raw.unwrap_or_default();
        assert!(raw.len() <= 3 * 512, "{}", raw.len());
        assert!(raw.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        let decoded = r.grpc_message.unwrap_or_default();
        assert!(
            long.starts_with(&decoded) && decoded.len() > 500,
            "{}",
            decoded.len()
        );
    }
}

#[test]
fn every_status_code_is_sent() {
    let mut h = Harness::connected(&TransportConfig::default());
    for code in 1..=16u8 {
        let c = CODES[usize::from(code)];
        let r = h
            .call(PATH, b"x", &RequestOptions::default(), &mut |_| {
                Some(Response::error(c, "m"))
            })
            .expect("done");
        assert_eq!(r.grpc_status, Some(code));
    }
}

#[test]
fn parked_requests_are_answered_in_any_order() {
    let mut h = Harness::connected(&TransportConfig::default());
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let (id, bytes) = h.client.unary(PATH, &[i], &RequestOptions::default());
        h.send(&bytes);
        ids.push(id);
    }
    h.pump(&mut park);
    assert_eq!(h.conn.in_flight(), 5);
    let mut parked = std::mem::take(&mut h.parked);
    parked.reverse();
    for req in parked {
        let body = req.message.expose().to_vec();
        h.conn
            .respond(req.stream, Response::ok(SecretBytes::new(body)), h.now);
        // A second answer to the same stream is ignored.
        h.conn
            .respond(req.stream, Response::error(Code::Internal, "dup"), h.now);
    }
    h.pump(&mut park);
    assert_eq!(h.conn.in_flight(), 0);
    for (i, id) in ids.into_iter().enumerate() {
        let r = h.client.take_response(id).expect("done");
        assert_eq!(r.message, Some(vec![i as u8]));
        assert_eq!(r.grpc_status, Some(0));
    }
    assert!(h.client.protocol_errors.is_empty());
}

#[test]
fn request_body_split_across_many_data_frames() {
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    let body = grpc_message(b"fragmented");
    for b in &body {
        h.send(&raw_frame(0x0, 0, id, &[*b]));
    }
    h.send(&raw_frame(0x0, 0x1, id, b""));
    h.pump(&mut echo);
    assert_eq!(
        h.client.take_response(id).and_then(|r| r.message),
        Some(b"fragmented".to_vec())
    );
}

/// The `grpc` helpers alone: `grpc-timeout` units, content types, percent-encoding.
mod helpers {
    use core::time::Duration;

    use kms_plugin_core::grpc::*;

    #[test]
    fn timeouts_in_every_unit() {
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout(b"1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse_timeout(b"2999m"), Some(Duration::from_millis(2999)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"1s",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        for ok in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc;charset=utf-8",
            b"Application/GRPC",
        ] {
            assert!(is_grpc_content_type(ok));
        }
        for bad in [
            &b"application/json"[..],
            b"application/grpcx",
            b"",
            b"application/grp",
        ] {
            assert!(!is_grpc_content_type(bad));
        }
    }

    #[test]
    fn percent_encoding() {
        let mut s = String::new();
        percent_encode("a 100% é\n", &mut s);
        assert_eq!(s, "a 100%25 %C3%A9%0A");
    }
}
