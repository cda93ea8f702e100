//! The server side of one HTTP/2 connection (RFC 9113) carrying unary gRPC calls, sans IO.
//!
//! A driver feeds socket bytes to [`Connection::handle_bytes`], drains
//! [`Connection::poll_transmit`], [`Connection::poll_request`], [`Connection::poll_cancelled`]
//! and [`Connection::poll_event`] after every call, answers requests with
//! [`Connection::respond`], and calls [`Connection::handle_timeout`] at
//! [`Connection::poll_timeout`]. Protocol errors become GOAWAY / RST_STREAM / gRPC statuses
//! plus a [`ConnEvent`]; nothing here returns an error or panics on peer input.

mod config;
mod event;
mod frames;
mod head;
mod output;
pub mod stream;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

pub use config::TransportConfig;
pub use event::ConnEvent;

use crate::h2::{
    self, FrameError, FrameHead, HEAD_LEN, PREFACE, Reason, Setting, SettingId, control, settings,
};
use crate::hpack::{DEFAULT_TABLE_SIZE, Decoder, Encoder};
use crate::rpc::{self, StreamId};
use crate::time::{Timestamp, earliest};
use stream::{Phase, Stream};

/// Where the connection is in its life (RFC 9113 §3.4, §6.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Waiting for the 24-octet client preface; `matched` octets arrived so far.
    AwaitPreface { matched: usize },
    /// Preface received; the next frame must be the client's SETTINGS (§3.4).
    AwaitSettings,
    /// Serving streams.
    Open,
    /// We sent GOAWAY(NO_ERROR, `last_stream`): finishing streams up to it until `deadline`.
    Draining {
        last_stream: StreamId,
        deadline: Timestamp,
    },
    /// Done: the driver flushes output and closes the socket.
    Closed,
}

/// A header block being collected across HEADERS + CONTINUATION (§6.10).
#[derive(Clone, Copy)]
struct OpenBlock {
    stream: StreamId,
    end_stream: bool,
    self_dependent: bool,
    continuations: u32,
}

/// How many recently reset stream ids we remember, to ignore frames still in flight (§5.1
/// closed: "MUST ignore frames that it receives on closed streams after it has sent a
/// RST_STREAM").
const RECENT_RESETS: usize = 32;

/// One server-side HTTP/2 connection. See the module docs.
pub struct Connection {
    cfg: TransportConfig,
    state: ConnState,
    /// A partial frame (header + payload), at most 9 + `max_frame_size` bytes.
    inbuf: Vec<u8>,
    /// Control output and response headers waiting for `poll_transmit`.
    out: Vec<u8>,
    decoder: Decoder,
    encoder: Encoder,
    /// Scratch for encoding one header block.
    block_out: Vec<u8>,
    /// Scratch for a percent-encoded `grpc-message`.
    message_scratch: Vec<u8>,
    /// The header block being collected, at most `max_header_block_size`.
    block: Vec<u8>,
    open_block: Option<OpenBlock>,
    streams: Vec<Stream>,
    /// The highest stream id the peer opened (§5.1.1); also our GOAWAY's last stream.
    highest_stream: StreamId,
    recent_resets: [StreamId; RECENT_RESETS],
    recent_reset_next: usize,
    conn_send_window: i64,
    conn_recv_window: i64,
    conn_recv_unacked: u32,
    peer_initial_window: u32,
    peer_max_frame: u32,
    handshake_deadline: Option<Timestamp>,
    settings_deadline: Option<Timestamp>,
    peer_goaway: Option<StreamId>,
    requests: VecDeque<rpc::Request>,
    cancelled: VecDeque<StreamId>,
    events: VecDeque<ConnEvent>,
    in_flight: usize,
    buffered: usize,
    reset_window_start: Timestamp,
    resets_in_window: u32,
}

