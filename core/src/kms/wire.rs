//! Protobuf wire helpers for the KMS responses, which are all written by hand: each is a few
//! length-delimited fields (proto3, wire type 2), and writing them directly lets a plaintext
//! go straight into its one zeroizing response buffer. Tests decode every answer with the
//! prost types of `kms-plugin-proto`. Also the answers every handler shares.

use alloc::vec::Vec;

use bytes::Bytes;
use prost::encoding::{self, WireType};
use zeroize::Zeroizing;

use crate::envelope::OpenError;
use crate::rpc::{Code, Response};
use crate::secret::SecretBytes;

/// The message every crypto failure gets (opaque: no oracle, docs/threat-model.md).
pub(crate) const DECRYPTION_FAILED: &str = "decryption failed";

/// gRPC: a request message that does not decode is INVALID_ARGUMENT.
pub(crate) fn malformed() -> Response {
    Response::error(Code::InvalidArgument, "malformed request message")
}

/// The opaque answer to any failed decryption.
pub(crate) fn decryption_failed() -> Response {
    Response::error(Code::InvalidArgument, DECRYPTION_FAILED)
}

/// Best-effort wipe of a decoded plaintext field. prost decodes `bytes` fields into a fresh,
/// uniquely owned `Bytes`, which is turned back into a mutable buffer and zeroized. (Should
/// the buffer be shared, it cannot be wiped; `bytes::Bytes` does not zeroize on drop, which is
/// the residual risk documented in `docs`.)
pub(crate) fn wipe(b: Bytes) {
    if let Ok(mut m) = b.try_into_mut() {
        zeroize::Zeroize::zeroize(m.as_mut());
    }
}

/// Appends the tag (wire type 2) and varint length of a length-delimited field `field` whose
/// `len` octets the caller appends next.
pub(crate) fn put_field_head(out: &mut Vec<u8>, field: u8, len: usize) {
    encoding::encode_key(u32::from(field), WireType::LengthDelimited, out);
    encoding::encode_varint(len as u64, out);
}

/// Appends field `field` holding `value`; proto3 omits empty fields.
pub(crate) fn put_bytes_field(out: &mut Vec<u8>, field: u8, value: &[u8]) {
    if value.is_empty() {
        return;
    }
    put_field_head(out, field, value.len());
    out.extend_from_slice(value);
}

/// Appends one entry of a `map<string, bytes>` field: an embedded message
/// `{ key = 1; value = 2; }`.
pub(crate) fn put_map_entry(out: &mut Vec<u8>, field: u8, key: &str, value: &[u8]) {
    // Each non-empty field: a 1-octet tag, its varint length, its octets.
    let entry_len = |v: &[u8]| match v.len() {
        0 => 0,
        n => 1 + encoding::encoded_len_varint(n as u64) + n,
    };
    put_field_head(out, field, entry_len(key.as_bytes()) + entry_len(value));
    put_bytes_field(out, 1, key.as_bytes());
    put_bytes_field(out, 2, value);
}

/// A response whose only field is `bytes = 1` holding a plaintext (v2 `DecryptResponse` and
/// v1 `DecryptResponse` share this shape), with the `plain_len` octets written by `open`
/// straight into the zeroizing response buffer: one allocation, and the plaintext never sits
/// anywhere else. `open` must append exactly `plain_len` octets, or fail.
pub(crate) fn plaintext_response(
    plain_len: usize,
    open: impl FnOnce(&mut Vec<u8>) -> Result<(), OpenError>,
) -> Result<SecretBytes, OpenError> {
    let mut out = Zeroizing::new(Vec::with_capacity(plain_len + 11));
    if plain_len > 0 {
        put_field_head(&mut out, 1, plain_len);
    }
    let head = out.len();
    open(&mut out)?;
    if out.len() - head != plain_len {
        return Err(OpenError);
    }
    Ok(SecretBytes::new(core::mem::take(&mut *out)))
}
