//! PADDED and PRIORITY flags (RFC 9113 §6.1, §6.2) and PRIORITY frames (§6.3).

use kms_plugin_core::TransportConfig;
use kms_plugin_core::h2::Reason;
use kms_plugin_testkit::client::{RequestOptions, grpc_message, raw_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo};

const PATH: &str = "/v2.KeyManagementService/Encrypt";

#[test]
fn padded_headers_and_data_are_stripped() {
    for pad in [0u8, 1, 17, 255] {
        let mut h = Harness::connected(&TransportConfig::default());
        let opts = RequestOptions {
            padding: Some(pad),
            data_chunk: Some(3),
            ..RequestOptions::default()
        };
        let r = h
            .call(PATH, b"padded message", &opts, &mut echo)
            .expect("done");
        assert_eq!(r.message, Some(b"padded message".to_vec()), "pad {pad}");
    }
}

#[test]
fn priority_flag_on_headers_is_accepted_and_ignored() {
    let mut h = Harness::connected(&TransportConfig::default());
    let opts = RequestOptions {
        priority: true,
        padding: Some(4),
        header_chunk: Some(5),
        ..RequestOptions::default()
    };
    let r = h.call(PATH, b"p", &opts, &mut echo).expect("done");
    assert_eq!(r.message, Some(b"p".to_vec()));
}

fn goaway_code(frames: &[Vec<u8>]) -> Option<u32> {
    let mut h = Harness::connected(&TransportConfig::default());
    for f in frames {
        h.send(f);
    }
    h.pump(&mut echo);
    h.client.goaway().map(|g| g.1)
}

#[test]
fn pad_length_not_less_than_the_payload_is_protocol_error() {
    // §6.1, §6.2: padding that is the length of the frame payload or greater is a
    // connection error PROTOCOL_ERROR.
    let mut c = kms_plugin_testkit::client::TestClient::new();
    let _ = c.handshake();
    let block = c.request_block(PATH, &RequestOptions::default());
    // HEADERS: pad length 10 with only 5 octets after it.
    let mut p = vec![10u8];
    p.extend_from_slice(&block[..5]);
    assert_eq!(
        goaway_code(&[raw_frame(0x1, 0x4 | 0x8, 1, &p)]),
        Some(Reason::PROTOCOL_ERROR.0)
    );
    // HEADERS: PADDED with an empty payload.
    assert_eq!(
        goaway_code(&[raw_frame(0x1, 0x4 | 0x8, 1, &[])]),
        Some(Reason::PROTOCOL_ERROR.0)
    );
    // DATA: pad length equal to the remaining payload + 1.
    let mut c = kms_plugin_testkit::client::TestClient::new();
    let block = c.request_block(PATH, &RequestOptions::default());
    assert_eq!(
        goaway_code(&[
            raw_frame(0x1, 0x4, 1, &block),
            raw_frame(0x0, 0x8, 1, &[3, 0, 0])
        ]),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn pad_length_equal_to_the_rest_is_an_empty_fragment() {
    // Pad length = payload - 1: all padding, no content (allowed).
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    h.send(&raw_frame(0x0, 0x8, id, &[2, 0, 0]));
    h.send(&raw_frame(0x0, 0x1, id, &grpc_message(b"z")));
    h.pump(&mut echo);
    assert_eq!(
        h.client.take_response(id).and_then(|r| r.message),
        Some(b"z".to_vec())
    );
}

#[test]
fn headers_too_short_for_priority_is_an_error() {
    let code = goaway_code(&[raw_frame(0x1, 0x4 | 0x20, 1, &[0, 0, 0])]);
    assert!(code.is_some());
}

#[test]
fn priority_frames_are_accepted_and_ignored() {
    // §6.3: PRIORITY on any stream, even idle or closed, is ignored.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x2, 0, 1, &[0, 0, 0, 0, 16]));
    h.send(&raw_frame(0x2, 0, 99, &[0x80, 0, 0, 3, 255]));
    let r = h.call(
        PATH,
        b"after priority",
        &RequestOptions::default(),
        &mut echo,
    );
    assert_eq!(r.and_then(|r| r.message), Some(b"after priority".to_vec()));
    assert_eq!(h.client.goaway(), None);
}

#[test]
fn priority_frame_of_wrong_length_on_an_open_stream_is_a_stream_error() {
    // §6.3: a length other than 5 is a stream error FRAME_SIZE_ERROR.
    let mut h = Harness::connected(&TransportConfig::default());
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    let headers = h
        .client
        .headers_frames(id, &block, false, &RequestOptions::default());
    h.send(&headers);
    h.send(&raw_frame(0x2, 0, id, &[0, 0, 0, 0]));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), None);
    let rst = h.client.frames.iter().find(|f| f.kind == 0x3).cloned();
    assert_eq!(rst.map(|f| f.stream), Some(id));
    assert!(!h.conn.is_closed());
}

#[test]
fn priority_frame_of_wrong_length_on_an_idle_stream_is_a_connection_error() {
    // RST_STREAM must not name an idle stream (§6.4), and an idle stream we had reset could
    // later be opened by HEADERS and answered (fuzz finding, h2_frames): so it is a connection
    // error FRAME_SIZE_ERROR (§5.4.1), and a HEADERS that follows on that stream is never
    // answered.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x2, 0, 1, &[0, 0, 0, 0]));
    let (id, bytes) = h
        .client
        .unary(PATH, b"after a bad PRIORITY", &RequestOptions::default());
    assert_eq!(id, 1);
    h.send(&bytes);
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|(_, code)| code),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    assert!(
        h.client.frames.iter().all(|f| f.kind != 0x3),
        "RST_STREAM on an idle stream"
    );
    assert!(
        h.client.take_response(id).is_none(),
        "answered a stream after the error"
    );
    assert!(h.conn.is_closed());
}

#[test]
fn self_dependent_priority_on_an_idle_stream_is_a_connection_error() {
    // §5.3.1 makes it a stream error; on an idle stream it is a connection error (as above).
    assert_eq!(
        goaway_code(&[raw_frame(0x2, 0, 5, &[0, 0, 0, 5, 16])]),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn priority_on_stream_zero_is_protocol_error() {
    assert_eq!(
        goaway_code(&[raw_frame(0x2, 0, 0, &[0, 0, 0, 0, 16])]),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}
