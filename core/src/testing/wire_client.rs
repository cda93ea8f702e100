//! A minimal HTTP/2 gRPC client written independently of the transport (and of its own test
//! client): it sends what grpc-go sends (docs/protocol.md §2) and reads frames, HPACK header blocks,
//! gRPC message framing and trailers back, so simulations exercise the real transport bytes.
//!
//! Only what unary calls need: prior-knowledge preface, SETTINGS (+ACK), HEADERS /
//! CONTINUATION, DATA, RST_STREAM, PING (+ACK), GOAWAY and WINDOW_UPDATE (credit is returned
//! for every DATA byte received). Anything the server does wrong panics the test.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::hpack::{Decoder, Encoder};

use crate::h2::PREFACE;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// RST_STREAM error code CANCEL (RFC 9113 §7).
pub const CANCEL: u32 = 0x8;

/// Per-call options (what grpc-go puts in the request headers).
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// `:authority` (kube ≥ 1.32 v2: `localhost`; older / v1: the percent-encoded socket path).
    pub authority: String,
    /// `grpc-timeout`, sent in milliseconds when set.
    pub timeout: Option<Duration>,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            authority: String::from("localhost"),
            timeout: Some(Duration::from_secs(3)),
        }
    }
}

/// A finished call as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    /// `:status` of the response headers.
    pub http_status: Option<u16>,
    /// `grpc-status` from the trailers (or trailers-only response).
    pub grpc_status: Option<u8>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: String,
    /// The response message (without the 5-byte gRPC prefix), if one came.
    pub message: Option<Vec<u8>>,
    /// The RST_STREAM error code, if the server reset the stream.
    pub reset: Option<u32>,
}

#[derive(Default)]
struct StreamState {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    data: Vec<u8>,
    done: bool,
    reset: Option<u32>,
}

/// See the module docs.
pub struct WireClient {
    out: Vec<u8>,
    inbuf: Vec<u8>,
    decoder: Decoder,
    encoder: Encoder,
    next_stream: u32,
    streams: BTreeMap<u32, StreamState>,
    /// A header block being collected: stream, fragment so far, END_STREAM seen.
    partial: Option<(u32, Vec<u8>, bool)>,
    /// Last GOAWAY: (last stream id, error code).
    pub goaway: Option<(u32, u32)>,
    /// SETTINGS frames received from the server (non-ACK).
    pub settings_received: usize,
}

