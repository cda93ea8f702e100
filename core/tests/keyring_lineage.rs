//! Keyring history (docs/keyring-format.md): format 2's `end` line detects truncation and
//! edits, format 1 still loads and is upgraded on write, staged versions unwrap without being
//! current, the append-only rule names lost versions, and fingerprints compare whole keyrings.

use kms_plugin_core::keyring::{Keyring, UnknownKeyId};
use kms_plugin_core::rng::Rng;
use kms_plugin_core::secret::Secret32;

fn keyring(versions: u32, seed: u8) -> Keyring {
    let mut rng = Rng::from_seed([seed; 32]);
    let mut k = Keyring::new();
    for _ in 0..versions {
        k.add_key("default", rng.secret32()).unwrap();
    }
    k
}

fn parse_err(text: &[u8]) -> kms_plugin_core::keyring::KeyringError {
    Keyring::parse(text).err().expect("refused")
}

fn reparse(k: &Keyring) -> Keyring {
    Keyring::parse(&k.serialize()).unwrap()
}

#[test]
fn every_truncation_of_a_written_file_is_refused() {
    let mut k = keyring(5, 1);
    k.add_key("backup", Secret32::from_bytes([9; 32])).unwrap();
    let text = k.serialize();
    assert!(text.starts_with(b"kms-plugin-keyring v2\n"));
    // Every cut but the final newline loses the `end` line or breaks it.
    for cut in 0..text.len() - 1 {
        let err = Keyring::parse(&text[..cut]).err();
        assert!(
            err.is_some(),
            "a file cut at byte {cut} of {} parsed",
            text.len()
        );
    }
    // Dropping a whole key line (with a correct `end` line recomputed by nobody) is refused.
    let s = String::from_utf8(text.to_vec()).unwrap();
    let mut without_v3 = String::new();
    for l in s.lines().filter(|l| !l.starts_with("key default 3 ")) {
        without_v3.push_str(l);
        without_v3.push('\n');
    }
    let err = parse_err(without_v3.as_bytes());
    assert!(err.reason.contains("checksum"), "{err}");
    assert!(err.to_string().contains("restore"), "{err}");
    let truncated = parse_err(&text[..text.len() / 2]);
    assert!(truncated.reason.contains("truncated"), "{truncated}");
}

#[test]
fn format_1_loads_and_is_upgraded_on_the_next_write() {
    let v1 = format!(
        "kms-plugin-keyring v1\nkey default 1 {}\nkey default 2 {}\n",
        "AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=",
        "PkVMU1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBc="
    );
    let k = Keyring::parse(v1.as_bytes()).unwrap();
    assert_eq!(k.current_version("default"), Some(2));
    let written = k.serialize();
    let s = String::from_utf8(written.to_vec()).unwrap();
    assert!(s.starts_with("kms-plugin-keyring v2\n"), "{s}");
    assert!(s.contains("\ncurrent default 2\n"), "{s}");
    assert!(
        s.lines().last().unwrap().starts_with("end 2 sha256:"),
        "{s}"
    );
    let again = Keyring::parse(&written).unwrap();
    assert_eq!(again.fingerprint(), k.fingerprint());
    assert_eq!(again.key_id("default", 2), k.key_id("default", 2));
}

#[test]
fn staged_versions_unwrap_but_stay_out_of_wrapping_until_promoted() {
    let mut rng = Rng::from_seed([3; 32]);
    let mut k = keyring(1, 2);
    assert!(k.stage_key("nope", rng.secret32()).is_err());
    let v2 = k.stage_key("default", rng.secret32()).unwrap();
    assert_eq!(v2, 2);
    assert_eq!(k.current_version("default"), Some(1));
    assert_eq!(k.latest_version("default"), Some(2));
    assert_eq!(k.staged_versions("default").collect::<Vec<_>>(), [2]);
    // Staged state survives the file.
    let k2 = reparse(&k);
    assert_eq!(k2.current_version("default"), Some(1));
    assert_eq!(k2.fingerprint(), k.fingerprint());
    // A staged key unwraps what another host (already promoted) wrapped under it.
    let id2 = k.key_id("default", 2).unwrap();
    let kek = Secret32::from_bytes([7; 32]);
    let wrapped = k.wrap(&id2, &kek, [1; 12]).unwrap();
    assert_eq!(k2.unwrap(&id2, &wrapped).unwrap().expose(), kek.expose());
    // A second stage and a rotation never reuse a version number.
    assert_eq!(k.stage_key("default", rng.secret32()).unwrap(), 3);
    let before = k.fingerprint();
    let p = k.promote("default").unwrap();
    assert!(p.changed());
    assert_eq!((p.from, p.to), (1, 3));
    assert_ne!(
        k.fingerprint(),
        before,
        "the fingerprint covers which version is current"
    );
    assert!(!k.promote("default").unwrap().changed());
    assert_eq!(k.add_key("default", rng.secret32()).unwrap(), 4);
    assert_eq!(k.current_version("default"), Some(4));
    assert!(k.promote("missing").is_err());
}

