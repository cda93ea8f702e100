//! The per-request work of the tonic reference server: the same key hierarchy and crypto as
//! kms-plugin (remote KEK wraps a local KEK; per message HKDF-SHA256-Expand(local KEK, random
//! 32-byte info) -> AES-256-GCM), written the straightforward way a tonic plugin would.
//!
//! It is a benchmark baseline, not a product: the "remote" KEK is an in-process AES key and its
//! ciphertexts are not compatible with kms-plugin's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The annotation that carries the wrapped local KEK (a lowercase FQDN, docs/protocol.md §4).
pub const WRAPPED_KEK_ANNOTATION: &str = "encrypted-kek.bench.kms-plugin.example.com";
/// Format version byte of the reference ciphertexts.
const FORMAT_V2: u8 = 0xb2;
const FORMAT_V1: u8 = 0xb1;
const INFO_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Why a reference operation failed (opaque on purpose, like the product's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefError {
    /// The ciphertext, key id or annotations do not open.
    Invalid,
}

thread_local! {
    static RNG: RefCell<ChaCha20Rng> = RefCell::new(seeded_rng());
}

fn seeded_rng() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the OS RNG is available");
    ChaCha20Rng::from_seed(seed)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    RNG.with(|r| r.borrow_mut().fill_bytes(&mut out));
    out
}

/// The reference key hierarchy: one live local KEK plus a cache of unwrapped ones.
pub struct RefKms {
    key_id: String,
    remote: Aes256Gcm,
    local_kek: [u8; 32],
    wrapped: Vec<u8>,
    /// Unwrapped local KEKs by wrapped blob (the Decrypt fast path looks here).
    cache: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
}

impl RefKms {
    /// A fresh hierarchy under remote key `key_id`, with random remote and local KEKs.
    pub fn new(key_id: &str) -> Self {
        let remote = Aes256Gcm::new(&random_bytes::<32>().into());
        let local_kek = random_bytes::<32>();
        let nonce = random_bytes::<NONCE_LEN>();
        let mut wrapped = nonce.to_vec();
        wrapped.extend(
            remote
                .encrypt(Nonce::from_slice(&nonce), local_kek.as_slice())
                .expect("AES-GCM seal of 32 bytes cannot fail"),
        );
        let mut cache = HashMap::new();
        cache.insert(wrapped.clone(), local_kek);
        Self {
            key_id: key_id.to_owned(),
            remote,
            local_kek,
            wrapped,
            cache: Mutex::new(cache),
        }
    }

    /// The remote key id reported by Status and Encrypt.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The wrapped live local KEK (the annotation value).
    pub fn wrapped_kek(&self) -> &[u8] {
        &self.wrapped
    }

    fn aad(&self, wrapped: &[u8], version: u8) -> Vec<u8> {
        let mut aad = Vec::with_capacity(1 + self.key_id.len() + 32);
        aad.push(version);
        aad.extend_from_slice(self.key_id.as_bytes());
        aad.extend_from_slice(&Sha256::digest(wrapped));
        aad
    }

    fn cipher_for(kek: &[u8; 32], info: &[u8]) -> Aes256Gcm {
        let hk = Hkdf::<Sha256>::from_prk(kek).expect("a 32-byte PRK is long enough");
        let mut key = [0u8; 32];
        hk.expand(info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Aes256Gcm::new(&key.into())
    }

    /// Seals `plaintext` under the live local KEK: `version | info | nonce | AES-GCM`.
    fn seal(&self, plaintext: &[u8], version: u8, out: &mut Vec<u8>) {
        let info = random_bytes::<INFO_LEN>();
        let nonce = random_bytes::<NONCE_LEN>();
        let aad = self.aad(&self.wrapped, version);
        let ct = Self::cipher_for(&self.local_kek, &info)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM seal cannot fail for small inputs");
        out.push(version);
        out.extend_from_slice(&info);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
    }

    fn unwrap_cached(&self, wrapped: &[u8]) -> Result<[u8; 32], RefError> {
        let mut cache = self.cache.lock().expect("cache lock is never poisoned");
        if let Some(k) = cache.get(wrapped) {
            return Ok(*k);
        }
        let (nonce, ct) = wrapped
            .split_at_checked(NONCE_LEN)
            .ok_or(RefError::Invalid)?;
        let plain = self
            .remote
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| RefError::Invalid)?;
        let kek: [u8; 32] = plain.try_into().map_err(|_| RefError::Invalid)?;
        cache.insert(wrapped.to_vec(), kek);
        Ok(kek)
    }

