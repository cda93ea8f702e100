//! Writes the checked-in seed corpus (`fuzz/corpus/<target>/`) from the project's own test
//! vectors. Run from `fuzz/`: `cargo run --example gen_corpus` (stable is enough). Seeds are
//! named by content hash, so re-running is idempotent.

use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    dir
}

/// FNV-1a, enough to name seeds stably.
fn name_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("seed-{h:016x}")
}

fn write_seed(target: &str, bytes: &[u8]) {
    fs::write(corpus_dir(target).join(name_of(bytes)), bytes).expect("write seed");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Every `"wire": "<hex>"` of a hpack-test-case story, in order (no JSON dependency needed).
fn story_wires(json: &str) -> Vec<Vec<u8>> {
    json.split("\"wire\"")
        .skip(1)
        .filter_map(|s| s.split('"').nth(1).map(unhex))
        .collect()
}

/// hpack_decode: `config | (u16 len | block)*`, one seed per story (first 8 blocks), with the
/// default table size, plus the small-table variant of a few.
fn hpack_seeds(testdata: &Path) -> usize {
    let mut n = 0;
    let mut dirs: Vec<_> = fs::read_dir(testdata)
        .expect("core/testdata/hpack")
        .flatten()
        .collect();
    dirs.sort_by_key(fs::DirEntry::path);
    for dir in dirs.iter().filter(|d| d.path().is_dir()) {
        let mut stories: Vec<_> = fs::read_dir(dir.path())
            .expect("story dir")
            .flatten()
            .collect();
        stories.sort_by_key(fs::DirEntry::path);
        for (i, story) in stories.iter().enumerate().filter(|(i, _)| i % 4 == 0) {
            let json = fs::read_to_string(story.path()).expect("story");
            let wires = story_wires(&json);
            if wires.is_empty() {
                continue;
            }
            for config in [0u8, if i % 8 == 0 { 1 | 4 | 8 } else { 8 }] {
                let mut seed = vec![config];
                for w in wires.iter().take(8) {
                    seed.extend_from_slice(&(w.len() as u16).to_be_bytes());
                    seed.extend_from_slice(w);
                }
                write_seed("hpack_decode", &seed);
                n += 1;
            }
        }
    }
    n
}

/// A `u8`-length-prefixed field, as the targets' `take` reads it.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// envelope_open: real ciphertexts for the open modes, part lists for the seal-and-edit
/// modes, and our own annotations.
fn envelope_seeds() -> usize {
    use kms_plugin_core::annotations::{FORMAT_KEY, FORMAT_VALUE_V1, WRAPPED_KEK_KEY};
    use kms_plugin_core::envelope::{seal_v1, seal_v2};
    use kms_plugin_core::rng::Rng;
    use kms_plugin_core::secret::Secret32;

    let kek = Secret32::from_bytes([0x42; 32]);
    let mut rng = Rng::from_seed([1; 32]);
    let wrapped: Vec<u8> = (0..60).collect();
    let mut seeds = Vec::new();
    for plaintext in [&[0x5a; 32][..], b"ping"] {
        let v2 = seal_v2(&kek, "key-1", &wrapped, plaintext, &mut rng).expect("seal v2");
        let mut s = vec![0];
        field(&mut s, b"key-1");
        field(&mut s, &wrapped);
        s.extend_from_slice(&v2);
        seeds.push(s);
        let mut s = vec![1];
        s.extend(seal_v1(&kek, "key-1", &wrapped, plaintext, &mut rng).expect("seal v1"));
        seeds.push(s);
        for mode in [2u8, 3] {
            for edits in [&[][..], &[0, 3, 0x11][..], &[1, 2, 0][..], &[2, 0, 7][..]] {
                let mut s = vec![mode];
                field(&mut s, b"key-1");
                field(&mut s, &wrapped);
                field(&mut s, plaintext);
                if mode == 2 {
                    field(&mut s, &[edits.len() as u8 % 3]);
                }
                s.extend_from_slice(edits);
                seeds.push(s);
            }
        }
    }
    let mut s = vec![4];
    field(&mut s, WRAPPED_KEK_KEY.as_bytes());
    field(&mut s, &wrapped);
    field(&mut s, FORMAT_KEY.as_bytes());
    field(&mut s, FORMAT_VALUE_V1);
    seeds.push(s);
    for s in &seeds {
        write_seed("envelope_open", s);
    }
    seeds.len()
}

/// keyring_parse: real keyring files (one and several names and versions), plus a wrapped
/// blob under the current key id.
fn keyring_seeds() -> usize {
    use kms_plugin_core::keyring::Keyring;
    use kms_plugin_core::secret::Secret32;

    let mut ring = Keyring::new();
    let mut seeds = Vec::new();
    for (i, name) in ["default", "default", "k8s-kms.prod_1", "default"]
        .iter()
        .enumerate()
    {
        ring.add_key(name, Secret32::from_bytes([i as u8 + 1; 32]))
            .expect("add key");
        seeds.push(ring.serialize().to_vec());
    }
    let id = ring.current_key_id("default").expect("key id");
    let wrapped = ring
        .wrap(&id, &Secret32::from_bytes([9; 32]), [3; 12])
        .expect("wrap");
    let mut s = ring.serialize().to_vec();
    s.extend_from_slice(&[0xff, 0]);
    s.extend_from_slice(id.as_bytes());
    s.extend_from_slice(&[0xff, 0]);
    s.extend_from_slice(&wrapped);
    seeds.push(s);
    seeds.push(b"kms-plugin-keyring v1\n# empty\n".to_vec());
    for s in &seeds {
        write_seed("keyring_parse", s);
    }
    seeds.len()
}

/// h2_frames: byte streams the in-memory `TestClient` writes (every KMS method, both
/// `:authority` forms, a cancellation), cut into the target's `op | len | chunk` records with
/// an answer (`op 3`) after each request.
fn h2_seeds() -> usize {
    use kms_plugin_testkit::client::{RequestOptions, TestClient};
    use kms_plugin_fuzz::PATHS;

    let mut n = 0;
    let authorities = ["localhost", "%2Fvar%2Frun%2Fkms.sock", "@kms-foo"];
    for (i, path) in PATHS.iter().enumerate() {
        let mut client = TestClient::connecting();
        let opts = RequestOptions::apiserver(
            authorities[i % authorities.len()],
            std::time::Duration::from_secs(3),
        );
        let (stream, mut bytes) = client.unary(path, &[0x0a, 0x04, b'p', b'i', b'n', b'g'], &opts);
        if i == 2 {
            bytes.extend(client.cancel(stream, 0x8)); // CANCEL
        }
        let mut seed = vec![0u8];
        for chunk in bytes.chunks(200 - i * 10) {
            seed.extend_from_slice(&[0, chunk.len() as u8]);
            seed.extend_from_slice(chunk);
        }
        seed.extend_from_slice(&[3, 4, 1, 2, 3, 4]);
        seed.extend_from_slice(&[4, 100]);
        write_seed("h2_frames", &seed);
        n += 1;
    }
    n
}

/// grpc_kms_decode: one valid message per method, and Encrypt -> Decrypt chains whose
/// ciphertexts are the ones the target's deterministic simulation produces (same seeds).
fn grpc_kms_seeds() -> usize {
    use core::time::Duration;
    use kms_plugin_core::config::KmsConfig;
    use kms_plugin_testkit::fake_remote::FakeRemote;
    use kms_plugin_testkit::service_sim::ServiceSim;
    use kms_plugin_fuzz::{PATHS, msg};
    use prost::Message;

    fn record(seed: &mut Vec<u8>, method: u8, message: &[u8]) {
        seed.extend_from_slice(&[method | 0x80, 2, 0]);
        seed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        seed.extend_from_slice(message);
    }
    let uid = "6f1c6e1e-4b8e-4bde-9a5f-3f0b1f2f6d11".to_string();
    let v2_enc = msg::EncryptRequest {
        plaintext: vec![0x5a; 32],
        uid: uid.clone(),
    }
    .encode_to_vec();
    let v1_enc = msg::V1EncryptRequest {
        version: "v1beta1".into(),
        plain: vec![0x5a; 32],
    }
    .encode_to_vec();
    let singles: [(u8, Vec<u8>); 6] = [
        (0, Vec::new()),
        (1, v2_enc.clone()),
        (
            2,
            msg::DecryptRequest {
                uid: uid.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (3, b"\x0a\x07v1beta1".to_vec()),
        (4, v1_enc.clone()),
        (
            5,
            msg::V1DecryptRequest {
                version: "v1beta1".into(),
                cipher: vec![1; 80],
            }
            .encode_to_vec(),
        ),
    ];
    let mut n = 0;
    for (m, body) in &singles {
        let mut seed = Vec::new();
        record(&mut seed, *m, body);
        write_seed("grpc_kms_decode", &seed);
        n += 1;
    }
    // Replays what the target does for [Encrypt, drive] to learn the ciphertext it will see.
    let mut sim = ServiceSim::new(&KmsConfig::default(), [1; 32], FakeRemote::new([2; 32]));
    let s1 = sim.send(PATHS[1], v2_enc.clone(), Some(Duration::from_secs(3)));
    sim.drive();
    let s2 = sim.send(PATHS[4], v1_enc.clone(), Some(Duration::from_secs(3)));
    sim.drive();
    let e = sim
        .take(s1)
        .and_then(|(r, _)| r.body)
        .expect("v2 Encrypt answered");
    let e = msg::EncryptResponse::decode(e.expose()).expect("EncryptResponse");
    let c = sim
        .take(s2)
        .and_then(|(r, _)| r.body)
        .expect("v1 Encrypt answered");
    let c = msg::V1EncryptResponse::decode(c.expose()).expect("v1 EncryptResponse");
    let dec = msg::DecryptRequest {
        ciphertext: e.ciphertext,
        uid,
        key_id: e.key_id,
        annotations: e.annotations,
    }
    .encode_to_vec();
    let v1_dec = msg::V1DecryptRequest {
        version: "v1beta1".into(),
        cipher: c.cipher,
    }
    .encode_to_vec();
    // The same simulation, continued, shows the chain really decrypts.
    for (path, body) in [(PATHS[2], &dec), (PATHS[5], &v1_dec)] {
        let s = sim.send(path, body.clone(), Some(Duration::from_secs(3)));
        sim.drive();
        let (r, _) = sim.take(s).expect("Decrypt answered");
        assert_eq!(
            r.code,
            kms_plugin_core::rpc::Code::Ok,
            "{path} of the chain"
        );
    }
    let mut seed = Vec::new();
    record(&mut seed, 1, &v2_enc);
    record(&mut seed, 4, &v1_enc);
    record(&mut seed, 2, &dec);
    record(&mut seed, 5, &v1_dec);
    record(&mut seed, 0, &[]);
    write_seed("grpc_kms_decode", &seed);
    n + 1
}

/// vault_responses: Transit answers as Vault sends them, an error body, a configuration.
fn vault_seeds() -> usize {
    let b64_32 = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=";
    let seeds: Vec<(u8, u16, String)> = vec![
        (0, 200, r#"{"data":{"latest_version":2,"min_decryption_version":1,"type":"aes256-gcm96","keys":{"1":1700000000,"2":1700000100}}}"#.into()),
        (1, 200, r#"{"data":{"ciphertext":"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","key_version":1}}"#.into()),
        (2, 200, format!(r#"{{"data":{{"plaintext":"{b64_32}"}}}}"#)),
        (3, 403, r#"{"errors":["1 error occurred:
	* permission denied

"]}"#.into()),
        (3, 200, r#"{"data":{"transit/encrypt/kms":["update"],"transit/decrypt/kms":["deny"]}}"#.into()),
        (4, 0, "\u{0}vault:v1:AAAA".into()),
        (5, 1, "https://vault.example:8200\u{0}team\u{0}transit\u{0}kms".into()),
    ];
    for (mode, status, body) in &seeds {
        let mut s = vec![*mode];
        s.extend_from_slice(&status.to_be_bytes());
        s.extend_from_slice(body.as_bytes());
        write_seed("vault_responses", &s);
    }
    seeds.len()
}

/// One KMIP response message with one batch item answering `op` (as PyKMIP sends them).
fn kmip_response(
    op: kms_plugin_core::kek::kmip::Operation,
    status: u32,
    body: impl FnOnce(&mut kms_plugin_core::kek::kmip::ttlv::Writer),
) -> Vec<u8> {
    use kms_plugin_core::kek::kmip::tag;
    let mut w = kms_plugin_core::kek::kmip::ttlv::Writer::with_capacity(4096);
    w.structure(tag::RESPONSE_MESSAGE, |w| {
        w.structure(tag::RESPONSE_HEADER, |w| {
            w.structure(tag::PROTOCOL_VERSION, |w| {
                w.integer(tag::PROTOCOL_VERSION_MAJOR, 1);
                w.integer(tag::PROTOCOL_VERSION_MINOR, 4);
            });
            w.date_time(0x42_0092, 1_700_000_000);
            w.integer(tag::BATCH_COUNT, 1);
        });
        w.structure(tag::BATCH_ITEM, |w| {
            w.enumeration(tag::OPERATION, op.code());
            w.enumeration(tag::RESULT_STATUS, status);
            body(w);
        });
    });
    w.finish().expect("seed fits").to_vec()
}

/// kmip_responses: Locate, Get Attributes, Encrypt (GCM and key wrap), Decrypt and failure
/// answers, a response header, a stored blob with its key id.
fn kmip_seeds() -> usize {
    use kms_plugin_core::kek::kmip::{Operation, tag};
    let attr = |w: &mut kms_plugin_core::kek::kmip::ttlv::Writer, name: &str, v: u32| {
        w.structure(tag::ATTRIBUTE, |w| {
            w.text(tag::ATTRIBUTE_NAME, name);
            w.enumeration(tag::ATTRIBUTE_VALUE, v);
        });
    };
    let seeds: Vec<(u8, Vec<u8>)> = vec![
        (0, kmip_response(Operation::Locate, 0, |w| {
            w.structure(tag::RESPONSE_PAYLOAD, |w| {
                w.text(tag::UNIQUE_IDENTIFIER, "1");
                w.text(tag::UNIQUE_IDENTIFIER, "2");
            });
        })),
        (1, kmip_response(Operation::GetAttributes, 0, |w| {
            w.structure(tag::RESPONSE_PAYLOAD, |w| {
                w.text(tag::UNIQUE_IDENTIFIER, "1");
                attr(w, "Object Type", 2);
                attr(w, "State", 2);
                attr(w, "Cryptographic Algorithm", 3);
                w.structure(tag::ATTRIBUTE, |w| {
                    w.text(tag::ATTRIBUTE_NAME, "Initial Date");
                    w.date_time(tag::ATTRIBUTE_VALUE, 1_700_000_000);
                });
                w.structure(tag::ATTRIBUTE, |w| {
                    w.text(tag::ATTRIBUTE_NAME, "Digest");
                    w.structure(tag::ATTRIBUTE_VALUE, |w| {
                        w.enumeration(0x42_0038, 6);
                        w.bytes(tag::DIGEST_VALUE, &[0xab; 32]);
                    });
                });
            });
        })),
        (2, kmip_response(Operation::Encrypt, 0, |w| {
            w.structure(tag::RESPONSE_PAYLOAD, |w| {
                w.text(tag::UNIQUE_IDENTIFIER, "1");
                w.bytes(tag::DATA, &[3; 32]);
                w.bytes(tag::IV_COUNTER_NONCE, &[1; 16]);
                w.bytes(tag::AE_TAG, &[2; 16]);
            });
        })),
        (8, kmip_response(Operation::Encrypt, 0, |w| {
            w.structure(tag::RESPONSE_PAYLOAD, |w| {
                w.text(tag::UNIQUE_IDENTIFIER, "1");
                w.bytes(tag::DATA, &[3; 40]);
            });
        })),
        (3, kmip_response(Operation::Decrypt, 0, |w| {
            w.structure(tag::RESPONSE_PAYLOAD, |w| {
                w.text(tag::UNIQUE_IDENTIFIER, "1");
                w.bytes(tag::DATA, &[5; 32]);
            });
        })),
        (4, kmip_response(Operation::Locate, 1, |w| {
            w.enumeration(tag::RESULT_REASON, 3);
            w.text(tag::RESULT_MESSAGE, "Error verifying the client certificate.");
        })),
        (23, {
            let mut s = b"kmip:1:0011223344556677".to_vec();
            s.push(0x01);
            s.push(12);
            s.extend_from_slice(&[1; 12 + 16 + 32]);
            s
        }),
    ];
    for (mode, body) in &seeds {
        let mut s = vec![*mode];
        s.extend_from_slice(body);
        write_seed("kmip_responses", &s);
    }
    seeds.len()
}

fn main() {
    println!("kmip_responses: {} seeds", kmip_seeds());
    println!("vault_responses: {} seeds", vault_seeds());
    println!("h2_frames: {} seeds", h2_seeds());
    println!("grpc_kms_decode: {} seeds", grpc_kms_seeds());
    println!("keyring_parse: {} seeds", keyring_seeds());
    println!("envelope_open: {} seeds", envelope_seeds());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let n = hpack_seeds(&root.join("core/testdata/hpack"));
    println!("hpack_decode: {n} seeds");
}