impl Connection {
    /// A connection that has just been accepted. Queues our SETTINGS (the server preface,
    /// RFC 9113 §3.4) and a connection WINDOW_UPDATE raising the 65,535 default (§6.9.2).
    ///
    /// `config` should have passed [`TransportConfig::validate`]; out-of-range values are
    /// clamped to legal ones.
    pub fn new(config: &TransportConfig, now: Timestamp) -> Self {
        let mut cfg = config.clone();
        cfg.max_frame_size = cfg
            .max_frame_size
            .clamp(h2::MIN_MAX_FRAME_SIZE, h2::MAX_MAX_FRAME_SIZE);
        cfg.initial_window_size = cfg
            .initial_window_size
            .clamp(h2::DEFAULT_WINDOW, h2::MAX_WINDOW);
        cfg.connection_window_size = cfg
            .connection_window_size
            .clamp(h2::DEFAULT_WINDOW, h2::MAX_WINDOW);
        cfg.max_queued_events = cfg.max_queued_events.max(1);
        let mut out = Vec::with_capacity(256);
        let all = [
            Setting {
                id: SettingId::MaxConcurrentStreams,
                value: cfg.max_concurrent_streams,
            },
            Setting {
                id: SettingId::InitialWindowSize,
                value: cfg.initial_window_size,
            },
            Setting {
                id: SettingId::MaxFrameSize,
                value: cfg.max_frame_size,
            },
            Setting {
                id: SettingId::MaxHeaderListSize,
                value: cfg.max_header_list_size,
            },
            Setting {
                id: SettingId::HeaderTableSize,
                value: cfg.header_table_size,
            },
        ];
        // HEADER_TABLE_SIZE is only sent when it differs from the default (§6.5.2).
        let count = if cfg.header_table_size as usize == DEFAULT_TABLE_SIZE {
            4
        } else {
            5
        };
        settings::encode(&mut out, all.get(..count).unwrap_or(&all));
        let raise = cfg.connection_window_size - h2::DEFAULT_WINDOW;
        if raise > 0 {
            control::encode_window_update(&mut out, 0, raise);
        }
        Self {
            state: ConnState::AwaitPreface { matched: 0 },
            inbuf: Vec::new(),
            out,
            decoder: Decoder::new(DEFAULT_TABLE_SIZE),
            encoder: Encoder::new(),
            block_out: Vec::new(),
            message_scratch: Vec::new(),
            block: Vec::new(),
            open_block: None,
            streams: Vec::new(),
            highest_stream: 0,
            recent_resets: [0; RECENT_RESETS],
            recent_reset_next: 0,
            conn_send_window: i64::from(h2::DEFAULT_WINDOW),
            conn_recv_window: i64::from(cfg.connection_window_size),
            conn_recv_unacked: 0,
            peer_initial_window: h2::DEFAULT_WINDOW,
            peer_max_frame: h2::MIN_MAX_FRAME_SIZE,
            handshake_deadline: Some(now.saturating_add(cfg.handshake_timeout)),
            settings_deadline: Some(now.saturating_add(cfg.settings_timeout)),
            peer_goaway: None,
            requests: VecDeque::new(),
            cancelled: VecDeque::new(),
            events: VecDeque::new(),
            in_flight: 0,
            buffered: 0,
            reset_window_start: now,
            resets_in_window: 0,
            cfg,
        }
    }

