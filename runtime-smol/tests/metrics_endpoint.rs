//! The smol runtime's hyper `/metrics`, `/livez` and `/readyz` responder over real TCP on
//! 127.0.0.1: readiness flipping 503 -> 200, HTTP edge cases and limits, then a probe over a
//! simulated plugin session (fixed seeds) whose scrape has every family with bounded labels
//! and whose logs (written through the shared event formatter) hold no key bytes, plaintexts or raw key id.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::float_cmp
)]

#[path = "../../core/tests/metrics_support/mod.rs"]
mod metrics_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kms_plugin_core::config::Config;
use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::metrics::Metrics;
use kms_plugin_core::metrics::log::{LogFormat, format_event};
use kms_plugin_core::rpc::Code;
use kms_plugin_core::secret::Secret32;
use kms_plugin_smol::observe::metrics_server::{Limits, Probe, bind, serve};
use kms_plugin_testkit::client::RequestOptions;
use kms_plugin_testkit::fake_remote::{FakeRemote, KEY_NAME};
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::sim::Sim;
use metrics_e2e::{FakeProbe, get, http_raw, scrape_checked};
use metrics_support::assert_absent;

fn healthy_probe() -> Arc<FakeProbe> {
    let probe = FakeProbe::new();
    probe.healthy.store(true, Ordering::SeqCst);
    probe
}

/// Starts the responder on the smol global executor; dropping the task stops it.
fn start(probe: Arc<dyn Probe>, limits: Limits) -> (smol::Task<std::io::Result<()>>, SocketAddr) {
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    (smol::spawn(serve(listener, probe, limits)), addr)
}

