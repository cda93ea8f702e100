//! Which server key is current, its key id, and the wrapped-KEK blob (pure).
//!
//! Key id: `kmip:<unique identifier>:<hex16>`, `hex16` = the first 8 bytes of SHA-256 over the
//! key's unique identifier, algorithm, length, Initial Date and Digest (those the server has).
//! Every host that reaches the same key reports the same key id; a key re-created under the
//! same unique identifier (a server whose database was reset hands out "1" again) has another
//! Initial Date or Digest and so another key id. The key's name is left out: renaming a key
//! does not change the material, and blobs keep naming the key by its unique identifier.
//!
//! Blob (what the core stores as the wrapped local KEK), one version byte per wrap mode, so
//! every blob says how to open it whatever mode the server is probed to support later:
//! - `0x01` AES-GCM: `0x01 | iv_len | IV | tag (16) | ciphertext (32)`; the server draws the IV
//!   (Random IV), the additional data is `"kms-plugin/kmip/v1\0" | key id`, so a blob only
//!   opens under the key id it was wrapped for;
//! - `0x02` NIST AES key wrap (RFC 3394): `0x02 | wrapped (40)`;
//! - `0x03` AES key wrap with padding (RFC 5649): `0x03 | wrapped (40)`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use super::{check_identifier, value};
use crate::effect::{RemoteError, RemoteErrorKind};

/// Tag length asked for in GCM mode (bytes).
pub const GCM_TAG_LEN: usize = 16;
/// Longest IV accepted from a server (PyKMIP draws 16 bytes, most servers 12).
pub const MAX_IV_LEN: usize = 32;
/// State `Active` (the only state a key is used to wrap in).
pub const STATE_ACTIVE: u32 = 2;

/// How the local KEK is wrapped with the server's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrapMode {
    /// Encrypt/Decrypt in AES-GCM (authenticated; preferred).
    Gcm,
    /// NIST AES key wrap, RFC 3394 (Block Cipher Mode `NISTKeyWrap`).
    NistKeyWrap,
    /// AES key wrap with padding, RFC 5649 (Block Cipher Mode `AESKeyWrapPadding`).
    KeyWrapPadding,
}

impl WrapMode {
    /// The modes in the order the start-up probe tries them.
    pub const PROBE_ORDER: [Self; 3] = [Self::Gcm, Self::NistKeyWrap, Self::KeyWrapPadding];

    /// The Block Cipher Mode enumeration value.
    pub const fn block_cipher_mode(self) -> u32 {
        match self {
            Self::Gcm => 0x09,
            Self::NistKeyWrap => 0x0D,
            Self::KeyWrapPadding => 0x0C,
        }
    }

    /// Name for logs and errors.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gcm => "AES-GCM",
            Self::NistKeyWrap => "NIST AES key wrap (RFC 3394)",
            Self::KeyWrapPadding => "AES key wrap with padding (RFC 5649)",
        }
    }

    /// Parses a `--kmip-mode` value: `gcm`, `key-wrap` or `key-wrap-pad`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gcm" => Some(Self::Gcm),
            "key-wrap" => Some(Self::NistKeyWrap),
            "key-wrap-pad" => Some(Self::KeyWrapPadding),
            _ => None,
        }
    }

    const fn version(self) -> u8 {
        match self {
            Self::Gcm => 0x01,
            Self::NistKeyWrap => 0x02,
            Self::KeyWrapPadding => 0x03,
        }
    }

    const fn from_version(v: u8) -> Option<Self> {
        match v {
            0x01 => Some(Self::Gcm),
            0x02 => Some(Self::NistKeyWrap),
            0x03 => Some(Self::KeyWrapPadding),
            _ => None,
        }
    }
}

/// A wrapped local KEK, borrowed from its blob (see the module docs for the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrappedBlob<'a> {
    /// How it was wrapped.
    pub mode: WrapMode,
    /// GCM IV (empty for key wrap).
    pub iv: &'a [u8],
    /// GCM tag (empty for key wrap).
    pub tag: &'a [u8],
    /// Ciphertext (32 bytes) or key-wrap output (40 bytes).
    pub data: &'a [u8],
}