    /// Feeds bytes read from the socket, in any chunking (one byte at a time works). Frame
    /// lengths are checked against our SETTINGS_MAX_FRAME_SIZE as soon as the 9-octet header
    /// is seen, before any payload is buffered (§4.2).
    pub fn handle_bytes(&mut self, mut input: &[u8], now: Timestamp) {
        if let ConnState::AwaitPreface { matched } = self.state {
            let take = input.len().min(PREFACE.len() - matched);
            let (head, rest) = input.split_at(take);
            // §3.4: the preface must be exactly these octets; anything else is a connection
            // error of type PROTOCOL_ERROR.
            if PREFACE.get(matched..matched + take) != Some(head) {
                return self.fatal(Reason::PROTOCOL_ERROR, "invalid connection preface");
            }
            input = rest;
            self.state = if matched + take == PREFACE.len() {
                ConnState::AwaitSettings
            } else {
                ConnState::AwaitPreface {
                    matched: matched + take,
                }
            };
            if !matches!(self.state, ConnState::AwaitSettings) {
                return;
            }
        }
        while !input.is_empty() && !self.is_closed() {
            if self.inbuf.is_empty() {
                // Fast path: whole frames straight from the borrowed input.
                let Some(head) = FrameHead::parse(input) else {
                    self.inbuf.extend_from_slice(input);
                    return;
                };
                if !self.check_length(&head) {
                    return;
                }
                let end = HEAD_LEN + head.length as usize;
                if let (Some(payload), Some(rest)) = (input.get(HEAD_LEN..end), input.get(end..)) {
                    self.on_frame(&head, payload, now);
                    input = rest;
                } else {
                    self.inbuf.extend_from_slice(input);
                    return;
                }
            } else {
                // Slow path: complete the buffered partial frame.
                if self.inbuf.len() < HEAD_LEN {
                    let take = input.len().min(HEAD_LEN - self.inbuf.len());
                    let (now_in, rest) = input.split_at(take);
                    self.inbuf.extend_from_slice(now_in);
                    input = rest;
                }
                let Some(head) = FrameHead::parse(&self.inbuf) else {
                    return;
                };
                if !self.check_length(&head) {
                    return;
                }
                let total = HEAD_LEN + head.length as usize;
                let take = input.len().min(total.saturating_sub(self.inbuf.len()));
                let (now_in, rest) = input.split_at(take);
                self.inbuf.extend_from_slice(now_in);
                input = rest;
                if self.inbuf.len() < total {
                    return;
                }
                let mut frame = core::mem::take(&mut self.inbuf);
                self.on_frame(&head, frame.get(HEAD_LEN..).unwrap_or_default(), now);
                // DATA payloads may hold plaintext: wipe before reuse.
                frame.fill(0);
                frame.clear();
                self.inbuf = frame;
            }
        }
    }

    /// §4.2: a frame longer than our SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR, decided
    /// from the header alone. Returns whether the frame may be buffered.
    fn check_length(&mut self, head: &FrameHead) -> bool {
        if head.length > self.cfg.max_frame_size {
            self.fatal(
                Reason::FRAME_SIZE_ERROR,
                "frame larger than SETTINGS_MAX_FRAME_SIZE",
            );
            return false;
        }
        true
    }

    /// The peer closed its sending side. Requests still in flight are cancelled.
    pub fn handle_eof(&mut self, _now: Timestamp) {
        if !self.is_closed() {
            self.close(Reason::NO_ERROR);
        }
    }

