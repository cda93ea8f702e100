//! The local key-file provider's pure part: a keyring of named, versioned 32-byte keys.
//!
//! The `local` remote-KEK provider (architecture §6) keeps its keys in a small text file (format
//! in `docs/keyring-format.md`, codec in `keyring/text.rs`). The runtime reads and writes the file; this
//! module parses and serializes it, names each key version with a stable public `key_id`, and
//! wraps / unwraps local KEKs under a named version with AES-256-GCM.
//!
//! Rotation ([`Keyring::add_key`]) adds a version and makes it current; staging
//! ([`Keyring::stage_key`]) adds one that unwraps but is not current until
//! [`Keyring::promote`], so several hosts can all learn a version before any wraps under it.
//! Old versions stay, so everything they wrapped still unwraps; a replacement keyring that
//! lacks a version or changed its bytes is detected by [`Keyring::check_successor`].
//! key_ids depend only on the keyring's content, so every host given the same file reports the
//! same key_id (docs/protocol.md §4: Status.key_id must not flip-flop across replicas), and
//! [`Keyring::fingerprint`] lets operators compare whole keyrings across hosts.

pub(crate) mod base64;
mod lineage;
mod text;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use lineage::{Promotion, SuccessorError, UnknownKeyId};
pub use text::{MAX_FILE_LEN, MAX_LINE_LEN};

use crate::effect::{RemoteError, RemoteErrorKind};
use crate::secret::Secret32;

/// The most key versions a keyring holds (all names together).
pub const MAX_KEYS: usize = 4096;
/// The longest key name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Domain separation for key ids.
const KEY_ID_DOMAIN: &[u8] = b"kms-plugin/keyring-key-id/v1\0";
/// Domain separation for the AAD of wrapped local KEKs.
const WRAP_AAD_DOMAIN: &[u8] = b"kms-plugin/keyring-wrap/v1\0";
/// First byte of a wrapped local KEK (format revision 1).
const WRAP_FORMAT: u8 = 0x01;
/// `format(1) | nonce(12) | AES-256-GCM(kek)(32) | tag(16)`.
pub const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;
/// Prefix of every keyring key_id.
const KEY_ID_PREFIX: &str = "local:";

/// A keyring problem, naming the line (1-based) when it comes from parsing.
///
/// `reason` is a fixed phrase: it never contains key material or any other file content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringError {
    /// The 1-based line number in the parsed text, if the error is about one line.
    pub line: Option<usize>,
    /// What is wrong, as a fixed phrase.
    pub reason: &'static str,
}

impl KeyringError {
    fn at(line: usize, reason: &'static str) -> Self {
        Self {
            line: Some(line),
            reason,
        }
    }

    fn general(reason: &'static str) -> Self {
        Self { line: None, reason }
    }
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => f.write_str(self.reason),
        }
    }
}

impl core::error::Error for KeyringError {}

/// Named keys, each with versioned 32-byte secrets. No `Clone` or `Debug`: it holds secrets.
///
/// Invariants: names are valid ([`is_valid_name`]); versions are >= 1; at most [`MAX_KEYS`]
/// versions in all; no two versions hold the same key bytes; a pinned current version exists.
pub struct Keyring {
    keys: BTreeMap<String, BTreeMap<u32, Secret32>>,
    /// Explicit current versions (format 2 `current` lines, staging). A name without an entry
    /// uses its highest version.
    current: BTreeMap<String, u32>,
    count: usize,
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `name` is a valid key name: 1..=64 bytes of `[a-z0-9._-]`, starting with a lowercase
/// letter or digit (so it can never contain the `:` that separates key_id fields).
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() <= MAX_NAME_LEN
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

impl Keyring {
    /// The key name the plugin uses when none is configured.
    pub const DEFAULT_KEY_NAME: &'static str = "default";

    /// An empty keyring.
    pub fn new() -> Self {
        Self {
            keys: BTreeMap::new(),
            current: BTreeMap::new(),
            count: 0,
        }
    }

    /// Parses keyring text (format in `docs/keyring-format.md`). Strict: any problem is an
    /// error naming the line; the error never echoes file content.
    pub fn parse(text: &[u8]) -> Result<Self, KeyringError> {
        text::parse(text)
    }

    /// The keyring as text that [`Keyring::parse`] reads back to the same keys. Comments in the
    /// parsed file are not preserved. Zeroizing, because it holds every key.
    pub fn serialize(&self) -> Zeroizing<Vec<u8>> {
        text::serialize(self)
    }

