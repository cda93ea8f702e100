//! The per-message key schedule shared by both envelope formats (docs/protocol.md §5,
//! docs/ciphertext-format.md).
//!
//! `key = HKDF-SHA256-Expand(PRK = local KEK, info = 32 random bytes)` (no Extract: the local
//! KEK is already uniform), then AES-256-GCM with a random 12-byte nonce and a 16-byte tag.
//! Every message gets its own derived key, so the local KEK never wears out under GCM's
//! random-nonce limits; the nonce is random too, so even a repeated `info` does not repeat a
//! (key, nonce) pair unless both 32- and 12-byte draws collide.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::aead::consts::U12;
use aes_gcm::aes::Aes256Enc;
use aes_gcm::{AesGcm, KeyInit, Nonce, Tag};
use alloc::vec::Vec;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::{OpenError, SealError};
use crate::rng::Rng;
use crate::secret::Secret32;

/// Length of the random HKDF `info` (`infoSizeExtendedNonceGCM`, docs/protocol.md §5).
pub(crate) const INFO_LEN: usize = 32;
/// AES-GCM nonce length.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes the key schedule adds to a plaintext: `info | nonce | … | tag`.
pub(crate) const SEAL_OVERHEAD: usize = INFO_LEN + NONCE_LEN + TAG_LEN;

/// `HKDF-SHA256-Expand(PRK = kek, info, L = 32)` (RFC 5869 §2.3), as kube-apiserver derives
/// its per-write DEKs from a seed (docs/protocol.md §5).
///
/// Returns `None` only if HKDF rejects its inputs, which cannot happen for a 32-byte PRK and a
/// 32-byte output; callers map it to their opaque error rather than panicking.
fn derive_key(kek: &Secret32, info: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let hkdf = Hkdf::<Sha256>::from_prk(kek.expose()).ok()?;
    let mut okm = Zeroizing::new([0u8; 32]);
    hkdf.expand(info, okm.as_mut_slice()).ok()?;
    Some(okm)
}

/// AES-256-GCM (96-bit nonce, 128-bit tag: `aes_gcm::Aes256Gcm`'s parameters) over an
/// encryption-only AES key schedule. GCM runs AES forwards only (CTR mode and the GHASH key),
/// so the inverse round keys `Aes256Gcm` also expands for every message are never used; the
/// ciphertexts are identical (the golden-bytes tests pin them).
type MessageCipher = AesGcm<Aes256Enc, U12>;

/// The per-message AES-256-GCM cipher for `info`.
fn derive(kek: &Secret32, info: &[u8]) -> Option<MessageCipher> {
    let okm = derive_key(kek, info)?;
    MessageCipher::new_from_slice(okm.as_slice()).ok()
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
    let tag = match out.get_mut(start..) {
        Some(body) => cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body)
            .ok(),
        None => None,
    };
    let Some(tag) = tag else {
        // Not reachable with the sizes callers allow; never leave plaintext behind anyway.
        out.zeroize();
        return Err(SealError::Crypto);
    };
    out.extend_from_slice(&tag);
    Ok(())
}

/// Opens `sealed = ciphertext | tag` under the key derived from `info`, with `nonce` and `aad`,
/// appending the plaintext to `out` (decrypted in place there, so it is never copied).
///
/// Every failure (short input, wrong key, wrong AAD, flipped bit) is the same [`OpenError`],
/// and leaves `out` as it was (the bytes appended are wiped and removed).
pub(crate) fn open_into(
    kek: &Secret32,
    aad: &[u8],
    info: &[u8],
    nonce: &[u8],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), OpenError> {
    if info.len() != INFO_LEN || nonce.len() != NONCE_LEN {
        return Err(OpenError);
    }
    let body_len = sealed.len().checked_sub(TAG_LEN).ok_or(OpenError)?;
    let (body, tag) = sealed.split_at(body_len);
    let cipher = derive(kek, info).ok_or(OpenError)?;
    let start = out.len();
    out.extend_from_slice(body);
    let opened = match out.get_mut(start..) {
        Some(buffer) => cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer, Tag::from_slice(tag))
            .is_ok(),
        None => false,
    };
    if !opened {
        if let Some(tail) = out.get_mut(start..) {
            tail.zeroize();
        }
        out.truncate(start);
        return Err(OpenError);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::derive_key;
    use crate::secret::Secret32;

    fn unhex(text: &str) -> alloc::vec::Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 5869 Appendix A.1 (Test Case 1), Expand step: PRK and info from the RFC; our L is
    /// 32, and HKDF-Expand's first 32 bytes do not depend on L, so they are the RFC's OKM[..32].
    #[test]
    fn expand_matches_rfc5869_test_case_1() {
        let prk = unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
        let info = unhex("f0f1f2f3f4f5f6f7f8f9");
        let okm = unhex(
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        );
        let kek = Secret32::from_slice(&prk).unwrap();
        assert_eq!(derive_key(&kek, &info).unwrap().as_slice(), &okm[..32]);
    }

    /// A failed open leaves the caller's buffer exactly as it was; a good one appends the
    /// plaintext after what was there.
    #[test]
    fn open_into_appends_or_leaves_the_buffer_alone() {
        let kek = Secret32::from_slice(&[7u8; 32]).unwrap();
        let mut rng = crate::rng::Rng::from_seed([1; 32]);
        let mut sealed = alloc::vec::Vec::new();
        super::seal_into(&kek, b"aad", b"plaintext", &mut rng, &mut sealed).unwrap();
        let (info, rest) = sealed.split_at(super::INFO_LEN);
        let (nonce, body) = rest.split_at(super::NONCE_LEN);

        let mut out = alloc::vec::Vec::from(*b"head");
        super::open_into(&kek, b"aad", info, nonce, body, &mut out).unwrap();
        assert_eq!(out, b"headplaintext");

        let mut out = alloc::vec::Vec::from(*b"head");
        let wrong = super::open_into(&kek, b"other aad", info, nonce, body, &mut out);
        assert!(wrong.is_err());
        assert_eq!(out, b"head");
        let short = super::open_into(&kek, b"aad", info, nonce, &body[..10], &mut out);
        assert!(short.is_err());
        assert_eq!(out, b"head");
    }

    /// RFC 5869 Appendix A.3 (Test Case 3: empty salt and info), Expand step.
    #[test]
    fn expand_matches_rfc5869_test_case_3() {
        let prk = unhex("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04");
        let okm = unhex(
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        );
        let kek = Secret32::from_slice(&prk).unwrap();
        assert_eq!(derive_key(&kek, &[]).unwrap().as_slice(), &okm[..32]);
    }
}
