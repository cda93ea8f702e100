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
mod flow;
mod frames;
mod head;
mod input;
mod output;
mod respond;
mod stream;
mod streams;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::mem;

use zeroize::Zeroize;

pub use config::TransportConfig;
use control::ResetBudget;
use flow::ConnWindows;
use output::OutputQueue;
use streams::{StreamInput, StreamTable};

use crate::event::ConnEvent;
use crate::h2::frame;
use crate::h2::reason::Reason;
use crate::h2::settings::{self, PeerSettings};
use crate::hpack::Decoder;
use crate::rpc::{Request, Response, StreamId};
use crate::time::{Timestamp, earliest};

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
    /// Unparsed input (a partial frame); at most one frame head + `max_frame_size`.
    inbuf: Vec<u8>,
    /// Everything we send, not yet taken by `poll_transmit`.
    out: OutputQueue,
    streams: StreamTable,
    pending_block: Option<PendingBlock>,
    windows: ConnWindows,
    events: VecDeque<ConnEvent>,
    handshake_deadline: Option<Timestamp>,
    settings_ack_deadline: Option<Timestamp>,
    resets: ResetBudget,
    /// The latest time passed in (for checks deep in frame handling).
    now: Timestamp,
    peer_goaway: bool,
    /// When the peer last sent anything (the idle timeout counts from here).
    last_input: Timestamp,
    /// Request octets this connection may hold now: its share of the process-wide budget
    /// (`Config::max_buffered_total`), set by the plugin before each input.
    buffer_allowance: usize,
}

impl Connection {
    /// A new connection; our SETTINGS (the server preface, §3.4) and a connection
    /// WINDOW_UPDATE are queued at once. `config` must have passed `validate`.
    pub fn new(config: &TransportConfig, now: Timestamp) -> Self {
        let mut out = OutputQueue::new();
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
        settings::write_settings(out.frames(), &entries);
        let extra = config
            .connection_window_size
            .saturating_sub(frame::DEFAULT_WINDOW);
        if extra > 0 {
            frame::write_window_update(out.frames(), 0, extra);
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
            inbuf: Vec::new(),
            out,
            streams: StreamTable::default(),
            pending_block: None,
            windows: ConnWindows::new(config.connection_window_size),
            events: VecDeque::new(),
            handshake_deadline: Some(now.saturating_add(config.handshake_timeout)),
            settings_ack_deadline: Some(now.saturating_add(config.settings_timeout)),
            resets: ResetBudget::new(now),
            now,
            peer_goaway: false,
            last_input: now,
            buffer_allowance: usize::MAX,
        }
    }

    /// Bytes read from the socket, in any chunking. Input while [`Connection::wants_read`] is
    /// false for a full output queue (a driver that ignored backpressure) is not processed:
    /// the connection ends with GOAWAY(ENHANCE_YOUR_CALM), so what it queues stays bounded
    /// by `max_pending_output` plus the output of one call.
    pub fn handle_bytes(&mut self, input: &[u8], now: Timestamp) {
        if self.phase == Phase::Closed {
            return;
        }
        self.now = self.now.max(now);
        self.last_input = self.now;
        if self.out.len() >= self.config.max_pending_output {
            self.connection_error(
                Reason::ENHANCE_YOUR_CALM,
                "input while the output queue is full (wants_read was false)",
            );
            return;
        }
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
        if self.idle_deadline().is_some_and(|t| t <= now) {
            self.go_away_idle("idle timeout");
        }
    }

    /// When an open connection with no stream will be closed for idleness.
    fn idle_deadline(&self) -> Option<Timestamp> {
        (self.phase == Phase::Open && self.streams.is_idle())
            .then(|| self.last_input.saturating_add(self.config.idle_timeout))
    }

    /// GOAWAY(NO_ERROR) naming the last stream (none is open), then closed (§6.8).
    fn go_away_idle(&mut self, reason: &'static str) {
        frame::write_goaway(
            self.out.frames(),
            self.streams.last_used(),
            Reason::NO_ERROR,
        );
        self.close(reason);
    }

