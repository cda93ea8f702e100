//! KMIP codec: request builders, response parsers and error mapping for the KMIP provider
//! (the TLS transport lives in the runtime). KMIP 1.4 messages in TTLV ([`ttlv`]), one batch
//! item per message; the operations used:
//!
//! | provider step | KMIP operation | request payload | response payload read |
//! |---|---|---|---|
//! | find the key by name | Locate (0x08) | `Name` = `KMS_KEY_ID`, `Object Type` = Symmetric Key | Unique Identifier(s) |
//! | identity and state | Get Attributes (0x0B) | Unique Identifier, attribute names | State, Cryptographic Algorithm/Length, Initial Date, Digest |
//! | wrap | Encrypt (0x1F) | Unique Identifier, Cryptographic Parameters, Data (the local KEK) [, AAD] | Data, IV/Counter/Nonce, Authenticated Encryption Tag |
//! | unwrap | Decrypt (0x20) | Unique Identifier, Cryptographic Parameters, Data [, IV, AAD, tag] | Data |
//!
//! Why our own TTLV subset rather than the `kmip-ttlv` / `kmip-protocol` crates: they are std
//! only (`std::io` readers), pull serde and a TLS stack into the core, and had no release since
//! January 2023; the subset needed here is ~250 lines, allocation-free on the read side and
//! checks every length, which is what the fuzz target (`fuzz_targets/kmip_responses.rs`) and
//! the rules for the core ask for.
//!
//! Secrets: requests carry the local KEK (Encrypt) and possibly the password, so every request
//! is built into a zeroizing buffer allocated once ([`MAX_REQUEST_BYTES`]); a decrypted KEK is
//! returned as [`Secret32`]. Error details quote the server's Result Message (bounded to
//! [`MAX_ERROR_TEXT`] printable bytes), never request or response data.

pub mod key;
pub mod ttlv;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use crate::effect::{RemoteError, RemoteErrorKind};
use crate::secret::Secret32;
use ttlv::{Item, TtlvError, Writer};

pub use key::{KeyAttributes, WrapMode, WrappedBlob};

/// Largest response message a transport may buffer (answers here are < 1 KiB; Locate is capped
/// by Maximum Items).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Capacity of every request buffer (the largest, Decrypt with a password, is < 2 KiB).
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Longest accepted key name, unique identifier and username.
pub const MAX_NAME_LEN: usize = 256;
/// Longest accepted password.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest Result Message text quoted in a [`RemoteError`] detail.
pub const MAX_ERROR_TEXT: usize = 300;
/// Most keys of one name Locate asks for (Maximum Items). Servers list the newest first
/// (PyKMIP sorts by Initial Date, newest first), so a long rotation history of one name keeps
/// the current key among them.
pub const MAX_CANDIDATES: usize = 16;
/// The protocol version sent: 1.4 is the first with AES-GCM's additional data and tag fields.
pub const PROTOCOL_VERSION: (i32, i32) = (1, 4);

