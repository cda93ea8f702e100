//! KMS v2 handlers: Status (from cached state, never a remote call), Encrypt, Decrypt.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use kms_plugin_proto::v2::{DecryptRequest, EncryptRequest, EncryptResponse, StatusRequest};
use prost::Message;

use super::parked::Work;
use super::{
    DECRYPTION_FAILED, apiserver_rules, encode_plaintext_field, malformed, put_bytes_field, wipe,
};
use crate::config::KmsConfig;
use crate::envelope;
use crate::keystore::{Keystore, LocalKek, MAX_KEY_ID_LEN};
use crate::rng::Rng;
use crate::rpc::{Code, Response};
use crate::secret::{Secret32, SecretBytes};
use crate::time::Timestamp;

/// `Status`: version (constant), healthz and the advertised key id, all from local state.
pub(super) fn status(msg: &[u8], cfg: &KmsConfig, ks: &Keystore, now: Timestamp) -> Response {
    if StatusRequest::decode(msg).is_err() {
        return malformed();
    }
    let health = ks.health_at(now);
    let (version, key_id) = (cfg.status_version.as_str(), ks.advertised_key_id());
    debug_assert!(apiserver_rules::check_status_response(version, health.cause, key_id).is_ok());
    // `StatusResponse { version = 1, healthz = 2, key_id = 3 }` (all strings), encoded by hand
    // into one exactly sized buffer: Status is polled constantly (spec §3.2), so it allocates
    // nothing but its answer. Tests decode it with the prost type.
    let mut out = Vec::with_capacity(3 * 3 + version.len() + health.cause.len() + key_id.len());
    put_bytes_field(&mut out, 1, version.as_bytes());
    put_bytes_field(&mut out, 2, health.cause.as_bytes());
    put_bytes_field(&mut out, 3, key_id.as_bytes());
    Response::ok(SecretBytes::new(out))
}

/// Decodes an `EncryptRequest`; the plaintext moves into a zeroizing buffer at once.
///
/// An empty `uid` is accepted: real apiservers always send a UUID (spec §2.2), only the
/// apiserver's own test mock rejects it (spec §6.3), and the reference plugin ignores it
/// (spec §7).
pub(super) fn decode_encrypt(msg: &[u8]) -> Result<(Work, String), Response> {
    let EncryptRequest { plaintext, uid } = EncryptRequest::decode(msg).map_err(|_| malformed())?;
    let secret = SecretBytes::copy_from(&plaintext);
    wipe(plaintext);
    if secret.is_empty() {
        return Err(Response::error(Code::InvalidArgument, "plaintext is empty"));
    }
    Ok((Work::V2Encrypt { plaintext: secret }, uid))
}

/// Seals `plaintext` under the current local KEK.
pub(super) fn encrypt(cur: &LocalKek, rng: &mut Rng, plaintext: &SecretBytes) -> Response {
    let Ok(ciphertext) = envelope::seal_v2(
        cur.kek(),
        cur.key_id(),
        cur.wrapped(),
        plaintext.expose(),
        rng,
    ) else {
        return Response::error(Code::InvalidArgument, "plaintext too large");
    };
    let resp = EncryptResponse {
        ciphertext: Bytes::from(ciphertext),
        key_id: String::from(cur.key_id()),
        annotations: envelope::v2_annotations(cur.wrapped())
            .into_iter()
            .map(|(k, v)| (String::from(k), Bytes::from(v)))
            .collect(),
    };
    // The apiserver discards answers that break these rules (spec §3.3 step 2).
    debug_assert!(
        apiserver_rules::check_encrypt_response(&resp.ciphertext, &resp.key_id, &resp.annotations)
            .is_ok()
    );
    Response::ok(SecretBytes::new(resp.encode_to_vec()))
}

/// Decodes a `DecryptRequest` and finds the wrapped local KEK in its annotations.
pub(super) fn decode_decrypt(msg: &[u8]) -> Result<(Work, String), Response> {
    let req = DecryptRequest::decode(msg).map_err(|_| malformed())?;
    // key_id: the apiserver's own rule (spec §3.2) also bounds what we accept back.
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
    let Ok(wrapped) = envelope::wrapped_kek_from_annotations(annotations) else {
        return Err(Response::error(Code::InvalidArgument, DECRYPTION_FAILED));
    };
    let wrapped = wrapped.to_vec();
    let digest = envelope::wrapped_kek_digest(&wrapped);
    let work = Work::V2Decrypt {
        ciphertext: req.ciphertext.to_vec(),
        key_id: req.key_id,
        wrapped,
        digest,
    };
    Ok((work, req.uid))
}

/// Opens a v2 ciphertext; every failure is the same opaque answer.
pub(super) fn decrypt(kek: &Secret32, ciphertext: &[u8], key_id: &str, wrapped: &[u8]) -> Response {
    match envelope::open_v2(kek, key_id, wrapped, ciphertext) {
        Ok(plain) => Response::ok(encode_plaintext_field(plain.expose())),
        Err(_) => Response::error(Code::InvalidArgument, DECRYPTION_FAILED),
    }
}
