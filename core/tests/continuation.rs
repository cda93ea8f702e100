//! HEADERS + CONTINUATION (RFC 9113 §6.10) and its flood protection.

use kms_plugin_core::TransportConfig;
use kms_plugin_core::h2::Reason;
use kms_plugin_testkit::client::{RequestOptions, ping_frame, raw_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo};

const PATH: &str = "/v2.KeyManagementService/Status";

#[test]
fn header_block_split_across_continuations() {
    for chunk in [1, 2, 7, 100] {
        let cfg = TransportConfig {
            max_continuation_frames: 1000,
            ..TransportConfig::default()
        };
        let mut h = Harness::connected(&cfg);
        let opts = RequestOptions {
            header_chunk: Some(chunk),
            ..RequestOptions::default()
        };
        let r = h.call(PATH, b"m", &opts, &mut echo).expect("done");
        assert_eq!(r.message, Some(b"m".to_vec()), "chunk {chunk}");
    }
}

#[test]
fn end_stream_on_headers_applies_after_continuation() {
    // A request with END_STREAM on HEADERS and the block completed by CONTINUATION has no
    // message: answered by the transport (gRPC unary needs exactly one message).
    let mut h = Harness::connected(&TransportConfig::default());
    let opts = RequestOptions {
        header_chunk: Some(10),
        ..RequestOptions::default()
    };
    let (id, bytes) = h.client.unary_raw_body(PATH, b"", &opts);
    h.send(&bytes);
    h.pump(&mut echo);
    let r = h.client.take_response(id).expect("answered");
    assert_eq!(r.grpc_status, Some(12));
}

fn open_block(h: &mut Harness) -> (u32, Vec<u8>) {
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0, id, &block[..4]));
    (id, block[4..].to_vec())
}

#[test]
fn any_other_frame_inside_a_header_block_is_protocol_error() {
    // §6.10: a HEADERS without END_HEADERS must be followed by CONTINUATION on the same
    // stream; anything else is a connection error PROTOCOL_ERROR.
    let others: Vec<Box<dyn Fn(u32) -> Vec<u8>>> = vec![
        Box::new(|_| ping_frame([0; 8])),
        Box::new(|id| raw_frame(0x0, 0, id, b"x")),
        Box::new(|_| raw_frame(0xfe, 0, 0, b"unknown type")),
        Box::new(|id| raw_frame(0x9, 0x4, id + 2, b"")),
        Box::new(|id| raw_frame(0x1, 0x4, id + 2, b"")),
        Box::new(|id| raw_frame(0x2, 0, id, &[0, 0, 0, 0, 1])),
    ];
    for (i, other) in others.iter().enumerate() {
        let mut h = Harness::connected(&TransportConfig::default());
        let (id, _) = open_block(&mut h);
        h.send(&other(id));
        h.pump(&mut echo);
        assert_eq!(
            h.client.goaway().map(|g| g.1),
            Some(Reason::PROTOCOL_ERROR.0),
            "case {i}"
        );
    }
}

#[test]
fn continuation_without_headers_is_protocol_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x9, 0x4, 1, b""));
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn continuation_after_a_complete_block_is_protocol_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    let r = h.call(PATH, b"m", &RequestOptions::default(), &mut echo);
    assert!(r.is_some());
    h.send(&raw_frame(0x9, 0x4, 1, b""));
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn too_many_continuation_frames_get_enhance_your_calm() {
    // CONTINUATION flood (CVE-2024-27316 class): the count is capped.
    let cfg = TransportConfig {
        max_continuation_frames: 4,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let (id, _) = open_block(&mut h);
    for _ in 0..5 {
        h.send(&raw_frame(0x9, 0, id, b""));
    }
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::ENHANCE_YOUR_CALM.0)
    );
}

#[test]
fn header_block_size_is_capped_before_buffering() {
    let cfg = TransportConfig {
        max_header_list_size: 1024,
        max_continuation_frames: 1000,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let (id, _) = open_block(&mut h);
    for _ in 0..3 {
        h.send(&raw_frame(0x9, 0, id, &[0x80; 1000]));
    }
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::ENHANCE_YOUR_CALM.0)
    );
}

#[test]
fn exact_continuation_limit_is_accepted() {
    let cfg = TransportConfig {
        max_continuation_frames: 3,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let block = h.client.request_block(PATH, &RequestOptions::default());
    let opts = RequestOptions {
        header_chunk: Some(block.len().div_ceil(4)),
        ..RequestOptions::default()
    };
    // Re-encode (the encoder is static-only, so the block is the same) and split into 4.
    let r = h.call(PATH, b"m", &opts, &mut echo).expect("done");
    assert_eq!(r.message, Some(b"m".to_vec()));
}
