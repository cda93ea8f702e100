//! Request-side frames: DATA (RFC 9113 §6.1), HEADERS (§6.2) and CONTINUATION (§6.10),
//! request validation and the hand-over of complete requests.

use core::mem;

use super::closed::ClosedBy;
use super::flow::StreamWindows;
use super::head::{HeadCollector, HeadError};
use super::stream::StreamState;
use super::streams::{Slot, StreamInput};
use super::{Connection, PendingBlock, Phase};
use crate::event::ConnEvent;
use crate::grpc::PREFIX_LEN;
use crate::h2::frame::{self, FrameHead, MAX_WINDOW, flags};
use crate::h2::reason::Reason;
use crate::rpc::{Code, Request, Response, StreamId};
use crate::secret::SecretBytes;
use crate::time::Timestamp;

impl Connection {
    pub(super) fn on_data(&mut self, head: FrameHead, payload: &[u8], now: Timestamp) {
        if head.stream == 0 {
            return self.connection_error(Reason::PROTOCOL_ERROR, "DATA on stream 0"); // §6.1
        }
        // §6.9.1: the whole payload, padding included, counts against the windows.
        match self.windows.receive(head.len) {
            Err(_) => {
                return self.connection_error(
                    Reason::FLOW_CONTROL_ERROR,
                    "DATA beyond the connection window",
                );
            }
            Ok(Some(increment)) => frame::write_window_update(self.out.frames(), 0, increment),
            Ok(None) => {}
        }
        let Some(content) = frame::strip_padding(payload, head.flags) else {
            return self
                .connection_error(Reason::PROTOCOL_ERROR, "padding longer than the payload");
        };
        let id = head.stream;
        match self.streams.slot(id) {
            Slot::Open(StreamState::ReceivingRequest) => {}
            // §5.1 half-closed (remote): stream error STREAM_CLOSED.
            Slot::Open(_) => {
                return self.stream_error(id, Reason::STREAM_CLOSED, "DATA after END_STREAM");
            }
            // §5.1: DATA on an idle stream is a connection error PROTOCOL_ERROR.
            Slot::Idle => {
                return self.connection_error(Reason::PROTOCOL_ERROR, "DATA on an idle stream");
            }
            // §5.1 "closed": frames on a stream we reset are ignored (the peer may have sent
            // them before seeing our RST_STREAM); DATA on any other closed stream is a stream
            // error STREAM_CLOSED (§6.1). The connection window was accounted above.
            Slot::Closed(Some(ClosedBy::UsWithReset)) => return,
            Slot::Closed(_) => {
                return self.stream_error(id, Reason::STREAM_CLOSED, "DATA on a closed stream");
            }
        }
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        if s.windows.receive(head.len).is_err() {
            return self.stream_error(
                id,
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the stream window",
            );
        }
        let content_length = s.content_length;
        let max_message = self.config.max_message_size as usize;
        let body_len = self
            .streams
            .append_body(id, content, PREFIX_LEN + max_message);
        if content_length.is_some_and(|cl| body_len as u64 > cl) {
            // §8.1.1: more DATA than content-length: malformed.
            return self.stream_error(id, Reason::PROTOCOL_ERROR, "DATA exceeds content-length");
        }
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        let declared = s
            .body
            .first_chunk::<PREFIX_LEN>()
            .map(|p| u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize);
        let refusal = if declared.is_some_and(|d| d > max_message) {
            Some((
                Code::ResourceExhausted,
                "request message larger than the maximum",
            ))
        } else if declared.is_some_and(|d| body_len > PREFIX_LEN + d) {
            Some((
                Code::Unimplemented,
                "more than one request message on a unary method",
            ))
        } else if self.streams.buffered() > self.buffer_limit() {
            Some((
                Code::ResourceExhausted,
                "too many request bytes buffered (this connection's or the process-wide cap)",
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            return self.reject(id, 200, Response::error(code, message), false);
        }
        if head.has(flags::END_STREAM) {
            return self.finish_request(id, now);
        }
        // Keep the stream window open while the request keeps coming (§6.9).
        let initial = self.config.initial_window_size;
        if let Some(increment) = self
            .streams
            .get_mut(id)
            .and_then(|s| s.windows.replenish(initial))
        {
            frame::write_window_update(self.out.frames(), id, increment);
        }
    }

    pub(super) fn on_headers(&mut self, head: FrameHead, payload: &[u8], now: Timestamp) {
        if head.stream == 0 {
            return self.connection_error(Reason::PROTOCOL_ERROR, "HEADERS on stream 0"); // §6.2
        }
        let Some(mut fragment) = frame::strip_padding(payload, head.flags) else {
            return self
                .connection_error(Reason::PROTOCOL_ERROR, "padding longer than the payload");
        };
        let mut self_dependent = false;
        if head.has(flags::PRIORITY) {
            // §6.2: 4-octet dependency + 1-octet weight; ignored (RFC 9113 deprecates them).
            let Some((dep, rest)) = fragment
                .split_first_chunk::<4>()
                .filter(|(_, r)| !r.is_empty())
            else {
                return self
                    .connection_error(Reason::FRAME_SIZE_ERROR, "HEADERS too short for PRIORITY");
            };
            self_dependent = u32::from_be_bytes(*dep) & MAX_WINDOW == head.stream;
            fragment = rest.get(1..).unwrap_or_default();
        }
        let end_stream = head.has(flags::END_STREAM);
        if head.has(flags::END_HEADERS) {
            self.on_header_block(head.stream, end_stream, self_dependent, fragment, now);
        } else {
            if fragment.len() > self.max_block_len() {
                return self.connection_error(Reason::ENHANCE_YOUR_CALM, "header block too large");
            }
            self.pending_block = Some(PendingBlock {
                stream: head.stream,
                end_stream,
                self_dependent,
                continuations: 0,
                fragment: fragment.to_vec(),
            });
        }
    }

    fn max_block_len(&self) -> usize {
        2 * self.config.max_header_list_size as usize
    }

    pub(super) fn on_continuation(&mut self, head: FrameHead, payload: &[u8], now: Timestamp) {
        // §6.10: CONTINUATION must follow HEADERS/CONTINUATION without END_HEADERS on the
        // same stream.
        let Some(mut block) = self.pending_block.take() else {
            return self.connection_error(Reason::PROTOCOL_ERROR, "CONTINUATION without HEADERS");
        };
        if block.stream != head.stream {
            return self.connection_error(Reason::PROTOCOL_ERROR, "CONTINUATION on another stream");
        }
        block.continuations += 1;
        if block.continuations > self.config.max_continuation_frames
            || block.fragment.len() + payload.len() > self.max_block_len()
        {
            return self.connection_error(
                Reason::ENHANCE_YOUR_CALM,
                "header block too large or too fragmented",
            );
        }
        block.fragment.extend_from_slice(payload);
        if head.has(flags::END_HEADERS) {
            self.on_header_block(
                block.stream,
                block.end_stream,
                block.self_dependent,
                &block.fragment,
                now,
            );
        } else {
            self.pending_block = Some(block);
        }
    }

    fn on_header_block(
        &mut self,
        id: StreamId,
        end_stream: bool,
        self_dependent: bool,
        block: &[u8],
        now: Timestamp,
    ) {
        let slot = self.streams.slot(id);
        let existing = match slot {
            Slot::Open(state) => Some(state),
            _ => None,
        };
        let mut fields = HeadCollector::new(
            self.config.max_header_list_size as usize,
            existing.is_some(),
        );
        // Every block is decoded, even for refused streams, to keep HPACK in sync (§4.3).
        if let Err(e) = self
            .decoder
            .decode(block, &mut |n, v, _| fields.field(n, v))
        {
            // §4.3: COMPRESSION_ERROR; the event says which RFC 7541 rule was broken.
            return self.connection_error(Reason::COMPRESSION_ERROR, e.description());
        }
        if let Slot::Closed(by) = slot
            && id % 2 == 1
        {
            return match by {
                // §5.1 "closed": ignored after our RST_STREAM.
                Some(ClosedBy::UsWithReset) => {}
                // §5.1 "closed": frames after END_STREAM or the peer's RST_STREAM.
                Some(ClosedBy::Other) => {
                    self.connection_error(Reason::STREAM_CLOSED, "HEADERS on a closed stream");
                }
                // §5.1.1: an id not above every earlier one.
                None => self
                    .connection_error(Reason::PROTOCOL_ERROR, "stream id not odd and increasing"),
            };
        }
        if self_dependent {
            // §5.3.1: a stream cannot depend on itself: stream error PROTOCOL_ERROR.
            if existing.is_none() && !self.streams.claim(id) {
                return self
                    .connection_error(Reason::PROTOCOL_ERROR, "stream id not odd and increasing");
            }
            return self.stream_error(id, Reason::PROTOCOL_ERROR, "stream depends on itself");
        }
        match existing {
            Some(StreamState::ReceivingRequest) => {
                // §8.1: trailers end the request; a second HEADERS without END_STREAM is
                // malformed.
                if !end_stream {
                    return self.stream_error(
                        id,
                        Reason::PROTOCOL_ERROR,
                        "HEADERS in the middle of a request",
                    );
                }
                if let Err(HeadError::Malformed(why)) = fields.finish_trailers() {
                    return self.stream_error(id, Reason::PROTOCOL_ERROR, why);
                }
                self.finish_request(id, now);
            }
            Some(_) => self.stream_error(id, Reason::STREAM_CLOSED, "HEADERS after END_STREAM"), // §5.1
            None => self.open_stream(id, end_stream, fields, now),
        }
    }

    fn open_stream(
        &mut self,
        id: StreamId,
        end_stream: bool,
        fields: HeadCollector,
        now: Timestamp,
    ) {
        // §5.1.1: client streams are odd and increasing.
        if !self.streams.claim(id) {
            return self
                .connection_error(Reason::PROTOCOL_ERROR, "stream id not odd and increasing");
        }
        // §6.8: after our GOAWAY no new streams are processed.
        if matches!(self.phase, Phase::Draining { .. }) {
            return self.send_reset(id, Reason::REFUSED_STREAM);
        }
        // §5.1.2: beyond SETTINGS_MAX_CONCURRENT_STREAMS -> REFUSED_STREAM.
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            self.send_reset(id, Reason::REFUSED_STREAM);
            self.events.push_back(ConnEvent::ProtocolError {
                stream: Some(id),
                reason: Reason::REFUSED_STREAM,
                detail: "too many concurrent streams",
            });
            return;
        }
        let head = match fields.finish() {
            Ok(head) => head,
            Err(HeadError::Malformed(why)) => {
                // §8.1.1: malformed requests are stream errors PROTOCOL_ERROR.
                self.send_reset(id, Reason::PROTOCOL_ERROR);
                self.events.push_back(ConnEvent::ProtocolError {
                    stream: Some(id),
                    reason: Reason::PROTOCOL_ERROR,
                    detail: why,
                });
                return;
            }
            Err(HeadError::Reject(status, response)) => {
                let windows = StreamWindows::new(0, self.peer.initial_window_size);
                self.streams.open(id, windows, head_path(), None);
                return self.reject(id, status, response, end_stream);
            }
        };
        let deadline = head.timeout.map(|t| now.saturating_add(t));
        let windows = StreamWindows::new(
            self.config.initial_window_size,
            self.peer.initial_window_size,
        );
        self.streams
            .open(id, windows, head.path, deadline)
            .content_length = head.content_length;
        if end_stream {
            self.finish_request(id, now);
        }
    }

    /// The request on `id` is complete: validate the gRPC framing and hand it out.
    fn finish_request(&mut self, id: StreamId, now: Timestamp) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        if s.state != StreamState::ReceivingRequest {
            return;
        }
        let body_len = s.body.len();
        if s.content_length.is_some_and(|cl| cl != body_len as u64) {
            // §8.1.1: content-length not matching the DATA received: malformed.
            return self.stream_error(
                id,
                Reason::PROTOCOL_ERROR,
                "content-length does not match the DATA",
            );
        }
        // gRPC PROTOCOL-HTTP2 "Length-Prefixed-Message": exactly one message for unary.
        let error = match s.body.first_chunk::<PREFIX_LEN>() {
            None => Some((Code::Unimplemented, "unary request without a message")),
            Some([1, ..]) => Some((
                Code::Unimplemented,
                "compressed messages are not supported (no grpc-encoding negotiated)",
            )),
            Some([0, len @ ..]) if u32::from_be_bytes(*len) as usize == body_len - PREFIX_LEN => {
                None
            }
            Some([0, ..]) => Some((
                Code::Internal,
                "request message length does not match the data received",
            )),
            Some(_) => Some((Code::Internal, "invalid compressed-flag octet")),
        };
        self.streams.transition(id, StreamInput::RequestComplete);
        if let Some((code, message)) = error {
            return self.respond_now(id, Response::error(code, message));
        }
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        let mut body = mem::take(&mut *s.body);
        body.drain(..PREFIX_LEN);
        let request = Request {
            stream: id,
            path: mem::take(&mut s.path),
            message: SecretBytes::new(body),
            deadline: s.deadline,
            received: now,
        };
        self.streams.hand_out(request);
    }

    fn respond_now(&mut self, id: StreamId, response: Response) {
        let code = response.code;
        self.events
            .push_back(ConnEvent::RequestRejected { stream: id, code });
        self.respond(id, response, Timestamp::ZERO);
    }
}

/// The path used for streams rejected before their `:path` mattered.
fn head_path() -> alloc::borrow::Cow<'static, str> {
    alloc::borrow::Cow::Borrowed("")
}
