//! A whole `Plugin` driven by a byte stream that chooses what clients send (valid requests,
//! garbage, SETTINGS/PING/WINDOW_UPDATE/RST_STREAM), where reads split, when time moves, how
//! and when the remote KEK answers (success, failure, late, duplicate, wrong kind), key
//! rotation, EOFs and shutdown.
//!
//! Invariants checked after every step:
//! - nothing panics, and the server's output on every connection is well-formed HTTP/2 whose
//!   header blocks decode ([`ServerOutput`]);
//! - after `handle_timeout(now)`, `poll_timeout()` is never at or before `now`; every remote
//!   effect's deadline is in the future;
//! - one `poll_transmit` never hands out more than a bounded amount;
//! - an OK v2 Status and an OK v2 Encrypt drained together report the same key_id as the
//!   plugin's snapshot at that moment (docs/protocol.md §4);
//! - at the end, once all input is delivered, every remote op answered and time run forward,
//!   every request the plugin fully received was answered (END_STREAM or RST_STREAM), unless
//!   its connection was closed or GOAWAY excluded its stream. "Fully received" means all its
//!   frames were delivered and seen as frames: raw bytes may announce a longer frame than
//!   they hold, and then the server rightly reads the next request as that frame's payload.
//!   A response the client's own flow control holds back (no window left) is not owed.
#![no_main]

use std::collections::BTreeSet;

use kms_plugin_core::effect::{Effect, OpId, RemoteError, RemoteErrorKind, RemoteOp, RemoteReply};
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_core::{Config, ConnId, Plugin, Timestamp};
use kms_plugin_fuzz::{PATHS, PREFACE, ServerOutput, client_start, frame, msg, request, ty};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// No single `poll_transmit` may hand out more than this (generous: many full frames).
const MAX_TRANSMIT: usize = 4 << 20;
const MAX_STEPS: usize = 400;
const MAX_CONNS: usize = 4;

struct Client {
    id: ConnId,
    /// Bytes written by the client, not yet delivered to the plugin.
    queued: Vec<u8>,
    /// Every byte the client wrote, delivered or not (to find the server's frame boundaries).
    written: Vec<u8>,
    /// Total bytes delivered.
    delivered: usize,
    /// (stream, path index, byte offset at which the request is complete).
    requests: Vec<(u32, usize, usize)>,
    /// Per stream: the byte offset at which its request starts.
    request_start: std::collections::BTreeMap<u32, usize>,
    /// Per stream: the key-history epoch when its last byte was delivered.
    delivered_epoch: std::collections::BTreeMap<u32, usize>,
    next_stream: u32,
    out: ServerOutput,
    /// Streams the client reset (RST_STREAM): the server owes them nothing.
    cancelled: BTreeSet<u32>,
    eof: bool,
    closed: bool,
}

struct Op {
    id: OpId,
    op: RemoteOp,
}

struct Session<'a> {
    u: Unstructured<'a>,
    plugin: Plugin,
    remote: FakeRemote,
    now: Timestamp,
    clients: Vec<Client>,
    ops: Vec<Op>,
    answered: Vec<OpId>,
    /// The last successful v2 Encrypt response, reused for Decrypt requests.
    last_encrypt: Option<msg::EncryptResponse>,
    last_v1_cipher: Option<Vec<u8>>,
    /// Every key id the plugin's snapshot reported, in order (index = epoch).
    key_history: Vec<String>,
}

