//! `--shutdown-grace` on SIGTERM: it is the process's grace and also each connection's in the
//! core (`transport.shutdown_grace`, 5 s by default), which closes a connection whose streams
//! are still open when it runs out. A request in flight is one whose HEADERS the plugin has
//! read (a PING sent after them is acknowledged) and whose DATA the client still holds, so the
//! client decides when it completes. Waits are on socket reads and process exit, bounded.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kms_plugin_core::rpc::{Code, StreamId};
use kms_plugin_testkit::client::{ClientResponse, RequestOptions, TestClient, ping_frame};
use kms_plugin_testkit::kms_messages as msg;

use super::Bin;
use crate::support::Plugin;

const WAIT: Duration = Duration::from_secs(20);
/// The core's per-connection grace when `--shutdown-grace` does not reach it.
const CORE_DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A raw HTTP/2 connection with one Encrypt in flight: its DATA frame not sent yet.
struct InFlight {
    sock: UnixStream,
    client: TestClient,
    stream: StreamId,
    data: Vec<u8>,
}

impl InFlight {
    /// Connects, sends an Encrypt's HEADERS and then a PING, and waits for the PING's ACK: the
    /// plugin has read the HEADERS, so the stream is open on its side.
    fn open(path: &Path) -> Self {
        let mut sock = UnixStream::connect(path).expect("connect");
        let mut client = TestClient::new();
        sock.write_all(&client.handshake()).unwrap();
        let opts = RequestOptions::apiserver("localhost", Duration::from_secs(30));
        let encrypt = msg::v2_encrypt(b"in flight at SIGTERM", "grace");
        let (stream, bytes) = client.unary("/v2.KeyManagementService/Encrypt", &encrypt, &opts);
        // The first frame is the HEADERS (one frame: the block is small); DATA follows.
        let headers_len =
            9 + (usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8) + usize::from(bytes[2]);
        let (headers, data) = bytes.split_at(headers_len);
        sock.write_all(headers).unwrap();
        sock.write_all(&ping_frame(*b"grace-hd")).unwrap();
        let mut conn = Self {
            sock,
            client,
            stream,
            data: data.to_vec(),
        };
        conn.read_until(|c| c.ping_acks.contains(b"grace-hd"), "the PING ACK");
        conn
    }

    /// Reads (answering SETTINGS and PINGs) until `done`; panics on EOF or after [`WAIT`].
    fn read_until(&mut self, done: impl Fn(&TestClient) -> bool, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.client) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} within {WAIT:?}");
            assert!(self.read(left).expect("read") > 0, "EOF before {what}");
        }
    }

    /// One read of at most `timeout`: Ok(0) at EOF, Err(TimedOut) when nothing came.
    fn read(&mut self, timeout: Duration) -> std::io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let n = match self.sock.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err(ErrorKind::TimedOut.into());
            }
            other => other?,
        };
        self.client.receive(&buf[..n]);
        if self.client.has_output() {
            let out = self.client.pending_output();
            // The plugin may have closed its side already; what matters is what it sent.
            let _ = self.sock.write_all(&out);
        }
        Ok(n)
    }

    /// Reads until EOF (the plugin closed the connection); when, or panics after [`WAIT`].
    fn read_to_eof(&mut self) -> Instant {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the plugin never closed the connection");
            match self.read(left) {
                Ok(0) => return Instant::now(),
                Err(e) if e.kind() != ErrorKind::TimedOut => panic!("read: {e}"),
                _ => {}
            }
        }
    }

    /// The GOAWAY the plugin sent on SIGTERM: (last stream id, error code).
    fn wait_goaway(&mut self) -> (u32, u32) {
        self.read_until(|c| c.goaway().is_some(), "GOAWAY after SIGTERM");
        self.client.goaway().unwrap()
    }

    /// Sends the DATA held back and waits for the answer.
    fn complete(&mut self) -> ClientResponse {
        let data = std::mem::take(&mut self.data);
        self.sock
            .write_all(&data)
            .expect("the connection is still open");
        let stream = self.stream;
        self.read_until(|c| c.is_done(stream), "answer to the request in flight");
        self.client.take_response(stream).unwrap()
    }
}

