//! Response output: encoding answers and sending them within the peer's flow-control windows
//! (RFC 9113 §6.9; gRPC PROTOCOL-HTTP2 "Responses").

use core::mem;

use zeroize::Zeroize;

use super::closed::ClosedBy;
use super::stream::StreamState;
use super::{ConnEvent, Connection, Phase};
use crate::grpc;
use crate::h2::frame::{self, FrameKind, flags};
use crate::h2::reason::Reason;
use crate::rpc::{Code, Response, StreamId};
use crate::secret::SecretBytes;

impl Connection {
    /// Encodes `response` for `id` into the stream's pending output. OK responses are HEADERS
    /// + DATA + trailers; errors are trailers-only (gRPC PROTOCOL-HTTP2 "Responses").
    pub(super) fn queue_response(&mut self, id: StreamId, http_status: u16, response: Response) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let mut block = mem::take(&mut self.block_scratch);
        block.clear();
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
                let len = (body.len() as u32).to_be_bytes();
                s.out_prefix = [0, len[0], len[1], len[2], len[3]];
                s.out = body;
                s.out_pos = 0;
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
                s.out = SecretBytes::default();
                s.out_pos = 0;
                s.state = StreamState::SendingResponse;
                self.block_scratch = block;
                self.finish_sent(id);
                return;
            }
        }
        self.block_scratch = block;
    }

    /// Sends as much pending response DATA as the windows allow, then trailers (§6.9).
    /// DATA is written straight from the service's response buffer: no intermediate copy.
    pub(super) fn flush_streams(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let max_frame = self.peer.max_frame_size as usize;
        let mut next = Some(0);
        // Streams finish one at a time; restart after the first finished id (BTreeMap order).
        while let Some(from) = next.take() {
            let mut done = None;
            for (&id, s) in self.streams.range_mut(from..) {
                if s.state != StreamState::SendingResponse {
                    continue;
                }
                let total = s.out_len();
                while s.out_pos < total {
                    let window = self.conn_send_window.min(s.send_window);
                    if window <= 0 {
                        break;
                    }
                    let n = (total - s.out_pos)
                        .min(usize::try_from(window).unwrap_or(0))
                        .min(max_frame);
                    frame::write_head(&mut self.out, n, FrameKind::Data, 0, id);
                    s.write_out(s.out_pos, s.out_pos + n, &mut self.out);
                    s.out_pos += n;
                    self.conn_send_window -= i64::try_from(n).unwrap_or(i64::MAX);
                    s.send_window -= i64::try_from(n).unwrap_or(i64::MAX);
                }
                if s.out_pos >= total {
                    done = Some(id);
                    break;
                }
            }
            if let Some(id) = done {
                // Trailers: `grpc-status: 0` with END_STREAM (PROTOCOL-HTTP2 "Trailers").
                let mut block = mem::take(&mut self.block_scratch);
                block.clear();
                self.encoder
                    .encode_field(b"grpc-status", b"0", false, &mut block);
                frame::write_frame(
                    &mut self.out,
                    FrameKind::Headers,
                    flags::END_HEADERS | flags::END_STREAM,
                    id,
                    &block,
                );
                self.block_scratch = block;
                self.finish_sent(id);
                next = id.checked_add(1);
            }
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
