//! A minimal closed-loop HTTP/2 (RFC 9113) + gRPC unary load client over a Unix socket.
//!
//! One blocking thread per connection keeps its share of the in-flight requests outstanding:
//! every completed response immediately issues the next request. Requests carry a fixed header
//! block of literal fields without indexing (RFC 7541 §6.2.2), so no HPACK state is needed and
//! the same bytes go to every server. Responses are not HPACK-decoded: a request succeeded when
//! its stream ended after at least one DATA frame (a gRPC error is trailers-only, i.e. no DATA,
//! gRPC `PROTOCOL-HTTP2.md`) and, for sampled streams, the body passed the caller's check.
//!
//! The client is deliberately cheap so that the server, pinned to its own CPU, is what limits
//! throughput; it is the same client for every server in a run.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_plugin_core::h2::PREFACE;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
/// Largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: u32 = 0x7fff_ffff;
/// How long to wait for the last in-flight responses after the run ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks a sampled response's gRPC message (without the 5-byte prefix).
pub type Validator = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// One unary call, pre-encoded.
#[derive(Clone)]
pub struct Call {
    header_block: Vec<u8>,
    data: Vec<u8>,
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    // RFC 7541 §5.2: H=0, 7-bit prefix length (all our strings are < 127 bytes).
    assert!(
        s.len() < 127,
        "header string too long for the fixed encoder"
    );
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

impl Call {
    /// A call of `path` (e.g. `/v2.KeyManagementService/Status`) carrying `message`, with
    /// `:authority: localhost` and `grpc-timeout: 3S` as kube-apiserver sends.
    pub fn new(path: &str, message: &[u8]) -> Self {
        let mut hb = Vec::new();
        hb.push(0x83); // :method POST (static index 3, RFC 7541 Appendix A)
        hb.push(0x86); // :scheme http (static index 6)
        hb.push(0x04); // :path, literal without indexing, indexed name 4
        hpack_string(&mut hb, path.as_bytes());
        hb.push(0x01); // :authority, literal without indexing, indexed name 1
        hpack_string(&mut hb, b"localhost");
        hb.extend_from_slice(&[0x0f, 0x10]); // content-type (index 31 = 15 + 16)
        hpack_string(&mut hb, b"application/grpc");
        hb.push(0x00); // te: trailers, literal without indexing, new name
        hpack_string(&mut hb, b"te");
        hpack_string(&mut hb, b"trailers");
        hb.push(0x00);
        hpack_string(&mut hb, b"grpc-timeout");
        hpack_string(&mut hb, b"3S");
        let mut data = Vec::with_capacity(5 + message.len());
        data.push(0); // not compressed (gRPC length-prefixed message)
        data.extend_from_slice(&(message.len() as u32).to_be_bytes());
        data.extend_from_slice(message);
        Self {
            header_block: hb,
            data,
        }
    }

    /// Bytes one request of this call puts on the wire (HEADERS + DATA frames).
    pub fn wire_len(&self) -> usize {
        9 + self.header_block.len() + 9 + self.data.len()
    }

    fn encode(&self, stream: u32, out: &mut Vec<u8>) {
        frame_head(
            out,
            self.header_block.len(),
            HEADERS,
            FLAG_END_HEADERS,
            stream,
        );
        out.extend_from_slice(&self.header_block);
        frame_head(out, self.data.len(), DATA, FLAG_END_STREAM, stream);
        out.extend_from_slice(&self.data);
    }
}

fn frame_head(out: &mut Vec<u8>, len: usize, ty: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

fn client_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(PREFACE);
    // SETTINGS: ENABLE_PUSH=0, INITIAL_WINDOW_SIZE=max (RFC 9113 §6.5.2).
    frame_head(out, 12, SETTINGS, 0, 0);
    out.extend_from_slice(&[0, 2, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 4]);
    out.extend_from_slice(&MAX_WINDOW.to_be_bytes());
    // Open the connection window fully so servers never wait for our WINDOW_UPDATEs.
    frame_head(out, 4, WINDOW_UPDATE, 0, 0);
    out.extend_from_slice(&(MAX_WINDOW - 65_535).to_be_bytes());
}

/// What one connection measured.
#[derive(Debug, Default, Clone)]
pub struct ConnStats {
    /// Latencies (ns) of requests sent after the measurement start and finished before its end.
    pub latencies_ns: Vec<u64>,
    /// Requests that failed (trailers-only, RST_STREAM, failed validation, lost at the end).
    pub errors: u64,
    /// Bytes read from the server in the measurement window.
    pub bytes_in: u64,
    /// Responses counted in `bytes_in`.
    pub responses_in_window: u64,
    /// Why the connection ended early, if it did.
    pub failure: Option<String>,
}

/// The timing of one load run, shared by every connection.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Measurement starts (requests before it are warm-up).
    pub start: Instant,
    /// Measurement ends; no request is issued after it.
    pub end: Instant,
}