/// Sends SIGTERM to `plugin` without waiting; when.
fn sigterm(plugin: &Plugin) -> Instant {
    let at = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &plugin.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    at
}

/// Waits (at most [`WAIT`]) for `plugin` to exit: its exit code and when.
fn wait_exit(mut plugin: Plugin) -> (i32, Instant) {
    let mut child = plugin.child.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    match rx.recv_timeout(WAIT) {
        Ok((Ok(status), at)) => (status.code().unwrap_or(-1), at),
        other => panic!("plugin did not exit within {WAIT:?} of SIGTERM: {other:?}"),
    }
}

/// With `--shutdown-grace 10`, a request in flight at SIGTERM is answered after the core's own
/// 5 s default has passed: the flag reached the core's per-connection grace (with the default
/// the core would close the connection at 5 s). Then the plugin exits 0 at once, long before
/// its grace is over.
pub fn shutdown_grace_answers_a_request_in_flight(bin: Bin) {
    let served = bin.start("parity-grace", &["--shutdown-grace", "10"]);
    served.plugin.wait_log(" healthy", WAIT);
    let mut conn = InFlight::open(&served.sock);
    let signalled = sigterm(&served.plugin);
    let (last_stream, code) = conn.wait_goaway();
    let goaway_at = Instant::now();
    assert_eq!(
        (last_stream, code),
        (conn.stream, 0),
        "GOAWAY(NO_ERROR) covering the stream in flight"
    );
    // Past the core's default grace, give or take a second for its timer: nothing arrives,
    // in particular no EOF. (This waits for time to pass; it is what the test is about.)
    let quiet_until = goaway_at + CORE_DEFAULT_GRACE + Duration::from_secs(1);
    loop {
        let left = quiet_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match conn.read(left) {
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Ok(0) => panic!(
                "connection closed {:?} after GOAWAY: the core's grace is not --shutdown-grace",
                goaway_at.elapsed()
            ),
            other => panic!("unexpected {other:?} while the request is in flight"),
        }
    }
    let response = conn.complete();
    let rpc = response.to_rpc();
    assert_eq!(rpc.code, Code::Ok, "{}", rpc.message);
    assert!(!msg::decode_v2_encrypt(&rpc).ciphertext.is_empty());
    // Drained: the connection closes and the process exits without waiting out the grace.
    conn.read_to_eof();
    let (code, exited) = wait_exit(served.plugin);
    assert_eq!(code, 0, "clean exit after draining");
    let took = exited - signalled;
    assert!(
        took < Duration::from_secs(10),
        "exit {took:?} after SIGTERM"
    );
}

/// With `--shutdown-grace 1`, a request that never completes holds the plugin about 1 s: the
/// connection is closed no earlier than 1 s after SIGTERM and the process then exits 0.
pub fn shutdown_grace_bounds_a_request_that_never_completes(bin: Bin) {
    let served = bin.start("parity-grace-short", &["--shutdown-grace", "1"]);
    let mut conn = InFlight::open(&served.sock);
    let signalled = sigterm(&served.plugin);
    conn.wait_goaway();
    let closed = conn.read_to_eof() - signalled;
    assert!(
        closed >= Duration::from_secs(1) && closed < Duration::from_secs(4),
        "connection closed {closed:?} after SIGTERM, want about the 1 s grace"
    );
    assert!(
        !conn.client.is_done(conn.stream),
        "the request was never answered"
    );
    drop(conn);
    let (code, exited) = wait_exit(served.plugin);
    assert_eq!(code, 0);
    let took = exited - signalled;
    assert!(took < Duration::from_secs(5), "exit {took:?} after SIGTERM");
}
