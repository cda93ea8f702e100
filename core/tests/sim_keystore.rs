//! Deterministic simulations of the key hierarchy behind the KMS services: cold starts,
//! outages, silent remotes, remote and local rotation, late/duplicate replies, limits.

mod common;

use core::time::Duration;

use common::{
    APISERVER_TIMEOUT, PLUGIN_SEED, REMOTE_SEED, config, decrypt, encrypt, seed, started, status,
};
use kms_plugin_core::effect::{OpId, RemoteError, RemoteErrorKind, RemoteOpKind, RemoteReply};
use kms_plugin_core::event::{Event, RotationReason};
use kms_plugin_core::plugin::{ConnId, UsageError};
use kms_plugin_core::rpc::Code;
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::service_sim::ServiceSim;

/// Ciphertexts of `n` distinct seeds made by another plugin instance (same remote keyring).
fn foreign_ciphertexts(n: u32) -> Vec<kms_plugin_proto::v2::EncryptResponse> {
    let mut other = ServiceSim::new(&config(), [99; 32], FakeRemote::new(REMOTE_SEED));
    other.drive();
    (0..n).map(|i| encrypt(&mut other, &seed(i))).collect()
}

#[test]
fn cold_start_10k_decrypts_cost_one_remote_unwrap() {
    let encs = foreign_ciphertexts(10_000);
    let mut cfg = config();
    cfg.max_parked_requests = 20_000;
    let mut sim = started(&cfg);
    sim.driver.remote.latency = Duration::from_millis(50);
    // All at once: every request parks on the same single-flight unwrap.
    let streams: Vec<_> = encs
        .iter()
        .map(|e| {
            sim.send(
                msg::V2_DECRYPT,
                msg::v2_decrypt(e, "u"),
                Some(APISERVER_TIMEOUT),
            )
        })
        .collect();
    assert_eq!(sim.service.parked_requests(), 10_000);
    sim.drive();
    for (i, s) in streams.into_iter().enumerate() {
        let (r, _) = sim.take(s).expect("answered");
        assert_eq!(msg::decode_v2_plaintext(&r), seed(i as u32));
    }
    assert_eq!(sim.driver.remote.calls.unwrap, 1);
    let joined = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::UnwrapJoined { .. }))
        .count();
    assert_eq!(joined, 9_999);
    // And again one by one: all cache hits.
    for (i, e) in encs.iter().enumerate() {
        assert_eq!(
            msg::decode_v2_plaintext(&decrypt(&mut sim, e)),
            seed(i as u32)
        );
    }
    assert_eq!(sim.driver.remote.calls.unwrap, 1);
}

#[test]
fn remote_down_at_start_reports_the_cause_and_recovers() {
    let cfg = config();
    let mut remote = FakeRemote::new(REMOTE_SEED);
    remote.set_down(RemoteErrorKind::Unavailable);
    let mut sim = ServiceSim::new(&cfg, PLUGIN_SEED, remote);
    sim.drive();
    let s = status(&mut sim);
    assert_eq!(s.healthz, "remote kms unreachable: unavailable");
    assert_eq!(s.key_id, "");
    let r = sim.call(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(&seed(1), "u"),
        Some(APISERVER_TIMEOUT),
    );
    assert_eq!(r.code, Code::Unavailable);
    assert_eq!(r.message, "remote kms unreachable: unavailable");
    // Retries back off but keep coming.
    sim.advance(Duration::from_secs(60));
    let polls = sim.driver.remote.calls.status;
    assert!(polls >= 6, "{polls}");
    assert_eq!(sim.driver.remote.calls.wrap, 0);
    sim.driver.remote.set_up();
    sim.advance(cfg.status_refresh_interval + Duration::from_secs(1));
    let s = status(&mut sim);
    assert_eq!(s.healthz, "ok");
    assert_eq!(s.key_id, sim.driver.remote.current_key_id());
    let e = encrypt(&mut sim, &seed(1));
    assert_eq!(e.key_id, s.key_id);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, Event::HealthChanged { healthy: true, .. }))
    );
}

