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

mod metrics_e2e;
#[path = "../../core/tests/metrics_support/mod.rs"]
mod metrics_support;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kms_plugin_blocking::observe::metrics_server::{
    Limits, MetricsServer, is_loopback, parse_addr,
};
use metrics_e2e::{FakeProbe, get, http_raw};

fn fake(limits: Limits) -> (MetricsServer, Arc<FakeProbe>) {
    let probe = FakeProbe::new();
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

/// A health warning (e.g. Vault over plain http) is one more `/readyz` line and never changes
/// the status code either way; without one the body is exactly the readiness line.
#[test]
fn readyz_reports_a_health_warning_without_changing_readiness() {
    let (server, probe) = fake(Limits::default());
    let addr = server.local_addr();
    probe.warned.store(true, Ordering::SeqCst);
    let warning = format!("warning: {}\n", FakeProbe::WARNING);
    let (code, _, body) = get(addr, "/readyz");
    assert_eq!(code, 503);
    assert_eq!(body, format!("not ready: {}\n{warning}", FakeProbe::CAUSE));
    probe.healthy.store(true, Ordering::SeqCst);
    let (code, _, body) = get(addr, "/readyz");
    assert_eq!((code, body), (200, format!("ok\n{warning}")));
    probe.warned.store(false, Ordering::SeqCst);
    let (code, _, body) = get(addr, "/readyz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert_eq!(get(addr, "/livez").2, "ok\n", "livez carries no warning");
    server.stop();
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
    metrics_e2e::session(
        support::BIN,
        &["serve", "--status-refresh", "0.2"],
        &key_file,
        &keys[0],
        true,
    );
}
