//! Flow control in both directions (RFC 9113 §5.2, §6.9).

mod transport_support;
use kms_plugin_core::h2::FrameKind;
use transport_support::*;

fn small_windows() -> TransportConfig {
    TransportConfig {
        initial_window_size: 65_535,
        connection_window_size: 65_535,
        ..TransportConfig::default()
    }
}

fn window_updates(p: &Pair, stream: u32) -> usize {
    p.client
        .frames
        .iter()
        .filter(|f| f.kind == FrameKind::WindowUpdate && f.stream == stream)
        .count()
}

#[test]
fn request_larger_than_default_window_completes_through_window_update() {
    let mut p = Pair::new(&small_windows());
    let msg: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let mut got = 0;
    let r = p
        .unary("/x", &msg, &opts(), &mut |req: &Request| {
            got = req.message.len();
            Some(Response::ok(SecretBytes::copy_from(b"ok")))
        })
        .expect("response");
    assert_eq!(got, 300_000);
    assert_eq!(r.grpc_status, Some(0));
    assert!(window_updates(&p, 0) >= 4, "connection window replenished");
    assert!(window_updates(&p, 1) >= 4, "stream window replenished");
}

#[test]
fn large_request_one_byte_at_a_time() {
    let mut p = Pair::new(&small_windows());
    p.byte_at_a_time = true;
    let msg = vec![0xAB; 70_000];
    let r = p.unary("/x", &msg, &opts(), &mut echo).expect("response");
    assert_eq!(r.message.as_deref(), Some(&msg[..]));
}

#[test]
fn response_larger_than_peer_window_waits_for_window_update() {
    let mut p = pair();
    p.client.auto_window_update = false;
    let msg = vec![1u8; 100_000];
    let (s, bytes) = p.client.unary("/x", &msg, &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut echo);
    assert!(p.client.take_response(s).is_none(), "stalled");
    let sent: u32 = p
        .client
        .frames
        .iter()
        .filter(|f| f.kind == FrameKind::Data)
        .map(|f| f.length)
        .sum();
    assert_eq!(sent, 65_535, "exactly the peer's initial windows");
    // Connection window first: still stalled on the stream window.
    p.client
        .send_raw(&frame(8, 0, 0, &100_000u32.to_be_bytes()));
    p.drive(&mut |_| None);
    assert!(p.client.take_response(s).is_none());
    p.client
        .send_raw(&frame(8, 0, s, &100_000u32.to_be_bytes()));
    p.drive(&mut |_| None);
    let r = p.client.take_response(s).expect("complete");
    assert_eq!(r.message.as_deref(), Some(&msg[..]));
    assert_eq!(r.grpc_status, Some(0));
}

#[test]
fn initial_window_size_change_adjusts_open_streams() {
    let mut p = pair();
    p.client.auto_window_update = false;
    // Peer shrinks stream windows to 10 before the response.
    p.send(&frame(4, 0, 0, &[0, 4, 0, 0, 0, 10]));
    let (s, bytes) = p.client.unary("/x", &[9u8; 1000], &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut echo);
    let sent: u32 = p
        .client
        .frames
        .iter()
        .filter(|f| f.kind == FrameKind::Data)
        .map(|f| f.length)
        .sum();
    assert_eq!(sent, 10);
    // Raising it applies the delta to the open stream (§6.9.2).
    p.send(&frame(4, 0, 0, &[0, 4, 0, 0, 0x10, 0]));
    let r = p.client.take_response(s).expect("complete");
    assert_eq!(r.message.map(|m| m.len()), Some(1000));
}

#[test]
fn window_overflow_is_flow_control_error() {
    let mut p = pair();
    p.send(&frame(8, 0, 0, &0x7fff_ffffu32.to_be_bytes()));
    assert_eq!(goaway_code(&p), Some(Reason::FLOW_CONTROL_ERROR.0));

    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut |_| None);
    p.send(&frame(8, 0, s, &0x7fff_ffffu32.to_be_bytes()));
    let r = p.client.take_response(s).expect("reset");
    assert_eq!(r.reset, Some(Reason::FLOW_CONTROL_ERROR.0));
    assert_eq!(p.cancelled, [s]);
    assert_eq!(p.client.goaway(), None);
}

#[test]
fn settings_window_overflow_is_connection_error() {
    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut |_| None);
    p.send(&frame(8, 0, s, &0x7fff_0000u32.to_be_bytes()));
    p.send(&frame(4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    assert_eq!(goaway_code(&p), Some(Reason::FLOW_CONTROL_ERROR.0));
}

#[test]
fn zero_increment_is_protocol_error() {
    let mut p = pair();
    p.send(&frame(8, 0, 0, &[0; 4]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));

    let mut p = pair();
    let (s, bytes) = p.client.unary("/x", b"a", &opts());
    p.client.send_raw(&bytes);
    p.drive(&mut |_| None);
    p.send(&frame(8, 0, s, &[0; 4]));
    assert_eq!(
        p.client.take_response(s).expect("reset").reset,
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn window_update_bad_length_and_idle_stream() {
    let mut p = pair();
    p.send(&frame(8, 0, 0, &[0; 5]));
    assert_eq!(goaway_code(&p), Some(Reason::FRAME_SIZE_ERROR.0));
    let mut p = pair();
    p.send(&frame(8, 0, 7, &[0, 0, 0, 1]));
    assert_eq!(goaway_code(&p), Some(Reason::PROTOCOL_ERROR.0));
    // On a closed stream it is ignored.
    let mut p = pair();
    p.unary("/x", b"a", &opts(), &mut echo).expect("r");
    p.send(&frame(8, 0, 1, &[0, 0, 0, 1]));
    assert_eq!(p.client.goaway(), None);
}

#[test]
fn padding_counts_against_flow_control() {
    let mut p = Pair::new(&small_windows());
    let mut o = opts();
    o.padding = Some(255);
    o.chunk = 1000;
    let msg = vec![3u8; 100_000];
    let r = p.unary("/x", &msg, &o, &mut |req: &Request| {
        assert_eq!(req.message.len(), 100_000);
        Some(Response::ok(SecretBytes::copy_from(b"")))
    });
    assert_eq!(r.expect("response").grpc_status, Some(0));
}
