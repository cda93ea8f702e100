//! [`ConnEvent`]: what a connection did or saw, in the past tense. Never holds secrets.

use crate::h2::Reason;
use crate::rpc::{Code, StreamId};

/// Something that happened on one connection, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnEvent {
    /// The client preface and its first SETTINGS arrived (RFC 9113 §3.4).
    HandshakeCompleted,
    /// The peer broke the protocol; `stream` is `None` for a connection error (GOAWAY sent).
    ProtocolError {
        /// The stream, for a stream error (RST_STREAM sent).
        stream: Option<StreamId>,
        /// The code we sent.
        reason: Reason,
        /// A fixed description of the check that failed.
        detail: &'static str,
    },
    /// The peer sent GOAWAY (§6.8).
    PeerGoAway {
        /// Its error code.
        reason: Reason,
        /// The last stream it says it processed.
        last_stream: StreamId,
    },
    /// A stream was reset, by the peer or by us.
    StreamReset {
        /// The stream.
        stream: StreamId,
        /// The RST_STREAM code.
        reason: Reason,
        /// Whether the peer sent the RST_STREAM.
        by_peer: bool,
    },
    /// The transport answered a request itself with a gRPC error (never reached the service).
    RequestRejected {
        /// The stream.
        stream: StreamId,
        /// The gRPC status sent.
        code: Code,
        /// A fixed description of the check that failed.
        detail: &'static str,
    },
    /// We sent GOAWAY(NO_ERROR) to start a graceful shutdown.
    ShutdownStarted {
        /// The last stream id we will process.
        last_stream: StreamId,
    },
    /// The connection is closed; the driver flushes output and closes the socket.
    Closed {
        /// Why: NO_ERROR for a clean close.
        reason: Reason,
    },
}
