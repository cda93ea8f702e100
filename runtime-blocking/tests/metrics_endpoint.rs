//! The `/metrics`, `/livez` and `/readyz` responder over real TCP on 127.0.0.1: HTTP edge
//! cases against a fake probe (readiness flipping 503 -> 200, limits), then the real
//! `kms-plugin serve --metrics-addr` binary: a KMS v1 + v2 session over its Unix socket, a
//! scrape whose every family is present with bounded labels, readiness following the key
//! file, and a search of every log byte for the key file's keys, the plaintexts and the raw
//! key id.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::float_cmp
)]

#[path = "../../core/tests/metrics_support/mod.rs"]
mod metrics_support;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kms_plugin_blocking::observe::metrics_server::{
    Limits, MetricsServer, Probe, is_loopback, parse_addr,
};
use kms_plugin_core::rpc::Code;
use kms_plugin_core::testing::kms_messages as msg;
use kms_plugin_core::testing::wire_client::{CallOptions, ClientResponse, WireClient};
use metrics_support::{FAMILIES, assert_absent, check_bounded, parse};

/// A real HTTP/1.1 GET (or any raw request); returns (status, headers, body).
fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
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

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

struct FakeProbe {
    healthy: AtomicBool,
}

impl Probe for FakeProbe {
    fn render_metrics(&self, out: &mut String) {
        out.push_str("# HELP up fake\n# TYPE up gauge\nup 1\n");
    }
    fn readiness(&self) -> Result<(), String> {
        if self.healthy.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("remote kms unreachable: timeout".into())
        }
    }
}

fn fake(limits: Limits) -> (MetricsServer, Arc<FakeProbe>) {
    let probe = Arc::new(FakeProbe {
        healthy: AtomicBool::new(false),
    });
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), probe.clone(), limits)
        .expect("bind 127.0.0.1:0");
    (server, probe)
}

