//! KMS v1beta1 handlers: Version, Encrypt, Decrypt (deprecated API, spec §5).
//!
//! v1 has no annotations, so ciphertexts are self-describing (`envelope::seal_v1`): they
//! carry the remote key id and the wrapped local KEK.

use alloc::string::String;

use bytes::Bytes;
use kms_plugin_proto::v1beta1::{
    DecryptRequest, EncryptRequest, EncryptResponse, VersionRequest, VersionResponse,
};
use prost::Message;

use super::parked::Work;
use super::{DECRYPTION_FAILED, encode_plaintext_field, malformed, wipe};
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
fn check_version(version: &str) -> Result<(), Response> {
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

/// Seals `plaintext` into a self-describing v1 ciphertext.
pub(super) fn encrypt(cur: &LocalKek, rng: &mut Rng, plaintext: &SecretBytes) -> Response {
    let Ok(cipher) = envelope::seal_v1(
        cur.kek(),
        cur.key_id(),
        cur.wrapped(),
        plaintext.expose(),
        rng,
    ) else {
        return Response::error(Code::InvalidArgument, "plaintext too large");
    };
    // The apiserver length-prefixes the cipher with a u16 (spec §5).
    debug_assert!(u16::try_from(cipher.len()).is_ok());
    let resp = EncryptResponse {
        cipher: Bytes::from(cipher),
    };
    Response::ok(SecretBytes::new(resp.encode_to_vec()))
}

/// Decodes a `DecryptRequest` and reads the key id and wrapped local KEK from the cipher.
pub(super) fn decode_decrypt(msg: &[u8]) -> Result<Work, Response> {
    let DecryptRequest { version, cipher } =
        DecryptRequest::decode(msg).map_err(|_| malformed())?;
    check_version(&version)?;
    let Ok(parts) = envelope::parse_v1(&cipher) else {
        return Err(Response::error(Code::InvalidArgument, DECRYPTION_FAILED));
    };
    let key_id = String::from(parts.key_id);
    let wrapped = parts.wrapped_kek.to_vec();
    let digest = envelope::wrapped_kek_digest(&wrapped);
    Ok(Work::V1Decrypt {
        cipher: cipher.to_vec(),
        key_id,
        wrapped,
        digest,
    })
}

/// Opens a v1 ciphertext; every failure is the same opaque answer.
pub(super) fn decrypt(kek: &Secret32, cipher: &[u8]) -> Response {
    match envelope::parse_v1(cipher).and_then(|parts| envelope::open_v1(kek, &parts)) {
        Ok(plain) => Response::ok(encode_plaintext_field(plain.expose())),
        Err(_) => Response::error(Code::InvalidArgument, DECRYPTION_FAILED),
    }
}
