//! Robustness: tens of thousands of fixed-seed random inputs (raw bytes, random frames after
//! a valid preface, mutated valid transcripts, random chunking and time) never panic and never
//! grow buffers beyond their caps.

mod transport_support;
use core::time::Duration;
use transport_support::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn cfg() -> TransportConfig {
    TransportConfig {
        max_message_size: 4096,
        max_buffered_bytes: 8192,
        max_header_block_size: 4096,
        max_header_list_size: 2048,
        max_continuation_frames: 4,
        max_concurrent_streams: 8,
        ..TransportConfig::default()
    }
}

fn cap(c: &TransportConfig) -> usize {
    9 + c.max_frame_size as usize + c.max_header_block_size as usize + c.max_buffered_bytes
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn random_frame(rng: &mut Rng, out: &mut Vec<u8>) {
    let kind = rng.below(12) as u8;
    let flags = rng.next() as u8;
    let stream = rng.below(12) as u32;
    let len = match rng.below(4) {
        0 => rng.below(10) as usize,
        1 => [4, 5, 6, 8][rng.below(4) as usize],
        _ => rng.below(80) as usize,
    };
    let mut payload = rng.bytes(len);
    if kind == 1 && rng.below(2) == 0 {
        payload = block(GOOD);
    }
    out.extend(frame(kind, flags, stream, &payload));
}

/// Feeds `input` in random chunks, draining and answering as a driver would.
fn run(rng: &mut Rng, input: &[u8]) -> usize {
    let mut requests = 0;
    let c = cfg();
    let mut now = Timestamp::ZERO;
    let mut conn = Connection::new(&c, now);
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let n = (1 + rng.below(64) as usize).min(input.len() - at);
        conn.handle_bytes(&input[at..at + n], now);
        at += n;
        assert!(
            conn.buffered_input() <= cap(&c),
            "{} > cap",
            conn.buffered_input()
        );
        while let Some(req) = conn.poll_request() {
            requests += 1;
            match rng.below(3) {
                0 => conn.respond(
                    req.stream,
                    Response::ok(SecretBytes::copy_from(req.message.expose())),
                    now,
                ),
                1 => conn.respond(req.stream, Response::error(Code::Internal, "x\u{1}%"), now),
                _ => {}
            }
        }
        while conn.poll_cancelled().is_some() {}
        while conn.poll_event().is_some() {}
        out.clear();
        conn.poll_transmit(&mut out);
        if rng.below(8) == 0 {
            now = now.saturating_add(Duration::from_millis(rng.below(4000)));
            conn.handle_timeout(now);
        }
        if conn.is_closed() {
            break;
        }
    }
    conn.handle_eof(now);
    out.clear();
    conn.poll_transmit(&mut out);
    assert!(conn.is_closed());
    requests
}

#[test]
fn random_bytes_without_preface() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..10_000 {
        let n = rng.below(200) as usize;
        let input = rng.bytes(n);
        assert_eq!(run(&mut rng, &input), 0);
    }
}

#[test]
fn random_frames_after_valid_preface() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..10_000 {
        let mut input = PREFACE.to_vec();
        input.extend(frame(4, 0, 0, &[]));
        for _ in 0..rng.below(12) {
            if rng.below(5) == 0 {
                let n = rng.below(20) as usize;
                input.extend(rng.bytes(n));
            } else {
                random_frame(&mut rng, &mut input);
            }
        }
        let _ = run(&mut rng, &input);
    }
}

#[test]
fn mutated_valid_transcripts() {
    let mut rng = Rng(42);
    let mut base = PREFACE.to_vec();
    base.extend(frame(4, 0, 0, &[0, 4, 0, 0, 0, 100]));
    for s in [1u32, 3, 5] {
        base.extend(request(s, GOOD, &[7; 40]));
    }
    base.extend(frame(6, 0, 0, &[1; 8]));
    base.extend(frame(3, 0, 3, &[0, 0, 0, 8]));
    assert_eq!(
        run(&mut rng, &base),
        3,
        "the unmutated transcript carries 3 requests"
    );
    let mut requests = 0;
    for _ in 0..10_000 {
        let mut input = base.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(input.len() as u64) as usize;
            match rng.below(3) {
                0 => input[i] = rng.next() as u8,
                1 => {
                    input.remove(i);
                }
                _ => input.insert(i, rng.next() as u8),
            }
        }
        requests += run(&mut rng, &input);
    }
    assert!(
        requests > 5_000,
        "mutations still reach the service: {requests}"
    );
}
