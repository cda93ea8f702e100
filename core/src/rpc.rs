//! The boundary between the transport (HTTP/2 + gRPC framing) and the services.
//!
//! The transport turns bytes into complete unary [`Request`]s; a service answers each with a
//! [`Response`], either at once or later (a *parked* request waiting for a remote KEK). The
//! transport knows nothing of KMS; the services know nothing of HTTP/2.

use alloc::borrow::Cow;

use crate::health::HealthWarning;
use crate::secret::SecretBytes;
use crate::time::Timestamp;

/// An HTTP/2 stream identifier (RFC 9113 §5.1.1); client-initiated ones are odd.
pub type StreamId = u32;

/// gRPC status codes (gRPC `doc/statuscodes.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The numeric value sent in `grpc-status`.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Canonical upper-snake name, for logs and metric labels (bounded set).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// One complete unary gRPC request, as decoded by the transport.
pub struct Request {
    /// The stream the request arrived on (unique within its connection while open).
    pub stream: StreamId,
    /// The `:path` pseudo-header, e.g. `/v2.KeyManagementService/Status`.
    pub path: Cow<'static, str>,
    /// The gRPC message payload, without the 5-byte length prefix. May hold plaintext.
    pub message: SecretBytes,
    /// Absolute deadline from `grpc-timeout`, if the client sent one.
    pub deadline: Option<Timestamp>,
    /// When the last byte of the request arrived.
    pub received: Timestamp,
}

/// The answer to one [`Request`].
pub struct Response {
    /// `grpc-status`.
    pub code: Code,
    /// `grpc-message` (sent percent-encoded); never holds secrets. Empty for OK.
    pub message: Cow<'static, str>,
    /// The serialized response message; `Some` only with [`Code::Ok`]. May hold plaintext.
    pub body: Option<SecretBytes>,
    /// Sent as the extra trailer `kms-plugin-warning` (`health::WARNING_TRAILER`) after the
    /// `grpc-status` of an OK response; ignored on errors (trailers-only). `None`: no extra
    /// trailer, the response is exactly as without this field.
    pub warning: Option<HealthWarning>,
}

impl Response {
    /// A successful response carrying `body`.
    pub fn ok(body: SecretBytes) -> Self {
        Self {
            code: Code::Ok,
            message: Cow::Borrowed(""),
            body: Some(body),
            warning: None,
        }
    }

    /// An error response (sent trailers-only).
    pub fn error(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            body: None,
            warning: None,
        }
    }
}
