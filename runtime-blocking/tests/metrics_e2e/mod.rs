//! The real-binary metrics session shared by both runtimes' tests: start the binary with
//! `--metrics-addr 127.0.0.1:0`, run KMS v1 + v2 round trips of known plaintexts over its Unix
//! socket with the in-memory HTTP/2 client, scrape `/metrics` (every family, bounded labels,
//! counts), check `/livez` and `/readyz`, stop it with SIGTERM, and search every log byte for
//! the key file's key, the plaintexts and the raw key id.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::float_cmp,
    clippy::missing_panics_doc
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use kms_plugin_core::rpc::Code;
use kms_plugin_testkit::client::{ClientResponse, RequestOptions, TestClient};
use kms_plugin_testkit::kms_messages as msg;

use crate::metrics_support::{FAMILIES, always_sampled, assert_absent, check_bounded, parse};

/// A probe whose readiness a test flips; its metrics are one fixed gauge.
pub struct FakeProbe {
    pub healthy: std::sync::atomic::AtomicBool,
    /// Whether [`FakeProbe::WARNING`] is reported as a health warning.
    pub warned: std::sync::atomic::AtomicBool,
}

impl FakeProbe {
    /// The cause `/readyz` reports while not healthy.
    pub const CAUSE: &'static str = "remote kms unreachable: timeout";
    /// The health warning reported while `warned` is set.
    pub const WARNING: &'static str = "fake remote reached in cleartext (--fake-insecure)";

    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            healthy: std::sync::atomic::AtomicBool::new(false),
            warned: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

impl kms_plugin_blocking::observe::metrics_server::Probe for FakeProbe {
    fn render_metrics(&self, out: &mut String) {
        out.push_str("# HELP up fake\n# TYPE up gauge\nup 1\n");
    }
    fn readiness(&self) -> Result<(), String> {
        if self.healthy.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Self::CAUSE.into())
        }
    }
    fn health_warning(&self) -> Option<&'static str> {
        self.warned
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(Self::WARNING)
    }
}

/// `GET /metrics`: answered 200, every family present with its type, every label value
/// bounded. Returns the parsed exposition and the body.
pub fn scrape_checked(addr: SocketAddr) -> (crate::metrics_support::Exposition, String) {
    let (code, _, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    let exp = parse(&body);
    let seen = check_bounded(&exp);
    for (family, ty, _) in FAMILIES {
        assert_eq!(
            exp.types.get(*family).map(String::as_str),
            Some(*ty),
            "{family}"
        );
        assert!(
            seen.contains(*family) || !always_sampled(family),
            "{family} missing:\n{body}"
        );
    }
    (exp, body)
}

/// A real HTTP/1.1 GET (or any raw request); returns (status, headers, body).
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, head.to_string(), body.to_string())
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

/// A `kms-plugin serve` whose every stderr byte is kept.
pub struct Served {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    notify: mpsc::Receiver<String>,
}

impl Served {
    pub fn start(bin: &str, args: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kms-plugin");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, notify) = mpsc::channel();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            notify,
        }
    }

    pub fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.notify.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!(
                    "no line with {needle:?} ({e:?}); log:\n{}",
                    self.lines.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// SIGTERM, bounded wait, and every log line.
    pub fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The reader thread hangs up at EOF: then every line has been kept.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.notify.recv_timeout(left) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("stderr not closed after exit: {e:?}"),
            }
        }
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One gRPC call over a real Unix socket with the in-memory HTTP/2 client.
pub fn call(
    sock: &mut UnixStream,
    client: &mut TestClient,
    path: &str,
    message: &[u8],
) -> ClientResponse {
    let opts = RequestOptions::apiserver("localhost", Duration::from_secs(5));
    let (stream, bytes) = client.unary(path, message, &opts);
    sock.write_all(&bytes).unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(r) = client.take_response(stream) {
            return r;
        }
        let n = sock.read(&mut buf).expect("read from the plugin");
        assert!(n > 0, "plugin closed the connection");
        client.receive(&buf[..n]);
        assert!(
            client.protocol_errors.is_empty(),
            "the plugin broke RFC 9113: {:?}",
            client.protocol_errors
        );
        if client.has_output() {
            sock.write_all(&client.pending_output()).unwrap();
        }
    }
}

pub fn ok(r: &ClientResponse) -> kms_plugin_core::rpc::Response {
    let r = r.to_rpc();
    assert_eq!(r.code, Code::Ok, "{}", r.message);
    r
}

pub fn wait_ready(addr: SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, body) = get(addr, "/readyz");
        if code == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {want} (last {code} {body})"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs the whole session against `bin` (`args` come first, e.g. `["serve"]`); `key` is the
