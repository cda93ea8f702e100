//! The keyring text format (`docs/keyring-format.md`):
//!
//! ```text
//! kms-plugin-keyring v1
//! # comment
//! key <name> <version> <base64 of 32 bytes>
//! ```
//!
//! Lines end with `\n` (a `\r` before it is ignored); fields are separated by spaces or tabs;
//! blank lines and lines starting with `#` (after optional leading whitespace) are ignored.
//! The first other line must be the header.

use alloc::string::ToString;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::{Keyring, KeyringError, base64};
use crate::secret::Secret32;

/// The header line of format version 1.
pub(super) const HEADER: &str = "kms-plugin-keyring v1";
/// The header's first word, to tell "another version" from "no header".
const HEADER_WORD: &str = "kms-plugin-keyring";
/// The header's second word: the format version this build reads.
const HEADER_VERSION: &str = "v1";
/// The largest keyring file accepted (far above `MAX_KEYS` lines).
pub const MAX_FILE_LEN: usize = 1 << 20;
/// The longest line accepted.
pub const MAX_LINE_LEN: usize = 1024;

pub(super) const BAD_NAME: &str =
    "invalid key name (1-64 characters of a-z 0-9 . _ -, starting with a letter or digit)";
pub(super) const BAD_VERSION: &str =
    "invalid version (a decimal number from 1 to 4294967295 without leading zeros)";

/// Parses a version number: decimal, no sign, no leading zero, 1..=u32::MAX.
pub(super) fn parse_version(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.first() == Some(&b'0') || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.parse().ok()
}

fn is_field_separator(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits a line into space/tab-separated fields.
fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| is_field_separator(*b))
        .filter(|field| !field.is_empty())
}

pub(super) fn parse(text: &[u8]) -> Result<Keyring, KeyringError> {
    if text.len() > MAX_FILE_LEN {
        return Err(KeyringError::general(
            "keyring file too large (at most 1 MiB)",
        ));
    }
    let mut keyring = Keyring::new();
    let mut header_seen = false;
    for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        if raw.len() > MAX_LINE_LEN {
            return Err(KeyringError::at(
                line_no,
                "line too long (at most 1024 bytes)",
            ));
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if core::str::from_utf8(line).is_err() {
            return Err(KeyringError::at(line_no, "line is not valid UTF-8"));
        }
        let mut words = fields(line);
        let Some(first) = words.next() else {
            continue; // blank line
        };
        if first.first() == Some(&b'#') {
            continue; // comment
        }
        if !header_seen {
            let mut header_words = fields(line);
            let is_header = header_words.next() == Some(HEADER_WORD.as_bytes())
                && header_words.next() == Some(HEADER_VERSION.as_bytes())
                && header_words.next().is_none();
            if is_header {
                header_seen = true;
                continue;
            }
            let reason = if first == HEADER_WORD.as_bytes() {
                "unsupported keyring format version (this build reads `kms-plugin-keyring v1`)"
            } else {
                "missing header line `kms-plugin-keyring v1`"
            };
            return Err(KeyringError::at(line_no, reason));
        }
        if first == HEADER_WORD.as_bytes() {
            return Err(KeyringError::at(line_no, "header line repeated"));
        }
        let (Some(name), Some(version), Some(key), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(KeyringError::at(
                line_no,
                "expected `key <name> <version> <base64 key>`",
            ));
        };
        if first != b"key" {
            return Err(KeyringError::at(
                line_no,
                "expected `key <name> <version> <base64 key>`",
            ));
        }
        let name = core::str::from_utf8(name)
            .ok()
            .filter(|n| super::is_valid_name(n))
            .ok_or(KeyringError::at(line_no, BAD_NAME))?;
        let version = core::str::from_utf8(version)
            .ok()
            .and_then(parse_version)
            .ok_or(KeyringError::at(line_no, BAD_VERSION))?;
        let bytes = base64::decode(key).ok_or(KeyringError::at(
            line_no,
            "key is not valid padded standard base64",
        ))?;
        let secret = Secret32::from_slice(&bytes).ok_or(KeyringError::at(
            line_no,
            "key is not 32 bytes (44 base64 characters)",
        ))?;
        keyring
            .insert(name, version, secret)
            .map_err(|reason| KeyringError::at(line_no, reason))?;
    }
    if header_seen {
        Ok(keyring)
    } else {
        Err(KeyringError::general(
            "missing header line `kms-plugin-keyring v1`",
        ))
    }
}

/// The comment line `serialize` writes after the header.
const SERIALIZED_COMMENT: &[u8] =
    b"# key <name> <version> <base64 of 32 bytes>; keep old versions: they decrypt old data\n";
/// The longest serialized key line: `key ` + name + ` ` + 10 digits + ` ` + 44 + `\n`.
const MAX_KEY_LINE: usize = 4 + super::MAX_NAME_LEN + 1 + 10 + 1 + 44 + 1;

/// Writes the keyring in the v1 text format: header, one comment, then `key` lines sorted by
/// name and version. The buffer is allocated once at its final size bound, so no reallocation
/// leaves a copy of key material in freed memory.
pub(super) fn serialize(keyring: &Keyring) -> Zeroizing<Vec<u8>> {
    let capacity = HEADER.len() + 1 + SERIALIZED_COMMENT.len() + keyring.count * MAX_KEY_LINE;
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    out.extend_from_slice(HEADER.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(SERIALIZED_COMMENT);
    for (name, versions) in &keyring.keys {
        for (version, key) in versions {
            out.extend_from_slice(b"key ");
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            out.extend_from_slice(version.to_string().as_bytes());
            out.push(b' ');
            base64::encode_into(key.expose(), &mut out);
            out.push(b'\n');
        }
    }
    debug_assert!(out.len() <= capacity);
    out
}
