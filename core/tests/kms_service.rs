//! KMS v1 + v2 services over decoded requests: dispatch, round trips, validation rules,
//! malformed input and opaque failures (virtual clock, fixed seeds).

mod common;

use common::{APISERVER_TIMEOUT, config, decrypt, encrypt, seed, started, status};
use kms_plugin_core::config::StatusVersion;
use kms_plugin_core::event::Event;
use kms_plugin_core::ids::Method;
use kms_plugin_core::rpc::Code;
use kms_plugin_proto::v1beta1;
use kms_plugin_testkit::kms_messages as msg;

#[test]
fn status_is_healthy_after_start_and_names_the_remote_key() {
    let mut sim = started(&config());
    let s = status(&mut sim);
    assert_eq!(s.version, "v2");
    assert_eq!(s.healthz, "ok");
    assert_eq!(s.key_id, sim.driver.remote.current_key_id());
    assert_eq!(sim.driver.remote.calls.status, 1);
    assert_eq!(sim.driver.remote.calls.wrap, 1);
    // Status is answered locally: no further remote call.
    for _ in 0..100 {
        status(&mut sim);
    }
    assert_eq!(sim.driver.remote.calls.status, 1);
}

#[test]
fn status_before_first_remote_answer_is_not_ok_and_has_no_key_id() {
    let mut sim = kms_plugin_testkit::service_sim::ServiceSim::new(
        &config(),
        common::PLUGIN_SEED,
        kms_plugin_testkit::fake_remote::FakeRemote::new(common::REMOTE_SEED),
    );
    let s = sim.send(msg::V2_STATUS, msg::v2_status(), None);
    let (r, _) = sim.take(s).expect("status is answered at once");
    let s = msg::decode_status(&r);
    assert_ne!(s.healthz, "ok");
    assert_eq!(s.key_id, "");
}

#[test]
fn status_version_is_configurable_and_constant() {
    let mut cfg = config();
    cfg.status_version = StatusVersion::V2Beta1;
    let mut sim = started(&cfg);
    for _ in 0..3 {
        assert_eq!(status(&mut sim).version, "v2beta1");
        sim.driver.remote.rotate();
        sim.advance(cfg.status_refresh_interval * 2);
    }
}

#[test]
fn v2_round_trip_returns_the_exact_seed_and_randomises() {
    let mut sim = started(&config());
    let a = encrypt(&mut sim, &seed(1));
    let b = encrypt(&mut sim, &seed(1));
    assert_ne!(a.ciphertext, b.ciphertext, "encryption must be randomised");
    assert_eq!(a.key_id, status(&mut sim).key_id);
    for enc in [&a, &b] {
        let r = decrypt(&mut sim, enc);
        assert_eq!(msg::decode_v2_plaintext(&r), seed(1));
    }
    // Own current KEK: no remote unwrap.
    assert_eq!(sim.driver.remote.calls.unwrap, 0);
}

#[test]
fn v2_request_uid_is_reported_for_correlation() {
    let mut sim = started(&config());
    sim.call(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(&seed(2), "9f1c-uid"),
        Some(APISERVER_TIMEOUT),
    );
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::RequestCompleted { method: Method::V2Encrypt, code: Code::Ok, uid: Some(u), .. } if u == "9f1c-uid"
    )));
}

#[test]
fn v1_version_encrypt_decrypt_round_trip() {
    let mut sim = started(&config());
    let r = sim.call(msg::V1_VERSION, msg::v1_version(), None);
    let v: v1beta1::VersionResponse = msg::decode_ok(&r);
    assert_eq!(v.version, "v1beta1");
    assert_eq!(v.runtime_name, "kms-plugin");
    assert!(!v.runtime_version.is_empty());
    for plain in [&b"ping"[..], &seed(3)[..], &[][..]] {
        let r = sim.call(msg::V1_ENCRYPT, msg::v1_encrypt(plain), None);
        let cipher = msg::decode_v1_cipher(&r);
        let r = sim.call(msg::V1_DECRYPT, msg::v1_decrypt(&cipher), None);
        assert_eq!(msg::decode_v1_plain(&r), plain);
    }
}

#[test]
fn v1_version_answers_v1beta1_whatever_was_asked() {
    let mut sim = started(&config());
    let req = prost::Message::encode_to_vec(&v1beta1::VersionRequest {
        version: "v9".into(),
    });
    let v: v1beta1::VersionResponse = msg::decode_ok(&sim.call(msg::V1_VERSION, req, None));
    assert_eq!(v.version, "v1beta1");
}

#[test]
fn v1_requests_with_another_version_are_refused() {
    let mut sim = started(&config());
    let req = prost::Message::encode_to_vec(&v1beta1::EncryptRequest {
        version: "v2".into(),
        plain: bytes::Bytes::from_static(b"x"),
    });
    assert_eq!(
        sim.call(msg::V1_ENCRYPT, req, None).code,
        Code::InvalidArgument
    );
}

