//! Caps on everything the connection buffers (RFC 9113 §4.2, §5.1.2, §6.5.2; gRPC message
//! size) and rapid-reset protection (CVE-2023-44487).

use kms_plugin_core::h2::Reason;
use kms_plugin_core::rpc::{Code, Response};
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::{ConnEvent, TransportConfig};
use kms_plugin_testkit::client::{
    RequestOptions, grpc_message, ping_frame, raw_frame, raw_head, rst_stream_frame,
};
use kms_plugin_testkit::h2_harness::{Harness, echo, park};

const PATH: &str = "/v2.KeyManagementService/Decrypt";

#[test]
fn a_16_mib_declared_frame_is_refused_from_its_head_alone() {
    // §4.2: a frame larger than our SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR; we see
    // it from the 9-octet head, before a single payload octet arrives.
    for kind in [0x0u8, 0x1, 0x4, 0x9, 0xfe] {
        let mut h = Harness::connected(&TransportConfig::default());
        h.send(&raw_head((1 << 24) - 1, kind, 0, 1));
        assert!(h.conn.is_closed(), "kind {kind}");
        h.pump(&mut echo);
        assert_eq!(h.client.goaway(), Some((0, Reason::FRAME_SIZE_ERROR.0)));
        // More payload octets are ignored without being buffered or answered.
        let before = h.transcript.len();
        h.send(&vec![0u8; 1 << 20]);
        h.pump(&mut echo);
        assert_eq!(h.transcript.len(), before);
        assert!(!h.conn.wants_read());
    }
}

#[test]
fn a_control_frame_head_with_a_wrong_length_is_refused_before_its_payload() {
    // Former fuzz finding (fuzz/artifacts-regressions/plugin_session/crash-01de635a...): a
    // RST_STREAM head announcing 9,252 octets made the server wait for that payload, so the
    // request written after it was swallowed as payload and never answered. Lengths that the
    // head alone shows to be wrong are connection errors FRAME_SIZE_ERROR at once (RFC 9113
    // §6.4, §6.5, §6.7, §6.8, §6.9); the request before it is still answered.
    for (kind, flags, len) in [
        (0x3u8, 0u8, 9_252u32), // RST_STREAM: 4
        (0x6, 0, 9),            // PING: 8
        (0x8, 0, 5),            // WINDOW_UPDATE: 4
        (0x4, 0, 7),            // SETTINGS: a multiple of 6
        (0x4, 0x1, 6),          // SETTINGS ACK: empty
        (0x7, 0, 7),            // GOAWAY: at least 8
    ] {
        let mut h = Harness::connected(&TransportConfig::default());
        let (first, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
        h.send(&bytes);
        h.pump(&mut echo);
        assert!(h.client.take_response(first).is_some(), "kind {kind}");
        h.send(&raw_head(len, kind, flags, 0));
        h.pump(&mut echo);
        assert_eq!(
            h.client.goaway(),
            Some((first, Reason::FRAME_SIZE_ERROR.0)),
            "kind {kind} len {len}"
        );
        assert!(h.conn.is_closed());
        assert_eq!(h.conn.buffered_input(), 0);
    }
}

#[test]
fn a_frame_one_octet_over_the_limit_is_refused_and_the_limit_itself_accepted() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&raw_frame(0xfe, 0, 0, &[0; 16_384]));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), None);
    h.send(&raw_head(16_385, 0xfe, 0, 0));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), Some((0, Reason::FRAME_SIZE_ERROR.0)));
}

#[test]
fn a_larger_configured_max_frame_size_is_advertised_and_honoured() {
    let cfg = TransportConfig {
        max_frame_size: 65_536,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    assert!(h.client.settings.contains(&(0x5, 65_536)));
    h.send(&raw_frame(0xfe, 0, 0, &vec![0; 65_536]));
    h.pump(&mut echo);
    assert_eq!(h.client.goaway(), None);
}

#[test]
fn streams_beyond_max_concurrent_streams_are_refused() {
    // §5.1.2: streams beyond SETTINGS_MAX_CONCURRENT_STREAMS get RST_STREAM(REFUSED_STREAM).
    let cfg = TransportConfig {
        max_concurrent_streams: 3,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    assert!(h.client.settings.contains(&(0x3, 3)));
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
        h.send(&bytes);
        ids.push(id);
    }
    h.pump(&mut park);
    assert_eq!(h.parked.len(), 3);
    assert_eq!(h.conn.in_flight(), 3);
    for &id in &ids[3..] {
        let r = h.client.take_response(id).expect("refused");
        assert_eq!(r.reset, Some(Reason::REFUSED_STREAM.0));
    }
    // Answering frees slots: a new stream is accepted.
    let first = h.parked.remove(0);
    h.conn.respond(
        first.stream,
        Response::error(Code::Unavailable, "later"),
        h.now,
    );
    let r = h.call(PATH, b"more", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"more".to_vec()));
    assert!(!h.conn.is_closed());
}

