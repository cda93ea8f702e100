//! HEADERS + CONTINUATION (RFC 9113 §6.10) and header block caps.

mod transport_support;
use transport_support::*;

#[test]
fn header_block_split_across_continuations() {
    for size in [1, 3, 16, 40] {
        let mut p = pair();
        let mut o = opts();
        o.header_fragment = Some(size);
        let cfg_limit_ok = p.client.header_block("/x", &o).len().div_ceil(size) <= 33;
        if !cfg_limit_ok {
            continue;
        }
        let r = p.unary("/x", b"abc", &o, &mut echo).expect("response");
        assert_eq!(r.message.as_deref(), Some(&b"abc"[..]), "fragment {size}");
    }
}

#[test]
fn continuation_count_capped() {
    let cfg = TransportConfig {
        max_continuation_frames: 4,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    let mut o = opts();
    o.header_fragment = Some(2);
    p.unary("/x", b"abc", &o, &mut echo);
    assert_eq!(goaway_code(&p), Some(Reason::ENHANCE_YOUR_CALM.0));
}

#[test]
fn endless_continuation_with_empty_payloads_is_stopped() {
    let mut p = pair();
    let mut bytes = frame(1, 0, 1, &[0x83]); // :method POST, no END_HEADERS
    for _ in 0..100 {
        bytes.extend(frame(9, 0, 1, &[]));
    }
    p.send(&bytes);
    assert_eq!(goaway_code(&p), Some(Reason::ENHANCE_YOUR_CALM.0));
}

#[test]
fn interleaved_frame_is_protocol_error() {
    let mut p = pair();
    let mut bytes = frame(1, 0, 1, &[0x83]);
    bytes.extend(frame(6, 0, 0, &[0; 8]));
    p.send(&bytes);
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));

    let mut p = pair();
    let mut bytes = frame(1, 0, 1, &[0x83]);
    bytes.extend(frame(9, 4, 3, &[0x86]));
    p.send(&bytes);
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn continuation_without_headers_is_protocol_error() {
    let mut p = pair();
    p.send(&frame(9, 4, 1, &[0x83]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}

#[test]
fn header_block_size_capped_before_buffering() {
    let cfg = TransportConfig {
        max_header_block_size: 2048,
        ..TransportConfig::default()
    };
    let mut p = Pair::new(&cfg);
    let mut bytes = frame(1, 0, 1, &[0; 1500]);
    bytes.extend(frame(9, 0, 1, &[0; 1500]));
    p.send(&bytes);
    assert_eq!(goaway_code(&p), Some(Reason::ENHANCE_YOUR_CALM.0));
    assert!(p.conn.buffered_input() <= 2048);
}
