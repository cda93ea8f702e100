//! Caps: frame size before buffering (§4.2), concurrent streams (§5.1.2), header list size
//! (§6.5.2, §10.5.1), rapid reset (CVE-2023-44487), buffered bytes, output backpressure.

mod transport_support;
use core::time::Duration;
use transport_support::*;

#[test]
fn sixteen_mib_declared_frame_is_rejected_from_the_header_alone() {
    for kind in [0u8, 1, 4, 6, 9, 0x42] {
        let mut p = pair();
        // Only the 9-byte header of a 16 MiB - 1 frame arrives.
        p.send(&[0xff, 0xff, 0xff, kind, 0, 0, 0, 0, 1]);
        assert_eq!(
            goaway_code(&p),
            Some(Reason::FRAME_SIZE_ERROR.0),
            "type {kind}"
        );
        assert!(p.conn.is_closed());
        assert_eq!(p.conn.buffered_input(), 0, "nothing buffered");
    }
    // Header arriving one byte at a time.
    let mut p = pair();
    p.byte_at_a_time = true;
    p.send(&[0x00, 0x40, 0x01, 0, 0, 0, 0, 0, 0]);
    assert_eq!(goaway_code(&p), Some(Reason::FRAME_SIZE_ERROR.0));
}

#[test]
fn frame_at_max_size_is_accepted() {
    let mut p = pair();
    p.send(&frame(0xee, 0, 0, &vec![0; 16_384]));
    assert_eq!(p.client.goaway(), None);
}

#[test]
fn max_concurrent_streams_refuses_extra_streams() {
    let cfg = TransportConfig {
        max_concurrent_streams: 2,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, bytes) = p.client.unary("/x", b"a", &opts());
        p.client.send_raw(&bytes);
        ids.push(s);
    }
    p.drive(&mut |_| None);
    assert_eq!(p.parked, [ids[0], ids[1]]);
    assert_eq!(
        p.client.take_response(ids[2]).expect("rst").reset,
        Some(Reason::REFUSED_STREAM.0)
    );
    // Once one finishes, a new stream is accepted.
    p.conn
        .respond(ids[0], Response::ok(SecretBytes::copy_from(b"")), p.now);
    p.drive(&mut |_| None);
    let r = p.unary("/x", b"a", &opts(), &mut echo).expect("accepted");
    assert_eq!(r.grpc_status, Some(0));
}

#[test]
fn header_list_over_limit_is_431_and_hpack_stays_in_sync() {
    let cfg = TransportConfig {
        max_header_list_size: 1024,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    let mut o = opts();
    o.extra_headers.push(("x-big".into(), "v".repeat(1200)));
    let r = p.unary("/x", b"a", &o, &mut echo).expect("response");
    assert_eq!(r.http_status, Some(431));
    assert_eq!(r.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    assert_eq!(p.client.goaway(), None);
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("next")
            .grpc_status,
        Some(0)
    );
}

#[test]
fn rapid_reset_is_enhance_your_calm() {
    let cfg = TransportConfig {
        max_resets_per_window: 10,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    for _ in 0..10 {
        let (s, bytes) = p.client.unary("/x", b"a", &opts());
        p.client.send_raw(&bytes);
        p.client.reset(s, Reason::CANCEL);
    }
    p.drive(&mut |_| None);
    assert_eq!(p.client.goaway(), None, "10 resets are allowed");
    // After the window passes the count restarts.
    p.now = p.now.saturating_add(Duration::from_secs(31));
    for _ in 0..10 {
        let (s, bytes) = p.client.unary("/x", b"a", &opts());
        p.client.send_raw(&bytes);
        p.client.reset(s, Reason::CANCEL);
    }
    p.drive(&mut |_| None);
    assert_eq!(p.client.goaway(), None);
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.client.send_raw(&bytes);
    p.client.reset(s, Reason::CANCEL);
    p.drive(&mut |_| None);
    assert_eq!(goaway_code(&p), Some(Reason::ENHANCE_YOUR_CALM.0));
}

#[test]
fn buffered_bytes_cap_is_resource_exhausted() {
    let cfg = TransportConfig {
        max_message_size: 1000,
        max_buffered_bytes: 1500,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    let mut o = opts();
    o.end_stream = false;
    o.raw_body = true;
    let (s1, b1) = p.client.unary("/x", &[0, 0, 0, 3, 0xe8, 1, 2], &o); // declares 1000
    let (s2, b2) = p.client.unary("/x", &[0, 0, 0, 3, 0xe8, 1, 2], &o);
    p.client.send_raw(&b1);
    p.client.send_raw(&b2);
    p.drive(&mut echo);
    assert!(
        p.client.take_response(s1).is_none(),
        "first still receiving"
    );
    assert_eq!(p.conn.buffered_input(), 1000);
    let r2 = p.client.take_response(s2).expect("rejected");
    assert_eq!(r2.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    assert_eq!(r2.grpc_message.as_deref(), Some("connection buffer full"));
}

#[test]
fn pending_output_backpressure() {
    let cfg = TransportConfig {
        max_pending_output: 64 << 10,
        ..TransportConfig::default()
    };
    let mut c = Connection::new(&cfg, Timestamp::ZERO);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(4, 0, 0, &[]));
    c.handle_bytes(&bytes, Timestamp::ZERO);
    assert!(c.wants_read());
    let pings: Vec<u8> = (0..5000).flat_map(|_| frame(6, 0, 0, &[0; 8])).collect();
    c.handle_bytes(&pings, Timestamp::ZERO);
    assert!(!c.wants_read(), "{} bytes queued", c.pending_output());
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert!(c.wants_read());
    assert_eq!(c.pending_output(), 0);
}

#[test]
fn config_validation() {
    assert_eq!(TransportConfig::default().validate(), Ok(()));
    let bad = [
        TransportConfig {
            max_frame_size: 100,
            ..TransportConfig::default()
        },
        TransportConfig {
            max_frame_size: 1 << 24,
            ..TransportConfig::default()
        },
        TransportConfig {
            initial_window_size: 1000,
            ..TransportConfig::default()
        },
        TransportConfig {
            connection_window_size: 1 << 31,
            ..TransportConfig::default()
        },
        TransportConfig {
            max_concurrent_streams: 0,
            ..TransportConfig::default()
        },
        TransportConfig {
            max_buffered_bytes: 10,
            ..TransportConfig::default()
        },
        TransportConfig {
            settings_timeout: Duration::ZERO,
            ..TransportConfig::default()
        },
    ];
    for cfg in bad {
        assert!(cfg.validate().is_err(), "{cfg:?}");
    }
}

#[test]
fn provoked_reset_flood_is_enhance_your_calm() {
    let cfg = TransportConfig {
        max_resets_per_window: 20,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    // Bad PRIORITY frames on idle streams each cost us a RST_STREAM.
    for s in 0..20u32 {
        p.client.send_raw(&frame(2, 0, 2 * s + 1, &[0; 4]));
    }
    p.drive(&mut |_| None);
    assert_eq!(p.client.goaway(), None);
    p.send(&frame(2, 0, 41, &[0; 4]));
    assert_eq!(goaway_code(&p), Some(Reason::ENHANCE_YOUR_CALM.0));
}
