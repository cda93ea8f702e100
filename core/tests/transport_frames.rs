//! Preface, SETTINGS, PING, GOAWAY, CONTINUATION, padding, frame size and unknown frames
//! (RFC 9113 §3.4, §4, §6).

mod support;

use kms_plugin_core::Timestamp;
use kms_plugin_core::h2::frame::{FrameKind, flags};
use support::h2::{Raw, conn, frames, goaway_code, output, rst_code};

const PROTOCOL_ERROR: u32 = 0x1;
const FRAME_SIZE_ERROR: u32 = 0x6;

#[test]
fn bad_preface_is_goaway_protocol_error() {
    let mut c = conn();
    output(&mut c);
    c.handle_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(PROTOCOL_ERROR));
    assert!(c.is_closed());
}

#[test]
fn preface_must_be_followed_by_settings() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.buf
        .extend_from_slice(kms_plugin_core::h2::frame::PREFACE);
    raw.frame(FrameKind::Ping, 0, 0, &[0; 8]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(PROTOCOL_ERROR));
}

#[test]
fn byte_at_a_time_input_works() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[])
        .unary(1, "/x", Some("localhost"), b"hello");
    for b in raw.take() {
        c.handle_bytes(&[b], Timestamp::ZERO);
    }
    let req = c.poll_request().expect("request");
    assert_eq!(req.message.expose(), b"hello");
}

#[test]
fn settings_are_acked_and_ping_is_answered() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]).frame(FrameKind::Ping, 0, 0, b"12345678");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let fs = frames(&output(&mut c));
    assert!(
        fs.iter()
            .any(|f| f.head.kind == FrameKind::Settings && f.head.has(flags::ACK))
    );
    assert!(fs.iter().any(|f| f.head.kind == FrameKind::Ping
        && f.head.has(flags::ACK)
        && f.payload == b"12345678"));
}

#[test]
fn sixteen_mib_frame_is_refused_from_its_head_without_buffering() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    // Only the 9-octet head of a 16 MiB DATA frame: the error comes before any payload.
    raw.buf
        .extend_from_slice(&[0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(FRAME_SIZE_ERROR));
    assert!(c.is_closed());
    // Further input is ignored, never buffered.
    c.handle_bytes(&vec![0u8; 1 << 20], Timestamp::ZERO);
    assert!(output(&mut c).is_empty());
}

#[test]
fn continuation_assembles_a_header_block() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let block = raw.request_block("/split", Some("localhost"), &[]);
    let (a, b) = block.split_at(block.len() / 2);
    raw.frame(FrameKind::Headers, 0, 1, a);
    raw.frame(FrameKind::Continuation, flags::END_HEADERS, 1, b);
    raw.frame(
        FrameKind::Data,
        flags::END_STREAM,
        1,
        &support::h2::grpc_message(b"x"),
    );
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(c.poll_request().unwrap().path, "/split");
}

#[test]
fn frame_interleaved_in_a_header_block_is_a_protocol_error() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let block = raw.request_block("/split", Some("localhost"), &[]);
    raw.frame(FrameKind::Headers, 0, 1, &block[..3]);
    raw.frame(FrameKind::Ping, 0, 0, &[0; 8]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(PROTOCOL_ERROR));
}

#[test]
fn continuation_flood_is_refused() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    raw.frame(FrameKind::Headers, 0, 1, &[]);
    for _ in 0..100 {
        raw.frame(FrameKind::Continuation, 0, 1, &[]);
    }
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(0xb), "ENHANCE_YOUR_CALM");
}

#[test]
fn padded_headers_and_data_with_priority() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let block = raw.request_block("/pad", Some("localhost"), &[]);
    let mut headers = vec![3u8]; // pad length
    headers.extend_from_slice(&[0, 0, 0, 0, 16]); // PRIORITY: dependency + weight
    headers.extend_from_slice(&block);
    headers.extend_from_slice(&[0, 0, 0]);
    raw.frame(
        FrameKind::Headers,
        flags::END_HEADERS | flags::PADDED | flags::PRIORITY,
        1,
        &headers,
    );
    let mut data = vec![2u8];
    data.extend_from_slice(&support::h2::grpc_message(b"padded"));
    data.extend_from_slice(&[0, 0]);
    raw.frame(FrameKind::Data, flags::END_STREAM | flags::PADDED, 1, &data);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(c.poll_request().unwrap().message.expose(), b"padded");
}

