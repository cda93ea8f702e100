//! In-memory HTTP/2 + gRPC test client built from the core's own frame and HPACK encoders,
//! and [`Pair`], which drives one [`Connection`] against it with a virtual clock.
//!
//! The client speaks h2c with prior knowledge like grpc-go: preface, SETTINGS, unary
//! requests with any `:authority`, and flow control on both sides (it honours the server's
//! windows when sending and replenishes them when receiving).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use crate::conn::{ConnEvent, Connection, TransportConfig};
use crate::grpc;
use crate::h2::{
    self, FrameHead, FrameKind, HEAD_LEN, Reason, Setting, SettingId, control, flags, settings,
};
use crate::hpack::{Decoder, Encoder};
use crate::rpc::{Request, Response, StreamId};
use crate::time::Timestamp;

/// How to shape one request.
#[derive(Clone, Debug)]
pub struct RequestOptions {
    /// `:authority`; `None` omits it.
    pub authority: Option<String>,
    /// `grpc-timeout` value, sent verbatim.
    pub timeout: Option<String>,
    /// `content-type`; `None` omits it.
    pub content_type: Option<String>,
    /// `:method`.
    pub method: String,
    /// Extra fields after the standard ones, sent verbatim (any case, any order).
    pub extra_headers: Vec<(String, String)>,
    /// Largest DATA payload per frame (also capped by the server's MAX_FRAME_SIZE).
    pub chunk: usize,
    /// Pad every DATA and HEADERS frame with this many bytes (PADDED flag).
    pub padding: Option<u8>,
    /// Split the header block into HEADERS + CONTINUATION frames of this many bytes.
    pub header_fragment: Option<usize>,
    /// Send the message bytes verbatim, without the 5-byte gRPC prefix.
    pub raw_body: bool,
    /// Whether to end the stream after the body (false leaves it open).
    pub end_stream: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            authority: Some("localhost".to_string()),
            timeout: None,
            content_type: Some("application/grpc".to_string()),
            method: "POST".to_string(),
            extra_headers: vec![("te".to_string(), "trailers".to_string())],
            chunk: 16_384,
            padding: None,
            header_fragment: None,
            raw_body: false,
            end_stream: true,
        }
    }
}

/// A response as the client saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientResponse {
    /// `:status` of the first HEADERS.
    pub http_status: Option<u16>,
    /// All decoded fields of all header blocks, in order (names and values as text).
    pub headers: Vec<(String, String)>,
    /// The gRPC message with its prefix removed, if DATA arrived.
    pub message: Option<Vec<u8>>,
    /// `grpc-status`.
    pub grpc_status: Option<u8>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// The RST_STREAM code, if the server reset the stream.
    pub reset: Option<u32>,
    /// Whether END_STREAM or RST_STREAM arrived.
    pub complete: bool,
    /// Raw DATA bytes (prefix included).
    pub data: Vec<u8>,
}

struct Outgoing {
    stream: StreamId,
    data: Vec<u8>,
    sent: usize,
    chunk: usize,
    padding: Option<u8>,
    end_stream: bool,
}

/// The in-memory client. Bytes it wants to send accumulate in [`TestClient::pending_output`].
pub struct TestClient {
    encoder: Encoder,
    decoder: Decoder,
    next_stream: StreamId,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    responses: BTreeMap<StreamId, ClientResponse>,
    goaway: Option<(u32, u32)>,
    /// Settings the server sent, in order.
    pub server_settings: Vec<(u16, u32)>,
    /// How many SETTINGS ACKs the server sent.
    pub settings_acks: usize,
    /// PING ACK payloads received.
    pub ping_acks: Vec<[u8; 8]>,
    /// Every frame header received, in order.
    pub frames: Vec<FrameHead>,
    /// Whether to replenish the server's windows as DATA arrives (default true).
    pub auto_window_update: bool,
    conn_send_window: i64,
    stream_windows: BTreeMap<StreamId, i64>,
    initial_window: i64,
    server_max_frame: usize,
    outgoing: Vec<Outgoing>,
    block: Vec<u8>,
    block_stream: Option<(StreamId, bool)>,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    /// A client whose preface and empty SETTINGS are already queued in `pending_output`.
    pub fn new() -> Self {
        let mut out = h2::PREFACE.to_vec();
        settings::encode(&mut out, &[]);
        Self {
            encoder: Encoder::new(),
            decoder: Decoder::new(4096),
            next_stream: 1,
            inbuf: Vec::new(),
            out,
            responses: BTreeMap::new(),
            goaway: None,
            server_settings: Vec::new(),
            settings_acks: 0,
            ping_acks: Vec::new(),
            frames: Vec::new(),
            auto_window_update: true,
            conn_send_window: i64::from(h2::DEFAULT_WINDOW),
            stream_windows: BTreeMap::new(),
            initial_window: i64::from(h2::DEFAULT_WINDOW),
            server_max_frame: h2::MIN_MAX_FRAME_SIZE as usize,
            outgoing: Vec::new(),
            block: Vec::new(),
            block_stream: None,
        }
    }