    /// Inserts `key` as version `version` of `name` (parsing and rotation share this).
    fn insert(&mut self, name: &str, version: u32, key: Secret32) -> Result<(), &'static str> {
        if !is_valid_name(name) {
            return Err(text::BAD_NAME);
        }
        if version == 0 {
            return Err(text::BAD_VERSION);
        }
        if self.count >= MAX_KEYS {
            return Err("too many keys (at most 4096 versions)");
        }
        if self
            .keys
            .get(name)
            .is_some_and(|versions| versions.contains_key(&version))
        {
            return Err("duplicate version for this key name");
        }
        let duplicate_material = self
            .keys
            .values()
            .flat_map(BTreeMap::values)
            .any(|existing| existing.expose() == key.expose());
        if duplicate_material {
            return Err("the same key bytes appear in another entry");
        }
        self.keys
            .entry(String::from(name))
            .or_default()
            .insert(version, key);
        self.count += 1;
        Ok(())
    }

    /// Adds `key` as the next version of `name` and makes it current (rotation): version 1 for
    /// a new name, else the highest version + 1 (staged versions included, so a version number
    /// is never given twice). Earlier versions stay, so what they wrapped still unwraps.
    ///
    /// Errors (no line): invalid name, no version number left, too many keys, or key bytes that
    /// are already in the keyring.
    pub fn add_key(&mut self, name: &str, key: Secret32) -> Result<u32, KeyringError> {
        let version = self.next_version(name)?;
        self.insert(name, version, key)
            .map_err(KeyringError::general)?;
        self.current.insert(String::from(name), version);
        Ok(version)
    }

    /// Adds `key` as the next version of the existing key `name` without making it current
    /// (staging): it unwraps at once, but new local KEKs stay wrapped under the current
    /// version until [`Keyring::promote`]. Errors as [`Keyring::add_key`], and for a name that
    /// does not exist yet (a new name has nothing to stay current: use `add_key`).
    pub fn stage_key(&mut self, name: &str, key: Secret32) -> Result<u32, KeyringError> {
        let current = self.current_version(name).ok_or_else(|| {
            KeyringError::general("no key of this name to stage a version for (create it first)")
        })?;
        let version = self.next_version(name)?;
        self.insert(name, version, key)
            .map_err(KeyringError::general)?;
        self.current.insert(String::from(name), current);
        Ok(version)
    }

    /// Makes the highest version of `name` current (the second step of a staged rotation).
    /// Errors for an unknown name; promoting when the highest version is already current
    /// changes nothing and says so ([`Promotion::changed`] is false).
    pub fn promote(&mut self, name: &str) -> Result<Promotion, KeyringError> {
        let from = self
            .current_version(name)
            .ok_or_else(|| KeyringError::general("no key of this name"))?;
        let to = self.latest_version(name).unwrap_or(from);
        self.current.insert(String::from(name), to);
        Ok(Promotion { from, to })
    }

    fn next_version(&self, name: &str) -> Result<u32, KeyringError> {
        match self.latest_version(name) {
            None => Ok(1),
            Some(latest) => latest
                .checked_add(1)
                .ok_or_else(|| KeyringError::general("no version number left for this key name")),
        }
    }

    /// The key names, in byte order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The versions of `name`, ascending (empty for an unknown name).
    pub fn versions(&self, name: &str) -> impl Iterator<Item = u32> {
        self.keys
            .get(name)
            .into_iter()
            .flat_map(|versions| versions.keys().copied())
    }

    /// The current version of `name`: the one new local KEKs are wrapped under. It is the
    /// pinned version (a `current` line, or the version current when another was staged), else
    /// the highest version.
    pub fn current_version(&self, name: &str) -> Option<u32> {
        self.current
            .get(name)
            .copied()
            .or_else(|| self.latest_version(name))
    }

    /// The highest version of `name` (staged or current).
    pub fn latest_version(&self, name: &str) -> Option<u32> {
        self.keys
            .get(name)
            .and_then(|versions| versions.keys().next_back().copied())
    }

    /// The versions of `name` above its current one: staged, they unwrap but wrap nothing yet.
    pub fn staged_versions(&self, name: &str) -> impl Iterator<Item = u32> {
        let current = self.current_version(name).unwrap_or(u32::MAX);
        self.versions(name).filter(move |v| *v > current)
    }