#[test]
fn livez_always_ok_and_readyz_follows_health() {
    let (server, probe) = fake(Limits::default());
    let addr = server.local_addr();
    assert!(is_loopback(&addr) && addr.port() != 0);
    let (code, _, body) = get(addr, "/readyz");
    assert_eq!(
        (code, body.as_str()),
        (503, "not ready: remote kms unreachable: timeout\n")
    );
    assert_eq!(
        get(addr, "/livez").0,
        200,
        "livez does not depend on health"
    );
    probe.healthy.store(true, Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz"), get(addr, "/readyz?verbose"));
    let (code, head, body) = get(addr, "/readyz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert!(head.contains("Content-Length: 3\r\n"), "{head}");
    probe.healthy.store(false, Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz").0, 503);
    let (code, _, body) = get(addr, "/livez");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, head, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(body, "# HELP up fake\n# TYPE up gauge\nup 1\n");
    server.stop();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn http_edge_cases() {
    let (server, _) = fake(Limits {
        max_request_bytes: 256,
        ..Limits::default()
    });
    let addr = server.local_addr();
    assert_eq!(get(addr, "/nope").0, 404);
    let (code, head, _) = http_raw(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(code, 405);
    assert!(head.contains("Allow: GET, HEAD"));
    let (code, head, body) = http_raw(addr, b"HEAD /livez HTTP/1.1\r\n\r\n");
    assert_eq!((code, body.as_str()), (200, ""));
    assert!(head.contains("Content-Length: 3"));
    assert_eq!(http_raw(addr, b"GET /livez\r\n\r\n").0, 400);
    assert_eq!(http_raw(addr, b"GET /livez HTTP/2.0\r\n\r\n").0, 505);
    // Bare-LF line endings (RFC 9112 §2.2 leniency).
    assert_eq!(http_raw(addr, b"GET /livez HTTP/1.0\n\n").0, 200);
    let big = format!("GET /livez HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(400));
    assert_eq!(http_raw(addr, big.as_bytes()).0, 431);
    // A client that sends nothing and closes does not disturb the next one.
    drop(TcpStream::connect(addr).unwrap());
    assert_eq!(get(addr, "/livez").0, 200);
}

#[test]
fn connections_beyond_the_limit_get_503() {
    let (server, _) = fake(Limits {
        max_connections: 1,
        read_timeout: Duration::from_secs(10),
        ..Limits::default()
    });
    let addr = server.local_addr();
    // Hold the only slot with a half-sent request...
    let mut holder = TcpStream::connect(addr).unwrap();
    holder.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
    // ...until the server has certainly accepted it: a later connection is refused with 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, body) = get(addr, "/livez");
        if code == 503 {
            assert_eq!(body, "too many connections\n");
            break;
        }
        assert!(Instant::now() < deadline, "no 503 while the slot is held");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Finishing the held request frees the slot.
    holder.write_all(b"\r\n").unwrap();
    let mut out = String::new();
    holder.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/livez").0 != 200 {
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_addr_forms() {
    let ok = |s: &str| parse_addr(s).unwrap().to_string();
    assert_eq!(ok("9464"), "127.0.0.1:9464");
    assert_eq!(ok(":9464"), "127.0.0.1:9464");
    assert_eq!(ok("localhost:9000"), "127.0.0.1:9000");
    assert_eq!(ok("[::1]:9464"), "[::1]:9464");
    assert_eq!(ok("0.0.0.0:9464"), "0.0.0.0:9464");
    assert!(!is_loopback(&parse_addr("0.0.0.0:9464").unwrap()));
    assert!(is_loopback(&parse_addr("[::1]:1").unwrap()));
    for bad in [
        "",
        "metrics.example:9464",
        "127.0.0.1",
        "127.0.0.1:99999",
        ":x",
        "[::1]",
    ] {
        let e = parse_addr(bad).unwrap_err();
        assert!(e.contains("--metrics-addr"), "{e}");
    }
}

// --- the real binary ---------------------------------------------------------------------

/// A `kms-plugin serve` whose every stderr byte is kept.
struct Served {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    notify: mpsc::Receiver<String>,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(support::BIN)
            .arg("serve")
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

    fn wait_line(&self, needle: &str) -> String {
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
    fn stop(mut self) -> Vec<String> {
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
        // The reader thread ends at EOF; wait for the final line.
        let _ = self.wait_line("stopped");
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
fn call(
    sock: &mut UnixStream,
    client: &mut WireClient,
    path: &str,
    message: &[u8],
) -> ClientResponse {
    let opts = CallOptions {
        authority: "localhost".into(),
        timeout: Some(Duration::from_secs(5)),
    };
    let stream = client.unary(path, message, &opts);
    sock.write_all(&client.take_output()).unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(r) = client.take_response(stream) {
            return r;
        }
        let n = sock.read(&mut buf).expect("read from the plugin");
        assert!(n > 0, "plugin closed the connection");
        client.receive(&buf[..n]);
        if client.has_output() {
            sock.write_all(&client.take_output()).unwrap();
        }
    }
}

fn ok(r: &ClientResponse) -> kms_plugin_core::rpc::Response {
    let r = r.to_rpc();
    assert_eq!(r.code, Code::Ok, "{}", r.message);
    r
}

fn wait_ready(addr: SocketAddr, want: u16) -> String {
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

#[test]
fn real_binary_scrape_readiness_and_log_redaction() {
    let dir = support::TempDir::new("metrics");
    let key_file = support::init_keys(&dir);
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let keys: Vec<Vec<u8>> = key_text
        .lines()
        .filter(|l| l.starts_with("key "))
        .map(|l| {
            let b64 = l.split_whitespace().nth(3).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        })
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].len(), 32);
    let socket = dir.join("kms.sock");
    let listen = format!("unix://{}", socket.display());
    let plugin = Served::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--status-refresh",
        "0.2",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    let line = plugin.wait_line("metrics listening");
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
    let mut client = WireClient::new();
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
    let (code, _, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    let exp = parse(&body);
    let seen = check_bounded(&exp);
    for (family, _, _) in FAMILIES {
        assert!(seen.contains(*family), "{family} missing:\n{body}");
    }
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
    assert_absent(body.as_bytes(), &keys[0], "key file key");

    // Readiness follows the key file: gone -> 503 with the cause, back -> 200.
    let moved = dir.join("keyring.away");
    std::fs::rename(&key_file, &moved).unwrap();
    let cause = wait_ready(addr, 503);
    assert!(cause.starts_with("not ready: "), "{cause}");
    assert_eq!(
        get(addr, "/livez").0,
        200,
        "livez is not tied to the remote KMS"
    );
    std::fs::rename(&moved, &key_file).unwrap();
    wait_ready(addr, 200);
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
    assert_absent(all.as_bytes(), &keys[0], "key file key");
    for p in &plaintexts {
        assert_absent(all.as_bytes(), p, "plaintext");
    }
    assert_absent(all.as_bytes(), key_id.as_bytes(), "unhashed key id");
    assert!(
        all.contains(&kms_plugin_core::metrics::hash_key_id(&key_id)),
        "hashed key id logged"
    );
}
