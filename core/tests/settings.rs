//! SETTINGS (RFC 9113 §6.5) and PING (§6.7).

mod transport_support;
use transport_support::*;

fn settings_payload(pairs: &[(u16, u32)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect()
}

fn after(bytes: &[u8]) -> Pair {
    let mut p = pair();
    p.send(bytes);
    p
}

#[test]
fn settings_are_acked_and_unknown_ids_ignored() {
    let mut p = pair();
    let acks = p.client.settings_acks;
    p.send(&frame(
        4,
        0,
        0,
        &settings_payload(&[(0x99, 7), (1, 0), (2, 0), (3, 10), (6, 100)]),
    ));
    assert_eq!(p.client.settings_acks, acks + 1);
    assert_eq!(p.client.goaway(), None);
    assert_eq!(
        p.unary("/x", b"a", &opts(), &mut echo)
            .expect("r")
            .grpc_status,
        Some(0)
    );
}

#[test]
fn settings_errors() {
    let cases: [(Vec<u8>, Reason); 7] = [
        (frame(4, 1, 0, &[0; 6]), Reason::FRAME_SIZE_ERROR),
        (frame(4, 0, 0, &[0; 5]), Reason::FRAME_SIZE_ERROR),
        (frame(4, 0, 1, &[]), Reason::PROTOCOL_ERROR),
        (
            frame(4, 0, 0, &settings_payload(&[(2, 2)])),
            Reason::PROTOCOL_ERROR,
        ),
        (
            frame(4, 0, 0, &settings_payload(&[(4, 1 << 31)])),
            Reason::FLOW_CONTROL_ERROR,
        ),
        (
            frame(4, 0, 0, &settings_payload(&[(5, 16_383)])),
            Reason::PROTOCOL_ERROR,
        ),
        (
            frame(4, 0, 0, &settings_payload(&[(5, 1 << 24)])),
            Reason::PROTOCOL_ERROR,
        ),
    ];
    for (bytes, reason) in cases {
        let p = after(&bytes);
        assert_eq!(goaway_code(&p), Some(reason.0), "{bytes:?}");
        assert!(p.conn.is_closed());
    }
}

#[test]
fn peer_max_frame_size_splits_data() {
    let mut p = pair();
    p.send(&frame(4, 0, 0, &settings_payload(&[(5, 16_384)])));
    let msg = vec![7u8; 40_000];
    let r = p.unary("/x", &msg, &opts(), &mut echo).expect("response");
    assert_eq!(r.message.as_deref(), Some(&msg[..]));
    let data: Vec<_> = p
        .client
        .frames
        .iter()
        .filter(|f| f.kind == kms_plugin_core::h2::FrameKind::Data)
        .collect();
    assert!(data.iter().all(|f| f.length <= 16_384));
    assert_eq!(data.len(), 3);
}

#[test]
fn ping_is_answered_with_same_data() {
    let mut p = pair();
    p.client.ping(*b"12345678");
    p.drive(&mut |_| None);
    assert_eq!(p.client.ping_acks, [*b"12345678"]);
    // A PING ACK from the peer is ignored.
    p.send(&frame(6, 1, 0, &[0; 8]));
    assert_eq!(p.client.ping_acks.len(), 1);
    assert_eq!(p.client.goaway(), None);
}

#[test]
fn ping_errors() {
    assert_eq!(
        goaway_code(&after(&frame(6, 0, 0, &[0; 7]))),
        Some(Reason::FRAME_SIZE_ERROR.0)
    );
    assert_eq!(
        goaway_code(&after(&frame(6, 0, 1, &[0; 8]))),
        Some(Reason::PROTOCOL_ERROR.0)
    );
}

#[test]
fn golden_ping_ack_bytes() {
    let mut p = pair();
    let start = p.server_bytes.len();
    p.send(&frame(6, 0, 0, b"abcdefgh"));
    assert_eq!(
        &p.server_bytes[start..],
        &[
            0, 0, 8, 6, 1, 0, 0, 0, 0, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h'
        ]
    );
}
