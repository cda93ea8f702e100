//! Responses: headers, flow-controlled DATA and trailers (RFC 9113 §8.1, §6.9; gRPC
//! PROTOCOL-HTTP2 "Responses").

use alloc::vec::Vec;

use super::Connection;
use super::stream::{Pending, Phase, StreamInput, transition};
use crate::grpc;
use crate::h2::{FrameHead, FrameKind, flags};
use crate::rpc::{Code, Response, StreamId};
use crate::time::Timestamp;

/// Longest `grpc-message` we send (before percent-encoding), so every header block fits one
/// frame of the minimum SETTINGS_MAX_FRAME_SIZE.
const MAX_GRPC_MESSAGE: usize = 1024;

fn status_bytes(code: u16, buf: &mut [u8; 3]) -> &[u8] {
    // Three ASCII digits (HTTP status codes are 100..=599).
    let code = code.clamp(100, 599);
    *buf = [
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    buf
}

fn grpc_status_bytes(code: Code, buf: &mut [u8; 2]) -> &[u8] {
    let v = code.as_u8();
    if v < 10 {
        buf[0] = b'0' + v;
        &buf[..1]
    } else {
        *buf = [b'0' + v / 10, b'0' + v % 10];
        buf
    }
}

impl Connection {
    /// Answers a request handed out by `poll_request`; ignored if the stream is gone.
    ///
    /// OK with a body: HEADERS(`:status` 200, `content-type: application/grpc`), DATA (5-byte
    /// prefix + body, as the peer's windows allow), trailers HEADERS(`grpc-status: 0`,
    /// END_STREAM). Anything else: one trailers-only HEADERS with END_STREAM.
    pub fn respond(&mut self, stream: StreamId, response: Response, _now: Timestamp) {
        let Some(i) = self.find(stream) else { return };
        if !matches!(self.streams[i].phase, Phase::Dispatched) {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        match response {
            Response {
                code: Code::Ok,
                body: Some(body),
                ..
            } => {
                self.block_out.clear();
                self.encoder
                    .encode_field(b":status", b"200", false, &mut self.block_out);
                self.encoder.encode_field(
                    b"content-type",
                    b"application/grpc",
                    false,
                    &mut self.block_out,
                );
                self.write_block(stream, flags::END_HEADERS);
                let st = &mut self.streams[i];
                match transition(st.state, StreamInput::Send { end_stream: false }) {
                    Ok(state) => st.state = state,
                    Err(e) => return self.frame_error(stream, e),
                }
                st.phase = Phase::Responding(Pending {
                    prefix: grpc::encode_prefix(body.len() as u32),
                    body,
                    sent: 0,
                });
            }
            Response { code, message, .. } => {
                self.write_trailers_only(stream, 200, code, message.as_bytes());
                self.remove_stream(stream);
            }
        }
    }

    /// Trailers-only response (PROTOCOL-HTTP2: `Trailers-Only`): `:status`, content-type,
    /// `grpc-status`, percent-encoded `grpc-message`, END_STREAM.
    pub(super) fn write_trailers_only(
        &mut self,
        stream: StreamId,
        http_status: u16,
        code: Code,
        message: &[u8],
    ) {
        self.block_out.clear();
        let mut sb = [0; 3];
        let mut gb = [0; 2];
        self.encoder.encode_field(
            b":status",
            status_bytes(http_status, &mut sb),
            false,
            &mut self.block_out,
        );
        self.encoder.encode_field(
            b"content-type",
            b"application/grpc",
            false,
            &mut self.block_out,
        );
        self.encoder.encode_field(
            b"grpc-status",
            grpc_status_bytes(code, &mut gb),
            false,
            &mut self.block_out,
        );
        if code == Code::Unimplemented {
            self.encoder.encode_field(
                b"grpc-accept-encoding",
                b"identity",
                false,
                &mut self.block_out,
            );
        }
        if !message.is_empty() {
            let mut encoded = core::mem::take(&mut self.message_scratch);
            encoded.clear();
            grpc::percent_encode(
                message.get(..MAX_GRPC_MESSAGE).unwrap_or(message),
                &mut encoded,
            );
            self.encoder
                .encode_field(b"grpc-message", &encoded, false, &mut self.block_out);
            self.message_scratch = encoded;
        }
        self.write_block(stream, flags::END_HEADERS | flags::END_STREAM);
    }

    /// Writes `block_out` as one HEADERS frame to `out`.
    fn write_block(&mut self, stream: StreamId, frame_flags: u8) {
        FrameHead {
            length: self.block_out.len() as u32,
            kind: FrameKind::Headers,
            flags: frame_flags,
            stream,
        }
        .encode(&mut self.out);
        self.out.extend_from_slice(&self.block_out);
    }

    /// Appends all pending output to `buf`: control frames and headers, then response DATA as
    /// far as the peer's windows allow (§6.9), then trailers of finished responses. Returns
    /// whether anything was appended.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let before = buf.len();
        buf.extend_from_slice(&self.out);
        self.out.clear();
        let mut i = 0;
        while i < self.streams.len() {
            if self.flush_stream(i, buf) {
                let id = self.streams[i].id;
                self.remove_stream(id);
            } else {
                i += 1;
            }
        }
        buf.len() > before
    }

    /// Sends what the windows allow of stream `i`'s response; returns true once its trailers
    /// are written (the stream is then closed, §5.1).
    fn flush_stream(&mut self, i: usize, buf: &mut Vec<u8>) -> bool {
        let max_frame = self.peer_max_frame as usize;
        let st = &mut self.streams[i];
        let Phase::Responding(p) = &mut st.phase else {
            return false;
        };
        let total = grpc::PREFIX_LEN + p.body.len();
        while p.sent < total {
            let window = st.send_window.min(self.conn_send_window);
            let n = (total - p.sent)
                .min(max_frame)
                .min(usize::try_from(window).unwrap_or(0));
            if n == 0 {
                return false;
            }
            FrameHead {
                length: n as u32,
                kind: FrameKind::Data,
                flags: 0,
                stream: st.id,
            }
            .encode(buf);
            let (mut from, end) = (p.sent, p.sent + n);
            if let Some(pre) = p.prefix.get(from..end.min(grpc::PREFIX_LEN)) {
                buf.extend_from_slice(pre);
                from += pre.len();
            }
            if let Some(body) = p
                .body
                .expose()
                .get(from - grpc::PREFIX_LEN..end - grpc::PREFIX_LEN)
            {
                buf.extend_from_slice(body);
            }
            p.sent = end;
            st.send_window -= i64::try_from(n).unwrap_or(i64::MAX);
            self.conn_send_window -= i64::try_from(n).unwrap_or(i64::MAX);
        }
        // Trailers: grpc-status 0 with END_STREAM (PROTOCOL-HTTP2 "Trailers").
        self.block_out.clear();
        self.encoder
            .encode_field(b"grpc-status", b"0", false, &mut self.block_out);
        FrameHead {
            length: self.block_out.len() as u32,
            kind: FrameKind::Headers,
            flags: flags::END_HEADERS | flags::END_STREAM,
            stream: st.id,
        }
        .encode(buf);
        buf.extend_from_slice(&self.block_out);
        if let Ok(state) = transition(st.state, StreamInput::Send { end_stream: true }) {
            st.state = state;
        }
        true
    }
}
