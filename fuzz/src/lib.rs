//! Shared pieces of the fuzz targets: a client-side HTTP/2 request encoder (so byte-driven
//! sessions can mix valid requests with garbage) and an independent parser of everything the
//! server writes, which doubles as an oracle: server output must always be well-formed.

use std::collections::BTreeMap;

use kms_plugin_core::hpack::Decoder;

/// HTTP/2 connection preface (RFC 9113 §3.4).
pub use kms_plugin_core::h2::PREFACE;
/// Frame types (RFC 9113 §6).
pub mod ty {
    #![allow(missing_docs)]
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const PRIORITY: u8 = 2;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PUSH_PROMISE: u8 = 5;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const WINDOW_UPDATE: u8 = 8;
    pub const CONTINUATION: u8 = 9;
}
/// Former finding (fuzz/artifacts-regressions/h2_frames/goaway-last-stream-increases-after-graceful-goaway):
/// a stream opened after our graceful GOAWAY raised the last-stream-id of a later
/// connection-error GOAWAY (RFC 9113 §6.8: "MUST NOT increase"). Fixed in the transport (the
/// draining phase keeps the id it sent); the smoke run replays the reproducer. Kept as a switch
/// for triage; `false` means any increase is a finding.
pub const TOLERATE_KNOWN_GOAWAY_INCREASE: bool = false;

/// Whether `FUZZ_TRACE` is set: print frames for triaging a crash input (read once).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// END_STREAM / ACK.
pub const END_STREAM: u8 = 0x1;
/// END_HEADERS.
pub const END_HEADERS: u8 = 0x4;

/// The KMS method paths (docs/protocol.md §3), plus one unknown path.
pub const PATHS: [&str; 7] = [
    "/v2.KeyManagementService/Status",
    "/v2.KeyManagementService/Encrypt",
    "/v2.KeyManagementService/Decrypt",
    "/v1beta1.KeyManagementService/Version",
    "/v1beta1.KeyManagementService/Encrypt",
    "/v1beta1.KeyManagementService/Decrypt",
    "/v2.KeyManagementService/Nope",
];

/// Appends a frame header.
pub fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The preface and an empty SETTINGS frame.
pub fn client_start(out: &mut Vec<u8>) {
    out.extend_from_slice(PREFACE);
    frame(out, ty::SETTINGS, 0, 0, &[]);
}

fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    // RFC 7541 §5.1/5.2: raw string, 7-bit prefix length.
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

/// A gRPC request header block: literal fields without indexing (RFC 7541 §6.2.2).
pub fn request_headers(path: &str, authority: &str, timeout: Option<&str>) -> Vec<u8> {
    let mut hb = vec![0x83, 0x86, 0x04];
    hpack_str(&mut hb, path.as_bytes());
    hb.push(0x01);
    hpack_str(&mut hb, authority.as_bytes());
    hb.extend_from_slice(&[0x0f, 0x10]);
    hpack_str(&mut hb, b"application/grpc");
    hb.push(0x00);
    hpack_str(&mut hb, b"te");
    hpack_str(&mut hb, b"trailers");
    if let Some(t) = timeout {
        hb.push(0x00);
        hpack_str(&mut hb, b"grpc-timeout");
        hpack_str(&mut hb, t.as_bytes());
    }
    hb
}

/// One unary gRPC request on `stream`: HEADERS + DATA(END_STREAM) with the 5-byte prefix.
pub fn request(out: &mut Vec<u8>, stream: u32, path: &str, message: &[u8], timeout: Option<&str>) {
    frame(
        out,
        ty::HEADERS,
        END_HEADERS,
        stream,
        &request_headers(path, "localhost", timeout),
    );
    let mut data = vec![0];
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(message);
    frame(out, ty::DATA, END_STREAM, stream, &data);
}

/// What the server said on one stream.
#[derive(Debug, Default, Clone)]
pub struct StreamReply {
    /// Decoded header fields of every header block, in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Concatenated DATA payloads.
    pub data: Vec<u8>,
    /// The stream ended (END_STREAM seen).
    pub ended: bool,
    /// RST_STREAM error code, if reset.
    pub reset: Option<u32>,
}

impl StreamReply {
    /// The `grpc-status` value, if any.
    pub fn grpc_status(&self) -> Option<u32> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == b"grpc-status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
    }

    /// The gRPC response message (without the 5-byte prefix) if the data holds exactly one.
    pub fn message(&self) -> Option<&[u8]> {
        let (prefix, rest) = self.data.split_at_checked(5)?;
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        (rest.len() == len).then_some(rest)
    }

    /// Whether the server is done with this stream (ended or reset).
    pub fn finished(&self) -> bool {
        self.ended || self.reset.is_some()
    }
}

/// Parses the server's side of one connection, checking it is well-formed HTTP/2.
pub struct ServerOutput {
    buf: Vec<u8>,
    decoder: Decoder,
    /// A header block spanning CONTINUATION frames: (stream, fragment, end_stream).
    pending_block: Option<(u32, Vec<u8>, bool)>,
    /// Every stream the server wrote about.
    pub streams: BTreeMap<u32, StreamReply>,
    /// GOAWAY (last stream id, error code), the last one seen.
    pub goaway: Option<(u32, u32)>,
    /// SETTINGS frames received (non-ACK).
    pub settings: usize,
    /// SETTINGS ACKs received.
    pub settings_acks: usize,
    /// PING ACKs received.
    pub ping_acks: usize,
}