impl Session<'_> {
    fn drain(&mut self) {
        // The key id as of this moment: responses drained now were produced by the last call.
        self.note_key();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let Some(conn) = self.plugin.poll_transmit(&mut buf) else {
                break;
            };
            assert!(
                buf.len() <= MAX_TRANSMIT,
                "poll_transmit gave {} bytes",
                buf.len()
            );
            let Some(c) = self.clients.iter_mut().find(|c| c.id == conn) else {
                panic!("transmit for unknown connection {conn:?}");
            };
            assert!(!c.closed, "bytes for a closed connection");
            trace(&format!("transmit to {conn:?}: {} bytes", buf.len()));
            let before: BTreeSet<u32> = finished(&c.out);
            c.out.feed(&buf);
            for (stream, path, _) in &c.requests {
                if before.contains(stream) {
                    continue;
                }
                let Some(r) = c.out.streams.get(stream) else {
                    continue;
                };
                if !r.ended || r.grpc_status() != Some(0) {
                    continue;
                }
                let Some(m) = r.message() else { continue };
                // Status and Encrypt report a key id the plugin advertised between the request's
                // arrival and now (flow control may delay a response, never make it stale).
                let epoch = c.delivered_epoch.get(stream).copied().unwrap_or(0);
                let recent = &self.key_history[epoch.min(self.key_history.len() - 1)..];
                match *path {
                    0 => {
                        let s = msg::StatusResponse::decode(m).expect("Status response decodes");
                        assert!(
                            recent.contains(&s.key_id),
                            "stale Status key_id {:?}",
                            s.key_id
                        );
                    }
                    1 => {
                        let e = msg::EncryptResponse::decode(m).expect("Encrypt response decodes");
                        assert!(
                            recent.contains(&e.key_id),
                            "stale Encrypt key_id {:?} (advertised since delivery: {:?})",
                            e.key_id,
                            recent
                        );
                        assert!(!e.key_id.is_empty());
                        assert!(!e.ciphertext.is_empty() && e.ciphertext.len() <= 1024);
                        self.last_encrypt = Some(e);
                    }
                    4 => {
                        let e = msg::V1EncryptResponse::decode(m).expect("v1 Encrypt decodes");
                        self.last_v1_cipher = Some(e.cipher);
                    }
                    _ => {}
                }
            }
        }
        while let Some(effect) = self.plugin.poll_effect() {
            match effect {
                Effect::Remote { id, op, deadline } => {
                    trace(&format!(
                        "effect Remote {id:?} {op:?} deadline {deadline:?} now {:?}",
                        self.now
                    ));
                    assert!(deadline > self.now, "remote deadline not in the future");
                    assert!(!self.ops.iter().any(|o| o.id == id) && !self.answered.contains(&id));
                    self.ops.push(Op { id, op });
                }
                Effect::CancelRemote { .. } => {}
                Effect::Close { conn } => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.id == conn) {
                        assert!(!c.closed, "closed twice");
                        c.closed = true;
                    }
                }
            }
        }
        while self.plugin.poll_event().is_some() {}
        self.note_key();
    }

    fn note_key(&mut self) {
        let key = self.plugin.status_snapshot(self.now).key_id;
        if self.key_history.last().is_none_or(|k| k != key) {
            self.key_history.push(key.to_owned());
        }
    }

    /// Delivers `chunk` to client `i` and records which requests it completed.
    fn deliver(&mut self, i: usize, chunk: &[u8]) {
        let epoch = self.key_history.len() - 1;
        let c = &mut self.clients[i];
        c.delivered += chunk.len();
        for &(stream, _, end) in &c.requests {
            if end <= c.delivered {
                c.delivered_epoch.entry(stream).or_insert(epoch);
            }
        }
        let id = c.id;
        trace(&format!(
            "deliver {} bytes to {id:?} (total {}), requests {:?}: {:02x?}",
            chunk.len(),
            c.delivered,
            c.requests,
            chunk
        ));
        self.plugin
            .handle_bytes(id, chunk, self.now)
            .expect("accepted connection");
    }

    fn timeout(&mut self) {
        if self.plugin.poll_timeout().is_some_and(|t| t <= self.now) {
            self.plugin.handle_timeout(self.now);
            self.drain();
        }
        if let Some(t) = self.plugin.poll_timeout() {
            assert!(t > self.now, "deadline {t:?} not after now {:?}", self.now);
        }
    }

    fn client(&mut self) -> Option<usize> {
        let open: Vec<usize> = (0..self.clients.len())
            .filter(|&i| !self.clients[i].closed)
            .collect();
        if open.is_empty() {
            return None;
        }
        let k = self.u.choose_index(open.len()).unwrap_or(0);
        Some(open[k])
    }

    fn request_message(&mut self, path: usize) -> Vec<u8> {
        let uid = "6f1c6e1e-4b8e-4bde-9a5f-3f0b1f2f6d11".to_owned();
        let garbage = self.u.int_in_range(0..=7u8).unwrap_or(0) == 0;
        if garbage {
            let n = self.u.int_in_range(0..=40usize).unwrap_or(0);
            return self.u.bytes(n).unwrap_or_default().to_vec();
        }
        match path {
            1 => msg::EncryptRequest {
                plaintext: vec![0x5a; 32],
                uid,
            }
            .encode_to_vec(),
            2 => match &self.last_encrypt {
                Some(e) => msg::DecryptRequest {
                    ciphertext: e.ciphertext.clone(),
                    uid,
                    key_id: e.key_id.clone(),
                    annotations: e.annotations.clone(),
                }
                .encode_to_vec(),
                None => msg::DecryptRequest {
                    uid,
                    ..Default::default()
                }
                .encode_to_vec(),
            },
            3 => msg::V1EncryptRequest {
                version: "v1beta1".into(),
                plain: Vec::new(),
            }
            .encode_to_vec(),
            4 => msg::V1EncryptRequest {
                version: "v1beta1".into(),
                plain: b"ping".to_vec(),
            }
            .encode_to_vec(),
            5 => msg::V1DecryptRequest {
                version: "v1beta1".into(),
                cipher: self.last_v1_cipher.clone().unwrap_or_default(),
            }
            .encode_to_vec(),
            _ => Vec::new(),
        }
    }

    fn step(&mut self) -> bool {
        let Ok(action) = self.u.int_in_range(0..=15u8) else {
            return false;
        };
        match action {
            0 if self.clients.len() < MAX_CONNS => {
                let id = self.plugin.handle_accept(self.now);
                let mut c = Client {
                    id,
                    queued: Vec::new(),
                    written: Vec::new(),
                    delivered: 0,
                    requests: Vec::new(),
                    request_start: std::collections::BTreeMap::new(),
                    delivered_epoch: std::collections::BTreeMap::new(),
                    next_stream: 1,
                    out: ServerOutput::default(),
                    cancelled: BTreeSet::new(),
                    eof: false,
                    closed: false,
                };
                if self.u.ratio(7, 8).unwrap_or(true) {
                    client_start(&mut c.queued);
                    c.written.clone_from(&c.queued);
                }
                self.clients.push(c);
            }
            1..=4 => {
                let Some(i) = self.client() else { return true };
                let path = self.u.choose_index(PATHS.len()).unwrap_or(0);
                let message = self.request_message(path);
                let timeout = match self.u.int_in_range(0..=3u8).unwrap_or(0) {
                    0 => None,
                    1 => Some("3S"),
                    2 => Some("50m"),
                    _ => Some("1u"),
                };
                let c = &mut self.clients[i];
                let stream = c.next_stream;
                c.next_stream += 2;
                let start = c.queued.len();
                request(&mut c.queued, stream, PATHS[path], &message, timeout);
                c.written.extend_from_slice(&c.queued[start..]);
                c.request_start.insert(stream, c.delivered + start);
                let end = c.delivered + c.queued.len();
                c.requests.push((stream, path, end));
            }
            5 | 6 => {
                // Deliver some of the queued bytes: the fuzzer picks the split points.
                let Some(i) = self.client() else { return true };
                let c = &self.clients[i];
                if c.queued.is_empty() || c.eof {
                    return true;
                }
                let n = self
                    .u
                    .int_in_range(1..=c.queued.len())
                    .unwrap_or(c.queued.len());
                let chunk: Vec<u8> = self.clients[i].queued.drain(..n).collect();
                self.deliver(i, &chunk);
            }
            7 => {
                // Raw bytes or a control frame.
                let Some(i) = self.client() else { return true };
                let kind = self.u.int_in_range(0..=5u8).unwrap_or(0);
                let stream = self.u.int_in_range(0..=9u32).unwrap_or(0);
                let mut bytes = Vec::new();
                match kind {
                    0 => frame(&mut bytes, ty::SETTINGS, 1, 0, &[]),
                    1 => frame(&mut bytes, ty::PING, 0, 0, &[1; 8]),
                    2 => frame(&mut bytes, ty::WINDOW_UPDATE, 0, stream, &[0, 0, 0x10, 0]),
                    3 => {
                        self.clients[i].cancelled.insert(stream | 1);
                        frame(&mut bytes, ty::RST_STREAM, 0, stream | 1, &[0, 0, 0, 8]);
                    }
                    4 => {
                        let n = self.u.int_in_range(0..=6usize).unwrap_or(0);
                        let payload = self.u.bytes(n * 6).unwrap_or_default().to_vec();
                        frame(&mut bytes, ty::SETTINGS, 0, 0, &payload);
                    }
                    _ => {
                        let n = self.u.int_in_range(0..=64usize).unwrap_or(0);
                        bytes.extend_from_slice(self.u.bytes(n).unwrap_or_default());
                    }
                }
                self.clients[i].queued.extend_from_slice(&bytes);
                self.clients[i].written.extend_from_slice(&bytes);
            }
            8 => {
                let Some(i) = self.client() else { return true };
                let c = &mut self.clients[i];
                if !c.eof && c.queued.is_empty() {
                    c.eof = true;
                    let id = c.id;
                    self.plugin
                        .handle_eof(id, self.now)
                        .expect("accepted connection");
                }
            }
            9 | 10 => {
                let ms = u64::from(self.u.int_in_range(0..=6000u16).unwrap_or(0));
                self.now = self
                    .now
                    .saturating_add(core::time::Duration::from_millis(ms));
                self.timeout();
            }
            11 | 12 => self.answer_one(),
            13 => {
                // A reply for an op already answered (late or duplicate): never a panic.
                if let Some(&id) = self.answered.first() {
                    let _ = self.plugin.handle_remote(
                        id,
                        Err(RemoteError::new(RemoteErrorKind::Other, "dup")),
                        self.now,
                    );
                }
            }
            14 => {
                let _ = self.remote.rotate();
            }
            15 if self.u.ratio(1, 8).unwrap_or(false) => self.plugin.handle_shutdown(self.now),
            _ => {}
        }
        self.drain();
        true
    }

    fn answer_one(&mut self) {
        if self.ops.is_empty() {
            return;
        }
        let k = self.u.choose_index(self.ops.len()).unwrap_or(0);
        let how = self.u.int_in_range(0..=7u8).unwrap_or(0);
        let op = self.ops.remove(k);
        let result = match how {
            0 => Err(RemoteError::new(RemoteErrorKind::Unavailable, "down")),
            1 => Err(RemoteError::new(RemoteErrorKind::Timeout, "slow")),
            2 => Err(RemoteError::new(RemoteErrorKind::Corrupt, "bad")),
            // The wrong kind of reply for the op.
            3 => Ok(RemoteReply::Status {
                key_id: "wrong-kind".into(),
            }),
            _ => self
                .remote
                .answer(&op.op)
                .unwrap_or_else(|| Err(RemoteError::new(RemoteErrorKind::Timeout, "none"))),
        };
        trace(&format!(
            "answer {:?} how={how} ok={}",
            op.id,
            result.is_ok()
        ));
        let r = self.plugin.handle_remote(op.id, result, self.now);
        trace(&format!(
            "  -> {r:?}; snapshot key {:?}",
            self.plugin.status_snapshot(self.now).key_id
        ));
        self.answered.push(op.id);
    }

    /// Delivers everything, answers every op, runs time forward; then every request the plugin
    /// fully received must have been answered.
    fn finish(&mut self) {
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.closed || c.eof || c.queued.is_empty() {
                continue;
            }
            let chunk = std::mem::take(&mut c.queued);
            self.deliver(i, &chunk);
            self.drain();
        }
        for _ in 0..200 {
            while let Some(op) = self.ops.pop() {
                let result = self
                    .remote
                    .answer(&op.op)
                    .unwrap_or_else(|| Err(RemoteError::new(RemoteErrorKind::Timeout, "none")));
                let _ = self.plugin.handle_remote(op.id, result, self.now);
                self.answered.push(op.id);
                self.drain();
            }
            match self.plugin.poll_timeout() {
                Some(t) if t.saturating_duration_since(self.now).as_secs() < 120 => {
                    self.now = t;
                    self.timeout();
                }
                _ => break,
            }
        }
        for c in &self.clients {
            if c.closed {
                continue;
            }
            let view = ClientView::parse(&c.written[..c.delivered]);
            for &(stream, _, end) in &c.requests {
                if end > c.delivered || c.cancelled.contains(&stream) {
                    continue;
                }
                // Raw bytes before a request can announce a longer frame than they hold (an
                // unknown frame type, say): the request's bytes are then that frame's payload,
                // and the server never saw a request (former false finding
                // artifacts-regressions/plugin_session/crash-01de635a...).
                let start = c.request_start.get(&stream).copied().unwrap_or(0);
                if !view.starts.contains(&start) || !view.starts.contains(&end) {
                    continue;
                }
                // A client may stop the server's DATA with its flow control (here: an initial
                // window of 0 and no WINDOW_UPDATE; former false finding
                // artifacts-regressions/plugin_session/crash-a2290969...).
                if view.stalled(&c.out, stream) {
                    continue;
                }
                // A connection error (GOAWAY with an error code) abandons in-flight streams;
                // a graceful GOAWAY still answers every stream up to its last-stream-id.
                if c.out
                    .goaway
                    .is_some_and(|(last, code)| code != 0 || stream > last)
                {
                    continue;
                }
                let answered = c.out.streams.get(&stream).is_some_and(|r| r.finished());
                assert!(answered, "stream {stream} on {:?} never answered", c.id);
            }
        }
    }
}

