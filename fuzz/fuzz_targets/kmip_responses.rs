//! The KMIP codec's pure parts (`kms_plugin_core::kek::kmip`) under arbitrary response
//! messages, response headers, wrapped blobs and key ids.
//!
//! Input: `mode | rest`.
//!
//! Checks: no panic; every length is checked (a response header's announced body length never
//! exceeds the cap); Locate lists at most `MAX_CANDIDATES` valid identifiers; parsed
//! attributes give a key id that maps back to their unique identifier; an Encrypt answer
//! becomes a blob that parses back in the requested mode; a Decrypt answer yields 32 bytes; a
//! blob that parses re-encodes to the same bytes and builds a Decrypt request; error details
//! stay bounded.
#![no_main]

use kms_plugin_core::kek::kmip::{
    self, MAX_CANDIDATES, MAX_ERROR_TEXT, MAX_RESPONSE_BYTES, Operation, WrapMode, WrappedBlob,
    key,
};
use libfuzzer_sys::fuzz_target;

const OPS: [Operation; 4] = [
    Operation::Locate,
    Operation::GetAttributes,
    Operation::Encrypt,
    Operation::Decrypt,
];

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode % 6 {
        0 => {
            if let Ok(uids) = kmip::parse_locate(rest) {
                assert!(uids.len() <= MAX_CANDIDATES);
                for uid in &uids {
                    assert!(kmip::check_identifier(uid).is_ok());
                }
            }
        }
        1 => {
            if let Ok(attrs) = kmip::parse_attributes(rest) {
                let id = attrs.key_id();
                assert_eq!(key::uid_of(&id).ok(), Some(attrs.uid.as_str()));
                let _ = attrs.unusable();
            }
        }
        2 => {
            let wrap = WrapMode::PROBE_ORDER[usize::from(*mode / 6) % 3];
            if let Ok(blob) = kmip::parse_encrypt(rest, wrap) {
                let parsed = WrappedBlob::parse(&blob).expect("own blob parses");
                assert_eq!(parsed.mode, wrap);
            }
        }
        3 => {
            if let Ok(kek) = kmip::parse_decrypt(rest) {
                assert_eq!(kek.expose().len(), 32);
            }
        }
        4 => {
            let op = OPS[usize::from(*mode / 6) % 4];
            if let Some(header) = rest.get(..8) {
                let header: [u8; 8] = header.try_into().expect("8 bytes");
                if let Ok(len) = kmip::response_body_len(op, &header) {
                    assert!(len + 8 <= MAX_RESPONSE_BYTES);
                }
            }
            if let Err(e) = kmip::parse_response(op, rest) {
                assert!(e.detail.len() <= MAX_ERROR_TEXT + 200, "{}", e.detail.len());
            }
        }
        _ => {
            // A stored blob and the key id it is stored with.
            let split = usize::from(*mode).min(rest.len());
            let (key_id, blob) = rest.split_at(split);
            let key_id = String::from_utf8_lossy(key_id);
            if let Ok(parsed) = WrappedBlob::parse(blob) {
                assert_eq!(parsed.encode().expect("parsed blob encodes"), blob);
                if let Ok(uid) = key::uid_of(&key_id) {
                    let aad = key::gcm_aad(&key_id);
                    assert!(kmip::decrypt_request(None, uid, &parsed, &aad).is_ok());
                }
            }
        }
    }
});
