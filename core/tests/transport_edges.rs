//! Edge cases at frame and stream boundaries, against a raw connection.

mod raw_frames;
use raw_frames::*;

fn cfg() -> TransportConfig {
    TransportConfig::default()
}

fn headers(stream: u32) -> Vec<u8> {
    raw_frame(1, 0x4, stream, &block(GOOD))
}

#[test]
fn interleaved_streams_complete_independently() {
    let mut p = Harness::raw_connected(&cfg());
    let m1 = grpc_message(b"first");
    let m3 = grpc_message(b"third!");
    let mut bytes = headers(1);
    bytes.extend(headers(3));
    bytes.extend(raw_frame(0, 0, 3, &m3[..4]));
    bytes.extend(raw_frame(0, 0, 1, &m1[..2]));
    bytes.extend(raw_frame(0, 1, 3, &m3[4..]));
    bytes.extend(raw_frame(0, 1, 1, &m1[2..]));
    p.feed(&bytes);
    let got: Vec<(u32, Vec<u8>)> = p
        .parked
        .iter()
        .map(|r| (r.stream, r.message.expose().to_vec()))
        .collect();
    assert_eq!(got, [(3, b"third!".to_vec()), (1, b"first".to_vec())]);
}

#[test]
fn empty_final_data_frame_ends_the_request() {
    let mut p = Harness::raw_connected(&cfg());
    let mut bytes = headers(1);
    bytes.extend(raw_frame(0, 0, 1, &grpc_message(b"m")));
    bytes.extend(raw_frame(0, 1, 1, &[]));
    p.feed(&bytes);
    assert_eq!(p.parked.len(), 1);
    assert_eq!(p.parked[0].message.expose(), b"m");
}

#[test]
fn padding_edges() {
    // Pad length = payload - 1: zero data octets, valid (§6.1).
    let mut p = Harness::raw_connected(&cfg());
    let mut bytes = headers(1);
    bytes.extend(raw_frame(0, 0x8, 1, &[3, 0, 0, 0]));
    bytes.extend(raw_frame(0, 0x9, 1, &pad_payload(&grpc_message(b"z"), 255)));
    p.feed(&bytes);
    assert_eq!(p.goaway_code(), None);
    assert_eq!(p.parked.len(), 1);
    // PADDED + PRIORITY on HEADERS together.
    let mut p = Harness::raw_connected(&cfg());
    let mut payload = vec![7u8, 0, 0, 0, 0, 16];
    payload.extend(block(GOOD));
    payload.extend([0; 7]);
    let mut bytes = raw_frame(1, 0x4 | 0x8 | 0x20, 1, &payload);
    bytes.extend(raw_frame(0, 1, 1, &grpc_message(b"q")));
    p.feed(&bytes);
    assert_eq!(p.parked.len(), 1);
    // PADDED + PRIORITY with the padding eating the priority fields: PROTOCOL_ERROR.
    let mut p = Harness::raw_connected(&cfg());
    p.feed(&raw_frame(1, 0x4 | 0x8 | 0x20, 1, &[4, 0, 0, 0, 0]));
    assert!(p.goaway_code().is_some());
}

#[test]
fn peer_reset_of_a_stalled_response_stops_its_data() {
    let mut p = Harness::raw_connected(&cfg());
    p.feed(&request(1, b"x"));
    let req = p.parked.pop().expect("request");
    p.conn.respond(
        req.stream,
        Response::ok(SecretBytes::new(vec![1; 100_000])),
        p.now,
    );
    p.drain();
    let before = p.data(1).len();
    assert_eq!(before, 65_535);
    p.feed(&rst_stream_frame(1, 8));
    p.feed(&window_update_frame(0, 1 << 20));
    p.feed(&window_update_frame(1, 1 << 20));
    assert_eq!(
        p.data(1).len(),
        before,
        "no DATA after the peer's RST_STREAM"
    );
    assert!(!p.ended(1));
    assert_eq!(p.conn.in_flight(), 0);
    assert!(
        p.cancelled.is_empty(),
        "already answered: nothing to cancel"
    );
    // The connection still serves new streams.
    p.feed(&request(3, b"y"));
    assert_eq!(p.parked.len(), 1);
}

#[test]
fn shrinking_initial_window_mid_response_stalls_then_resumes_intact() {
    let message: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let mut p = Harness::raw_connected(&cfg());
    p.feed(&settings_frame(&[(4, 1000)]));
    p.feed(&request(1, b"x"));
    let req = p.parked.pop().expect("request");
    p.conn.respond(
        req.stream,
        Response::ok(SecretBytes::copy_from(&message)),
        p.now,
    );
    p.drain();
    assert_eq!(p.data(1).len(), 1000);
    // Shrink to 0: the stream window goes negative (§6.9.2), nothing more is sent...
    p.feed(&settings_frame(&[(4, 0)]));
    p.feed(&window_update_frame(1, 500));
    assert_eq!(p.data(1).len(), 1000, "window still -500");
    // ...until the window is positive again.
    p.feed(&window_update_frame(1, 100_000));
    let data = p.data(1);
    assert_eq!(data.len(), 5 + message.len());
    assert_eq!(&data[5..], &message[..]);
    assert!(p.ended(1));
}

#[test]
fn respond_twice_and_respond_to_unknown_streams_are_ignored() {
    let mut p = Harness::raw_connected(&cfg());
    p.feed(&request(1, b"x"));
    let req = p.parked.pop().expect("request");
    p.conn.respond(
        req.stream,
        Response::ok(SecretBytes::copy_from(b"a")),
        p.now,
    );
    p.drain();
    let frames = p.client.frames.len();
    p.conn.respond(
        req.stream,
        Response::ok(SecretBytes::copy_from(b"b")),
        p.now,
    );
    p.conn
        .respond(99, Response::error(Code::Internal, "nope"), p.now);
    p.drain();
    assert_eq!(p.client.frames.len(), frames);
}