#[test]
fn auth_failure_is_named_in_healthz() {
    let mut remote = FakeRemote::new(REMOTE_SEED);
    remote.set_down(RemoteErrorKind::Auth);
    let mut sim = ServiceSim::new(&config(), PLUGIN_SEED, remote);
    sim.drive();
    assert_eq!(status(&mut sim).healthz, "remote kms error: auth");
}

#[test]
fn silent_remote_every_parked_request_is_answered_before_its_deadline() {
    for remote_timeout in [Duration::from_secs(2), Duration::from_secs(30)] {
        let encs = foreign_ciphertexts(5);
        let mut cfg = config();
        cfg.remote_timeout = remote_timeout;
        let mut sim = started(&cfg);
        sim.driver.remote.never_reply = true;
        let t0 = sim.now;
        let mut streams = Vec::new();
        for (i, e) in encs.iter().enumerate() {
            let timeout = APISERVER_TIMEOUT + Duration::from_millis(100 * i as u64);
            let s = sim.send(msg::V2_DECRYPT, msg::v2_decrypt(e, "u"), Some(timeout));
            streams.push((s, timeout));
        }
        sim.drive();
        for (s, timeout) in streams {
            let (r, at) = sim.take(s).expect("answered, never a hang");
            assert!(
                at < t0.saturating_add(timeout),
                "answered at {at:?}, deadline {timeout:?}"
            );
            assert!(
                matches!(r.code, Code::DeadlineExceeded | Code::Unavailable),
                "{:?}",
                r.code
            );
        }
        assert_eq!(sim.service.parked_requests(), 0);
    }
}

#[test]
fn silent_remote_at_start_encrypt_waits_then_fails_in_time() {
    let mut remote = FakeRemote::new(REMOTE_SEED);
    remote.never_reply = true;
    let mut sim = ServiceSim::new(&config(), PLUGIN_SEED, remote);
    let t0 = sim.now;
    let s = sim.send(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(&seed(1), "u"),
        Some(APISERVER_TIMEOUT),
    );
    assert!(
        sim.take(s).is_none(),
        "parked while the first status is in flight"
    );
    sim.drive();
    let (r, at) = sim.take(s).expect("answered");
    assert!(at < t0.saturating_add(APISERVER_TIMEOUT));
    assert_ne!(r.code, Code::Ok);
    assert_eq!(status(&mut sim).healthz, "remote kms unreachable: timeout");
}

#[test]
fn parked_encrypt_completes_when_the_first_wrap_lands() {
    let mut sim = ServiceSim::new(&config(), PLUGIN_SEED, FakeRemote::new(REMOTE_SEED));
    let s = sim.send(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(&seed(1), "u"),
        Some(APISERVER_TIMEOUT),
    );
    assert!(sim.take(s).is_none());
    sim.drive();
    let (r, _) = sim.take(s).expect("answered");
    let e = msg::decode_v2_encrypt(&r);
    assert_eq!(e.key_id, status(&mut sim).key_id);
}