    /// The preface + SETTINGS bytes (and anything else queued).
    pub fn handshake(&mut self) -> Vec<u8> {
        self.pending_output()
    }

    /// Takes every byte the client wants to send.
    pub fn pending_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// Queues raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// The next stream id the client will use.
    pub fn next_stream_id(&self) -> StreamId {
        self.next_stream
    }

    /// Reserves the next stream id for frames a test builds by hand.
    pub fn alloc_stream(&mut self) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 2;
        id
    }

    /// Builds the request header block for `path` with `opts`.
    pub fn header_block(&mut self, path: &str, opts: &RequestOptions) -> Vec<u8> {
        let mut block = Vec::new();
        let e = &mut self.encoder;
        e.encode_field(b":method", opts.method.as_bytes(), false, &mut block);
        e.encode_field(b":scheme", b"http", false, &mut block);
        e.encode_field(b":path", path.as_bytes(), false, &mut block);
        if let Some(a) = &opts.authority {
            e.encode_field(b":authority", a.as_bytes(), false, &mut block);
        }
        if let Some(ct) = &opts.content_type {
            e.encode_field(b"content-type", ct.as_bytes(), false, &mut block);
        }
        e.encode_field(b"user-agent", b"grpc-go/1.70.0", false, &mut block);
        if let Some(t) = &opts.timeout {
            e.encode_field(b"grpc-timeout", t.as_bytes(), false, &mut block);
        }
        for (n, v) in &opts.extra_headers {
            e.encode_field(n.as_bytes(), v.as_bytes(), false, &mut block);
        }
        block
    }

    /// Queues a unary request; returns its stream id and the bytes queued so far (DATA beyond
    /// the server's windows waits for WINDOW_UPDATE and is queued by `receive`).
    pub fn unary(
        &mut self,
        path: &str,
        message: &[u8],
        opts: &RequestOptions,
    ) -> (StreamId, Vec<u8>) {
        let stream = self.next_stream;
        self.next_stream += 2;
        let block = self.header_block(path, opts);
        self.stream_windows.insert(stream, self.initial_window);
        self.responses.insert(stream, ClientResponse::default());
        let mut body = Vec::with_capacity(message.len() + 5);
        if !opts.raw_body {
            body.extend_from_slice(&grpc::encode_prefix(message.len() as u32));
        }
        body.extend_from_slice(message);
        let end_on_headers = body.is_empty() && opts.end_stream;
        self.write_headers(
            stream,
            &block,
            end_on_headers,
            opts.header_fragment,
            opts.padding,
        );
        if !body.is_empty() {
            self.outgoing.push(Outgoing {
                stream,
                data: body,
                sent: 0,
                chunk: opts.chunk.max(1),
                padding: opts.padding,
                end_stream: opts.end_stream,
            });
            self.flush_outgoing();
        }
        (stream, self.pending_output())
    }

    /// Writes HEADERS (+ CONTINUATION) carrying `block`.
    pub fn write_headers(
        &mut self,
        stream: StreamId,
        block: &[u8],
        end_stream: bool,
        fragment: Option<usize>,
        padding: Option<u8>,
    ) {
        let size = fragment.unwrap_or(usize::MAX).max(1);
        let mut pieces = block.chunks(size);
        let first = pieces.next().unwrap_or(&[]);
        let rest: Vec<&[u8]> = pieces.collect();
        let mut fl = if end_stream { flags::END_STREAM } else { 0 };
        if rest.is_empty() {
            fl |= flags::END_HEADERS;
        }
        self.write_padded(FrameKind::Headers, fl, stream, first, padding);
        for (i, piece) in rest.iter().enumerate() {
            let fl = if i + 1 == rest.len() {
                flags::END_HEADERS
            } else {
                0
            };
            h2::encode_frame(&mut self.out, FrameKind::Continuation, fl, stream, piece);
        }
    }

    fn write_padded(
        &mut self,
        kind: FrameKind,
        mut fl: u8,
        stream: StreamId,
        data: &[u8],
        padding: Option<u8>,
    ) {
        match padding {
            None => h2::encode_frame(&mut self.out, kind, fl, stream, data),
            Some(pad) => {
                fl |= flags::PADDED;
                let mut payload = vec![pad];
                payload.extend_from_slice(data);
                payload.resize(payload.len() + usize::from(pad), 0);
                h2::encode_frame(&mut self.out, kind, fl, stream, &payload);
            }
        }
    }

    /// Queues any DATA the windows now allow.
    fn flush_outgoing(&mut self) {
        let mut outgoing = core::mem::take(&mut self.outgoing);
        for o in &mut outgoing {
            loop {
                let remaining = o.data.len() - o.sent;
                let overhead = o.padding.map_or(0, |p| 1 + usize::from(p));
                let window = self
                    .conn_send_window
                    .min(*self.stream_windows.get(&o.stream).unwrap_or(&0));
                let cap = o.chunk.min(self.server_max_frame.saturating_sub(overhead));
                let n = remaining.min(cap);
                let cost = i64::try_from(n + overhead).unwrap_or(i64::MAX);
                if remaining == 0 || cost > window || (n == 0 && remaining > 0) {
                    break;
                }
                let last = o.sent + n == o.data.len();
                let fl = if last && o.end_stream {
                    flags::END_STREAM
                } else {
                    0
                };
                let chunk = o.data.get(o.sent..o.sent + n).unwrap_or_default().to_vec();
                self.write_padded(FrameKind::Data, fl, o.stream, &chunk, o.padding);
                o.sent += n;
                self.conn_send_window -= cost;
                if let Some(w) = self.stream_windows.get_mut(&o.stream) {
                    *w -= cost;
                }
                if last {
                    break;
                }
            }
        }
        outgoing.retain(|o| o.sent < o.data.len());
        self.outgoing = outgoing;
    }

    /// Parses server bytes (any chunking): records responses, ACKs SETTINGS, applies
    /// WINDOW_UPDATE, replenishes windows for DATA.
    pub fn receive(&mut self, server_bytes: &[u8]) {
        self.inbuf.extend_from_slice(server_bytes);
        let mut at = 0;
        while let Some(head) = self.inbuf.get(at..).and_then(FrameHead::parse) {
            let end = at + HEAD_LEN + head.length as usize;
            let Some(payload) = self.inbuf.get(at + HEAD_LEN..end).map(<[u8]>::to_vec) else {
                break;
            };
            at = end;
            self.on_frame(head, &payload);
        }
        self.inbuf.drain(..at);
        self.flush_outgoing();
    }

    fn on_frame(&mut self, head: FrameHead, payload: &[u8]) {
        self.frames.push(head);
        match head.kind {
            FrameKind::Settings if head.has(flags::ACK) => self.settings_acks += 1,
            FrameKind::Settings => {
                if let Ok(pairs) = settings::parse(&head, payload) {
                    for Setting { id, value } in pairs {
                        self.server_settings.push((id.as_u16(), value));
                        match id {
                            SettingId::InitialWindowSize => {
                                let delta = i64::from(value) - self.initial_window;
                                self.initial_window = i64::from(value);
                                for w in self.stream_windows.values_mut() {
                                    *w += delta;
                                }
                            }
                            SettingId::MaxFrameSize => self.server_max_frame = value as usize,
                            _ => {}
                        }
                    }
                }
                settings::encode_ack(&mut self.out);
            }
            FrameKind::WindowUpdate => {
                if let Ok(inc) = control::parse_window_update(&head, payload) {
                    if head.stream == 0 {
                        self.conn_send_window += i64::from(inc);
                    } else if let Some(w) = self.stream_windows.get_mut(&head.stream) {
                        *w += i64::from(inc);
                    }
                }
            }
            FrameKind::Ping => {
                if let Ok(data) = control::parse_ping(&head, payload) {
                    if head.has(flags::ACK) {
                        self.ping_acks.push(data);
                    } else {
                        control::encode_ping(&mut self.out, data, true);
                    }
                }
            }
            FrameKind::GoAway => {
                if let Ok((last, reason)) = control::parse_goaway(&head, payload) {
                    self.goaway = Some((last, reason.0));
                }
            }
            FrameKind::RstStream => {
                if let Ok(reason) = control::parse_rst_stream(&head, payload) {
                    let r = self.responses.entry(head.stream).or_default();
                    r.reset = Some(reason.0);
                    r.complete = true;
                }
                self.outgoing.retain(|o| o.stream != head.stream);
            }
            FrameKind::Data => {
                let data = h2::padding::strip_padding(&head, payload).unwrap_or_default();
                let r = self.responses.entry(head.stream).or_default();
                r.data.extend_from_slice(data);
                if head.has(flags::END_STREAM) {
                    r.complete = true;
                }
                if self.auto_window_update && !payload.is_empty() {
                    control::encode_window_update(&mut self.out, 0, payload.len() as u32);
                    if !head.has(flags::END_STREAM) {
                        control::encode_window_update(
                            &mut self.out,
                            head.stream,
                            payload.len() as u32,
                        );
                    }
                }
            }
            FrameKind::Headers => {
                let frag = h2::padding::headers_fragment(&head, payload).unwrap_or_default();
                self.block.clear();
                self.block.extend_from_slice(frag);
                if head.has(flags::END_HEADERS) {
                    self.finish_block(head.stream, head.has(flags::END_STREAM));
                } else {
                    self.block_stream = Some((head.stream, head.has(flags::END_STREAM)));
                }
            }
            FrameKind::Continuation => {
                self.block.extend_from_slice(payload);
                if head.has(flags::END_HEADERS) {
                    if let Some((s, end)) = self.block_stream.take() {
                        self.finish_block(s, end);
                    }
                }
            }
            _ => {}
        }
    }

    fn finish_block(&mut self, stream: StreamId, end_stream: bool) {
        let mut fields = Vec::new();
        let block = core::mem::take(&mut self.block);
        let _ = self.decoder.decode(&block, &mut |n, v, _| {
            fields.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        });
        let r = self.responses.entry(stream).or_default();
        for (n, v) in &fields {
            match n.as_str() {
                ":status" => r.http_status = v.parse().ok(),
                "grpc-status" => r.grpc_status = v.parse().ok(),
                "grpc-message" => {
                    r.grpc_message = Some(
                        String::from_utf8_lossy(&grpc::percent_decode(v.as_bytes())).into_owned(),
                    );
                }
                _ => {}
            }
        }
        r.headers.extend(fields);
        if end_stream {
            r.complete = true;
        }
    }

    /// The response on `stream` once complete (END_STREAM or RST_STREAM), removing it.
    pub fn take_response(&mut self, stream: StreamId) -> Option<ClientResponse> {
        if !self.responses.get(&stream)?.complete {
            return None;
        }
        let mut r = self.responses.remove(&stream)?;
        if let Some(rest) = r.data.get(grpc::PREFIX_LEN..) {
            r.message = Some(rest.to_vec());
        }
        Some(r)
    }

    /// The server's GOAWAY, as (last stream id, error code).
    pub fn goaway(&self) -> Option<(u32, u32)> {
        self.goaway
    }

    /// A raw frame.
    pub fn frame(kind: u8, frame_flags: u8, stream: StreamId, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        h2::encode_frame(
            &mut out,
            FrameKind::from_u8(kind),
            frame_flags,
            stream,
            payload,
        );
        out
    }

    /// Queues a PING.
    pub fn ping(&mut self, data: [u8; 8]) {
        control::encode_ping(&mut self.out, data, false);
    }

    /// Queues RST_STREAM.
    pub fn reset(&mut self, stream: StreamId, reason: Reason) {
        control::encode_rst_stream(&mut self.out, stream, reason);
        self.outgoing.retain(|o| o.stream != stream);
    }

    /// Queues GOAWAY.
    pub fn send_goaway(&mut self, last_stream: StreamId, reason: Reason) {
        control::encode_goaway(&mut self.out, last_stream, reason);
    }
}

