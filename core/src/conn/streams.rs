//! The stream table: every open stream, the stream-id rules (RFC 9113 §5.1, §5.1.1), the one
//! state-transition function, and the counters that follow from the states: request body
//! octets buffered, and requests handed out but not yet answered.

use alloc::borrow::Cow;
use alloc::collections::{BTreeMap, VecDeque};
use core::ops::Bound;

use super::closed::{ClosedBy, ClosedStreams};
use super::flow::StreamWindows;
use super::stream::{Stream, StreamState, append_wiping};
use crate::rpc::{Request, StreamId};
use crate::time::Timestamp;

/// What happens to a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamInput {
    /// The client's END_STREAM arrived with a complete request: its body leaves the buffered
    /// count (the caller takes it) and the request is owed an answer.
    RequestComplete,
    /// The service answered a complete request.
    Respond,
    /// The transport answers a request still arriving itself (too large, malformed for
    /// gRPC, ...); the partial body is wiped.
    Reject,
    /// The stream is closed and forgotten: fully sent, reset by either side, or the connection
    /// ended. An unanswered request handed out is reported by `poll_cancelled`.
    Close,
}

impl StreamState {
    /// The allowed `(state, input)` pairs and where they lead (`None` = the stream closes);
    /// anything else is `Err` (the caller treats it as a protocol error or a stale answer).
    pub(crate) fn next(self, input: StreamInput) -> Result<Option<Self>, ()> {
        use StreamInput::{Close, Reject, RequestComplete, Respond};
        use StreamState::{AwaitingResponse, ReceivingRequest, SendingResponse};
        match (self, input) {
            (ReceivingRequest, RequestComplete) => Ok(Some(AwaitingResponse)),
            (AwaitingResponse, Respond) | (ReceivingRequest, Reject) => Ok(Some(SendingResponse)),
            (_, Close) => Ok(None),
            _ => Err(()),
        }
    }
}

/// What a stream id names right now (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// An open stream in this state.
    Open(StreamState),
    /// Above every id the client has used: "idle".
    Idle,
    /// Used before and closed; how, if still remembered.
    Closed(Option<ClosedBy>),
}

/// Every open stream of one connection. See the module docs.
#[derive(Default)]
pub(crate) struct StreamTable {
    streams: BTreeMap<StreamId, Stream>,
    /// The highest client stream id used (§5.1.1: new ids must be larger).
    last_used: StreamId,
    closed: ClosedStreams,
    /// Request body octets held by streams in `ReceivingRequest`.
    buffered: usize,
    /// Streams in `AwaitingResponse` (queued in `requests` or handed out).
    in_flight: usize,
    /// Complete requests not yet taken by `poll_request`.
    requests: VecDeque<Request>,
    /// Handed-out requests whose stream closed unanswered.
    cancelled: VecDeque<StreamId>,
}

impl StreamTable {
    /// What `id` names.
    pub(crate) fn slot(&self, id: StreamId) -> Slot {
        match self.streams.get(&id) {
            Some(s) => Slot::Open(s.state),
            None if id > self.last_used => Slot::Idle,
            None => Slot::Closed(self.closed.find(id)),
        }
    }

    /// Claims `id` for a new stream (§5.1.1: client streams are odd and increasing); `false`
    /// when it is not a valid new id (a connection error PROTOCOL_ERROR).
    pub(crate) fn claim(&mut self, id: StreamId) -> bool {
        if id % 2 == 0 || id <= self.last_used {
            return false;
        }
        self.last_used = id;
        true
    }

    /// Opens a stream on an id just claimed.
    pub(crate) fn open(
        &mut self,
        id: StreamId,
        windows: StreamWindows,
        path: Cow<'static, str>,
        deadline: Option<Timestamp>,
    ) -> &mut Stream {
        self.streams
            .entry(id)
            .or_insert_with(|| Stream::new(windows, path, deadline))
    }

    /// The highest client stream id used (GOAWAY's last-stream-id, §6.8).
    pub(crate) fn last_used(&self) -> StreamId {
        self.last_used
    }