/// Key ids advertised by Status over time must never repeat an earlier one (no flip-flop), and
/// at every instant Encrypt returns exactly the key id Status reports.
#[test]
fn remote_rotation_never_yields_status_encrypt_mismatch() {
    let cfg = config();
    let mut sim = started(&cfg);
    let mut advertised: Vec<String> = vec![status(&mut sim).key_id];
    let mut ciphertexts = Vec::new();
    let latencies = [1u64, 400, 20, 1500, 3, 900, 60, 1999];
    for round in 0..16u32 {
        sim.driver.remote.latency =
            Duration::from_millis(latencies[round as usize % latencies.len()]);
        sim.driver.remote.rotate();
        for step in 0..60u32 {
            sim.advance(Duration::from_millis(333));
            let st = sim.send(msg::V2_STATUS, msg::v2_status(), Some(APISERVER_TIMEOUT));
            let en = sim.send(
                msg::V2_ENCRYPT,
                msg::v2_encrypt(&seed(round * 100 + step), "u"),
                Some(APISERVER_TIMEOUT),
            );
            let s = msg::decode_status(&sim.take(st).expect("status is immediate").0);
            let e = msg::decode_v2_encrypt(&sim.take(en).expect("encrypt is immediate").0);
            assert_eq!(s.key_id, e.key_id, "round {round} step {step}");
            assert_eq!(s.healthz, "ok");
            if advertised.last() != Some(&s.key_id) {
                assert!(
                    !advertised.contains(&s.key_id),
                    "key id {} reused",
                    s.key_id
                );
                advertised.push(s.key_id.clone());
            }
            ciphertexts.push((round * 100 + step, e));
        }
    }
    assert_eq!(advertised.len(), 17, "{advertised:?}");
    // Every historic key id stays decryptable.
    for (i, e) in &ciphertexts {
        assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut sim, e)), seed(*i));
    }
}

#[test]
fn failed_wrap_keeps_the_old_key_id_and_says_why() {
    let cfg = config();
    let mut sim = started(&cfg);
    let k1 = status(&mut sim).key_id;
    let old = encrypt(&mut sim, &seed(1));
    sim.driver
        .remote
        .set_failing(RemoteOpKind::Wrap, Some(RemoteErrorKind::Permission));
    let k2 = sim.driver.remote.rotate();
    sim.advance(cfg.status_refresh_interval * 3);
    let s = status(&mut sim);
    assert_eq!(
        s.key_id, k1,
        "never advertise a key id with no local KEK under it"
    );
    assert_eq!(s.healthz, "remote kms error: permission");
    assert_eq!(encrypt(&mut sim, &seed(2)).key_id, k1);
    sim.driver.remote.set_failing(RemoteOpKind::Wrap, None);
    sim.advance(Duration::from_secs(40));
    let s = status(&mut sim);
    assert_eq!((s.key_id.as_str(), s.healthz.as_str()), (k2.as_str(), "ok"));
    assert_eq!(encrypt(&mut sim, &seed(3)).key_id, k2);
    assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut sim, &old)), seed(1));
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, Event::KeyIdChanged { key_id } if *key_id == k2))
    );
}

#[test]
fn local_kek_rotates_by_usage() {
    let mut cfg = config();
    cfg.suggested_uses = 10;
    cfg.max_uses = 15;
    let mut sim = started(&cfg);
    let key = status(&mut sim).key_id;
    let encs: Vec<_> = (0..100).map(|i| encrypt(&mut sim, &seed(i))).collect();
    let rotations = sim
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::LocalKekRotated {
                    reason: RotationReason::Usage
                }
            )
        })
        .count();
    assert!((9..=10).contains(&rotations), "{rotations}");
    let distinct: std::collections::BTreeSet<_> =
        encs.iter().map(|e| e.annotations.clone()).collect();
    // 100 encryptions, a fresh KEK every 10: ten local KEKs used (the last rotation comes
    // after the last encryption).
    assert_eq!(distinct.len(), 10);
    for (i, e) in encs.iter().enumerate() {
        assert_eq!(e.key_id, key, "usage rotation keeps the remote key id");
        assert_eq!(
            msg::decode_v2_plaintext(&decrypt(&mut sim, e)),
            seed(i as u32)
        );
    }
    assert_eq!(
        sim.driver.remote.calls.unwrap, 0,
        "old local KEKs stay cached"
    );
}