struct InFlight {
    sent: Instant,
    got_data: bool,
    /// Collected only for sampled streams.
    body: Option<Vec<u8>>,
}

struct Conn<'a> {
    call: &'a Call,
    validate: &'a Validator,
    window: Window,
    next_stream: u32,
    in_flight: HashMap<u32, InFlight>,
    to_issue: usize,
    send_window: i64,
    peer_max_streams: usize,
    sample_every: u64,
    issued: u64,
    out: Vec<u8>,
    stats: ConnStats,
}

impl Conn<'_> {
    fn issue(&mut self, now: Instant) {
        let need = i64::try_from(self.call.data.len()).unwrap_or(i64::MAX);
        while self.to_issue > 0
            && self.send_window >= need
            && self.in_flight.len() < self.peer_max_streams
            && self.next_stream < MAX_WINDOW
        {
            let id = self.next_stream;
            self.next_stream += 2;
            self.call.encode(id, &mut self.out);
            self.send_window -= need;
            self.to_issue -= 1;
            let body = (self.issued % self.sample_every == 0).then(Vec::new);
            self.issued += 1;
            self.in_flight.insert(
                id,
                InFlight {
                    sent: now,
                    got_data: false,
                    body,
                },
            );
        }
    }

    fn complete(&mut self, stream: u32, reset: bool) {
        let Some(f) = self.in_flight.remove(&stream) else {
            return;
        };
        let now = Instant::now();
        let ok = !reset
            && f.got_data
            && f.body
                .as_deref()
                .is_none_or(|b| b.len() >= 5 && (self.validate)(&b[5..]));
        if !ok {
            self.stats.errors += 1;
        } else if f.sent >= self.window.start && now <= self.window.end {
            self.stats
                .latencies_ns
                .push(now.duration_since(f.sent).as_nanos() as u64);
        }
        if now <= self.window.end {
            self.to_issue += 1;
        }
    }

    /// Handles one complete frame; `Err` ends the connection.
    fn frame(&mut self, ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<(), String> {
        match ty {
            DATA => {
                let mut body = payload;
                if flags & FLAG_PADDED != 0 {
                    let pad = *body.first().ok_or("empty padded DATA")? as usize;
                    body = body
                        .get(1..body.len().saturating_sub(pad))
                        .ok_or("bad DATA padding")?;
                }
                if let Some(f) = self.in_flight.get_mut(&stream) {
                    f.got_data = true;
                    if let Some(b) = f.body.as_mut() {
                        b.extend_from_slice(body);
                    }
                }
                if flags & FLAG_END_STREAM != 0 {
                    self.complete(stream, false);
                }
            }
            HEADERS if flags & FLAG_END_STREAM != 0 => self.complete(stream, false),
            RST_STREAM => self.complete(stream, true),
            SETTINGS if flags & FLAG_ACK == 0 => {
                for s in payload.chunks_exact(6) {
                    let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    if u16::from_be_bytes([s[0], s[1]]) == 3 {
                        self.peer_max_streams = value as usize;
                    }
                }
                frame_head(&mut self.out, 0, SETTINGS, FLAG_ACK, 0);
            }
            PING if flags & FLAG_ACK == 0 => {
                frame_head(&mut self.out, payload.len(), PING, FLAG_ACK, 0);
                self.out.extend_from_slice(payload);
            }
            GOAWAY => return Err("server sent GOAWAY".into()),
            WINDOW_UPDATE if stream == 0 && payload.len() == 4 => {
                let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.send_window += i64::from(inc & MAX_WINDOW);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses every complete frame at the front of `buf`; returns how many bytes were consumed.
fn parse_frames(conn: &mut Conn<'_>, buf: &[u8]) -> Result<usize, String> {
    let mut pos = 0;
    while let Some(head) = buf.get(pos..pos + 9) {
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let Some(payload) = buf.get(pos + 9..pos + 9 + len) else {
            break;
        };
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & MAX_WINDOW;
        conn.frame(head[3], head[4], stream, payload)?;
        pos += 9 + len;
    }
    Ok(pos)
}

/// Runs one connection with `in_flight` outstanding requests of `call` until `window.end`,
/// then waits for the stragglers.
pub fn run_connection(
    socket: &Path,
    call: &Call,
    validate: &Validator,
    in_flight: usize,
    window: Window,
) -> ConnStats {
    let mut conn = Conn {
        call,
        validate,
        window,
        next_stream: 1,
        in_flight: HashMap::with_capacity(in_flight * 2),
        to_issue: in_flight,
        send_window: 65_535,
        peer_max_streams: usize::MAX,
        sample_every: 4096,
        issued: 0,
        out: Vec::with_capacity(64 * 1024),
        stats: ConnStats::default(),
    };
    if let Err(e) = drive(&mut conn, socket) {
        conn.stats.failure = Some(e);
    }
    conn.stats.errors += conn.in_flight.len() as u64;
    conn.stats
}

fn drive(conn: &mut Conn<'_>, socket: &Path) -> Result<(), String> {
    let mut sock = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    client_preamble(&mut conn.out);
    let mut buf = vec![0u8; 256 * 1024];
    let mut filled = 0;
    loop {
        let now = Instant::now();
        if now <= conn.window.end {
            conn.issue(now);
        } else if conn.in_flight.is_empty() {
            return Ok(());
        } else if now > conn.window.end + DRAIN_TIMEOUT {
            return Err(format!("{} requests unanswered", conn.in_flight.len()));
        }
        if !conn.out.is_empty() {
            sock.write_all(&conn.out)
                .map_err(|e| format!("write: {e}"))?;
            conn.out.clear();
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match sock.read(&mut buf[filled..]) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        if now >= conn.window.start && now <= conn.window.end {
            conn.stats.bytes_in += n as u64;
        }
        filled += n;
        let before = conn.stats.latencies_ns.len();
        let used = parse_frames(conn, &buf[..filled])?;
        if now >= conn.window.start && now <= conn.window.end {
            conn.stats.responses_in_window += (conn.stats.latencies_ns.len() - before) as u64;
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
}

/// One request on a fresh connection; returns the response message (without the gRPC prefix),
/// or an error for a trailers-only (gRPC error) answer.
pub fn unary(socket: &Path, call: &Call) -> Result<Vec<u8>, String> {
    let got: std::cell::RefCell<Option<Vec<u8>>> = std::cell::RefCell::new(None);
    let validate: Validator = Arc::new(|_| true);
    let far = Instant::now() + Duration::from_secs(5);
    let mut conn = Conn {
        call,
        validate: &validate,
        window: Window {
            start: Instant::now(),
            end: far,
        },
        next_stream: 1,
        in_flight: HashMap::new(),
        to_issue: 1,
        send_window: 65_535,
        peer_max_streams: usize::MAX,
        sample_every: 1,
        issued: 0,
        out: Vec::new(),
        stats: ConnStats::default(),
    };
    let mut sock = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    client_preamble(&mut conn.out);
    conn.issue(Instant::now());
    sock.write_all(&conn.out).map_err(|e| e.to_string())?;
    conn.out.clear();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = sock.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Capture the body before `complete` drops it.
        let mut pos = 0;
        while let Some(head) = buf.get(pos..pos + 9) {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let Some(payload) = buf.get(pos + 9..pos + 9 + len) else {
                break;
            };
            let (ty, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & MAX_WINDOW;
            if ty == DATA && stream == 1 {
                got.borrow_mut()
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(payload);
            }
            conn.frame(ty, flags, stream, payload)?;
            pos += 9 + len;
        }
        buf.drain(..pos);
        if !conn.out.is_empty() {
            sock.write_all(&conn.out).map_err(|e| e.to_string())?;
            conn.out.clear();
        }
        if conn.in_flight.is_empty() {
            return match got.into_inner() {
                Some(b) if conn.stats.errors == 0 && b.len() >= 5 => Ok(b[5..].to_vec()),
                _ => Err("no response message (gRPC error or reset)".into()),
            };
        }
    }
}
