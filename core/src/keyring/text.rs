//! The keyring text format (`docs/keyring-format.md`). Format 2, written by this build:
//!
//! ```text
//! kms-plugin-keyring v2
//! # comment
//! key <name> <version> <base64 of 32 bytes>
//! current <name> <version>
//! end <number of key lines> sha256:<64 hex digits of SHA-256 of every byte before this line>
//! ```
//!
//! Format 1 (`kms-plugin-keyring v1`, no `current` and no `end` line) is still read; the next
//! write upgrades it. Lines end with `\n` (a `\r` before it is ignored); fields are separated
//! by spaces or tabs; blank lines and lines starting with `#` (after optional leading
//! whitespace) are ignored. The first other line must be the header. In format 2 the `end`
//! line is required and must be the last line, so a truncated or partly copied file is
//! refused instead of silently losing the versions after the cut.

use alloc::string::ToString;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Keyring, KeyringError, base64};
use crate::secret::Secret32;

/// The header line of the format this build writes (format 2).
pub(super) const HEADER: &str = "kms-plugin-keyring v2";
/// The header's first word, to tell "another version" from "no header".
const HEADER_WORD: &str = "kms-plugin-keyring";
/// The largest keyring file accepted (far above `MAX_KEYS` lines).
pub const MAX_FILE_LEN: usize = 1 << 20;
/// The longest line accepted.
pub const MAX_LINE_LEN: usize = 1024;

pub(super) const BAD_NAME: &str =
    "invalid key name (1-64 characters of a-z 0-9 . _ -, starting with a letter or digit)";
pub(super) const BAD_VERSION: &str =
    "invalid version (a decimal number from 1 to 4294967295 without leading zeros)";
const UNSUPPORTED: &str =
    "unsupported keyring format version (this build reads `kms-plugin-keyring v1` and `v2`)";
const MISSING_HEADER: &str = "missing header line `kms-plugin-keyring v2`";
const KEY_LINE: &str = "expected `key <name> <version> <base64 key>`";
const TRUNCATED: &str = "keyring file is incomplete (no `end` line): it was truncated or cut \
     while copying; restore the complete file from a backup or another host";

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

/// Which format revision a file declares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    V1,
    V2,
}

/// The `end` line's content once seen.
struct EndLine {
    line_no: usize,
    count: usize,
    checksum_ok: bool,
}

pub(super) fn parse(text: &[u8]) -> Result<Keyring, KeyringError> {
    if text.len() > MAX_FILE_LEN {
        return Err(KeyringError::general(
            "keyring file too large (at most 1 MiB)",
        ));
    }
    if declares_format_2(text) && !has_end_line(text) {
        // Checked first, so a cut inside a key line is reported as the truncation it is.
        return Err(KeyringError::general(TRUNCATED));
    }
    let mut keyring = Keyring::new();
    let mut format: Option<Format> = None;
    let mut end: Option<EndLine> = None;
    let mut currents: Vec<(usize, &str, u32)> = Vec::new();
    let mut offset = 0usize;
    for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        let line_start = offset;
        offset += raw.len() + 1;
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
        if end.is_some() {
            return Err(KeyringError::at(
                line_no,
                "text after the `end` line (the `end` line must be last)",
            ));
        }
        if first.first() == Some(&b'#') {
            continue; // comment
        }
        let Some(fmt) = format else {
            format = Some(parse_header(line, line_no)?);
            continue;
        };
        match first {
            b"kms-plugin-keyring" => {
                return Err(KeyringError::at(line_no, "header line repeated"));
            }
            b"key" => {
                let (Some(name), Some(version), Some(key), None) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    return Err(KeyringError::at(line_no, KEY_LINE));
                };
                let name = parse_name(name, line_no)?;
                let version = parse_version_field(version, line_no)?;
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
            b"current" if fmt == Format::V2 => {
                let (Some(name), Some(version), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(KeyringError::at(
                        line_no,
                        "expected `current <name> <version>`",
                    ));
                };
                let name = parse_name(name, line_no)?;
                let version = parse_version_field(version, line_no)?;
                if currents.iter().any(|(_, n, _)| *n == name) {
                    return Err(KeyringError::at(
                        line_no,
                        "a second `current` line for this key name",
                    ));
                }
                currents.push((line_no, name, version));
            }
            b"end" if fmt == Format::V2 => {
                let (Some(count), Some(sum), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(KeyringError::at(
                        line_no,
                        "expected `end <key count> sha256:<64 hex digits>`",
                    ));
                };
                let count = core::str::from_utf8(count)
                    .ok()
                    .and_then(|c| c.parse::<usize>().ok())
                    .ok_or(KeyringError::at(line_no, "invalid key count in `end` line"))?;
                let expected =
                    sum.strip_prefix(b"sha256:")
                        .and_then(parse_hex32)
                        .ok_or(KeyringError::at(
                            line_no,
                            "invalid checksum in `end` line (expected sha256:<64 hex digits>)",
                        ))?;
                let covered = text.get(..line_start).unwrap_or_default();
                let actual: [u8; 32] = Sha256::digest(covered).into();
                end = Some(EndLine {
                    line_no,
                    count,
                    checksum_ok: actual == expected,
                });
            }
            _ if fmt == Format::V2 => {
                return Err(KeyringError::at(
                    line_no,
                    "expected a `key`, `current` or `end` line",
                ));
            }
            _ => return Err(KeyringError::at(line_no, KEY_LINE)),
        }
    }
    match format {
        None => return Err(KeyringError::general(MISSING_HEADER)),
        Some(Format::V1) => {}
        Some(Format::V2) => {
            let end = end.ok_or(KeyringError::general(TRUNCATED))?;
            if !end.checksum_ok {
                return Err(KeyringError::at(
                    end.line_no,
                    "checksum does not match the file: it was changed or damaged after it was \
                     written; restore it from a backup or another host",
                ));
            }
            if end.count != keyring.len() {
                return Err(KeyringError::at(
                    end.line_no,
                    "key count does not match the key lines: restore the complete file",
                ));
            }
        }
    }
    for (line_no, name, version) in currents {
        if keyring.key(name, version).is_none() {
            return Err(KeyringError::at(
                line_no,
                "`current` names a version that is not in the file",
            ));
        }
        keyring.current.insert(name.to_string(), version);
    }
    Ok(keyring)
}