    /// Fires expired timers; spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.handshake_deadline = None;
            // §3.4: no preface in time; close as for a bad preface.
            return self.fatal(Reason::PROTOCOL_ERROR, "handshake timed out");
        }
        if self.settings_deadline.is_some_and(|d| now >= d) {
            self.settings_deadline = None;
            // §6.5.3: SETTINGS not acknowledged in time.
            return self.fatal(Reason::SETTINGS_TIMEOUT, "SETTINGS not acknowledged");
        }
        if let ConnState::Draining { deadline, .. } = self.state {
            if now >= deadline {
                self.close(Reason::NO_ERROR);
            }
        }
    }

    /// The next complete, validated unary request.
    pub fn poll_request(&mut self) -> Option<rpc::Request> {
        self.requests.pop_front()
    }

    /// A request already handed out whose stream is gone (reset by the peer, or the
    /// connection died); the service drops it.
    pub fn poll_cancelled(&mut self) -> Option<StreamId> {
        self.cancelled.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// The earliest timer, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.is_closed() {
            return None;
        }
        let draining = match self.state {
            ConnState::Draining { deadline, .. } => Some(deadline),
            _ => None,
        };
        earliest(
            earliest(self.handshake_deadline, self.settings_deadline),
            draining,
        )
    }

    /// Starts a graceful close: GOAWAY(NO_ERROR, last processed stream), new streams are
    /// refused, in-flight ones finish; closed when none remain or after `shutdown_grace`.
    pub fn start_shutdown(&mut self, now: Timestamp) {
        if matches!(self.state, ConnState::Closed | ConnState::Draining { .. }) {
            return;
        }
        let last_stream = self.highest_stream;
        // §6.8: GOAWAY carries the last stream id we may act on.
        control::encode_goaway(&mut self.out, last_stream, Reason::NO_ERROR);
        self.state = ConnState::Draining {
            last_stream,
            deadline: now.saturating_add(self.cfg.shutdown_grace),
        };
        self.handshake_deadline = None;
        self.push_event(ConnEvent::ShutdownStarted { last_stream });
        self.maybe_finish_draining();
    }

    /// Whether the connection is done; the driver flushes `poll_transmit` and closes.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, ConnState::Closed)
    }

    /// False while queued output exceeds `max_pending_output`: stop reading until drained.
    pub fn wants_read(&self) -> bool {
        !self.is_closed() && self.out.len() <= self.cfg.max_pending_output
    }

    /// Bytes of peer input currently held: the partial frame, the header block being
    /// collected and reserved request bodies. Bounded by 9 + `max_frame_size` +
    /// `max_header_block_size` + `max_buffered_bytes`.
    pub fn buffered_input(&self) -> usize {
        self.inbuf.len() + self.block.len() + self.buffered
    }

    /// Bytes queued for `poll_transmit` (control frames and response headers).
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Requests handed out and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn push_event(&mut self, event: ConnEvent) {
        if self.events.len() < self.cfg.max_queued_events {
            self.events.push_back(event);
        }
    }

    /// A connection error (§5.4.1): GOAWAY(`reason`) and close.
    fn fatal(&mut self, reason: Reason, detail: &'static str) {
        if self.is_closed() {
            return;
        }
        control::encode_goaway(&mut self.out, self.highest_stream, reason);
        self.push_event(ConnEvent::ProtocolError {
            stream: None,
            reason,
            detail,
        });
        self.close(reason);
    }

    /// Drops every stream (cancelling dispatched requests) and enters `Closed`.
    fn close(&mut self, reason: Reason) {
        for s in self.streams.drain(..) {
            if matches!(s.phase, Phase::Dispatched) {
                self.cancelled.push_back(s.id);
            }
        }
        self.in_flight = 0;
        self.buffered = 0;
        self.open_block = None;
        self.handshake_deadline = None;
        self.settings_deadline = None;
        self.state = ConnState::Closed;
        self.push_event(ConnEvent::Closed { reason });
    }

    /// Turns a frame error into RST_STREAM or GOAWAY.
    fn frame_error(&mut self, stream: StreamId, err: FrameError) {
        match err {
            FrameError::Stream(reason, detail) => {
                self.push_event(ConnEvent::ProtocolError {
                    stream: Some(stream),
                    reason,
                    detail,
                });
                self.reset(stream, reason);
            }
            FrameError::Connection(reason, detail) => self.fatal(reason, detail),
        }
    }

    /// Sends RST_STREAM(`reason`) and forgets the stream (§5.4.2).
    fn reset(&mut self, stream: StreamId, reason: Reason) {
        control::encode_rst_stream(&mut self.out, stream, reason);
        self.remember_reset(stream);
        self.remove_stream(stream);
        self.push_event(ConnEvent::StreamReset {
            stream,
            reason,
            by_peer: false,
        });
    }

    fn remember_reset(&mut self, stream: StreamId) {
        if let Some(slot) = self.recent_resets.get_mut(self.recent_reset_next) {
            *slot = stream;
        }
        self.recent_reset_next = (self.recent_reset_next + 1) % RECENT_RESETS;
    }

    fn recently_reset(&self, stream: StreamId) -> bool {
        stream != 0 && self.recent_resets.contains(&stream)
    }

    fn find(&self, stream: StreamId) -> Option<usize> {
        self.streams.iter().position(|s| s.id == stream)
    }

    /// Removes a stream; a dispatched request becomes cancelled.
    fn remove_stream(&mut self, stream: StreamId) {
        if let Some(i) = self.find(stream) {
            let s = self.streams.swap_remove(i);
            self.buffered = self.buffered.saturating_sub(s.reserved());
            if matches!(s.phase, Phase::Dispatched) {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.cancelled.push_back(s.id);
            }
        }
        self.maybe_finish_draining();
    }

    /// While draining (ours or the peer's GOAWAY), close once no stream remains.
    fn maybe_finish_draining(&mut self) {
        let draining = matches!(self.state, ConnState::Draining { .. })
            || (self.peer_goaway.is_some() && !self.is_closed());
        if draining && self.streams.is_empty() && self.open_block.is_none() {
            self.close(Reason::NO_ERROR);
        }
    }
}
