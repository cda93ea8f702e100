//! Test support for transport tests: drive one `Connection` with a handler, and a raw frame
//! client for byte-exact and misbehaving-peer cases.
#![allow(dead_code, unreachable_pub)]

use kms_plugin_core::Timestamp;
use kms_plugin_core::conn::{Connection, TransportConfig};
use kms_plugin_core::h2::frame::{self, FrameHead, FrameKind, HEAD_LEN, PREFACE, flags};
use kms_plugin_core::hpack::{Decoder, Encoder};
use kms_plugin_core::rpc::{Request, Response};
use kms_plugin_core::secret::SecretBytes;

/// Echoes the request message back.
pub fn echo(req: &Request) -> Response {
    Response::ok(SecretBytes::copy_from(req.message.expose()))
}

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub head: FrameHead,
    pub payload: Vec<u8>,
}

/// Splits server output into frames.
pub fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(h) = bytes.first_chunk::<HEAD_LEN>() {
        let head = FrameHead::parse(h);
        let end = HEAD_LEN + head.len as usize;
        out.push(Frame {
            head,
            payload: bytes[HEAD_LEN..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    assert!(bytes.is_empty(), "partial frame in server output");
    out
}

/// A client that writes raw frames.
pub struct Raw {
    pub enc: Encoder,
    pub dec: Decoder,
    pub buf: Vec<u8>,
}

impl Raw {
    pub fn new() -> Self {
        Self {
            enc: Encoder::new(),
            dec: Decoder::new(4096),
            buf: Vec::new(),
        }
    }

    /// Preface + SETTINGS with `settings`.
    pub fn handshake(&mut self, settings: &[(u16, u32)]) -> &mut Self {
        self.buf.extend_from_slice(PREFACE);
        kms_plugin_core::h2::settings::write_settings(&mut self.buf, settings);
        self
    }

    pub fn frame(&mut self, kind: FrameKind, fl: u8, stream: u32, payload: &[u8]) -> &mut Self {
        frame::write_frame(&mut self.buf, kind, fl, stream, payload);
        self
    }

    /// A gRPC request header block; `authority: None` omits `:authority`.
    pub fn request_block(
        &mut self,
        path: &str,
        authority: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut block = Vec::new();
        let mut fields: Vec<(&str, &str)> =
            vec![(":method", "POST"), (":scheme", "http"), (":path", path)];
        if let Some(a) = authority {
            fields.push((":authority", a));
        }
        fields.push(("content-type", "application/grpc"));
        fields.push(("te", "trailers"));
        fields.extend_from_slice(extra);
        for (n, v) in fields {
            self.enc
                .encode_field(n.as_bytes(), v.as_bytes(), false, &mut block);
        }
        block
    }

    /// HEADERS (END_HEADERS) + one DATA frame with the gRPC-framed message (END_STREAM).
    pub fn unary(
        &mut self,
        stream: u32,
        path: &str,
        authority: Option<&str>,
        message: &[u8],
    ) -> &mut Self {
        let block = self.request_block(path, authority, &[]);
        self.frame(FrameKind::Headers, flags::END_HEADERS, stream, &block);
        self.frame(
            FrameKind::Data,
            flags::END_STREAM,
            stream,
            &grpc_message(message),
        )
    }

    pub fn take(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.buf)
    }

    /// Decodes a server header block into (name, value) strings.
    pub fn fields(&mut self, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.dec
            .decode(block, &mut |n, v, _| {
                out.push((
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            })
            .expect("server header block decodes");
        out
    }
}

pub fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(message.len() as u32).to_be_bytes());
    v.extend_from_slice(message);
    v
}

pub fn conn() -> Connection {
    Connection::new(&TransportConfig::default(), Timestamp::ZERO)
}

pub fn output(conn: &mut Connection) -> Vec<u8> {
    let mut buf = Vec::new();
    conn.poll_transmit(&mut buf);
    buf
}

/// The GOAWAY error code in `bytes`, if any.
pub fn goaway_code(bytes: &[u8]) -> Option<u32> {
    frames(bytes)
        .into_iter()
        .find(|f| f.head.kind == FrameKind::GoAway)
        .map(|f| u32::from_be_bytes(f.payload[4..8].try_into().unwrap()))
}

/// The RST_STREAM error code for `stream` in `bytes`, if any.
pub fn rst_code(bytes: &[u8], stream: u32) -> Option<u32> {
    frames(bytes)
        .into_iter()
        .find(|f| f.head.kind == FrameKind::RstStream && f.head.stream == stream)
        .map(|f| u32::from_be_bytes(f.payload[..4].try_into().unwrap()))
}
