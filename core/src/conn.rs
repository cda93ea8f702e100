//! One server-side HTTP/2 connection (RFC 9113) over h2c prior knowledge, carrying unary gRPC.
//!
//! [`Connection`] turns bytes into complete [`Request`]s and [`Response`]s into bytes. It
//! implements what a gRPC unary server needs and all of RFC 9113's MUSTs for it: the preface
//! and SETTINGS exchange, flow control both ways, HEADERS + CONTINUATION, padding, priority,
//! stream states, GOAWAY and RST_STREAM both ways, and a cap on everything it buffers. Peer
//! misbehaviour never panics or returns an error: it becomes RST_STREAM (stream errors),
//! GOAWAY (connection errors, after which [`Connection::is_closed`] is true), a gRPC status,
//! and a [`ConnEvent`].

mod closed;
mod config;
mod control;
mod head;
mod input;
mod output;
mod stream;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::mem;

use zeroize::Zeroize;

use closed::{ClosedBy, ClosedStreams};
pub use config::TransportConfig;
use stream::{Stream, StreamInput, StreamState};

use crate::h2::frame::{self, FrameHead, FrameKind, HEAD_LEN, PREFACE, flags};
use crate::h2::reason::Reason;
use crate::h2::settings::{self, PeerSettings};
use crate::hpack::{Decoder, Encoder};
use crate::rpc::{Code, Request, Response, StreamId};
use crate::time::{Timestamp, earliest};

/// Something notable that happened on a connection (never holds secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// We detected a protocol error: a stream error (RST_STREAM sent) when `stream` is set,
    /// else a connection error (GOAWAY sent, connection closing).
    ProtocolError {
        /// The stream, for stream errors.
        stream: Option<StreamId>,
        /// The error code sent.
        reason: Reason,
        /// What was wrong.
        detail: &'static str,
    },
    /// A request was answered by the transport itself (malformed for gRPC, too large, ...).
    RequestRejected {
        /// The stream.
        stream: StreamId,
        /// The gRPC status sent.
        code: Code,
    },
    /// The peer sent GOAWAY.
    PeerGoAway {
        /// Its error code.
        reason: Reason,
        /// The last stream it will process.
        last_stream: u32,
    },
    /// The peer reset a stream.
    StreamReset {
        /// The stream.
        stream: StreamId,
        /// Its error code.
        reason: Reason,
    },
    /// The connection is closed (EOF, a connection error, a timeout or the end of shutdown).
    Closed {
        /// Why.
        reason: &'static str,
    },
}

/// The connection's phase (RFC 9113 §3.4, §6.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the 24-octet client preface; `matched` octets seen so far.
    ExpectPreface { matched: usize },
    /// The preface arrived; the first frame must be SETTINGS (§3.4).
    ExpectSettings,
    /// Exchanging frames.
    Open,
    /// We sent GOAWAY(NO_ERROR) naming `last_stream`: streams up to it finish, then we close.
    Draining {
        force_at: Timestamp,
        /// The last-stream-id we sent; a later GOAWAY must not name a higher one (§6.8).
        last_stream: StreamId,
    },
    /// Done: only the queued output remains to be flushed.
    Closed,
}

/// A header block being assembled from HEADERS + CONTINUATION (§6.10).
struct PendingBlock {
    stream: StreamId,
    end_stream: bool,
    /// The HEADERS frame's PRIORITY made the stream depend on itself (RFC 9113 §5.3.1).
    self_dependent: bool,
    continuations: u32,
    fragment: Vec<u8>,
}

/// One HTTP/2 server connection. See the module docs.
pub struct Connection {
    config: TransportConfig,
    phase: Phase,
    peer: PeerSettings,
    decoder: Decoder,
    encoder: Encoder,
    /// Unparsed input (a partial frame); at most one frame head + `max_frame_size`.
    inbuf: Vec<u8>,
    /// Output not yet taken by `poll_transmit`.
    out: Vec<u8>,
    streams: BTreeMap<StreamId, Stream>,
    /// Highest client stream id seen (§5.1.1: new ids must be larger).
    last_stream: StreamId,
    pending_block: Option<PendingBlock>,
    /// Our connection receive window and the octets consumed since the last WINDOW_UPDATE.
    conn_recv_window: i64,
    /// The peer's connection window for our DATA.
    conn_send_window: i64,
    /// Request body octets buffered across streams.
    buffered: usize,
    requests: VecDeque<Request>,
    cancelled: VecDeque<StreamId>,
    events: VecDeque<ConnEvent>,
    in_flight: usize,
    handshake_deadline: Option<Timestamp>,
    settings_ack_deadline: Option<Timestamp>,
    resets_window_start: Timestamp,
    resets_in_window: u32,
    /// The latest time passed in (for checks deep in frame handling).
    now: Timestamp,
    peer_goaway: bool,
    /// Recently closed streams and who closed them (§5.1 "closed").
    closed: ClosedStreams,
}

