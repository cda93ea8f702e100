//! Keyring codec (docs/keyring-format.md): parse/serialize round trips, stable key_ids,
//! rotation, wrap/unwrap, strict line-numbered errors that never echo key material.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use kms_plugin_core::effect::RemoteErrorKind;
use kms_plugin_core::keyring::{Keyring, KeyringError, WRAPPED_LEN};
use kms_plugin_core::rng::Rng;
use kms_plugin_core::secret::Secret32;
use sha2::{Digest, Sha256};

/// A plain table-driven Base64 encoder (RFC 4648 §4), independent of the crate's.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn key_bytes(seed: u8) -> [u8; 32] {
    core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7))
}

fn line(name: &str, version: u32, key: &[u8]) -> String {
    format!("key {name} {version} {}\n", b64(key))
}

fn sample_text() -> String {
    format!(
        "kms-plugin-keyring v1\n# production keys\n\n{}{}{}",
        line("default", 1, &key_bytes(1)),
        line("default", 2, &key_bytes(2)),
        line("backup", 7, &key_bytes(3)),
    )
}

macro_rules! assert_not_impl {
    ($ty:ty, $trait_:path) => {{
        trait AmbiguousIfImpl<A> {
            fn some_item() {}
        }
        impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
        #[allow(dead_code)]
        struct Invalid;
        impl<T: ?Sized + $trait_> AmbiguousIfImpl<Invalid> for T {}
        let _ = <$ty as AmbiguousIfImpl<_>>::some_item;
    }};
}

#[test]
fn keyring_implements_neither_clone_nor_debug() {
    assert_not_impl!(Keyring, Clone);
    assert_not_impl!(Keyring, core::fmt::Debug);
}

#[test]
fn parses_names_versions_and_current() {
    let k = Keyring::parse(sample_text().as_bytes()).unwrap();
    assert_eq!(k.names().collect::<Vec<_>>(), ["backup", "default"]);
    assert_eq!(k.versions("default").collect::<Vec<_>>(), [1, 2]);
    assert_eq!(k.versions("backup").collect::<Vec<_>>(), [7]);
    assert_eq!(k.versions("nope").count(), 0);
    assert_eq!(k.current_version("default"), Some(2));
    assert_eq!(k.current_version("nope"), None);
    assert_eq!(k.len(), 3);
    assert!(!k.is_empty());
    assert_eq!(k.current_key_id("default"), k.key_id("default", 2));
    assert_eq!(k.key_id("default", 3), None);
}

#[test]
fn header_only_and_lenient_whitespace() {
    let k = Keyring::parse(b"kms-plugin-keyring v1\n").unwrap();
    assert!(k.is_empty());
    assert!(Keyring::parse(b"kms-plugin-keyring v1").unwrap().is_empty());
    // Comments and blank lines before the header; CRLF; tabs and repeated spaces; indented
    // comment; no final newline.
    let text = format!(
        "# my keyring\r\n\r\n  kms-plugin-keyring\tv1 \r\n  # note\r\nkey\tdefault   1 \t{}\r\nkey default 2 {}",
        b64(&key_bytes(1)),
        b64(&key_bytes(2))
    );
    let k = Keyring::parse(text.as_bytes()).unwrap();
    assert_eq!(k.versions("default").collect::<Vec<_>>(), [1, 2]);
    let reference = Keyring::parse(sample_text().as_bytes()).unwrap();
    assert_eq!(k.key_id("default", 2), reference.key_id("default", 2));
}