    /// Whether the client has not yet sent its preface and first SETTINGS (§3.4).
    pub fn is_handshaking(&self) -> bool {
        matches!(
            self.phase,
            Phase::ExpectPreface { .. } | Phase::ExpectSettings
        )
    }

    /// Since when an open connection has had no stream and no input (`None`: busy,
    /// handshaking or closing). Eviction picks the longest idle.
    pub fn idle_since(&self) -> Option<Timestamp> {
        self.idle_deadline().map(|_| self.last_input)
    }

    /// Closes the connection to make room for another (the connection table is full): at
    /// once during the handshake, with GOAWAY(NO_ERROR) when idle. Busy connections are never
    /// evicted (the caller picks with [`Connection::is_handshaking`] / [`Connection::idle_since`]).
    pub fn evict(&mut self) {
        if self.is_handshaking() {
            self.close("evicted: connection table full, handshake unfinished");
        } else if self.idle_since().is_some() {
            self.go_away_idle("evicted: connection table full, idle");
        }
    }

    /// Request octets (gRPC prefixes included) this connection may hold from now on, on top
    /// of `max_buffered_bytes`: the stream that goes beyond gets RESOURCE_EXHAUSTED.
    pub fn set_buffer_allowance(&mut self, octets: usize) {
        self.buffer_allowance = octets;
    }

    /// The current cap on buffered request octets (see [`Connection::set_buffer_allowance`]).
    pub(crate) fn buffer_limit(&self) -> usize {
        self.config.max_buffered_bytes.min(self.buffer_allowance)
    }

    /// The next complete, valid request.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.streams.poll_request()
    }

    /// The next handed-out request whose stream is gone (reset by the peer, or the connection
    /// ended); its answer would be dropped.
    pub fn poll_cancelled(&mut self) -> Option<StreamId> {
        self.streams.poll_cancelled()
    }

    /// Answers the request on `stream`; ignored if the stream is gone or already answered.
    pub fn respond(&mut self, stream: StreamId, response: Response, _now: Timestamp) {
        if self.phase == Phase::Closed || !self.streams.transition(stream, StreamInput::Respond) {
            return;
        }
        self.queue_response(stream, 200, response);
        self.flush_streams();
        self.check_drained();
    }

    /// Appends all pending output to `buf`; whether anything was appended.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.out.transmit(buf)
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
            earliest(draining, self.idle_deadline()),
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
                let last_stream = self.streams.last_used();
                frame::write_goaway(self.out.frames(), last_stream, Reason::NO_ERROR);
                self.phase = Phase::Draining {
                    force_at: now.saturating_add(self.config.shutdown_grace),
                    last_stream,
                };
                self.check_drained();
            }
        }
    }

    /// Whether the connection is finished; the driver flushes `poll_transmit`, then closes.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the driver may feed more input: false once `max_pending_output` octets wait
    /// for `poll_transmit`, or when closed (see the crate-level loop contract).
    pub fn wants_read(&self) -> bool {
        self.phase != Phase::Closed && self.out.len() < self.config.max_pending_output
    }

    /// Complete requests not yet answered: handed out by `poll_request` or queued for it.
    #[cfg(any(test, feature = "testing"))]
    pub fn in_flight(&self) -> usize {
        self.streams.in_flight()
    }

    /// Octets of a partial frame held between `handle_bytes` calls; never more than one
    /// frame head plus our SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2).
    #[cfg(any(test, feature = "testing"))]
    pub fn buffered_input(&self) -> usize {
        self.inbuf.len()
    }

    /// Request body octets (gRPC prefixes included) held across streams; never more than
    /// `max_buffered_bytes` between calls.
    pub fn buffered_request_bytes(&self) -> usize {
        self.streams.buffered()
    }

    /// Octets queued for the socket and not yet taken by `poll_transmit`.
    #[cfg(any(test, feature = "testing"))]
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }
}

impl Drop for Connection {
    /// Partial input can hold request plaintext (the output queue wipes itself).
    fn drop(&mut self) {
        self.inbuf.zeroize();
    }
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
