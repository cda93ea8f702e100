//! gRPC length-prefixed messages (gRPC `PROTOCOL-HTTP2.md`: 1-byte compressed flag, 4-byte
//! length, message) carrying arbitrary v1/v2 KMS request bytes, through the KMS services with
//! a fake remote KEK (`kms_plugin_testkit::service_sim`).
//!
//! Input: `(selector | timeout | flag | u32-be len | message)*`. `selector` picks the method
//! (six KMS methods and one unknown) and, in its high bits, whether the remote fails the next
//! operation and whether to let the simulation run to quiescence before the next request.
//!
//! Checks: no panic; every request is answered exactly once; an OK answer carries a body that
//! decodes as that method's response with the apiserver's constraints (Status healthz and
//! key_id, Encrypt ciphertext 1..=1024 bytes and key_id equal to Status's); an error carries
//! no body.
#![no_main]

use core::time::Duration;

use kms_plugin_core::config::KmsConfig;
use kms_plugin_core::effect::RemoteErrorKind;
use kms_plugin_core::rpc::Code;
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_testkit::service_sim::ServiceSim;
use kms_plugin_fuzz::{PATHS, msg};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Longest message taken from the input (the transport caps real ones far lower).
const MAX_MESSAGE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut sim = ServiceSim::new(&KmsConfig::default(), [1; 32], FakeRemote::new([2; 32]));
    let mut rest = data;
    let mut sent = Vec::new();
    while let [selector, timeout, flag, l0, l1, l2, l3, tail @ ..] = rest {
        let len = (u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize)
            .min(tail.len())
            .min(MAX_MESSAGE);
        let (message, tail) = tail.split_at(len);
        rest = tail;
        if *flag != 0 {
            // Compressed messages are refused by the transport (no grpc-encoding is
            // negotiated); they never reach the services.
            continue;
        }
        let method = usize::from(selector & 7) % PATHS.len();
        if selector & 0x40 != 0 {
            sim.driver.remote.fail_next(1, RemoteErrorKind::Unavailable);
        }
        let timeout = match timeout % 4 {
            0 => None,
            1 => Some(Duration::from_millis(1)),
            2 => Some(Duration::from_secs(3)),
            _ => Some(Duration::ZERO),
        };
        let stream = sim.send(PATHS[method], message.to_vec(), timeout);
        sent.push((stream, method));
        if selector & 0x80 != 0 {
            sim.drive();
        }
    }
    sim.drive();
    let mut status_key = None;
    let mut encrypt_keys = Vec::new();
    for (stream, method) in sent {
        let (resp, _) = sim.take(stream).expect("every request is answered");
        if resp.code != Code::Ok {
            assert!(resp.body.is_none(), "error with a body");
            continue;
        }
        let body = resp.body.as_ref().expect("OK carries a body");
        let body = body.expose();
        match method {
            0 => {
                let s = msg::StatusResponse::decode(body).expect("StatusResponse");
                assert!(s.version == "v2" || s.version == "v2beta1");
                // Before the first remote Status there is no key id: healthz then says why.
                assert!(s.key_id.len() <= 1024);
                if s.healthz == "ok" {
                    assert!(!s.key_id.is_empty(), "healthy Status without key_id");
                }
                if !s.key_id.is_empty() {
                    status_key = Some(s.key_id);
                }
            }
            1 => {
                let e = msg::EncryptResponse::decode(body).expect("EncryptResponse");
                assert!(!e.ciphertext.is_empty() && e.ciphertext.len() <= 1024);
                assert!(!e.key_id.is_empty() && e.key_id.len() <= 1024);
                encrypt_keys.push(e.key_id);
            }
            2 => {
                msg::DecryptResponse::decode(body).expect("DecryptResponse");
            }
            4 => {
                let e = msg::V1EncryptResponse::decode(body).expect("v1 EncryptResponse");
                assert!(!e.cipher.is_empty() && e.cipher.len() <= 65_535);
            }
            5 => {
                msg::V1DecryptResponse::decode(body).expect("v1 DecryptResponse");
            }
            _ => {}
        }
    }
    assert_eq!(sim.pending_answers(), 0, "answers for requests never sent");
    // The fake remote never rotates here, so every Encrypt names the key Status names.
    if let Some(k) = status_key {
        assert!(
            encrypt_keys.iter().all(|e| *e == k),
            "Encrypt and Status key ids differ"
        );
    }
});
