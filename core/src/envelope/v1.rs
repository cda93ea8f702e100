//! KMS v1 envelope (self-describing, no annotations):
//! `MAGIC | FORMAT_V1 | u16be(len key_id) | key_id | u16be(len wrapped) | wrapped |
//! info(32) | nonce(12) | AES-256-GCM(plaintext) | tag(16)`.

use alloc::vec::Vec;
use core::fmt;

use super::kdf::{self, INFO_LEN, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};
use super::{FORMAT_V1, MAGIC, OpenError, SealError, aad, key_id_len_ok};
use crate::rng::Rng;
use crate::secret::Secret32;

/// The largest ciphertext kube-apiserver can store for KMS v1: the stored format prefixes the
/// encrypted DEK with a `u16` length (docs/protocol.md §6).
pub const V1_MAX_CIPHERTEXT: usize = 65_535;

/// Header bytes: magic and format.
const HEADER_LEN: usize = 2;

/// Seals `plaintext` (a 32-byte DEK, or `"ping"` from the healthz probe) for KMS v1.
///
/// Guarantees: the output is at most [`V1_MAX_CIPHERTEXT`] bytes; [`parse_v1`] recovers
/// `key_id` and `wrapped_kek` from it; it opens with [`open_v1_into`] only under the same `kek`
/// and with the header, key_id and wrapped KEK unchanged; two calls never return the same
/// bytes.
#[cfg(any(test, feature = "testing"))]
pub fn seal_v1(
    kek: &Secret32,
    key_id: &str,
    wrapped_kek: &[u8],
    plaintext: &[u8],
    rng: &mut Rng,
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(v1_sealed_len(key_id, wrapped_kek, plaintext)?);
    let digest = super::wrapped_kek_digest(wrapped_kek);
    seal_v1_into(kek, key_id, wrapped_kek, &digest, plaintext, rng, &mut out)?;
    Ok(out)
}

/// The exact length of a [`seal_v1_into`] ciphertext for these inputs, or why it cannot be sealed.
pub fn v1_sealed_len(
    key_id: &str,
    wrapped_kek: &[u8],
    plaintext: &[u8],
) -> Result<usize, SealError> {
    if !key_id_len_ok(key_id) {
        return Err(SealError::InvalidKeyId);
    }
    if wrapped_kek.is_empty() || u16::try_from(wrapped_kek.len()).is_err() {
        return Err(SealError::InvalidWrappedKek);
    }
    let total = [
        HEADER_LEN,
        2,
        key_id.len(),
        2,
        wrapped_kek.len(),
        SEAL_OVERHEAD,
        plaintext.len(),
    ]
    .iter()
    .try_fold(0usize, |acc, n| acc.checked_add(*n));
    match total {
        Some(t) if t <= V1_MAX_CIPHERTEXT => Ok(t),
        _ => Err(SealError::TooLarge),
    }
}

/// Seals `plaintext` for KMS v1 (module docs), appending exactly [`v1_sealed_len`] bytes to
/// `out`; `digest` is [`wrapped_kek_digest`](super::wrapped_kek_digest)`(wrapped_kek)`,
/// supplied by a caller that keeps it (the keystore does). On error `out` is unchanged.
pub fn seal_v1_into(
    kek: &Secret32,
    key_id: &str,
    wrapped_kek: &[u8],
    digest: &[u8; 32],
    plaintext: &[u8],
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    v1_sealed_len(key_id, wrapped_kek, plaintext)?;
    let start = out.len();
    out.extend_from_slice(&[MAGIC, FORMAT_V1]);
    out.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&(wrapped_kek.len() as u16).to_be_bytes());
    out.extend_from_slice(wrapped_kek);
    let sealed = kdf::seal_into(
        kek,
        aad(FORMAT_V1, key_id, digest).as_slice(),
        plaintext,
        rng,
        out,
    );
    if sealed.is_err() {
        out.truncate(start);
    }
    sealed
}