#[test]
fn usage_hard_limit_refuses_encrypt_when_no_fresh_kek_can_be_wrapped() {
    let mut cfg = config();
    cfg.suggested_uses = 3;
    cfg.max_uses = 5;
    let mut sim = started(&cfg);
    sim.driver
        .remote
        .set_failing(RemoteOpKind::Wrap, Some(RemoteErrorKind::Unavailable));
    for i in 0..5 {
        encrypt(&mut sim, &seed(i));
    }
    let r = sim.call(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(&seed(9), "u"),
        Some(APISERVER_TIMEOUT),
    );
    assert_ne!(r.code, Code::Ok);
    assert_ne!(status(&mut sim).healthz, "ok");
    sim.driver.remote.set_failing(RemoteOpKind::Wrap, None);
    sim.advance(Duration::from_secs(35));
    assert_eq!(status(&mut sim).healthz, "ok");
    encrypt(&mut sim, &seed(10));
}

#[test]
fn local_kek_rotates_by_age() {
    let mut cfg = config();
    cfg.suggested_age = Duration::from_secs(3600);
    cfg.max_age = Duration::from_secs(2 * 3600);
    cfg.status_refresh_interval = Duration::from_secs(60);
    cfg.status_staleness = Duration::from_secs(180);
    let mut sim = started(&cfg);
    let first = encrypt(&mut sim, &seed(1));
    sim.advance(Duration::from_secs(3600 + 1));
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::LocalKekRotated {
            reason: RotationReason::Age
        }
    )));
    let second = encrypt(&mut sim, &seed(2));
    assert_ne!(first.annotations, second.annotations);
    assert_eq!(first.key_id, second.key_id);
    // Past max_age without a fresh KEK, Encrypt stops.
    sim.driver.remote.set_down(RemoteErrorKind::Unavailable);
    sim.advance(Duration::from_secs(2 * 3600 + 1));
    let r = sim.call(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(&seed(3), "u"),
        Some(APISERVER_TIMEOUT),
    );
    assert_eq!(r.code, Code::Unavailable);
    // Decrypt of cached KEKs keeps working without the remote.
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &first)),
        seed(1)
    );
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &second)),
        seed(2)
    );
}

#[test]
fn two_plugins_same_keyring_agree_and_decrypt_each_other() {
    let mut a = ServiceSim::new(&config(), [1; 32], FakeRemote::new(REMOTE_SEED));
    let mut b = ServiceSim::new(&config(), [2; 32], FakeRemote::new(REMOTE_SEED));
    a.drive();
    b.drive();
    let (sa, sb) = (status(&mut a), status(&mut b));
    assert_eq!(sa.key_id, sb.key_id);
    let ea = encrypt(&mut a, &seed(1));
    let eb = encrypt(&mut b, &seed(2));
    assert_ne!(ea.annotations, eb.annotations, "independent local KEKs");
    assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut b, &ea)), seed(1));
    assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut a, &eb)), seed(2));
    let ca = msg::decode_v1_cipher(&a.call(msg::V1_ENCRYPT, msg::v1_encrypt(b"dek-a"), None));
    let cb = msg::decode_v1_cipher(&b.call(msg::V1_ENCRYPT, msg::v1_encrypt(b"dek-b"), None));
    assert_eq!(
        msg::decode_v1_plain(&b.call(msg::V1_DECRYPT, msg::v1_decrypt(&ca), None)),
        b"dek-a"
    );
    assert_eq!(
        msg::decode_v1_plain(&a.call(msg::V1_DECRYPT, msg::v1_decrypt(&cb), None)),
        b"dek-b"
    );
    assert_eq!(a.driver.remote.calls.unwrap, 1);
    assert_eq!(b.driver.remote.calls.unwrap, 1);
}