/// KMIP tags used (KMIP 1.4 spec, section 9.1.3.1).
pub mod tag {
    #![allow(missing_docs)]
    pub const ATTRIBUTE: u32 = 0x42_0008;
    pub const ATTRIBUTE_NAME: u32 = 0x42_000A;
    pub const ATTRIBUTE_VALUE: u32 = 0x42_000B;
    pub const AUTHENTICATION: u32 = 0x42_000C;
    pub const BATCH_COUNT: u32 = 0x42_000D;
    pub const BATCH_ITEM: u32 = 0x42_000F;
    pub const BLOCK_CIPHER_MODE: u32 = 0x42_0011;
    pub const CREDENTIAL: u32 = 0x42_0023;
    pub const CREDENTIAL_TYPE: u32 = 0x42_0024;
    pub const CREDENTIAL_VALUE: u32 = 0x42_0025;
    pub const CRYPTOGRAPHIC_ALGORITHM: u32 = 0x42_0028;
    pub const CRYPTOGRAPHIC_LENGTH: u32 = 0x42_002A;
    pub const CRYPTOGRAPHIC_PARAMETERS: u32 = 0x42_002B;
    pub const DIGEST: u32 = 0x42_0034;
    pub const DIGEST_VALUE: u32 = 0x42_0035;
    pub const INITIAL_DATE: u32 = 0x42_0039;
    pub const IV_COUNTER_NONCE: u32 = 0x42_003D;
    pub const MAXIMUM_ITEMS: u32 = 0x42_004F;
    pub const MAXIMUM_RESPONSE_SIZE: u32 = 0x42_0050;
    pub const NAME: u32 = 0x42_0053;
    pub const NAME_TYPE: u32 = 0x42_0054;
    pub const NAME_VALUE: u32 = 0x42_0055;
    pub const OBJECT_TYPE: u32 = 0x42_0057;
    pub const OPERATION: u32 = 0x42_005C;
    pub const PROTOCOL_VERSION: u32 = 0x42_0069;
    pub const PROTOCOL_VERSION_MAJOR: u32 = 0x42_006A;
    pub const PROTOCOL_VERSION_MINOR: u32 = 0x42_006B;
    pub const REQUEST_HEADER: u32 = 0x42_0077;
    pub const REQUEST_MESSAGE: u32 = 0x42_0078;
    pub const REQUEST_PAYLOAD: u32 = 0x42_0079;
    pub const RESPONSE_HEADER: u32 = 0x42_007A;
    pub const RESPONSE_MESSAGE: u32 = 0x42_007B;
    pub const RESPONSE_PAYLOAD: u32 = 0x42_007C;
    pub const RESULT_MESSAGE: u32 = 0x42_007D;
    pub const RESULT_REASON: u32 = 0x42_007E;
    pub const RESULT_STATUS: u32 = 0x42_007F;
    pub const STATE: u32 = 0x42_008D;
    pub const UNIQUE_IDENTIFIER: u32 = 0x42_0094;
    pub const USERNAME: u32 = 0x42_0099;
    pub const PASSWORD: u32 = 0x42_00A1;
    pub const DATA: u32 = 0x42_00C2;
    pub const RANDOM_IV: u32 = 0x42_00C5;
    pub const TAG_LENGTH: u32 = 0x42_00CE;
    pub const AE_ADDITIONAL_DATA: u32 = 0x42_00FE;
    pub const AE_TAG: u32 = 0x42_00FF;
}

/// Enumeration values used (KMIP 1.4 spec, section 9.1.3.2).
mod value {
    pub(super) const CREDENTIAL_USERNAME_PASSWORD: u32 = 1;
    pub(super) const NAME_TYPE_TEXT: u32 = 1;
    pub(super) const OBJECT_SYMMETRIC_KEY: u32 = 2;
    pub(super) const ALGORITHM_AES: u32 = 3;
    pub(super) const RESULT_SUCCESS: u32 = 0;
}

/// The KMIP operations the provider sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Locate (find a key by its Name attribute).
    Locate,
    /// Get Attributes (state and identity of one key).
    GetAttributes,
    /// Encrypt (wrap the local KEK).
    Encrypt,
    /// Decrypt (unwrap the local KEK).
    Decrypt,
}

impl Operation {
    /// The Operation enumeration value.
    pub const fn code(self) -> u32 {
        match self {
            Self::Locate => 0x08,
            Self::GetAttributes => 0x0B,
            Self::Encrypt => 0x1F,
            Self::Decrypt => 0x20,
        }
    }

    /// Lower-case name for error details.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Locate => "locate",
            Self::GetAttributes => "get attributes",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }
}

/// A Username and Password credential (KMIP Credential Type 1). No `Clone`/`Debug`: the
/// password is wiped on drop and never formatted.
pub struct Credential {
    username: String,
    password: Zeroizing<String>,
}

impl Credential {
    /// Checks lengths: username 1..=[`MAX_NAME_LEN`], password 1..=[`MAX_PASSWORD_LEN`] bytes.
    pub fn new(username: &str, password: Zeroizing<String>) -> Result<Self, String> {
        if username.is_empty() || username.len() > MAX_NAME_LEN {
            return Err(format!(
                "the KMIP username (KMS_USER_ID) must be 1..={MAX_NAME_LEN} bytes"
            ));
        }
        if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
            return Err(format!(
                "the KMIP password must be 1..={MAX_PASSWORD_LEN} bytes"
            ));
        }
        Ok(Self {
            username: String::from(username),
            password,
        })
    }

    /// The username (not secret).
    pub fn username(&self) -> &str {
        &self.username
    }
}

