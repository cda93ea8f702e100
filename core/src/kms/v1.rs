//! KMS v1beta1 requests (the deprecated API): Version, and the decoding of Encrypt and
//! Decrypt into their work.
//!
//! v1 has no annotations, so ciphertexts are self-describing (`envelope::seal_v1`): they
//! carry the remote key id and the wrapped local KEK.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use kms_plugin_proto::v1beta1::{DecryptRequest, EncryptRequest, VersionRequest};
use prost::Message;

use super::wire::{decryption_failed, malformed, put_bytes_field, wipe};
use super::work::{Api, DecryptWork, EncryptWork};
use crate::config::KmsConfig;
use crate::envelope;
use crate::keystore::Digest;
use crate::rpc::{Code, Response};
use crate::secret::SecretBytes;

/// The only v1 API version (`kmsapiVersion`).
pub(super) const V1BETA1: &str = "v1beta1";

/// The request `version` field: the apiserver sends `v1beta1`; empty is tolerated (proto3
/// default), anything else is refused.
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

/// `Version`: always `v1beta1` plus runtime name/version, as
/// `VersionResponse { string version = 1; string runtime_name = 2; string runtime_version = 3; }`.
/// The apiserver requires exactly `v1beta1` back whatever it sent, so the request's value does
/// not change the answer; it only has to be a well-formed message.
pub(super) fn version(msg: &[u8], cfg: &KmsConfig) -> Response {
    if VersionRequest::decode(msg).is_err() {
        return malformed();
    }
    let (name, version) = (cfg.runtime_name.as_bytes(), cfg.runtime_version.as_bytes());
    let mut out = Vec::with_capacity(3 * 3 + V1BETA1.len() + name.len() + version.len());
    put_bytes_field(&mut out, 1, V1BETA1.as_bytes());
    put_bytes_field(&mut out, 2, name);
    put_bytes_field(&mut out, 3, version);
    Response::ok(SecretBytes::new(out))
}

/// Decodes an `EncryptRequest` from the request buffer (plaintext decoded in place, copied
/// into a zeroizing buffer, then the whole request buffer wiped). An empty plaintext is
/// encrypted like any other (the apiserver sends a 32-byte DEK or `ping`).
pub(super) fn decode_encrypt(msg: Bytes) -> Result<EncryptWork, Response> {
    let decoded =
        EncryptRequest::decode(msg.clone()).map(|r| (SecretBytes::copy_from(&r.plain), r.version));
    wipe(msg);
    let (plaintext, version) = decoded.map_err(|_| malformed())?;
    check_version(&version)?;
    Ok(EncryptWork {
        api: Api::V1,
        plaintext,
    })
}

/// Decodes a `DecryptRequest` and reads the key id and wrapped local KEK from the cipher,
/// which moves into the work (the wrapped KEK is a view into it, hashed once by `digest_of`).
pub(super) fn decode_decrypt(
    msg: Bytes,
    digest_of: impl FnOnce(&[u8]) -> Digest,
) -> Result<DecryptWork, Response> {
    let DecryptRequest { version, cipher } =
        DecryptRequest::decode(msg).map_err(|_| malformed())?;
    check_version(&version)?;
    let parts = envelope::parse_v1(&cipher).map_err(|_| decryption_failed())?;
    let key_id = String::from(parts.key_id);
    let digest = digest_of(parts.wrapped_kek);
    // `parts` borrows from `cipher`, so this is a sub-slice of it (what slice_ref requires).
    let wrapped = cipher.slice_ref(parts.wrapped_kek);
    Ok(DecryptWork {
        api: Api::V1,
        ciphertext: cipher,
        key_id,
        wrapped,
        digest,
    })
}