#[test]
fn unknown_method_is_unimplemented() {
    let mut sim = started(&config());
    for path in [
        "/v2.KeyManagementService/Rotate",
        "/v2alpha1.KeyManagementService/Status",
        "/grpc.health.v1.Health/Check",
        "",
    ] {
        let r = sim.call(path, msg::v2_status(), None);
        assert_eq!(r.code, Code::Unimplemented, "{path}");
        assert!(r.body.is_none());
    }
}

#[test]
fn malformed_protobuf_is_invalid_argument() {
    let mut sim = started(&config());
    // A truncated length-delimited field, and an invalid wire type.
    for garbage in [vec![0x0a, 0x05, 0x01], vec![0x0f], vec![0xff; 11]] {
        for path in [
            msg::V2_STATUS,
            msg::V2_ENCRYPT,
            msg::V2_DECRYPT,
            msg::V1_VERSION,
            msg::V1_ENCRYPT,
            msg::V1_DECRYPT,
        ] {
            let r = sim.call(path, garbage.clone(), None);
            assert_eq!(r.code, Code::InvalidArgument, "{path} {garbage:?}");
        }
    }
}

#[test]
fn v2_decrypt_input_checks() {
    let mut sim = started(&config());
    let enc = encrypt(&mut sim, &seed(4));
    let mut no_key = enc.clone();
    no_key.key_id.clear();
    let mut long_key = enc.clone();
    long_key.key_id = "k".repeat(1025);
    let mut no_ann = enc.clone();
    no_ann.annotations.clear();
    let mut empty_ct = enc.clone();
    empty_ct.ciphertext = bytes::Bytes::new();
    for bad in [no_key, long_key, no_ann, empty_ct] {
        assert_eq!(decrypt(&mut sim, &bad).code, Code::InvalidArgument);
    }
}

#[test]
fn tampering_fails_opaquely() {
    let mut sim = started(&config());
    let enc = encrypt(&mut sim, &seed(5));
    let other = {
        // A ciphertext under a different local KEK (after a usage rotation).
        let mut cfg = config();
        cfg.suggested_uses = 1;
        cfg.max_uses = 2;
        let mut s2 = started(&cfg);
        encrypt(&mut s2, &seed(6));
        s2.drive();
        encrypt(&mut s2, &seed(6))
    };
    let mut cases = Vec::new();
    for i in [0, enc.ciphertext.len() / 2, enc.ciphertext.len() - 1] {
        let mut c = enc.clone();
        let mut ct = c.ciphertext.to_vec();
        ct[i] ^= 0x01;
        c.ciphertext = ct.into();
        cases.push(c);
    }
    let mut truncated = enc.clone();
    truncated.ciphertext = enc.ciphertext.slice(..enc.ciphertext.len() - 1);
    cases.push(truncated);
    let mut short = enc.clone();
    short.ciphertext = enc.ciphertext.slice(..1);
    cases.push(short);
    let mut swapped_ann = enc.clone();
    swapped_ann.annotations = other.annotations.clone();
    cases.push(swapped_ann);
    let mut tampered_ann = enc.clone();
    for v in tampered_ann.annotations.values_mut() {
        let mut b = v.to_vec();
        if let Some(x) = b.last_mut() {
            *x ^= 1;
        }
        *v = b.into();
    }
    cases.push(tampered_ann);
    let mut swapped_key = enc.clone();
    swapped_key.key_id = "some-other-key".into();
    cases.push(swapped_key);
    for (i, c) in cases.iter().enumerate() {
        let r = decrypt(&mut sim, c);
        assert_eq!(r.code, Code::InvalidArgument, "case {i}: {}", r.message);
        assert_eq!(r.message, "decryption failed", "case {i}");
        assert!(r.body.is_none());
    }
    // The original still decrypts.
    assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut sim, &enc)), seed(5));
}

#[test]
fn v1_tampering_fails_opaquely() {
    let mut sim = started(&config());
    let r = sim.call(msg::V1_ENCRYPT, msg::v1_encrypt(&seed(7)), None);
    let cipher = msg::decode_v1_cipher(&r);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for i in [0, cipher.len() / 2, cipher.len() - 1] {
        let mut c = cipher.clone();
        c[i] ^= 0x80;
        cases.push(c);
    }
    cases.push(cipher[..cipher.len() - 1].to_vec());
    cases.push(cipher[..3].to_vec());
    cases.push(Vec::new());
    for (i, c) in cases.iter().enumerate() {
        let r = sim.call(msg::V1_DECRYPT, msg::v1_decrypt(c), None);
        assert_ne!(r.code, Code::Ok, "case {i}");
        assert!(
            r.message == "decryption failed" || r.code == Code::FailedPrecondition,
            "case {i}: {:?} {}",
            r.code,
            r.message
        );
    }
}

