//! gRPC framing on the transport (gRPC PROTOCOL-HTTP2): content-type, method, compression,
//! grpc-timeout, message count and size, concurrency limits.

mod support;

use core::time::Duration;

use kms_plugin_core::Timestamp;
use kms_plugin_core::h2::frame::{FrameKind, flags};
use kms_plugin_core::rpc::Code;
use support::h2::{Raw, conn, frames, grpc_message, output, rst_code};

/// Sends one request with `extra` headers and `body` (raw DATA payload); returns the trailers.
fn answer(extra: &[(&str, &str)], method_post: bool, body: &[u8]) -> Vec<(String, String)> {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let mut block = Vec::new();
    let method = if method_post { "POST" } else { "GET" };
    let mut fields = vec![
        (":method", method),
        (":scheme", "http"),
        (":path", "/p"),
        ("te", "trailers"),
    ];
    if !extra.iter().any(|(n, _)| *n == "content-type") {
        fields.push(("content-type", "application/grpc"));
    }
    fields.extend_from_slice(extra);
    for (n, v) in fields {
        raw.enc
            .encode_field(n.as_bytes(), v.as_bytes(), false, &mut block);
    }
    raw.frame(FrameKind::Headers, flags::END_HEADERS, 1, &block);
    raw.frame(FrameKind::Data, flags::END_STREAM, 1, body);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert!(
        c.poll_request().is_none(),
        "the transport answers these itself"
    );
    let out = output(&mut c);
    let f = frames(&out)
        .into_iter()
        .find(|f| f.head.kind == FrameKind::Headers && f.head.stream == 1)
        .expect("a response");
    assert!(f.head.has(flags::END_STREAM), "trailers-only");
    raw.fields(&f.payload)
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

#[test]
fn wrong_content_type_is_http_415() {
    let t = answer(
        &[("content-type", "application/json")],
        true,
        &grpc_message(b""),
    );
    assert_eq!(get(&t, ":status"), "415");
}

#[test]
fn non_post_is_http_405() {
    let t = answer(&[], false, &grpc_message(b""));
    assert_eq!(get(&t, ":status"), "405");
}

#[test]
fn compressed_message_is_unimplemented() {
    let mut body = grpc_message(b"zz");
    body[0] = 1;
    let t = answer(&[], true, &body);
    assert_eq!(get(&t, "grpc-status"), "12");
    assert!(get(&t, "grpc-message").contains("compress"));
}

#[test]
fn unsupported_grpc_encoding_is_unimplemented() {
    let t = answer(&[("grpc-encoding", "gzip")], true, &grpc_message(b""));
    assert_eq!(get(&t, "grpc-status"), "12");
}

#[test]
fn two_messages_on_a_unary_call_are_refused() {
    let mut body = grpc_message(b"a");
    body.extend_from_slice(&grpc_message(b"b"));
    let t = answer(&[], true, &body);
    assert_eq!(get(&t, "grpc-status"), "12");
}

#[test]
fn length_mismatch_is_internal_and_message_is_percent_encoded() {
    let mut body = grpc_message(b"abc");
    body.truncate(6);
    let t = answer(&[], true, &body);
    assert_eq!(get(&t, "grpc-status"), "13");
    assert!(!get(&t, "grpc-message").is_empty());
}

#[test]
fn malformed_grpc_timeout_is_internal() {
    let t = answer(&[("grpc-timeout", "3 seconds")], true, &grpc_message(b""));
    assert_eq!(get(&t, "grpc-status"), "13");
}

#[test]
fn grpc_timeout_becomes_an_absolute_deadline() {
    for (value, d) in [
        ("3S", Duration::from_secs(3)),
        ("250m", Duration::from_millis(250)),
        ("1H", Duration::from_secs(3600)),
        ("7u", Duration::from_micros(7)),
        ("9n", Duration::from_nanos(9)),
        ("2M", Duration::from_secs(120)),
    ] {
        let mut c = conn();
        let mut raw = Raw::new();
        raw.handshake(&[]);
        let block = raw.request_block("/t", Some("localhost"), &[("grpc-timeout", value)]);
        raw.frame(FrameKind::Headers, flags::END_HEADERS, 1, &block);
        raw.frame(FrameKind::Data, flags::END_STREAM, 1, &grpc_message(b""));
        let now = Timestamp::from_millis(1000);
        c.handle_bytes(&raw.take(), now);
        assert_eq!(
            c.poll_request().unwrap().deadline,
            Some(now.saturating_add(d)),
            "{value}"
        );
    }
}

#[test]
fn oversized_message_is_resource_exhausted_before_it_is_buffered() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let block = raw.request_block("/big", Some("localhost"), &[]);
    raw.frame(FrameKind::Headers, flags::END_HEADERS, 1, &block);
    // Declares 64 MiB; sends only the prefix.
    raw.frame(FrameKind::Data, 0, 1, &[0, 4, 0, 0, 0]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let out = output(&mut c);
    let f = frames(&out)
        .into_iter()
        .find(|f| f.head.kind == FrameKind::Headers)
        .unwrap();
    let t = raw.fields(&f.payload);
    assert_eq!(
        get(&t, "grpc-status"),
        &(Code::ResourceExhausted.as_u8()).to_string()
    );
    assert_eq!(
        rst_code(&out, 1),
        Some(0),
        "RST_STREAM(NO_ERROR) after the early answer"
    );
}

#[test]
fn streams_beyond_max_concurrent_are_refused() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    for i in 0..101u32 {
        let block = raw.request_block("/x", Some("localhost"), &[]);
        raw.frame(FrameKind::Headers, flags::END_HEADERS, 2 * i + 1, &block);
    }
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(rst_code(&output(&mut c), 201), Some(0x7), "REFUSED_STREAM");
}
