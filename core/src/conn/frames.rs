//! Frame intake (RFC 9113 §3.4, §4): the client preface, frame heads checked before their
//! payload is buffered, and dispatch to the frame handlers.

use super::{Connection, Phase};
use crate::h2::frame::{FrameHead, FrameKind, HEAD_LEN, PREFACE, flags};
use crate::h2::reason::Reason;
use crate::time::Timestamp;

impl Connection {
    /// Parses as many whole frames from `data` as possible; returns the octets consumed.
    pub(super) fn process(&mut self, data: &[u8], now: Timestamp) -> usize {
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
}