#[test]
fn late_and_duplicate_remote_replies() {
    let encs = foreign_ciphertexts(1);
    let mut sim = started(&config());
    // Duplicate: the start-up status (op 0) was answered already.
    let dup = sim.service.handle_remote(
        OpId(0),
        Ok(RemoteReply::Status { key_id: "x".into() }),
        sim.now,
    );
    assert_eq!(dup, Err(UsageError::DuplicateRemoteReply(OpId(0))));
    let unknown = sim.service.handle_remote(
        OpId(1_000_000),
        Err(RemoteError::new(RemoteErrorKind::Other, "?")),
        sim.now,
    );
    assert_eq!(unknown, Err(UsageError::UnknownRemoteOp(OpId(1_000_000))));
    // Late: the unwrap's reply arrives after the core gave up on it.
    sim.driver.remote.latency = Duration::from_secs(5);
    let s = sim.send(
        msg::V2_DECRYPT,
        msg::v2_decrypt(&encs[0], "u"),
        Some(APISERVER_TIMEOUT),
    );
    sim.drive();
    let (r, _) = sim.take(s).expect("answered");
    assert_eq!(r.code, Code::Unavailable);
    let late_id = *sim
        .driver
        .cancelled
        .last()
        .expect("the unwrap was cancelled");
    assert!(
        sim.usage_errors.is_empty(),
        "a late reply is not a usage error"
    );
    assert!(
        sim.events
            .contains(&Event::LateRemoteReplyDropped { id: late_id })
    );
    // Health survived: statuses are fine.
    assert_eq!(status(&mut sim).healthz, "ok");
    // A second reply to the same late op is now a duplicate.
    let again = sim.service.handle_remote(
        late_id,
        Err(RemoteError::new(RemoteErrorKind::Timeout, "late")),
        sim.now,
    );
    assert_eq!(again, Err(UsageError::DuplicateRemoteReply(late_id)));
}

#[test]
fn mismatched_reply_kind_is_a_usage_error_and_fails_the_op() {
    let encs = foreign_ciphertexts(1);
    let mut sim = started(&config());
    sim.driver.remote.never_reply = true;
    let s = sim.send(
        msg::V2_DECRYPT,
        msg::v2_decrypt(&encs[0], "u"),
        Some(APISERVER_TIMEOUT),
    );
    let id = *sim.driver.issued.last().unwrap();
    let r = sim
        .service
        .handle_remote(id, Ok(RemoteReply::Status { key_id: "k".into() }), sim.now);
    assert_eq!(r, Err(UsageError::MismatchedRemoteReply(id)));
    sim.step();
    let (resp, _) = sim.take(s).expect("answered at once");
    assert_ne!(resp.code, Code::Ok);
}

#[test]
fn parked_cap_is_resource_exhausted() {
    let encs = foreign_ciphertexts(15);
    let mut cfg = config();
    cfg.max_parked_requests = 10;
    let mut sim = started(&cfg);
    sim.driver.remote.latency = Duration::from_millis(500);
    let streams: Vec<_> = encs
        .iter()
        .map(|e| {
            sim.send(
                msg::V2_DECRYPT,
                msg::v2_decrypt(e, "u"),
                Some(APISERVER_TIMEOUT),
            )
        })
        .collect();
    let refused: Vec<_> = streams.iter().filter_map(|s| sim.take(*s)).collect();
    assert_eq!(refused.len(), 5);
    assert!(
        refused
            .iter()
            .all(|(r, _)| r.code == Code::ResourceExhausted)
    );
    sim.drive();
    let ok = streams
        .iter()
        .filter_map(|s| sim.take(*s))
        .filter(|(r, _)| r.code == Code::Ok)
        .count();
    assert_eq!(ok, 10);
    assert_eq!(sim.driver.remote.calls.unwrap, 1);
}