/// Prints when `FUZZ_TRACE` is set (for triaging a crash input).
fn trace(line: &str) {
    if kms_plugin_fuzz::tracing() {
        eprintln!("{line}");
    }
}

/// What the server's frame parser sees in everything a client delivered: where frames begin
/// (plus the end of the last whole frame), and the flow-control credit the client gave for
/// the server's DATA (RFC 9113 §6.9): its last SETTINGS_INITIAL_WINDOW_SIZE and its
/// WINDOW_UPDATE increments per stream (0 = the connection). Nothing without the preface (the
/// server then closes the connection with a connection error).
struct ClientView {
    starts: BTreeSet<usize>,
    initial_window: i64,
    updates: std::collections::BTreeMap<u32, i64>,
}

impl ClientView {
    fn parse(bytes: &[u8]) -> Self {
        let mut view = ClientView {
            starts: BTreeSet::new(),
            initial_window: 65_535,
            updates: std::collections::BTreeMap::new(),
        };
        let Some(mut pos) = bytes.starts_with(PREFACE).then_some(PREFACE.len()) else {
            return view;
        };
        while let Some(head) = bytes.get(pos..pos + 9) {
            view.starts.insert(pos);
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match bytes.get(pos + 9..pos + 9 + len) {
                Some(p) if head[3] == ty::SETTINGS && head[4] & 1 == 0 && len % 6 == 0 => {
                    // SETTINGS_INITIAL_WINDOW_SIZE is id 4.
                    for e in p.chunks(6).filter(|e| e[..2] == [0, 4]) {
                        let value = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
                        view.initial_window = i64::from(value);
                    }
                }
                Some(p) if head[3] == ty::WINDOW_UPDATE && len == 4 => {
                    let inc = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                    *view.updates.entry(stream).or_default() += i64::from(inc);
                }
                _ => {}
            }
            pos += 9 + len;
        }
        view.starts.insert(pos);
        view
    }

