//! Requests from the core to its driver: remote KEK operations and connection closes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::ids::ConnId;
pub use crate::ids::OpId;
use crate::secret::Secret32;
use crate::time::Timestamp;

/// An operation on the remote KEK (KMS, HSM or key file) that the driver performs.
pub enum RemoteOp {
    /// Read the remote KEK's current identity and health. Reply: [`RemoteReply::Status`].
    Status,
    /// Wrap `kek` under the remote key named `key_id` (as reported by an earlier `Status`).
    /// Reply: [`RemoteReply::Wrapped`].
    Wrap {
        /// The remote key to wrap under; the provider must use exactly this key version.
        key_id: String,
        /// The local KEK to wrap.
        kek: Secret32,
    },
    /// Unwrap `wrapped`, produced earlier by `Wrap` under `key_id`.
    /// Reply: [`RemoteReply::Unwrapped`].
    Unwrap {
        /// The remote key the blob was wrapped under.
        key_id: String,
        /// The wrapped local KEK.
        wrapped: Vec<u8>,
    },
}

impl RemoteOp {
    /// The operation's kind, for logs and metrics.
    pub fn kind(&self) -> RemoteOpKind {
        match self {
            Self::Status => RemoteOpKind::Status,
            Self::Wrap { .. } => RemoteOpKind::Wrap,
            Self::Unwrap { .. } => RemoteOpKind::Unwrap,
        }
    }
}

impl fmt::Debug for RemoteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status => f.write_str("Status"),
            Self::Wrap { key_id, .. } => f
                .debug_struct("Wrap")
                .field("key_id", key_id)
                .finish_non_exhaustive(),
            Self::Unwrap { key_id, wrapped } => f
                .debug_struct("Unwrap")
                .field("key_id", key_id)
                .field("wrapped_len", &wrapped.len())
                .finish(),
        }
    }
}

/// The kind of a [`RemoteOp`] (a bounded label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum RemoteOpKind {
    Status,
    Wrap,
    Unwrap,
}

impl RemoteOpKind {
    /// Lower-case name for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
        }
    }
}

/// A successful answer to a [`RemoteOp`].
pub enum RemoteReply {
    /// The remote KEK is usable; `key_id` names its current version (non-secret, 1..=1024
    /// bytes, never reused for another key).
    Status {
        /// The current remote key id.
        key_id: String,
    },
    /// The wrapped local KEK.
    Wrapped {
        /// Opaque blob; stored in annotations / ciphertexts.
        wrapped: Vec<u8>,
    },
    /// The unwrapped local KEK.
    Unwrapped {
        /// The local KEK.
        kek: Secret32,
    },
}

/// Why a remote operation failed (a bounded set, mapped to gRPC codes and healthz causes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteErrorKind {
    /// Credentials rejected (bad token, wrong PIN).
    Auth,
    /// The key (or key version) does not exist.
    NotFound,
    /// A key version that existed (it wrapped data, or this process loaded it) is gone: a Vault
    /// version trimmed by `min_decryption_version`, a deleted HSM key, a key file replaced by
    /// one that lacks the version. Never transient; the detail names the version and the fix.
    KeyVersionMissing,
    /// Credentials valid but not allowed.
    Permission,
    /// Rate limited by the remote.
    Throttled,
    /// The remote cannot be reached or answered 5xx.
    Unavailable,
    /// The operation did not finish before its deadline.
    Timeout,
    /// The remote answered something we cannot use (malformed, or the blob does not open).
    Corrupt,
    /// Anything else.
    Other,
}

impl RemoteErrorKind {
    /// Lower-case name for healthz causes, logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::NotFound => "not_found",
            Self::KeyVersionMissing => "key_version_missing",
            Self::Permission => "permission",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Corrupt => "corrupt",
            Self::Other => "other",
        }
    }

    /// Whether retrying later may succeed.
    pub const fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable | Self::Timeout)
    }
}

/// A failed remote operation. `detail` is operator-facing and never holds secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// The class of failure.
    pub kind: RemoteErrorKind,
    /// A short human-readable cause (no secrets, no plaintext).
    pub detail: String,
}

impl RemoteError {
    /// Builds an error of `kind` with `detail`.
    pub fn new(kind: RemoteErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// Something the driver must do on the core's behalf.
#[derive(Debug)]
pub enum Effect {
    /// Perform `op` and answer through `Plugin::handle_remote(id, ..)` exactly once. Past
    /// `deadline` the core has already given up on it (the driver should abandon it and
    /// answer with [`RemoteErrorKind::Timeout`]).
    Remote {
        /// The operation's id.
        id: OpId,
        /// What to do.
        op: RemoteOp,
        /// When the core stops waiting.
        deadline: Timestamp,
    },
    /// The core no longer needs the answer to `id` (its answer will be dropped).
    CancelRemote {
        /// The operation's id.
        id: OpId,
    },
    /// Close the connection's socket (after writing what `poll_transmit` gave for it).
    Close {
        /// The connection.
        conn: ConnId,
    },
}