    fn open(&self, ciphertext: &[u8], wrapped: &[u8], version: u8) -> Result<Vec<u8>, RefError> {
        let (&v, rest) = ciphertext.split_first().ok_or(RefError::Invalid)?;
        if v != version {
            return Err(RefError::Invalid);
        }
        let (info, rest) = rest.split_at_checked(INFO_LEN).ok_or(RefError::Invalid)?;
        let (nonce, ct) = rest.split_at_checked(NONCE_LEN).ok_or(RefError::Invalid)?;
        let kek = self.unwrap_cached(wrapped)?;
        let aad = self.aad(wrapped, version);
        Self::cipher_for(&kek, info)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| RefError::Invalid)
    }

    /// KMS v2 Encrypt: the ciphertext (the wrapped KEK travels in the annotation).
    pub fn encrypt_v2(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + INFO_LEN + NONCE_LEN + plaintext.len() + 16);
        self.seal(plaintext, FORMAT_V2, &mut out);
        out
    }

    /// KMS v2 Decrypt: `key_id` must be ours and `wrapped` the annotation value.
    pub fn decrypt_v2(
        &self,
        ciphertext: &[u8],
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, RefError> {
        if key_id != self.key_id {
            return Err(RefError::Invalid);
        }
        self.open(ciphertext, wrapped, FORMAT_V2)
    }

    /// KMS v1 Encrypt: self-describing `u16 len | wrapped KEK | sealed`.
    pub fn encrypt_v1(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.wrapped.len() + 61 + plaintext.len() + 16);
        out.extend_from_slice(&(self.wrapped.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped);
        self.seal(plaintext, FORMAT_V1, &mut out);
        out
    }

    /// KMS v1 Decrypt of what [`RefKms::encrypt_v1`] produced.
    pub fn decrypt_v1(&self, ciphertext: &[u8]) -> Result<Vec<u8>, RefError> {
        let (len, rest) = ciphertext.split_at_checked(2).ok_or(RefError::Invalid)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let (wrapped, sealed) = rest.split_at_checked(len).ok_or(RefError::Invalid)?;
        self.open(sealed, wrapped, FORMAT_V1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_round_trip_and_tamper() {
        let k = RefKms::new("k1");
        let ct = k.encrypt_v2(&[7; 32]);
        assert_eq!(
            k.decrypt_v2(&ct, "k1", k.wrapped_kek()).unwrap(),
            vec![7; 32]
        );
        assert_eq!(
            k.decrypt_v2(&ct, "k2", k.wrapped_kek()),
            Err(RefError::Invalid)
        );
        let mut bad = ct.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            k.decrypt_v2(&bad, "k1", k.wrapped_kek()),
            Err(RefError::Invalid)
        );
        assert_ne!(k.encrypt_v2(&[7; 32]), ct, "encryption is randomised");
    }

    #[test]
    fn v1_round_trip_and_truncation() {
        let k = RefKms::new("k1");
        let ct = k.encrypt_v1(b"ping");
        assert_eq!(k.decrypt_v1(&ct).unwrap(), b"ping");
        for n in 0..ct.len() {
            assert!(k.decrypt_v1(&ct[..n]).is_err());
        }
    }

    #[test]
    fn foreign_wrapped_kek_is_rejected() {
        let a = RefKms::new("k1");
        let b = RefKms::new("k1");
        let ct = b.encrypt_v2(&[1; 32]);
        assert!(a.decrypt_v2(&ct, "k1", b.wrapped_kek()).is_err());
    }
}
