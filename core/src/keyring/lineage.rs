//! A keyring's history: the append-only rule between a loaded keyring and its replacement,
//! fingerprints for comparing hosts, and what an unknown key_id tells about a lost version.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;
use sha2::{Digest, Sha256};

use super::{KEY_ID_PREFIX, Keyring, compute_key_id, text};

/// Domain separation for keyring fingerprints.
const FINGERPRINT_DOMAIN: &[u8] = b"kms-plugin/keyring-fingerprint/v1\0";
/// Prefix of every fingerprint.
const FINGERPRINT_PREFIX: &str = "kr1:";
/// Versions listed by name in a [`SuccessorError`]'s text; the rest are counted.
const LISTED_VERSIONS: usize = 8;

/// The result of [`Keyring::promote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The version current before.
    pub from: u32,
    /// The version current now (the highest one).
    pub to: u32,
}

impl Promotion {
    /// Whether the current version moved.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

/// Why a replacement keyring breaks the append-only rule: versions it lacks, and versions
/// it holds with other key bytes. Its text names them (never key bytes) and is safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessorError {
    /// `(name, version)` pairs loaded before that the replacement lacks.
    pub missing: Vec<(String, u32)>,
    /// `(name, version)` pairs the replacement holds with different key bytes.
    pub changed: Vec<(String, u32)>,
}

impl SuccessorError {
    /// The missing versions as `name vN`, at most 8 named (then `and N more`).
    pub fn missing_list(&self) -> String {
        list(&self.missing)
    }

    /// The changed versions as `name vN`, at most 8 named.
    pub fn changed_list(&self) -> String {
        list(&self.changed)
    }
}

fn list(versions: &[(String, u32)]) -> String {
    let mut out = String::new();
    for (i, (name, version)) in versions.iter().take(LISTED_VERSIONS).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{name} v{version}");
    }
    if versions.len() > LISTED_VERSIONS {
        let _ = write!(out, " and {} more", versions.len() - LISTED_VERSIONS);
    }
    out
}

impl fmt::Display for SuccessorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.missing.is_empty() {
            write!(f, "it lacks loaded key versions {}", self.missing_list())?;
        }
        if !self.changed.is_empty() {
            let sep = if self.missing.is_empty() { "" } else { "; " };
            write!(
                f,
                "{sep}it holds different key bytes for {}",
                self.changed_list()
            )?;
        }
        Ok(())
    }
}

impl core::error::Error for SuccessorError {}

/// What a key_id the keyring cannot find says about the keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnknownKeyId {
    /// A local key_id of a version this keyring does not hold (a newer file was replaced by an
    /// older one, or the version was deleted).
    MissingVersion {
        /// The key name.
        name: String,
        /// The version.
        version: u32,
    },
    /// The version exists but with other key bytes than the ones the key_id was made from.
    ChangedVersion {
        /// The key name.
        name: String,
        /// The version.
        version: u32,
    },
    /// Not a key_id this provider makes.
    Foreign,
}

impl Keyring {
    /// Checks the append-only rule for `replacement`, a newer read of the same file: it must
    /// hold every version this keyring holds, with the same key bytes. Adding versions and
    /// moving the current version are fine.
    pub fn check_successor(&self, replacement: &Self) -> Result<(), SuccessorError> {
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        for (name, versions) in &self.keys {
            for (version, key) in versions {
                match replacement.key(name, *version) {
                    None => missing.push((name.clone(), *version)),
                    // key_ids hash the key bytes: equal ids, equal keys (no secret comparison).
                    Some(other)
                        if compute_key_id(name, *version, other)
                            != compute_key_id(name, *version, key) =>
                    {
                        changed.push((name.clone(), *version));
                    }
                    Some(_) => {}
                }
            }
        }
        if missing.is_empty() && changed.is_empty() {
            Ok(())
        } else {
            Err(SuccessorError { missing, changed })
        }
    }

    /// A short public digest of the whole keyring (every name, version, key and which version
    /// is current): `kr1:<16 hex digits>`. Two hosts with equal fingerprints hold the same keys
    /// and wrap under the same versions. One-way, like key_ids; ASCII, fit for a metric label.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(FINGERPRINT_DOMAIN);
        for (name, versions) in &self.keys {
            hasher.update([name.len() as u8]);
            hasher.update(name.as_bytes());
            hasher.update(self.current_version(name).unwrap_or(0).to_be_bytes());
            hasher.update((versions.len() as u32).to_be_bytes());
            for (version, key) in versions {
                hasher.update(version.to_be_bytes());
                hasher.update(key.expose());
            }
        }
        let digest = hasher.finalize();
        let mut out = String::with_capacity(FINGERPRINT_PREFIX.len() + 16);
        out.push_str(FINGERPRINT_PREFIX);
        for byte in digest.iter().take(8) {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// Explains a key_id [`Keyring::contains_key_id`] rejects: which version is missing or
    /// changed, so errors can name it and say to restore the newer key file.
    pub fn explain_unknown_key_id(&self, key_id: &str) -> UnknownKeyId {
        let parsed = key_id.strip_prefix(KEY_ID_PREFIX).and_then(|rest| {
            let mut fields = rest.split(':');
            let name = fields.next().filter(|n| super::is_valid_name(n))?;
            let version = text::parse_version(fields.next()?.strip_prefix('v')?)?;
            Some((String::from(name), version))
        });
        match parsed {
            None => UnknownKeyId::Foreign,
            Some((name, version)) if self.key(&name, version).is_some() => {
                UnknownKeyId::ChangedVersion { name, version }
            }
            Some((name, version)) => UnknownKeyId::MissingVersion { name, version },
        }
    }
}