/// one key in `key_file`. With `readiness_follows_key_file`, the key file is moved away until
/// `/readyz` answers 503, then back until 200 (the binary must re-read it, e.g. with a short
/// status refresh in `args`).
pub fn session(
    bin: &str,
    args: &[&str],
    key_file: &Path,
    key: &[u8],
    readiness_follows_key_file: bool,
) {
    let socket = key_file.with_file_name("kms.sock");
    let listen = format!("unix://{}", socket.display());
    let mut all_args: Vec<&str> = args.to_vec();
    all_args.extend_from_slice(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    let plugin = Served::start(bin, &all_args);
    let line = plugin.wait_line("serving metrics");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(get(addr, "/livez").0, 200);
    wait_ready(addr, 200);

    let plaintexts: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("metrics-e2e-secret-{i}-never-in-logs-7f3a9c").into_bytes())
        .collect();
    let mut sock = UnixStream::connect(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut client = TestClient::connecting();
    let st = msg::decode_status(&ok(&call(
        &mut sock,
        &mut client,
        msg::V2_STATUS,
        &msg::v2_status(),
    )));
    assert_eq!(st.healthz, "ok");
    let key_id = st.key_id.clone();
    for (i, p) in plaintexts.iter().enumerate() {
        let enc = msg::decode_v2_encrypt(&ok(&call(
            &mut sock,
            &mut client,
            msg::V2_ENCRYPT,
            &msg::v2_encrypt(p, &format!("e2e-uid-{i}")),
        )));
        let back = msg::decode_v2_plaintext(&ok(&call(
            &mut sock,
            &mut client,
            msg::V2_DECRYPT,
            &msg::v2_decrypt(&enc, &format!("e2e-uid-dec-{i}")),
        )));
        assert_eq!(&back, p);
        let c = msg::decode_v1_cipher(&ok(&call(
            &mut sock,
            &mut client,
            msg::V1_ENCRYPT,
            &msg::v1_encrypt(p),
        )));
        let back = msg::decode_v1_plain(&ok(&call(
            &mut sock,
            &mut client,
            msg::V1_DECRYPT,
            &msg::v1_decrypt(&c),
        )));
        assert_eq!(&back, p);
    }

    // The scrape: every family present, every label value bounded, counts as sent.
    let (exp, body) = scrape_checked(addr);
    let n = |name: &str, labels: &[(&str, &str)]| exp.value(name, labels).unwrap_or(-1.0);
    let req = "kms_plugin_grpc_requests_total";
    assert_eq!(n(req, &[("method", "v2.Encrypt"), ("code", "OK")]), 3.0);
    assert_eq!(
        n(req, &[("method", "v1beta1.Decrypt"), ("code", "OK")]),
        3.0
    );
    assert_eq!(n("kms_plugin_connections_open", &[]), 1.0);
    assert_eq!(n("kms_plugin_healthz", &[]), 1.0);
    assert!(
        n(
            "kms_plugin_remote_operations_total",
            &[("provider", "local"), ("op", "status"), ("error", "none")]
        ) >= 1.0
    );
    assert!(!body.contains(&key_id), "raw key id in /metrics");
    assert_absent(body.as_bytes(), key, "key file key");

    if readiness_follows_key_file {
        // Readiness follows the key file: gone -> 503 with the cause, back -> 200.
        let moved = key_file.with_extension("away");
        std::fs::rename(key_file, &moved).unwrap();
        let cause = wait_ready(addr, 503);
        assert!(cause.starts_with("not ready: "), "{cause}");
        assert_eq!(
            get(addr, "/livez").0,
            200,
            "livez is not tied to the remote KMS"
        );
        std::fs::rename(&moved, key_file).unwrap();
        wait_ready(addr, 200);
    }
    drop(sock);

    let lines = plugin.stop();
    let all = lines.join("\n");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["ts"].is_number() && v["level"].is_string() && v["msg"].is_string(),
            "{line}"
        );
    }
    assert!(
        all.contains("e2e-uid-1") && all.contains("e2e-uid-dec-2"),
        "uids correlate:\n{all}"
    );
    assert!(
        all.contains("remote status refreshed"),
        "debug health polling logged:\n{all}"
    );
    assert_absent(all.as_bytes(), key, "key file key");
    for p in &plaintexts {
        assert_absent(all.as_bytes(), p, "plaintext");
    }
    assert_absent(all.as_bytes(), key_id.as_bytes(), "unhashed key id");
    assert!(
        all.contains(&kms_plugin_core::metrics::hash_key_id(&key_id)),
        "hashed key id logged"
    );
}
