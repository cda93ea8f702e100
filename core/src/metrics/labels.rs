//! The bounded label sets of the metrics (every value a label can take, in index order), the
//! index of each value in the registry's fixed-size arrays, and the hashed key id.

use alloc::string::String;
use core::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::effect::{RemoteErrorKind, RemoteOpKind};
use crate::event::ConnEvent;
use crate::event::RotationReason;
use crate::ids::Method;
use crate::rpc::Code;

/// Every [`Method`] label value, in index order.
pub const METHODS: [Method; 7] = [
    Method::V1Version,
    Method::V1Encrypt,
    Method::V1Decrypt,
    Method::V2Status,
    Method::V2Encrypt,
    Method::V2Decrypt,
    Method::Unknown,
];

/// Every gRPC [`Code`], in numeric order (index = `as_u8`).
pub const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// Every [`RemoteOpKind`], in index order.
pub const REMOTE_OPS: [RemoteOpKind; 3] = [
    RemoteOpKind::Status,
    RemoteOpKind::Wrap,
    RemoteOpKind::Unwrap,
];

/// Every [`RemoteErrorKind`]; the `error` label is `none` for a success.
pub const REMOTE_ERRORS: [RemoteErrorKind; 9] = [
    RemoteErrorKind::Auth,
    RemoteErrorKind::NotFound,
    RemoteErrorKind::Permission,
    RemoteErrorKind::Throttled,
    RemoteErrorKind::Unavailable,
    RemoteErrorKind::Timeout,
    RemoteErrorKind::Corrupt,
    RemoteErrorKind::Other,
    RemoteErrorKind::KeyVersionMissing,
];

/// Every [`RotationReason`], in index order.
pub const ROTATION_REASONS: [RotationReason; 4] = [
    RotationReason::Initial,
    RotationReason::RemoteKeyChanged,
    RotationReason::Usage,
    RotationReason::Age,
];

pub(super) const fn method_index(m: Method) -> usize {
    match m {
        Method::V1Version => 0,
        Method::V1Encrypt => 1,
        Method::V1Decrypt => 2,
        Method::V2Status => 3,
        Method::V2Encrypt => 4,
        Method::V2Decrypt => 5,
        Method::Unknown => 6,
    }
}

pub(super) const fn op_index(op: RemoteOpKind) -> usize {
    match op {
        RemoteOpKind::Status => 0,
        RemoteOpKind::Wrap => 1,
        RemoteOpKind::Unwrap => 2,
    }
}

/// 0 = success, 1.. = [`REMOTE_ERRORS`] index + 1.
pub(super) const fn error_index(e: Option<RemoteErrorKind>) -> usize {
    match e {
        None => 0,
        Some(RemoteErrorKind::Auth) => 1,
        Some(RemoteErrorKind::NotFound) => 2,
        Some(RemoteErrorKind::Permission) => 3,
        Some(RemoteErrorKind::Throttled) => 4,
        Some(RemoteErrorKind::Unavailable) => 5,
        Some(RemoteErrorKind::Timeout) => 6,
        Some(RemoteErrorKind::Corrupt) => 7,
        Some(RemoteErrorKind::Other) => 8,
        Some(RemoteErrorKind::KeyVersionMissing) => 9,
    }
}

pub(super) const fn error_name(i: usize) -> &'static str {
    match i {
        1 => RemoteErrorKind::Auth.name(),
        2 => RemoteErrorKind::NotFound.name(),
        3 => RemoteErrorKind::Permission.name(),
        4 => RemoteErrorKind::Throttled.name(),
        5 => RemoteErrorKind::Unavailable.name(),
        6 => RemoteErrorKind::Timeout.name(),
        7 => RemoteErrorKind::Corrupt.name(),
        8 => RemoteErrorKind::Other.name(),
        9 => RemoteErrorKind::KeyVersionMissing.name(),
        _ => "none",
    }
}

/// Transport event kinds, in index order (the `kind` label).
pub const TRANSPORT_KINDS: [&str; 5] = [
    "protocol_error",
    "request_rejected",
    "peer_goaway",
    "stream_reset",
    "closed",
];

/// The `kind` index of a transport event and, for the HTTP/2 ones, its error code (0..=13 are
/// RFC 9113 §7 codes, 14 = any other).
pub(super) fn transport_index(e: &ConnEvent) -> (usize, Option<usize>) {
    let code = |r: crate::h2::reason::Reason| Some((r.0 as usize).min(14));
    match e {
        ConnEvent::ProtocolError { reason, .. } => (0, code(*reason)),
        ConnEvent::RequestRejected { .. } => (1, None),
        ConnEvent::PeerGoAway { reason, .. } => (2, code(*reason)),
        ConnEvent::StreamReset { reason, .. } => (3, code(*reason)),
        ConnEvent::Closed { .. } => (4, None),
    }
}

pub(super) const fn reason_index(r: RotationReason) -> usize {
    match r {
        RotationReason::Initial => 0,
        RotationReason::RemoteKeyChanged => 1,
        RotationReason::Usage => 2,
        RotationReason::Age => 3,
    }
}

/// `sha256:<16 hex>`: the first 8 bytes of SHA-256 of a key id. How key ids appear in logs and
/// in `kms_plugin_key_id_info` (the apiserver logs key ids hashed the same way).
pub fn hash_key_id(key_id: &str) -> String {
    let digest = Sha256::digest(key_id.as_bytes());
    let mut out = String::with_capacity(23);
    out.push_str("sha256:");
    for b in digest.iter().take(8) {
        let _ = write!(out, "{b:02x}");
    }
    out
}