    /// Open streams.
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is open and no request waits for `poll_request`.
    pub(crate) fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.requests.is_empty()
    }

    pub(crate) fn get_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        self.streams.get_mut(&id)
    }

    /// Every open stream, for window adjustments (§6.9.2).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.streams.values_mut()
    }

    /// The first stream after `after` whose response is being sent.
    pub(crate) fn next_sending(&mut self, after: StreamId) -> Option<(StreamId, &mut Stream)> {
        self.streams
            .range_mut((Bound::Excluded(after), Bound::Unbounded))
            .find(|(_, s)| s.state == StreamState::SendingResponse)
            .map(|(id, s)| (*id, s))
    }

    /// Appends request body octets to a receiving stream (at most `limit` are reserved);
    /// returns the body's new length.
    pub(crate) fn append_body(&mut self, id: StreamId, data: &[u8], limit: usize) -> usize {
        let Some(s) = self.streams.get_mut(&id) else {
            return 0;
        };
        append_wiping(&mut s.body, data, limit);
        self.buffered += data.len();
        s.body.len()
    }

    /// The one stream-state transition: applies `input` to `id` and keeps the counters in
    /// step. Returns whether the transition was allowed (a missing stream allows nothing).
    pub(crate) fn transition(&mut self, id: StreamId, input: StreamInput) -> bool {
        let Some(s) = self.streams.get_mut(&id) else {
            return false;
        };
        let Ok(next) = s.state.next(input) else {
            return false;
        };
        match s.state {
            StreamState::ReceivingRequest => {
                self.buffered -= s.body.len();
                if input == StreamInput::Reject {
                    zeroize::Zeroize::zeroize(&mut *s.body);
                    s.body.clear();
                }
            }
            StreamState::AwaitingResponse => self.in_flight -= 1,
            StreamState::SendingResponse => {}
        }
        if let Some(state) = next {
            if state == StreamState::AwaitingResponse {
                self.in_flight += 1;
            }
            s.state = state;
            return true;
        }
        if s.state == StreamState::AwaitingResponse {
            // A request not yet handed out is dropped (zeroized) here; only handed-out ones
            // are reported as cancelled.
            let queued = self.requests.len();
            self.requests.retain(|r| r.stream != id);
            if self.requests.len() == queued {
                self.cancelled.push_back(id);
            }
        }
        self.streams.remove(&id);
        true
    }

    /// Remembers how `id` closed (§5.1: frames after our RST_STREAM are ignored).
    pub(crate) fn remember_closed(&mut self, id: StreamId, by: ClosedBy) {
        self.closed.insert(id, by);
    }

    /// Closes every stream (the connection ended); queued requests are dropped.
    pub(crate) fn close_all(&mut self) {
        while let Some(id) = self.streams.keys().next().copied() {
            self.transition(id, StreamInput::Close);
        }
        self.requests.clear();
    }

    /// Queues a complete request for `poll_request`.
    pub(crate) fn hand_out(&mut self, request: Request) {
        self.requests.push_back(request);
    }

    pub(crate) fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    pub(crate) fn poll_cancelled(&mut self) -> Option<StreamId> {
        self.cancelled.pop_front()
    }

    /// Request body octets held by streams still receiving.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Complete requests not yet answered.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use StreamInput::{Close, Reject, RequestComplete, Respond};
        use StreamState::{AwaitingResponse, ReceivingRequest, SendingResponse};
        assert_eq!(
            ReceivingRequest.next(RequestComplete),
            Ok(Some(AwaitingResponse))
        );
        assert_eq!(AwaitingResponse.next(Respond), Ok(Some(SendingResponse)));
        assert_eq!(ReceivingRequest.next(Reject), Ok(Some(SendingResponse)));
        assert_eq!(AwaitingResponse.next(Reject), Err(()));
        assert_eq!(SendingResponse.next(Close), Ok(None));
        assert_eq!(ReceivingRequest.next(Respond), Err(()));
        assert_eq!(AwaitingResponse.next(RequestComplete), Err(()));
        assert_eq!(SendingResponse.next(Respond), Err(()));
        assert_eq!(SendingResponse.next(Reject), Err(()));
        assert_eq!(SendingResponse.next(RequestComplete), Err(()));
    }

    #[test]
    fn counters_follow_the_states() {
        let mut t = StreamTable::default();
        assert!(t.claim(1) && !t.claim(1) && !t.claim(4));
        t.open(1, StreamWindows::new(10, 10), Cow::Borrowed("/p"), None);
        assert_eq!(t.append_body(1, &[0; 7], 100), 7);
        assert_eq!((t.buffered(), t.in_flight()), (7, 0));
        assert!(t.transition(1, StreamInput::RequestComplete));
        assert_eq!((t.buffered(), t.in_flight()), (0, 1));
        assert!(!t.transition(1, StreamInput::RequestComplete));
        assert!(t.transition(1, StreamInput::Close));
        assert_eq!((t.in_flight(), t.poll_cancelled()), (0, Some(1)));
        assert_eq!(t.slot(1), Slot::Closed(None));
        assert_eq!(t.slot(3), Slot::Idle);
    }
}
