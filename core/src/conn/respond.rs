//! Answers: queuing a response on its stream and sending it within the peer's flow-control
//! windows (RFC 9113 §6.9; gRPC PROTOCOL-HTTP2 "Responses").

use super::closed::ClosedBy;
use super::streams::StreamInput;
use super::{Connection, Phase};
use crate::event::ConnEvent;
use crate::grpc::PREFIX_LEN;
use crate::h2::reason::Reason;
use crate::rpc::{Code, Response, StreamId};

impl Connection {
    /// Queues `response` on `id`, whose state is already `SendingResponse`. OK responses are
    /// HEADERS + DATA + trailers (with the response's warning, if any), the DATA sent as the
    /// peer's windows allow; errors are trailers-only, and the stream closes at once.
    pub(super) fn queue_response(&mut self, id: StreamId, http_status: u16, response: Response) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        if let Some(body) = response.body.filter(|_| response.code == Code::Ok) {
            self.out.response_headers(id, http_status, None);
            s.prefix = [0; PREFIX_LEN];
            if let Some(len) = s.prefix.get_mut(1..) {
                len.copy_from_slice(&(body.len() as u32).to_be_bytes());
            }
            s.response = Some(body);
            s.out_pos = 0;
            s.warning = response.warning;
        } else {
            let grpc = (response.code, &*response.message);
            self.out.response_headers(id, http_status, Some(grpc));
            self.finish_sent(id);
        }
    }

    /// Sends as much pending response DATA as the windows allow, then trailers (§6.9).
    pub(super) fn flush_streams(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let max_frame = self.peer.max_frame_size as usize;
        let mut cursor = 0;
        let mut any_done = false;
        while let Some((id, s)) = self.streams.next_sending(cursor) {
            cursor = id;
            let Some(body) = s.response.as_ref() else {
                continue;
            };
            let body = body.expose();
            let total = PREFIX_LEN + body.len();
            while s.out_pos < total {
                let n = self
                    .windows
                    .sendable(&s.windows, (total - s.out_pos).min(max_frame));
                if n == 0 {
                    break;
                }
                // The DATA payload is the 5-octet prefix followed by the message.
                let (from, to) = (s.out_pos, s.out_pos + n);
                let prefix = s.prefix.get(from.min(PREFIX_LEN)..to.min(PREFIX_LEN));
                let part = body.get(from.saturating_sub(PREFIX_LEN)..to.saturating_sub(PREFIX_LEN));
                self.out
                    .data(id, [prefix.unwrap_or_default(), part.unwrap_or_default()]);
                s.out_pos = to;
                self.windows.sent(&mut s.windows, n);
            }
            if s.out_pos >= total {
                self.out.ok_trailers(id, s.warning.as_ref());
                self.streams.transition(id, StreamInput::Close);
                self.streams.remember_closed(id, ClosedBy::Other);
                any_done = true;
            }
        }
        if any_done {
            self.check_drained();
        }
    }

    /// The response on `id` is fully queued: the stream is closed and forgotten.
    fn finish_sent(&mut self, id: StreamId) {
        if self.streams.transition(id, StreamInput::Close) {
            self.streams.remember_closed(id, ClosedBy::Other);
        }
        self.check_drained();
    }

    /// Answers a request from the transport itself (too large, not acceptable gRPC, ...). If
    /// the client is still sending (`request_complete` false), the stream is then reset with
    /// NO_ERROR (§8.1: a complete response before the request ends).
    pub(super) fn reject(
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
        self.streams.transition(id, StreamInput::Reject);
        self.queue_response(id, http_status, response);
        if !request_complete {
            self.send_reset(id, Reason::NO_ERROR);
        }
        self.check_drained();
    }
}
