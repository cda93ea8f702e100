//! The PKCS#11 provider against a real SoftHSM2 token (Debian `softhsm2`, installed by
//! `.ci/setup-softhsm.sh`).
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, and a test cannot set the
//! environment of its own process, so `softhsm_suite` prepares a temporary token directory
//! (tokens by `softhsm2-util`, the first AES key by `pkcs11-tool`, as an operator would) and
//! re-runs this test binary with that environment for the `#[ignore]`d `in_softhsm_*` tests.
#![cfg(feature = "pkcs11")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/softhsm.rs"]
mod softhsm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::{SessionState, UserType};
use cryptoki::types::AuthPin;
use kms_plugin_blocking::provider::KekProvider;
use kms_plugin_blocking::provider::pkcs11::{
    BLOB_LEN, DEFAULT_MODULE, PinSource, Pkcs11Config, Pkcs11Provider,
};
use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::secret::Secret32;
use zeroize::Zeroizing;

const PIN: &str = "5678";
const SO_PIN: &str = "1234";
const TOKEN: &str = "kms-test";
const PIN_TOKEN: &str = "kms-pin-test";
const REPLICA_TOKEN: &str = "kms-replica";
const KEY: &str = "kms-key";

#[test]
fn softhsm_suite() {
    assert!(
        Path::new(DEFAULT_MODULE).exists(),
        "SoftHSM2 is not installed: run .ci/setup-softhsm.sh"
    );
    let dir = std::env::temp_dir().join(format!("kms-softhsm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let conf = softhsm::conf(&dir);
    for label in [TOKEN, PIN_TOKEN] {
        softhsm::init_token(&conf, label, SO_PIN, PIN);
        softhsm::keygen(&conf, label, PIN, KEY);
    }
    softhsm::init_token(&conf, REPLICA_TOKEN, SO_PIN, PIN);
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &conf)
        .env("KMS_TEST_PIN_DIR", &dir)
        .args([
            "--ignored",
            "--test-threads=1",
            "--nocapture",
            "in_softhsm_",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "SoftHSM tests failed");
    assert!(stdout.contains("8 passed"), "all SoftHSM tests ran");
}

fn provider(token: &str, pin: PinSource) -> Pkcs11Provider {
    Pkcs11Provider::new(Pkcs11Config {
        module: DEFAULT_MODULE.into(),
        token_label: token.into(),
        key_label: KEY.into(),
        pin,
        max_idle_sessions: 2,
    })
    .unwrap()
}

fn pin(p: &str) -> PinSource {
    PinSource::Value(Zeroizing::new(p.to_string()))
}

/// The module, initialised (again: a second initialisation is harmless), and the slot of the
/// token labelled `label`, as another user of the module in this process would find them.
fn token_slot(label: &str) -> (Pkcs11, cryptoki::slot::Slot) {
    let ctx = Pkcs11::new(DEFAULT_MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    (ctx, slot)
}

/// A logged-in read-write session on token `label`, as an operator's tool would open one.
fn user_session(label: &str) -> (Pkcs11, cryptoki::session::Session) {
    let (ctx, slot) = token_slot(label);
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(PIN.to_string())));
    (ctx, session)
}

/// Generates a token AES-256 key labelled `label` with `CKA_ID` `[id]`.
fn generate_aes_key(
    session: &cryptoki::session::Session,
    label: &str,
    id: u8,
) -> cryptoki::object::ObjectHandle {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(vec![id]),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ],
        )
        .unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_round_trip_with_stable_key_id() {
    let p = provider(TOKEN, pin(PIN));
    assert_eq!(p.name(), "pkcs11");
    let key_id = p.status(soon()).unwrap();
    assert!(key_id.starts_with("pkcs11:kms-key:"), "{key_id}");
    assert_eq!(key_id.len(), "pkcs11:kms-key:".len() + 16);
    assert_eq!(p.status(soon()).unwrap(), key_id, "stable");
    let kek = Secret32::from_bytes([0x42; 32]);
    let a = p.wrap(&key_id, &kek, soon()).unwrap();
    let b = p.wrap(&key_id, &kek, soon()).unwrap();
    assert_eq!(a.len(), BLOB_LEN);
    assert_ne!(a, b, "fresh IV per wrap");
    assert!(!a.windows(32).any(|w| w == [0x42; 32]));
    assert_eq!(p.unwrap(&key_id, &a, soon()).unwrap().expose(), &[0x42; 32]);
    assert_eq!(p.unwrap(&key_id, &b, soon()).unwrap().expose(), &[0x42; 32]);
    // A second provider (a restarted plugin) computes the same key id and unwraps.
    let again = provider(TOKEN, pin(PIN));
    assert_eq!(again.status(soon()).unwrap(), key_id);
    assert_eq!(
        again.unwrap(&key_id, &a, soon()).unwrap().expose(),
        &[0x42; 32]
    );
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_tampering_and_foreign_key_ids_fail_cleanly() {
    let p = provider(TOKEN, pin(PIN));
    let key_id = p.status(soon()).unwrap();
    let blob = p
        .wrap(&key_id, &Secret32::from_bytes([1; 32]), soon())
        .unwrap();
    for i in [1, 13, BLOB_LEN - 1] {
        let mut bad = blob.clone();
        bad[i] ^= 1;
        let e = p.unwrap(&key_id, &bad, soon()).err().unwrap();
        assert_eq!(e.kind, RemoteErrorKind::Corrupt, "byte {i}: {}", e.detail);
    }
    assert_eq!(
        p.unwrap(&key_id, &blob[1..], soon()).err().unwrap().kind,
        RemoteErrorKind::Corrupt
    );
    // A key id of this label that no key on the token has: named as a missing key.
    let other = format!("pkcs11:{KEY}:0000000000000000");
    let e = p.unwrap(&other, &blob, soon()).err().unwrap();
    assert_eq!(e.kind, RemoteErrorKind::KeyVersionMissing, "{}", e.detail);
    assert!(e.detail.contains(&other), "{}", e.detail);
    assert_eq!(
        p.wrap("vault:x:v1:0", &Secret32::from_bytes([1; 32]), soon())
            .unwrap_err()
            .kind,
        RemoteErrorKind::NotFound
    );
    let e = p.status(Instant::now()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Timeout);
    let missing = Pkcs11Provider::new(Pkcs11Config {
        module: DEFAULT_MODULE.into(),
        token_label: "no-such-token".into(),
        key_label: KEY.into(),
        pin: pin(PIN),
        max_idle_sessions: 1,
    })
    .unwrap();
    assert_eq!(
        missing.status(soon()).unwrap_err().kind,
        RemoteErrorKind::Unavailable
    );
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_sessions_are_pooled_and_reused() {
    let p = Arc::new(provider(TOKEN, pin(PIN)));
    let key_id = p.status(soon()).unwrap();
    assert_eq!(p.idle_sessions(), 1);
    let start = Instant::now();
    for _ in 0..200 {
        let blob = p
            .wrap(&key_id, &Secret32::from_bytes([3; 32]), soon())
            .unwrap();
        p.unwrap(&key_id, &blob, soon()).unwrap();
    }
    println!(
        "softhsm: {:?} per call (200 wrap+unwrap pairs, pooled session)",
        start.elapsed() / 400
    );
    assert_eq!(p.idle_sessions(), 1, "sequential calls reuse one session");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let p = Arc::clone(&p);
            let key_id = key_id.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let blob = p
                        .wrap(&key_id, &Secret32::from_bytes([i; 32]), soon())
                        .unwrap();
                    assert_eq!(p.unwrap(&key_id, &blob, soon()).unwrap().expose(), &[i; 32]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let idle = p.idle_sessions();
    assert!((1..=2).contains(&idle), "pool stays within its cap: {idle}");
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_rotation_adds_a_key_and_old_blobs_still_unwrap() {
    let p = provider(TOKEN, pin(PIN));
    let v1 = p.status(soon()).unwrap();
    let old = p.wrap(&v1, &Secret32::from_bytes([7; 32]), soon()).unwrap();
    // The operator adds a new key with the same label and a greater CKA_ID.
    let (_ctx, session) = user_session(TOKEN);
    generate_aes_key(&session, KEY, 2);
    let v2 = p.status(soon()).unwrap();
    assert_ne!(v1, v2, "a new key is a new key id");
    let new = p.wrap(&v2, &Secret32::from_bytes([8; 32]), soon()).unwrap();
    assert_eq!(p.unwrap(&v1, &old, soon()).unwrap().expose(), &[7; 32]);
    assert_eq!(p.unwrap(&v2, &new, soon()).unwrap().expose(), &[8; 32]);
    assert_eq!(
        p.unwrap(&v2, &old, soon()).err().unwrap().kind,
        RemoteErrorKind::Corrupt
    );
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_a_deleted_key_is_named_in_status_and_unwrap() {
    const GONE: &str = "kms-key-deleted";
    let (_ctx, session) = user_session(TOKEN);
    let handle = generate_aes_key(&session, GONE, 1);
    let p = Pkcs11Provider::new(Pkcs11Config {
        module: DEFAULT_MODULE.into(),
        token_label: TOKEN.into(),
        key_label: GONE.into(),
        pin: pin(PIN),
        max_idle_sessions: 1,
    })
    .unwrap();
    let key_id = p.status(soon()).unwrap();
    let blob = p
        .wrap(&key_id, &Secret32::from_bytes([5; 32]), soon())
        .unwrap();
    // Someone deletes the HSM key: never a generic failure, always the key named.
    session.destroy_object(handle).unwrap();
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::KeyVersionMissing, "{}", e.detail);
    assert!(
        e.detail.contains(&key_id) && e.detail.contains("restore"),
        "{}",
        e.detail
    );
    let e = p.unwrap(&key_id, &blob, soon()).err().unwrap();
    assert_eq!(e.kind, RemoteErrorKind::KeyVersionMissing, "{}", e.detail);
    assert!(e.detail.contains(&key_id), "{}", e.detail);
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_wrong_pin_is_auth_and_never_retried_until_the_pin_changes() {
    let dir = PathBuf::from(std::env::var_os("KMS_TEST_PIN_DIR").unwrap());
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, "0000\n").unwrap();
    let p = provider(PIN_TOKEN, PinSource::File(pin_file.clone()));
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Auth, "{}", e.detail);
    assert!(e.detail.contains("PIN"), "{}", e.detail);
    assert!(!e.detail.contains("0000"));
    // Every later call fails the same way without another login attempt.
    for _ in 0..20 {
        let again = p.status(soon()).unwrap_err();
        assert_eq!(again.kind, RemoteErrorKind::Auth);
        assert!(again.detail.contains("not retried"), "{}", again.detail);
    }
    // SoftHSM has seen one failed login, not 21: the token is not locked out.
    let (ctx, slot) = token_slot(PIN_TOKEN);
    assert!(!ctx.get_token_info(slot).unwrap().user_pin_locked());
    // The operator fixes the PIN file: the provider recovers without restart.
    let tmp = dir.join("pin.new");
    std::fs::write(&tmp, format!("{PIN}\n")).unwrap();
    std::fs::rename(&tmp, &pin_file).unwrap();
    let key_id = p.status(soon()).unwrap();
    assert!(key_id.starts_with("pkcs11:kms-key:"));
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_lost_login_is_restored_transparently() {
    let p = provider(TOKEN, pin(PIN));
    let key_id = p.status(soon()).unwrap();
    assert_eq!(p.idle_sessions(), 1);
    // Another user of the module logs out: login state is per application, so the pooled
    // session silently loses access to the (private) key.
    let (ctx, slot) = token_slot(TOKEN);
    let session = ctx.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    assert_eq!(
        session.get_session_info().unwrap().session_state(),
        SessionState::RoPublic,
        "logout is application-wide"
    );
    // The next call notices and logs in again instead of reporting the key missing.
    assert_eq!(p.status(soon()).unwrap(), key_id);
    let blob = p
        .wrap(&key_id, &Secret32::from_bytes([6; 32]), soon())
        .unwrap();
    assert_eq!(p.unwrap(&key_id, &blob, soon()).unwrap().expose(), &[6; 32]);
}

#[test]
#[ignore = "run by softhsm_suite with SOFTHSM2_CONF set"]
fn in_softhsm_replicated_key_has_one_key_id_across_tokens() {
    use cryptoki::object::{KeyType, ObjectClass};
    // The same key material imported into two tokens (two hosts, or an HSM and its replica)
    // under the same label and id, as an HA setup would.
    let material = [0x5au8; 32];
    for token in [TOKEN, REPLICA_TOKEN] {
        user_session(token)
            .1
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(material.to_vec()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(b"shared-key".to_vec()),
                Attribute::Id(vec![9]),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ])
            .unwrap();
    }
    let config = |token: &str| Pkcs11Config {
        module: DEFAULT_MODULE.into(),
        token_label: token.into(),
        key_label: "shared-key".into(),
        pin: pin(PIN),
        max_idle_sessions: 1,
    };
    let a = Pkcs11Provider::new(config(TOKEN)).unwrap();
    let b = Pkcs11Provider::new(config(REPLICA_TOKEN)).unwrap();
    let key_id = a.status(soon()).unwrap();
    assert_eq!(
        b.status(soon()).unwrap(),
        key_id,
        "the key id names the key, not the token"
    );
    let blob = a
        .wrap(&key_id, &Secret32::from_bytes([0x11; 32]), soon())
        .unwrap();
    assert_eq!(
        b.unwrap(&key_id, &blob, soon()).unwrap().expose(),
        &[0x11; 32]
    );
}

#[test]
fn key_id_derivation_is_pinned() {
    // Golden value computed independently (Python hashlib): SHA-256 over length-prefixed
    // (label, CKA_ID, CKA_CHECK_VALUE), first 8 bytes. Key ids are persisted by the apiserver.
    assert_eq!(
        Pkcs11Provider::key_id_for("kms-key", &[1], &[0xaa, 0xbb, 0xcc]),
        "pkcs11:kms-key:be1132ac0d048394"
    );
    assert_ne!(
        Pkcs11Provider::key_id_for("kms-key", &[1], &[0xaa, 0xbb, 0xcd]),
        Pkcs11Provider::key_id_for("kms-key", &[1], &[0xaa, 0xbb, 0xcc]),
    );
}
