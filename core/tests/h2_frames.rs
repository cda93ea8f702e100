//! The frame codec (RFC 9113 §4.1, §6): heads, writers, padding and SETTINGS parsing.

use kms_plugin_core::h2::Reason;
use kms_plugin_core::h2::frame::{
    self, FrameHead, FrameKind, HEAD_LEN, PREFACE, flags, strip_padding,
};
use kms_plugin_core::h2::settings::{PeerSettings, write_settings};

#[test]
fn head_round_trips_and_ignores_the_reserved_bit() {
    let head = FrameHead {
        len: 0x00ab_cdef,
        kind: FrameKind::Headers,
        flags: flags::END_HEADERS | flags::PADDED,
        stream: 0x7fff_fffe,
    };
    let mut out = Vec::new();
    head.write(&mut out);
    assert_eq!(out, [0xab, 0xcd, 0xef, 0x01, 0x0c, 0x7f, 0xff, 0xff, 0xfe]);
    let parsed = FrameHead::parse(out.first_chunk::<HEAD_LEN>().unwrap());
    assert_eq!(parsed, head);
    // §4.1: the reserved bit MUST be ignored on receipt and is never sent.
    let mut with_r = out.clone();
    with_r[5] |= 0x80;
    assert_eq!(
        FrameHead::parse(with_r.first_chunk::<HEAD_LEN>().unwrap()).stream,
        0x7fff_fffe
    );
    let mut out = Vec::new();
    FrameHead {
        stream: 0xffff_ffff,
        ..head
    }
    .write(&mut out);
    assert_eq!(out[5], 0x7f);
}

#[test]
fn every_type_octet_maps_back() {
    for t in 0..=255u8 {
        let kind = FrameKind::from_u8(t);
        assert_eq!(kind.as_u8(), t);
        assert_eq!(matches!(kind, FrameKind::Unknown(_)), t > 9, "{t}");
    }
}

#[test]
fn writers_golden_bytes() {
    let mut out = Vec::new();
    frame::write_rst_stream(&mut out, 3, Reason::CANCEL);
    frame::write_goaway(&mut out, 5, Reason::ENHANCE_YOUR_CALM);
    frame::write_window_update(&mut out, 0, 1);
    frame::write_ping_ack(&mut out, b"12345678");
    frame::write_settings_ack(&mut out);
    write_settings(&mut out, &[(0x3, 100)]);
    let expected = hex::decode(concat!(
        "000004030000000003",
        "00000008",
        "000008070000000000",
        "00000005",
        "0000000b",
        "000004080000000000",
        "00000001",
        "000008060100000000",
        "3132333435363738",
        "000000040100000000",
        "000006040000000000",
        "000300000064",
    ))
    .unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&expected));
    assert_eq!(PREFACE.len(), 24);
}

#[test]
fn padding() {
    // §6.1: pad length octet + content + padding; padding >= payload is an error.
    assert_eq!(strip_padding(b"abc", 0), Some(&b"abc"[..]));
    assert_eq!(strip_padding(&[0, b'a'], flags::PADDED), Some(&b"a"[..]));
    assert_eq!(
        strip_padding(&[2, b'a', 0, 0], flags::PADDED),
        Some(&b"a"[..])
    );
    assert_eq!(strip_padding(&[3, 0, 0, 0], flags::PADDED), Some(&b""[..]));
    assert_eq!(strip_padding(&[4, 0, 0, 0], flags::PADDED), None);
    assert_eq!(strip_padding(&[], flags::PADDED), None);
    assert_eq!(strip_padding(&[0], flags::PADDED), Some(&b""[..]));
}

#[test]
fn peer_settings_apply() {
    let mut s = PeerSettings::default();
    assert_eq!(s.initial_window_size, 65_535);
    assert_eq!(s.max_frame_size, 16_384);
    let mut frame = Vec::new();
    write_settings(
        &mut frame,
        &[(0x1, 0), (0x4, 1), (0x5, 16_777_215), (0x6, 10), (0x42, 9)],
    );
    assert_eq!(s.apply(&frame[HEAD_LEN..]), Ok(()));
    assert_eq!(
        (
            s.header_table_size,
            s.initial_window_size,
            s.max_frame_size,
            s.max_header_list_size
        ),
        (0, 1, 16_777_215, 10)
    );
    // Settings apply in order: the last value wins.
    assert_eq!(s.apply(&[0, 4, 0, 0, 0, 7, 0, 4, 0, 0, 0, 8]), Ok(()));
    assert_eq!(s.initial_window_size, 8);
    assert_eq!(s.apply(&[0; 5]), Err(Reason::FRAME_SIZE_ERROR));
    assert_eq!(s.apply(&[0, 2, 0, 0, 0, 2]), Err(Reason::PROTOCOL_ERROR));
    assert_eq!(
        s.apply(&[0, 4, 0x80, 0, 0, 0]),
        Err(Reason::FLOW_CONTROL_ERROR)
    );
    assert_eq!(
        s.apply(&[0, 5, 0, 0, 0x3f, 0xff]),
        Err(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(s.apply(&[0, 5, 1, 0, 0, 0]), Err(Reason::PROTOCOL_ERROR));
    assert_eq!(s.apply(&[]), Ok(()));
}

#[test]
fn reason_names() {
    assert_eq!(Reason::FRAME_SIZE_ERROR.name(), "FRAME_SIZE_ERROR");
    assert_eq!(Reason(0xff).name(), "UNKNOWN");
    assert_eq!(format!("{:?}", Reason::CANCEL), "CANCEL(0x8)");
    for code in 0..=0xd {
        assert_ne!(Reason(code).name(), "UNKNOWN");
    }
}
