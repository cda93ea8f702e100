//! The one in-memory HTTP/2 + gRPC test client, built from the core's own frame writers
//! (`h2::frame`) and HPACK encoder/decoder. Core tests, simulations, runtime tests over real
//! sockets and the fuzz corpus generator all use it.
//!
//! It exposes every knob the transport's tests need: authority forms, `grpc-timeout`, content
//! type, extra headers, DATA chunking, padding, header blocks split into CONTINUATION frames,
//! and raw frame builders for malformed input. It honours the server's flow-control windows
//! (RFC 9113 §6.9): request DATA beyond them waits in [`TestClient::pending_output`] until the
//! server's WINDOW_UPDATE arrives through [`TestClient::receive`].
//!
//! Malformed server output never panics the client: every violation of RFC 9113 it sees (frame
//! sizes, frames inside a header block, frames on even or finished streams, a GOAWAY whose
//! last-stream-id grows, …) is recorded in [`TestClient::protocol_errors`] for the test (or
//! simulation) to assert on.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use kms_plugin_core::h2::frame::{self, FrameKind, PREFACE, flags};
use kms_plugin_core::h2::settings;
use kms_plugin_core::hpack::{Decoder, Encoder};
use kms_plugin_core::rpc::StreamId;

mod frames;
mod receive;
pub use frames::{
    goaway_frame, grpc_message, pad_payload, percent_decode, ping_frame, raw_frame, raw_head,
    reason_name, rst_stream_frame, settings_frame, window_update_frame,
};

/// Per-request options (what a gRPC client puts in the request headers, and how it frames).
#[derive(Clone, Debug)]
pub struct RequestOptions {
    /// `:authority`; `None` omits it (allowed: docs/protocol.md §2, RFC 9113 §8.3.1).
    pub authority: Option<String>,
    /// The raw `grpc-timeout` value, e.g. `"3S"`.
    pub timeout: Option<String>,
    /// `content-type`; `None` omits it.
    pub content_type: Option<String>,
    /// `:method`.
    pub method: String,
    /// Whether to send `te: trailers`.
    pub te_trailers: bool,
    /// Extra header fields, sent after the standard ones, in order.
    pub extra_headers: Vec<(String, String)>,
    /// The largest DATA payload per frame (before padding); `None`: the server's max frame.
    pub data_chunk: Option<usize>,
    /// Pad every HEADERS and DATA frame with this many octets (PADDED flag, §6.1, §6.2).
    pub padding: Option<u8>,
    /// Set the PRIORITY flag on HEADERS (5 extra octets, §6.2).
    pub priority: bool,
    /// Split the header block into HEADERS + CONTINUATION fragments of this many octets.
    pub header_chunk: Option<usize>,
}

impl RequestOptions {
    /// What kube-apiserver's grpc-go client sends: `:authority` as given (kube ≥ 1.32 v2:
    /// `localhost`; older clients and v1: the percent-encoded socket path) and the call's
    /// deadline as `grpc-timeout` in milliseconds.
    pub fn apiserver(authority: &str, timeout: Duration) -> Self {
        Self {
            authority: Some(String::from(authority)),
            timeout: Some(alloc::format!("{}m", timeout.as_millis().min(99_999_999))),
            ..Self::default()
        }
    }
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            authority: Some(String::from("localhost")),
            timeout: None,
            content_type: Some(String::from("application/grpc")),
            method: String::from("POST"),
            te_trailers: true,
            extra_headers: Vec::new(),
            data_chunk: None,
            padding: None,
            priority: false,
            header_chunk: None,
        }
    }
}

/// A finished stream as the client saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientResponse {
    /// `:status` of the first header block.
    pub http_status: Option<u16>,
    /// Every field of every header block received (headers, then trailers), in order.
    pub headers: Vec<(String, String)>,
    /// The response message without the 5-byte prefix; `None` when no DATA arrived.
    pub message: Option<Vec<u8>>,
    /// `grpc-status`.
    pub grpc_status: Option<u8>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// The server's RST_STREAM error code, if it reset the stream.
    pub reset: Option<u32>,
    /// The number of header blocks received (1 for trailers-only, 2 for headers + trailers).
    pub header_blocks: usize,
}

