//! A minimal HTTP/1.1 responder for `/metrics`, `/livez` and `/readyz` on std::net (no HTTP
//! library in the static binary).
//!
//! One request per connection (`Connection: close`), `GET` and `HEAD` only. Bounded: request
//! head size ([`Limits::max_request_bytes`]), concurrent connections
//! ([`Limits::max_connections`]; beyond it a connection gets `503` at once), read and write
//! timeouts. `/livez` answers `200 ok` whenever the process can answer at all (never tied to
//! the remote KMS); `/readyz` answers `200 ok` when healthz is `ok`, else `503` with the cause,
//! and then a `warning: ...` line for a health warning ([`readyz`]).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use kms_plugin_core::metrics::addr::readyz_answer;
pub use kms_plugin_core::metrics::addr::{DEFAULT_PORT, is_loopback, parse_addr};

/// What the responder serves; implemented by the running server.
pub trait Probe: Send + Sync + 'static {
    /// Appends the Prometheus text exposition (format 0.0.4).
    fn render_metrics(&self, out: &mut String);
    /// `Ok(())` when ready (healthz `ok`), else the cause.
    fn readiness(&self) -> Result<(), String>;
    /// A condition to report beside readiness without changing it (e.g. Vault over plain
    /// http); `None` by default.
    fn health_warning(&self) -> Option<&'static str> {
        None
    }
}

/// The `/readyz` answer of `probe`: `200 ok` when ready, else `503 not ready: <cause>`; a
/// health warning adds a line `warning: <text>` and never changes the status code.
pub fn readyz(probe: &dyn Probe) -> (u16, String) {
    let readiness = probe.readiness();
    let (status, mut body) = readyz_answer(readiness.as_ref().map_err(String::as_str).copied());
    if let Some(warning) = probe.health_warning() {
        body.push_str("warning: ");
        body.push_str(warning);
        body.push('\n');
    }
    (status, body)
}

/// Resource bounds of the responder.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head (request line + headers) read; larger gets `431`.
    pub max_request_bytes: usize,
    /// Connections served at once; more get `503` and are closed.
    pub max_connections: usize,
    /// Read timeout for the request head.
    pub read_timeout: Duration,
    /// Write timeout for the response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 * 1024,
            max_connections: 16,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// A running responder; [`MetricsServer::stop`] ends it.
pub struct MetricsServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `probe` on a background thread.
    pub fn start(addr: SocketAddr, probe: Arc<dyn Probe>, limits: Limits) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let stop = stopping.clone();
        let accept = thread::Builder::new()
            .name("kms-metrics".into())
            .spawn(move || accept_loop(&listener, &probe, limits, &stop, &active))?;
        Ok(Self {
            addr,
            stopping,
            accept: Some(accept),
        })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept thread (requests in progress finish on their
    /// own threads, bounded by the timeouts).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection to ourselves.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop_inner();
        }
    }
}

/// Decrements the active-connection count when a connection's thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: &TcpListener,
    probe: &Arc<dyn Probe>,
    limits: Limits,
    stopping: &AtomicBool,
    active: &Arc<AtomicUsize>,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // EMFILE and friends: back off briefly instead of spinning.
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = stream.set_read_timeout(Some(limits.read_timeout));
        let _ = stream.set_write_timeout(Some(limits.write_timeout));
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            refuse(stream);
            continue;
        }
        let slot = Slot(active.clone());
        let probe = probe.clone();
        // On a spawn failure the slot, moved into the closure, is dropped with it.
        let _ = thread::Builder::new()
            .name("kms-metrics-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve_one(stream, &*probe, limits.max_request_bytes);
            });
    }
}

/// Answers `503` without serving, on the accept thread without blocking it: whatever request
/// bytes already arrived are drained first, so the close is a FIN rather than a reset that
/// could destroy the answer in flight.
fn refuse(mut stream: TcpStream) {
    let _ = respond(
        &mut stream,
        false,
        503,
        "text/plain; charset=utf-8",
        b"too many connections\n",
    );
    let _ = stream.shutdown(Shutdown::Write);
    if stream.set_nonblocking(true).is_ok() {
        let mut sink = [0u8; 1024];
        for _ in 0..16 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Reads the request head: until the blank line, at most `max` bytes.
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Broken,
}

fn read_head(stream: &mut TcpStream, max: usize) -> Head {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_blank_line(&buf) {
            buf.truncate(end);
            return Head::Complete(buf);
        }
        if buf.len() >= max {
            return Head::TooLarge;
        }
        let want = chunk.len().min(max - buf.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return Head::Broken,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // RFC 9112 §2.2: a recipient MAY recognize a single LF as a line terminator.
        buf.windows(2).position(|w| w == b"\n\n")
    })
}

fn serve_one(mut stream: TcpStream, probe: &dyn Probe, max_request_bytes: usize) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let head = match read_head(&mut stream, max_request_bytes) {
        Head::Complete(h) => h,
        Head::TooLarge => {
            let _ = respond(&mut stream, false, 431, TEXT, b"request too large\n");
            return;
        }
        Head::Broken => return,
    };
    let request_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let _ = respond(&mut stream, false, 400, TEXT, b"bad request\n");
        return;
    };
    if !version.starts_with("HTTP/1.") {
        let _ = respond(&mut stream, false, 505, TEXT, b"HTTP/1.x only\n");
        return;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let _ = respond(&mut stream, false, 405, TEXT, b"GET or HEAD only\n");
            return;
        }
    };
    let path = target.split('?').next().unwrap_or_default();
    let _ = match path {
        "/metrics" => {
            let mut body = String::with_capacity(32 * 1024);
            probe.render_metrics(&mut body);
            respond(
                &mut stream,
                head_only,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            )
        }
        "/livez" => respond(&mut stream, head_only, 200, TEXT, b"ok\n"),
        "/readyz" => {
            let (status, body) = readyz(probe);
            respond(&mut stream, head_only, status, TEXT, body.as_bytes())
        }
        _ => respond(
            &mut stream,
            head_only,
            404,
            TEXT,
            b"not found; try /metrics, /livez or /readyz\n",
        ),
    };
    let _ = stream.shutdown(Shutdown::Write);
}

fn respond(
    stream: &mut TcpStream,
    head_only: bool,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)?;
    stream.flush()
}
