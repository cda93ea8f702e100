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

fn main() {
    println!("keyring_parse: {} seeds", keyring_seeds());
    println!("envelope_open: {} seeds", envelope_seeds());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let n = hpack_seeds(&root.join("core/testdata/hpack"));
    println!("hpack_decode: {n} seeds");
}
