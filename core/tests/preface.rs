//! Connection preface and handshake (RFC 9113 §3.4), with golden bytes of our SETTINGS.

mod transport_support;
use transport_support::*;

/// Our server preface with the default config: SETTINGS(MAX_CONCURRENT_STREAMS 100,
/// INITIAL_WINDOW_SIZE 1 MiB, MAX_FRAME_SIZE 16384, MAX_HEADER_LIST_SIZE 16384) and a
/// connection WINDOW_UPDATE raising 65,535 to 4 MiB.
const SERVER_PREFACE: &[u8] = &[
    0, 0, 24, 4, 0, 0, 0, 0, 0, // SETTINGS, 24 bytes, stream 0
    0, 3, 0, 0, 0, 100, // MAX_CONCURRENT_STREAMS
    0, 4, 0, 0x10, 0, 0, // INITIAL_WINDOW_SIZE
    0, 5, 0, 0, 0x40, 0, // MAX_FRAME_SIZE
    0, 6, 0, 0, 0x40, 0, // MAX_HEADER_LIST_SIZE
    0, 0, 4, 8, 0, 0, 0, 0, 0, // WINDOW_UPDATE, stream 0
    0, 0x3f, 0, 1, // 4 MiB - 65,535
];

#[test]
fn golden_server_preface() {
    let mut c = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut out = Vec::new();
    assert!(c.poll_transmit(&mut out));
    assert_eq!(out, SERVER_PREFACE);
    assert!(!c.poll_transmit(&mut out), "nothing more");
}

#[test]
fn header_table_size_sent_only_when_not_default() {
    let cfg = TransportConfig {
        header_table_size: 0,
        ..TransportConfig::default()
    };
    let mut c = Connection::new(&cfg, Timestamp::ZERO);
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(&out[..3], &[0, 0, 30]);
    assert_eq!(&out[33..39], &[0, 1, 0, 0, 0, 0]);
}

#[test]
fn handshake_completes_and_settings_are_acked_both_ways() {
    let p = pair();
    assert!(p.saw(|e| *e == ConnEvent::HandshakeCompleted));
    assert_eq!(
        p.client.settings_acks, 1,
        "server ACKed the client's SETTINGS"
    );
    assert_eq!(
        p.client.server_settings,
        [(3, 100), (4, 1 << 20), (5, 16384), (6, 16384)]
    );
    // The client ACKed ours: no SETTINGS_TIMEOUT ever fires.
    assert_eq!(p.conn.poll_timeout(), None);
}

#[test]
fn preface_one_byte_at_a_time() {
    let mut p = Pair::unconnected(&TransportConfig::default());
    p.byte_at_a_time = true;
    p.drive(&mut |_| None);
    let r = p.unary("/x", b"abc", &opts(), &mut echo).expect("response");
    assert_eq!(r.message.as_deref(), Some(&b"abc"[..]));
}

#[test]
fn bad_preface_is_goaway_protocol_error() {
    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r!",
        b"X",
    ] {
        let mut p = Pair::unconnected(&TransportConfig::default());
        p.client = TestClient::new();
        let _ = p.client.pending_output();
        p.send(bad);
        assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0), "{bad:?}");
        assert!(p.conn.is_closed());
        assert!(p.saw(
            |e| matches!(e, ConnEvent::Closed { reason } if *reason == Reason::PROTOCOL_ERROR)
        ));
    }
}

#[test]
fn first_frame_must_be_settings() {
    let mut p = Pair::unconnected(&TransportConfig::default());
    let _ = p.client.pending_output();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(6, 0, 0, &[0; 8])); // PING first
    p.send(&bytes);
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
    let mut p = Pair::unconnected(&TransportConfig::default());
    let _ = p.client.pending_output();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(4, 1, 0, &[])); // SETTINGS ACK first
    p.send(&bytes);
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn handshake_timeout_closes() {
    let mut c = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    c.handle_bytes(b"PRI * HTTP/2.0\r\n", Timestamp::ZERO);
    assert!(c.poll_event().is_none());
    assert_eq!(c.poll_timeout(), Some(Timestamp::from_millis(10_000)));
    c.handle_timeout(Timestamp::from_millis(9_999));
    assert!(!c.is_closed());
    c.handle_timeout(Timestamp::from_millis(10_000));
    assert!(c.is_closed());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn settings_ack_timeout_is_settings_timeout() {
    let mut c = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(4, 0, 0, &[]));
    c.handle_bytes(&bytes, Timestamp::ZERO);
    // Spurious timer calls are no-ops.
    c.handle_timeout(Timestamp::from_millis(5));
    assert!(!c.is_closed());
    assert_eq!(c.poll_timeout(), Some(Timestamp::from_millis(10_000)));
    c.handle_timeout(Timestamp::from_millis(10_000));
    assert!(c.is_closed());
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    // ... SETTINGS, WINDOW_UPDATE, SETTINGS ACK, then GOAWAY(0, SETTINGS_TIMEOUT).
    assert_eq!(
        &out[out.len() - 17..],
        &[0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]
    );
}

#[test]
fn eof_closes_and_cancels_in_flight() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut |_| None);
    p.conn.handle_eof(p.now);
    p.drive(&mut |_| None);
    assert!(p.conn.is_closed());
    assert_eq!(p.cancelled, vec![s]);
    assert!(!p.conn.wants_read());
}
