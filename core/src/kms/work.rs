//! What an Encrypt or Decrypt request still has to do once its key material is at hand, and
//! doing it: sealing under the current local KEK, or opening under the unwrapped one. Every
//! request of these four methods runs through here, whether its KEK was at hand at once or
//! after a wait.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use super::wire::{decryption_failed, plaintext_response};
use super::wire::{put_bytes_field, put_field_head, put_map_entry};
use crate::envelope;
use crate::keystore::{Digest, LocalKek};
use crate::kms::apiserver_rules;
use crate::rng::Rng;
use crate::rpc::{Code, Response};
use crate::secret::{Secret32, SecretBytes};

/// The KMS API a request came on: it decides the envelope format and the response message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// v1beta1: self-describing ciphertexts (`envelope::seal_v1`).
    V1,
    /// v2: the wrapped local KEK travels in the annotations.
    V2,
}

/// The key-dependent part of a request.
pub(crate) enum Work {
    /// Needs a usable current local KEK.
    Encrypt(EncryptWork),
    /// Needs the unwrapped local KEK its ciphertext names.
    Decrypt(DecryptWork),
}

/// An Encrypt: the plaintext, in a zeroizing buffer.
pub(crate) struct EncryptWork {
    pub(crate) api: Api,
    pub(crate) plaintext: SecretBytes,
}

/// A Decrypt: the ciphertext and which wrapped local KEK it needs. `wrapped` is the
/// annotation (v2) or a view into `ciphertext` (v1); `digest` is its
/// `wrapped_kek_digest`, computed once for the cache lookup and the AAD.
pub(crate) struct DecryptWork {
    pub(crate) api: Api,
    pub(crate) ciphertext: Bytes,
    pub(crate) key_id: String,
    pub(crate) wrapped: Bytes,
    pub(crate) digest: Digest,
}

impl Work {
    /// Octets of request data it holds (what counts against `Config::max_buffered_total`).
    pub(crate) fn held_bytes(&self) -> usize {
        match self {
            Self::Encrypt(w) => w.plaintext.len(),
            Self::Decrypt(w) => match w.api {
                Api::V2 => w.ciphertext.len() + w.wrapped.len(),
                // `wrapped` is a view into the ciphertext.
                Api::V1 => w.ciphertext.len(),
            },
        }
    }
}

impl EncryptWork {
    /// Seals the plaintext under `cur` into the method's `EncryptResponse`.
    pub(crate) fn seal(&self, cur: &LocalKek, rng: &mut Rng) -> Response {
        let plaintext = self.plaintext.expose();
        let sealed = match self.api {
            Api::V2 => seal_v2(cur, rng, plaintext),
            Api::V1 => seal_v1(cur, rng, plaintext),
        };
        match sealed {
            Some(body) => Response::ok(SecretBytes::new(body)),
            None => Response::error(Code::InvalidArgument, "plaintext too large"),
        }
    }
}

impl DecryptWork {
    /// Opens the ciphertext under `kek` straight into the `DecryptResponse`; every failure is
    /// the same opaque answer.
    pub(crate) fn open(&self, kek: &Secret32) -> Response {
        let opened = match self.api {
            Api::V2 => envelope::v2_plaintext_len(&self.ciphertext)
                .ok_or(envelope::OpenError)
                .and_then(|len| {
                    plaintext_response(len, |out| {
                        envelope::open_v2_into(
                            kek,
                            &self.key_id,
                            &self.digest,
                            &self.ciphertext,
                            out,
                        )
                    })
                }),
            Api::V1 => envelope::parse_v1(&self.ciphertext).and_then(|parts| {
                plaintext_response(parts.plaintext_len(), |out| {
                    envelope::open_v1_into(kek, &parts, &self.digest, out)
                })
            }),
        };
        opened.map_or_else(|_| decryption_failed(), Response::ok)
    }
}

/// v2 `EncryptResponse { bytes ciphertext = 1; string key_id = 2; map<string, bytes>
/// annotations = 3; }`.
fn seal_v2(cur: &LocalKek, rng: &mut Rng, plaintext: &[u8]) -> Option<Vec<u8>> {
    let mut ciphertext = Vec::with_capacity(envelope::V2_MAX_CIPHERTEXT);
    let (kek, key_id, wrapped) = (cur.kek(), cur.key_id(), cur.wrapped());
    envelope::seal_v2_into(
        kek,
        key_id,
        wrapped,
        cur.digest(),
        plaintext,
        rng,
        &mut ciphertext,
    )
    .ok()?;
    let annotations = envelope::v2_annotations(wrapped);
    // The apiserver discards answers that break these rules (docs/protocol.md §4 step 2).
    debug_assert!(
        apiserver_rules::check_encrypt_response(
            &ciphertext,
            key_id,
            annotations.iter().map(|(k, v)| (*k, &v[..]))
        )
        .is_ok()
    );
    let mut out = Vec::with_capacity(ciphertext.len() + key_id.len() + wrapped.len() + 96);
    put_bytes_field(&mut out, 1, &ciphertext);
    put_bytes_field(&mut out, 2, key_id.as_bytes());
    for (key, value) in &annotations {
        put_map_entry(&mut out, 3, key, value);
    }
    Some(out)
}

/// v1 `EncryptResponse { bytes cipher = 1; }`, the self-describing ciphertext sealed straight
/// into it.
fn seal_v1(cur: &LocalKek, rng: &mut Rng, plaintext: &[u8]) -> Option<Vec<u8>> {
    let len = envelope::v1_sealed_len(cur.key_id(), cur.wrapped(), plaintext).ok()?;
    // The apiserver length-prefixes the cipher with a u16 (docs/protocol.md §6).
    debug_assert!(u16::try_from(len).is_ok());
    let mut out = Vec::with_capacity(len + 4);
    put_field_head(&mut out, 1, len);
    let (kek, key_id, wrapped) = (cur.kek(), cur.key_id(), cur.wrapped());
    envelope::seal_v1_into(kek, key_id, wrapped, cur.digest(), plaintext, rng, &mut out).ok()?;
    Some(out)
}
