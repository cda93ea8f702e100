//! The receiving half of [`TestClient`]: parses the server's frames, checks them against
//! RFC 9113 and records responses, settings, acknowledgements and flow-control credit.

use alloc::string::String;
use alloc::vec::Vec;

use super::{FrameSeen, StreamId, TestClient, percent_decode};
use kms_plugin_core::h2::frame::{self, FrameHead, FrameKind, HEAD_LEN, MAX_WINDOW, flags};
use kms_plugin_core::h2::settings::id as setting;

impl TestClient {
    /// Parses server bytes (any chunking).
    pub fn receive(&mut self, server_bytes: &[u8]) {
        self.inbuf.extend_from_slice(server_bytes);
        let mut pos = 0;
        while let Some(head) = self
            .inbuf
            .get(pos..)
            .and_then(|r| r.first_chunk::<HEAD_LEN>())
        {
            let head = FrameHead::parse(head);
            let end = pos + HEAD_LEN + head.len as usize;
            if end > self.inbuf.len() {
                break;
            }
            let payload = self.inbuf[pos + HEAD_LEN..end].to_vec();
            pos = end;
            self.on_frame(head, &payload);
        }
        self.inbuf.drain(..pos);
        self.flush_data();
    }

    fn on_frame(&mut self, head: FrameHead, payload: &[u8]) {
        if self.record_frames {
            self.frames.push(FrameSeen {
                kind: head.kind.as_u8(),
                flags: head.flags,
                stream: head.stream,
                len: head.len,
                payload: payload.to_vec(),
            });
        }
        if head.len > frame::MIN_MAX_FRAME_SIZE {
            self.protocol_errors
                .push("frame larger than our SETTINGS_MAX_FRAME_SIZE");
        }
        if self.partial.is_some() && head.kind != FrameKind::Continuation {
            self.protocol_errors
                .push("frame interleaved in a header block");
        }
        self.check_frame(head);
        match head.kind {
            FrameKind::Settings if head.has(flags::ACK) => self.settings_acks += 1,
            FrameKind::Settings => self.on_settings(payload),
            FrameKind::Ping if head.has(flags::ACK) => {
                if let Some(p) = payload.first_chunk::<8>() {
                    self.ping_acks.push(*p);
                }
            }
            FrameKind::Ping => {
                let mut ack = Vec::new();
                frame::write_frame(&mut ack, FrameKind::Ping, flags::ACK, 0, payload);
                self.out.extend_from_slice(&ack);
            }
            FrameKind::WindowUpdate => self.on_window_update(head, payload),
            FrameKind::GoAway => {
                if let Some(p) = payload.first_chunk::<8>() {
                    let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & MAX_WINDOW;
                    let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                    if self.goaway.is_some_and(|(prev, _)| last > prev) {
                        // RFC 9113 §6.8: endpoints MUST NOT increase the value they send.
                        self.protocol_errors.push("GOAWAY last-stream-id increased");
                    }
                    self.goaway = Some((last, code));
                } else {
                    self.protocol_errors.push("short GOAWAY");
                }
            }
            FrameKind::RstStream => {
                let code = payload
                    .first_chunk::<4>()
                    .map_or(u32::MAX, |c| u32::from_be_bytes(*c));
                self.tx.remove(&head.stream);
                let s = self.rx.entry(head.stream).or_default();
                s.resp.reset = Some(code);
                s.done = true;
                s.server_done = true;
            }
            FrameKind::Headers => {
                let Some(mut frag) = frame::strip_padding(payload, head.flags) else {
                    return self.protocol_errors.push("bad HEADERS padding");
                };
                if head.has(flags::PRIORITY) {
                    frag = frag.get(5..).unwrap_or_default();
                }
                let end_stream = head.has(flags::END_STREAM);
                if head.has(flags::END_HEADERS) {
                    self.on_block(head.stream, frag, end_stream);
                } else {
                    self.partial = Some((head.stream, frag.to_vec(), end_stream));
                }
            }
            FrameKind::Continuation => match self.partial.take() {
                Some((id, mut block, end_stream)) if id == head.stream => {
                    block.extend_from_slice(payload);
                    if head.has(flags::END_HEADERS) {
                        self.on_block(id, &block, end_stream);
                    } else {
                        self.partial = Some((id, block, end_stream));
                    }
                }
                _ => self.protocol_errors.push("unexpected CONTINUATION"),
            },
            FrameKind::Data => self.on_data(head, payload),
            FrameKind::PushPromise => self.protocol_errors.push("PUSH_PROMISE from server"),
            FrameKind::Priority | FrameKind::Unknown(_) => {}
        }
    }

