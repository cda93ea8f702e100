//! A minimal raw peer for transport tests: drives one [`Connection`] directly with hand-built
//! frames and parses the server's output frame by frame (no test-client logic in between).
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use kms_plugin_core::conn::{ConnEvent, Connection, TransportConfig};
pub use kms_plugin_core::h2::reason::Reason;
pub use kms_plugin_core::hpack::Encoder;
pub use kms_plugin_core::rpc::{Code, Request, Response};
pub use kms_plugin_core::secret::SecretBytes;
pub use kms_plugin_core::testing::client::{
    grpc_message, pad_payload, ping_frame, raw_frame, rst_stream_frame, settings_frame,
    window_update_frame,
};
pub use kms_plugin_core::time::Timestamp;

pub use kms_plugin_core::h2::PREFACE;

/// The request fields grpc-go sends.
pub const GOOD: &[(&str, &str)] = &[
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/x"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
];

/// `fields` encoded with a static-only HPACK encoder.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    for (n, v) in fields {
        e.encode_field(n.as_bytes(), v.as_bytes(), false, &mut out);
    }
    out
}

/// HEADERS(END_HEADERS) + DATA(one gRPC message, END_STREAM) on `stream`.
pub fn request(stream: u32, message: &[u8]) -> Vec<u8> {
    let mut bytes = raw_frame(1, 0x4, stream, &block(GOOD));
    bytes.extend(raw_frame(0, 0x1, stream, &grpc_message(message)));
    bytes
}

/// One server frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// The peer and its view of the server.
pub struct Peer {
    pub conn: Connection,
    pub now: Timestamp,
    pub frames: Vec<Seen>,
    pub events: Vec<ConnEvent>,
    pub requests: Vec<Request>,
    pub cancelled: Vec<u32>,
    raw: Vec<u8>,
    out: Vec<u8>,
}

impl Peer {
    /// A connection that has seen the preface, an empty SETTINGS and the ACK of ours.
    pub fn connected(cfg: &TransportConfig) -> Self {
        let mut p = Self {
            conn: Connection::new(cfg, Timestamp::ZERO),
            now: Timestamp::ZERO,
            frames: Vec::new(),
            events: Vec::new(),
            requests: Vec::new(),
            cancelled: Vec::new(),
            raw: Vec::new(),
            out: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings_frame(&[]));
        hello.extend(raw_frame(4, 1, 0, &[]));
        p.feed(&hello);
        p.frames.clear();
        p
    }

    /// Feeds `bytes` in one call and drains everything.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.conn.handle_bytes(bytes, self.now);
        self.drain();
    }

    /// Feeds `bytes` one octet per call.
    pub fn feed_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.conn.handle_bytes(core::slice::from_ref(b), self.now);
        }
        self.drain();
    }

    /// Drains requests, cancellations, events and output; parses the output.
    pub fn drain(&mut self) {
        while let Some(r) = self.conn.poll_request() {
            self.requests.push(r);
        }
        while let Some(s) = self.conn.poll_cancelled() {
            self.cancelled.push(s);
        }
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
        self.out.clear();
        self.conn.poll_transmit(&mut self.out);
        self.raw.extend_from_slice(&self.out);
        let mut at = 0;
        while let Some(h) = self.raw.get(at..at + 9) {
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let Some(payload) = self.raw.get(at + 9..at + 9 + len) else {
                break;
            };
            self.frames.push(Seen {
                kind: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                payload: payload.to_vec(),
            });
            at += 9 + len;
        }
        self.raw.drain(..at);
    }

    /// The GOAWAY error code, if the server sent one.
    pub fn goaway(&self) -> Option<u32> {
        self.frames
            .iter()
            .find(|f| f.kind == 7)
            .and_then(|f| f.payload.get(4..8))
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The RST_STREAM code the server sent on `stream`, if any.
    pub fn rst(&self, stream: u32) -> Option<u32> {
        self.frames
            .iter()
            .find(|f| f.kind == 3 && f.stream == stream)
            .and_then(|f| f.payload.get(..4))
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// DATA payload bytes the server sent on `stream`.
    pub fn data(&self, stream: u32) -> Vec<u8> {
        self.frames
            .iter()
            .filter(|f| f.kind == 0 && f.stream == stream)
            .flat_map(|f| f.payload.clone())
            .collect()
    }

    /// Whether the server ended `stream` (a HEADERS or DATA with END_STREAM).
    pub fn ended(&self, stream: u32) -> bool {
        self.frames
            .iter()
            .any(|f| (f.kind == 0 || f.kind == 1) && f.stream == stream && f.flags & 1 == 1)
    }
}
