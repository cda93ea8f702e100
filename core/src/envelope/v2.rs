//! KMS v2 envelope: `MAGIC | FORMAT_V2 | info(32) | nonce(12) | AES-256-GCM(plaintext) | tag(16)`.
//!
//! The wrapped local KEK is not in the ciphertext: it travels in the annotations
//! ([`v2_annotations`]), and its digest is bound by the AAD together with the key_id.

use alloc::vec::Vec;

use super::kdf::{self, INFO_LEN, NONCE_LEN, SEAL_OVERHEAD};
use super::{FORMAT_V2, MAGIC, OpenError, SealError, aad, key_id_len_ok};
use crate::annotations::{FORMAT_KEY, FORMAT_VALUE_V1, MAX_TOTAL_BYTES, WRAPPED_KEK_KEY};
use crate::rng::Rng;
use crate::secret::Secret32;

/// kube-apiserver's limit on `EncryptResponse.ciphertext` (docs/protocol.md §4,
/// `encryptedDEKSourceMaxSize = 1 * 1024`).
pub const V2_MAX_CIPHERTEXT: usize = 1024;

/// Header bytes of a v2 ciphertext.
const HEADER_LEN: usize = 2;

/// The largest plaintext [`seal_v2_into`] accepts: 1024 − 2 − 32 − 12 − 16 = 962 bytes.
pub const V2_MAX_PLAINTEXT: usize = V2_MAX_CIPHERTEXT - HEADER_LEN - SEAL_OVERHEAD;

/// The largest wrapped KEK that fits the annotations [`v2_annotations`] builds within
/// kube-apiserver's 32 KiB budget (docs/protocol.md §4).
pub const V2_MAX_WRAPPED_KEK: usize =
    MAX_TOTAL_BYTES - WRAPPED_KEK_KEY.len() - FORMAT_KEY.len() - FORMAT_VALUE_V1.len();

/// Seals `plaintext` (the apiserver's 32-byte seed) for KMS v2.
///
/// Guarantees: the output is 62 bytes longer than `plaintext` and at most
/// [`V2_MAX_CIPHERTEXT`]; it opens with [`open_v2_into`] only under the same `kek`, `key_id` and
/// `wrapped_kek`; two calls never return the same bytes (fresh random `info` and nonce).
#[cfg(any(test, feature = "testing"))]
pub fn seal_v2(
    kek: &Secret32,
    key_id: &str,
    wrapped_kek: &[u8],
    plaintext: &[u8],
    rng: &mut Rng,
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(HEADER_LEN + SEAL_OVERHEAD + plaintext.len());
    let digest = super::wrapped_kek_digest(wrapped_kek);
    seal_v2_into(kek, key_id, wrapped_kek, &digest, plaintext, rng, &mut out)?;
    Ok(out)
}

/// Seals `plaintext` for KMS v2 (module docs), appending to `out`; `digest` is
/// [`wrapped_kek_digest`](super::wrapped_kek_digest)`(wrapped_kek)`, supplied by a caller
/// that keeps it (the keystore does). On error `out` is unchanged.
pub fn seal_v2_into(
    kek: &Secret32,
    key_id: &str,
    wrapped_kek: &[u8],
    digest: &[u8; 32],
    plaintext: &[u8],
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    if !key_id_len_ok(key_id) {
        return Err(SealError::InvalidKeyId);
    }
    if wrapped_kek.is_empty() || wrapped_kek.len() > V2_MAX_WRAPPED_KEK {
        return Err(SealError::InvalidWrappedKek);
    }
    if plaintext.len() > V2_MAX_PLAINTEXT {
        return Err(SealError::TooLarge);
    }
    let start = out.len();
    out.extend_from_slice(&[MAGIC, FORMAT_V2]);
    let sealed = kdf::seal_into(
        kek,
        aad(FORMAT_V2, key_id, digest).as_slice(),
        plaintext,
        rng,
        out,
    );
    if sealed.is_err() {
        out.truncate(start);
    }
    sealed
}

