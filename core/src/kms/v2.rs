//! KMS v2 requests: Status (from cached state, never a remote call), and the decoding of
//! Encrypt and Decrypt into their [`Work`].

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use kms_plugin_proto::v2::{DecryptRequest, EncryptRequest, StatusRequest};
use prost::Message;

use super::wire::{decryption_failed, malformed, put_bytes_field, wipe};
use super::work::{Api, DecryptWork, EncryptWork};
use crate::annotations::WRAPPED_KEK_KEY;
use crate::config::KmsConfig;
use crate::envelope;
use crate::health::HealthWarning;
use crate::keystore::{Digest, Keystore, MAX_KEY_ID_LEN};
use crate::kms::apiserver_rules;
use crate::rpc::{Code, Response};
use crate::secret::SecretBytes;
use crate::time::Timestamp;

#[cfg(doc)]
use super::work::Work;

/// `Status`: version (constant), healthz and the advertised key id, all from local state:
/// `StatusResponse { string version = 1; string healthz = 2; string key_id = 3; }`, with
/// `warning` (if any) as its extra trailer; healthz never mentions it.
pub(super) fn status(
    msg: &[u8],
    cfg: &KmsConfig,
    ks: &Keystore,
    warning: Option<&HealthWarning>,
    now: Timestamp,
) -> Response {
    if StatusRequest::decode(msg).is_err() {
        return malformed();
    }
    let healthz = ks.healthz_at(now);
    let (version, key_id) = (cfg.status_version.as_str(), ks.advertised_key_id());
    debug_assert!(apiserver_rules::check_status_response(version, healthz, key_id).is_ok());
    let mut out = Vec::with_capacity(3 * 3 + version.len() + healthz.len() + key_id.len());
    put_bytes_field(&mut out, 1, version.as_bytes());
    put_bytes_field(&mut out, 2, healthz.as_bytes());
    put_bytes_field(&mut out, 3, key_id.as_bytes());
    let mut response = Response::ok(SecretBytes::new(out));
    response.warning = warning.cloned();
    response
}

/// Decodes an `EncryptRequest` from the request buffer (plaintext decoded in place, copied
/// into a zeroizing buffer, then the whole request buffer wiped); `uid` receives the request
/// uid.
///
/// An empty `uid` is accepted: real apiservers always send a UUID, only the apiserver's own
/// test mock rejects it, and the plugin this one replaces ignores it.
pub(super) fn decode_encrypt(
    msg: Bytes,
    uid: &mut Option<String>,
) -> Result<EncryptWork, Response> {
    let decoded = EncryptRequest::decode(msg.clone()).map(|r| {
        let plaintext = SecretBytes::copy_from(&r.plaintext);
        (plaintext, r.uid)
    });
    wipe(msg);
    let (plaintext, request_uid) = decoded.map_err(|_| malformed())?;
    if plaintext.is_empty() {
        return Err(Response::error(Code::InvalidArgument, "plaintext is empty"));
    }
    *uid = Some(request_uid);
    Ok(EncryptWork {
        api: Api::V2,
        plaintext,
    })
}

/// Decodes a `DecryptRequest` and checks it: a key_id kube-apiserver itself would accept, a
/// non-empty ciphertext, and exactly the annotations this plugin writes. The decoded buffers
/// move into the work; `digest_of` hashes the wrapped KEK once, here; `uid` receives the
/// request uid.
pub(super) fn decode_decrypt(
    msg: Bytes,
    digest_of: impl FnOnce(&[u8]) -> Digest,
    uid: &mut Option<String>,
) -> Result<DecryptWork, Response> {
    let mut req = DecryptRequest::decode(msg).map_err(|_| malformed())?;
    // key_id: the apiserver's own rule also bounds what we accept back.
    if req.key_id.is_empty() || req.key_id.len() > MAX_KEY_ID_LEN {
        return Err(Response::error(Code::InvalidArgument, "invalid key_id"));
    }
    if req.ciphertext.is_empty() {
        return Err(Response::error(
            Code::InvalidArgument,
            "ciphertext is empty",
        ));
    }
    let annotations = req.annotations.iter().map(|(k, v)| (k.as_str(), &v[..]));
    let wrapped =
        envelope::wrapped_kek_from_annotations(annotations).map_err(|_| decryption_failed())?;
    let digest = digest_of(wrapped);
    // Present: wrapped_kek_from_annotations found it under this key.
    let wrapped = req.annotations.remove(WRAPPED_KEK_KEY).unwrap_or_default();
    *uid = Some(req.uid);
    Ok(DecryptWork {
        api: Api::V2,
        ciphertext: req.ciphertext,
        key_id: req.key_id,
        wrapped,
        digest,
    })
}