impl Default for ServerOutput {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            decoder: Decoder::new(4096),
            pending_block: None,
            streams: BTreeMap::new(),
            goaway: None,
            settings: 0,
            settings_acks: 0,
            ping_acks: 0,
        }
    }
}

impl ServerOutput {
    /// Feeds server bytes; panics (a finding) if the server wrote malformed HTTP/2.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        while let Some(head) = self.buf.get(pos..pos + 9) {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            // We never raise SETTINGS_MAX_FRAME_SIZE: the server must stay within 16384.
            assert!(len <= 16_384, "server frame of {len} bytes");
            let Some(payload) = self.buf.get(pos + 9..pos + 9 + len) else {
                break;
            };
            let (t, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let payload = payload.to_vec();
            self.frame(t, flags, stream, &payload);
            pos += 9 + len;
        }
        self.buf.drain(..pos);
    }

    /// Whether bytes of an incomplete frame remain.
    pub fn has_partial_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    fn frame(&mut self, t: u8, flags: u8, stream: u32, payload: &[u8]) {
        if tracing() {
            eprintln!(
                "server frame type={t} flags={flags:#x} stream={stream} len={}",
                payload.len()
            );
        }
        if let Some((s, _, _)) = &self.pending_block {
            assert!(
                t == ty::CONTINUATION && stream == *s,
                "server interleaved a frame inside a header block (RFC 9113 §6.10)"
            );
        }
        match t {
            ty::DATA => {
                assert!(
                    stream != 0 && stream % 2 == 1,
                    "server DATA on stream {stream}"
                );
                let r = self.streams.entry(stream).or_default();
                assert!(!r.finished(), "server DATA after end of stream {stream}");
                r.data.extend_from_slice(payload);
                r.ended |= flags & END_STREAM != 0;
            }
            ty::HEADERS => {
                assert!(
                    stream != 0 && stream % 2 == 1,
                    "server HEADERS on stream {stream}"
                );
                assert!(flags & 0x28 == 0, "server used padding/priority on HEADERS");
                self.pending_block = Some((stream, payload.to_vec(), flags & END_STREAM != 0));
                if flags & END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            ty::CONTINUATION => {
                let Some((_, block, _)) = self.pending_block.as_mut() else {
                    panic!("server CONTINUATION without a header block");
                };
                block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            ty::RST_STREAM => {
                assert!(stream != 0 && payload.len() == 4, "bad server RST_STREAM");
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.streams.entry(stream).or_default().reset = Some(code);
            }
            ty::SETTINGS => {
                assert_eq!(stream, 0);
                if flags & 1 != 0 {
                    assert!(payload.is_empty(), "SETTINGS ACK with payload");
                    self.settings_acks += 1;
                } else {
                    assert!(payload.len() % 6 == 0, "server SETTINGS length");
                    self.settings += 1;
                }
            }
            ty::PING => {
                assert!(stream == 0 && payload.len() == 8, "bad server PING");
                self.ping_acks += usize::from(flags & 1 != 0);
            }
            ty::GOAWAY => {
                assert!(stream == 0 && payload.len() >= 8, "bad server GOAWAY");
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & 0x7fff_ffff;
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                if tracing() {
                    eprintln!("server GOAWAY last={last} code={code}");
                }
                if let Some((prev, prev_code)) = self.goaway {
                    let known = TOLERATE_KNOWN_GOAWAY_INCREASE && prev_code == 0;
                    assert!(
                        known || last <= prev,
                        "GOAWAY last-stream-id increased (RFC 9113 §6.8)"
                    );
                }
                self.goaway = Some((last, code));
            }
            ty::WINDOW_UPDATE => {
                assert_eq!(payload.len(), 4, "bad server WINDOW_UPDATE");
                let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & 0x7fff_ffff;
                assert!(inc > 0, "server WINDOW_UPDATE of 0 (RFC 9113 §6.9)");
            }
            other => panic!("server sent frame type {other}"),
        }
    }

    fn finish_block(&mut self) {
        let Some((stream, block, end)) = self.pending_block.take() else {
            return;
        };
        let mut fields = Vec::new();
        self.decoder
            .decode(&block, &mut |n, v, _| fields.push((n.to_vec(), v.to_vec())))
            .expect("the server's header blocks decode");
        let r = self.streams.entry(stream).or_default();
        assert!(!r.finished(), "server HEADERS after end of stream {stream}");
        r.headers.extend(fields);
        r.ended |= end;
    }
}

/// KMS messages (field numbers from the protos in proto/proto/), for building requests and reading
/// responses independently of the product's own proto crate.
pub mod msg {
    #![allow(missing_docs)]
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub healthz: String,
        #[prost(string, tag = "3")]
        pub key_id: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EncryptRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub plaintext: Vec<u8>,
        #[prost(string, tag = "2")]
        pub uid: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EncryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub ciphertext: Vec<u8>,
        #[prost(string, tag = "2")]
        pub key_id: String,
        #[prost(btree_map = "string, bytes", tag = "3")]
        pub annotations: BTreeMap<String, Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DecryptRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub ciphertext: Vec<u8>,
        #[prost(string, tag = "2")]
        pub uid: String,
        #[prost(string, tag = "3")]
        pub key_id: String,
        #[prost(btree_map = "string, bytes", tag = "4")]
        pub annotations: BTreeMap<String, Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DecryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub plaintext: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct V1EncryptRequest {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(bytes = "vec", tag = "2")]
        pub plain: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct V1EncryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub cipher: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct V1DecryptRequest {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(bytes = "vec", tag = "2")]
        pub cipher: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct V1DecryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub plain: Vec<u8>,
    }
}