/// Opens a [`seal_v2_into`] ciphertext, given the `key_id` and wrapped KEK the apiserver sent back.
///
/// Any malformed, truncated, tampered or mismatched input gives the same [`OpenError`]; no
/// input panics.
#[cfg(any(test, feature = "testing"))]
pub fn open_v2(
    kek: &Secret32,
    key_id: &str,
    wrapped_kek: &[u8],
    ciphertext: &[u8],
) -> Result<crate::secret::SecretBytes, OpenError> {
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    let digest = super::wrapped_kek_digest(wrapped_kek);
    open_v2_into(kek, key_id, &digest, ciphertext, &mut plain)?;
    Ok(crate::secret::SecretBytes::new(core::mem::take(
        &mut *plain,
    )))
}

/// The plaintext length a v2 `ciphertext` would open to, if it is long enough to be one.
pub fn v2_plaintext_len(ciphertext: &[u8]) -> Option<usize> {
    ciphertext.len().checked_sub(HEADER_LEN + SEAL_OVERHEAD)
}

/// Opens a v2 ciphertext given the `key_id` and wrapped KEK the apiserver sent back,
/// appending the plaintext to `out`; `digest` is
/// [`wrapped_kek_digest`](super::wrapped_kek_digest)`(wrapped_kek)` (the Decrypt path
/// computed it for the cache lookup). Any malformed, truncated, tampered or mismatched input
/// gives the same [`OpenError`] and leaves `out` unchanged; no input panics.
pub fn open_v2_into(
    kek: &Secret32,
    key_id: &str,
    digest: &[u8; 32],
    ciphertext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), OpenError> {
    if !key_id_len_ok(key_id) || ciphertext.len() > V2_MAX_CIPHERTEXT {
        return Err(OpenError);
    }
    let (header, rest) = ciphertext.split_at_checked(HEADER_LEN).ok_or(OpenError)?;
    if header != [MAGIC, FORMAT_V2] {
        return Err(OpenError);
    }
    let (info, rest) = rest.split_at_checked(INFO_LEN).ok_or(OpenError)?;
    let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(OpenError)?;
    kdf::open_into(
        kek,
        aad(FORMAT_V2, key_id, digest).as_slice(),
        info,
        nonce,
        sealed,
        out,
    )
}

/// The annotations a KMS v2 Encrypt returns beside a [`seal_v2_into`] ciphertext:
/// `[(WRAPPED_KEK_KEY, wrapped_kek), (FORMAT_KEY, "1")]`.
///
/// Both keys are valid FQDNs; with `wrapped_kek.len() <= V2_MAX_WRAPPED_KEK` (which
/// [`seal_v2_into`] enforces) the total stays within 32 KiB.
pub fn v2_annotations(wrapped_kek: &[u8]) -> [(&'static str, Vec<u8>); 2] {
    [
        (WRAPPED_KEK_KEY, wrapped_kek.to_vec()),
        (FORMAT_KEY, FORMAT_VALUE_V1.to_vec()),
    ]
}

/// Finds the wrapped KEK in the annotations a KMS v2 Decrypt received.
///
/// Strict: exactly the two keys [`v2_annotations`] writes, each once, with format `"1"` and a
/// non-empty wrapped KEK of at most [`V2_MAX_WRAPPED_KEK`] bytes; anything else (a missing,
/// repeated or unknown key) is the opaque [`OpenError`] — data this plugin did not write is
/// never decrypted (docs/protocol.md §4).
pub fn wrapped_kek_from_annotations<'a>(
    annotations: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<&'a [u8], OpenError> {
    let mut wrapped = None;
    let mut format_seen = false;
    for (key, value) in annotations {
        if key == WRAPPED_KEK_KEY && wrapped.is_none() {
            wrapped = Some(value);
        } else if key == FORMAT_KEY && !format_seen && value == FORMAT_VALUE_V1 {
            format_seen = true;
        } else {
            return Err(OpenError);
        }
    }
    match wrapped {
        Some(w) if format_seen && !w.is_empty() && w.len() <= V2_MAX_WRAPPED_KEK => Ok(w),
        _ => Err(OpenError),
    }
}
