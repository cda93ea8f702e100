//! The plugin's ciphertext formats (`kms_plugin_core::envelope`) and annotations under
//! arbitrary input: every open of data we did not seal is an error, never a panic, and a
//! sealed ciphertext opens only when nothing bound to it changed.
//!
//! Input: `mode | rest`.
//! - mode 0: `open_v2(kek, key_id, wrapped, ciphertext)` with all three from `rest` (only a
//!   real ciphertext from the seed corpus opens, and then no single-bit flip of it does).
//! - mode 1: `parse_v1(rest)` then `open_v1` under a fixed KEK (parsed parts within bounds).
//! - mode 2: seal v2 with parts from `rest`, apply the edits `rest` describes to ciphertext,
//!   key_id or wrapped KEK, open: succeeds iff nothing changed, and then returns the plaintext.
//! - mode 3: the same for v1 (edits to the self-describing ciphertext).
//! - mode 4: annotations: `wrapped_kek_from_annotations` and `annotations::validate` over
//!   arbitrary pairs, checked against their documented rules.
#![no_main]

use kms_plugin_core::annotations::{self, FORMAT_KEY, FORMAT_VALUE_V1, WRAPPED_KEK_KEY};
use kms_plugin_core::envelope::{
    self, V2_MAX_WRAPPED_KEK, open_v1, open_v2, parse_v1, seal_v1, seal_v2,
    wrapped_kek_from_annotations,
};
use kms_plugin_core::rng::Rng;
use kms_plugin_core::secret::Secret32;
use libfuzzer_sys::fuzz_target;

const KEK: [u8; 32] = [0x42; 32];

/// Splits a `u8`-length-prefixed field off `input` (short input gives what is left).
fn take<'a>(input: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, rest)) = input.split_first() else {
        return &[];
    };
    let (field, rest) = rest.split_at(usize::from(len).min(rest.len()));
    *input = rest;
    field
}

fn take_str(input: &mut &[u8]) -> String {
    String::from_utf8_lossy(take(input)).into_owned()
}

/// Applies edits `(op, pos, byte)*` to `buf`; returns whether `buf` changed.
fn edit(buf: &mut Vec<u8>, edits: &[u8]) -> bool {
    let orig = buf.clone();
    for e in edits.chunks_exact(3) {
        let pos = usize::from(e[1]) * 7 + usize::from(e[2] >> 4);
        match e[0] % 4 {
            0 if !buf.is_empty() => {
                let i = pos % buf.len();
                buf[i] ^= e[2] | 1;
            }
            1 => buf.truncate(pos % (buf.len() + 1)),
            2 => buf.push(e[2]),
            _ => {}
        }
    }
    *buf != orig
}

