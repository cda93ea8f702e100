//! Flow control both ways (RFC 9113 §5.2, §6.9).

mod support;

use kms_plugin_core::Timestamp;
use kms_plugin_core::conn::{Connection, TransportConfig};
use kms_plugin_core::h2::frame::{FrameKind, flags};
use kms_plugin_core::h2::settings::id;
use support::h2::{Raw, conn, echo, frames, grpc_message, output};

/// A strict client: sends DATA only within the windows it knows (65,535 for the connection
/// and the stream until the server's SETTINGS / WINDOW_UPDATE say more, RFC 9113 §6.9.2).
fn send_within_windows(cfg: &TransportConfig, size: usize) -> (Vec<u8>, usize) {
    let mut c = Connection::new(cfg, Timestamp::ZERO);
    let mut raw = Raw::new();
    raw.handshake(&[(id::INITIAL_WINDOW_SIZE, 1 << 30)]);
    let block = raw.request_block("/echo", Some("localhost"), &[]);
    raw.frame(FrameKind::Headers, flags::END_HEADERS, 1, &block);
    let body = grpc_message(&(0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let (mut conn_window, mut stream_window) = (65_535i64, 65_535i64);
    let (mut sent, mut updates) = (0usize, 0usize);
    let mut response = Vec::new();
    for _ in 0..10_000 {
        // Server output: learn windows, collect the response.
        let out = output(&mut c);
        for f in frames(&out) {
            match f.head.kind {
                FrameKind::WindowUpdate => {
                    let inc = i64::from(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
                    updates += 1;
                    if f.head.stream == 0 {
                        conn_window += inc;
                    } else {
                        stream_window += inc;
                    }
                }
                FrameKind::Settings if !f.head.has(flags::ACK) => {
                    for e in f.payload.chunks(6) {
                        if u16::from_be_bytes([e[0], e[1]]) == id::INITIAL_WINDOW_SIZE {
                            stream_window +=
                                i64::from(u32::from_be_bytes(e[2..6].try_into().unwrap())) - 65_535;
                        }
                    }
                    raw.frame(FrameKind::Settings, flags::ACK, 0, &[]);
                }
                FrameKind::Data => {
                    response.extend_from_slice(&f.payload);
                    let credit = u32::try_from(f.payload.len()).unwrap();
                    if credit > 0 {
                        raw.frame(FrameKind::WindowUpdate, 0, 0, &credit.to_be_bytes());
                    }
                }
                FrameKind::Headers if f.head.has(flags::END_STREAM) => return (response, updates),
                _ => {}
            }
        }
        let allowed = usize::try_from(conn_window.min(stream_window).min(16_384)).unwrap_or(0);
        let n = allowed.min(body.len() - sent);
        if n > 0 {
            let end = sent + n == body.len();
            raw.frame(
                FrameKind::Data,
                if end { flags::END_STREAM } else { 0 },
                1,
                &body[sent..sent + n],
            );
            sent += n;
            conn_window -= i64::try_from(n).unwrap();
            stream_window -= i64::try_from(n).unwrap();
        }
        c.handle_bytes(&raw.take(), Timestamp::ZERO);
        while let Some(req) = c.poll_request() {
            c.respond(req.stream, echo(&req), Timestamp::ZERO);
        }
    }
    panic!("request never completed: sent {sent} of {}", body.len());
}

#[test]
fn request_larger_than_the_default_window_completes_through_window_update() {
    // RFC defaults on our side too: every octet past 65,535 needs our WINDOW_UPDATEs.
    let cfg = TransportConfig {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..Default::default()
    };
    let (response, updates) = send_within_windows(&cfg, 300_000);
    assert_eq!(response.len(), 5 + 300_000);
    assert!(updates >= 4, "completed through {updates} WINDOW_UPDATEs");
    // Default config: our SETTINGS and connection WINDOW_UPDATE open the windows at once.
    let (response, _) = send_within_windows(&TransportConfig::default(), 200_000);
    assert_eq!(response.len(), 5 + 200_000);
}

#[test]
fn our_settings_and_connection_window_are_exact_golden_bytes() {
    let mut c = conn();
    let out = output(&mut c);
    let expected: &[u8] = &[
        0, 0, 18, 4, 0, 0, 0, 0, 0, // SETTINGS, 3 entries
        0, 3, 0, 0, 0, 100, // MAX_CONCURRENT_STREAMS 100
        0, 4, 0, 0x10, 0, 0, // INITIAL_WINDOW_SIZE 1 MiB
        0, 6, 0, 0, 0x40, 0, // MAX_HEADER_LIST_SIZE 16 KiB
        0, 0, 4, 8, 0, 0, 0, 0, 0, // WINDOW_UPDATE stream 0
        0, 0x7f, 0x00, 0x01, // 8 MiB - 65,535
    ];
    assert_eq!(out, expected);
}

#[test]
fn response_waits_for_the_peers_window() {
    let mut c = conn();
    let mut raw = Raw::new();
    // The client allows 10 octets per stream.
    raw.handshake(&[(id::INITIAL_WINDOW_SIZE, 10)])
        .unary(1, "/echo", Some("localhost"), b"");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let req = c.poll_request().unwrap();
    c.respond(
        1,
        kms_plugin_core::rpc::Response::ok(kms_plugin_core::secret::SecretBytes::copy_from(
            &[9u8; 100],
        )),
        Timestamp::ZERO,
    );
    let out = output(&mut c);
    let data: usize = frames(&out)
        .iter()
        .filter(|f| f.head.kind == FrameKind::Data)
        .map(|f| f.payload.len())
        .sum();
    assert_eq!(data, 10, "only the window's worth of DATA");
    assert!(
        !frames(&out)
            .iter()
            .any(|f| f.head.kind == FrameKind::Headers && f.head.has(flags::END_STREAM))
    );
    let _ = req;
    // Open the stream window: the rest and the trailers follow.
    raw.frame(FrameKind::WindowUpdate, 0, 1, &1000u32.to_be_bytes());
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let out = output(&mut c);
    let data: usize = frames(&out)
        .iter()
        .filter(|f| f.head.kind == FrameKind::Data)
        .map(|f| f.payload.len())
        .sum();
    assert_eq!(data, 105 - 10);
    assert!(
        frames(&out)
            .iter()
            .any(|f| f.head.kind == FrameKind::Headers && f.head.has(flags::END_STREAM))
    );
}

#[test]
fn data_beyond_our_stream_window_is_a_flow_control_error() {
    let cfg = TransportConfig {
        initial_window_size: 100,
        ..Default::default()
    };
    let mut c = Connection::new(&cfg, Timestamp::ZERO);
    let mut raw = Raw::new();
    raw.handshake(&[]);
    let block = raw.request_block("/echo", Some("localhost"), &[]);
    raw.frame(FrameKind::Headers, flags::END_HEADERS, 1, &block);
    raw.frame(FrameKind::Data, 0, 1, &grpc_message(&[0u8; 200]));
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let out = output(&mut c);
    assert_eq!(
        support::h2::rst_code(&out, 1),
        Some(0x3),
        "FLOW_CONTROL_ERROR"
    );
}

#[test]
fn window_update_overflow_is_a_connection_error() {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[])
        .frame(FrameKind::WindowUpdate, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    assert_eq!(support::h2::goaway_code(&output(&mut c)), Some(0x3));
    assert!(c.is_closed());
}