#[test]
fn cancelled_and_disconnected_requests_are_dropped_but_the_unwrap_fills_the_cache() {
    let encs = foreign_ciphertexts(2);
    let mut sim = started(&config());
    let s1 = sim.send(
        msg::V2_DECRYPT,
        msg::v2_decrypt(&encs[0], "u"),
        Some(APISERVER_TIMEOUT),
    );
    let s2 = sim.send_on(
        ConnId(5),
        msg::V2_DECRYPT,
        msg::v2_decrypt(&encs[1], "u"),
        Some(APISERVER_TIMEOUT),
    );
    assert_eq!(sim.service.parked_requests(), 2);
    sim.service.handle_cancel(ConnId(0), s1);
    sim.service.handle_conn_closed(ConnId(5));
    assert_eq!(sim.service.parked_requests(), 0);
    sim.drive();
    assert!(sim.take(s1).is_none());
    assert!(sim.take_on(ConnId(5), s2).is_none());
    assert_eq!(
        sim.driver.remote.calls.unwrap, 1,
        "same local KEK: one unwrap"
    );
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &encs[0])),
        seed(0)
    );
    assert_eq!(
        sim.driver.remote.calls.unwrap, 1,
        "the cancelled request's unwrap was cached"
    );
}

#[test]
fn status_goes_stale_without_remote_answers() {
    let cfg = config();
    let mut sim = started(&cfg);
    sim.driver.remote.never_reply = true;
    sim.advance(cfg.status_staleness + cfg.status_refresh_interval * 2);
    let s = status(&mut sim);
    assert_ne!(s.healthz, "ok");
    // The key id is still advertised (Encrypt still works with the installed KEK).
    assert!(!s.key_id.is_empty());
}

#[test]
fn too_many_remote_ops_in_flight_is_unavailable() {
    let encs: Vec<_> = (0..6u8)
        .map(|i| {
            // Distinct local KEKs: each plugin instance wraps its own.
            let mut o = ServiceSim::new(&config(), [100 + i; 32], FakeRemote::new(REMOTE_SEED));
            o.drive();
            encrypt(&mut o, &seed(u32::from(i)))
        })
        .collect();
    let mut cfg = config();
    cfg.max_in_flight_remote = 3;
    let mut sim = started(&cfg);
    sim.driver.remote.latency = Duration::from_millis(500);
    let streams: Vec<_> = encs
        .iter()
        .map(|e| {
            sim.send(
                msg::V2_DECRYPT,
                msg::v2_decrypt(e, "u"),
                Some(APISERVER_TIMEOUT),
            )
        })
        .collect();
    sim.drive();
    let codes: Vec<Code> = streams
        .iter()
        .map(|s| sim.take(*s).unwrap().0.code)
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Code::Ok).count(),
        3,
        "{codes:?}"
    );
    assert_eq!(codes.iter().filter(|c| **c == Code::Unavailable).count(), 3);
}

#[test]
fn idle_timers_poll_status_on_schedule_and_never_spin() {
    let cfg = config();
    let mut sim = started(&cfg);
    let before = sim.driver.remote.calls.status;
    sim.advance(Duration::from_secs(3600));
    let polls = sim.driver.remote.calls.status - before;
    assert!((359..=361).contains(&polls), "{polls}");
    assert_eq!(sim.driver.remote.calls.wrap, 1);
    // Spurious timeouts change nothing.
    let events = sim.events.len();
    for _ in 0..100 {
        sim.service.handle_timeout(sim.now);
    }
    sim.step();
    assert_eq!(sim.events.len(), events);
    let next = sim
        .service
        .poll_timeout()
        .expect("the status timer is armed");
    assert!(next > sim.now);
}

#[test]
fn wrapped_digest_matches_the_hash_for_current_and_other_blobs() {
    let mut sim = started(&config());
    let _ = status(&mut sim);
    let ks = sim.service.keystore();
    let cur = ks.current().expect("a local KEK after start");
    let hash = kms_plugin_core::envelope::wrapped_kek_digest;
    assert_eq!(ks.wrapped_digest(cur.wrapped()), hash(cur.wrapped()));
    assert_eq!(&ks.wrapped_digest(cur.wrapped()), cur.digest());
    let mut other = cur.wrapped().to_vec();
    other[0] ^= 1;
    assert_eq!(ks.wrapped_digest(&other), hash(&other));
    assert_ne!(ks.wrapped_digest(&other), *cur.digest());
    assert_eq!(ks.wrapped_digest(b""), hash(b""));
}