/// Non-blank, non-comment lines (without a trailing `\r`).
fn content_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n')
        .map(|raw| raw.strip_suffix(b"\r").unwrap_or(raw))
        .filter(|line| {
            fields(line)
                .next()
                .is_some_and(|w| w.first() != Some(&b'#'))
        })
}

fn declares_format_2(text: &[u8]) -> bool {
    content_lines(text).next().is_some_and(|line| {
        let mut words = fields(line);
        words.next() == Some(HEADER_WORD.as_bytes()) && words.next() == Some(b"v2")
    })
}

fn has_end_line(text: &[u8]) -> bool {
    content_lines(text).any(|line| fields(line).next() == Some(b"end"))
}

fn parse_header(line: &[u8], line_no: usize) -> Result<Format, KeyringError> {
    let mut words = fields(line);
    let first = words.next();
    let second = words.next();
    let extra = words.next();
    if first != Some(HEADER_WORD.as_bytes()) {
        return Err(KeyringError::at(line_no, MISSING_HEADER));
    }
    match (second, extra) {
        (Some(b"v1"), None) => Ok(Format::V1),
        (Some(b"v2"), None) => Ok(Format::V2),
        _ => Err(KeyringError::at(line_no, UNSUPPORTED)),
    }
}

fn parse_name(field: &[u8], line_no: usize) -> Result<&str, KeyringError> {
    core::str::from_utf8(field)
        .ok()
        .filter(|n| super::is_valid_name(n))
        .ok_or(KeyringError::at(line_no, BAD_NAME))
}

fn parse_version_field(field: &[u8], line_no: usize) -> Result<u32, KeyringError> {
    core::str::from_utf8(field)
        .ok()
        .and_then(parse_version)
        .ok_or(KeyringError::at(line_no, BAD_VERSION))
}

fn parse_hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The comment line `serialize` writes after the header.
const SERIALIZED_COMMENT: &[u8] = b"# written by kms-plugin; edit only with `kms-plugin keys` \
(the `end` line checks the whole file); keep old versions: they decrypt old data\n";
/// The longest serialized key line: `key ` + name + ` ` + 10 digits + ` ` + 44 + `\n`.
const MAX_KEY_LINE: usize = 4 + super::MAX_NAME_LEN + 1 + 10 + 1 + 44 + 1;
/// The longest `current` line: `current ` + name + ` ` + 10 digits + `\n`.
const MAX_CURRENT_LINE: usize = 8 + super::MAX_NAME_LEN + 1 + 10 + 1;
/// The `end` line: `end ` + up to 10 digits + ` sha256:` + 64 + `\n`.
const MAX_END_LINE: usize = 4 + 10 + 8 + 64 + 1;

/// Writes the keyring in format 2: header, one comment, `key` lines sorted by name and
/// version, one `current` line per name, and the `end` line. The buffer is allocated once at
/// its final size bound, so no reallocation leaves a copy of key material in freed memory.
pub(super) fn serialize(keyring: &Keyring) -> Zeroizing<Vec<u8>> {
    let capacity = HEADER.len()
        + 1
        + SERIALIZED_COMMENT.len()
        + keyring.count * MAX_KEY_LINE
        + keyring.keys.len() * MAX_CURRENT_LINE
        + MAX_END_LINE;
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
    for name in keyring.keys.keys() {
        if let Some(current) = keyring.current_version(name) {
            out.extend_from_slice(b"current ");
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            out.extend_from_slice(current.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    let digest = Sha256::digest(out.as_slice());
    out.extend_from_slice(b"end ");
    out.extend_from_slice(keyring.count.to_string().as_bytes());
    out.extend_from_slice(b" sha256:");
    for byte in digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
    out.push(b'\n');
    debug_assert!(out.len() <= capacity);
    out
}
