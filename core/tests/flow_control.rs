//! Flow control in both directions (RFC 9113 §5.2, §6.9).

use kms_plugin_core::h2::Reason;
use kms_plugin_core::rpc::Response;
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::{ConnEvent, TransportConfig};
use kms_plugin_testkit::client::{
    RequestOptions, grpc_message, raw_frame, settings_frame, window_update_frame,
};
use kms_plugin_testkit::h2_harness::{Harness, echo, park};

const PATH: &str = "/v2.KeyManagementService/Encrypt";

/// Only the RFC default windows: nothing beyond 65,535 octets without WINDOW_UPDATE.
fn small_windows() -> TransportConfig {
    TransportConfig {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..TransportConfig::default()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn request_larger_than_the_default_window_completes_through_window_update() {
    let mut h = Harness::connected(&small_windows());
    let message = pattern(300_000);
    let (id, first) = h.client.unary(PATH, &message, &RequestOptions::default());
    // The client stops at the 65,535-octet windows and waits for credit.
    assert!(h.client.blocked_bytes() > 200_000);
    h.send(&first);
    let mut got = None;
    h.pump(&mut |req| {
        got = Some(req.message.expose().to_vec());
        Some(Response::ok(SecretBytes::copy_from(b"done")))
    });
    assert_eq!(got.as_deref(), Some(&message[..]));
    let resp = h.client.take_response(id).expect("finished");
    assert_eq!(resp.grpc_status, Some(0));
    assert_eq!(resp.message.as_deref(), Some(&b"done"[..]));
    // The server returned credit on both the connection and the stream.
    let wu = &h.client.window_updates;
    assert!(wu.iter().any(|&(s, _)| s == 0), "{wu:?}");
    assert!(wu.iter().any(|&(s, _)| s == id), "{wu:?}");
    let credited: u64 = wu.iter().filter(|w| w.0 == 0).map(|w| u64::from(w.1)).sum();
    assert!(credited + 65_535 >= 300_005, "{credited}");
    assert!(
        h.client.protocol_errors.is_empty(),
        "{:?}",
        h.client.protocol_errors
    );
}

#[test]
fn default_windows_open_at_once_for_a_large_request() {
    // Our SETTINGS and connection WINDOW_UPDATE open the windows before the request.
    let mut h = Harness::connected(&TransportConfig::default());
    let message = pattern(200_000);
    let resp = h
        .call(PATH, &message, &RequestOptions::default(), &mut echo)
        .expect("finished");
    assert_eq!(resp.message.as_deref(), Some(&message[..]));
}

#[test]
fn our_settings_and_connection_window_are_exact_golden_bytes() {
    let mut h = Harness::new(&TransportConfig::default());
    let expected: &[u8] = &[
        0, 0, 18, 4, 0, 0, 0, 0, 0, // SETTINGS, 3 entries
        0, 3, 0, 0, 0, 100, // MAX_CONCURRENT_STREAMS 100
        0, 4, 0, 0x10, 0, 0, // INITIAL_WINDOW_SIZE 1 MiB
        0, 6, 0, 0, 0x40, 0, // MAX_HEADER_LIST_SIZE 16 KiB
        0, 0, 4, 8, 0, 0, 0, 0, 0, // WINDOW_UPDATE stream 0
        0, 0x7f, 0x00, 0x01, // 8 MiB - 65,535
    ];
    assert_eq!(h.take_server_output(), expected);
}

#[test]
fn response_waits_for_a_small_window_set_before_the_request() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.client.auto_window_update = false;
    // The client allows 10 octets per stream from the start.
    h.send(&settings_frame(&[(0x4, 10)]));
    h.pump(&mut park);
    let (id, bytes) = h.client.unary(PATH, b"", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut |_| Some(Response::ok(SecretBytes::copy_from(&[9u8; 100]))));
    let data = |h: &Harness| -> u32 {
        h.client
            .frames
            .iter()
            .filter(|f| f.kind == 0 && f.stream == id)
            .map(|f| f.len)
            .sum()
    };
    assert_eq!(data(&h), 10, "only the window's worth of DATA");
    assert!(!h.client.is_done(id));
    // Open the stream window: the rest and the trailers follow.
    h.send(&window_update_frame(id, 1000));
    h.pump(&mut park);
    assert_eq!(data(&h), 105);
    let resp = h.client.take_response(id).expect("finished");
    assert_eq!(resp.message.map(|m| m.len()), Some(100));
}

#[test]
fn large_request_in_tiny_frames_one_byte_at_a_time() {
    let mut h = Harness::connected(&small_windows());
    h.feed_chunk = 1;
    let message = pattern(70_000);
    let opts = RequestOptions {
        data_chunk: Some(1000),
        ..RequestOptions::default()
    };
    let resp = h.call(PATH, &message, &opts, &mut echo).expect("finished");
    assert_eq!(resp.message.as_deref(), Some(&message[..]));
}

#[test]
fn response_larger_than_the_peer_window_waits_for_window_update() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.client.auto_window_update = false;
    let big = pattern(100_000);
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    let body = big.clone();
    h.pump(&mut |_| Some(Response::ok(SecretBytes::copy_from(&body))));
    // Only the peer's default 65,535-octet window went out; no trailers yet.
    assert!(!h.client.is_done(id));
    let data: u32 = h
        .client
        .frames
        .iter()
        .filter(|f| f.kind == 0 && f.stream == id)
        .map(|f| f.len)
        .sum();
    assert_eq!(data, 65_535);
    assert!(h.client.frames.iter().all(|f| f.len <= 16_384));
    // Credit the connection only: the stream window still blocks.
    h.send(&window_update_frame(0, 1 << 20));
    h.pump(&mut echo);
    assert!(!h.client.is_done(id));
    // Credit the stream: the rest and the trailers follow.
    h.send(&window_update_frame(id, 1 << 20));
    h.pump(&mut echo);
    let resp = h.client.take_response(id).expect("finished");
    assert_eq!(resp.message.as_deref(), Some(&big[..]));
    assert_eq!(resp.grpc_status, Some(0));
}

