//! One request stream: its state machine (RFC 9113 §5.1, server side of a unary call) and
//! its buffers.

use alloc::borrow::Cow;
use zeroize::Zeroizing;

use alloc::vec::Vec;

use crate::secret::SecretBytes;
use crate::time::Timestamp;

/// The states a client-initiated stream passes through on our side (§5.1). Idle and closed
/// streams are not stored: idle ones do not exist yet, closed ones are forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// "open": request HEADERS seen, request body still arriving.
    ReceivingRequest,
    /// "half-closed (remote)": request complete and handed to the service; we owe a response.
    AwaitingResponse,
    /// "half-closed (remote)": response queued, flow-controlled DATA and trailers being sent.
    SendingResponse,
}

/// What happens to a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamInput {
    /// The client's END_STREAM arrived with a complete request.
    RequestComplete,
    /// The service answered.
    Respond,
}

impl StreamState {
    /// The one transition function: allowed `(state, input)` pairs; anything else is `None`
    /// (the caller treats it as a stream error or ignores a stale answer).
    pub(crate) fn next(self, input: StreamInput) -> Option<Self> {
        match (self, input) {
            (Self::ReceivingRequest, StreamInput::RequestComplete) => Some(Self::AwaitingResponse),
            (Self::AwaitingResponse, StreamInput::Respond) => Some(Self::SendingResponse),
            _ => None,
        }
    }
}

/// Per-stream data.
pub(crate) struct Stream {
    pub(crate) state: StreamState,
    /// Our receive window for this stream (may not go below zero, §6.9.1).
    pub(crate) recv_window: i64,
    /// The peer's window for our DATA on this stream (may go negative after a SETTINGS
    /// change, §6.9.2).
    pub(crate) send_window: i64,
    pub(crate) path: Cow<'static, str>,
    pub(crate) deadline: Option<Timestamp>,
    /// The request's `content-length`, if sent.
    pub(crate) content_length: Option<u64>,
    /// Request body (gRPC prefix + message) received so far. May hold plaintext.
    pub(crate) body: Zeroizing<Vec<u8>>,
    /// The response message being sent (OK responses); zeroized when dropped.
    pub(crate) response: Option<SecretBytes>,
    /// The response's 5-octet gRPC prefix, sent before `response`.
    pub(crate) prefix: [u8; 5],
    /// Octets of prefix + message already sent as DATA.
    pub(crate) out_pos: usize,
    /// The response, trailers included, is fully queued: the stream is about to be removed.
    pub(crate) sent: bool,
}

impl Stream {
    pub(crate) fn new(
        recv_window: u32,
        send_window: u32,
        path: Cow<'static, str>,
        deadline: Option<Timestamp>,
    ) -> Self {
        Self {
            state: StreamState::ReceivingRequest,
            recv_window: i64::from(recv_window),
            send_window: i64::from(send_window),
            path,
            deadline,
            content_length: None,
            body: Zeroizing::new(Vec::new()),
            response: None,
            prefix: [0; 5],
            out_pos: 0,
            sent: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use StreamInput::*;
        use StreamState::*;
        assert_eq!(
            ReceivingRequest.next(RequestComplete),
            Some(AwaitingResponse)
        );
        assert_eq!(AwaitingResponse.next(Respond), Some(SendingResponse));
        assert_eq!(ReceivingRequest.next(Respond), None);
        assert_eq!(AwaitingResponse.next(RequestComplete), None);
        assert_eq!(SendingResponse.next(Respond), None);
        assert_eq!(SendingResponse.next(RequestComplete), None);
    }
}