/// Checks a key name or unique identifier (`KMS_KEY_ID`, or one a server returned):
/// 1..=[`MAX_NAME_LEN`] bytes without control characters.
pub fn check_identifier(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_NAME_LEN || id.chars().any(char::is_control) {
        return Err(format!(
            "KMIP key name or identifier {:?} must be 1..={MAX_NAME_LEN} bytes without control characters",
            id.get(..id.len().min(64)).unwrap_or("")
        ));
    }
    Ok(())
}

fn invalid(op: Operation, what: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Other,
        format!("kmip {}: {what}", op.name()),
    )
}

/// One request message around `payload` (KMIP 1.4 spec, section 7.1).
fn request(
    op: Operation,
    credential: Option<&Credential>,
    payload: impl FnOnce(&mut Writer),
) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
    let mut w = Writer::with_capacity(MAX_REQUEST_BYTES);
    w.structure(tag::REQUEST_MESSAGE, |w| {
        w.structure(tag::REQUEST_HEADER, |w| {
            w.structure(tag::PROTOCOL_VERSION, |w| {
                w.integer(tag::PROTOCOL_VERSION_MAJOR, PROTOCOL_VERSION.0);
                w.integer(tag::PROTOCOL_VERSION_MINOR, PROTOCOL_VERSION.1);
            });
            w.integer(
                tag::MAXIMUM_RESPONSE_SIZE,
                i32::try_from(MAX_RESPONSE_BYTES).unwrap_or(i32::MAX),
            );
            if let Some(c) = credential {
                w.structure(tag::AUTHENTICATION, |w| {
                    w.structure(tag::CREDENTIAL, |w| {
                        w.enumeration(tag::CREDENTIAL_TYPE, value::CREDENTIAL_USERNAME_PASSWORD);
                        w.structure(tag::CREDENTIAL_VALUE, |w| {
                            w.text(tag::USERNAME, &c.username);
                            w.text(tag::PASSWORD, &c.password);
                        });
                    });
                });
            }
            w.integer(tag::BATCH_COUNT, 1);
        });
        w.structure(tag::BATCH_ITEM, |w| {
            w.enumeration(tag::OPERATION, op.code());
            w.structure(tag::REQUEST_PAYLOAD, payload);
        });
    });
    w.finish().ok_or_else(|| invalid(op, "request too large"))
}

/// Locate: the symmetric keys whose Name is `name` (at most [`MAX_CANDIDATES`]).
pub fn locate_request(
    credential: Option<&Credential>,
    name: &str,
) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
    check_identifier(name).map_err(|e| invalid(Operation::Locate, &e))?;
    request(Operation::Locate, credential, |w| {
        w.integer(
            tag::MAXIMUM_ITEMS,
            i32::try_from(MAX_CANDIDATES).unwrap_or(i32::MAX),
        );
        w.structure(tag::ATTRIBUTE, |w| {
            w.text(tag::ATTRIBUTE_NAME, "Object Type");
            w.enumeration(tag::ATTRIBUTE_VALUE, value::OBJECT_SYMMETRIC_KEY);
        });
        w.structure(tag::ATTRIBUTE, |w| {
            w.text(tag::ATTRIBUTE_NAME, "Name");
            w.structure(tag::ATTRIBUTE_VALUE, |w| {
                w.text(tag::NAME_VALUE, name);
                w.enumeration(tag::NAME_TYPE, value::NAME_TYPE_TEXT);
            });
        });
    })
}

/// The attribute names Get Attributes asks for (see [`KeyAttributes`]).
pub const ATTRIBUTE_NAMES: [&str; 6] = [
    "Object Type",
    "State",
    "Cryptographic Algorithm",
    "Cryptographic Length",
    "Initial Date",
    "Digest",
];

/// Get Attributes of key `uid`.
pub fn get_attributes_request(
    credential: Option<&Credential>,
    uid: &str,
) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
    check_identifier(uid).map_err(|e| invalid(Operation::GetAttributes, &e))?;
    request(Operation::GetAttributes, credential, |w| {
        w.text(tag::UNIQUE_IDENTIFIER, uid);
        for name in ATTRIBUTE_NAMES {
            w.text(tag::ATTRIBUTE_NAME, name);
        }
    })
}

