//! Whole-conversation transcripts: the exact sequence of frames the server sends for a
//! handshake, calls, a PING, flow-control credit and a graceful shutdown.

use kms_plugin_core::TransportConfig;
use kms_plugin_core::rpc::{Code, Response};
use kms_plugin_testkit::client::{FrameSeen, RequestOptions, ping_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo};

/// (type, flags, stream, length) of every frame the server sent.
fn frames(h: &Harness) -> Vec<(u8, u8, u32, u32)> {
    h.client
        .frames
        .iter()
        .map(
            |&FrameSeen {
                 kind,
                 flags,
                 stream,
                 len,
                 ..
             }| (kind, flags, stream, len),
        )
        .collect()
}

#[test]
fn handshake_call_error_ping_shutdown() {
    let mut h = Harness::connected(&TransportConfig::default());
    let ok = h.call(
        "/v2.KeyManagementService/Status",
        b"abc",
        &RequestOptions::default(),
        &mut echo,
    );
    assert!(ok.is_some());
    let err = h.call(
        "/v2.KeyManagementService/Encrypt",
        b"x",
        &RequestOptions::default(),
        &mut |_| Some(Response::error(Code::Unavailable, "kek down")),
    );
    assert_eq!(err.and_then(|r| r.grpc_status), Some(14));
    h.send(&ping_frame(*b"pingpong"));
    h.conn.start_shutdown(h.now);
    h.pump(&mut echo);
    assert!(h.conn.is_closed());
    assert_eq!(
        frames(&h),
        vec![
            (0x4, 0x0, 0, 18), // SETTINGS: MAX_CONCURRENT_STREAMS, INITIAL_WINDOW, MAX_HEADER_LIST
            (0x8, 0x0, 0, 4),  // WINDOW_UPDATE: connection window to 8 MiB
            (0x4, 0x1, 0, 0),  // SETTINGS ACK of the client's SETTINGS
            (0x1, 0x4, 1, 20), // HEADERS :status 200, content-type
            (0x0, 0x0, 1, 8),  // DATA: prefix + "abc"
            (0x1, 0x5, 1, 15), // trailers grpc-status 0, END_STREAM
            (0x1, 0x5, 3, 59), // trailers-only: 1 + 19 + grpc-status "14" 16 + message 23
            (0x6, 0x1, 0, 8),  // PING ACK
            (0x7, 0x0, 0, 8),  // GOAWAY(NO_ERROR, last stream 3)
        ]
    );
    assert_eq!(h.client.goaway(), Some((3, 0)));
    assert_eq!(h.client.ping_acks, vec![*b"pingpong"]);
}

#[test]
fn large_request_transcript_shows_credit_returned() {
    let cfg = TransportConfig {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..TransportConfig::default()
    };
    let mut h = Harness::connected(&cfg);
    let msg = vec![1u8; 100_000];
    let r = h.call("/p", &msg, &RequestOptions::default(), &mut |_| {
        Some(Response::ok(
            kms_plugin_core::secret::SecretBytes::copy_from(b"k"),
        ))
    });
    assert_eq!(r.and_then(|r| r.message), Some(b"k".to_vec()));
    let updates: Vec<_> = frames(&h)
        .into_iter()
        .filter(|f| f.0 == 0x8)
        .map(|f| f.2)
        .collect();
    // No connection WINDOW_UPDATE at the start (the window is the default); then credit
    // for the connection and the stream while the request streams in.
    assert!(updates.contains(&0) && updates.contains(&1), "{updates:?}");
    assert!(h.client.window_updates.iter().all(|&(_, inc)| inc > 0));
}

/// Runs a fixed conversation with client bytes fed in `chunk`-octet pieces.
fn conversation(chunk: usize) -> Vec<u8> {
    let mut h = Harness::new(&TransportConfig::default());
    h.feed_chunk = chunk;
    let hs = h.client.handshake();
    h.send(&hs);
    h.pump(&mut echo);
    for i in 0..5u8 {
        let opts = RequestOptions {
            header_chunk: Some(9),
            padding: Some(i),
            data_chunk: Some(100),
            ..RequestOptions::default()
        };
        let r = h.call(
            "/v2.KeyManagementService/Decrypt",
            &vec![i; 1000],
            &opts,
            &mut echo,
        );
        assert_eq!(r.and_then(|r| r.message), Some(vec![i; 1000]));
    }
    h.send(&ping_frame([7; 8]));
    h.conn.start_shutdown(h.now);
    h.pump(&mut echo);
    h.transcript
}

#[test]
fn output_does_not_depend_on_input_chunking() {
    let whole = conversation(usize::MAX);
    for chunk in [1, 2, 9, 10, 1000] {
        assert_eq!(conversation(chunk), whole, "chunk {chunk}");
    }
}