/// A handler answers a request now (`Some`) or never (`None`: left in flight).
pub type Handler<'a> = dyn FnMut(&Request) -> Option<Response> + 'a;

/// Echoes the request message back with OK.
pub fn echo(req: &Request) -> Option<Response> {
    Some(Response::ok(crate::secret::SecretBytes::copy_from(
        req.message.expose(),
    )))
}

/// One [`Connection`] and one [`TestClient`] wired together with a virtual clock.
pub struct Pair {
    /// The server side.
    pub conn: Connection,
    /// The client side.
    pub client: TestClient,
    /// Virtual time.
    pub now: Timestamp,
    /// Every event the connection emitted.
    pub events: Vec<ConnEvent>,
    /// Every stream `poll_cancelled` reported.
    pub cancelled: Vec<StreamId>,
    /// Requests the handler did not answer (stream ids).
    pub parked: Vec<StreamId>,
    /// Every byte the server sent.
    pub server_bytes: Vec<u8>,
    /// Feed client bytes one at a time (exercises partial-frame buffering).
    pub byte_at_a_time: bool,
}

impl Pair {
    /// A connection with `cfg`, handshake completed (SETTINGS exchanged both ways).
    pub fn new(cfg: &TransportConfig) -> Self {
        let mut pair = Self::unconnected(cfg);
        pair.drive(&mut |_| None);
        pair
    }