    /// Whether the server began answering `stream` but the client's flow control leaves it no
    /// credit for more DATA, on the stream or on the connection: the client stalled it.
    fn stalled(&self, out: &ServerOutput, stream: u32) -> bool {
        let Some(r) = out.streams.get(&stream) else {
            return false;
        };
        let sent: i64 = out.streams.values().map(|r| r.data.len() as i64).sum();
        let credit = |s: u32| self.updates.get(&s).copied().unwrap_or(0);
        let connection = 65_535 + credit(0) - sent;
        let own = self.initial_window + credit(stream) - r.data.len() as i64;
        connection <= 0 || own <= 0
    }
}

fn finished(out: &ServerOutput) -> BTreeSet<u32> {
    out.streams
        .iter()
        .filter(|(_, r)| r.finished())
        .map(|(s, _)| *s)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let seed: [u8; 32] = u.arbitrary().unwrap_or([0; 32]);
    let now = Timestamp::from_millis(1_000);
    let Ok(plugin) = Plugin::new(Config::default(), seed, now) else {
        panic!("the default config is valid");
    };
    let mut s = Session {
        u,
        plugin,
        remote: FakeRemote::new([7; 32]),
        now,
        clients: Vec::new(),
        ops: Vec::new(),
        answered: Vec::new(),
        last_encrypt: None,
        last_v1_cipher: None,
        key_history: Vec::new(),
    };
    s.note_key();
    s.drain();
    let mut steps = 0;
    while steps < MAX_STEPS && s.step() {
        steps += 1;
    }
    s.finish();
});
