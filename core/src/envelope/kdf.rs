//! The per-message key schedule shared by both envelope formats (spec §4, architecture §4).
//!
//! `key = HKDF-SHA256-Expand(PRK = local KEK, info = 32 random bytes)` (no Extract: the local
//! KEK is already uniform), then AES-256-GCM with a random 12-byte nonce and a 16-byte tag.
//! Every message gets its own derived key, so the local KEK never wears out under GCM's
//! random-nonce limits; the nonce is random too, so even a repeated `info` does not repeat a
//! (key, nonce) pair unless both 32- and 12-byte draws collide.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use alloc::vec::Vec;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{OpenError, SealError};
use crate::rng::Rng;
use crate::secret::{Secret32, SecretBytes};

/// Length of the random HKDF `info` (`infoSizeExtendedNonceGCM`, spec §4).
pub(crate) const INFO_LEN: usize = 32;
/// AES-GCM nonce length.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes the key schedule adds to a plaintext: `info | nonce | … | tag`.
pub(crate) const SEAL_OVERHEAD: usize = INFO_LEN + NONCE_LEN + TAG_LEN;

/// Derives the per-message AES-256-GCM cipher from the local KEK and `info`.
///
/// Returns `None` only if HKDF rejects its inputs, which cannot happen for a 32-byte PRK and a
/// 32-byte output; callers map it to their opaque error rather than panicking.
fn derive(kek: &Secret32, info: &[u8]) -> Option<Aes256Gcm> {
    let hkdf = Hkdf::<Sha256>::from_prk(kek.expose()).ok()?;
    let mut okm = Zeroizing::new([0u8; 32]);
    hkdf.expand(info, okm.as_mut_slice()).ok()?;
    Aes256Gcm::new_from_slice(okm.as_slice()).ok()
}

/// Appends `info | nonce | AES-256-GCM(plaintext, aad) | tag` to `out`, drawing `info` and the
/// nonce from `rng`. The plaintext is copied straight into `out` and encrypted in place, so no
/// plaintext copy outlives the call.
pub(crate) fn seal_into(
    kek: &Secret32,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut Rng,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let info: [u8; INFO_LEN] = rng.array();
    let nonce: [u8; NONCE_LEN] = rng.array();
    let cipher = derive(kek, &info).ok_or(SealError::Crypto)?;
    out.extend_from_slice(&info);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let body = out.get_mut(start..).ok_or(SealError::Crypto)?;
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body)
        .map_err(|_| SealError::Crypto)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Opens `sealed = ciphertext | tag` under the key derived from `info`, with `nonce` and `aad`.
///
/// Every failure (short input, wrong key, wrong AAD, flipped bit) is the same [`OpenError`].
pub(crate) fn open(
    kek: &Secret32,
    aad: &[u8],
    info: &[u8],
    nonce: &[u8],
    sealed: &[u8],
) -> Result<SecretBytes, OpenError> {
    if info.len() != INFO_LEN || nonce.len() != NONCE_LEN {
        return Err(OpenError);
    }
    let body_len = sealed.len().checked_sub(TAG_LEN).ok_or(OpenError)?;
    let (body, tag) = sealed.split_at(body_len);
    let cipher = derive(kek, info).ok_or(OpenError)?;
    let mut buffer = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            buffer.as_mut_slice(),
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenError)?;
    Ok(SecretBytes::new(core::mem::take(&mut *buffer)))
}