#[test]
fn padding_longer_than_the_payload_is_a_protocol_error() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let block = raw.request_block("/pad", Some("localhost"), &[]);
    raw.frame(FrameKind::Headers, flags::END_HEADERS, 1, &block);
    raw.frame(FrameKind::Data, flags::PADDED, 1, &[10, 1, 2]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(PROTOCOL_ERROR));
}

#[test]
fn unknown_frames_and_settings_are_ignored_priority_frames_too() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[(0x99, 7)]);
    raw.frame(FrameKind::Unknown(0xfa), 0xff, 0, b"whatever");
    raw.frame(FrameKind::Priority, 0, 3, &[0, 0, 0, 0, 1]);
    raw.unary(1, "/x", Some("localhost"), b"ok");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert!(c.poll_request().is_some());
    assert!(!c.is_closed());
}

#[test]
fn even_and_decreasing_stream_ids_are_protocol_errors() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]).unary(2, "/x", Some("localhost"), b"");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(PROTOCOL_ERROR));
}

#[test]
fn malformed_requests_are_reset_with_protocol_error() {
    for extra in [
        &[("connection", "close")][..],
        &[("te", "gzip")][..],
        &[("Upper", "x")][..],
    ] {
        let mut c = conn();
        output(&mut c);
        let mut raw = Raw::new();
        raw.handshake(&[]);
        let block = raw.request_block("/x", Some("localhost"), extra);
        raw.frame(
            FrameKind::Headers,
            flags::END_HEADERS | flags::END_STREAM,
            1,
            &block,
        );
        c.handle_bytes(&raw.take(), Timestamp::ZERO);
        assert_eq!(
            rst_code(&output(&mut c), 1),
            Some(PROTOCOL_ERROR),
            "{extra:?}"
        );
        assert!(c.poll_request().is_none());
    }
}

#[test]
fn settings_ack_timeout_is_settings_timeout() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    output(&mut c);
    let t = c.poll_timeout().expect("our SETTINGS await an ACK");
    c.handle_timeout(t);
    assert_eq!(goaway_code(&output(&mut c)), Some(0x4));
}

#[test]
fn graceful_shutdown_finishes_in_flight_then_closes() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[(0, 0)][..0])
        .unary(1, "/x", Some("localhost"), b"a");
    raw.frame(FrameKind::Settings, flags::ACK, 0, &[]);
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let req = c.poll_request().unwrap();
    output(&mut c);
    c.start_shutdown(Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(0), "GOAWAY(NO_ERROR)");
    assert!(!c.is_closed(), "stream 1 is still in flight");
    // A new stream after GOAWAY is refused.
    raw.unary(3, "/x", Some("localhost"), b"b");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(rst_code(&output(&mut c), 3), Some(0x7));
    c.respond(req.stream, support::h2::echo(&req), Timestamp::ZERO);
    assert!(!output(&mut c).is_empty());
    assert!(c.is_closed());
}

#[test]
fn peer_reset_cancels_a_handed_out_request() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[]).unary(1, "/x", Some("localhost"), b"a");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert!(c.poll_request().is_some());
    raw.frame(FrameKind::RstStream, 0, 1, &8u32.to_be_bytes());
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(c.poll_cancelled(), Some(1));
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn rapid_reset_is_enhance_your_calm() {
    let mut c = conn();
    output(&mut c);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    for i in 0..300u32 {
        let id = 2 * i + 1;
        let block = raw.request_block("/x", Some("localhost"), &[]);
        raw.frame(FrameKind::Headers, flags::END_HEADERS, id, &block);
        raw.frame(FrameKind::RstStream, 0, id, &8u32.to_be_bytes());
    }
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(goaway_code(&output(&mut c)), Some(0xb));
}

#[test]
fn goaway_after_graceful_goaway_never_raises_the_last_stream_id() {
    // RFC 9113 §6.8: "Endpoints MUST NOT increase the value they send in the last stream
    // identifier". Found by the plugin_session fuzz target.
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[]).unary(1, "/x", Some("localhost"), b"a");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let _req = c.poll_request().unwrap();
    output(&mut c);
    c.start_shutdown(Timestamp::ZERO);
    output(&mut c);
    raw.unary(3, "/x", Some("localhost"), b"b"); // refused: after our GOAWAY
    raw.frame(FrameKind::Ping, 0, 1, &[0; 8]); // PING on a stream: connection error
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let out = output(&mut c);
    let goaway = frames(&out)
        .into_iter()
        .find(|f| f.head.kind == FrameKind::GoAway)
        .expect("GOAWAY");
    assert_eq!(
        u32::from_be_bytes(goaway.payload[..4].try_into().unwrap()),
        1
    );
    assert_eq!(goaway_code(&out), Some(PROTOCOL_ERROR));
}
