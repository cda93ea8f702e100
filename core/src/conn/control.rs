//! Control frames: PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY and WINDOW_UPDATE
//! (RFC 9113 §6.3-§6.9), and the errors and closes that send RST_STREAM or GOAWAY (§5.4).

use zeroize::Zeroize;

use super::closed::ClosedBy;
use super::streams::{Slot, StreamInput};
use super::{Connection, Phase, TransportConfig};
use crate::event::ConnEvent;
use crate::h2::frame::{self, FrameHead, MAX_WINDOW, flags};
use crate::h2::reason::Reason;
use crate::rpc::StreamId;
use crate::time::Timestamp;

/// Stream resets, by the peer or provoked by its protocol errors, counted per
/// `reset_window` (CVE-2023-44487 rapid reset; CVE-2025-8671 "MadeYouReset").
pub(super) struct ResetBudget {
    window_start: Timestamp,
    in_window: u32,
}

impl ResetBudget {
    pub(super) fn new(now: Timestamp) -> Self {
        Self {
            window_start: now,
            in_window: 0,
        }
    }

    /// Counts one reset; whether more than `max_resets_per_window` fell in the window.
    pub(super) fn spend(&mut self, now: Timestamp, config: &TransportConfig) -> bool {
        if now.saturating_duration_since(self.window_start) >= config.reset_window {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window = self.in_window.saturating_add(1);
        self.in_window > config.max_resets_per_window
    }
}

impl Connection {
    pub(super) fn on_priority(&mut self, head: FrameHead, payload: &[u8]) {
        if head.stream == 0 {
            return self.connection_error(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0"); // §6.3
        }
        let error = match payload.first_chunk::<4>().filter(|_| payload.len() == 5) {
            // §6.3: stream error FRAME_SIZE_ERROR.
            None => (Reason::FRAME_SIZE_ERROR, "PRIORITY length is not 5"),
            // §5.3.1: a stream cannot depend on itself: stream error PROTOCOL_ERROR.
            Some(dep) if u32::from_be_bytes(*dep) & MAX_WINDOW == head.stream => {
                (Reason::PROTOCOL_ERROR, "stream depends on itself")
            }
            Some(_) => return,
        };
        // PRIORITY may name an idle stream (§5.1), but RST_STREAM must not (§6.4), and a reset
        // idle stream could later be opened by HEADERS and answered after we reset it. So on an
        // idle stream the error is a connection error (§5.4.1 allows treating any stream error
        // as one).
        if self.streams.slot(head.stream) == Slot::Idle {
            self.connection_error(error.0, error.1);
        } else {
            self.stream_error(head.stream, error.0, error.1);
        }
    }

    pub(super) fn on_rst_stream(&mut self, head: FrameHead, payload: &[u8], now: Timestamp) {
        // §6.4: length 4, never on stream 0 or an idle stream.
        let Some(code) = payload.first_chunk::<4>().filter(|_| payload.len() == 4) else {
            return self.connection_error(Reason::FRAME_SIZE_ERROR, "RST_STREAM length is not 4");
        };
        if head.stream == 0 || self.streams.slot(head.stream) == Slot::Idle {
            return self.connection_error(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on stream 0 or an idle stream",
            );
        }
        // Rapid-reset protection (CVE-2023-44487).
        if self.resets.spend(now, &self.config) {
            return self.connection_error(Reason::ENHANCE_YOUR_CALM, "too many stream resets");
        }
        let reason = Reason(u32::from_be_bytes(*code));
        if self.streams.transition(head.stream, StreamInput::Close) {
            self.streams.remember_closed(head.stream, ClosedBy::Other);
            self.events.push_back(ConnEvent::StreamReset {
                stream: head.stream,
                reason,
            });
        }
        self.check_drained();
    }

    pub(super) fn on_settings(&mut self, head: FrameHead, payload: &[u8]) {
        if head.stream != 0 {
            return self.connection_error(Reason::PROTOCOL_ERROR, "SETTINGS on a stream"); // §6.5
        }
        if head.has(flags::ACK) {
            if !payload.is_empty() {
                return self
                    .connection_error(Reason::FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
            }
            self.settings_ack_deadline = None;
            // RFC 9113 §6.5.3: our SETTINGS_HEADER_TABLE_SIZE binds the peer's encoder only
            // once acknowledged; a limit below the default applies from now on (the peer's
            // next block must start with a size update, RFC 7541 §4.2).
            let ours = self.config.header_table_size as usize;
            if ours < self.decoder.max_table_size() {
                self.decoder.set_max_table_size(ours);
            }
            return;
        }
        let old_window = self.peer.initial_window_size;
        if let Err(reason) = self.peer.apply(payload) {
            return self.connection_error(reason, "invalid SETTINGS");
        }
        // §6.9.2: a new initial window adjusts every open stream's send window.
        let delta = i64::from(self.peer.initial_window_size) - i64::from(old_window);
        if delta != 0
            && self
                .streams
                .iter_mut()
                .any(|s| s.windows.grow_send(delta).is_err())
        {
            return self.connection_error(
                Reason::FLOW_CONTROL_ERROR,
                "SETTINGS overflowed a stream window",
            );
        }
        self.out
            .set_peer_table_size(self.peer.header_table_size as usize);
        frame::write_settings_ack(self.out.frames());
        self.flush_streams();
    }

    pub(super) fn on_ping(&mut self, head: FrameHead, payload: &[u8]) {
        // §6.7: 8 octets on stream 0; answer unless it is an ACK.
        let Some(opaque) = payload.first_chunk::<8>().filter(|_| payload.len() == 8) else {
            return self.connection_error(Reason::FRAME_SIZE_ERROR, "PING length is not 8");
        };
        if head.stream != 0 {
            return self.connection_error(Reason::PROTOCOL_ERROR, "PING on a stream");
        }
        if !head.has(flags::ACK) {
            frame::write_ping_ack(self.out.frames(), opaque);
        }
    }

    pub(super) fn on_goaway(&mut self, head: FrameHead, payload: &[u8]) {
        // §6.8: stream 0, at least 8 octets.
        if head.stream != 0 {
            return self.connection_error(Reason::PROTOCOL_ERROR, "GOAWAY on a stream");
        }
        let Some(fixed) = payload.first_chunk::<8>() else {
            return self.connection_error(Reason::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 octets");
        };
        let last_stream = u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]) & MAX_WINDOW;
        let reason = Reason(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]));
        self.peer_goaway = true;
        self.events.push_back(ConnEvent::PeerGoAway {
            reason,
            last_stream,
        });
        self.check_drained();
    }

