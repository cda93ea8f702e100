//! Errors of the driver contract. A leaf module (ids only).

use core::fmt;

use crate::ids::{ConnId, OpId};

/// The driver broke the loop contract (a bug in the driver, never caused by a peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// No connection with this id was ever accepted.
    UnknownConnection(ConnId),
    /// No remote operation with this id was ever issued.
    UnknownRemoteOp(OpId),
    /// This remote operation was already answered.
    DuplicateRemoteReply(OpId),
    /// The reply's kind does not match the operation (e.g. `Wrapped` for a `Status`); the
    /// operation is treated as failed.
    MismatchedRemoteReply(OpId),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownConnection(c) => write!(f, "unknown connection {}", c.0),
            Self::UnknownRemoteOp(id) => write!(f, "unknown remote operation {}", id.0),
            Self::DuplicateRemoteReply(id) => {
                write!(f, "remote operation {} answered twice", id.0)
            }
            Self::MismatchedRemoteReply(id) => {
                write!(f, "reply of the wrong kind for remote operation {}", id.0)
            }
        }
    }
}

impl core::error::Error for UsageError {}