/// Cryptographic Parameters of `mode` (fields in the spec's order, section 2.1.8).
fn parameters(w: &mut Writer, mode: WrapMode) {
    w.structure(tag::CRYPTOGRAPHIC_PARAMETERS, |w| {
        w.enumeration(tag::BLOCK_CIPHER_MODE, mode.block_cipher_mode());
        w.enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, value::ALGORITHM_AES);
        if mode == WrapMode::Gcm {
            w.boolean(tag::RANDOM_IV, true);
            w.integer(
                tag::TAG_LENGTH,
                i32::try_from(key::GCM_TAG_LEN).unwrap_or(16),
            );
        }
    });
}

/// Encrypt `kek` under key `uid` in `mode`; for GCM the server draws the IV and `aad` is
/// authenticated (build it with [`key::gcm_aad`]).
pub fn encrypt_request(
    credential: Option<&Credential>,
    uid: &str,
    mode: WrapMode,
    kek: &Secret32,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
    check_identifier(uid).map_err(|e| invalid(Operation::Encrypt, &e))?;
    request(Operation::Encrypt, credential, |w| {
        w.text(tag::UNIQUE_IDENTIFIER, uid);
        parameters(w, mode);
        w.bytes(tag::DATA, kek.expose());
        if mode == WrapMode::Gcm {
            w.bytes(tag::AE_ADDITIONAL_DATA, aad);
        }
    })
}

/// Decrypt `blob` under key `uid` (`aad` as given to the matching [`encrypt_request`]).
pub fn decrypt_request(
    credential: Option<&Credential>,
    uid: &str,
    blob: &WrappedBlob<'_>,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
    check_identifier(uid).map_err(|e| invalid(Operation::Decrypt, &e))?;
    request(Operation::Decrypt, credential, |w| {
        w.text(tag::UNIQUE_IDENTIFIER, uid);
        parameters(w, blob.mode);
        w.bytes(tag::DATA, blob.data);
        if blob.mode == WrapMode::Gcm {
            w.bytes(tag::IV_COUNTER_NONCE, blob.iv);
            w.bytes(tag::AE_ADDITIONAL_DATA, aad);
            w.bytes(tag::AE_TAG, blob.tag);
        }
    })
}

fn corrupt(op: Operation, what: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Corrupt,
        format!("kmip {}: malformed response: {what}", op.name()),
    )
}

fn ttlv_error(op: Operation, e: TtlvError) -> RemoteError {
    let what = match e {
        TtlvError::Truncated => "truncated TTLV",
        TtlvError::BadLength => "TTLV length does not fit its type",
        TtlvError::WrongType => "field of an unexpected type",
        TtlvError::BadText => "text that is not UTF-8",
    };
    corrupt(op, what)
}

/// The length of the response body that follows the 8-byte `header` (a Response Message
/// structure), checked against [`MAX_RESPONSE_BYTES`]. The transport reads exactly that many
/// bytes next and passes header and body together to the parsers.
pub fn response_body_len(
    op: Operation,
    header: &[u8; ttlv::HEADER_LEN],
) -> Result<usize, RemoteError> {
    let tag_value = u32::from_be_bytes([0, header[0], header[1], header[2]]);
    if tag_value != tag::RESPONSE_MESSAGE || header[3] != ttlv::STRUCTURE {
        return Err(corrupt(op, "not a KMIP response message"));
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_RESPONSE_BYTES - ttlv::HEADER_LEN || len % 8 != 0 {
        return Err(corrupt(op, "response length out of bounds"));
    }
    Ok(len)
}

/// The Result Reason's name (KMIP 1.4 spec, section 9.1.3.2.29).
fn reason_name(reason: u32) -> &'static str {
    match reason {
        0x01 => "Item Not Found",
        0x02 => "Response Too Large",
        0x03 => "Authentication Not Successful",
        0x04 => "Invalid Message",
        0x05 => "Operation Not Supported",
        0x06 => "Missing Data",
        0x07 => "Invalid Field",
        0x08 => "Feature Not Supported",
        0x09 => "Operation Canceled By Requester",
        0x0A => "Cryptographic Failure",
        0x0B => "Illegal Operation",
        0x0C => "Permission Denied",
        0x0D => "Object archived",
        0x10 => "Key Format Type Not Supported",
        0x13 => "Key Value Not Present",
        0x100 => "General Failure",
        _ => "unknown reason",
    }
}

