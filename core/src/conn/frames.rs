//! Frame handlers: one per frame type, each citing the RFC 9113 rule it enforces.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::head::RequestHead;
use super::stream::{Body, Phase, Stream, StreamInput, StreamState, transition};
use super::{ConnEvent, ConnState, Connection, OpenBlock};
use crate::grpc::{self, PREFIX_LEN};
use crate::h2::{
    self, FrameError, FrameHead, FrameKind, Reason, SettingId, control, flags, padding, settings,
};
use crate::rpc::{self, Code, StreamId};
use crate::secret::SecretBytes;
use crate::time::Timestamp;

/// Why the transport answers a request itself.
pub(super) struct Rejection {
    pub(super) http_status: u16,
    pub(super) code: Code,
    pub(super) detail: &'static str,
}

const fn reject(http_status: u16, code: Code, detail: &'static str) -> Rejection {
    Rejection {
        http_status,
        code,
        detail,
    }
}

impl Connection {
    /// Dispatches one complete frame.
    pub(super) fn on_frame(&mut self, head: &FrameHead, payload: &[u8], now: Timestamp) {
        // §6.10: while a header block is open, only CONTINUATION for the same stream may
        // arrive; anything else is a connection PROTOCOL_ERROR.
        if let Some(open) = self.open_block {
            if head.kind != FrameKind::Continuation || head.stream != open.stream {
                return self.fatal(
                    Reason::PROTOCOL_ERROR,
                    "frame interleaved in a header block",
                );
            }
        }
        if self.state == ConnState::AwaitSettings {
            // §3.4: the preface must be followed by a SETTINGS frame (not an ACK).
            if head.kind != FrameKind::Settings || head.has(flags::ACK) {
                return self.fatal(Reason::PROTOCOL_ERROR, "first frame is not SETTINGS");
            }
            self.state = ConnState::Open;
            self.handshake_deadline = None;
            self.push_event(ConnEvent::HandshakeCompleted);
        }
        let result = match head.kind {
            FrameKind::Data => self.on_data(head, payload, now),
            FrameKind::Headers => self.on_headers(head, payload, now),
            FrameKind::Continuation => self.on_continuation(head, payload, now),
            FrameKind::Priority => control::check_priority(head, payload),
            FrameKind::RstStream => self.on_rst_stream(head, payload, now),
            FrameKind::Settings => self.on_settings(head, payload),
            // §8.4: a client cannot push.
            FrameKind::PushPromise => Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "PUSH_PROMISE from client",
            )),
            FrameKind::Ping => control::parse_ping(head, payload).map(|data| {
                // §6.7: answer a PING with a PING ACK carrying the same data; ignore ACKs.
                if !head.has(flags::ACK) {
                    control::encode_ping(&mut self.out, data, true);
                }
            }),
            FrameKind::GoAway => self.on_goaway(head, payload),
            FrameKind::WindowUpdate => self.on_window_update(head, payload),
            // §4.1, §5.5: unknown frame types are ignored.
            FrameKind::Unknown(_) => Ok(()),
        };
        if let Err(e) = result {
            // Reset flood (CVE-2019-9514): stream errors the peer provokes count like its
            // own resets.
            let counted = match e {
                FrameError::Stream(..) => self.count_reset(now),
                FrameError::Connection(..) => Ok(()),
            };
            self.frame_error(head.stream, counted.err().unwrap_or(e));
        }
    }

    /// Counts one stream reset (sent by the peer or provoked by it) in the current window;
    /// beyond `max_resets_per_window` it is a connection ENHANCE_YOUR_CALM.
    fn count_reset(&mut self, now: Timestamp) -> Result<(), FrameError> {
        if now.saturating_duration_since(self.reset_window_start) >= self.cfg.reset_window {
            self.reset_window_start = now;
            self.resets_in_window = 0;
        }
        self.resets_in_window = self.resets_in_window.saturating_add(1);
        if self.resets_in_window > self.cfg.max_resets_per_window {
            return Err(FrameError::Connection(
                Reason::ENHANCE_YOUR_CALM,
                "too many stream resets",
            ));
        }
        Ok(())
    }

    fn on_settings(&mut self, head: &FrameHead, payload: &[u8]) -> Result<(), FrameError> {
        let pairs = settings::parse(head, payload)?;
        if head.has(flags::ACK) {
            // §6.5.3: our SETTINGS are in force; the HPACK limit now applies.
            self.settings_deadline = None;
            self.decoder
                .set_max_table_size(self.cfg.header_table_size as usize);
            return Ok(());
        }
        for s in pairs {
            match s.id {
                SettingId::HeaderTableSize => {
                    self.encoder.set_peer_max_table_size(s.value as usize);
                }
                // §6.5.2: ENABLE_PUSH other than 0 or 1 is a connection PROTOCOL_ERROR.
                SettingId::EnablePush if s.value > 1 => {
                    return Err(FrameError::Connection(
                        Reason::PROTOCOL_ERROR,
                        "ENABLE_PUSH not 0 or 1",
                    ));
                }
                SettingId::InitialWindowSize => {
                    // §6.5.2: above 2^31-1 is a connection FLOW_CONTROL_ERROR.
                    if s.value > h2::MAX_WINDOW {
                        return Err(FrameError::Connection(
                            Reason::FLOW_CONTROL_ERROR,
                            "INITIAL_WINDOW_SIZE too large",
                        ));
                    }
                    // §6.9.2: adjust every open stream's send window by the difference; an
                    // overflow is a connection FLOW_CONTROL_ERROR.
                    let delta = i64::from(s.value) - i64::from(self.peer_initial_window);
                    self.peer_initial_window = s.value;
                    for st in &mut self.streams {
                        st.send_window += delta;
                        if st.send_window > i64::from(h2::MAX_WINDOW) {
                            return Err(FrameError::Connection(
                                Reason::FLOW_CONTROL_ERROR,
                                "stream window overflow",
                            ));
                        }
                    }
                }
                SettingId::MaxFrameSize => {
                    // §6.5.2: outside 2^14..=2^24-1 is a connection PROTOCOL_ERROR.
                    if !(h2::MIN_MAX_FRAME_SIZE..=h2::MAX_MAX_FRAME_SIZE).contains(&s.value) {
                        return Err(FrameError::Connection(
                            Reason::PROTOCOL_ERROR,
                            "MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.peer_max_frame = s.value;
                }
                // Our responses are tiny and we never push; §6.5.2: unknown settings ignored.
                SettingId::EnablePush
                | SettingId::MaxConcurrentStreams
                | SettingId::MaxHeaderListSize
                | SettingId::Unknown(_) => {}
            }
        }
        settings::encode_ack(&mut self.out);
        Ok(())
    }

    fn on_goaway(&mut self, head: &FrameHead, payload: &[u8]) -> Result<(), FrameError> {
        let (last_stream, reason) = control::parse_goaway(head, payload)?;
        // §6.8: the peer opens no new streams; we finish the ones we have.
        self.peer_goaway = Some(last_stream);
        self.push_event(ConnEvent::PeerGoAway {
            reason,
            last_stream,
        });
        self.maybe_finish_draining();
        Ok(())
    }

    fn on_window_update(&mut self, head: &FrameHead, payload: &[u8]) -> Result<(), FrameError> {
        let increment = i64::from(control::parse_window_update(head, payload)?);
        if head.stream == 0 {
            self.conn_send_window += increment;
            // §6.9.1: a window above 2^31-1 is a connection FLOW_CONTROL_ERROR.
            if self.conn_send_window > i64::from(h2::MAX_WINDOW) {
                return Err(FrameError::Connection(
                    Reason::FLOW_CONTROL_ERROR,
                    "connection window overflow",
                ));
            }
            return Ok(());
        }
        if head.stream > self.highest_stream {
            // §5.1 idle: only HEADERS and PRIORITY are allowed.
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on idle stream",
            ));
        }
        if let Some(i) = self.find(head.stream) {
            let st = &mut self.streams[i];
            st.send_window += increment;
            // §6.9.1: on a stream, overflow is a stream FLOW_CONTROL_ERROR.
            if st.send_window > i64::from(h2::MAX_WINDOW) {
                return Err(FrameError::Stream(
                    Reason::FLOW_CONTROL_ERROR,
                    "stream window overflow",
                ));
            }
        }
        // §5.1: WINDOW_UPDATE on a closed stream is ignored.
        Ok(())
    }

    fn on_rst_stream(
        &mut self,
        head: &FrameHead,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<(), FrameError> {
        let reason = control::parse_rst_stream(head, payload)?;
        if head.stream > self.highest_stream {
            // §6.4: RST_STREAM on an idle stream is a connection PROTOCOL_ERROR.
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on idle stream",
            ));
        }
        if self.find(head.stream).is_some() {
            self.remove_stream(head.stream);
            self.push_event(ConnEvent::StreamReset {
                stream: head.stream,
                reason,
                by_peer: true,
            });
            // Rapid reset (CVE-2023-44487): too many resets per window is ENHANCE_YOUR_CALM.
            self.count_reset(now)?;
        }
        Ok(())
    }

    fn on_headers(
        &mut self,
        head: &FrameHead,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<(), FrameError> {
        // §6.2: HEADERS on stream 0 is a connection PROTOCOL_ERROR.
        if head.stream == 0 {
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "HEADERS on stream 0",
            ));
        }
        // §5.1.1: client streams are odd.
        if head.stream % 2 == 0 {
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "even stream id from client",
            ));
        }
        let fragment = padding::headers_fragment(head, payload)?;
        self.block.clear();
        self.append_block(fragment)?;
        let open = OpenBlock {
            stream: head.stream,
            end_stream: head.has(flags::END_STREAM),
            self_dependent: padding::self_dependent(head, payload),
            continuations: 0,
        };
        if head.has(flags::END_HEADERS) {
            self.finish_block(open, now)
        } else {
            self.open_block = Some(open);
            Ok(())
        }
    }

    fn on_continuation(
        &mut self,
        head: &FrameHead,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<(), FrameError> {
        // §6.10: CONTINUATION without an open header block is a connection PROTOCOL_ERROR.
        let Some(mut open) = self.open_block else {
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS",
            ));
        };
        open.continuations += 1;
        // CONTINUATION flood (CVE-2024-27316): cap the frame count.
        if open.continuations > self.cfg.max_continuation_frames {
            return Err(FrameError::Connection(
                Reason::ENHANCE_YOUR_CALM,
                "too many CONTINUATION frames",
            ));
        }
        self.append_block(payload)?;
        if head.has(flags::END_HEADERS) {
            self.open_block = None;
            self.finish_block(open, now)
        } else {
            self.open_block = Some(open);
            Ok(())
        }
    }

    /// §10.5.1: the compressed block is capped before buffering; a block we cannot hold
    /// cannot be decoded, so it is a connection error.
    fn append_block(&mut self, fragment: &[u8]) -> Result<(), FrameError> {
        if self.block.len() + fragment.len() > self.cfg.max_header_block_size as usize {
            return Err(FrameError::Connection(
                Reason::ENHANCE_YOUR_CALM,
                "header block too large",
            ));
        }
        self.block.extend_from_slice(fragment);
        Ok(())
    }

    /// Decodes a complete header block and applies it to its stream.
    fn finish_block(&mut self, open: OpenBlock, now: Timestamp) -> Result<(), FrameError> {
        let mut head = RequestHead::new(self.cfg.max_header_list_size as usize);
        let decoded = self
            .decoder
            .decode(&self.block, &mut |n, v, _| head.field(n, v));
        self.block.clear();
        // §4.3: a header block that cannot be decoded is a connection COMPRESSION_ERROR.
        if decoded.is_err() {
            return Err(FrameError::Connection(
                Reason::COMPRESSION_ERROR,
                "HPACK decoding failed",
            ));
        }
        let id = open.stream;
        if let Some(i) = self.find(id) {
            // Trailers: §8.1 requires END_STREAM, §8.3 forbids pseudo-headers in them.
            let st = &mut self.streams[i];
            st.state = transition(
                st.state,
                StreamInput::RecvHeaders {
                    end_stream: open.end_stream,
                },
            )?;
            if head.any_pseudo || head.malformed.is_some() {
                return Err(FrameError::Stream(
                    Reason::PROTOCOL_ERROR,
                    "malformed trailers",
                ));
            }
            self.end_of_request(id, now);
            return Ok(());
        }
        if id <= self.highest_stream {
            if self.recently_reset(id) {
                return Ok(());
            }
            // §5.1.1: opening a stream implicitly closes every lower idle id, so a HEADERS on
            // an id at or below the highest is on a closed stream: §5.1 STREAM_CLOSED.
            return Err(FrameError::Stream(
                Reason::STREAM_CLOSED,
                "HEADERS on closed stream",
            ));
        }
        self.highest_stream = id;
        if matches!(self.state, ConnState::Draining { .. }) || self.peer_goaway.is_some() {
            // §6.8: streams above our GOAWAY's last id are not processed.
            return Err(FrameError::Stream(
                Reason::REFUSED_STREAM,
                "stream after GOAWAY",
            ));
        }
        if open.self_dependent {
            // §5.3.1: a stream cannot depend on itself.
            return Err(FrameError::Stream(
                Reason::PROTOCOL_ERROR,
                "stream depends on itself",
            ));
        }
        if self.streams.len() >= self.cfg.max_concurrent_streams as usize {
            // §5.1.2: beyond SETTINGS_MAX_CONCURRENT_STREAMS, REFUSED_STREAM.
            return Err(FrameError::Stream(
                Reason::REFUSED_STREAM,
                "too many concurrent streams",
            ));
        }
        if !head.oversize() {
            head.check_request();
            if head.malformed.is_some() {
                // §8.1.1: malformed requests are a stream PROTOCOL_ERROR.
                return Err(FrameError::Stream(
                    Reason::PROTOCOL_ERROR,
                    head.malformed.unwrap_or("malformed request"),
                ));
            }
        }
        let state = transition(
            StreamState::Idle,
            StreamInput::RecvHeaders {
                end_stream: open.end_stream,
            },
        )?;
        let deadline = head.timeout.map(|d| now.saturating_add(d));
        self.streams.push(Stream {
            id,
            state,
            phase: Phase::Receiving(Body {
                prefix: [0; PREFIX_LEN],
                prefix_len: 0,
                declared: None,
                data: Zeroizing::new(Vec::new()),
            }),
            path: head.path.take().unwrap_or_default(),
            deadline,
            send_window: i64::from(self.peer_initial_window),
            recv_window: i64::from(self.cfg.initial_window_size),
            recv_unacked: 0,
        });
        if let Some(r) = Self::check_grpc_head(&head) {
            self.reject(id, &r);
            return Ok(());
        }
        if open.end_stream {
            self.end_of_request(id, now);
        }
        Ok(())
    }

    /// gRPC request checks (PROTOCOL-HTTP2 "Requests"), answered trailers-only.
    fn check_grpc_head(head: &RequestHead) -> Option<Rejection> {
        if head.oversize() {
            // RFC 9113 §10.5.1: HTTP 431 for a header list above our advertised limit.
            return Some(reject(
                431,
                Code::ResourceExhausted,
                "header list too large",
            ));
        }
        if head.method != Some(true) {
            // gRPC requests are POST; we answer 405 with INTERNAL, as grpc-go does.
            return Some(reject(405, Code::Internal, "method must be POST"));
        }
        if head.grpc_content_type != Some(true) {
            // PROTOCOL-HTTP2 "Content-Type": servers SHOULD answer HTTP 415.
            return Some(reject(
                415,
                Code::Internal,
                "content-type must be application/grpc",
            ));
        }
        if head.identity_encoding == Some(false) {
            // PROTOCOL-HTTP2 "Message-Encoding": an unsupported encoding is UNIMPLEMENTED.
            return Some(reject(
                200,
                Code::Unimplemented,
                "grpc-encoding not supported; only identity",
            ));
        }
        if head.timeout_malformed {
            // PROTOCOL-HTTP2 "Timeout" grammar; a malformed value is INTERNAL (as grpc-go).
            return Some(reject(200, Code::Internal, "malformed grpc-timeout"));
        }
        None
    }

    fn on_data(
        &mut self,
        head: &FrameHead,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<(), FrameError> {
        // §6.1: DATA on stream 0 is a connection PROTOCOL_ERROR.
        if head.stream == 0 {
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "DATA on stream 0",
            ));
        }
        let data = padding::strip_padding(head, payload)?;
        // §6.9.1: the whole payload, padding included, counts against both windows.
        let len = payload.len() as u32;
        if i64::from(len) > self.conn_recv_window {
            return Err(FrameError::Connection(
                Reason::FLOW_CONTROL_ERROR,
                "connection window exceeded",
            ));
        }
        self.conn_recv_window -= i64::from(len);
        // We consume every byte at once (copied or dropped), so replenish promptly.
        self.conn_recv_unacked += len;
        if self.conn_recv_unacked >= self.cfg.connection_window_size / 2 {
            control::encode_window_update(&mut self.out, 0, self.conn_recv_unacked);
            self.conn_recv_window += i64::from(self.conn_recv_unacked);
            self.conn_recv_unacked = 0;
        }
        if head.stream > self.highest_stream {
            // §5.1 idle: DATA is a connection PROTOCOL_ERROR.
            return Err(FrameError::Connection(
                Reason::PROTOCOL_ERROR,
                "DATA on idle stream",
            ));
        }
        let Some(i) = self.find(head.stream) else {
            if self.recently_reset(head.stream) {
                return Ok(());
            }
            // §5.1 closed: STREAM_CLOSED.
            return Err(FrameError::Stream(
                Reason::STREAM_CLOSED,
                "DATA on closed stream",
            ));
        };
        let end_stream = head.has(flags::END_STREAM);
        let initial = self.cfg.initial_window_size;
        let max_message = self.cfg.max_message_size as usize;
        let max_buffered = self.cfg.max_buffered_bytes;
        let st = &mut self.streams[i];
        st.state = transition(st.state, StreamInput::RecvData { end_stream })?;
        if i64::from(len) > st.recv_window {
            // §6.9.1: exceeding the stream window is a stream FLOW_CONTROL_ERROR.
            return Err(FrameError::Stream(
                Reason::FLOW_CONTROL_ERROR,
                "stream window exceeded",
            ));
        }
        st.recv_window -= i64::from(len);
        if !end_stream {
            st.recv_unacked += len;
            if st.recv_unacked >= initial / 2 {
                control::encode_window_update(&mut self.out, st.id, st.recv_unacked);
                st.recv_window += i64::from(st.recv_unacked);
                st.recv_unacked = 0;
            }
        }
        let Phase::Receiving(body) = &mut st.phase else {
            return Err(FrameError::Stream(
                Reason::STREAM_CLOSED,
                "DATA after request end",
            ));
        };
        if let Err(r) = feed(body, data, max_message, max_buffered, &mut self.buffered) {
            self.reject(head.stream, &r);
            return Ok(());
        }
        if end_stream {
            self.end_of_request(head.stream, now);
        }
        Ok(())
    }

    /// The peer ended its side: the body must hold exactly one message (unary).
    fn end_of_request(&mut self, id: StreamId, now: Timestamp) {
        let Some(i) = self.find(id) else { return };
        let st = &mut self.streams[i];
        let Phase::Receiving(body) = &mut st.phase else {
            return;
        };
        let complete = body.declared.is_some_and(|len| body.data.len() == len);
        if !complete {
            let detail = if body.prefix_len == 0 {
                "unary request carries no message"
            } else {
                "request message truncated"
            };
            // PROTOCOL-HTTP2 + unary semantics: exactly one message; grpc-go answers INTERNAL.
            return self.reject(id, &reject(200, Code::Internal, detail));
        }
        let message = SecretBytes::new(core::mem::take(&mut *body.data));
        self.buffered = self.buffered.saturating_sub(body.declared.unwrap_or(0));
        st.phase = Phase::Dispatched;
        let request = rpc::Request {
            stream: id,
            path: Cow::Owned(core::mem::take(&mut st.path)),
            message,
            deadline: st.deadline,
            received: now,
        };
        self.in_flight += 1;
        self.requests.push_back(request);
    }

    /// Answers a request ourselves, trailers-only; if the peer has not finished sending, also
    /// RST_STREAM(NO_ERROR) (§8.1: a server may respond before the request is complete).
    pub(super) fn reject(&mut self, id: StreamId, r: &Rejection) {
        self.push_event(ConnEvent::RequestRejected {
            stream: id,
            code: r.code,
            detail: r.detail,
        });
        let Some(i) = self.find(id) else { return };
        let remote_open = matches!(self.streams[i].state, StreamState::Open);
        self.write_trailers_only(id, r.http_status, r.code, r.detail.as_bytes());
        if remote_open {
            control::encode_rst_stream(&mut self.out, id, Reason::NO_ERROR);
            self.remember_reset(id);
        }
        self.remove_stream(id);
    }
}