#[test]
fn header_list_over_the_advertised_size_gets_resource_exhausted_and_hpack_stays_in_sync() {
    // §6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE: we refuse the request at stream level but still
    // decode the block so the HPACK context stays in sync (§4.3).
    let cfg = TransportConfig {
        max_header_list_size: 4096,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    assert!(h.client.settings.contains(&(0x6, 4096)));
    let opts = RequestOptions {
        extra_headers: vec![("x-big".into(), "v".repeat(5000))],
        header_chunk: Some(2000),
        ..RequestOptions::default()
    };
    let r = h.call(PATH, b"m", &opts, &mut echo).expect("answered");
    assert_eq!(r.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    assert!(h.parked.is_empty());
    // The next request, using the dynamic table, still decodes.
    let r = h.call(PATH, b"next", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"next".to_vec()));
    assert!(!h.conn.is_closed());
}

#[test]
fn message_over_max_message_size_gets_resource_exhausted_without_buffering_it() {
    let cfg = TransportConfig {
        max_message_size: 1000,
        max_buffered_bytes: 1005,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let (id, bytes) = h.client.unary(PATH, &[7; 5000], &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut echo);
    let r = h.client.take_response(id).expect("answered");
    assert_eq!(r.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    assert!(h.events.iter().any(|e| matches!(
        e,
        ConnEvent::RequestRejected {
            code: Code::ResourceExhausted,
            ..
        }
    )));
    assert!(cfg.validate().is_ok());
    let too_small = TransportConfig {
        max_buffered_bytes: 1004,
        ..cfg.clone()
    };
    assert!(too_small.validate().is_err());
    // The exact limit passes.
    let r = h.call(PATH, &[1; 1000], &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message).map(|m| m.len()), Some(1000));
}

#[test]
fn declared_length_over_the_limit_is_refused_from_the_prefix() {
    let cfg = TransportConfig {
        max_message_size: 1000,
        max_buffered_bytes: 1005,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let id = h.client.allocate_stream();
    let block = h.client.request_block(PATH, &RequestOptions::default());
    h.send(&raw_frame(0x1, 0x4, id, &block));
    // Only the 5-byte prefix declaring 4 GiB - 1.
    h.send(&raw_frame(0x0, 0, id, &[0, 0xff, 0xff, 0xff, 0xff]));
    h.pump(&mut echo);
    let r = h.client.take_response(id).expect("answered");
    assert_eq!(r.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    // The client was still sending: the stream is reset with NO_ERROR after the answer (§8.1).
    assert_eq!(r.reset, Some(0));
}

#[test]
fn buffered_bytes_across_streams_are_capped() {
    let cfg = TransportConfig {
        max_message_size: 3000,
        max_buffered_bytes: 4000,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = h.client.allocate_stream();
        let block = h.client.request_block(PATH, &RequestOptions::default());
        h.send(&raw_frame(0x1, 0x4, id, &block));
        let body = grpc_message(&[9; 2500]);
        h.send(&raw_frame(0x0, 0, id, &body[..2000]));
        ids.push(id);
    }
    h.pump(&mut echo);
    let rejected: Vec<_> = ids
        .iter()
        .filter_map(|&id| h.client.take_response(id))
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].grpc_status,
        Some(Code::ResourceExhausted.as_u8())
    );
}

#[test]
fn rapid_reset_gets_enhance_your_calm() {
    // CVE-2023-44487: open-and-reset floods end with GOAWAY(ENHANCE_YOUR_CALM).
    let cfg = TransportConfig {
        max_resets_per_window: 10,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    for _ in 0..11 {
        let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
        h.send(&bytes);
        let rst = h.client.cancel(id, 8);
        h.send(&rst);
    }
    h.pump(&mut park);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::ENHANCE_YOUR_CALM.0)
    );
    assert!(h.conn.is_closed());
}

#[test]
fn resets_spread_over_time_are_tolerated() {
    let cfg = TransportConfig {
        max_resets_per_window: 10,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    for _ in 0..50 {
        let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
        h.send(&bytes);
        h.pump(&mut park);
        let rst = h.client.cancel(id, 8);
        h.send(&rst);
        h.advance(cfg.reset_window / 5);
    }
    h.pump(&mut park);
    assert_eq!(h.client.goaway(), None);
    assert_eq!(h.cancelled.len(), 50);
    assert_eq!(h.conn.in_flight(), 0);
}

#[test]
fn reset_of_a_parked_request_cancels_it() {
    let mut h = Harness::connected(&TransportConfig::default());
    let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
    h.send(&bytes);
    h.pump(&mut park);
    assert_eq!(h.conn.in_flight(), 1);
    h.send(&rst_stream_frame(id, 8));
    h.pump(&mut park);
    assert_eq!(h.cancelled, vec![id]);
    assert_eq!(h.conn.in_flight(), 0);
    assert!(h.events.contains(&ConnEvent::StreamReset {
        stream: id,
        reason: Reason::CANCEL
    }));
    // A late answer is ignored.
    h.respond(id, Response::ok(SecretBytes::copy_from(b"late")));
    let before = h.transcript.len();
    h.pump(&mut park);
    assert_eq!(h.transcript.len(), before);
}

#[test]
fn pending_output_over_its_cap_stops_reading() {
    // Backpressure: a client that never reads gets no more reads from us.
    let cfg = TransportConfig {
        max_pending_output: 16 << 10,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    assert!(h.conn.wants_read());
    let mut pings = Vec::new();
    for i in 0..2000u32 {
        let mut o = [0u8; 8];
        o[..4].copy_from_slice(&i.to_be_bytes());
        pings.extend_from_slice(&ping_frame(o));
    }
    h.send(&pings);
    assert!(!h.conn.wants_read());
    let out = h.take_server_output();
    assert_eq!(out.len(), 2000 * 17);
    assert!(h.conn.wants_read());
}

#[test]
fn provoked_stream_errors_count_as_resets() {
    // CVE-2025-8671 ("MadeYouReset"): stream errors the peer provokes (here WINDOW_UPDATE
    // of 0 on a stream whose request was handed out) count against the reset budget.
    let cfg = TransportConfig {
        max_resets_per_window: 10,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    for _ in 0..11 {
        let (id, bytes) = h.client.unary(PATH, b"m", &RequestOptions::default());
        h.send(&bytes);
        h.send(&kms_plugin_testkit::client::window_update_frame(id, 0));
    }
    h.pump(&mut park);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::ENHANCE_YOUR_CALM.0)
    );
    assert_eq!(h.conn.in_flight(), 0);
}
