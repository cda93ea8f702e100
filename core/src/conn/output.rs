//! Response output: encoding answers and sending them within the peer's flow-control windows
//! (RFC 9113 §6.9; gRPC PROTOCOL-HTTP2 "Responses").

use alloc::vec::Vec;

use zeroize::Zeroize;

use super::closed::ClosedBy;
use super::stream::StreamState;
use super::{ConnEvent, Connection, Phase};
use crate::grpc::{self, PREFIX_LEN};
use crate::h2::frame::{self, FrameKind, flags};
use crate::h2::reason::Reason;
use crate::rpc::{Code, Response, StreamId};

impl Connection {
    /// Encodes `response` for `id` into the stream's pending output. OK responses are HEADERS
    /// + DATA + trailers; errors are trailers-only (gRPC PROTOCOL-HTTP2 "Responses").
    pub(super) fn queue_response(&mut self, id: StreamId, http_status: u16, response: Response) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let mut block = Vec::with_capacity(64);
        let status = match http_status {
            200 => &b"200"[..],
            405 => b"405",
            415 => b"415",
            _ => b"500",
        };
        self.encoder
            .encode_field(b":status", status, false, &mut block);
        self.encoder
            .encode_field(b"content-type", b"application/grpc", false, &mut block);
        let mut trailers = Vec::with_capacity(32);
        let mut code_buf = [0u8; 3];
        let code = format_code(response.code.as_u8(), &mut code_buf);
        match response.body {
            Some(body) if response.code == Code::Ok => {
                frame::write_frame(
                    &mut self.out,
                    FrameKind::Headers,
                    flags::END_HEADERS,
                    id,
                    &block,
                );
                s.out.clear();
                s.out.reserve(PREFIX_LEN + body.len());
                s.out.push(0);
                s.out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                s.out.extend_from_slice(body.expose());
                s.out_pos = 0;
                self.encoder
                    .encode_field(b"grpc-status", code, false, &mut trailers);
                s.trailers = trailers;
            }
            _ => {
                self.encoder
                    .encode_field(b"grpc-status", code, false, &mut block);
                if !response.message.is_empty() {
                    let mut msg = alloc::string::String::new();
                    let text: &str = &response.message;
                    grpc::percent_encode(truncate(text, MAX_GRPC_MESSAGE), &mut msg);
                    self.encoder
                        .encode_field(b"grpc-message", msg.as_bytes(), false, &mut block);
                }
                // Trailers-only: one HEADERS frame ending the stream.
                frame::write_frame(
                    &mut self.out,
                    FrameKind::Headers,
                    flags::END_HEADERS | flags::END_STREAM,
                    id,
                    &block,
                );
                s.out.clear();
                s.out_pos = 0;
                s.trailers.clear();
                s.state = StreamState::SendingResponse;
                self.finish_sent(id);
            }
        }
    }

    /// Sends as much pending response DATA as the windows allow, then trailers (§6.9).
    pub(super) fn flush_streams(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let max_frame = self.peer.max_frame_size as usize;
        let mut done: Vec<StreamId> = Vec::new();
        for (&id, s) in &mut self.streams {
            if s.state != StreamState::SendingResponse {
                continue;
            }
            while s.out_pos < s.out.len() {
                let window = self.conn_send_window.min(s.send_window);
                if window <= 0 {
                    break;
                }
                let n = (s.out.len() - s.out_pos)
                    .min(usize::try_from(window).unwrap_or(0))
                    .min(max_frame);
                frame::write_frame(
                    &mut self.out,
                    FrameKind::Data,
                    0,
                    id,
                    &s.out[s.out_pos..s.out_pos + n],
                );
                s.out_pos += n;
                self.conn_send_window -= i64::try_from(n).unwrap_or(i64::MAX);
                s.send_window -= i64::try_from(n).unwrap_or(i64::MAX);
            }
            if s.out_pos >= s.out.len() {
                frame::write_frame(
                    &mut self.out,
                    FrameKind::Headers,
                    flags::END_HEADERS | flags::END_STREAM,
                    id,
                    &s.trailers,
                );
                done.push(id);
            }
        }
        for id in done {
            self.finish_sent(id);
        }
    }

    /// The response on `id` is fully queued: the stream is closed and forgotten.
    pub(super) fn finish_sent(&mut self, id: StreamId) {
        if let Some(s) = self.streams.remove(&id) {
            if s.state == StreamState::ReceivingRequest {
                self.buffered -= s.body.len();
            }
            self.closed.insert(id, ClosedBy::Other);
        }
        self.check_drained();
    }

    /// Answers a request from the transport itself (e.g. too large); if the client is still
    /// sending, the stream is then reset with NO_ERROR (§8.1: a complete response before the
    /// request ends).
    pub(super) fn reject(&mut self, id: StreamId, http_status: u16, response: Response) {
        let still_sending = self
            .streams
            .get(&id)
            .is_some_and(|s| s.state == StreamState::ReceivingRequest);
        if let Some(s) = self.streams.get_mut(&id) {
            self.buffered -= s.body.len();
            s.body.zeroize();
            s.body.clear();
            s.state = StreamState::AwaitingResponse;
        }
        self.reject_with_state(id, http_status, response, !still_sending);
    }

    pub(super) fn reject_with_state(
        &mut self,
        id: StreamId,
        http_status: u16,
        response: Response,
        request_complete: bool,
    ) {
        self.events.push_back(ConnEvent::RequestRejected {
            stream: id,
            code: response.code,
        });
        if let Some(s) = self.streams.get_mut(&id) {
            s.state = StreamState::SendingResponse;
        }
        self.queue_response(id, http_status, response);
        self.streams.remove(&id);
        if !request_complete {
            self.send_reset(id, Reason::NO_ERROR);
        }
        self.check_drained();
    }
}

/// The longest `grpc-message` we send, in octets before percent-encoding.
const MAX_GRPC_MESSAGE: usize = 512;

/// The longest prefix of `text` of at most `max` octets that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Formats a gRPC status code (0..=16) as ASCII digits.
fn format_code(code: u8, buf: &mut [u8; 3]) -> &[u8] {
    if code < 10 {
        buf[0] = b'0' + code;
        &buf[..1]
    } else {
        buf[0] = b'0' + code / 10;
        buf[1] = b'0' + code % 10;
        &buf[..2]
    }
}