/// Appends DATA bytes to a request body, enforcing the one-message and size rules.
fn feed(
    body: &mut Body,
    mut data: &[u8],
    max_message: usize,
    max_buffered: usize,
    buffered: &mut usize,
) -> Result<(), Rejection> {
    while !data.is_empty() {
        let Some(len) = body.declared else {
            let take = data.len().min(PREFIX_LEN - body.prefix_len);
            let (p, rest) = data.split_at(take);
            if let Some(dst) = body.prefix.get_mut(body.prefix_len..body.prefix_len + take) {
                dst.copy_from_slice(p);
            }
            body.prefix_len += take;
            data = rest;
            if body.prefix_len < PREFIX_LEN {
                return Ok(());
            }
            let prefix = grpc::parse_prefix(body.prefix)
                .map_err(|_| reject(200, Code::Internal, "invalid message flag"))?;
            if prefix.compressed {
                // PROTOCOL-HTTP2: Compressed-Flag 1 needs a negotiated grpc-encoding; we
                // advertise none, so this is INTERNAL (as grpc-go).
                return Err(reject(
                    200,
                    Code::Internal,
                    "compressed message without grpc-encoding",
                ));
            }
            let len = prefix.length as usize;
            if len > max_message {
                return Err(reject(
                    200,
                    Code::ResourceExhausted,
                    "message larger than max_message_size",
                ));
            }
            if *buffered + len > max_buffered {
                return Err(reject(
                    200,
                    Code::ResourceExhausted,
                    "connection buffer full",
                ));
            }
            *buffered += len;
            body.declared = Some(len);
            body.data.reserve_exact(len);
            continue;
        };
        let room = len - body.data.len();
        if room == 0 {
            // Unary: exactly one message (grpc-go answers a second one with INTERNAL).
            return Err(reject(
                200,
                Code::Internal,
                "unary request carries more than one message",
            ));
        }
        let take = data.len().min(room);
        let (d, rest) = data.split_at(take);
        body.data.extend_from_slice(d);
        data = rest;
    }
    Ok(())
}
