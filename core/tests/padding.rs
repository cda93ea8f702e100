//! PADDED and PRIORITY flags and PRIORITY frames (RFC 9113 §6.1, §6.2, §6.3).

mod transport_support;
use transport_support::*;

#[test]
fn padded_headers_and_data() {
    for pad in [0u8, 1, 200, 255] {
        let mut p = pair();
        let mut o = opts();
        o.padding = Some(pad);
        let r = p.unary("/x", b"padded", &o, &mut echo).expect("response");
        assert_eq!(r.message.as_deref(), Some(&b"padded"[..]), "pad {pad}");
    }
}

#[test]
fn padding_as_long_as_payload_is_protocol_error() {
    // DATA: pad length 6 in a 6-byte payload (§6.1: padding >= payload length).
    let mut p = pair();
    let (_, bytes) = p.client.unary(
        "/x",
        b"",
        &RequestOptions {
            end_stream: false,
            ..opts()
        },
    );
    p.send(&bytes);
    p.send(&frame(0, 0x9, 1, &[6, 0, 0, 0, 0, 0]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
    // HEADERS: PADDED with an empty payload, and pad >= payload.
    for payload in [&[][..], &[3, 1, 2]] {
        let mut p = pair();
        p.send(&frame(1, 0x8 | 0x4, 1, payload));
        assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
    }
}

#[test]
fn headers_with_priority_flag() {
    let mut p = pair();
    let block = p.client.header_block("/x", &opts());
    let mut payload = vec![0x80, 0, 0, 0, 16]; // exclusive, depends on 0, weight 16
    payload.extend(&block);
    let mut bytes = frame(1, 0x20 | 0x4, 1, &payload);
    bytes.extend(frame(0, 1, 1, &[0, 0, 0, 0, 1, b'q']));
    p.client.send_raw(&bytes);
    p.drive(&mut echo);
    assert_eq!(
        p.client.take_response(1).expect("r").message.as_deref(),
        Some(&b"q"[..])
    );
}

#[test]
fn headers_depending_on_itself_is_reset() {
    let mut p = pair();
    let block = p.client.header_block("/x", &opts());
    assert_eq!(p.client.alloc_stream(), 1);
    let mut payload = vec![0, 0, 0, 1, 16];
    payload.extend(&block);
    p.send(&frame(1, 0x20 | 0x4 | 0x1, 1, &payload));
    assert_eq!(
        p.client.take_response(1).expect("r").reset,
        Some(Reason::PROTOCOL_ERROR.0)
    );
    // HPACK state stayed in sync: the next request works.
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("r")
            .grpc_status,
        Some(0)
    );
}

#[test]
fn priority_frames_are_ignored_or_checked() {
    let mut p = pair();
    p.send(&frame(2, 0, 5, &[0, 0, 0, 0, 16]));
    assert_eq!(p.client.goaway(), None);
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("r")
            .grpc_status,
        Some(0)
    );
    // Wrong length: stream FRAME_SIZE_ERROR.
    let mut p = pair();
    p.send(&frame(2, 0, 5, &[0, 0, 0, 0]));
    assert_eq!(
        p.client.take_response(5).expect("rst").reset,
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    assert_eq!(p.client.goaway(), None);
    // Stream 0: connection PROTOCOL_ERROR.
    let mut p = pair();
    p.send(&frame(2, 0, 0, &[0, 0, 0, 1, 16]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
}