    fn on_settings(&mut self, payload: &[u8]) {
        if payload.len() % 6 != 0 {
            return self
                .protocol_errors
                .push("SETTINGS length not a multiple of 6");
        }
        for e in payload.chunks_exact(6) {
            let ident = u16::from_be_bytes([e[0], e[1]]);
            let value = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
            self.settings.push((ident, value));
            match ident {
                setting::INITIAL_WINDOW_SIZE => {
                    // §6.9.2: the change applies to every open stream's send window.
                    let delta = i64::from(value) - i64::from(self.peer_initial_window);
                    for s in self.tx.values_mut() {
                        s.send_window += delta;
                    }
                    self.peer_initial_window = value;
                }
                setting::MAX_FRAME_SIZE => self.peer_max_frame = value,
                _ => {}
            }
        }
        frame::write_settings_ack(&mut self.out);
    }

    fn on_window_update(&mut self, head: FrameHead, payload: &[u8]) {
        let Some(b) = payload.first_chunk::<4>() else {
            return self.protocol_errors.push("short WINDOW_UPDATE");
        };
        let inc = u32::from_be_bytes(*b) & MAX_WINDOW;
        self.window_updates.push((head.stream, inc));
        if inc == 0 {
            self.protocol_errors.push("WINDOW_UPDATE of 0");
        }
        if head.stream == 0 {
            self.conn_send_window += i64::from(inc);
        } else if let Some(s) = self.tx.get_mut(&head.stream) {
            s.send_window += i64::from(inc);
        }
    }

    fn on_data(&mut self, head: FrameHead, payload: &[u8]) {
        let Some(content) = frame::strip_padding(payload, head.flags) else {
            return self.protocol_errors.push("bad DATA padding");
        };
        let s = self.rx.entry(head.stream).or_default();
        if s.server_done {
            self.protocol_errors.push("DATA on a finished stream");
        }
        s.data.extend_from_slice(content);
        let end = head.has(flags::END_STREAM);
        if end {
            s.done = true;
            s.server_done = true;
            s.server_ended = true;
        }
        if self.auto_window_update && head.len > 0 {
            frame::write_window_update(&mut self.out, 0, head.len);
            if !end {
                frame::write_window_update(&mut self.out, head.stream, head.len);
            }
        }
    }

    fn on_block(&mut self, id: StreamId, block: &[u8], end_stream: bool) {
        let mut fields: Vec<(String, String)> = Vec::new();
        let result = self.decoder.decode(block, &mut |n, v, _| {
            fields.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        });
        if result.is_err() {
            self.protocol_errors
                .push("HPACK error in a server header block");
        }
        let s = self.rx.entry(id).or_default();
        if s.server_done {
            self.protocol_errors.push("HEADERS on a finished stream");
        }
        s.resp.header_blocks += 1;
        for (n, v) in &fields {
            match n.as_str() {
                ":status" => s.resp.http_status = v.parse().ok(),
                "grpc-status" => s.resp.grpc_status = v.parse().ok(),
                "grpc-message" => s.resp.grpc_message = Some(percent_decode(v.as_bytes())),
                _ => {}
            }
        }
        s.resp.headers.extend(fields);
        if end_stream {
            s.done = true;
            s.server_done = true;
            s.server_ended = true;
        }
    }

    /// The frame-level rules a server's frames must follow (RFC 9113 §6), whatever the state.
    fn check_frame(&mut self, head: FrameHead) {
        let client_stream = head.stream % 2 == 1;
        let ok = match head.kind {
            FrameKind::Data | FrameKind::Continuation => client_stream,
            // A server's HEADERS never need padding or priority (§6.2).
            FrameKind::Headers => {
                client_stream && !head.has(flags::PADDED) && !head.has(flags::PRIORITY)
            }
            FrameKind::RstStream => head.stream != 0 && head.len == 4,
            FrameKind::Settings => {
                head.stream == 0
                    && if head.has(flags::ACK) {
                        head.len == 0
                    } else {
                        head.len % 6 == 0
                    }
            }
            FrameKind::Ping => head.stream == 0 && head.len == 8,
            FrameKind::GoAway => head.stream == 0 && head.len >= 8,
            FrameKind::WindowUpdate => head.len == 4,
            FrameKind::Priority => head.len == 5,
            FrameKind::PushPromise | FrameKind::Unknown(_) => false,
        };
        if !ok {
            self.protocol_errors
                .push("malformed frame (type, stream, flags or length)");
        }
    }
}

/// Decodes exactly one gRPC message from a response body.
pub(super) fn decode_messages(data: &[u8], errors: &mut Vec<&'static str>) -> Option<Vec<u8>> {
    let (prefix, rest) = data.split_first_chunk::<5>()?;
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if prefix[0] != 0 {
        errors.push("compressed response message");
    }
    if rest.len() != len {
        errors.push("response DATA does not hold exactly one message");
    }
    Some(rest.get(..len).unwrap_or(rest).to_vec())
}
