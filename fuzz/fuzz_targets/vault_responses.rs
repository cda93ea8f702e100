//! The Vault/OpenBao Transit codec's pure parts (`kms_plugin_core::kek::vault`) under
//! arbitrary HTTP status codes, response bodies, key ids, wrapped blobs and configuration.
//!
//! Input: `mode | status (u16 be) | rest`.
//!
//! Checks: no panic; a parsed key info is self-consistent (min ≤ latest version ≥ 1) and its
//! key id maps back to its version; an encrypt answer is accepted only with the requested
//! version's `vault:v<N>:` prefix; a decrypt answer yields 32 bytes; `error_text` is bounded
//! and printable; configuration parsing never panics and accepted targets build key ids that
//! round-trip through `version_of`.
#![no_main]

use kms_plugin_core::kek::vault::capabilities::check_capabilities;
use kms_plugin_core::kek::vault::{
    TransitOp, TransitTarget, ciphertext_version, decrypt_body, error_from_response, error_text,
    parse_decrypt, parse_encrypt, parse_key_info,
};
use libfuzzer_sys::fuzz_target;

fn target() -> TransitTarget {
    TransitTarget::new("https://vault.example:8200", Some("team"), "transit", "kms")
        .expect("valid target")
}

fuzz_target!(|data: &[u8]| {
    let [mode, s0, s1, rest @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*s0, *s1]);
    let t = target();
    match mode % 6 {
        0 => {
            if let Ok(info) = parse_key_info(status, rest) {
                assert!(info.latest_version >= 1);
                assert!(info.min_decryption_version <= info.latest_version);
                let id = info.key_id(&t);
                assert_eq!(t.version_of(&id).ok(), Some(info.latest_version));
            }
        }
        1 => {
            let version = u32::from(*s1 % 8) + 1;
            if let Ok(blob) = parse_encrypt(status, rest, version) {
                assert_eq!(ciphertext_version(&blob), Some(version));
            }
        }
        2 => {
            if let Ok(kek) = parse_decrypt(status, rest) {
                assert_eq!(kek.expose().len(), 32);
            }
        }
        3 => {
            let text = error_text(rest);
            assert!(text.len() <= 4096, "error text of {} bytes", text.len());
            let _ = error_from_response(TransitOp::Decrypt, status, rest);
            let _ = check_capabilities(&t, status, rest);
        }
        4 => {
            // Arbitrary key id and wrapped blob for a decrypt request.
            let split = usize::from(*s0).min(rest.len());
            let (key_id, wrapped) = rest.split_at(split);
            let key_id = String::from_utf8_lossy(key_id);
            if decrypt_body(&t, &key_id, wrapped).is_ok() {
                let v = t
                    .version_of(&key_id)
                    .expect("accepted key id has a version");
                assert_eq!(ciphertext_version(wrapped), Some(v));
            }
            let _ = ciphertext_version(rest);
        }
        _ => {
            // Configuration: addr \0 namespace \0 mount \0 key.
            let text = String::from_utf8_lossy(rest);
            let mut parts = text.split('\0');
            let addr = parts.next().unwrap_or_default();
            let ns = parts.next().filter(|n| !n.is_empty());
            let mount = parts.next().unwrap_or_default();
            let key = parts.next().unwrap_or_default();
            if let Ok(t) = TransitTarget::new(addr, ns, mount, key) {
                let version = u32::from(status).max(1);
                let id = t.key_id(version, u64::from(*s0));
                assert_eq!(t.version_of(&id).ok(), Some(version));
                let _ = t.url(TransitOp::Encrypt);
                assert!(t.port() > 0);
            }
        }
    }
});
