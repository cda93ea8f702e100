//! Golden bytes: every message against a hand-checked protobuf encoding (tag = field << 3 |
//! wire type; type 2 = length-delimited, followed by a varint length).

use bytes::Bytes;
use kms_plugin_proto::{v1beta1, v2};
use prost::Message;

fn roundtrip<M: Message + Default + PartialEq + core::fmt::Debug>(msg: &M, expected: &[u8]) {
    assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
    assert_eq!(
        &M::decode(expected).unwrap(),
        msg,
        "decoding of {expected:02x?}"
    );
}

#[test]
fn v2_status() {
    roundtrip(&v2::StatusRequest {}, &[]);
    let resp = v2::StatusResponse {
        version: "v2".into(),
        healthz: "ok".into(),
        key_id: "k1".into(),
    };
    // field 1 "v2": 0a 02 76 32; field 2 "ok": 12 02 6f 6b; field 3 "k1": 1a 02 6b 31
    roundtrip(
        &resp,
        &[
            0x0a, 0x02, b'v', b'2', 0x12, 0x02, b'o', b'k', 0x1a, 0x02, b'k', b'1',
        ],
    );
}

#[test]
fn v2_encrypt() {
    let req = v2::EncryptRequest {
        plaintext: Bytes::from_static(&[1, 2, 3]),
        uid: "u".into(),
    };
    roundtrip(&req, &[0x0a, 0x03, 1, 2, 3, 0x12, 0x01, b'u']);

    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert("a.b".to_string(), Bytes::from_static(b"x"));
    annotations.insert("c.d".to_string(), Bytes::new());
    let resp = v2::EncryptResponse {
        ciphertext: Bytes::from_static(&[0xff]),
        key_id: "k".into(),
        annotations,
    };
    // ciphertext: 0a 01 ff; key_id: 12 01 6b;
    // map entry 1: 1a 08 { 0a 03 "a.b" 12 01 "x" }; map entry 2: 1a 05 { 0a 03 "c.d" }
    // (prost omits an empty value inside a map entry; both forms decode the same).
    roundtrip(
        &resp,
        &[
            0x0a, 0x01, 0xff, 0x12, 0x01, b'k', 0x1a, 0x08, 0x0a, 0x03, b'a', b'.', b'b', 0x12,
            0x01, b'x', 0x1a, 0x05, 0x0a, 0x03, b'c', b'.', b'd',
        ],
    );
}

#[test]
fn v2_decrypt() {
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert("a.b".to_string(), Bytes::from_static(b"x"));
    let req = v2::DecryptRequest {
        ciphertext: Bytes::from_static(&[7]),
        uid: "u".into(),
        key_id: "k".into(),
        annotations,
    };
    roundtrip(
        &req,
        &[
            0x0a, 0x01, 7, 0x12, 0x01, b'u', 0x1a, 0x01, b'k', 0x22, 0x08, 0x0a, 0x03, b'a', b'.',
            b'b', 0x12, 0x01, b'x',
        ],
    );
    roundtrip(
        &v2::DecryptResponse {
            plaintext: Bytes::from_static(b"ping"),
        },
        &[0x0a, 0x04, b'p', b'i', b'n', b'g'],
    );
}

#[test]
fn v1beta1_messages() {
    roundtrip(
        &v1beta1::VersionRequest {
            version: "v1beta1".into(),
        },
        &[0x0a, 0x07, b'v', b'1', b'b', b'e', b't', b'a', b'1'],
    );
    roundtrip(
        &v1beta1::VersionResponse {
            version: "v1beta1".into(),
            runtime_name: "n".into(),
            runtime_version: "1".into(),
        },
        &[
            0x0a, 0x07, b'v', b'1', b'b', b'e', b't', b'a', b'1', 0x12, 0x01, b'n', 0x1a, 0x01,
            b'1',
        ],
    );
    roundtrip(
        &v1beta1::EncryptRequest {
            version: "v1beta1".into(),
            plain: Bytes::from_static(b"ping"),
        },
        &[
            0x0a, 0x07, b'v', b'1', b'b', b'e', b't', b'a', b'1', 0x12, 0x04, b'p', b'i', b'n',
            b'g',
        ],
    );
    roundtrip(
        &v1beta1::EncryptResponse {
            cipher: Bytes::from_static(&[9, 9]),
        },
        &[0x0a, 0x02, 9, 9],
    );
    roundtrip(
        &v1beta1::DecryptRequest {
            version: String::new(),
            cipher: Bytes::from_static(&[9]),
        },
        &[0x12, 0x01, 9],
    );
    roundtrip(
        &v1beta1::DecryptResponse {
            plain: Bytes::from_static(&[1]),
        },
        &[0x0a, 0x01, 1],
    );
}

#[test]
fn unknown_fields_are_skipped_and_garbage_is_an_error() {
    // field 9 varint 1, then field 3 "k": unknown field skipped (proto3).
    let resp = v2::StatusResponse::decode(&[0x48, 0x01, 0x1a, 0x01, b'k'][..]).unwrap();
    assert_eq!(resp.key_id, "k");
    // A length running past the end is an error, not a panic.
    assert!(v2::StatusResponse::decode(&[0x0a, 0x05, b'v'][..]).is_err());
    // Invalid UTF-8 in a string field is an error (as with Go's protobuf).
    assert!(v2::StatusResponse::decode(&[0x1a, 0x01, 0xff][..]).is_err());
}
