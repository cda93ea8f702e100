//! KMS v1beta1 handlers: Version, Encrypt, Decrypt (deprecated API, spec §5).
//!
//! v1 has no annotations, so ciphertexts are self-describing (`envelope::seal_v1`): they
//! carry the remote key id and the wrapped local KEK.

use alloc::string::String;
use alloc::vec::Vec;

use kms_plugin_proto::v1beta1::{DecryptRequest, EncryptRequest, VersionRequest, VersionResponse};
use prost::Message;

use super::parked::Work;
use super::{DECRYPTION_FAILED, malformed, plaintext_response, put_field_head, wipe};
use crate::config::KmsConfig;
use crate::envelope;
use crate::keystore::LocalKek;
use crate::rng::Rng;
use crate::rpc::{Code, Response};
use crate::secret::{Secret32, SecretBytes};

/// The only v1 API version (`kmsapiVersion`, spec §5).
pub(super) const V1BETA1: &str = "v1beta1";

/// The request `version` field: the apiserver sends `v1beta1` (spec §2.1); empty is tolerated
/// (proto3 default), anything else is refused.
pub(super) fn check_version(version: &str) -> Result<(), Response> {
    if version.is_empty() || version == V1BETA1 {
        Ok(())
    } else {
        Err(Response::error(
            Code::InvalidArgument,
            "unsupported version, only v1beta1 is supported",
        ))
    }
}

/// `Version`: always `v1beta1` plus runtime name/version. The apiserver requires exactly
/// `v1beta1` back (spec §5) whatever it sent, so the request's value does not change the
/// answer; it only has to be a well-formed message.
pub(super) fn version(msg: &[u8], cfg: &KmsConfig) -> Response {
    if VersionRequest::decode(msg).is_err() {
        return malformed();
    }
    let resp = VersionResponse {
        version: String::from(V1BETA1),
        runtime_name: cfg.runtime_name.clone(),
        runtime_version: cfg.runtime_version.clone(),
    };
    Response::ok(SecretBytes::new(resp.encode_to_vec()))
}

/// Decodes an `EncryptRequest`; the plaintext moves into a zeroizing buffer at once. An empty
/// plaintext is encrypted like any other (the apiserver sends a 32-byte DEK or `ping`).
pub(super) fn decode_encrypt(msg: &[u8]) -> Result<Work, Response> {
    let EncryptRequest { version, plain } = EncryptRequest::decode(msg).map_err(|_| malformed())?;
    let secret = SecretBytes::copy_from(&plain);
    wipe(plain);
    check_version(&version)?;
    Ok(Work::V1Encrypt { plaintext: secret })
}

/// Seals `plaintext` into a self-describing v1 ciphertext, written straight into the
/// `EncryptResponse { bytes cipher = 1 }` buffer.
pub(super) fn encrypt(cur: &LocalKek, rng: &mut Rng, plaintext: &[u8]) -> Response {
    let Ok(len) = envelope::v1_sealed_len(cur.key_id(), cur.wrapped(), plaintext) else {
        return Response::error(Code::InvalidArgument, "plaintext too large");
    };
    // The apiserver length-prefixes the cipher with a u16 (spec §5).
    debug_assert!(u16::try_from(len).is_ok());
    let mut out = Vec::with_capacity(len + 4);
    put_field_head(&mut out, 1, len);
    let sealed = envelope::seal_v1_into(
        cur.kek(),
        cur.key_id(),
        cur.wrapped(),
        cur.digest(),
        plaintext,
        rng,
        &mut out,
    );
    if sealed.is_err() {
        return Response::error(Code::InvalidArgument, "plaintext too large");
    }
    Response::ok(SecretBytes::new(out))
}

/// Decodes a `DecryptRequest` and reads the key id and wrapped local KEK from the cipher,
/// which moves into the [`Work`] (the wrapped KEK is a view into it, hashed once, here).
pub(super) fn decode_decrypt(msg: &[u8]) -> Result<Work, Response> {
    let DecryptRequest { version, cipher } =
        DecryptRequest::decode(msg).map_err(|_| malformed())?;
    check_version(&version)?;
    let Ok(parts) = envelope::parse_v1(&cipher) else {
        return Err(Response::error(Code::InvalidArgument, DECRYPTION_FAILED));
    };
    let key_id = String::from(parts.key_id);
    let digest = envelope::wrapped_kek_digest(parts.wrapped_kek);
    // `parts` borrows from `cipher`, so this is a sub-slice of it (what slice_ref requires).
    let wrapped = cipher.slice_ref(parts.wrapped_kek);
    Ok(Work::V1Decrypt {
        cipher,
        key_id,
        wrapped,
        digest,
    })
}

/// Opens a v1 ciphertext straight into the response; every failure is the same opaque answer.
/// `digest` is `wrapped_kek_digest` of the ciphertext's wrapped KEK.
pub(super) fn decrypt(kek: &Secret32, cipher: &[u8], digest: &[u8; 32]) -> Response {
    let opened = envelope::parse_v1(cipher).and_then(|parts| {
        plaintext_response(parts.plaintext_len(), |out| {
            envelope::open_v1_into(kek, &parts, digest, out)
        })
    });
    match opened {
        Ok(body) => Response::ok(body),
        Err(_) => Response::error(Code::InvalidArgument, DECRYPTION_FAILED),
    }
}