impl<'a> WrappedBlob<'a> {
    /// Parses a blob made by [`WrappedBlob::encode`]; anything else is `corrupt`.
    pub fn parse(blob: &'a [u8]) -> Result<Self, RemoteError> {
        let bad = || {
            RemoteError::new(
                RemoteErrorKind::Corrupt,
                "kmip: wrapped key blob is malformed",
            )
        };
        let (&version, rest) = blob.split_first().ok_or_else(bad)?;
        let mode = WrapMode::from_version(version).ok_or_else(bad)?;
        let parsed = if mode == WrapMode::Gcm {
            let (&iv_len, rest) = rest.split_first().ok_or_else(bad)?;
            let iv_len = usize::from(iv_len);
            if iv_len == 0 || iv_len > MAX_IV_LEN || rest.len() != iv_len + GCM_TAG_LEN + 32 {
                return Err(bad());
            }
            let (iv, rest) = rest.split_at(iv_len);
            let (tag, data) = rest.split_at(GCM_TAG_LEN);
            Self {
                mode,
                iv,
                tag,
                data,
            }
        } else {
            if rest.len() != 40 {
                return Err(bad());
            }
            Self {
                mode,
                iv: &[],
                tag: &[],
                data: rest,
            }
        };
        Ok(parsed)
    }

    /// The blob bytes, after checking the parts' lengths for the mode.
    pub fn encode(&self) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::with_capacity(2 + self.iv.len() + self.tag.len() + self.data.len());
        out.push(self.mode.version());
        if self.mode == WrapMode::Gcm {
            if self.data.len() != 32 {
                return Err("ciphertext is not 32 bytes");
            }
            if self.iv.is_empty() || self.iv.len() > MAX_IV_LEN {
                return Err("no usable IV (must be 1..=32 bytes)");
            }
            if self.tag.len() != GCM_TAG_LEN {
                return Err("authentication tag is not 16 bytes");
            }
            out.push(u8::try_from(self.iv.len()).unwrap_or(0));
            out.extend_from_slice(self.iv);
            out.extend_from_slice(self.tag);
        } else if self.data.len() != 40 {
            return Err("key wrap output is not 40 bytes");
        }
        out.extend_from_slice(self.data);
        Ok(out)
    }
}

/// The additional data authenticated with a GCM wrap under `key_id`.
pub fn gcm_aad(key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + key_id.len());
    aad.extend_from_slice(b"kms-plugin/kmip/v1\0");
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// What Get Attributes told about one key (`None` = the server did not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAttributes {
    /// Unique Identifier.
    pub uid: String,
    /// Object Type (2 = Symmetric Key).
    pub object_type: Option<u32>,
    /// State (2 = Active).
    pub state: Option<u32>,
    /// Cryptographic Algorithm (3 = AES).
    pub algorithm: Option<u32>,
    /// Cryptographic Length in bits.
    pub length: Option<i32>,
    /// Initial Date (seconds since the Unix epoch).
    pub initial_date: Option<i64>,
    /// The first Digest's value.
    pub digest: Option<Vec<u8>>,
}

impl KeyAttributes {
    /// Attributes of `uid` with nothing known yet.
    pub fn new(uid: &str) -> Self {
        Self {
            uid: String::from(uid),
            object_type: None,
            state: None,
            algorithm: None,
            length: None,
            initial_date: None,
            digest: None,
        }
    }

    /// Why this key cannot wrap (not an Active AES symmetric key), if it cannot.
    pub fn unusable(&self) -> Option<String> {
        if self
            .object_type
            .is_some_and(|t| t != value::OBJECT_SYMMETRIC_KEY)
        {
            return Some(format!("key {:?} is not a symmetric key", self.uid));
        }
        if self.algorithm.is_some_and(|a| a != value::ALGORITHM_AES) {
            return Some(format!("key {:?} is not an AES key", self.uid));
        }
        match self.state {
            Some(STATE_ACTIVE) => None,
            Some(s) => Some(format!(
                "key {:?} is in state {} (must be Active)",
                self.uid,
                state_name(s)
            )),
            None => Some(format!("key {:?}: the server reports no State", self.uid)),
        }
    }

