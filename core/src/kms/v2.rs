//! KMS v2 handlers: Status (from cached state, never a remote call), Encrypt, Decrypt.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use kms_plugin_proto::v2::{DecryptRequest, EncryptRequest, EncryptResponse, StatusRequest};
use prost::Message;

use super::parked::Work;
use super::{
    DECRYPTION_FAILED, apiserver_rules, malformed, plaintext_response, put_bytes_field, wipe,
};
use crate::annotations::WRAPPED_KEK_KEY;
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
    let healthz = ks.healthz_at(now);
    let (version, key_id) = (cfg.status_version.as_str(), ks.advertised_key_id());
    debug_assert!(apiserver_rules::check_status_response(version, healthz, key_id).is_ok());
    // `StatusResponse { version = 1, healthz = 2, key_id = 3 }` (all strings), encoded by hand
    // into one exactly sized buffer: Status is polled constantly (spec §3.2), so it allocates
    // nothing but its answer. Tests decode it with the prost type.
    let mut out = Vec::with_capacity(3 * 3 + version.len() + healthz.len() + key_id.len());
    put_bytes_field(&mut out, 1, version.as_bytes());
    put_bytes_field(&mut out, 2, healthz.as_bytes());
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
    let mut ciphertext = Vec::with_capacity(envelope::V2_MAX_CIPHERTEXT);
    let sealed = envelope::seal_v2_into(
        cur.kek(),
        cur.key_id(),
        cur.wrapped(),
        cur.digest(),
        plaintext.expose(),
        rng,
        &mut ciphertext,
    );
    if sealed.is_err() {
        return Response::error(Code::InvalidArgument, "plaintext too large");
    }
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

/// Decodes a `DecryptRequest` and finds the wrapped local KEK in its annotations. The decoded
/// buffers move into the [`Work`]; the wrapped KEK is hashed once, here.
pub(super) fn decode_decrypt(msg: &[u8]) -> Result<(Work, String), Response> {
    let mut req = DecryptRequest::decode(msg).map_err(|_| malformed())?;
    let annotations = req.annotations.iter().map(|(k, v)| (k.as_str(), &v[..]));
    let wrapped = check_decrypt(&req.key_id, &req.ciphertext, annotations)?;
    let digest = envelope::wrapped_kek_digest(wrapped);
    // Present: check_decrypt found it under this key.
    let wrapped = req.annotations.remove(WRAPPED_KEK_KEY).unwrap_or_default();
    let work = Work::V2Decrypt {
        ciphertext: req.ciphertext,
        key_id: req.key_id,
        wrapped,
        digest,
    };
    Ok((work, req.uid))
}

/// The checks of a decoded v2 `DecryptRequest` (from prost or a [`DecryptView`]): a key_id
/// kube-apiserver itself would accept (spec §3.2), a non-empty ciphertext, and annotations
/// this plugin wrote. Returns the wrapped local KEK.
///
/// [`DecryptView`]: super::request_view::DecryptView
pub(super) fn check_decrypt<'a>(
    key_id: &str,
    ciphertext: &[u8],
    annotations: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<&'a [u8], Response> {
    // key_id: the apiserver's own rule (spec §3.2) also bounds what we accept back.
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(Response::error(Code::InvalidArgument, "invalid key_id"));
    }
    if ciphertext.is_empty() {
        return Err(Response::error(
            Code::InvalidArgument,
            "ciphertext is empty",
        ));
    }
    envelope::wrapped_kek_from_annotations(annotations)
        .map_err(|_| Response::error(Code::InvalidArgument, DECRYPTION_FAILED))
}

/// Opens a v2 ciphertext straight into the response; every failure is the same opaque answer.
/// `digest` is `wrapped_kek_digest` of the request's wrapped KEK.
pub(super) fn decrypt(
    kek: &Secret32,
    ciphertext: &[u8],
    key_id: &str,
    digest: &[u8; 32],
) -> Response {
    let opened = envelope::v2_plaintext_len(ciphertext).map(|len| {
        plaintext_response(len, |out| {
            envelope::open_v2_into(kek, key_id, digest, ciphertext, out)
        })
    });
    match opened {
        Some(Ok(body)) => Response::ok(body),
        _ => Response::error(Code::InvalidArgument, DECRYPTION_FAILED),
    }
}
