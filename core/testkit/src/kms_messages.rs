//! Request builders and response checks for KMS tests: encode the messages kube-apiserver
//! sends, decode what the plugin answers, and assert the apiserver's validation rules.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;
use kms_plugin_proto::{v1beta1, v2};
use prost::Message;

use kms_plugin_core::rpc::{Code, Response};
use kms_plugin_core::testing::{check_encrypt_response, check_status_response};

/// `/v2.KeyManagementService/Status`.
pub const V2_STATUS: &str = "/v2.KeyManagementService/Status";
/// `/v2.KeyManagementService/Encrypt`.
pub const V2_ENCRYPT: &str = "/v2.KeyManagementService/Encrypt";
/// `/v2.KeyManagementService/Decrypt`.
pub const V2_DECRYPT: &str = "/v2.KeyManagementService/Decrypt";
/// `/v1beta1.KeyManagementService/Version`.
pub const V1_VERSION: &str = "/v1beta1.KeyManagementService/Version";
/// `/v1beta1.KeyManagementService/Encrypt`.
pub const V1_ENCRYPT: &str = "/v1beta1.KeyManagementService/Encrypt";
/// `/v1beta1.KeyManagementService/Decrypt`.
pub const V1_DECRYPT: &str = "/v1beta1.KeyManagementService/Decrypt";

/// An encoded v2 `StatusRequest`.
pub fn v2_status() -> Vec<u8> {
    v2::StatusRequest {}.encode_to_vec()
}

/// An encoded v2 `EncryptRequest`.
pub fn v2_encrypt(plaintext: &[u8], uid: &str) -> Vec<u8> {
    v2::EncryptRequest {
        plaintext: Bytes::copy_from_slice(plaintext),
        uid: String::from(uid),
    }
    .encode_to_vec()
}

/// An encoded v2 `DecryptRequest` for what Encrypt returned, as the apiserver sends it.
pub fn v2_decrypt(enc: &v2::EncryptResponse, uid: &str) -> Vec<u8> {
    v2::DecryptRequest {
        ciphertext: enc.ciphertext.clone(),
        uid: String::from(uid),
        key_id: enc.key_id.clone(),
        annotations: enc.annotations.clone(),
    }
    .encode_to_vec()
}

/// An encoded v1 `VersionRequest` (`version: "v1beta1"`, as the apiserver sends it).
pub fn v1_version() -> Vec<u8> {
    v1beta1::VersionRequest {
        version: String::from("v1beta1"),
    }
    .encode_to_vec()
}

/// An encoded v1 `EncryptRequest`.
pub fn v1_encrypt(plain: &[u8]) -> Vec<u8> {
    v1beta1::EncryptRequest {
        version: String::from("v1beta1"),
        plain: Bytes::copy_from_slice(plain),
    }
    .encode_to_vec()
}

/// An encoded v1 `DecryptRequest`.
pub fn v1_decrypt(cipher: &[u8]) -> Vec<u8> {
    v1beta1::DecryptRequest {
        version: String::from("v1beta1"),
        cipher: Bytes::copy_from_slice(cipher),
    }
    .encode_to_vec()
}

/// Decodes an OK response's body; panics (test failure) otherwise.
pub fn decode_ok<M: Message + Default>(resp: &Response) -> M {
    assert_eq!(
        resp.code,
        Code::Ok,
        "expected OK, got {:?}: {}",
        resp.code,
        resp.message
    );
    let body = resp.body.as_ref().expect("OK response without body");
    M::decode(body.expose()).expect("response does not decode")
}

/// Decodes a v2 Status answer and asserts the apiserver's rules (docs/protocol.md §4).
pub fn decode_status(resp: &Response) -> v2::StatusResponse {
    let s: v2::StatusResponse = decode_ok(resp);
    assert_eq!(
        check_status_response(&s.version, &s.healthz, &s.key_id),
        Ok(()),
        "{s:?}"
    );
    s
}

/// Decodes a v2 Encrypt answer and asserts the apiserver's rules (docs/protocol.md §4).
pub fn decode_v2_encrypt(resp: &Response) -> v2::EncryptResponse {
    let e: v2::EncryptResponse = decode_ok(resp);
    assert_eq!(
        check_encrypt_response(
            &e.ciphertext,
            &e.key_id,
            e.annotations.iter().map(|(k, v)| (k.as_str(), &v[..]))
        ),
        Ok(()),
    );
    e
}

/// The plaintext of a v2 Decrypt answer.
pub fn decode_v2_plaintext(resp: &Response) -> Vec<u8> {
    decode_ok::<v2::DecryptResponse>(resp).plaintext.to_vec()
}

/// The cipher of a v1 Encrypt answer (asserting the apiserver's u16 length limit, docs/protocol.md §6).
pub fn decode_v1_cipher(resp: &Response) -> Vec<u8> {
    let c = decode_ok::<v1beta1::EncryptResponse>(resp).cipher.to_vec();
    assert!(u16::try_from(c.len()).is_ok());
    c
}

/// The plaintext of a v1 Decrypt answer.
pub fn decode_v1_plain(resp: &Response) -> Vec<u8> {
    decode_ok::<v1beta1::DecryptResponse>(resp).plain.to_vec()
}