impl Default for WireClient {
    fn default() -> Self {
        Self::new()
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .expect("frame fits")
        .to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// gRPC `grpc-message` percent-decoding (gRPC PROTOCOL-HTTP2 "Status-Message").
fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            v[i],
            v.get(i + 1).copied().and_then(hex),
            v.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl WireClient {
    /// A client whose preface and initial SETTINGS are queued.
    pub fn new() -> Self {
        let mut out = PREFACE.to_vec();
        frame(&mut out, SETTINGS, 0, 0, &[]);
        Self {
            out,
            inbuf: Vec::new(),
            decoder: Decoder::new(crate::hpack::DEFAULT_TABLE_SIZE),
            encoder: Encoder::new(),
            next_stream: 1,
            streams: BTreeMap::new(),
            partial: None,
            goaway: None,
            settings_received: 0,
        }
    }

    /// Queues a unary call; returns its stream id.
    pub fn unary(&mut self, path: &str, message: &[u8], opts: &CallOptions) -> u32 {
        let stream = self.next_stream;
        self.next_stream += 2;
        let mut block = Vec::new();
        let mut field = |name: &str, value: &str| {
            self.encoder
                .encode_field(name.as_bytes(), value.as_bytes(), false, &mut block);
        };
        field(":method", "POST");
        field(":scheme", "http");
        field(":path", path);
        field(":authority", &opts.authority);
        field("content-type", "application/grpc");
        field("user-agent", "grpc-go/1.68.1");
        field("te", "trailers");
        if let Some(t) = opts.timeout {
            field(
                "grpc-timeout",
                &alloc::format!("{}m", t.as_millis().min(99_999_999)),
            );
        }
        frame(&mut self.out, HEADERS, END_HEADERS, stream, &block);
        let mut payload = Vec::with_capacity(5 + message.len());
        payload.push(0);
        let len = u32::try_from(message.len()).expect("message fits");
        payload.extend_from_slice(&len.to_be_bytes());
        payload.extend_from_slice(message);
        frame(&mut self.out, DATA, END_STREAM, stream, &payload);
        self.streams.insert(stream, StreamState::default());
        stream
    }

    /// Queues RST_STREAM(CANCEL) for `stream` (a client-side deadline or cancellation).
    pub fn cancel(&mut self, stream: u32) {
        frame(&mut self.out, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
        if let Some(s) = self.streams.get_mut(&stream) {
            s.done = true;
            s.reset = Some(CANCEL);
        }
    }

    /// Queues raw bytes (for tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes to send to the server.
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// Whether bytes are waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Streams whose response is complete (not yet taken).
    pub fn finished_streams(&self) -> Vec<u32> {
        self.streams
            .iter()
            .filter(|(_, s)| s.done)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Calls not finished yet.
    pub fn outstanding(&self) -> usize {
        self.streams.values().filter(|s| !s.done).count()
    }

    /// The finished response on `stream`, once.
    pub fn take_response(&mut self, stream: u32) -> Option<ClientResponse> {
        if !self.streams.get(&stream)?.done {
            return None;
        }
        let s = self.streams.remove(&stream)?;
        let get = |name: &[u8]| {
            s.fields
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let grpc_status =
            get(b"grpc-status").and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u8>().ok());
        let message = (s.data.len() >= 5).then(|| {
            assert_eq!(s.data[0], 0, "compressed flag set");
            let len = u32::from_be_bytes([s.data[1], s.data[2], s.data[3], s.data[4]]) as usize;
            assert_eq!(s.data.len(), 5 + len, "one message per unary response");
            s.data[5..].to_vec()
        });
        Some(ClientResponse {
            http_status: get(b":status")
                .and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u16>().ok()),
            grpc_status,
            grpc_message: get(b"grpc-message")
                .map(|v| percent_decode(&v))
                .unwrap_or_default(),
            message,
            reset: s.reset,
        })
    }

    /// Feeds bytes from the server; queues SETTINGS/PING ACKs and WINDOW_UPDATEs.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
        loop {
            if self.inbuf.len() < 9 {
                return;
            }
            let len = u32::from_be_bytes([0, self.inbuf[0], self.inbuf[1], self.inbuf[2]]) as usize;
            if self.inbuf.len() < 9 + len {
                return;
            }
            let kind = self.inbuf[3];
            let flags = self.inbuf[4];
            let stream =
                u32::from_be_bytes([self.inbuf[5], self.inbuf[6], self.inbuf[7], self.inbuf[8]])
                    & 0x7fff_ffff;
            let payload: Vec<u8> = self.inbuf[9..9 + len].to_vec();
            self.inbuf.drain(..9 + len);
            self.on_frame(kind, flags, stream, &payload);
        }
    }

    fn on_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        if let Some((s, _, _)) = &self.partial {
            assert!(
                kind == CONTINUATION && stream == *s,
                "RFC 9113 §6.10: only CONTINUATION may follow an unfinished header block"
            );
        }
        match kind {
            SETTINGS if flags & ACK == 0 => {
                self.settings_received += 1;
                frame(&mut self.out, SETTINGS, ACK, 0, &[]);
            }
            PING if flags & ACK == 0 => frame(&mut self.out, PING, ACK, 0, payload),
            GOAWAY => {
                let last = u32::from_be_bytes(payload[0..4].try_into().expect("GOAWAY"));
                let code = u32::from_be_bytes(payload[4..8].try_into().expect("GOAWAY"));
                self.goaway = Some((last & 0x7fff_ffff, code));
            }
            RST_STREAM => {
                let code = u32::from_be_bytes(payload[0..4].try_into().expect("RST_STREAM"));
                let s = self.streams.entry(stream).or_default();
                s.reset = Some(code);
                s.done = true;
            }
            DATA => {
                let body = Self::unpad(flags, payload);
                if !payload.is_empty() {
                    let inc = u32::try_from(payload.len())
                        .expect("frame size")
                        .to_be_bytes();
                    frame(&mut self.out, WINDOW_UPDATE, 0, 0, &inc);
                }
                let s = self.streams.entry(stream).or_default();
                s.data.extend_from_slice(body);
                if flags & END_STREAM != 0 {
                    s.done = true;
                }
            }
            HEADERS => {
                let mut body = Self::unpad(flags, payload);
                if flags & PRIORITY != 0 {
                    body = &body[5..];
                }
                let end_stream = flags & END_STREAM != 0;
                self.partial = Some((stream, body.to_vec(), end_stream));
                if flags & END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            CONTINUATION => {
                let (_, block, _) = self.partial.as_mut().expect("CONTINUATION without HEADERS");
                block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            _ => {}
        }
    }

    fn unpad(flags: u8, payload: &[u8]) -> &[u8] {
        if flags & PADDED == 0 {
            return payload;
        }
        let pad = usize::from(payload[0]);
        &payload[1..payload.len() - pad]
    }

    fn finish_block(&mut self) {
        let Some((stream, block, end_stream)) = self.partial.take() else {
            return;
        };
        let mut fields = Vec::new();
        self.decoder
            .decode(&block, &mut |n: &[u8], v: &[u8], _| {
                fields.push((n.to_vec(), v.to_vec()));
            })
            .expect("server header block decodes");
        let s = self.streams.entry(stream).or_default();
        s.fields.extend(fields);
        if end_stream {
            s.done = true;
        }
    }
}