    /// The key id (see the module docs).
    pub fn key_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"kms-plugin/kmip/key-id/v1");
        h.update((self.uid.len() as u64).to_be_bytes());
        h.update(self.uid.as_bytes());
        h.update(self.algorithm.unwrap_or(0).to_be_bytes());
        h.update(self.length.unwrap_or(0).to_be_bytes());
        h.update(self.initial_date.unwrap_or(0).to_be_bytes());
        let digest = self.digest.as_deref().unwrap_or_default();
        h.update((digest.len() as u64).to_be_bytes());
        h.update(digest);
        let sum = h.finalize();
        format!(
            "kmip:{}:{}",
            self.uid,
            crate::kek::hex_lower(sum.get(..8).unwrap_or_default())
        )
    }
}

fn state_name(state: u32) -> &'static str {
    match state {
        1 => "Pre-Active",
        2 => "Active",
        3 => "Deactivated",
        4 => "Compromised",
        5 => "Destroyed",
        6 => "Destroyed Compromised",
        _ => "unknown",
    }
}

/// The unique identifier named by a key id built by [`KeyAttributes::key_id`]; a malformed
/// key id is `not_found`.
pub fn uid_of(key_id: &str) -> Result<&str, RemoteError> {
    let not_found = || {
        RemoteError::new(
            RemoteErrorKind::NotFound,
            format!("key id {key_id:?} is not a KMIP key id"),
        )
    };
    let rest = key_id.strip_prefix("kmip:").ok_or_else(not_found)?;
    let (uid, digest) = rest.rsplit_once(':').ok_or_else(not_found)?;
    if digest.len() != 16 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    check_identifier(uid).map_err(|_| not_found())?;
    Ok(uid)
}

/// The current key among the keys named `name`: the usable (Active AES) one with the latest
/// Initial Date; between keys with the same (or no) Initial Date, the one with the greatest
/// unique identifier (longer first, then bytewise, so PyKMIP's "10" follows "9"). Every host
/// sees the same keys and so picks the same one. No usable key is `not_found`.
pub fn choose_current(
    name: &str,
    candidates: Vec<KeyAttributes>,
) -> Result<KeyAttributes, RemoteError> {
    let total = candidates.len();
    let mut first_problem = None;
    let mut best: Option<KeyAttributes> = None;
    for c in candidates {
        if let Some(problem) = c.unusable() {
            first_problem.get_or_insert(problem);
            continue;
        }
        let rank = |k: &KeyAttributes| (k.initial_date, k.uid.len(), k.uid.clone());
        if best.as_ref().is_none_or(|b| rank(&c) > rank(b)) {
            best = Some(c);
        }
    }
    best.ok_or_else(|| {
        let why = first_problem.unwrap_or_else(|| String::from("no key has that name"));
        RemoteError::new(
            RemoteErrorKind::NotFound,
            format!("kmip: no usable key named {name:?} ({total} found; {why})"),
        )
    })
}

/// The error for data wrapped under `key_id` whose server key is gone (`why`).
pub fn key_gone(key_id: &str, why: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::KeyVersionMissing,
        format!(
            "kmip: the server key of key id {key_id:?} is gone ({why}): data wrapped under it no \
             longer decrypts; restore the key from the KMIP server's backup"
        ),
    )
}

/// Checks that key id `seen` (one Status reported, so data may be wrapped under it) still
/// names a key: `attrs` are its unique identifier's attributes now (`None`: the server has no
/// such object). A missing or destroyed key, or another key under the same unique identifier
/// (a reset server), is [`RemoteErrorKind::KeyVersionMissing`]. A deactivated key is not gone:
/// KMIP allows it to decrypt.
pub fn check_still_present(seen: &str, attrs: Option<&KeyAttributes>) -> Result<(), RemoteError> {
    match attrs {
        None => Err(key_gone(seen, "no such object")),
        Some(a) if matches!(a.state, Some(5 | 6)) => Err(key_gone(seen, "destroyed")),
        Some(a) if a.key_id() != seen => Err(key_gone(
            seen,
            "its unique identifier now names other key material",
        )),
        Some(_) => Ok(()),
    }
}
