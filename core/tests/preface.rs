//! The connection preface (RFC 9113 §3.4), the handshake timeout and golden bytes of our
//! server preface.

use core::time::Duration;

use kms_plugin_core::Timestamp;
use kms_plugin_core::h2::Reason;
use kms_plugin_core::{ConnEvent, TransportConfig};
use kms_plugin_testkit::Connection;
use kms_plugin_testkit::client::{RequestOptions, ping_frame, raw_frame, settings_frame};
use kms_plugin_testkit::h2_harness::{Harness, echo};

use kms_plugin_core::h2::PREFACE;

#[test]
fn server_preface_golden_bytes() {
    // SETTINGS{MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW_SIZE=1 MiB,
    // MAX_HEADER_LIST_SIZE=16 KiB}, then WINDOW_UPDATE(0, 8 MiB - 65,535).
    let mut conn = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut out = Vec::new();
    assert!(conn.poll_transmit(&mut out));
    let expected = hex::decode(concat!(
        "000012040000000000",
        "000300000064",
        "000400100000",
        "000600004000",
        "000004080000000000",
        "007f0001",
    ))
    .unwrap();
    assert_eq!(out, expected);
    assert!(!conn.poll_transmit(&mut out), "nothing more queued");
}

#[test]
fn no_window_update_when_the_connection_window_is_the_default() {
    let cfg = TransportConfig {
        connection_window_size: 65_535,
        ..TransportConfig::default()
    };
    let mut conn = Connection::new(&cfg, Timestamp::ZERO);
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    assert_eq!(out.len(), 9 + 18);
}

#[test]
fn valid_handshake_is_acknowledged() {
    let h = Harness::connected(&TransportConfig::default());
    assert_eq!(h.client.settings_acks, 1, "our empty SETTINGS acknowledged");
    assert!(h.client.settings.contains(&(0x4, 1 << 20)));
    assert!(h.client.window_updates.contains(&(0, (8 << 20) - 65_535)));
    assert!(!h.conn.is_closed());
    assert!(h.events.is_empty(), "{:?}", h.events);
    assert_eq!(
        h.conn.poll_timeout(),
        Some(
            h.now
                .saturating_add(TransportConfig::default().idle_timeout)
        ),
        "handshake and SETTINGS ACK timers cleared; only the idle timeout is armed"
    );
}

#[test]
fn handshake_one_octet_at_a_time() {
    let mut h = Harness::new(&TransportConfig::default());
    h.feed_chunk = 1;
    let hs = h.client.handshake();
    h.send(&hs);
    h.pump(&mut echo);
    assert_eq!(h.client.settings_acks, 1);
    let r = h.call("/p", b"x", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"x".to_vec()));
}

#[test]
fn bad_preface_is_protocol_error() {
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r!",
        b"\x16\x03\x01\x02\x00", // a TLS ClientHello
        b"P",
    ] {
        let mut h = Harness::new(&TransportConfig::default());
        let mut input = bad.to_vec();
        if bad == b"P" {
            input = b"PX".to_vec();
        }
        h.send(&input);
        assert!(h.conn.is_closed(), "{bad:?}");
        h.pump(&mut echo);
        assert_eq!(h.client.goaway(), Some((0, Reason::PROTOCOL_ERROR.0)));
        assert!(h.saw_connection_error(Reason::PROTOCOL_ERROR));
        assert!(
            h.events
                .iter()
                .any(|e| matches!(e, ConnEvent::Closed { .. }))
        );
    }
}

#[test]
fn a_partial_preface_waits() {
    let mut h = Harness::new(&TransportConfig::default());
    h.send(&PREFACE[..10]);
    h.collect();
    assert!(!h.conn.is_closed());
    assert!(h.events.is_empty());
    h.send(&PREFACE[10..]);
    h.send(&settings_frame(&[]));
    h.pump(&mut echo);
    assert_eq!(h.client.settings_acks, 1);
}

#[test]
fn preface_must_be_followed_by_settings() {
    // §3.4: the client preface's SETTINGS frame comes first.
    for first in [
        ping_frame([0; 8]),
        raw_frame(0x4, 0x1, 0, &[]), // a SETTINGS ACK is not the preface SETTINGS
        raw_frame(0xfe, 0, 0, b"x"),
    ] {
        let mut h = Harness::new(&TransportConfig::default());
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&first);
        h.send(&input);
        h.pump(&mut echo);
        assert_eq!(h.client.goaway(), Some((0, Reason::PROTOCOL_ERROR.0)));
    }
}

#[test]
fn handshake_timeout_closes_the_connection() {
    let cfg = TransportConfig::default();
    let mut h = Harness::new(&cfg);
    assert_eq!(
        h.conn.poll_timeout(),
        Some(Timestamp::ZERO.saturating_add(cfg.handshake_timeout.min(cfg.settings_timeout)))
    );
    h.send(&PREFACE[..5]);
    h.advance(
        cfg.handshake_timeout
            .saturating_sub(Duration::from_nanos(1)),
    );
    assert!(!h.conn.is_closed(), "not yet");
    h.advance(Duration::from_nanos(1));
    assert!(h.conn.is_closed());
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::SETTINGS_TIMEOUT.0)
    );
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn spurious_timeouts_are_no_ops() {
    let mut h = Harness::connected(&TransportConfig {
        idle_timeout: Duration::from_secs(7200),
        ..TransportConfig::default()
    });
    for _ in 0..10 {
        h.conn.handle_timeout(h.now);
    }
    h.advance(Duration::from_secs(3600));
    assert!(!h.conn.is_closed());
    let r = h.call("/p", b"x", &RequestOptions::default(), &mut echo);
    assert_eq!(r.and_then(|r| r.message), Some(b"x".to_vec()));
}

#[test]
fn eof_closes_the_connection() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.conn.handle_eof(h.now);
    h.collect();
    assert!(h.conn.is_closed());
    assert!(!h.conn.wants_read());
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, ConnEvent::Closed { .. }))
    );
    // Input after close is ignored; so is a second EOF.
    h.send(&ping_frame([1; 8]));
    h.conn.handle_eof(h.now);
    assert!(h.take_server_output().is_empty());
}
