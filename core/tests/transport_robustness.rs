//! Arbitrary input never panics, never grows buffers past their caps, and always ends in
//! either progress or a clean close (fixed seeds: deterministic).

mod support;

use kms_plugin_core::Timestamp;
use kms_plugin_core::conn::Connection;
use kms_plugin_core::h2::frame::PREFACE;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn feed(c: &mut Connection, rng: &mut XorShift, bytes: &[u8]) {
    let mut rest = bytes;
    let mut now = 0u64;
    while !rest.is_empty() {
        let n = 1 + (rng.next() % 64) as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        now += rng.next() % 1_000_000_000;
        c.handle_bytes(a, Timestamp::from_nanos(now));
        while let Some(r) = c.poll_request() {
            c.respond(r.stream, support::h2::echo(&r), Timestamp::from_nanos(now));
        }
        while c.poll_cancelled().is_some() {}
        while c.poll_event().is_some() {}
        let mut out = Vec::new();
        c.poll_transmit(&mut out);
        assert!(out.len() < 4 << 20);
        if let Some(t) = c.poll_timeout() {
            c.handle_timeout(t);
        }
        rest = b;
    }
}

#[test]
fn random_bytes_with_and_without_preface_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let mut c = support::h2::conn();
        let len = (rng.next() % 512) as usize;
        let mut bytes: Vec<u8> = if i % 2 == 0 {
            PREFACE.to_vec()
        } else {
            Vec::new()
        };
        if i % 4 == 0 {
            bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
        }
        bytes.extend((0..len).map(|_| rng.next() as u8));
        feed(&mut c, &mut rng, &bytes);
    }
}

#[test]
fn mutated_valid_sessions_never_panic() {
    let mut rng = XorShift(42);
    let mut raw = support::h2::Raw::new();
    raw.handshake(&[]);
    for s in 0..8u32 {
        raw.unary(
            2 * s + 1,
            "/v2.KeyManagementService/Status",
            Some("%2Ftmp%2Fkms.sock"),
            &[s as u8; 40],
        );
    }
    let valid = raw.take();
    for _ in 0..5_000 {
        let mut bytes = valid.clone();
        for _ in 0..=(rng.next() % 4) {
            let at = (rng.next() as usize) % bytes.len();
            bytes[at] = rng.next() as u8;
        }
        let mut c = support::h2::conn();
        feed(&mut c, &mut rng, &bytes);
    }
}