#[test]
fn the_append_only_rule_names_missing_and_changed_versions() {
    let mut newer = keyring(3, 4);
    let older = Keyring::parse(&keyring(2, 4).serialize()).unwrap();
    // Growing and promoting are fine.
    assert!(older.check_successor(&newer).is_ok());
    let mut rng = Rng::from_seed([5; 32]);
    newer.stage_key("default", rng.secret32()).unwrap();
    assert!(older.check_successor(&newer).is_ok());
    // Going back to the older file loses v3 and v4.
    let err = newer.check_successor(&older).unwrap_err();
    assert_eq!(
        err.missing,
        [("default".to_string(), 3), ("default".to_string(), 4)]
    );
    assert!(err.changed.is_empty());
    assert_eq!(
        err.to_string(),
        "it lacks loaded key versions default v3, default v4"
    );
    // Same versions, other bytes.
    let other = keyring(3, 9);
    let err = newer.check_successor(&other).unwrap_err();
    assert_eq!(err.changed.len(), 3);
    assert!(
        err.to_string()
            .contains("different key bytes for default v1"),
        "{err}"
    );
    // Long lists are bounded.
    let big = keyring(20, 6);
    let err = big.check_successor(&Keyring::new()).unwrap_err();
    assert!(
        err.missing_list().ends_with(" and 12 more"),
        "{}",
        err.missing_list()
    );
}

#[test]
fn unknown_key_ids_are_explained_by_version() {
    let newer = keyring(3, 7);
    let older = keyring(2, 7);
    let id3 = newer.key_id("default", 3).unwrap();
    assert!(!older.contains_key_id(&id3));
    assert_eq!(
        older.explain_unknown_key_id(&id3),
        UnknownKeyId::MissingVersion {
            name: "default".into(),
            version: 3
        }
    );
    let foreign_bytes = keyring(2, 8).key_id("default", 2).unwrap();
    assert_eq!(
        older.explain_unknown_key_id(&foreign_bytes),
        UnknownKeyId::ChangedVersion {
            name: "default".into(),
            version: 2
        }
    );
    assert_eq!(
        older.explain_unknown_key_id("vault:kms:v1:abc"),
        UnknownKeyId::Foreign
    );
}

#[test]
fn fingerprints_compare_whole_keyrings() {
    let a = keyring(2, 10);
    let b = reparse(&a);
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert!(a.fingerprint().starts_with("kr1:") && a.fingerprint().len() == 20);
    assert_ne!(a.fingerprint(), keyring(3, 10).fingerprint());
    assert_ne!(a.fingerprint(), keyring(2, 11).fingerprint());
}

#[test]
fn format_2_structure_errors_name_the_line() {
    let text = String::from_utf8(keyring(1, 12).serialize().to_vec()).unwrap();
    let with_tail = format!("{text}key default 2 AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=\n");
    let err = parse_err(with_tail.as_bytes());
    assert!(err.reason.contains("after the `end` line"), "{err}");
    let bad_current = text.replace("current default 1", "current default 2");
    assert!(Keyring::parse(bad_current.as_bytes()).is_err());
    let twice = text.replace(
        "current default 1\n",
        "current default 1\ncurrent default 1\n",
    );
    let err = parse_err(twice.as_bytes());
    assert!(
        err.reason.contains("checksum") || err.reason.contains("second"),
        "{err}"
    );
}