    pub(super) fn on_window_update(&mut self, head: FrameHead, payload: &[u8]) {
        // §6.9: 4 octets; an increment of 0 is PROTOCOL_ERROR; overflow FLOW_CONTROL_ERROR.
        let Some(bytes) = payload.first_chunk::<4>().filter(|_| payload.len() == 4) else {
            return self
                .connection_error(Reason::FRAME_SIZE_ERROR, "WINDOW_UPDATE length is not 4");
        };
        let increment = i64::from(u32::from_be_bytes(*bytes) & MAX_WINDOW);
        if head.stream == 0 {
            if increment == 0 {
                return self.connection_error(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
            }
            if self.windows.grow_send(increment).is_err() {
                return self
                    .connection_error(Reason::FLOW_CONTROL_ERROR, "connection window overflow");
            }
        } else if let Some(s) = self.streams.get_mut(head.stream) {
            if increment == 0 {
                return self.stream_error(
                    head.stream,
                    Reason::PROTOCOL_ERROR,
                    "WINDOW_UPDATE of 0",
                );
            }
            if s.windows.grow_send(increment).is_err() {
                return self.stream_error(
                    head.stream,
                    Reason::FLOW_CONTROL_ERROR,
                    "stream window overflow",
                );
            }
        } else if self.streams.slot(head.stream) == Slot::Idle {
            return self
                .connection_error(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
        }
        self.flush_streams();
    }
}

/// Errors and closing.
impl Connection {
    /// A stream error (§5.4.2): RST_STREAM and forget the stream.
    /// Stream errors count against the reset budget, so a peer cannot make us reset streams
    /// (and abandon their work) faster than it may reset them itself.
    pub(super) fn stream_error(&mut self, id: StreamId, reason: Reason, detail: &'static str) {
        self.streams.transition(id, StreamInput::Close);
        self.send_reset(id, reason);
        self.events.push_back(ConnEvent::ProtocolError {
            stream: Some(id),
            reason,
            detail,
        });
        if self.resets.spend(self.now, &self.config) {
            return self.connection_error(Reason::ENHANCE_YOUR_CALM, "too many stream errors");
        }
        self.check_drained();
    }

    /// Sends RST_STREAM and remembers that we reset `id` (§5.1: later frames are ignored).
    pub(super) fn send_reset(&mut self, id: StreamId, reason: Reason) {
        frame::write_rst_stream(self.out.frames(), id, reason);
        self.streams.remember_closed(id, ClosedBy::UsWithReset);
    }

    /// A connection error (§5.4.1): GOAWAY with the last stream id, then closed.
    pub(super) fn connection_error(&mut self, reason: Reason, detail: &'static str) {
        if self.phase == Phase::Closed {
            return;
        }
        // §6.8: endpoints MUST NOT increase the last-stream-id of a GOAWAY already sent.
        let last = match self.phase {
            Phase::Draining { last_stream, .. } => last_stream,
            _ => self.streams.last_used(),
        };
        frame::write_goaway(self.out.frames(), last, reason);
        self.events.push_back(ConnEvent::ProtocolError {
            stream: None,
            reason,
            detail,
        });
        self.close(detail);
    }

    pub(super) fn close(&mut self, reason: &'static str) {
        self.streams.close_all();
        self.pending_block = None;
        self.inbuf.zeroize();
        self.inbuf.clear();
        self.phase = Phase::Closed;
        self.events.push_back(ConnEvent::Closed { reason });
    }

    /// In shutdown (ours or the peer's), closes once no stream remains.
    pub(super) fn check_drained(&mut self) {
        let draining = matches!(self.phase, Phase::Draining { .. }) || self.peer_goaway;
        if draining && self.streams.is_idle() && self.phase != Phase::Closed {
            self.close("graceful shutdown complete");
        }
    }
}
