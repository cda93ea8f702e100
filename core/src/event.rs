//! Observability events: what happened, in the past tense. Never holds secrets.
//!
//! Every field is either a bounded label (enums with `name()`), a count, a duration, or a
//! non-secret identifier (connection ids, op ids, remote key ids, request uids). Another
//! component renders logs and Prometheus metrics from these.

use alloc::string::String;
use core::time::Duration;

use crate::effect::{RemoteErrorKind, RemoteOpKind};
use crate::h2::reason::Reason;
use crate::ids::{ConnId, Method, OpId};
use crate::rpc::{Code, StreamId};

/// Something the plugin did or saw, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection was accepted.
    ConnectionAccepted {
        /// The connection.
        conn: ConnId,
    },
    /// A connection was refused because `max_connections` were open (closed at once).
    ConnectionRefused {
        /// The connection.
        conn: ConnId,
    },
    /// A connection finished and its socket is to be closed.
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
    },
    /// The transport saw a protocol problem or a notable condition on a connection (typed, so
    /// metrics can count by kind and reason without parsing strings).
    Transport {
        /// The connection.
        conn: ConnId,
        /// What happened.
        event: ConnEvent,
    },
    /// A request was answered.
    RequestCompleted {
        /// The connection it came on.
        conn: ConnId,
        /// Which RPC (bounded).
        method: Method,
        /// The gRPC status sent.
        code: Code,
        /// From the request's last byte to the answer.
        latency: Duration,
        /// Whether it had to wait for a remote operation.
        parked: bool,
        /// The v2 request `uid` (a UUID from the apiserver; non-secret), for log correlation.
        uid: Option<String>,
    },
    /// A request was dropped because its client cancelled it or its connection went away.
    RequestAbandoned {
        /// The connection.
        conn: ConnId,
        /// Which RPC.
        method: Method,
    },
    /// A remote operation was handed to the driver.
    RemoteStarted {
        /// The operation id.
        id: OpId,
        /// Its kind.
        op: RemoteOpKind,
    },
    /// A remote operation's reply arrived in time.
    RemoteCompleted {
        /// The operation id.
        id: OpId,
        /// Its kind.
        op: RemoteOpKind,
        /// `None` on success, else the failure kind.
        error: Option<RemoteErrorKind>,
        /// From the effect to the reply.
        latency: Duration,
    },
    /// The core stopped waiting for a remote operation (its deadline passed, or nobody needs
    /// the answer any more); a later reply will be dropped.
    RemoteAbandoned {
        /// The operation id.
        id: OpId,
        /// Its kind.
        op: RemoteOpKind,
        /// True when its deadline passed (false: cancelled because nobody waits for it).
        timed_out: bool,
    },
    /// A reply for an operation the core had already given up on was dropped.
    LateRemoteReplyDropped {
        /// The operation id.
        id: OpId,
    },
    /// A Decrypt joined an unwrap already in flight for the same wrapped KEK (single-flight).
    UnwrapJoined {
        /// The shared operation.
        id: OpId,
    },
    /// The remote KEK's key id, as advertised by Status and returned by Encrypt, changed.
    KeyIdChanged {
        /// The new key id (non-secret).
        key_id: String,
    },
    /// A new local KEK became current.
    LocalKekRotated {
        /// Why it was generated.
        reason: RotationReason,
    },
    /// healthz changed (the value v2 Status reports).
    HealthChanged {
        /// Whether healthz is `ok`.
        healthy: bool,
        /// `"ok"` or the short cause.
        cause: &'static str,
    },
    /// A request was refused because too many requests were waiting for remote operations.
    ParkedLimitReached {
        /// The connection.
        conn: ConnId,
    },
    /// Graceful shutdown began (GOAWAY sent on every connection).
    ShutdownStarted,
}

/// Why a local KEK was generated (a bounded label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RotationReason {
    /// There was no local KEK yet.
    Initial,
    /// The remote key id changed.
    RemoteKeyChanged,
    /// The current local KEK reached its suggested or maximum use count.
    Usage,
    /// The current local KEK reached its suggested or maximum age.
    Age,
}

impl RotationReason {
    /// Lower-case name for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::RemoteKeyChanged => "remote_key_changed",
            Self::Usage => "usage",
            Self::Age => "age",
        }
    }
}

/// Something notable that happened on a connection (never holds secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// We detected a protocol error: a stream error (RST_STREAM sent) when `stream` is set,
    /// else a connection error (GOAWAY sent, connection closing).
    ProtocolError {
        /// The stream, for stream errors.
        stream: Option<StreamId>,
        /// The error code sent.
        reason: Reason,
        /// What was wrong.
        detail: &'static str,
    },
    /// A request was answered by the transport itself (malformed for gRPC, too large, ...).
    RequestRejected {
        /// The stream.
        stream: StreamId,
        /// The gRPC status sent.
        code: Code,
    },
    /// The peer sent GOAWAY.
    PeerGoAway {
        /// Its error code.
        reason: Reason,
        /// The last stream it will process.
        last_stream: u32,
    },
    /// The peer reset a stream.
    StreamReset {
        /// The stream.
        stream: StreamId,
        /// Its error code.
        reason: Reason,
    },
    /// The connection is closed (EOF, a connection error, a timeout or the end of shutdown).
    Closed {
        /// Why.
        reason: &'static str,
    },
}
