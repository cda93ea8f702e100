//! The output queue: every octet the connection sends, in order, with the HPACK encoder whose
//! state follows that order (RFC 7541 §2.2). It owns the count of octets waiting for the
//! socket ([`OutputQueue::len`]), the one number output caps are enforced on.

use alloc::vec::Vec;
use core::mem;

use zeroize::Zeroize;

use crate::grpc;
use crate::h2::frame::{self, FrameKind, HEAD_LEN, flags};
use crate::health::{HealthWarning, WARNING_TRAILER};
use crate::hpack::Encoder;
use crate::rpc::{Code, StreamId};

/// The longest `grpc-message` we send, in octets before percent-encoding.
const MAX_GRPC_MESSAGE: usize = 512;

/// Octets queued for the socket. May hold response plaintext: wiped when handed over by
/// copy, and on drop.
pub(crate) struct OutputQueue {
    bytes: Vec<u8>,
    encoder: Encoder,
}

impl OutputQueue {
    pub(crate) fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(256),
            encoder: Encoder::new(),
        }
    }

    /// Octets waiting for `transmit`.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends everything queued to `buf` (moving the buffer when `buf` is empty); whether
    /// anything was appended.
    pub(crate) fn transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.bytes.is_empty() {
            return false;
        }
        if buf.is_empty() {
            mem::swap(buf, &mut self.bytes);
        } else {
            buf.extend_from_slice(&self.bytes);
            self.bytes.zeroize();
        }
        true
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE bounds our encoder's table (RFC 7541 §4.2).
    pub(crate) fn set_peer_table_size(&mut self, size: usize) {
        self.encoder.set_peer_max_table_size(size);
    }

    /// The queue, for the `h2::frame` writers of control frames (SETTINGS, PING ACK,
    /// WINDOW_UPDATE, RST_STREAM, GOAWAY); every octet appended counts in [`Self::len`].
    pub(crate) fn frames(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Response headers (`:status`, `content-type`). With `grpc` set the stream ends here:
    /// a trailers-only response with that status and message (gRPC PROTOCOL-HTTP2
    /// "Responses"); otherwise DATA and trailers follow.
    pub(crate) fn response_headers(
        &mut self,
        id: StreamId,
        http_status: u16,
        grpc: Option<(Code, &str)>,
    ) {
        let status = match http_status {
            200 => &b"200"[..],
            405 => b"405",
            415 => b"415",
            _ => b"500",
        };
        let end = if grpc.is_some() { flags::END_STREAM } else { 0 };
        let start = self.begin_headers(id, end);
        self.field(b":status", status);
        self.field(b"content-type", b"application/grpc");
        if let Some((code, message)) = grpc {
            self.grpc_status(code, message);
        }
        self.end_headers(start);
    }

    /// One DATA frame on `id` carrying `parts` (§6.1), no flags.
    pub(crate) fn data(&mut self, id: StreamId, parts: [&[u8]; 2]) {
        let len = parts[0].len() + parts[1].len();
        frame::write_head(&mut self.bytes, len, FrameKind::Data, 0, id);
        self.bytes.extend_from_slice(parts[0]);
        self.bytes.extend_from_slice(parts[1]);
    }

    /// The trailers of an OK response, ending the stream: `grpc-status: 0`, then `warning`
    /// (if any) as the custom-metadata trailer [`WARNING_TRAILER`] (gRPC PROTOCOL-HTTP2
    /// "Custom-Metadata"; clients ignore trailers they do not know).
    pub(crate) fn ok_trailers(&mut self, id: StreamId, warning: Option<&HealthWarning>) {
        let start = self.begin_headers(id, flags::END_STREAM);
        self.grpc_status(Code::Ok, "");
        if let Some(w) = warning {
            self.field(WARNING_TRAILER.as_bytes(), w.as_str().as_bytes());
        }
        self.end_headers(start);
    }

    fn grpc_status(&mut self, code: Code, message: &str) {
        let mut code_buf = [0u8; 3];
        self.field(b"grpc-status", format_code(code.as_u8(), &mut code_buf));
        if !message.is_empty() {
            let mut encoded = alloc::string::String::new();
            grpc::percent_encode(truncate(message, MAX_GRPC_MESSAGE), &mut encoded);
            self.field(b"grpc-message", encoded.as_bytes());
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.encoder
            .encode_field(name, value, false, &mut self.bytes);
    }

    /// Appends a HEADERS frame head (END_HEADERS plus `flags`) with a placeholder length;
    /// returns its offset.
    fn begin_headers(&mut self, id: StreamId, flags: u8) -> usize {
        let start = self.bytes.len();
        let flags = flags | flags::END_HEADERS;
        frame::write_head(&mut self.bytes, 0, FrameKind::Headers, flags, id);
        start
    }

    /// Patches the length of the HEADERS frame begun at `start` (our blocks are a few hundred
    /// octets, far below the 16,384-octet minimum SETTINGS_MAX_FRAME_SIZE).
    fn end_headers(&mut self, start: usize) {
        let len = self.bytes.len().saturating_sub(start + HEAD_LEN) as u32;
        if let Some(field) = self.bytes.get_mut(start..start + 3) {
            field.copy_from_slice(&len.to_be_bytes()[1..]);
        }
    }
}

impl Drop for OutputQueue {
    /// Unsent output can hold response plaintext.
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

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
