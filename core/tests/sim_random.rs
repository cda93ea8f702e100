//! Randomised (fixed-seed) simulations of the KMS services under remote rotations, outages,
//! silence, latency swings and usage rotations. Invariants checked throughout:
//! - every request is answered, and before its grpc-timeout;
//! - Status and Encrypt at the same instant name the same key id, and healthz `ok` means an
//!   Encrypt at that instant succeeds at once;
//! - advertised key ids never go back to an earlier one;
//! - legitimate ciphertexts never get an opaque "decryption failed", and once the remote is
//!   back every ciphertext ever returned decrypts to its plaintext.

mod common;

use core::time::Duration;

use common::{APISERVER_TIMEOUT, config, seed, started};
use kms_plugin_core::effect::RemoteErrorKind;
use kms_plugin_core::rng::Rng;
use kms_plugin_core::rpc::{Code, StreamId};
use kms_plugin_proto::v2::EncryptResponse;
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::service_sim::ServiceSim;

enum Pending {
    V2Encrypt([u8; 32]),
    V2Decrypt([u8; 32]),
    V1Encrypt([u8; 32]),
    V1Decrypt([u8; 32]),
}

struct Outstanding {
    stream: StreamId,
    sent: kms_plugin_core::Timestamp,
    timeout: Duration,
    what: Pending,
}

#[derive(Default)]
struct World {
    v2: Vec<([u8; 32], EncryptResponse)>,
    v1: Vec<([u8; 32], Vec<u8>)>,
    key_ids: Vec<String>,
    outstanding: Vec<Outstanding>,
    answered_ok: usize,
    answered_err: usize,
}

impl World {
    fn note_key_id(&mut self, k: &str) {
        if self.key_ids.last().map(String::as_str) != Some(k) {
            assert!(
                !self.key_ids.iter().any(|x| x == k),
                "key id {k} advertised again after {:?}",
                self.key_ids
            );
            self.key_ids.push(k.to_owned());
        }
    }

    fn collect(&mut self, sim: &mut ServiceSim) {
        let pending = core::mem::take(&mut self.outstanding);
        for o in pending {
            let Some((r, at)) = sim.take(o.stream) else {
                self.outstanding.push(o);
                continue;
            };
            assert!(
                at < o.sent.saturating_add(o.timeout),
                "answered at {at:?} after its deadline ({:?} + {:?})",
                o.sent,
                o.timeout
            );
            if r.code != Code::Ok {
                assert!(
                    matches!(
                        r.code,
                        Code::Unavailable
                            | Code::DeadlineExceeded
                            | Code::ResourceExhausted
                            | Code::FailedPrecondition
                    ),
                    "{:?}: {}",
                    r.code,
                    r.message
                );
                self.answered_err += 1;
                continue;
            }
            self.answered_ok += 1;
            match o.what {
                Pending::V2Encrypt(s) => {
                    let e = msg::decode_v2_encrypt(&r);
                    self.note_key_id(&e.key_id);
                    self.v2.push((s, e));
                }
                Pending::V2Decrypt(s) => assert_eq!(msg::decode_v2_plaintext(&r), s),
                Pending::V1Encrypt(s) => self.v1.push((s, msg::decode_v1_cipher(&r))),
                Pending::V1Decrypt(s) => assert_eq!(msg::decode_v1_plain(&r), s),
            }
        }
    }
}

fn pick<T>(rng: &mut Rng, v: &[T]) -> Option<usize> {
    (!v.is_empty()).then(|| (rng.next_u64() % v.len() as u64) as usize)
}