/// The error kind of a failed operation with Result Reason `reason`.
///
/// A Cryptographic Failure or General Failure of Decrypt means the blob does not open under
/// that key (PyKMIP reports a GCM tag mismatch as General Failure) and is `corrupt`; a General
/// Failure of anything else is taken as a passing server fault and retried.
pub fn reason_kind(op: Operation, reason: Option<u32>) -> RemoteErrorKind {
    match reason {
        Some(0x01 | 0x13) => RemoteErrorKind::NotFound,
        Some(0x03) => RemoteErrorKind::Auth,
        Some(0x0C) => RemoteErrorKind::Permission,
        Some(0x0A | 0x100) if op == Operation::Decrypt => RemoteErrorKind::Corrupt,
        Some(0x100) => RemoteErrorKind::Unavailable,
        _ => RemoteErrorKind::Other,
    }
}

/// `text` cut to [`MAX_ERROR_TEXT`] bytes of printable ASCII (others become `?`).
fn bounded_text(text: &str) -> String {
    text.chars()
        .take(MAX_ERROR_TEXT)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Checks a whole response `message` (header and body) to `op` and returns its Response
/// Payload (`None` if the server sent none). A failed operation becomes its [`RemoteError`]
/// (kind from [`reason_kind`], detail with the reason and the server's Result Message).
pub fn parse_response(op: Operation, message: &[u8]) -> Result<Option<Item<'_>>, RemoteError> {
    let e = |err| ttlv_error(op, err);
    let (root, rest) = ttlv::read_item(message).map_err(e)?;
    if root.tag != tag::RESPONSE_MESSAGE || !rest.is_empty() {
        return Err(corrupt(op, "not exactly one response message"));
    }
    root.child(tag::RESPONSE_HEADER)
        .map_err(e)?
        .ok_or_else(|| corrupt(op, "no response header"))?;
    let batch = root
        .child(tag::BATCH_ITEM)
        .map_err(e)?
        .ok_or_else(|| corrupt(op, "no batch item"))?;
    if let Some(code) = batch.child(tag::OPERATION).map_err(e)? {
        if code.enumeration().map_err(e)? != op.code() {
            return Err(corrupt(op, "answer to another operation"));
        }
    }
    let status = batch
        .child(tag::RESULT_STATUS)
        .map_err(e)?
        .ok_or_else(|| corrupt(op, "no result status"))?
        .enumeration()
        .map_err(e)?;
    if status == value::RESULT_SUCCESS {
        return batch.child(tag::RESPONSE_PAYLOAD).map_err(e);
    }
    let reason = match batch.child(tag::RESULT_REASON).map_err(e)? {
        Some(r) => Some(r.enumeration().map_err(e)?),
        None => None,
    };
    let message = match batch.child(tag::RESULT_MESSAGE).map_err(e)? {
        Some(m) => bounded_text(m.text().map_err(e)?),
        None => String::new(),
    };
    let reason_text = match (status, reason) {
        (1, Some(r)) => format!("{} (0x{r:x})", reason_name(r)),
        (1, None) => String::from("operation failed"),
        (2, _) => String::from("operation pending (asynchronous operations are not supported)"),
        _ => String::from("operation undone"),
    };
    Err(RemoteError::new(
        reason_kind(op, reason),
        format!("kmip {}: {reason_text}: {message}", op.name()),
    ))
}

fn payload(op: Operation, message: &[u8]) -> Result<Item<'_>, RemoteError> {
    parse_response(op, message)?.ok_or_else(|| corrupt(op, "no response payload"))
}

