//! Shared pieces of the fuzz targets: a client-side request encoder (so byte-driven sessions
//! can mix valid requests with garbage) and [`ServerOutput`], the oracle for everything the
//! server writes. Both are the core's own pieces: frames from `h2::frame`, header blocks from
//! the HPACK encoder, and the server's output parsed and checked by the shared test client
//! (`kms_plugin_testkit::client::TestClient`), which records every RFC 9113 violation it sees.

use std::collections::BTreeMap;

use kms_plugin_core::h2::frame::{FrameKind, write_frame};
use kms_plugin_core::h2::settings::write_settings;
use kms_plugin_core::hpack::Encoder;
use kms_plugin_testkit::client::TestClient;

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

/// Appends a frame (any type octet, flags, stream and payload).
pub fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    write_frame(out, FrameKind::from_u8(ty), flags, stream, payload);
}

/// The preface and an empty SETTINGS frame.
pub fn client_start(out: &mut Vec<u8>) {
    out.extend_from_slice(PREFACE);
    write_settings(out, &[]);
}

/// A gRPC request header block, as kube-apiserver's client sends it, from a fresh HPACK
/// encoder (so blocks can be sent in any order).
pub fn request_headers(path: &str, authority: &str, timeout: Option<&str>) -> Vec<u8> {
    let mut enc = Encoder::new();
    let mut hb = Vec::new();
    let mut field = |n: &str, v: &str| enc.encode_field(n.as_bytes(), v.as_bytes(), false, &mut hb);
    field(":method", "POST");
    field(":scheme", "http");
    field(":path", path);
    field(":authority", authority);
    field("content-type", "application/grpc");
    field("te", "trailers");
    if let Some(t) = timeout {
        field("grpc-timeout", t);
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
    /// The `grpc-status` value, if one came.
    pub status: Option<u8>,
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
        self.status.map(u32::from)
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

/// The server's side of one connection, parsed by the shared test client; any RFC 9113
/// violation it records (frame sizes, frames inside a header block, frames on even or
/// finished streams, malformed control frames, a growing GOAWAY last-stream-id, header blocks
/// that do not decode) is a finding.
pub struct ServerOutput {
    client: TestClient,
    /// Every stream the server wrote about.
    pub streams: BTreeMap<u32, StreamReply>,
    /// GOAWAY (last stream id, error code), the last one seen.
    pub goaway: Option<(u32, u32)>,
}

impl Default for ServerOutput {
    fn default() -> Self {
        let mut client = TestClient::new();
        // Only a parser here: the fuzz target decides what the client sends.
        client.auto_window_update = false;
        client.record_frames = false;
        Self {
            client,
            streams: BTreeMap::new(),
            goaway: None,
        }
    }
}

impl ServerOutput {
    /// Feeds server bytes; panics (a finding) if the server wrote malformed HTTP/2.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.client.receive(bytes);
        let _ = self.client.pending_output();
        if tracing() {
            eprintln!("server output: {} bytes, GOAWAY {:?}", bytes.len(), self.client.goaway());
        }
        assert!(
            self.client.protocol_errors.is_empty(),
            "malformed server output: {:?}",
            self.client.protocol_errors
        );
        self.goaway = self.client.goaway();
        for (stream, view) in self.client.streams() {
            self.streams.insert(
                stream,
                StreamReply {
                    status: view.response.grpc_status,
                    data: view.data.to_vec(),
                    ended: view.ended,
                    reset: view.response.reset,
                },
            );
        }
    }

    /// Whether bytes of an incomplete frame remain.
    pub fn has_partial_frame(&self) -> bool {
        self.client.has_partial_frame()
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
