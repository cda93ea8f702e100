//! Adversarial peers against a raw connection: floods (CVE-2019-9512/9514/9518,
//! CVE-2023-44487, CVE-2024-27316), byte-at-a-time delivery, huge declared lengths, and
//! request bodies split at every boundary.

mod raw_frames;
use raw_frames::*;

fn cfg() -> TransportConfig {
    TransportConfig::default()
}

/// A HEADERS frame opening `stream` with PRIORITY making it depend on itself: the cheapest
/// stream error to provoke (§5.3.1 stream PROTOCOL_ERROR), one RST_STREAM each.
fn self_dependent_headers(stream: u32) -> Vec<u8> {
    let mut payload = stream.to_be_bytes().to_vec();
    payload.push(16);
    payload.extend(block(GOOD));
    raw_frame(1, 0x4 | 0x20, stream, &payload)
}

#[test]
fn ping_flood_turns_off_reading_until_drained() {
    let mut p = Harness::raw_connected(&cfg());
    let pings: Vec<u8> = (0..70_000u32)
        .flat_map(|i| ping_frame((u64::from(i)).to_be_bytes()))
        .collect();
    p.conn.handle_bytes(&pings, p.now);
    assert!(
        !p.conn.wants_read(),
        "{} bytes pending",
        p.conn.pending_output()
    );
    p.drain();
    assert!(p.conn.wants_read());
    assert_eq!(
        p.client
            .frames
            .iter()
            .filter(|f| f.kind == 6 && f.flags == 1)
            .count(),
        70_000
    );
}

#[test]
fn huge_declared_frame_byte_at_a_time_buffers_nothing() {
    let mut p = Harness::raw_connected(&cfg());
    p.feed_bytewise(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
    assert_eq!(p.goaway_code(), Some(Reason::FRAME_SIZE_ERROR.0));
    assert!(p.conn.buffered_input() <= 9);
    // Nothing more is read after the connection error.
    p.feed(&[0; 1000]);
    assert!(p.conn.buffered_input() <= 9);
    assert!(p.conn.is_closed());
}

#[test]
fn empty_continuation_flood_is_stopped() {
    let mut p = Harness::raw_connected(&cfg());
    let mut bytes = raw_frame(1, 0, 1, &block(&GOOD[..1]));
    for _ in 0..10_000 {
        bytes.extend(raw_frame(9, 0, 1, &[]));
    }
    p.feed(&bytes);
    assert!(
        p.goaway_code().is_some(),
        "CONTINUATION flood ends the connection"
    );
    assert!(p.conn.buffered_input() <= 9 + 16_384);
}

#[test]
fn provoked_stream_errors_are_bounded() {
    // Each self-dependent HEADERS costs the server an RST_STREAM.
    let mut p = Harness::raw_connected(&cfg());
    let mut bytes = Vec::new();
    for i in 0..100_000u32 {
        bytes.extend(self_dependent_headers(2 * i + 1));
    }
    p.feed(&bytes);
    let rsts = p.client.frames.iter().filter(|f| f.kind == 3).count();
    let budget = cfg().max_resets_per_window as usize;
    assert_eq!(
        rsts,
        budget + 1,
        "one RST_STREAM per provoked error, the last with GOAWAY"
    );
    assert_eq!(p.goaway_code(), Some(Reason::ENHANCE_YOUR_CALM.0));
    assert!(p.conn.is_closed());
}

#[test]
fn request_bodies_split_at_every_boundary() {
    let message: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let mut body = grpc_message(&message);
    for chunk in [1usize, 2, 3, 4, 5, 6, 7, 100, 1000, 2999, 3005] {
        let mut p = Harness::raw_connected(&cfg());
        let mut bytes = raw_frame(1, 0x4, 1, &block(GOOD));
        let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let end = u8::from(i + 1 == pieces.len());
            bytes.extend(raw_frame(0, end, 1, piece));
        }
        p.feed(&bytes);
        assert_eq!(p.parked.len(), 1, "chunk {chunk}");
        assert_eq!(p.parked[0].message.expose(), &message[..], "chunk {chunk}");
        assert_eq!(p.conn.buffered_request_bytes(), 0);
    }
    body.clear();
}

#[test]
fn whole_exchange_byte_at_a_time_matches_single_call() {
    let mut input = request(1, b"hello");
    input.extend(request(3, &[9; 10_000]));
    let mut a = Harness::raw_connected(&cfg());
    a.feed(&input);
    let mut b = Harness::raw_connected(&cfg());
    b.feed_bytewise(&input);
    let msgs = |p: &Harness| {
        p.parked
            .iter()
            .map(|r| (r.stream, r.message.expose().to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(msgs(&a), msgs(&b));
    assert_eq!(a.parked.len(), 2);
}

#[test]
fn response_body_is_sent_intact_across_windows_and_frame_sizes() {
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut p = Harness::raw_connected(&cfg());
    p.feed(&request(1, b"x"));
    let req = p.parked.pop().expect("request");
    p.conn.respond(
        req.stream,
        Response::ok(SecretBytes::copy_from(&message)),
        p.now,
    );
    p.drain();
    // Only the initial 65,535-octet windows were available.
    assert_eq!(p.data(1).len(), 65_535);
    assert!(!p.ended(1));
    p.feed(&window_update_frame(0, 1 << 20));
    p.feed(&window_update_frame(1, 1 << 20));
    let data = p.data(1);
    assert_eq!(data.len(), 5 + message.len());
    assert_eq!(&data[..5], &[0, 0, 3, 0x0d, 0x40]);
    assert_eq!(&data[5..], &message[..]);
    assert!(p.ended(1));
    assert!(
        p.client
            .frames
            .iter()
            .filter(|f| f.kind == 0)
            .all(|f| f.payload.len() <= 16_384)
    );
}

#[test]
fn many_streams_declaring_huge_messages_hold_only_what_they_sent() {
    let mut p = Harness::raw_connected(&cfg());
    for i in 0..50u32 {
        let s = 2 * i + 1;
        let mut bytes = raw_frame(1, 0x4, s, &block(GOOD));
        // Declares 4 MiB, sends 100 octets.
        let mut body = vec![0, 0, 0x40, 0, 0];
        body.extend([1u8; 95]);
        bytes.extend(raw_frame(0, 0, s, &body));
        p.feed(&bytes);
    }
    assert_eq!(p.conn.buffered_request_bytes(), 50 * 100);
    assert!(p.goaway_code().is_none());
}

#[test]
fn provoked_reset_budget_renews_with_time() {
    let budget = cfg().max_resets_per_window;
    let mut p = Harness::raw_connected(&cfg());
    let mut stream = 1;
    for _ in 0..3 {
        for _ in 0..budget {
            p.feed(&self_dependent_headers(stream));
            stream += 2;
        }
        p.now = p.now.saturating_add(cfg().reset_window);
    }
    assert_eq!(p.goaway_code(), None, "a full budget per window is allowed");
}