    /// Total number of key versions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the keyring holds no keys.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn key(&self, name: &str, version: u32) -> Option<&Secret32> {
        self.keys.get(name)?.get(&version)
    }

    /// The public key_id of (`name`, `version`):
    /// `local:<name>:v<version>:<16 hex digits of SHA-256(domain | len(name) | name | version | key)>`.
    ///
    /// Depends only on the keyring's content (same file on every host, same id); one-way, so
    /// not secret; 1..=1024 bytes of ASCII; distinct for distinct versions, so never reused
    /// as long as versions only grow. `None` if the keyring has no such version.
    pub fn key_id(&self, name: &str, version: u32) -> Option<String> {
        let key = self.key(name, version)?;
        Some(compute_key_id(name, version, key))
    }

    /// The key_id of the current version of `name`.
    pub fn current_key_id(&self, name: &str) -> Option<String> {
        self.key_id(name, self.current_version(name)?)
    }

    /// Finds the key a key_id names, checking the full key_id (including its hash) so a key_id
    /// from a keyring whose key bytes have since changed is not found.
    fn key_for_id(&self, key_id: &str) -> Option<&Secret32> {
        let rest = key_id.strip_prefix(KEY_ID_PREFIX)?;
        let mut fields = rest.split(':');
        let name = fields.next()?;
        let version = text::parse_version(fields.next()?.strip_prefix('v')?)?;
        let key = self.key(name, version)?;
        (compute_key_id(name, version, key) == key_id).then_some(key)
    }

    /// Whether `key_id` names a key version in this keyring.
    pub fn contains_key_id(&self, key_id: &str) -> bool {
        self.key_for_id(key_id).is_some()
    }

    /// Wraps a local KEK under the key `key_id` names:
    /// `0x01 | nonce(12) | AES-256-GCM(key, nonce, aad = domain | key_id)(kek) | tag(16)`.
    ///
    /// `nonce` must come from the caller's entropy (fresh per call). Errors: `NotFound` when
    /// `key_id` names no key here.
    pub fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        nonce: [u8; 12],
    ) -> Result<Vec<u8>, RemoteError> {
        let key = self.key_for_id(key_id).ok_or_else(not_found)?;
        let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| wrap_failed())?;
        // Zeroizing while it holds the plaintext KEK; on success the ciphertext is moved out.
        let mut out = Zeroizing::new(Vec::with_capacity(WRAPPED_LEN));
        out.push(WRAP_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(kek.expose());
        let body = out.get_mut(13..).ok_or_else(wrap_failed)?;
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &wrap_aad(key_id), body)
            .map_err(|_| wrap_failed())?;
        out.extend_from_slice(&tag);
        Ok(core::mem::take(&mut *out))
    }

    /// Unwraps a blob [`Keyring::wrap`] produced under `key_id`.
    ///
    /// Errors: `NotFound` when `key_id` names no key here; `Corrupt` for a blob that is
    /// malformed or does not open (wrong key, wrong key_id, tampered).
    pub fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<Secret32, RemoteError> {
        let key = self.key_for_id(key_id).ok_or_else(not_found)?;
        if wrapped.len() != WRAPPED_LEN || wrapped.first() != Some(&WRAP_FORMAT) {
            return Err(corrupt());
        }
        let nonce = wrapped.get(1..13).ok_or_else(corrupt)?;
        let body = wrapped.get(13..45).ok_or_else(corrupt)?;
        let tag = wrapped.get(45..).ok_or_else(corrupt)?;
        let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| corrupt())?;
        let mut buffer = Zeroizing::new([0u8; 32]);
        buffer.copy_from_slice(body);
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &wrap_aad(key_id),
                buffer.as_mut_slice(),
                Tag::from_slice(tag),
            )
            .map_err(|_| corrupt())?;
        Ok(Secret32::from_bytes(*buffer))
    }
}

fn not_found() -> RemoteError {
    RemoteError::new(RemoteErrorKind::NotFound, "key_id is not in the keyring")
}

fn corrupt() -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Corrupt,
        "wrapped KEK does not open under the keyring key",
    )
}

/// Not reachable (AES-256-GCM takes any 32-byte key and a 32-byte message).
fn wrap_failed() -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Other,
        "wrapping under the keyring key failed",
    )
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_DOMAIN.len() + key_id.len());
    aad.extend_from_slice(WRAP_AAD_DOMAIN);
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

fn compute_key_id(name: &str, version: u32, key: &Secret32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(KEY_ID_DOMAIN);
    hasher.update([name.len() as u8]);
    hasher.update(name.as_bytes());
    hasher.update(version.to_be_bytes());
    hasher.update(key.expose());
    let digest = hasher.finalize();
    let mut id = String::with_capacity(KEY_ID_PREFIX.len() + name.len() + 12 + 16);
    let _ = write!(id, "{KEY_ID_PREFIX}{name}:v{version}:");
    for byte in digest.iter().take(8) {
        let _ = write!(id, "{byte:02x}");
    }
    id
}