#[test]
fn livez_always_ok_and_readyz_follows_health() {
    let probe = FakeProbe::new();
    let (task, addr) = start(probe.clone(), Limits::default());
    let (code, _, body) = get(addr, "/readyz");
    assert_eq!(
        (code, body.as_str()),
        (503, format!("not ready: {}\n", FakeProbe::CAUSE).as_str())
    );
    assert_eq!(get(addr, "/livez").0, 200);
    probe.healthy.store(true, Ordering::SeqCst);
    let (code, _, body) = get(addr, "/readyz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, head, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(body, "# HELP up fake\n# TYPE up gauge\nup 1\n");
    drop(task);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still listening after the task was dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn http_edge_cases() {
    let probe = healthy_probe();
    let (_task, addr) = start(probe, Limits::default());
    assert_eq!(get(addr, "/nope").0, 404);
    let (code, head, _) = http_raw(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(code, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    let (code, head, body) = http_raw(addr, b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((code, body.as_str()), (200, ""));
    assert!(
        head.to_ascii_lowercase().contains("content-length: 3"),
        "{head}"
    );
    let big = format!(
        "GET /livez HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(http_raw(addr, big.as_bytes()).0, 431);
    assert_eq!(http_raw(addr, b"NOT HTTP AT ALL\r\n\r\n").0, 400);
    assert_eq!(get(addr, "/livez").0, 200);
}

#[test]
fn connection_limit_and_header_timeout() {
    let probe = healthy_probe();
    let (_task, addr) = start(
        probe,
        Limits {
            max_connections: 1,
            read_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
    );
    // A client that never finishes its head holds the only slot...
    let mut holder = TcpStream::connect(addr).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    holder.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
    // ...so others get 503 (poll until the server has accepted the holder)...
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_busy = false;
    while Instant::now() < deadline {
        let (code, _, body) = get(addr, "/livez");
        if code == 503 {
            assert_eq!(body, "too many connections\n");
            saw_busy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...until the header read timeout closes it, freeing the slot.
    let mut rest = Vec::new();
    let _ = holder.read_to_end(&mut rest);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/livez").0 != 200 {
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_busy, "no 503 while the only slot was held");
}

const KEK: [u8; 32] = [
    0x5e, 0x91, 0x0c, 0xa7, 0x33, 0xd8, 0x6b, 0x14, 0xf2, 0x49, 0x87, 0x2a, 0xbd, 0x60, 0x1f, 0xc5,
    0x7e, 0x03, 0x98, 0xe4, 0x51, 0x2c, 0xaf, 0x36, 0x6d, 0x90, 0x0b, 0xf7, 0x42, 0xd9, 0x15, 0x88,
];

/// A Probe over a simulated plugin, as a smol driver would implement it.
struct SimProbe {
    state: Mutex<(Sim, Metrics)>,
}

impl Probe for SimProbe {
    fn render_metrics(&self, out: &mut String) {
        let mut st = self.state.lock().unwrap();
        let (sim, metrics) = &mut *st;
        metrics.observe(&sim.plugin, sim.now);
        metrics.render(out);
    }
    fn readiness(&self) -> Result<(), String> {
        let st = self.state.lock().unwrap();
        let snap = st.0.plugin.status_snapshot(st.0.now);
        if snap.healthy {
            Ok(())
        } else {
            Err(snap.healthz.into())
        }
    }
}

#[test]
fn simulated_plugin_scrape_and_log_redaction() {
    let mut keyring = Keyring::new();
    keyring
        .add_key(KEY_NAME, Secret32::from_bytes(KEK))
        .unwrap();
    let mut sim = Sim::new(
        Config::default(),
        [3; 32],
        FakeRemote::with_keyring(keyring, [4; 32]),
    );
    sim.drive();
    let opts = RequestOptions::apiserver("localhost", Duration::from_secs(3));
    let c = sim.connect();
    let plaintexts: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("smol-secret-{i}-xyzzy-never-logged").into_bytes())
        .collect();
    for (i, p) in plaintexts.iter().enumerate() {
        let r = sim
            .call(
                c,
                msg::V2_ENCRYPT,
                &msg::v2_encrypt(p, &format!("smol-uid-{i}")),
                &opts,
            )
            .to_rpc();
        assert_eq!(r.code, Code::Ok);
        let enc = msg::decode_v2_encrypt(&r);
        let r = sim
            .call(c, msg::V2_DECRYPT, &msg::v2_decrypt(&enc, "d"), &opts)
            .to_rpc();
        assert_eq!(msg::decode_v2_plaintext(&r), *p);
    }
    let r = sim
        .call(c, msg::V2_STATUS, &msg::v2_status(), &opts)
        .to_rpc();
    let key_id = msg::decode_status(&r).key_id;

    // Every event through the std layer's formatter (what `Driver` logs), at debug level.
    let mut logs = Vec::new();
    let mut metrics = Metrics::new("local");
    for e in &sim.events {
        if let Some((_, line)) = format_event(e, LogFormat::Json, Duration::from_secs(1)) {
            logs.extend_from_slice(line.as_bytes());
        }
        metrics.record(e);
    }
    let probe = Arc::new(SimProbe {
        state: Mutex::new((sim, metrics)),
    });
    let (_task, addr) = start(probe, Limits::default());
    assert_eq!(get(addr, "/readyz").0, 200);
    let (exp, body) = scrape_checked(addr);
    assert_eq!(
        exp.value(
            "kms_plugin_grpc_requests_total",
            &[("method", "v2.Encrypt"), ("code", "OK")]
        ),
        Some(3.0)
    );

    let text = String::from_utf8(logs.clone()).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["ts"].is_number() && v["level"].is_string() && v["msg"].is_string(),
            "{line}"
        );
    }
    assert!(text.contains("\"uid\":\"smol-uid-2\""), "{text}");
    assert!(text.contains(&kms_plugin_core::metrics::hash_key_id(&key_id)));
    for haystack in [logs.as_slice(), body.as_bytes()] {
        assert_absent(haystack, &KEK, "KEK");
        assert_absent(haystack, key_id.as_bytes(), "raw key id");
        for p in &plaintexts {
            assert_absent(haystack, p, "plaintext");
        }
    }
}

#[path = "../../runtime-blocking/tests/metrics_e2e/mod.rs"]
mod metrics_e2e;
#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;

#[test]
fn real_binary_scrape_and_log_redaction() {
    let dir = support::TempDir::new("smol-metrics");
    let key_file = dir.join("keyring");
    let key = support::new_keyring(&key_file);
    metrics_e2e::session(
        env!("CARGO_BIN_EXE_kms-plugin-smol"),
        &[],
        &key_file,
        &key,
        false,
    );
}
