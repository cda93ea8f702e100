//! The plugin's own ciphertext formats: what Encrypt returns and Decrypt opens.
//!
//! Key hierarchy (architecture §4): the remote KEK wraps a *local KEK*; each message is sealed
//! under `HKDF-SHA256-Expand(local KEK, info = 32 random bytes)` with AES-256-GCM and a random
//! nonce (`envelope/kdf.rs`). Two formats share that schedule:
//!
//! - **v2** ([`seal_v2_into`] / [`open_v2_into`]): `header | info | nonce | AES-GCM(plaintext) | tag`,
//!   at most 1024 bytes (docs/protocol.md §4). The wrapped local KEK travels in the annotations
//!   ([`v2_annotations`]).
//! - **v1** ([`seal_v1_into`] / [`parse_v1`] / [`open_v1_into`]): KMS v1 has no annotations, so the
//!   ciphertext names its key itself: `header | key_id | wrapped KEK | info | nonce | … | tag`,
//!   at most 65,535 bytes (docs/protocol.md §6).
//!
//! In both, the AEAD's associated data binds the format byte, the remote `key_id` and the
//! SHA-256 digest of the wrapped local KEK ([`wrapped_kek_digest`]): a ciphertext presented with
//! another key_id, another wrapped KEK or under another format fails to open. Failures are one
//! opaque [`OpenError`], so callers cannot learn whether the format, the key or the tag was
//! wrong. The byte layout is documented in `docs/ciphertext-format.md`; golden-bytes tests pin
//! it.

mod kdf;
mod v1;
mod v2;

use alloc::vec::Vec;
use core::fmt;
use sha2::{Digest, Sha256};

pub use v1::{V1_MAX_CIPHERTEXT, V1Parts, open_v1_into, parse_v1, seal_v1_into, v1_sealed_len};
#[cfg(any(test, feature = "testing"))]
pub use v1::{open_v1, seal_v1};
pub use v2::{
    V2_MAX_CIPHERTEXT, V2_MAX_PLAINTEXT, V2_MAX_WRAPPED_KEK, open_v2_into, seal_v2_into,
    v2_annotations, v2_plaintext_len, wrapped_kek_from_annotations,
};
#[cfg(any(test, feature = "testing"))]
pub use v2::{open_v2, seal_v2};

/// First byte of every ciphertext this plugin writes (both formats).
pub const MAGIC: u8 = 0xC7;
/// Second byte of a KMS v2 ciphertext: envelope format v2, revision 1.
pub const FORMAT_V2: u8 = 0x21;
/// Second byte of a KMS v1 ciphertext: envelope format v1, revision 1.
pub const FORMAT_V1: u8 = 0x11;
/// The most bytes a `key_id` may have (docs/protocol.md §4 `KeyIDMaxSize`).
pub const KEY_ID_MAX_LEN: usize = 1024;

/// Domain separation for [`wrapped_kek_digest`].
const DIGEST_DOMAIN: &[u8] = b"kms-plugin/wrapped-kek-digest/v1\0";

/// SHA-256 of a wrapped local KEK under a domain-separation prefix.
///
/// Used as the keystore's cache key for unwrapped local KEKs and inside every envelope's AAD.
/// Not secret (the wrapped blob itself is public: it is stored in etcd).
pub fn wrapped_kek_digest(wrapped: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_DOMAIN);
    hasher.update(wrapped);
    hasher.finalize().into()
}

/// Why [`seal_v2_into`] / [`seal_v1_into`] refused (programming or configuration trouble, never secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The ciphertext would exceed its limit (1024 bytes for v2, 65,535 for v1): the plaintext
    /// (or, for v1, key_id + wrapped KEK) is too large.
    TooLarge,
    /// The key_id is empty or longer than [`KEY_ID_MAX_LEN`] bytes.
    InvalidKeyId,
    /// The wrapped KEK is empty or too large to store (v2: in the 32 KiB of annotations).
    InvalidWrappedKek,
    /// The cipher refused its inputs (not reachable with the sizes the checks above allow).
    Crypto,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "plaintext too large for the ciphertext limit",
            Self::InvalidKeyId => "key_id must be 1..=1024 bytes",
            Self::InvalidWrappedKek => "wrapped KEK is empty or too large",
            Self::Crypto => "encryption failed",
        })
    }
}