/// One frame the server sent, for transcript assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSeen {
    /// Frame type octet.
    pub kind: u8,
    /// Flags octet.
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
    /// Payload length.
    pub len: u32,
    /// The payload as sent (padding included).
    pub payload: Vec<u8>,
}

#[derive(Default)]
struct StreamRx {
    resp: ClientResponse,
    data: Vec<u8>,
    /// Finished for the client (server END_STREAM or RST_STREAM, or cancelled by us).
    done: bool,
    /// Finished by the server (END_STREAM or RST_STREAM): it must send nothing more on it.
    server_done: bool,
    /// The server sent END_STREAM.
    server_ended: bool,
}

/// What the server has sent on one stream so far (see [`TestClient::streams`]).
#[derive(Clone, Copy, Debug)]
pub struct StreamView<'a> {
    /// The response as parsed so far (`message` is filled in only by `take_response`).
    pub response: &'a ClientResponse,
    /// Every DATA octet received (gRPC-framed, padding stripped).
    pub data: &'a [u8],
    /// Whether the server ended the stream with END_STREAM.
    pub ended: bool,
}

struct StreamTx {
    /// DATA payload still to send (gRPC prefix + message).
    body: VecDeque<u8>,
    send_window: i64,
    chunk: Option<usize>,
    padding: Option<u8>,
}