#[test]
fn serialize_round_trips() {
    let k = Keyring::parse(sample_text().as_bytes()).unwrap();
    let text = k.serialize();
    let again = Keyring::parse(&text).unwrap();
    for name in k.names() {
        assert_eq!(
            k.versions(name).collect::<Vec<_>>(),
            again.versions(name).collect::<Vec<_>>()
        );
        for v in k.versions(name) {
            assert_eq!(k.key_id(name, v), again.key_id(name, v));
        }
    }
    assert_eq!(*again.serialize(), *text);
    // The serialized text is the documented format with the keys in standard Base64.
    let s = String::from_utf8(text.to_vec()).unwrap();
    assert!(s.starts_with("kms-plugin-keyring v2\n"));
    assert!(s.contains(&line("default", 1, &key_bytes(1))));
    assert!(s.contains(&line("default", 2, &key_bytes(2))));
    assert!(s.contains(&line("backup", 7, &key_bytes(3))));
    assert_eq!(
        *Keyring::new().serialize(),
        *Keyring::parse(&Keyring::new().serialize())
            .unwrap()
            .serialize()
    );
}

#[test]
fn base64_matches_reference_for_many_keys() {
    let mut rng = Rng::from_seed([9; 32]);
    let mut built = Keyring::new();
    let mut text = String::from("kms-plugin-keyring v1\n");
    let mut raw = Vec::new();
    for i in 0..300u32 {
        let bytes: [u8; 32] = rng.array();
        text.push_str(&line("k", i + 1, &bytes));
        assert_eq!(
            built.add_key("k", Secret32::from_bytes(bytes)).unwrap(),
            i + 1
        );
        raw.push(bytes);
    }
    // Crate encoder == reference encoder; crate decoder reads the reference text to the same
    // bytes (same key_ids, which hash the key bytes).
    assert_eq!(
        String::from_utf8(built.serialize().to_vec())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("key "))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
        text.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n"
    );
    let parsed = Keyring::parse(text.as_bytes()).unwrap();
    for v in 1..=300 {
        assert_eq!(parsed.key_id("k", v), built.key_id("k", v));
    }
    // And the decoded bytes really are the key: a blob wrapped by the parsed keyring opens
    // with AES-256-GCM under the raw bytes.
    let id = parsed.key_id("k", 5).unwrap();
    let wrapped = parsed
        .wrap(&id, &Secret32::from_bytes([0x42; 32]), [3; 12])
        .unwrap();
    let cipher = Aes256Gcm::new_from_slice(&raw[4]).unwrap();
    let mut aad = b"kms-plugin/keyring-wrap/v1\0".to_vec();
    aad.extend_from_slice(id.as_bytes());
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&wrapped[1..13]),
            aes_gcm::aead::Payload {
                msg: &wrapped[13..],
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(plain, [0x42; 32]);
}

