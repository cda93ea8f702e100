//! Response output: encoding answers and sending them within the peer's flow-control windows
//! (RFC 9113 §6.9; gRPC PROTOCOL-HTTP2 "Responses").

use alloc::vec::Vec;

use zeroize::Zeroize;

use super::closed::ClosedBy;
use super::stream::StreamState;
use super::{ConnEvent, Connection, Phase};
use crate::grpc::{self, PREFIX_LEN};
use crate::h2::frame::{self, FrameKind, HEAD_LEN, flags};
use crate::h2::reason::Reason;
use crate::rpc::{Code, Response, StreamId};

impl Connection {
    /// Encodes `response` for `id`. OK responses are HEADERS + DATA + trailers, the DATA sent
    /// as the peer's windows allow; errors are trailers-only (gRPC PROTOCOL-HTTP2
    /// "Responses"). Header blocks are encoded straight into the output buffer.
    pub(super) fn queue_response(&mut self, id: StreamId, http_status: u16, response: Response) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let status = match http_status {
            200 => &b"200"[..],
            405 => b"405",
            415 => b"415",
            _ => b"500",
        };
        let ok_body = response.body.filter(|_| response.code == Code::Ok);
        let flags = if ok_body.is_some() {
            flags::END_HEADERS
        } else {
            // Trailers-only: one HEADERS frame ending the stream.
            flags::END_HEADERS | flags::END_STREAM
        };
        let start = begin_headers(&mut self.out, flags, id);
        self.encoder
            .encode_field(b":status", status, false, &mut self.out);
        self.encoder
            .encode_field(b"content-type", b"application/grpc", false, &mut self.out);
        if let Some(body) = ok_body {
            end_headers(&mut self.out, start);
            s.prefix = [0; PREFIX_LEN];
            if let Some(len) = s.prefix.get_mut(1..) {
                len.copy_from_slice(&(body.len() as u32).to_be_bytes());
            }
            s.response = Some(body);
            s.out_pos = 0;
            return;
        }
        let mut code_buf = [0u8; 3];
        let code = format_code(response.code.as_u8(), &mut code_buf);
        self.encoder
            .encode_field(b"grpc-status", code, false, &mut self.out);
        if !response.message.is_empty() {
            let mut msg = alloc::string::String::new();
            grpc::percent_encode(truncate(&response.message, MAX_GRPC_MESSAGE), &mut msg);
            self.encoder
                .encode_field(b"grpc-message", msg.as_bytes(), false, &mut self.out);
        }
        end_headers(&mut self.out, start);
        s.state = StreamState::SendingResponse;
        s.response = None;
        self.finish_sent(id);
    }

    /// Sends as much pending response DATA as the windows allow, then trailers (§6.9).
    pub(super) fn flush_streams(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let max_frame = self.peer.max_frame_size as usize;
        let mut any_done = false;
        for (&id, s) in &mut self.streams {
            if s.state != StreamState::SendingResponse || s.sent {
                continue;
            }
            let Some(body) = s.response.as_ref() else {
                continue;
            };
            let body = body.expose();
            let total = PREFIX_LEN + body.len();
            while s.out_pos < total {
                let window = self.conn_send_window.min(s.send_window);
                if window <= 0 {
                    break;
                }
                let n = (total - s.out_pos)
                    .min(usize::try_from(window).unwrap_or(0))
                    .min(max_frame);
                frame::write_head(&mut self.out, n, FrameKind::Data, 0, id);
                // The DATA payload is the 5-octet prefix followed by the message.
                let (from, to) = (s.out_pos, s.out_pos + n);
                if from < PREFIX_LEN {
                    let end = to.min(PREFIX_LEN);
                    self.out
                        .extend_from_slice(s.prefix.get(from..end).unwrap_or_default());
                }
                if to > PREFIX_LEN {
                    let part = body.get(from.saturating_sub(PREFIX_LEN)..to - PREFIX_LEN);
                    self.out.extend_from_slice(part.unwrap_or_default());
                }
                s.out_pos = to;
                let used = i64::try_from(n).unwrap_or(i64::MAX);
                self.conn_send_window -= used;
                s.send_window -= used;
            }
            if s.out_pos >= total {
                let start =
                    begin_headers(&mut self.out, flags::END_HEADERS | flags::END_STREAM, id);
                self.encoder
                    .encode_field(b"grpc-status", b"0", false, &mut self.out);
                end_headers(&mut self.out, start);
                s.sent = true;
                s.response = None; // zeroized on drop
                any_done = true;
            }
        }
        if any_done {
            let closed = &mut self.closed;
            self.streams.retain(|&id, s| {
                if s.sent {
                    closed.insert(id, ClosedBy::Other);
                }
                !s.sent
            });
            self.check_drained();
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

/// Appends a HEADERS frame head with a placeholder length; returns its offset.
fn begin_headers(out: &mut Vec<u8>, flags: u8, id: StreamId) -> usize {
    let start = out.len();
    frame::write_head(out, 0, FrameKind::Headers, flags, id);
    start
}

/// Patches the length of the HEADERS frame begun at `start` (our blocks are a few hundred
/// octets, far below the 16,384-octet minimum SETTINGS_MAX_FRAME_SIZE).
fn end_headers(out: &mut [u8], start: usize) {
    let len = out.len().saturating_sub(start + HEAD_LEN) as u32;
    if let Some(field) = out.get_mut(start..start + 3) {
        field.copy_from_slice(&len.to_be_bytes()[1..]);
    }
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