impl Connection {
    /// A new connection; our SETTINGS (the server preface, §3.4) and a connection
    /// WINDOW_UPDATE are queued at once. `config` must have passed `validate`.
    pub fn new(config: &TransportConfig, now: Timestamp) -> Self {
        let mut out = Vec::with_capacity(256);
        let mut entries = alloc::vec![
            (
                settings::id::MAX_CONCURRENT_STREAMS,
                config.max_concurrent_streams
            ),
            (
                settings::id::INITIAL_WINDOW_SIZE,
                config.initial_window_size
            ),
            (
                settings::id::MAX_HEADER_LIST_SIZE,
                config.max_header_list_size
            ),
        ];
        if config.max_frame_size != frame::MIN_MAX_FRAME_SIZE {
            entries.push((settings::id::MAX_FRAME_SIZE, config.max_frame_size));
        }
        if config.header_table_size != 4096 {
            entries.push((settings::id::HEADER_TABLE_SIZE, config.header_table_size));
        }
        settings::write_settings(&mut out, &entries);
        let extra = config
            .connection_window_size
            .saturating_sub(frame::DEFAULT_WINDOW);
        if extra > 0 {
            frame::write_window_update(&mut out, 0, extra);
        }
        Self {
            config: config.clone(),
            phase: Phase::ExpectPreface { matched: 0 },
            peer: PeerSettings::default(),
            // Until our SETTINGS are acknowledged the peer may use the default table size
            // (RFC 9113 §6.5.3); a lower configured limit applies from the ACK on.
            decoder: Decoder::new(
                (config.header_table_size as usize).max(crate::hpack::DEFAULT_TABLE_SIZE),
            ),
            encoder: Encoder::new(),
            inbuf: Vec::new(),
            out,
            streams: BTreeMap::new(),
            last_stream: 0,
            pending_block: None,
            conn_recv_window: i64::from(config.connection_window_size),
            conn_send_window: i64::from(frame::DEFAULT_WINDOW),
            buffered: 0,
            requests: VecDeque::new(),
            cancelled: VecDeque::new(),
            events: VecDeque::new(),
            in_flight: 0,
            handshake_deadline: Some(now.saturating_add(config.handshake_timeout)),
            settings_ack_deadline: Some(now.saturating_add(config.settings_timeout)),
            resets_window_start: now,
            resets_in_window: 0,
            now,
            peer_goaway: false,
            closed: ClosedStreams::default(),
        }
    }

    /// Bytes read from the socket, in any chunking.
    pub fn handle_bytes(&mut self, input: &[u8], now: Timestamp) {
        if self.phase == Phase::Closed {
            return;
        }
        self.now = self.now.max(now);
        if self.inbuf.is_empty() {
            // Fast path: parse straight from the caller's buffer, keep only a partial frame.
            let used = self.process(input, now);
            if self.phase != Phase::Closed {
                self.inbuf
                    .extend_from_slice(input.get(used..).unwrap_or_default());
            }
        } else {
            // Partial frames may hold request plaintext: grow without leaving copies behind.
            extend_wiping(&mut self.inbuf, input);
            let mut buf = mem::take(&mut self.inbuf);
            let used = self.process(&buf, now);
            buf[..used].zeroize();
            buf.drain(..used);
            if self.phase == Phase::Closed {
                buf.zeroize();
            } else {
                self.inbuf = buf;
            }
        }
    }

    /// The peer closed its side: the connection ends (handed-out requests are cancelled).
    pub fn handle_eof(&mut self, _now: Timestamp) {
        if self.phase != Phase::Closed {
            self.close("peer closed the connection");
        }
    }

