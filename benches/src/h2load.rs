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
//! throughput; it is the same client for every server in a run. Its frames are the core's
//! (`h2::frame` writers and `FrameHead` parser), its header block the core's HPACK encoder
//! (static table and literals without indexing), and the one-off setup calls ([`unary`]) go
//! through the shared test client (`kms_plugin_testkit::client::TestClient`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_plugin_core::h2::frame::{
    self, FrameHead, FrameKind, HEAD_LEN, MAX_WINDOW, PREFACE, flags, strip_padding,
};
use kms_plugin_core::h2::settings::{self, id};
use kms_plugin_core::hpack::Encoder;
use kms_plugin_testkit::client::{RequestOptions, TestClient, grpc_message};

/// How long to wait for the last in-flight responses after the run ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks a sampled response's gRPC message (without the 5-byte prefix).
pub type Validator = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// One unary call, pre-encoded.
#[derive(Clone)]
pub struct Call {
    path: String,
    header_block: Vec<u8>,
    data: Vec<u8>,
}

/// The request header block kube-apiserver's client sends for `path` (docs/protocol.md §2),
/// minus `user-agent`, from the core's static-table HPACK encoder: `:method POST` and `:scheme
/// http` indexed, every other field a literal without indexing (RFC 7541 §6.1, §6.2.2), so no
/// HPACK state is needed and the same bytes can be sent again and again.
pub fn header_block(path: &str, grpc_timeout: &str) -> Vec<u8> {
    let mut hb = Vec::new();
    let mut enc = Encoder::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", grpc_timeout),
    ] {
        enc.encode_field(name.as_bytes(), value.as_bytes(), false, &mut hb);
    }
    hb
}

impl Call {
    /// A call of `path` (e.g. `/v2.KeyManagementService/Status`) carrying `message`, with
    /// `:authority: localhost` and `grpc-timeout: 3S` as kube-apiserver sends.
    pub fn new(path: &str, message: &[u8]) -> Self {
        let hb = header_block(path, "3S");
        Self {
            path: path.to_owned(),
            header_block: hb,
            data: grpc_message(message),
        }
    }

    /// Bytes one request of this call puts on the wire (HEADERS + DATA frames).
    pub fn wire_len(&self) -> usize {
        9 + self.header_block.len() + 9 + self.data.len()
    }

    fn encode(&self, stream: u32, out: &mut Vec<u8>) {
        frame::write_frame(
            out,
            FrameKind::Headers,
            flags::END_HEADERS,
            stream,
            &self.header_block,
        );
        frame::write_frame(out, FrameKind::Data, flags::END_STREAM, stream, &self.data);
    }
}

fn client_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(PREFACE);
    settings::write_settings(
        out,
        &[(id::ENABLE_PUSH, 0), (id::INITIAL_WINDOW_SIZE, MAX_WINDOW)],
    );
    // Open the connection window fully so servers never wait for our WINDOW_UPDATEs.
    frame::write_window_update(out, 0, MAX_WINDOW - frame::DEFAULT_WINDOW);
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
    fn frame(&mut self, head: FrameHead, payload: &[u8]) -> Result<(), String> {
        let stream = head.stream;
        match head.kind {
            FrameKind::Data => {
                let body = strip_padding(payload, head.flags).ok_or("bad DATA padding")?;
                if let Some(f) = self.in_flight.get_mut(&stream) {
                    f.got_data = true;
                    if let Some(b) = f.body.as_mut() {
                        b.extend_from_slice(body);
                    }
                }
                if head.has(flags::END_STREAM) {
                    self.complete(stream, false);
                }
            }
            FrameKind::Headers if head.has(flags::END_STREAM) => self.complete(stream, false),
            FrameKind::RstStream => self.complete(stream, true),
            FrameKind::Settings if !head.has(flags::ACK) => {
                for s in payload.chunks_exact(6) {
                    let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    if u16::from_be_bytes([s[0], s[1]]) == id::MAX_CONCURRENT_STREAMS {
                        self.peer_max_streams = value as usize;
                    }
                }
                frame::write_settings_ack(&mut self.out);
            }
            FrameKind::Ping if !head.has(flags::ACK) => {
                let opaque = payload.first_chunk::<8>().ok_or("short PING")?;
                frame::write_ping_ack(&mut self.out, opaque);
            }
            FrameKind::GoAway => return Err("server sent GOAWAY".into()),
            FrameKind::WindowUpdate if stream == 0 => {
                let inc = payload.first_chunk::<4>().ok_or("short WINDOW_UPDATE")?;
                self.send_window += i64::from(u32::from_be_bytes(*inc) & MAX_WINDOW);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses every complete frame at the front of `buf`; returns how many bytes were consumed.
fn parse_frames(conn: &mut Conn<'_>, buf: &[u8]) -> Result<usize, String> {
    let mut pos = 0;
    while let Some(head) = buf.get(pos..).and_then(|b| b.first_chunk::<HEAD_LEN>()) {
        let head = FrameHead::parse(head);
        let end = pos + HEAD_LEN + head.len as usize;
        let Some(payload) = buf.get(pos + HEAD_LEN..end) else {
            break;
        };
        conn.frame(head, payload)?;
        pos = end;
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

/// One request on a fresh connection, made with the shared test client; returns the response
/// message (without the gRPC prefix), or an error for a gRPC error or a reset.
pub fn unary(socket: &Path, call: &Call) -> Result<Vec<u8>, String> {
    let mut sock = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut client = TestClient::connecting();
    let opts = RequestOptions::apiserver("localhost", Duration::from_secs(3));
    let message = call.data.get(5..).unwrap_or_default();
    let (stream, bytes) = client.unary(&call.path, message, &opts);
    sock.write_all(&bytes).map_err(|e| format!("write: {e}"))?;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(r) = client.take_response(stream) {
            return match (r.grpc_status, r.message) {
                (Some(0), Some(m)) => Ok(m),
                (status, _) => Err(format!(
                    "no response message: grpc-status {status:?}, reset {:?}, {:?}",
                    r.reset, r.grpc_message
                )),
            };
        }
        let n = sock.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        client.receive(&chunk[..n]);
        if !client.protocol_errors.is_empty() {
            return Err(format!(
                "malformed HTTP/2 from the server: {:?}",
                client.protocol_errors
            ));
        }
        if client.has_output() {
            sock.write_all(&client.pending_output())
                .map_err(|e| format!("write: {e}"))?;
        }
    }
}