impl core::error::Error for SealError {}

/// A ciphertext could not be decrypted. Deliberately opaque: a malformed header, a wrong
/// key_id, a wrong wrapped KEK, a wrong local KEK and a flipped bit all look the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenError;

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ciphertext could not be decrypted")
    }
}

impl core::error::Error for OpenError {}

/// Whether `key_id` has a length kube-apiserver accepts (1..=1024 bytes, docs/protocol.md §4).
fn key_id_len_ok(key_id: &str) -> bool {
    (1..=KEY_ID_MAX_LEN).contains(&key_id.len())
}

/// The AEAD associated data of both formats:
/// `MAGIC | format | u16be(len key_id) | key_id | digest`, where `digest` is
/// [`wrapped_kek_digest`] of the wrapped local KEK (callers that already hold it pass it in,
/// so a request hashes the wrapped KEK once).
///
/// The caller has checked `key_id.len() <= KEY_ID_MAX_LEN`, so the length fits a `u16`.
fn aad(format: u8, key_id: &str, digest: &[u8; 32]) -> Aad {
    let len = 4 + key_id.len() + digest.len();
    let mut aad = if len <= AAD_INLINE {
        Aad::Inline([0; AAD_INLINE], 0)
    } else {
        Aad::Heap(Vec::with_capacity(len))
    };
    aad.push(&[MAGIC, format]);
    aad.push(&(key_id.len() as u16).to_be_bytes());
    aad.push(key_id.as_bytes());
    aad.push(digest);
    aad
}

/// Bytes an AAD keeps on the stack: key_ids up to 92 bytes (every local and Vault key id seen)
/// cost no allocation.
const AAD_INLINE: usize = 128;

/// An AAD under construction: inline when it fits [`AAD_INLINE`], else on the heap.
enum Aad {
    /// Bytes and how many are used.
    Inline([u8; AAD_INLINE], usize),
    /// A long key_id's AAD.
    Heap(Vec<u8>),
}

impl Aad {
    /// Appends `bytes`; [`aad`] sized the inline case so they always fit.
    fn push(&mut self, bytes: &[u8]) {
        match self {
            Self::Inline(buf, used) => {
                if let Some(dst) = buf.get_mut(*used..*used + bytes.len()) {
                    dst.copy_from_slice(bytes);
                    *used += bytes.len();
                }
            }
            Self::Heap(v) => v.extend_from_slice(bytes),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline(buf, used) => buf.get(..*used).unwrap_or_default(),
            Self::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::{AAD_INLINE, FORMAT_V1, MAGIC, aad};

    /// Inline (short key_id) and heap (long key_id) AADs are the documented bytes.
    #[test]
    fn aad_is_the_documented_bytes_inline_and_on_the_heap() {
        let digest = [0x5a; 32];
        for len in (1usize..=200).chain([1023, 1024]) {
            let key_id: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let mut expected = Vec::from([MAGIC, FORMAT_V1]);
            expected.extend_from_slice(&(len as u16).to_be_bytes());
            expected.extend_from_slice(key_id.as_bytes());
            expected.extend_from_slice(&digest);
            let built = aad(FORMAT_V1, &key_id, &digest);
            assert_eq!(built.as_slice(), &expected[..], "key_id of {len} bytes");
            let inline = matches!(built, super::Aad::Inline(..));
            assert_eq!(
                inline,
                expected.len() <= AAD_INLINE,
                "key_id of {len} bytes"
            );
        }
    }
}