fn run(world_seed: u8) -> (usize, usize) {
    let mut rng = Rng::from_seed([world_seed; 32]);
    let mut cfg = config();
    cfg.suggested_uses = 20;
    cfg.max_uses = 30;
    cfg.max_parked_requests = 64;
    // A tiny cache: old local KEKs fall out and must be unwrapped again.
    cfg.unwrap_cache_capacity = 2;
    let mut sim = started(&cfg);
    let mut world = World::default();
    let kinds = [
        RemoteErrorKind::Unavailable,
        RemoteErrorKind::Timeout,
        RemoteErrorKind::Throttled,
        RemoteErrorKind::Auth,
    ];
    for step in 0..600u32 {
        let timeout = APISERVER_TIMEOUT + Duration::from_millis(rng.next_u64() % 3000);
        let plain = seed(u32::from(world_seed) * 100_000 + step);
        let roll = rng.next_u64() % 20;
        let sent = sim.now;
        let mut send = |sim: &mut ServiceSim, path: &str, m: Vec<u8>, what: Pending| {
            let stream = sim.send(path, m, Some(timeout));
            world.outstanding.push(Outstanding {
                stream,
                sent,
                timeout,
                what,
            });
        };
        match roll {
            0..=3 => send(
                &mut sim,
                msg::V2_ENCRYPT,
                msg::v2_encrypt(&plain, "u"),
                Pending::V2Encrypt(plain),
            ),
            4..=7 => {
                if let Some(i) = pick(&mut rng, &world.v2) {
                    let (expected, enc) = &world.v2[i];
                    let request = msg::v2_decrypt(enc, "u");
                    let expected = *expected;
                    send(
                        &mut sim,
                        msg::V2_DECRYPT,
                        request,
                        Pending::V2Decrypt(expected),
                    );
                }
            }
            8 => send(
                &mut sim,
                msg::V1_ENCRYPT,
                msg::v1_encrypt(&plain),
                Pending::V1Encrypt(plain),
            ),
            9 => {
                if let Some(i) = pick(&mut rng, &world.v1) {
                    let (expected, cipher) = &world.v1[i];
                    let request = msg::v1_decrypt(cipher);
                    let expected = *expected;
                    send(
                        &mut sim,
                        msg::V1_DECRYPT,
                        request,
                        Pending::V1Decrypt(expected),
                    );
                }
            }
            10..=12 => {
                // Status and Encrypt at the same instant.
                let st = sim.send(msg::V2_STATUS, msg::v2_status(), Some(timeout));
                let en = sim.send(msg::V2_ENCRYPT, msg::v2_encrypt(&plain, "u"), Some(timeout));
                let status = msg::decode_status(&sim.take(st).expect("status is immediate").0);
                if !status.key_id.is_empty() {
                    world.note_key_id(&status.key_id);
                }
                match sim.take(en) {
                    Some((r, _)) if r.code == Code::Ok => {
                        let e = msg::decode_v2_encrypt(&r);
                        assert_eq!(e.key_id, status.key_id, "step {step}");
                        world.v2.push((plain, e));
                    }
                    other => {
                        assert_ne!(
                            status.healthz, "ok",
                            "healthy but Encrypt did not succeed at once"
                        );
                        if other.is_none() {
                            world.outstanding.push(Outstanding {
                                stream: en,
                                sent,
                                timeout,
                                what: Pending::V2Encrypt(plain),
                            });
                        }
                    }
                }
            }
            13 => {
                if rng.next_u64() % 4 == 0 {
                    sim.driver.remote.rotate();
                }
            }
            14 => {
                if rng.next_u64() % 2 == 0 {
                    let k = kinds[(rng.next_u64() % kinds.len() as u64) as usize];
                    sim.driver.remote.set_down(k);
                } else {
                    sim.driver.remote.set_up();
                }
            }
            15 => sim.driver.remote.latency = Duration::from_millis(1 + rng.next_u64() % 2500),
            16 => sim.driver.remote.never_reply = rng.next_u64() % 3 == 0,
            _ => sim.advance(Duration::from_millis(rng.next_u64() % 20_000)),
        }
        sim.advance(Duration::from_millis(rng.next_u64() % 400));
        world.collect(&mut sim);
    }
    // Heal the remote; everything outstanding gets answered and everything ever returned
    // decrypts.
    sim.driver.remote.set_up();
    sim.driver.remote.never_reply = false;
    sim.driver.remote.latency = Duration::from_millis(20);
    sim.advance(Duration::from_secs(60));
    sim.drive();
    world.collect(&mut sim);
    assert!(
        world.outstanding.is_empty(),
        "{} requests never answered",
        world.outstanding.len()
    );
    assert_eq!(sim.service.parked_requests(), 0);
    for (p, e) in &world.v2 {
        let r = sim.call(
            msg::V2_DECRYPT,
            msg::v2_decrypt(e, "u"),
            Some(APISERVER_TIMEOUT),
        );
        assert_eq!(msg::decode_v2_plaintext(&r), p);
    }
    for (p, c) in &world.v1 {
        let r = sim.call(msg::V1_DECRYPT, msg::v1_decrypt(c), Some(APISERVER_TIMEOUT));
        assert_eq!(msg::decode_v1_plain(&r), p);
    }
    let r = sim.call(msg::V2_STATUS, msg::v2_status(), None);
    let s = msg::decode_status(&r);
    assert_eq!(s.healthz, "ok");
    assert_eq!(s.key_id, sim.driver.remote.current_key_id());
    eprintln!(
        "world {world_seed}: ok {} err {} key ids {} v2 {} v1 {} unwraps {}",
        world.answered_ok,
        world.answered_err,
        world.key_ids.len(),
        world.v2.len(),
        world.v1.len(),
        sim.driver.remote.calls.unwrap
    );
    (world.answered_ok, world.answered_err)
}

#[test]
fn random_worlds_keep_every_invariant() {
    let mut totals = (0, 0);
    for world in 0..6u8 {
        let (ok, err) = run(world);
        totals.0 += ok;
        totals.1 += err;
    }
    // The worlds exercised both paths.
    assert!(totals.0 > 500, "{totals:?}");
    assert!(totals.1 > 20, "{totals:?}");
}
