//! The local key-file codec (`kms_plugin_core::keyring`): arbitrary file text, key ids and
//! wrapped blobs.
//!
//! Input: `text | 0xff 0x00 | key_id | 0xff 0x00 | wrapped` (later parts optional).
//!
//! Checks: no panic; a parsed keyring serializes to text that parses to the same names,
//! versions, key ids, current versions and fingerprint (and each is the other's successor); every key id it reports is recognised and wraps a KEK that unwraps
//! back; unwrapping arbitrary blobs under arbitrary ids fails cleanly (or, for a blob the
//! keyring really produced, returns the KEK).
#![no_main]

use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::secret::Secret32;
use libfuzzer_sys::fuzz_target;

fn summary(k: &Keyring) -> Vec<(String, Vec<u32>, Vec<String>)> {
    k.names()
        .map(|n| {
            let versions: Vec<u32> = k.versions(n).collect();
            let ids = versions.iter().filter_map(|v| k.key_id(n, *v)).collect();
            (n.to_owned(), versions, ids)
        })
        .collect()
}

/// Splits at the first `0xff 0x00` separator.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == [0xff, 0x00]) {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = split(data);
    let (key_id, wrapped) = split(rest);
    let key_id = String::from_utf8_lossy(key_id);

    let kek = Secret32::from_bytes([0x33; 32]);
    let Ok(ring) = Keyring::parse(text) else {
        return;
    };
    let again = Keyring::parse(&ring.serialize()).expect("serialized keyring parses");
    assert_eq!(summary(&ring), summary(&again));
    assert_eq!(ring.len(), again.len());
    assert_eq!(ring.fingerprint(), again.fingerprint());
    assert!(ring.check_successor(&again).is_ok() && again.check_successor(&ring).is_ok());
    for (name, versions, ids) in summary(&ring) {
        let current = ring.current_version(&name).expect("a name has a current version");
        assert!(versions.contains(&current));
        assert_eq!(again.current_version(&name), Some(current));
        for id in &ids {
            assert!(ring.contains_key_id(id));
            let w = ring
                .wrap(id, &kek, [7; 12])
                .expect("wrap under a known key id");
            let back = ring.unwrap(id, &w).expect("unwrap what we wrapped");
            assert_eq!(back.expose(), kek.expose());
            // Bound to the key id: no other version opens it.
            for other in ids.iter().filter(|o| *o != id) {
                assert!(ring.unwrap(other, &w).is_err());
            }
        }
    }
    let _ = ring.contains_key_id(&key_id);
    if let Ok(k) = ring.unwrap(&key_id, wrapped) {
        // Only possible for a blob this keyring wrapped (the corpus can hold one).
        assert!(ring.contains_key_id(&key_id));
        let _ = k;
    }
});
