//! One stream's state (RFC 9113 §5.1) and its single transition function.

use alloc::string::String;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use crate::grpc::PREFIX_LEN;
use crate::h2::{FrameError, Reason};
use crate::rpc::StreamId;
use crate::secret::SecretBytes;
use crate::time::Timestamp;

/// The §5.1 stream states a server-side stream can be in (no push: no reserved states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Not yet opened.
    Idle,
    /// Both sides may send.
    Open,
    /// The peer ended its side (END_STREAM received); we may still send.
    HalfClosedRemote,
    /// We ended our side; the peer may still send.
    HalfClosedLocal,
    /// Both sides ended or a RST_STREAM was sent or received.
    Closed,
}

/// What happens to a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamInput {
    /// A HEADERS block from the peer.
    RecvHeaders {
        /// END_STREAM flag.
        end_stream: bool,
    },
    /// A DATA frame from the peer.
    RecvData {
        /// END_STREAM flag.
        end_stream: bool,
    },
    /// We send HEADERS or DATA.
    Send {
        /// END_STREAM flag.
        end_stream: bool,
    },
    /// RST_STREAM sent or received.
    Reset,
}

/// The one transition function over [`StreamState`] (RFC 9113 §5.1, figure 2). Every allowed
/// (state, input) pair is listed; any other pair is the error the RFC names for it.
#[allow(clippy::match_same_arms)] // every (state, input) pair is listed on its own
pub fn transition(state: StreamState, input: StreamInput) -> Result<StreamState, FrameError> {
    use StreamInput::{RecvData, RecvHeaders, Reset, Send};
    use StreamState::{Closed, HalfClosedLocal, HalfClosedRemote, Idle, Open};
    let ended = |end: bool, open: StreamState, closed: StreamState| if end { closed } else { open };
    match (state, input) {
        (_, Reset) => Ok(Closed),
        // §5.1 idle: HEADERS opens the stream.
        (Idle, RecvHeaders { end_stream }) => Ok(ended(end_stream, Open, HalfClosedRemote)),
        // §5.1 idle: any other frame is a connection PROTOCOL_ERROR.
        (Idle, RecvData { .. } | Send { .. }) => Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "frame on idle stream",
        )),
        // §8.1: a second HEADERS (trailers) must carry END_STREAM.
        (Open | HalfClosedLocal, RecvHeaders { end_stream: false }) => Err(FrameError::Stream(
            Reason::PROTOCOL_ERROR,
            "trailers without END_STREAM",
        )),
        (Open, RecvHeaders { end_stream: true }) => Ok(HalfClosedRemote),
        (Open, RecvData { end_stream }) => Ok(ended(end_stream, Open, HalfClosedRemote)),
        (Open, Send { end_stream }) => Ok(ended(end_stream, Open, HalfClosedLocal)),
        (HalfClosedLocal, RecvHeaders { end_stream: true }) => Ok(Closed),
        (HalfClosedLocal, RecvData { end_stream }) => {
            Ok(ended(end_stream, HalfClosedLocal, Closed))
        }
        // §5.1 half-closed (remote) and closed: frames other than WINDOW_UPDATE, PRIORITY and
        // RST_STREAM are a stream error of type STREAM_CLOSED.
        (HalfClosedRemote | Closed, RecvHeaders { .. } | RecvData { .. }) => Err(
            FrameError::Stream(Reason::STREAM_CLOSED, "frame on closed stream"),
        ),
        (HalfClosedRemote, Send { end_stream }) => Ok(ended(end_stream, HalfClosedRemote, Closed)),
        (HalfClosedLocal | Closed, Send { .. }) => Err(FrameError::Stream(
            Reason::INTERNAL_ERROR,
            "send after end of stream",
        )),
    }
}

/// How far a request body has arrived (one Length-Prefixed-Message).
pub(crate) struct Body {
    /// The 5-byte prefix collected so far.
    pub(crate) prefix: [u8; PREFIX_LEN],
    /// How many prefix bytes arrived.
    pub(crate) prefix_len: usize,
    /// The declared message length once the prefix is complete (bytes reserved against
    /// `max_buffered_bytes`).
    pub(crate) declared: Option<usize>,
    /// The message bytes; capacity reserved exactly once, wiped on drop.
    pub(crate) data: Zeroizing<Vec<u8>>,
}

/// A response waiting for flow-control window.
pub(crate) struct Pending {
    /// The 5-byte prefix of the response message.
    pub(crate) prefix: [u8; PREFIX_LEN],
    /// The response message.
    pub(crate) body: SecretBytes,
    /// Bytes of prefix + body already sent.
    pub(crate) sent: usize,
}

/// What the connection is doing with a stream, beside its §5.1 state.
pub(crate) enum Phase {
    /// Receiving the request body.
    Receiving(Body),
    /// Handed out through `poll_request`; waiting for `respond`.
    Dispatched,
    /// Sending the response body, then trailers.
    Responding(Pending),
}

/// One open stream.
pub(crate) struct Stream {
    pub(crate) id: StreamId,
    pub(crate) state: StreamState,
    pub(crate) phase: Phase,
    /// The request `:path`.
    pub(crate) path: String,
    /// Absolute deadline from `grpc-timeout`.
    pub(crate) deadline: Option<Timestamp>,
    /// Our send window (may go negative after a SETTINGS change, §6.9.2).
    pub(crate) send_window: i64,
    /// How much more the peer may send us on this stream.
    pub(crate) recv_window: i64,
    /// Bytes received since our last stream WINDOW_UPDATE.
    pub(crate) recv_unacked: u32,
}

impl Stream {
    /// Bytes reserved against the connection's buffered-bytes cap.
    pub(crate) fn reserved(&self) -> usize {
        match &self.phase {
            Phase::Receiving(b) => b.declared.unwrap_or(0),
            _ => 0,
        }
    }
}