    /// Fires due timers: handshake and SETTINGS acknowledgement timeouts (§6.5.3) and the end
    /// of a graceful shutdown. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        if self.handshake_deadline.is_some_and(|t| t <= now) {
            self.handshake_deadline = None;
            if matches!(
                self.phase,
                Phase::ExpectPreface { .. } | Phase::ExpectSettings
            ) {
                self.connection_error(
                    Reason::SETTINGS_TIMEOUT,
                    "no client preface/SETTINGS in time",
                );
                return;
            }
        }
        if self.settings_ack_deadline.is_some_and(|t| t <= now) {
            self.settings_ack_deadline = None;
            // §6.5.3: no ACK in time -> connection error SETTINGS_TIMEOUT.
            self.connection_error(
                Reason::SETTINGS_TIMEOUT,
                "our SETTINGS were not acknowledged",
            );
            return;
        }
        if let Phase::Draining { force_at, .. } = self.phase {
            if force_at <= now {
                self.close("shutdown grace period over");
            }
        }
    }

    /// The next complete, valid request.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// The next handed-out request whose stream is gone (reset by the peer, or the connection
    /// ended); its answer would be dropped.
    pub fn poll_cancelled(&mut self) -> Option<StreamId> {
        self.cancelled.pop_front()
    }

    /// Answers the request on `stream`; ignored if the stream is gone or already answered.
    pub fn respond(&mut self, stream: StreamId, response: Response, _now: Timestamp) {
        if self.phase == Phase::Closed {
            return;
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let Some(next) = s.state.next(StreamInput::Respond) else {
            return;
        };
        s.state = next;
        self.in_flight -= 1;
        self.queue_response(stream, 200, response);
        self.flush_streams();
        self.check_drained();
    }

    /// Appends all pending output to `buf`; whether anything was appended.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.out.is_empty() {
            return false;
        }
        if buf.is_empty() {
            mem::swap(buf, &mut self.out);
        } else {
            buf.extend_from_slice(&self.out);
            self.out.zeroize();
        }
        true
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// The earliest timer, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let draining = match self.phase {
            Phase::Draining { force_at, .. } => Some(force_at),
            Phase::Closed => return None,
            _ => None,
        };
        earliest(
            earliest(self.handshake_deadline, self.settings_ack_deadline),
            draining,
        )
    }

    /// Graceful shutdown: GOAWAY(NO_ERROR) with the last stream id we saw (§6.8); later
    /// streams are refused, earlier ones finish; closed when none remain, or forcibly after
    /// `shutdown_grace`.
    pub fn start_shutdown(&mut self, now: Timestamp) {
        match self.phase {
            Phase::Closed | Phase::Draining { .. } => {}
            Phase::ExpectPreface { .. } => self.close("shut down before the preface"),
            _ => {
                frame::write_goaway(&mut self.out, self.last_stream, Reason::NO_ERROR);
                self.phase = Phase::Draining {
                    force_at: now.saturating_add(self.config.shutdown_grace),
                    last_stream: self.last_stream,
                };
                self.check_drained();
            }
        }
    }

    /// Whether the connection is finished; the driver flushes `poll_transmit`, then closes.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the driver should keep reading (false under output backpressure or closed).
    pub fn wants_read(&self) -> bool {
        self.phase != Phase::Closed && self.out.len() < self.config.max_pending_output
    }

    /// Complete requests not yet answered: handed out by `poll_request` or queued for it.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Octets of a partial frame held between `handle_bytes` calls; never more than one
    /// frame head plus our SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2).
    pub fn buffered_input(&self) -> usize {
        self.inbuf.len()
    }

    /// Request body octets (gRPC prefixes included) held across streams; never more than
    /// `max_buffered_bytes` between calls.
    pub fn buffered_request_bytes(&self) -> usize {
        self.buffered
    }

    /// Octets queued for the socket and not yet taken by `poll_transmit`.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    // --- input --------------------------------------------------------------------------

    /// Parses as many whole frames from `data` as possible; returns the octets consumed.
    fn process(&mut self, data: &[u8], now: Timestamp) -> usize {
        let mut pos = 0;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            match self.phase {
                Phase::Closed => return data.len(),
                Phase::ExpectPreface { matched } => {
                    // §3.4: the client preface is exactly these 24 octets.
                    let want = &PREFACE[matched..];
                    let n = want.len().min(rest.len());
                    if rest[..n] != want[..n] {
                        self.connection_error(Reason::PROTOCOL_ERROR, "invalid connection preface");
                        return data.len();
                    }
                    pos += n;
                    if n == want.len() {
                        self.phase = Phase::ExpectSettings;
                    } else {
                        self.phase = Phase::ExpectPreface {
                            matched: matched + n,
                        };
                        return pos;
                    }
                }
                _ => {
                    let Some(head_bytes) = rest.first_chunk::<HEAD_LEN>() else {
                        return pos;
                    };
                    let head = FrameHead::parse(head_bytes);
                    if let Err((reason, detail)) = self.check_head(&head) {
                        self.connection_error(reason, detail);
                        return data.len();
                    }
                    let end = HEAD_LEN + head.len as usize;
                    let Some(payload) = rest.get(HEAD_LEN..end) else {
                        return pos;
                    };
                    pos += end;
                    self.on_frame(head, payload, now);
                }
            }
        }
    }

    /// Every connection error the 9-octet head alone reveals, found before a payload octet
    /// is buffered: a peer cannot make us wait for (and hold) a payload whose frame is
    /// already known to be fatal, and bytes after it are never swallowed as its payload.
    fn check_head(&self, head: &FrameHead) -> Result<(), (Reason, &'static str)> {
        let frame_size = |detail| Err((Reason::FRAME_SIZE_ERROR, detail));
        // §4.2: a frame larger than our SETTINGS_MAX_FRAME_SIZE.
        if head.len > self.config.max_frame_size {
            return frame_size("frame larger than SETTINGS_MAX_FRAME_SIZE");
        }
        // §6.10: while a header block is open, only its CONTINUATION frames may arrive.
        if self.pending_block.is_some() && head.kind != FrameKind::Continuation {
            return Err((
                Reason::PROTOCOL_ERROR,
                "frame interleaved in a header block",
            ));
        }
        // §3.4: the client preface ends with a SETTINGS frame.
        if self.phase == Phase::ExpectSettings
            && (head.kind != FrameKind::Settings || head.has(flags::ACK))
        {
            return Err((Reason::PROTOCOL_ERROR, "preface not followed by SETTINGS"));
        }
        // Fixed and minimum lengths that are connection errors FRAME_SIZE_ERROR.
        match head.kind {
            FrameKind::RstStream if head.len != 4 => frame_size("RST_STREAM length is not 4"), // §6.4
            FrameKind::Ping if head.len != 8 => frame_size("PING length is not 8"), // §6.7
            FrameKind::WindowUpdate if head.len != 4 => {
                frame_size("WINDOW_UPDATE length is not 4") // §6.9
            }
            // §6.5 (a SETTINGS on a stream is a PROTOCOL_ERROR, found by its handler).
            FrameKind::Settings if head.stream == 0 && head.has(flags::ACK) && head.len != 0 => {
                frame_size("SETTINGS ACK with a payload")
            }
            FrameKind::Settings if head.stream == 0 && head.len % 6 != 0 => {
                frame_size("invalid SETTINGS")
            }
            // §6.8 (a GOAWAY on a stream is a PROTOCOL_ERROR, found by its handler).
            FrameKind::GoAway if head.stream == 0 && head.len < 8 => {
                frame_size("GOAWAY shorter than 8 octets")
            }
            _ => Ok(()),
        }
    }

    fn on_frame(&mut self, head: FrameHead, payload: &[u8], now: Timestamp) {
        // check_head let only a SETTINGS frame through as the first one (§3.4).
        if self.phase == Phase::ExpectSettings {
            self.phase = Phase::Open;
            self.handshake_deadline = None;
        }
        match head.kind {
            FrameKind::Data => self.on_data(head, payload, now),
            FrameKind::Headers => self.on_headers(head, payload, now),
            FrameKind::Continuation => self.on_continuation(head, payload, now),
            FrameKind::Priority => self.on_priority(head, payload),
            FrameKind::RstStream => self.on_rst_stream(head, payload, now),
            FrameKind::Settings => self.on_settings(head, payload),
            FrameKind::Ping => self.on_ping(head, payload),
            FrameKind::GoAway => self.on_goaway(head, payload),
            FrameKind::WindowUpdate => self.on_window_update(head, payload),
            // §8.4: clients cannot push.
            FrameKind::PushPromise => {
                self.connection_error(Reason::PROTOCOL_ERROR, "PUSH_PROMISE from a client");
            }
            // §4.1, §5.5: unknown frame types are ignored.
            FrameKind::Unknown(_) => {}
        }
    }

    // --- errors and closing ---------------------------------------------------------------

    /// Removes a stream; if its request was handed out and unanswered, it is cancelled.
    /// Returns whether the stream existed.
    fn remove_stream(&mut self, id: StreamId) -> bool {
        let Some(s) = self.streams.remove(&id) else {
            return false;
        };
        match s.state {
            StreamState::ReceivingRequest => self.buffered -= s.body.len(),
            StreamState::AwaitingResponse => {
                self.in_flight -= 1;
                // A request not yet handed out is dropped (zeroized) here; only handed-out
                // ones are reported as cancelled.
                let queued = self.requests.len();
                self.requests.retain(|r| r.stream != id);
                if self.requests.len() == queued {
                    self.cancelled.push_back(id);
                }
            }
            StreamState::SendingResponse => {}
        }
        true
    }

    /// A stream error (§5.4.2): RST_STREAM and forget the stream.
    /// Stream errors count against the reset budget, so a peer cannot make us reset streams
    /// (and abandon their work) faster than it may reset them itself.
    fn stream_error(&mut self, id: StreamId, reason: Reason, detail: &'static str) {
        self.remove_stream(id);
        self.send_reset(id, reason);
        self.events.push_back(ConnEvent::ProtocolError {
            stream: Some(id),
            reason,
            detail,
        });
        if self.over_reset_budget(self.now) {
            return self.connection_error(Reason::ENHANCE_YOUR_CALM, "too many stream errors");
        }
        self.check_drained();
    }

    /// Sends RST_STREAM and remembers that we reset `id` (§5.1: later frames are ignored).
    fn send_reset(&mut self, id: StreamId, reason: Reason) {
        frame::write_rst_stream(&mut self.out, id, reason);
        self.closed.insert(id, ClosedBy::UsWithReset);
    }

    /// A connection error (§5.4.1): GOAWAY with the last stream id, then closed.
    fn connection_error(&mut self, reason: Reason, detail: &'static str) {
        if self.phase == Phase::Closed {
            return;
        }
        // §6.8: endpoints MUST NOT increase the last-stream-id of a GOAWAY already sent.
        let last = match self.phase {
            Phase::Draining { last_stream, .. } => last_stream,
            _ => self.last_stream,
        };
        frame::write_goaway(&mut self.out, last, reason);
        self.events.push_back(ConnEvent::ProtocolError {
            stream: None,
            reason,
            detail,
        });
        self.close(detail);
    }

    fn close(&mut self, reason: &'static str) {
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            self.remove_stream(id);
        }
        self.requests.clear();
        self.pending_block = None;
        self.inbuf.zeroize();
        self.inbuf.clear();
        self.phase = Phase::Closed;
        self.events.push_back(ConnEvent::Closed { reason });
    }

    /// In shutdown (ours or the peer's), closes once no stream remains.
    fn check_drained(&mut self) {
        let draining = matches!(self.phase, Phase::Draining { .. }) || self.peer_goaway;
        if draining
            && self.streams.is_empty()
            && self.requests.is_empty()
            && self.phase != Phase::Closed
        {
            self.close("graceful shutdown complete");
        }
    }
}

impl Drop for Connection {
    /// Partial input and unsent output can hold request or response plaintext.
    fn drop(&mut self) {
        self.inbuf.zeroize();
        self.out.zeroize();
    }
}

/// The path used for streams rejected before their `:path` mattered.
fn head_path() -> alloc::borrow::Cow<'static, str> {
    alloc::borrow::Cow::Borrowed("")
}

/// Appends `data` to `buf`; when `buf` must grow, the bytes move to a new allocation and the
/// old one is wiped first (`Vec`'s own growth frees it unwiped).
fn extend_wiping(buf: &mut Vec<u8>, data: &[u8]) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let mut grown = Vec::with_capacity(needed.max(buf.capacity().saturating_mul(2)));
        grown.extend_from_slice(buf);
        buf.zeroize();
        *buf = grown;
    }
    buf.extend_from_slice(data);
}