#[test]
fn many_unknown_settings_are_ignored() {
    let mut p = Harness::raw_connected(&cfg());
    let entries: Vec<(u16, u32)> = (0..2000u16).map(|i| (0x100 + i, u32::from(i))).collect();
    let payload: Vec<u8> = entries
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect();
    p.feed(&raw_frame(4, 0, 0, &payload));
    assert_eq!(p.goaway_code(), None);
    assert!(p.client.frames.iter().any(|f| f.kind == 4 && f.flags == 1));
}

fn with_fields(extra: &[(&str, &str)], message: &[u8]) -> Harness {
    let mut fields = GOOD.to_vec();
    fields.extend_from_slice(extra);
    let mut p = Harness::raw_connected(&cfg());
    let mut bytes = raw_frame(1, 0x4, 1, &block(&fields));
    bytes.extend(raw_frame(0, 1, 1, &grpc_message(message)));
    p.feed(&bytes);
    p
}

#[test]
fn largest_stream_id_works() {
    let mut p = Harness::raw_connected(&cfg());
    p.feed(&request(0x7fff_ffff, b"last"));
    assert_eq!(p.parked.len(), 1);
    assert_eq!(p.parked[0].stream, 0x7fff_ffff);
}

#[test]
fn longest_grpc_timeout_saturates_safely() {
    // 99,999,999 hours is more nanoseconds than a u64 holds: saturates to "never".
    let p = with_fields(&[("grpc-timeout", "99999999H")], b"a");
    assert_eq!(p.parked.len(), 1);
    assert_eq!(p.parked[0].deadline, Some(Timestamp::MAX));
    let p = with_fields(&[("grpc-timeout", "99999999n")], b"a");
    assert_eq!(
        p.parked[0].deadline,
        Some(Timestamp::from_nanos(99_999_999))
    );
    // Arriving near the end of time saturates instead of wrapping.
    let mut late = Harness::raw_connected(&cfg());
    late.now = Timestamp::from_nanos(u64::MAX - 10);
    let mut fields = GOOD.to_vec();
    fields.push(("grpc-timeout", "1S"));
    let mut bytes = raw_frame(1, 0x4, 1, &block(&fields));
    bytes.extend(raw_frame(0, 1, 1, &grpc_message(b"a")));
    late.feed(&bytes);
    assert_eq!(late.parked[0].deadline, Some(Timestamp::MAX));
}

#[test]
fn hundred_thousand_sequential_calls_keep_state_bounded() {
    let mut p = Harness::raw_connected(&cfg());
    for i in 0..100_000u32 {
        let s = 2 * i + 1;
        p.conn.handle_bytes(&request(s, b"m"), p.now);
        let req = p.conn.poll_request().expect("request");
        let Request {
            stream, message, ..
        } = req;
        p.conn.respond(stream, Response::ok(message), p.now);
        let mut out = Vec::new();
        p.conn.poll_transmit(&mut out);
        while p.conn.poll_event().is_some() {}
        if i % 10_000 == 0 {
            // The client replenishes our connection send window now and then.
            p.conn.handle_bytes(&window_update_frame(0, 1 << 20), p.now);
        }
        assert_eq!(p.conn.buffered_input(), 0);
        assert_eq!(p.conn.in_flight(), 0);
    }
    assert!(!p.conn.is_closed());
}

#[test]
fn oversized_header_list_is_refused_per_stream_and_hpack_stays_in_sync() {
    let mut p = Harness::raw_connected(&cfg());
    let big = "v".repeat(12_000);
    // A small literal with incremental indexing inserts `x-small: 1` into the dynamic table,
    // so the server must decode the block even though it refuses the request. The two big
    // fields are literals without indexing (an entry larger than the table would empty it,
    // RFC 7541 §4.4).
    let mut blk = block(GOOD);
    blk.extend([0x40, 7]);
    blk.extend(b"x-small");
    blk.extend([1, b'1']);
    for name in ["x-b1", "x-b2"] {
        let mut e = Vec::new();
        e.push(0x00);
        e.push(name.len() as u8);
        e.extend(name.as_bytes());
        // 12,000 as an HPACK integer with a 7-bit prefix: 127, then 11873 in 7-bit groups.
        let mut rest: u32 = 12_000 - 127;
        e.push(0x7f);
        while rest >= 128 {
            e.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        e.push(rest as u8);
        e.extend(big.as_bytes());
        blk.extend(e);
    }
    let mut d = kms_plugin_core::hpack::Decoder::new(4096);
    let r = d.decode(&blk, &mut |_, _, _| {});
    assert_eq!(r, Ok(()), "the test's block is valid HPACK");
    let (first, second) = blk.split_at(16_000);
    let mut bytes = raw_frame(1, 0, 1, first);
    bytes.extend(raw_frame(9, 0x4, 1, second));
    bytes.extend(raw_frame(0, 1, 1, &grpc_message(b"a")));
    p.feed(&bytes);
    assert!(p.parked.is_empty(), "refused");
    assert_eq!(p.goaway_code(), None, "a stream-level refusal");
    assert!(p.rst(1).is_some() || p.ended(1));
    // Dynamic table in sync: index 62 is `x-small: 1`.
    let mut blk = block(GOOD);
    blk.push(0x80 | 0x3e);
    let mut bytes = raw_frame(1, 0x4, 3, &blk);
    bytes.extend(raw_frame(0, 1, 3, &grpc_message(b"b")));
    p.feed(&bytes);
    assert_eq!(p.goaway_code(), None);
    assert_eq!(
        p.parked.len(),
        1,
        "the next request decodes against the same table"
    );
}