#[test]
fn key_id_is_stable_public_and_well_formed() {
    let a = Keyring::parse(sample_text().as_bytes()).unwrap();
    let b = Keyring::parse(sample_text().as_bytes()).unwrap();
    let id = a.key_id("default", 2).unwrap();
    assert_eq!(Some(id.clone()), b.key_id("default", 2));
    // local:<name>:v<version>:<16 lowercase hex>
    let fields: Vec<&str> = id.split(':').collect();
    assert_eq!(fields.len(), 4, "{id}");
    assert_eq!(&fields[..3], ["local", "default", "v2"]);
    assert_eq!(fields[3].len(), 16);
    assert!(
        fields[3]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
    assert!(!id.contains(&b64(&key_bytes(2))));
    // Golden: pins the key_id derivation (changing it would change every deployed key_id).
    assert_eq!(id, GOLDEN_KEY_ID);
    // ... and it is the documented derivation (docs/keyring-format.md), computed here.
    let mut h = Sha256::new();
    h.update(b"kms-plugin/keyring-key-id/v1\0");
    h.update([7u8]);
    h.update(b"default");
    h.update(2u32.to_be_bytes());
    h.update(key_bytes(2));
    assert_eq!(fields[3], hex::encode(&h.finalize()[..8]));
    // Distinct versions and names have distinct ids.
    assert_ne!(a.key_id("default", 1), a.key_id("default", 2));
    assert_ne!(a.key_id("default", 1), a.key_id("backup", 7));
    // The same name and version with other key bytes has another id.
    let other = Keyring::parse(
        format!(
            "kms-plugin-keyring v1\n{}",
            line("default", 2, &key_bytes(9))
        )
        .as_bytes(),
    )
    .unwrap();
    assert_ne!(other.key_id("default", 2), a.key_id("default", 2));
    // Length bound: the longest name and version still fit 1024 bytes.
    let mut k = Keyring::new();
    let long = "n".repeat(64);
    k.add_key(&long, Secret32::from_bytes([1; 32])).unwrap();
    assert!(k.key_id(&long, 1).unwrap().len() <= 1024);
}

#[test]
fn documented_example_parses() {
    // The example in docs/keyring-format.md is a valid keyring with the documented key_id.
    let doc = include_str!("../../docs/keyring-format.md");
    let start = doc.find("```\nkms-plugin-keyring v2").unwrap() + 4;
    let end = start + doc[start..].find("```").unwrap();
    let k = Keyring::parse(&doc.as_bytes()[start..end]).unwrap();
    assert_eq!(k.names().collect::<Vec<_>>(), ["backup", "default"]);
    assert_eq!(k.current_key_id("default").as_deref(), Some(GOLDEN_KEY_ID));
    assert!(doc.contains(GOLDEN_KEY_ID));
}

const GOLDEN_KEY_ID: &str = "local:default:v2:a435fe2b7dfc4a7e";

#[test]
fn rotation_keeps_old_versions_and_they_unwrap() {
    let mut rng = Rng::from_seed([1; 32]);
    let mut k = Keyring::new();
    assert_eq!(k.current_key_id(Keyring::DEFAULT_KEY_NAME), None);
    assert_eq!(
        k.add_key(Keyring::DEFAULT_KEY_NAME, rng.secret32())
            .unwrap(),
        1
    );
    let id1 = k.current_key_id("default").unwrap();
    let kek = rng.secret32();
    let w1 = k.wrap(&id1, &kek, rng.array()).unwrap();
    assert_eq!(w1.len(), WRAPPED_LEN);

    assert_eq!(k.add_key("default", rng.secret32()).unwrap(), 2);
    assert_eq!(k.add_key("default", rng.secret32()).unwrap(), 3);
    let id3 = k.current_key_id("default").unwrap();
    assert_ne!(id1, id3);
    assert_eq!(k.versions("default").collect::<Vec<_>>(), [1, 2, 3]);
    // Old key_id still unwraps, also after a serialize/parse cycle (the runtime's save).
    assert_eq!(k.unwrap(&id1, &w1).unwrap().expose(), kek.expose());
    let reloaded = Keyring::parse(&k.serialize()).unwrap();
    assert_eq!(reloaded.unwrap(&id1, &w1).unwrap().expose(), kek.expose());
    assert_eq!(reloaded.current_key_id("default"), Some(id3.clone()));
    let w3 = reloaded.wrap(&id3, &kek, rng.array()).unwrap();
    assert_eq!(k.unwrap(&id3, &w3).unwrap().expose(), kek.expose());
    // Rotation after a gap continues from the highest version.
    let mut gap = Keyring::parse(
        format!(
            "kms-plugin-keyring v1\n{}",
            line("default", 41, &key_bytes(1))
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(gap.add_key("default", rng.secret32()).unwrap(), 42);
}

#[test]
fn wrap_and_unwrap_errors() {
    let mut rng = Rng::from_seed([2; 32]);
    let k = Keyring::parse(sample_text().as_bytes()).unwrap();
    let id1 = k.key_id("default", 1).unwrap();
    let id2 = k.key_id("default", 2).unwrap();
    let kek = rng.secret32();
    let wrapped = k.wrap(&id1, &kek, rng.array()).unwrap();
    // Distinct nonces give distinct blobs.
    assert_ne!(wrapped, k.wrap(&id1, &kek, rng.array()).unwrap());

    let not_found = |r: Result<_, kms_plugin_core::RemoteError>| r.err().map(|e| e.kind);
    assert_eq!(
        not_found(k.unwrap("local:default:v9:0000000000000000", &wrapped)),
        Some(RemoteErrorKind::NotFound)
    );
    assert_eq!(
        not_found(k.unwrap("vault:whatever", &wrapped)),
        Some(RemoteErrorKind::NotFound)
    );
    assert_eq!(
        not_found(k.unwrap("", &wrapped)),
        Some(RemoteErrorKind::NotFound)
    );
    // Right name and version, wrong hash (the key bytes changed): not found.
    let mut forged = id1.clone();
    forged.pop();
    forged.push(if id1.ends_with('0') { '1' } else { '0' });
    assert_eq!(
        not_found(k.unwrap(&forged, &wrapped)),
        Some(RemoteErrorKind::NotFound)
    );
    assert_eq!(
        k.wrap(&forged, &kek, [0; 12]).err().map(|e| e.kind),
        Some(RemoteErrorKind::NotFound)
    );
    // Another existing key: corrupt (does not open).
    assert_eq!(
        not_found(k.unwrap(&id2, &wrapped)),
        Some(RemoteErrorKind::Corrupt)
    );
    // Every flipped bit and every truncation: corrupt, never a panic.
    for i in 0..wrapped.len() {
        for bit in 0..8 {
            let mut bad = wrapped.clone();
            bad[i] ^= 1 << bit;
            assert_eq!(
                not_found(k.unwrap(&id1, &bad)),
                Some(RemoteErrorKind::Corrupt)
            );
        }
    }
    for len in 0..wrapped.len() {
        assert_eq!(
            not_found(k.unwrap(&id1, &wrapped[..len])),
            Some(RemoteErrorKind::Corrupt)
        );
    }
    let mut longer = wrapped.clone();
    longer.push(0);
    assert_eq!(
        not_found(k.unwrap(&id1, &longer)),
        Some(RemoteErrorKind::Corrupt)
    );
    // Error details never contain key material.
    let err = k.unwrap(&id2, &wrapped).err().unwrap();
    assert!(!err.detail.contains(&b64(&key_bytes(2))));
}

/// Parses `text` expecting an error; checks the line and that nothing from the file's key
/// fields shows up in the error's Display or Debug.
fn expect_error(text: &str, line: Option<usize>, reason_part: &str) -> KeyringError {
    let Err(err) = Keyring::parse(text.as_bytes()) else {
        panic!("parsed: {text:?}");
    };
    assert_eq!(err.line, line, "{text:?}: {err}");
    assert!(err.reason.contains(reason_part), "{text:?}: {err}");
    let shown = format!("{err} {err:?}");
    for word in text
        .split_whitespace()
        .filter(|w| w.len() >= 8 && !w.starts_with("kms-plugin"))
    {
        assert!(!shown.contains(word), "error echoes {word:?}: {shown}");
    }
    if let Some(l) = line {
        assert!(err.to_string().starts_with(&format!("line {l}: ")), "{err}");
    }
    err
}

#[test]
fn corrupt_files_give_line_numbered_errors_without_key_material() {
    let good1 = line("default", 1, &key_bytes(1));
    let k1 = b64(&key_bytes(1));
    let h = "kms-plugin-keyring v1\n";
    expect_error("", None, "missing header");
    expect_error("# only a comment\n", None, "missing header");
    expect_error(&good1, Some(1), "missing header");
    expect_error(&format!("# c\n\n{good1}"), Some(3), "missing header");
    expect_error(
        "kms-plugin-keyring v3\n",
        Some(1),
        "unsupported keyring format version",
    );
    expect_error(
        "kms-plugin-keyring\n",
        Some(1),
        "unsupported keyring format version",
    );
    expect_error(
        "kms-plugin-keyring v1 extra\n",
        Some(1),
        "unsupported keyring format version",
    );
    expect_error(
        &format!("{h}{good1}kms-plugin-keyring v1\n"),
        Some(3),
        "header line repeated",
    );
    // Bad base64: a non-alphabet symbol, wrong padding, non-canonical trailing bits, URL-safe
    // alphabet, missing padding.
    let mut bad = k1.clone().into_bytes();
    bad[10] = b'*';
    expect_error(
        &format!("{h}key default 1 {}\n", String::from_utf8(bad).unwrap()),
        Some(2),
        "base64",
    );
    expect_error(
        &format!("{h}key default 1 {}\n", &k1[..43]),
        Some(2),
        "base64",
    );
    let mut noncanonical = k1[..42].to_string();
    noncanonical.push_str("B=");
    let canonical_last = k1.as_bytes()[42];
    if canonical_last != b'B' {
        expect_error(
            &format!("{h}key default 1 {noncanonical}\n"),
            Some(2),
            "base64",
        );
    }
    expect_error(
        &format!(
            "{h}key default 1 {}\n",
            k1.replace('+', "-").replace('/', "_") + if k1.contains(['+', '/']) { "" } else { "-" }
        ),
        Some(2),
        "base64",
    );
    // Wrong key length (valid base64 of 16 and 33 bytes).
    expect_error(
        &format!("{h}key default 1 {}\n", b64(&[7u8; 16])),
        Some(2),
        "not 32 bytes",
    );
    expect_error(
        &format!("{h}key default 1 {}\n", b64(&[7u8; 33])),
        Some(2),
        "not 32 bytes",
    );
    // Duplicate version; duplicate key bytes under another version.
    expect_error(
        &format!("{h}{good1}\n{}", line("default", 1, &key_bytes(2))),
        Some(4),
        "duplicate version",
    );
    expect_error(
        &format!("{h}{good1}{}", line("other", 1, &key_bytes(1))),
        Some(3),
        "same key bytes",
    );
    // Field problems.
    expect_error(
        &format!("{h}key default 0 {k1}\n"),
        Some(2),
        "invalid version",
    );
    expect_error(
        &format!("{h}key default 01 {k1}\n"),
        Some(2),
        "invalid version",
    );
    expect_error(
        &format!("{h}key default +1 {k1}\n"),
        Some(2),
        "invalid version",
    );
    expect_error(
        &format!("{h}key default 4294967296 {k1}\n"),
        Some(2),
        "invalid version",
    );
    expect_error(
        &format!("{h}key default v1 {k1}\n"),
        Some(2),
        "invalid version",
    );
    expect_error(
        &format!("{h}key Default 1 {k1}\n"),
        Some(2),
        "invalid key name",
    );
    expect_error(&format!("{h}key a:b 1 {k1}\n"), Some(2), "invalid key name");
    expect_error(&format!("{h}key -a 1 {k1}\n"), Some(2), "invalid key name");
    expect_error(
        &format!("{h}key {} 1 {k1}\n", "n".repeat(65)),
        Some(2),
        "invalid key name",
    );
    expect_error(&format!("{h}key default 1\n"), Some(2), "expected `key");
    expect_error(
        &format!("{h}key default 1 {k1} trailing\n"),
        Some(2),
        "expected `key",
    );
    expect_error(
        &format!("{h}kee default 1 {k1}\n"),
        Some(2),
        "expected `key",
    );
    expect_error(&format!("{h}default 1 {k1}\n"), Some(2), "expected `key");
    // Not UTF-8, too long, too large.
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(b"key d\xff 1 x\n");
    let err = Keyring::parse(&bytes).err().unwrap();
    assert_eq!((err.line, err.reason), (Some(2), "line is not valid UTF-8"));
    expect_error(
        &format!("{h}# {}\n", "x".repeat(2000)),
        Some(2),
        "line too long",
    );
    let huge = format!("{h}{}", "#\n".repeat(600_000));
    expect_error(&huge, None, "too large");
}

#[test]
fn limits_on_keys_and_versions() {
    let mut k = Keyring::new();
    let mut rng = Rng::from_seed([3; 32]);
    assert!(k.add_key("Bad Name", rng.secret32()).is_err());
    assert!(k.add_key("", rng.secret32()).is_err());
    let dup = Secret32::from_bytes([5; 32]);
    k.add_key("a", dup.duplicate()).unwrap();
    let err = k.add_key("b", dup).unwrap_err();
    assert_eq!(err.line, None);
    assert!(err.reason.contains("same key bytes"));
    // Version u32::MAX has no successor.
    let mut max = Keyring::parse(
        format!(
            "kms-plugin-keyring v1\n{}",
            line("default", u32::MAX, &key_bytes(1))
        )
        .as_bytes(),
    )
    .unwrap();
    let err = max.add_key("default", rng.secret32()).unwrap_err();
    assert!(err.reason.contains("no version number left"), "{err}");
    // Serializing long names and the largest versions stays within the buffer's first
    // allocation (a debug assertion in `serialize` checks it; tests run with debug assertions).
    let mut wide = Keyring::new();
    for i in 0..50u8 {
        let name = format!("{}{i:02}", "n".repeat(62));
        let text = format!("kms-plugin-keyring v1\n{}", line(&name, u32::MAX, &[i; 32]));
        let one = Keyring::parse(text.as_bytes()).unwrap();
        assert_eq!(
            *one.serialize(),
            *Keyring::parse(&one.serialize()).unwrap().serialize()
        );
        wide.add_key(&name, Secret32::from_bytes([i; 32])).unwrap();
    }
    assert_eq!(Keyring::parse(&wide.serialize()).unwrap().len(), 50);
    // At most MAX_KEYS versions.
    let mut full = Keyring::new();
    for _ in 0..kms_plugin_core::keyring::MAX_KEYS {
        full.add_key("default", rng.secret32()).unwrap();
    }
    assert!(
        full.add_key("default", rng.secret32())
            .unwrap_err()
            .reason
            .contains("too many keys")
    );
}

/// xorshift64*, deterministic.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_files_never_panic() {
    let mut x = XorShift(0xdead_beef_cafe_f00d);
    let base = sample_text().into_bytes();
    let (mut parsed, mut rejected) = (0, 0);
    let alphabet = b"key default 0123456789 +/=ABCxyz#\n\r\t-_:.kms-plugin-keyring v1\xff";
    for round in 0..20_000 {
        let input: Vec<u8> = if round % 2 == 0 {
            (0..x.below(200))
                .map(|_| alphabet[x.below(alphabet.len())])
                .collect()
        } else {
            let mut m = base.clone();
            for _ in 0..=x.below(3) {
                let i = x.below(m.len());
                match x.below(3) {
                    0 => m[i] = alphabet[x.below(alphabet.len())],
                    1 => m.insert(i, alphabet[x.below(alphabet.len())]),
                    _ => {
                        m.remove(i);
                    }
                }
            }
            m
        };
        match Keyring::parse(&input) {
            Ok(k) => {
                parsed += 1;
                // Whatever parsed serializes and re-parses to the same key_ids.
                let again = Keyring::parse(&k.serialize()).unwrap();
                for name in k.names() {
                    for v in k.versions(name) {
                        assert_eq!(k.key_id(name, v), again.key_id(name, v));
                    }
                }
            }
            Err(e) => {
                rejected += 1;
                if let Some(line) = e.line {
                    assert!(line >= 1 && line <= input.split(|b| *b == b'\n').count());
                }
            }
        }
    }
    // Both paths were exercised.
    assert!(parsed > 500 && rejected > 500, "{parsed} {rejected}");
}