#[test]
fn v2_encrypt_refuses_empty_and_oversized_plaintext() {
    let mut sim = started(&config());
    for plain in [vec![], vec![0u8; 2000]] {
        let r = sim.call(
            msg::V2_ENCRYPT,
            msg::v2_encrypt(&plain, "u"),
            Some(APISERVER_TIMEOUT),
        );
        assert_eq!(r.code, Code::InvalidArgument, "{} bytes", plain.len());
    }
    // The largest plaintext that fits still gives a ciphertext the apiserver accepts.
    let mut n = 32;
    loop {
        let r = sim.call(
            msg::V2_ENCRYPT,
            msg::v2_encrypt(&vec![1u8; n + 1], "u"),
            Some(APISERVER_TIMEOUT),
        );
        if r.code != Code::Ok {
            break;
        }
        msg::decode_v2_encrypt(&r);
        n += 1;
    }
    assert!(n > 32);
}

#[test]
fn events_never_carry_plaintext() {
    let mut sim = started(&config());
    let secret = *b"TOP-SECRET-SEED-0123456789abcdef";
    let enc = encrypt(&mut sim, &secret);
    assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut sim, &enc)), secret);
    let r = sim.call(msg::V1_ENCRYPT, msg::v1_encrypt(&secret), None);
    let c = msg::decode_v1_cipher(&r);
    let r = sim.call(msg::V1_DECRYPT, msg::v1_decrypt(&c), None);
    assert_eq!(msg::decode_v1_plain(&r), secret);
    let all = format!("{:?}", sim.events);
    assert!(!all.contains("TOP-SECRET"), "{all}");
    assert!(!all.contains(&format!("{:?}", &secret[..8])));
    assert!(sim.events.len() > 8);
}

#[test]
fn hand_encoded_status_is_byte_identical_to_prost() {
    let mut sim = started(&config());
    let r = sim.call(msg::V2_STATUS, msg::v2_status(), None);
    let raw = r.body.as_ref().expect("body").expose().to_vec();
    let decoded = msg::decode_status(&r);
    assert_eq!(prost::Message::encode_to_vec(&decoded), raw);
}

#[test]
fn random_and_mutated_messages_never_panic_and_always_get_an_answer() {
    use kms_plugin_core::rng::Rng;
    let mut sim = started(&config());
    let mut rng = Rng::from_seed([3; 32]);
    let enc = encrypt(&mut sim, &seed(1));
    let v1 = msg::decode_v1_cipher(&sim.call(msg::V1_ENCRYPT, msg::v1_encrypt(&seed(2)), None));
    let valid = [
        (msg::V2_STATUS, msg::v2_status()),
        (msg::V2_ENCRYPT, msg::v2_encrypt(&seed(3), "u")),
        (msg::V2_DECRYPT, msg::v2_decrypt(&enc, "u")),
        (msg::V1_VERSION, msg::v1_version()),
        (msg::V1_ENCRYPT, msg::v1_encrypt(&seed(4))),
        (msg::V1_DECRYPT, msg::v1_decrypt(&v1)),
    ];
    for round in 0..3000u32 {
        let (path, base) = &valid[(rng.next_u64() % valid.len() as u64) as usize];
        let mut m = base.clone();
        match rng.next_u64() % 4 {
            0 => {
                // Random bytes.
                let n = (rng.next_u64() % 64) as usize;
                m = (0..n).map(|_| rng.next_u64() as u8).collect();
            }
            1 if !m.is_empty() => {
                let i = (rng.next_u64() % m.len() as u64) as usize;
                m[i] ^= 1 << (rng.next_u64() % 8);
            }
            2 if !m.is_empty() => m.truncate((rng.next_u64() % m.len() as u64) as usize),
            _ => m.extend((0..(rng.next_u64() % 8)).map(|_| rng.next_u64() as u8)),
        }
        let r = sim.call(path, m, Some(APISERVER_TIMEOUT));
        if r.code == Code::Ok {
            assert!(r.body.is_some(), "round {round}");
        } else {
            assert!(r.body.is_none());
            assert!(!r.message.is_empty());
        }
    }
    // Still healthy and consistent.
    assert_eq!(status(&mut sim).healthz, "ok");
    assert_eq!(msg::decode_v2_plaintext(&decrypt(&mut sim, &enc)), seed(1));
}

/// `ids::Method` and the gRPC paths it routes by.
mod method_paths {
    use kms_plugin_core::ids::*;

    #[test]
    fn paths_round_trip() {
        for (m, p) in Method::ALL {
            assert_eq!(Method::from_path(p), m);
            assert_eq!(m.path(), Some(p));
        }
        for bad in [
            "",
            "/",
            "/v2.KeyManagementService/status",
            "/v2alpha1.KeyManagementService/Status",
            "/v2.KeyManagementService/Status/",
            "v2.KeyManagementService/Status",
        ] {
            assert_eq!(Method::from_path(bad), Method::Unknown, "{bad}");
        }
        assert_eq!(Method::Unknown.path(), None);
    }
}