    /// A connection and a client whose preface is queued but not yet delivered.
    pub fn unconnected(cfg: &TransportConfig) -> Self {
        Self {
            conn: Connection::new(cfg, Timestamp::ZERO),
            client: TestClient::new(),
            now: Timestamp::ZERO,
            events: Vec::new(),
            cancelled: Vec::new(),
            parked: Vec::new(),
            server_bytes: Vec::new(),
            byte_at_a_time: false,
        }
    }

    /// Moves bytes both ways and answers requests with `handler` until nothing moves.
    pub fn drive(&mut self, handler: &mut Handler<'_>) {
        for _ in 0..10_000 {
            let mut progressed = false;
            let input = self.client.pending_output();
            if !input.is_empty() {
                progressed = true;
                if self.byte_at_a_time {
                    for b in &input {
                        self.conn.handle_bytes(core::slice::from_ref(b), self.now);
                    }
                } else {
                    self.conn.handle_bytes(&input, self.now);
                }
            }
            while let Some(req) = self.conn.poll_request() {
                progressed = true;
                match handler(&req) {
                    Some(resp) => self.conn.respond(req.stream, resp, self.now),
                    None => self.parked.push(req.stream),
                }
            }
            let mut out = Vec::new();
            if self.conn.poll_transmit(&mut out) {
                progressed = true;
                self.server_bytes.extend_from_slice(&out);
                self.client.receive(&out);
            }
            while let Some(e) = self.conn.poll_event() {
                self.events.push(e);
            }
            while let Some(s) = self.conn.poll_cancelled() {
                self.cancelled.push(s);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Sends one unary request, drives, and returns its response (if complete).
    pub fn unary(
        &mut self,
        path: &str,
        message: &[u8],
        opts: &RequestOptions,
        handler: &mut Handler<'_>,
    ) -> Option<ClientResponse> {
        let (stream, bytes) = self.client.unary(path, message, opts);
        self.client.send_raw(&bytes);
        self.drive(handler);
        self.client.take_response(stream)
    }

    /// Delivers raw client bytes and drives with no handler.
    pub fn send(&mut self, bytes: &[u8]) {
        self.client.send_raw(bytes);
        self.drive(&mut |_| None);
    }

    /// Advances the virtual clock and fires timers.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
        self.conn.handle_timeout(self.now);
        self.drive(&mut |_| None);
    }

    /// Whether an event matching `f` was emitted.
    pub fn saw(&self, f: impl Fn(&ConnEvent) -> bool) -> bool {
        self.events.iter().any(f)
    }
}
