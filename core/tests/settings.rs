//! SETTINGS (RFC 9113 §6.5) and PING (§6.7); our SETTINGS_HEADER_TABLE_SIZE takes effect
//! only once the peer acknowledges it (§6.5.3, RFC 7541 §4.2).

use core::time::Duration;

use kms_plugin_core::TransportConfig;
use kms_plugin_core::h2::Reason;
use kms_plugin_testkit::client::{
    RequestOptions, grpc_message, ping_frame, raw_frame, settings_frame,
};
use kms_plugin_testkit::h2_harness::{Harness, echo};

use kms_plugin_core::h2::PREFACE;

mod raw_frames;
use raw_frames::{GOOD, block};

fn goaway_after(frame: &[u8]) -> Option<u32> {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(frame);
    h.pump(&mut echo);
    h.client.goaway().map(|g| g.1)
}

#[test]
fn every_settings_frame_is_acknowledged() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&settings_frame(&[
        (0x1, 0),
        (0x2, 0),
        (0x3, 10),
        (0x5, 20_000),
        (0x6, 100),
    ]));
    h.send(&settings_frame(&[]));
    h.pump(&mut echo);
    assert_eq!(h.client.settings_acks, 3);
    assert!(!h.conn.is_closed());
}

#[test]
fn unknown_settings_are_ignored() {
    // §6.5.2: an endpoint that receives an unknown setting MUST ignore it.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&settings_frame(&[(0x99, 7), (0xffff, u32::MAX), (0x8, 1)]));
    h.pump(&mut echo);
    assert_eq!(h.client.settings_acks, 2);
    assert_eq!(h.client.goaway(), None);
}

#[test]
fn invalid_settings_values_are_connection_errors() {
    // §6.5.2.
    assert_eq!(
        goaway_after(&settings_frame(&[(0x2, 2)])),
        Some(Reason::PROTOCOL_ERROR.0)
    );
    assert_eq!(
        goaway_after(&settings_frame(&[(0x4, 0x8000_0000)])),
        Some(Reason::FLOW_CONTROL_ERROR.0)
    );
    assert_eq!(
        goaway_after(&settings_frame(&[(0x5, 16_383)])),
        Some(Reason::PROTOCOL_ERROR.0)
    );
    assert_eq!(
        goaway_after(&settings_frame(&[(0x5, 1 << 24)])),
        Some(Reason::PROTOCOL_ERROR.0)
    );
    assert_eq!(goaway_after(&settings_frame(&[(0x5, (1 << 24) - 1)])), None);
}