#[test]
fn initial_window_size_change_adjusts_open_streams() {
    // §6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change applies to streams already open.
    let mut h = Harness::connected(&TransportConfig::default());
    h.client.auto_window_update = false;
    h.send(&window_update_frame(0, 1 << 20));
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    let req = h.parked.pop().expect("parked");
    h.send(&settings_frame(&[(0x4, 10)]));
    h.pump(&mut park);
    h.respond(
        req.stream,
        Response::ok(SecretBytes::copy_from(&pattern(100))),
    );
    h.pump(&mut park);
    let data: u32 = h
        .client
        .frames
        .iter()
        .filter(|f| f.kind == 0)
        .map(|f| f.len)
        .sum();
    assert_eq!(data, 10);
    // Raising it again releases the rest.
    h.send(&settings_frame(&[(0x4, 1000)]));
    h.pump(&mut park);
    let resp = h.client.take_response(id).expect("finished");
    assert_eq!(resp.message.map(|m| m.len()), Some(100));
}

#[test]
fn connection_window_overflow_is_flow_control_error() {
    // §6.9.1: a window above 2^31-1 is a connection error FLOW_CONTROL_ERROR.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&window_update_frame(0, 0x7fff_ffff));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((0, Reason::FLOW_CONTROL_ERROR.0)));
    assert!(h.conn.is_closed());
}

#[test]
fn stream_window_overflow_is_a_stream_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&window_update_frame(id, 0x7fff_ffff));
    h.pump(&mut park);
    let resp = h.client.take_response(id).expect("reset");
    assert_eq!(resp.reset, Some(Reason::FLOW_CONTROL_ERROR.0));
    assert_eq!(h.cancelled, vec![id]);
    assert!(!h.conn.is_closed());
}

#[test]
fn settings_initial_window_overflowing_a_stream_is_flow_control_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&window_update_frame(id, 0x7fff_0000));
    h.send(&settings_frame(&[(0x4, 0x7fff_ffff)]));
    h.pump(&mut park);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::FLOW_CONTROL_ERROR.0)
    );
}

#[test]
fn zero_window_update_is_protocol_error() {
    // §6.9: an increment of 0 on the connection is a connection error.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&window_update_frame(0, 0));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((0, Reason::PROTOCOL_ERROR.0)));
}

#[test]
fn zero_window_update_on_a_stream_resets_it() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"x", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    h.send(&window_update_frame(id, 0));
    h.pump(&mut park);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(1));
}

#[test]
fn window_update_wrong_length_is_frame_size_error() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0x8, 0, 0, &[0, 0, 1]));
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
}

#[test]
fn data_beyond_the_connection_window_is_flow_control_error() {
    // §6.9.1: a sender must not exceed the window; the receiver treats it as a connection
    // error FLOW_CONTROL_ERROR. We return credit eagerly (at half the window), so only one
    // frame larger than the remaining window can overrun it: allow large frames.
    let cfg = TransportConfig {
        max_frame_size: 100_000,
        ..small_windows()
    };
    let mut h = Harness::connected(&cfg);
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    h.send(&raw_frame(0x0, 0, id, &grpc_message(&pattern(70_000))));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((id, Reason::FLOW_CONTROL_ERROR.0)));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, ConnEvent::Closed { .. }))
    );
}

#[test]
fn data_beyond_the_stream_window_is_a_stream_error() {
    let cfg = TransportConfig {
        initial_window_size: 1000,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    h.send(&raw_frame(0x0, 0, id, &[0; 1001]));
    h.pump(&mut echo);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(3));
    assert!(!h.conn.is_closed());
    // The connection still works.
    let r = h.call(PATH, b"again", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"again".to_vec()));
}

#[test]
fn padding_counts_against_the_windows() {
    // §6.1: the whole DATA payload, padding included, is flow controlled.
    let cfg = TransportConfig {
        initial_window_size: 200,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    let mut payload = vec![255u8];
    payload.extend_from_slice(&grpc_message(b"abc"));
    payload.resize(payload.len() + 255, 0);
    h.send(&raw_frame(0x0, 0x8, id, &payload));
    h.pump(&mut echo);
    assert_eq!(h.client.take_response(id).and_then(|r| r.reset), Some(3));
}