fn sealed_parts(rest: &mut &[u8]) -> (String, Vec<u8>, Vec<u8>) {
    let mut key_id = take_str(rest);
    if key_id.is_empty() {
        key_id.push('k');
    }
    let mut wrapped = take(rest).to_vec();
    if wrapped.is_empty() {
        wrapped.push(1);
    }
    let plaintext = take(rest).to_vec();
    (key_id, wrapped, plaintext)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let kek = Secret32::from_bytes(KEK);
    match mode % 5 {
        0 => {
            let key_id = take_str(&mut rest);
            let wrapped = take(&mut rest);
            // Only the seed corpus's real ciphertexts open; then any bit flip must not.
            if open_v2(&kek, &key_id, wrapped, rest).is_ok() {
                let mut bad = rest.to_vec();
                for i in 0..bad.len() {
                    bad[i] ^= 0x80;
                    assert!(open_v2(&kek, &key_id, wrapped, &bad).is_err());
                    bad[i] ^= 0x80;
                }
            }
        }
        1 => {
            if let Ok(parts) = parse_v1(rest) {
                assert!(!parts.key_id.is_empty() && parts.key_id.len() <= envelope::KEY_ID_MAX_LEN);
                assert!(!parts.wrapped_kek.is_empty());
                if open_v1(&kek, &parts).is_ok() {
                    let mut bad = rest.to_vec();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    assert!(parse_v1(&bad).and_then(|p| open_v1(&kek, &p)).is_err());
                }
            }
        }
        2 => {
            let (key_id, wrapped, plaintext) = sealed_parts(&mut rest);
            let mut rng = Rng::from_seed([7; 32]);
            let Ok(ct) = seal_v2(&kek, &key_id, &wrapped, &plaintext, &mut rng) else {
                return;
            };
            assert_eq!(ct.len(), plaintext.len() + 62);
            let (mut ct2, mut wrapped2, mut key2) =
                (ct.clone(), wrapped.clone(), key_id.clone().into_bytes());
            let target = take(&mut rest).first().copied().unwrap_or(0) % 3;
            let changed = match target {
                0 => edit(&mut ct2, rest),
                1 => edit(&mut wrapped2, rest),
                _ => edit(&mut key2, rest),
            };
            let key2 = String::from_utf8_lossy(&key2).into_owned();
            let changed = changed && (target != 2 || key2 != key_id);
            match open_v2(&kek, &key2, &wrapped2, &ct2) {
                Ok(p) => {
                    assert!(!changed, "an edited v2 ciphertext opened");
                    assert_eq!(p.expose(), plaintext.as_slice());
                }
                Err(_) => assert!(changed, "an intact v2 ciphertext failed to open"),
            }
            let other = Secret32::from_bytes([0x43; 32]);
            assert!(open_v2(&other, &key_id, &wrapped, &ct).is_err());
        }
        3 => {
            let (key_id, wrapped, plaintext) = sealed_parts(&mut rest);
            let mut rng = Rng::from_seed([9; 32]);
            let Ok(ct) = seal_v1(&kek, &key_id, &wrapped, &plaintext, &mut rng) else {
                return;
            };
            let mut ct2 = ct.clone();
            let changed = edit(&mut ct2, rest);
            let opened = parse_v1(&ct2).and_then(|p| open_v1(&kek, &p));
            match opened {
                Ok(p) => {
                    assert!(!changed, "an edited v1 ciphertext opened");
                    assert_eq!(p.expose(), plaintext.as_slice());
                }
                Err(_) => assert!(changed, "an intact v1 ciphertext failed to open"),
            }
            let parts = parse_v1(&ct).expect("our own v1 ciphertext parses");
            assert_eq!(parts.key_id, key_id);
            assert_eq!(parts.wrapped_kek, wrapped.as_slice());
        }
        _ => {
            let mut pairs = Vec::new();
            while !rest.is_empty() && pairs.len() < 8 {
                let k = take_str(&mut rest);
                let v = take(&mut rest).to_vec();
                pairs.push((k, v));
            }
            let iter = || pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
            if let Ok(w) = wrapped_kek_from_annotations(iter()) {
                assert_eq!(pairs.len(), 2);
                assert!(!w.is_empty() && w.len() <= V2_MAX_WRAPPED_KEK);
                assert!(
                    pairs
                        .iter()
                        .any(|(k, v)| k == WRAPPED_KEK_KEY && v.as_slice() == w)
                );
                assert!(
                    pairs
                        .iter()
                        .any(|(k, v)| k == FORMAT_KEY && v.as_slice() == FORMAT_VALUE_V1)
                );
                assert!(
                    annotations::validate(iter()).is_ok(),
                    "our annotations are valid"
                );
            }
            if annotations::validate(iter()).is_ok() {
                let total: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
                assert!(total <= annotations::MAX_TOTAL_BYTES);
                for (k, _) in &pairs {
                    assert!(annotations::is_valid_key(k));
                    let name = k.strip_suffix('.').unwrap_or(k);
                    assert!(name.contains('.') && name.len() <= 253);
                    assert!(name.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'-'
                        || b == b'.'));
                }
            }
        }
    }
});