/// See the module docs.
pub struct TestClient {
    out: Vec<u8>,
    inbuf: Vec<u8>,
    decoder: Decoder,
    encoder: Encoder,
    next_stream: u32,
    rx: BTreeMap<StreamId, StreamRx>,
    tx: BTreeMap<StreamId, StreamTx>,
    partial: Option<(StreamId, Vec<u8>, bool)>,
    conn_send_window: i64,
    peer_initial_window: u32,
    peer_max_frame: u32,
    goaway: Option<(u32, u32)>,
    /// Whether to return flow-control credit for every DATA octet received (default true).
    pub auto_window_update: bool,
    /// Whether to keep every frame received in [`TestClient::frames`] (default true).
    pub record_frames: bool,
    /// Every frame head received, in order.
    pub frames: Vec<FrameSeen>,
    /// Settings received from the server, in order (identifier, value).
    pub settings: Vec<(u16, u32)>,
    /// SETTINGS ACKs received.
    pub settings_acks: usize,
    /// PING ACK payloads received.
    pub ping_acks: Vec<[u8; 8]>,
    /// WINDOW_UPDATEs received (stream, increment).
    pub window_updates: Vec<(u32, u32)>,
    /// Anything the server sent that RFC 9113 forbids (descriptions).
    pub protocol_errors: Vec<&'static str>,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    /// A client with nothing queued; call [`TestClient::handshake`] first.
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            inbuf: Vec::new(),
            decoder: Decoder::new(4096),
            encoder: Encoder::new(),
            next_stream: 1,
            rx: BTreeMap::new(),
            tx: BTreeMap::new(),
            partial: None,
            conn_send_window: i64::from(frame::DEFAULT_WINDOW),
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::MIN_MAX_FRAME_SIZE,
            goaway: None,
            auto_window_update: true,
            record_frames: true,
            frames: Vec::new(),
            settings: Vec::new(),
            settings_acks: 0,
            ping_acks: Vec::new(),
            window_updates: Vec::new(),
            protocol_errors: Vec::new(),
        }
    }

    /// A client whose preface and SETTINGS are already queued (see
    /// [`TestClient::pending_output`]).
    pub fn connecting() -> Self {
        let mut c = Self::new();
        c.out = c.handshake();
        c
    }

    /// The client connection preface (RFC 9113 §3.4) and an empty SETTINGS frame.
    pub fn handshake(&mut self) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        settings::write_settings(&mut out, &[]);
        out
    }

    /// Reserves the next stream id (for tests that build the stream's frames by hand); the
    /// client will track its response.
    pub fn allocate_stream(&mut self) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 2;
        self.rx.insert(id, StreamRx::default());
        id
    }

    /// HPACK-encodes `fields` with this client's encoder (keeps the server's decoder in sync).
    pub fn encode_block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in fields {
            self.encoder
                .encode_field(name.as_bytes(), value.as_bytes(), false, &mut block);
        }
        block
    }

    /// The request header block for `path` with `opts` (HPACK-encoded).
    pub fn request_block(&mut self, path: &str, opts: &RequestOptions) -> Vec<u8> {
        let mut fields: Vec<(&str, &str)> = Vec::with_capacity(8 + opts.extra_headers.len());
        fields.push((":method", &opts.method));
        fields.push((":scheme", "http"));
        fields.push((":path", path));
        if let Some(a) = &opts.authority {
            fields.push((":authority", a));
        }
        if let Some(ct) = &opts.content_type {
            fields.push(("content-type", ct));
        }
        fields.push(("user-agent", "kms-plugin-test-client"));
        if opts.te_trailers {
            fields.push(("te", "trailers"));
        }
        if let Some(t) = &opts.timeout {
            fields.push(("grpc-timeout", t));
        }
        for (n, v) in &opts.extra_headers {
            fields.push((n, v));
        }
        self.encode_block(&fields)
    }

    /// Frames a header block as HEADERS (+ CONTINUATION when `opts.header_chunk` is set).
    pub fn headers_frames(
        &self,
        stream: StreamId,
        block: &[u8],
        end_stream: bool,
        opts: &RequestOptions,
    ) -> Vec<u8> {
        let chunk = opts.header_chunk.unwrap_or(usize::MAX).max(1);
        let first_len = block.len().min(chunk);
        let (first, mut rest) = block.split_at(first_len);
        let mut fl = if end_stream { flags::END_STREAM } else { 0 };
        if rest.is_empty() {
            fl |= flags::END_HEADERS;
        }
        let mut payload = Vec::new();
        if opts.priority {
            fl |= flags::PRIORITY;
            payload.extend_from_slice(&[0, 0, 0, 0, 15]);
        }
        payload.extend_from_slice(first);
        if let Some(pad) = opts.padding {
            fl |= flags::PADDED;
            payload = pad_payload(&payload, pad);
        }
        let mut out = Vec::new();
        frame::write_frame(&mut out, FrameKind::Headers, fl, stream, &payload);
        while !rest.is_empty() {
            let n = rest.len().min(chunk);
            let (part, tail) = rest.split_at(n);
            rest = tail;
            let fl = if rest.is_empty() {
                flags::END_HEADERS
            } else {
                0
            };
            frame::write_frame(&mut out, FrameKind::Continuation, fl, stream, part);
        }
        out
    }

    /// Starts a unary call: HEADERS now, then `message` with its gRPC prefix as DATA within
    /// the server's flow-control windows (the rest follows WINDOW_UPDATEs, see
    /// [`TestClient::pending_output`]). Returns the stream and the bytes to send now.
    pub fn unary(
        &mut self,
        path: &str,
        message: &[u8],
        opts: &RequestOptions,
    ) -> (StreamId, Vec<u8>) {
        self.unary_raw_body(path, &grpc_message(message), opts)
    }

    /// Like [`TestClient::unary`] but `body` is sent as the DATA payload verbatim (no gRPC
    /// prefix added), for tests of bad message framing. An empty body sends END_STREAM on
    /// the HEADERS frame.
    pub fn unary_raw_body(
        &mut self,
        path: &str,
        body: &[u8],
        opts: &RequestOptions,
    ) -> (StreamId, Vec<u8>) {
        let id = self.allocate_stream();
        let block = self.request_block(path, opts);
        let bytes = self.headers_frames(id, &block, body.is_empty(), opts);
        self.out.extend_from_slice(&bytes);
        if !body.is_empty() {
            self.tx.insert(
                id,
                StreamTx {
                    body: body.iter().copied().collect(),
                    send_window: i64::from(self.peer_initial_window),
                    chunk: opts.data_chunk,
                    padding: opts.padding,
                },
            );
            self.flush_data();
        }
        (id, core::mem::take(&mut self.out))
    }

    /// Resets `stream` with `code` (e.g. CANCEL = 8); returns the frame.
    pub fn cancel(&mut self, stream: StreamId, code: u32) -> Vec<u8> {
        self.tx.remove(&stream);
        if let Some(s) = self.rx.get_mut(&stream) {
            s.done = true;
        }
        rst_stream_frame(stream, code)
    }

    /// Sends queued DATA as far as the windows allow.
    fn flush_data(&mut self) {
        let mut finished = Vec::new();
        for (&id, s) in &mut self.tx {
            while !s.body.is_empty() {
                let window = self.conn_send_window.min(s.send_window);
                let pad = s.padding.map_or(0, |p| usize::from(p) + 1);
                let max = (self.peer_max_frame as usize).saturating_sub(pad);
                let room = usize::try_from(window).unwrap_or(0).saturating_sub(pad);
                let n = s
                    .body
                    .len()
                    .min(s.chunk.unwrap_or(usize::MAX).max(1))
                    .min(max)
                    .min(room);
                if n == 0 {
                    break;
                }
                let part: Vec<u8> = s.body.drain(..n).collect();
                let end = s.body.is_empty();
                let mut fl = if end { flags::END_STREAM } else { 0 };
                let payload = match s.padding {
                    Some(p) => {
                        fl |= flags::PADDED;
                        pad_payload(&part, p)
                    }
                    None => part,
                };
                let used = i64::try_from(payload.len()).unwrap_or(i64::MAX);
                frame::write_frame(&mut self.out, FrameKind::Data, fl, id, &payload);
                self.conn_send_window -= used;
                s.send_window -= used;
                if end {
                    finished.push(id);
                }
            }
        }
        for id in finished {
            self.tx.remove(&id);
        }
    }

    /// Bytes the client owes the server: SETTINGS/PING ACKs, WINDOW_UPDATEs, request DATA
    /// unblocked by the server's WINDOW_UPDATEs.
    pub fn pending_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// Queues raw bytes behind whatever is pending (hand-built or malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Whether bytes are waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Streams whose response is complete and not taken yet, in increasing order.
    pub fn finished_streams(&self) -> Vec<StreamId> {
        self.rx
            .iter()
            .filter(|(_, s)| s.done)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Every stream the server has written about and that was not taken yet, in increasing
    /// order, without consuming anything.
    pub fn streams(&self) -> impl Iterator<Item = (StreamId, StreamView<'_>)> {
        self.rx.iter().map(|(&id, s)| {
            (
                id,
                StreamView {
                    response: &s.resp,
                    data: &s.data,
                    ended: s.server_ended,
                },
            )
        })
    }

    /// Whether octets of an incomplete frame are waiting for the rest.
    pub fn has_partial_frame(&self) -> bool {
        !self.inbuf.is_empty()
    }

    /// Calls started and not finished yet.
    pub fn outstanding(&self) -> usize {
        self.rx.values().filter(|s| !s.done).count()
    }

    /// Request DATA octets still waiting for flow-control credit.
    pub fn blocked_bytes(&self) -> usize {
        self.tx.values().map(|s| s.body.len()).sum()
    }

    /// The last GOAWAY received: (last stream id, error code).
    pub fn goaway(&self) -> Option<(u32, u32)> {
        self.goaway
    }

    /// A finished stream's response (removed); `None` while the stream is still open.
    pub fn take_response(&mut self, stream: StreamId) -> Option<ClientResponse> {
        if !self.rx.get(&stream)?.done {
            return None;
        }
        let mut s = self.rx.remove(&stream)?;
        if s.resp.header_blocks > 0 || !s.data.is_empty() {
            s.resp.message = receive::decode_messages(&s.data, &mut self.protocol_errors);
        }
        Some(s.resp)
    }

    /// Whether `stream` has finished (END_STREAM or RST_STREAM received).
    pub fn is_done(&self, stream: StreamId) -> bool {
        self.rx.get(&stream).is_some_and(|s| s.done)
    }
}