#[test]
fn malformed_settings_frames() {
    // §6.5: length not a multiple of 6 -> FRAME_SIZE_ERROR; on a stream -> PROTOCOL_ERROR;
    // an ACK with a payload -> FRAME_SIZE_ERROR.
    assert_eq!(
        goaway_after(&raw_frame(0x4, 0, 0, &[0; 7])),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    assert_eq!(
        goaway_after(&raw_frame(0x4, 0, 1, &[])),
        Some(Reason::PROTOCOL_ERROR.0)
    );
    assert_eq!(
        goaway_after(&raw_frame(0x4, 1, 0, &[0; 6])),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
}

#[test]
fn our_settings_must_be_acknowledged_in_time() {
    // §6.5.3: no ACK within settings_timeout -> connection error SETTINGS_TIMEOUT.
    let cfg = TransportConfig {
        settings_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(10),
        ..TransportConfig::default()
    };
    let mut h = Harness::new(&cfg);
    let mut hs = PREFACE.to_vec();
    hs.extend_from_slice(&settings_frame(&[]));
    h.send(&hs); // the client never ACKs our SETTINGS
    h.collect();
    assert_eq!(
        h.conn.poll_timeout(),
        Some(kms_plugin_core::Timestamp::from_millis(2000))
    );
    h.advance(Duration::from_millis(1999));
    assert!(!h.conn.is_closed());
    h.advance(Duration::from_millis(1));
    assert!(h.conn.is_closed());
    h.pump(&mut echo);
    assert_eq!(
        h.client.goaway().map(|g| g.1),
        Some(Reason::SETTINGS_TIMEOUT.0)
    );
}

#[test]
fn header_table_size_zero_makes_responses_avoid_the_dynamic_table() {
    // §6.5.2 SETTINGS_HEADER_TABLE_SIZE limits our encoder; responses still decode.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&settings_frame(&[(0x1, 0)]));
    h.pump(&mut echo);
    for i in 0..3u8 {
        let r = h
            .call("/p", &[i], &RequestOptions::default(), &mut echo)
            .expect("done");
        assert_eq!(r.message, Some(vec![i]));
    }
    assert!(
        h.client.protocol_errors.is_empty(),
        "{:?}",
        h.client.protocol_errors
    );
}

#[test]
fn peer_max_frame_size_bounds_our_data_frames() {
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&settings_frame(&[(0x5, 20_000), (0x4, 1 << 20)]));
    h.send(&kms_plugin_testkit::client::window_update_frame(0, 1 << 20));
    h.pump(&mut echo);
    let big = vec![3u8; 50_000];
    let r = h
        .call("/p", &big, &RequestOptions::default(), &mut echo)
        .expect("done");
    assert_eq!(r.message.as_deref(), Some(&big[..]));
    let max = h
        .client
        .frames
        .iter()
        .filter(|f| f.kind == 0)
        .map(|f| f.len)
        .max();
    assert_eq!(max, Some(20_000));
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    // §6.7.
    let mut h = Harness::connected(&TransportConfig::default());
    h.send(&ping_frame(*b"12345678"));
    h.pump(&mut echo);
    assert_eq!(h.client.ping_acks, vec![*b"12345678"]);
    // A PING ACK from the peer is not answered.
    h.send(&raw_frame(0x6, 0x1, 0, b"abcdefgh"));
    h.pump(&mut echo);
    assert_eq!(h.client.ping_acks.len(), 1);
}

#[test]
fn malformed_ping_frames() {
    assert_eq!(
        goaway_after(&raw_frame(0x6, 0, 0, &[0; 7])),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    assert_eq!(
        goaway_after(&raw_frame(0x6, 0, 0, &[0; 9])),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    assert_eq!(
        goaway_after(&raw_frame(0x6, 0, 1, &[0; 8])),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

/// GOOD's fields plus `x-a: b` inserted into the dynamic table (0x40: literal with incremental
/// indexing, new name) and then referenced as index 62.
fn block_using_dynamic_table(size_update: Option<u8>) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(u) = size_update {
        b.push(0x20 | u); // dynamic table size update (5-bit prefix)
    }
    b.extend(block(GOOD));
    b.extend([0x40, 3, b'x', b'-', b'a', 1, b'b']);
    b.push(0x80 | 0x3e);
    b
}

fn start(cfg: &TransportConfig) -> Harness {
    // A peer that has not acknowledged our SETTINGS yet.
    let mut p = Harness::new(cfg);
    p.client.auto_window_update = false;
    let mut hello = PREFACE.to_vec();
    hello.extend(settings_frame(&[]));
    p.feed(&hello);
    p.client.frames.clear();
    p
}

#[test]
fn lower_table_size_binds_only_after_ack() {
    let cfg = TransportConfig {
        header_table_size: 0,
        ..TransportConfig::default()
    };
    let mut p = start(&cfg);
    // Before the ACK the peer may still use the default 4,096-octet table.
    let mut bytes = raw_frame(1, 0x4, 1, &block_using_dynamic_table(None));
    bytes.extend(raw_frame(0, 0x1, 1, &grpc_message(b"a")));
    p.feed(&bytes);
    assert_eq!(p.goaway_code(), None);
    assert_eq!(p.parked.len(), 1);
    // After the ACK the next block must start with a size update to at most 0.
    p.feed(&raw_frame(4, 1, 0, &[]));
    let mut blk = vec![0x20];
    blk.extend(block(GOOD));
    let mut bytes = raw_frame(1, 0x4, 3, &blk);
    bytes.extend(raw_frame(0, 0x1, 3, &grpc_message(b"b")));
    p.feed(&bytes);
    assert_eq!(p.goaway_code(), None);
    assert_eq!(p.parked.len(), 2);
}

#[test]
fn missing_size_update_after_ack_is_compression_error() {
    let cfg = TransportConfig {
        header_table_size: 0,
        ..TransportConfig::default()
    };
    let mut p = start(&cfg);
    p.feed(&raw_frame(1, 0x5, 1, &block_using_dynamic_table(None)));
    p.feed(&raw_frame(4, 1, 0, &[]));
    p.feed(&raw_frame(1, 0x5, 3, &block(GOOD)));
    assert_eq!(p.goaway_code(), Some(Reason::COMPRESSION_ERROR.0));
}

#[test]
fn default_table_size_is_unaffected_by_ack() {
    let mut p = start(&TransportConfig::default());
    p.feed(&raw_frame(4, 1, 0, &[]));
    let mut bytes = raw_frame(1, 0x4, 1, &block_using_dynamic_table(None));
    bytes.extend(raw_frame(0, 0x1, 1, &grpc_message(b"a")));
    bytes.extend(raw_frame(1, 0x4, 3, &[0x80 | 0x3e, 0x83, 0x86, 0x84]));
    p.feed(&bytes);
    assert_eq!(p.goaway_code(), None);
    assert_eq!(p.parked.len(), 1);
}