/// A v1 ciphertext split into its parts, borrowed from the input.
///
/// `key_id` and `wrapped_kek` tell the keystore which local KEK to unwrap; the rest stays
/// private and is consumed by [`open_v1_into`]. Holds no secrets (everything here is ciphertext
/// or public metadata).
#[derive(Clone, Copy)]
pub struct V1Parts<'a> {
    /// The remote key_id the local KEK was wrapped under (valid UTF-8, 1..=1024 bytes).
    pub key_id: &'a str,
    /// The remote-wrapped local KEK (non-empty).
    pub wrapped_kek: &'a [u8],
    /// HKDF info (exactly 32 bytes).
    info: &'a [u8],
    /// AES-GCM nonce (exactly 12 bytes).
    nonce: &'a [u8],
    /// AES-GCM ciphertext and tag (at least 16 bytes).
    sealed: &'a [u8],
}

impl fmt::Debug for V1Parts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V1Parts")
            .field("key_id", &self.key_id)
            .field("wrapped_kek_len", &self.wrapped_kek.len())
            .field("sealed_len", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// Reads one `u16be`-length-prefixed field, checking the length against what is left.
fn take_prefixed(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_at_checked(2)?;
    let len = u16::from_be_bytes([*len.first()?, *len.get(1)?]) as usize;
    rest.split_at_checked(len)
}

/// Splits a v1 ciphertext without decrypting it (cheap: no hashing, no AES).
///
/// Checks the header, every length prefix against the remaining input, that `key_id` is
/// 1..=1024 bytes of UTF-8, that the wrapped KEK is non-empty and that the rest can hold
/// `info | nonce | tag`. Any failure is the opaque [`OpenError`]; no input panics.
pub fn parse_v1(ciphertext: &[u8]) -> Result<V1Parts<'_>, OpenError> {
    if ciphertext.len() > V1_MAX_CIPHERTEXT {
        return Err(OpenError);
    }
    let (header, rest) = ciphertext.split_at_checked(HEADER_LEN).ok_or(OpenError)?;
    if header != [MAGIC, FORMAT_V1] {
        return Err(OpenError);
    }
    let (key_id, rest) = take_prefixed(rest).ok_or(OpenError)?;
    let key_id = core::str::from_utf8(key_id).map_err(|_| OpenError)?;
    if !key_id_len_ok(key_id) {
        return Err(OpenError);
    }
    let (wrapped_kek, rest) = take_prefixed(rest).ok_or(OpenError)?;
    if wrapped_kek.is_empty() {
        return Err(OpenError);
    }
    let (info, rest) = rest.split_at_checked(INFO_LEN).ok_or(OpenError)?;
    let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(OpenError)?;
    if sealed.len() < TAG_LEN {
        return Err(OpenError);
    }
    Ok(V1Parts {
        key_id,
        wrapped_kek,
        info,
        nonce,
        sealed,
    })
}

/// Opens a parsed v1 ciphertext with the local KEK that `parts.wrapped_kek` unwraps to.
///
/// The AAD is rebuilt from the parsed header, key_id and wrapped KEK, so editing any of them
/// in the ciphertext makes this fail with the opaque [`OpenError`].
#[cfg(any(test, feature = "testing"))]
pub fn open_v1(
    kek: &Secret32,
    parts: &V1Parts<'_>,
) -> Result<crate::secret::SecretBytes, OpenError> {
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(parts.plaintext_len()));
    let digest = super::wrapped_kek_digest(parts.wrapped_kek);
    open_v1_into(kek, parts, &digest, &mut plain)?;
    Ok(crate::secret::SecretBytes::new(core::mem::take(
        &mut *plain,
    )))
}

impl V1Parts<'_> {
    /// How many plaintext bytes these parts open to.
    pub fn plaintext_len(&self) -> usize {
        self.sealed.len().saturating_sub(TAG_LEN)
    }
}

/// Opens a parsed v1 ciphertext with the local KEK `parts.wrapped_kek` unwraps to, appending
/// the plaintext (`parts.sealed.len() - 16` bytes) to `out`; `digest` is
/// [`wrapped_kek_digest`](super::wrapped_kek_digest)`(parts.wrapped_kek)` (the Decrypt path
/// computed it for the cache lookup). On error `out` is unchanged.
pub fn open_v1_into(
    kek: &Secret32,
    parts: &V1Parts<'_>,
    digest: &[u8; 32],
    out: &mut Vec<u8>,
) -> Result<(), OpenError> {
    kdf::open_into(
        kek,
        aad(FORMAT_V1, parts.key_id, digest).as_slice(),
        parts.info,
        parts.nonce,
        parts.sealed,
        out,
    )
}