/// The unique identifiers a Locate response lists, the first [`MAX_CANDIDATES`] of them (a
/// server that ignores Maximum Items is cut there, in its order; every host gets the same list
/// and so picks the same key).
pub fn parse_locate(message: &[u8]) -> Result<Vec<String>, RemoteError> {
    let op = Operation::Locate;
    let e = |err| ttlv_error(op, err);
    let Some(body) = parse_response(op, message)? else {
        return Ok(Vec::new());
    };
    let mut uids = Vec::new();
    for item in body.children().map_err(e)? {
        let item = item.map_err(e)?;
        if item.tag != tag::UNIQUE_IDENTIFIER {
            continue;
        }
        if uids.len() == MAX_CANDIDATES {
            break;
        }
        let uid = item.text().map_err(e)?;
        check_identifier(uid).map_err(|_| corrupt(op, "invalid unique identifier"))?;
        uids.push(String::from(uid));
    }
    Ok(uids)
}

/// The attributes of a Get Attributes response (see [`KeyAttributes`]).
pub fn parse_attributes(message: &[u8]) -> Result<KeyAttributes, RemoteError> {
    let op = Operation::GetAttributes;
    let e = |err| ttlv_error(op, err);
    let body = payload(op, message)?;
    let uid = body
        .child(tag::UNIQUE_IDENTIFIER)
        .map_err(e)?
        .ok_or_else(|| corrupt(op, "no unique identifier"))?
        .text()
        .map_err(e)?;
    check_identifier(uid).map_err(|_| corrupt(op, "invalid unique identifier"))?;
    let mut attrs = KeyAttributes::new(uid);
    for item in body.children().map_err(e)? {
        let item = item.map_err(e)?;
        if item.tag != tag::ATTRIBUTE {
            continue;
        }
        let name = item
            .child(tag::ATTRIBUTE_NAME)
            .map_err(e)?
            .ok_or_else(|| corrupt(op, "attribute without a name"))?
            .text()
            .map_err(e)?;
        let Some(v) = item.child(tag::ATTRIBUTE_VALUE).map_err(e)? else {
            continue;
        };
        match name {
            "Object Type" => attrs.object_type = Some(v.enumeration().map_err(e)?),
            "State" => attrs.state = Some(v.enumeration().map_err(e)?),
            "Cryptographic Algorithm" => attrs.algorithm = Some(v.enumeration().map_err(e)?),
            "Cryptographic Length" => attrs.length = Some(v.integer().map_err(e)?),
            "Initial Date" => attrs.initial_date = Some(v.date_time().map_err(e)?),
            "Digest" if attrs.digest.is_none() => {
                if let Some(d) = v.child(tag::DIGEST_VALUE).map_err(e)? {
                    let d = d.bytes().map_err(e)?;
                    if d.len() > 64 {
                        return Err(corrupt(op, "digest longer than 64 bytes"));
                    }
                    attrs.digest = Some(d.to_vec());
                }
            }
            _ => {}
        }
    }
    Ok(attrs)
}

/// The blob of an Encrypt response in `mode` (see [`WrappedBlob`] for its layout).
pub fn parse_encrypt(message: &[u8], mode: WrapMode) -> Result<Vec<u8>, RemoteError> {
    let op = Operation::Encrypt;
    let e = |err| ttlv_error(op, err);
    let body = payload(op, message)?;
    let field = |t| -> Result<&[u8], RemoteError> {
        match body.child(t).map_err(e)? {
            Some(item) => item.bytes().map_err(e),
            None => Ok(&[]),
        }
    };
    let blob = WrappedBlob {
        mode,
        iv: field(tag::IV_COUNTER_NONCE)?,
        tag: field(tag::AE_TAG)?,
        data: field(tag::DATA)?,
    };
    blob.encode().map_err(|what| corrupt(op, what))
}

/// The local KEK of a Decrypt response (exactly 32 bytes).
pub fn parse_decrypt(message: &[u8]) -> Result<Secret32, RemoteError> {
    let op = Operation::Decrypt;
    let e = |err| ttlv_error(op, err);
    let body = payload(op, message)?;
    let data = body
        .child(tag::DATA)
        .map_err(e)?
        .ok_or_else(|| corrupt(op, "no data"))?
        .bytes()
        .map_err(e)?;
    Secret32::from_slice(data).ok_or_else(|| corrupt(op, "unwrapped key is not 32 bytes"))
}
