//! Metrics and logs of a whole simulated session (virtual clock, fixed seeds): KMS v1 and v2
//! round trips with known plaintexts, an unwrap-cache miss and hit, a remote outage and
//! recovery, a remote key rotation, an unknown method and a disconnect.
//!
//! Checks: every metric family is exported with bounded label values only; histograms are
//! cumulative; counters match what the session did; the log lines of every event (JSON and
//! text) never contain the KEK bytes, the plaintexts or the unhashed key id in any encoding,
//! JSON lines parse, and request uids correlate.

#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

use core::time::Duration;

use kms_plugin_core::config::Config;
use kms_plugin_core::effect::RemoteErrorKind;
use kms_plugin_core::event::Event;
use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::metrics::log::{Level, LogFormat, format_event};
use kms_plugin_core::metrics::{Metrics, hash_key_id};
use kms_plugin_core::rpc::Code;
use kms_plugin_core::secret::Secret32;
use kms_plugin_testkit::client::{ClientResponse, RequestOptions};
use kms_plugin_testkit::fake_remote::{FakeRemote, KEY_NAME};
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::sim::Sim;

mod metrics_support;
use metrics_support::{FAMILIES, assert_absent, check_bounded, parse};

const KEK_BYTES: [u8; 32] = [
    0xc3, 0x1f, 0x7a, 0x90, 0x2e, 0xd4, 0x58, 0xb6, 0x0b, 0x99, 0xe1, 0x4c, 0x73, 0xaa, 0x15, 0xf8,
    0x26, 0x6d, 0xbe, 0x03, 0x8f, 0x41, 0xd7, 0x5a, 0xec, 0x32, 0x67, 0x9b, 0x04, 0xcf, 0x81, 0x3e,
];

fn plaintexts() -> Vec<Vec<u8>> {
    (0..4)
        .map(|i| format!("plaintext-seed-{i:02}-DO-NOT-LOG-ME-0123456789").into_bytes())
        .collect()
}

fn keyring() -> Keyring {
    let mut k = Keyring::new();
    k.add_key(KEY_NAME, Secret32::from_bytes(KEK_BYTES))
        .unwrap();
    k
}

fn opts() -> RequestOptions {
    RequestOptions::apiserver("localhost", Duration::from_secs(3))
}

fn ok(r: &ClientResponse) -> kms_plugin_core::rpc::Response {
    let r = r.to_rpc();
    assert_eq!(r.code, Code::Ok, "{}", r.message);
    r
}

struct Session {
    events: Vec<Event>,
    metrics_text: String,
    key_ids: Vec<String>,
}

/// Runs the session; `observe` is called after every step, as the runtimes do after a drain.
fn run_session() -> Session {
    let mut sim = Sim::new(
        Config::default(),
        [7; 32],
        FakeRemote::with_keyring(keyring(), [9; 32]),
    );
    sim.drive();
    let mut metrics = Metrics::new("fake");
    let mut recorded = 0;
    let mut sync = |sim: &Sim, metrics: &mut Metrics| {
        for e in &sim.events[recorded..] {
            metrics.record(e);
        }
        recorded = sim.events.len();
        metrics.observe(&sim.plugin, sim.now);
    };
    sync(&sim, &mut metrics);
    let first_key_id = sim.driver.remote.current_key_id();

    // A second plugin over the same remote key: its ciphertexts miss the first one's cache.
    let mut other = Sim::new(
        Config::default(),
        [8; 32],
        FakeRemote::with_keyring(keyring(), [10; 32]),
    );
    other.drive();
    let oc = other.connect();

    let c = sim.connect();
    let st = msg::decode_status(&ok(&sim.call(
        c,
        msg::V2_STATUS,
        &msg::v2_status(),
        &opts(),
    )));
    assert_eq!(st.healthz, "ok");
    for (i, plain) in plaintexts().iter().enumerate() {
        let enc = msg::decode_v2_encrypt(&ok(&sim.call(
            c,
            msg::V2_ENCRYPT,
            &msg::v2_encrypt(plain, &format!("uid-enc-{i}")),
            &opts(),
        )));
        let back = msg::decode_v2_plaintext(&ok(&sim.call(
            c,
            msg::V2_DECRYPT,
            &msg::v2_decrypt(&enc, &format!("uid-dec-{i}")),
            &opts(),
        )));
        assert_eq!(&back, plain);
        let cipher = msg::decode_v1_cipher(&ok(&sim.call(
            c,
            msg::V1_ENCRYPT,
            &msg::v1_encrypt(plain),
            &opts(),
        )));
        let back = msg::decode_v1_plain(&ok(&sim.call(
            c,
            msg::V1_DECRYPT,
            &msg::v1_decrypt(&cipher),
            &opts(),
        )));
        assert_eq!(&back, plain);
        sync(&sim, &mut metrics);
    }
    // Cache miss (remote unwrap), then a hit.
    let foreign = msg::decode_v2_encrypt(&ok(&other.call(
        oc,
        msg::V2_ENCRYPT,
        &msg::v2_encrypt(&plaintexts()[0], "uid-foreign"),
        &opts(),
    )));
    for uid in ["uid-miss", "uid-hit"] {
        let back = msg::decode_v2_plaintext(&ok(&sim.call(
            c,
            msg::V2_DECRYPT,
            &msg::v2_decrypt(&foreign, uid),
            &opts(),
        )));
        assert_eq!(back, plaintexts()[0]);
    }
    // A client breaking HTTP/2: DATA on stream 0 is a connection error (RFC 9113 §6.1).
    let bad = sim.connect();
    sim.clients[bad]
        .client
        .send_raw(&[0, 0, 0, 0x0, 0, 0, 0, 0, 0]);
    sim.step();
    let r = sim.call(c, "/v9.Nope/Nothing", &[], &opts()).to_rpc();
    assert_eq!(r.code, Code::Unimplemented);
    sync(&sim, &mut metrics);

    // Remote outage long enough to go unhealthy, then recovery.
    sim.driver.remote.set_down(RemoteErrorKind::Unavailable);
    sim.advance(Duration::from_secs(90));
    sync(&sim, &mut metrics);
    assert!(!metrics.healthy());
    sim.driver.remote.set_up();
    sim.advance(Duration::from_secs(60));
    sync(&sim, &mut metrics);
    assert!(metrics.healthy());

    // Remote key rotation: a new key id and a new local KEK.
    let second_key_id = sim.driver.remote.rotate();
    sim.advance(Duration::from_secs(30));
    sync(&sim, &mut metrics);
    let enc = msg::decode_v2_encrypt(&ok(&sim.call(
        c,
        msg::V2_ENCRYPT,
        &msg::v2_encrypt(&plaintexts()[3], "uid-after-rotation"),
        &opts(),
    )));
    assert_eq!(enc.key_id, second_key_id);
    sim.disconnect(c);
    sim.drive();
    sim.advance(Duration::from_secs(5));
    sync(&sim, &mut metrics);

    let mut metrics_text = String::new();
    metrics.render(&mut metrics_text);
    Session {
        events: sim.events.clone(),
        metrics_text,
        key_ids: vec![first_key_id, second_key_id],
    }
}

#[test]
fn every_family_has_samples_with_bounded_labels_and_counts_match_the_session() {
    let s = run_session();
    let exp = parse(&s.metrics_text);
    let seen = check_bounded(&exp);
    for (family, ty, _) in FAMILIES {
        assert_eq!(
            exp.types.get(*family).map(String::as_str),
            Some(*ty),
            "{family}"
        );
        assert!(
            seen.contains(*family),
            "{family} has no sample:\n{}",
            s.metrics_text
        );
    }
    let v = |name: &str, labels: &[(&str, &str)]| exp.value(name, labels).unwrap_or(-1.0);
    let req = "kms_plugin_grpc_requests_total";
    assert_eq!(v(req, &[("method", "v2.Encrypt"), ("code", "OK")]), 5.0);
    assert_eq!(v(req, &[("method", "v2.Decrypt"), ("code", "OK")]), 6.0);
    assert_eq!(
        v(req, &[("method", "v1beta1.Encrypt"), ("code", "OK")]),
        4.0
    );
    assert_eq!(
        v(req, &[("method", "v1beta1.Decrypt"), ("code", "OK")]),
        4.0
    );
    assert_eq!(
        v(req, &[("method", "unknown"), ("code", "UNIMPLEMENTED")]),
        1.0
    );
    assert_eq!(
        v(
            "kms_plugin_grpc_request_duration_seconds_count",
            &[("method", "v2.Decrypt")]
        ),
        6.0
    );
    // One decrypt waited for a remote unwrap; the other nine v1/v2 decrypts were hits.
    assert_eq!(v("kms_plugin_unwrap_cache_misses_total", &[]), 1.0);
    assert_eq!(v("kms_plugin_unwrap_cache_hits_total", &[]), 9.0);
    let remote = "kms_plugin_remote_operations_total";
    let unwraps = v(
        remote,
        &[("provider", "fake"), ("op", "unwrap"), ("error", "none")],
    );
    assert_eq!(unwraps, 1.0);
    assert!(
        v(
            remote,
            &[
                ("provider", "fake"),
                ("op", "status"),
                ("error", "unavailable")
            ]
        ) >= 1.0
    );
    assert!(
        v(
            remote,
            &[("provider", "fake"), ("op", "status"), ("error", "none")]
        ) >= 2.0
    );
    assert_eq!(v("kms_plugin_remote_operations_in_flight", &[]), 0.0);
    assert_eq!(v("kms_plugin_connections_accepted_total", &[]), 2.0);
    assert_eq!(v("kms_plugin_connections_closed_total", &[]), 2.0);
    let h2 = "kms_plugin_http2_errors_total";
    assert_eq!(
        v(
            h2,
            &[("kind", "protocol_error"), ("reason", "PROTOCOL_ERROR")]
        ),
        1.0
    );
    let te = "kms_plugin_transport_events_total";
    assert_eq!(v(te, &[("kind", "protocol_error")]), 1.0);
    assert_eq!(v(te, &[("kind", "closed")]), 2.0);
    assert_eq!(v("kms_plugin_connections_open", &[]), 0.0);
    assert_eq!(v("kms_plugin_healthz", &[]), 1.0);
    assert!(v("kms_plugin_health_changes_total", &[]) >= 3.0);
    let rot = "kms_plugin_local_kek_rotations_total";
    assert_eq!(v(rot, &[("reason", "initial")]), 1.0);
    assert_eq!(v(rot, &[("reason", "remote_key_changed")]), 1.0);
    assert!(v("kms_plugin_key_id_changes_total", &[]) >= 1.0);
    // The info metric names the current key id, hashed; neither raw key id appears anywhere.
    let info = exp.family("kms_plugin_key_id_info");
    assert_eq!(info.len(), 1);
    assert_eq!(
        info[0].label("key_id_hash"),
        Some(hash_key_id(&s.key_ids[1]).as_str())
    );
    for key_id in &s.key_ids {
        assert!(
            !s.metrics_text.contains(key_id.as_str()),
            "raw key id in metrics"
        );
    }
    // One encryption under the new local KEK, made 5 s before the end at the latest.
    assert_eq!(v("kms_plugin_local_kek_uses", &[]), 1.0);
    let age = v("kms_plugin_local_kek_age_seconds", &[]);
    assert!((5.0..=35.0).contains(&age), "{age}");
    let status_age = v("kms_plugin_status_age_seconds", &[]);
    assert!((0.0..=10.0).contains(&status_age), "{status_age}");
    assert_metrics_have_no_secrets(&s);
}

fn assert_metrics_have_no_secrets(s: &Session) {
    assert_absent(s.metrics_text.as_bytes(), &KEK_BYTES, "KEK");
    for p in plaintexts() {
        assert_absent(s.metrics_text.as_bytes(), &p, "plaintext");
    }
}

fn all_log_bytes(events: &[Event]) -> (Vec<u8>, Vec<String>) {
    let mut bytes = Vec::new();
    let mut json_lines = Vec::new();
    let ts = Duration::from_secs(1_763_856_000);
    for e in events {
        for format in [LogFormat::Json, LogFormat::Text] {
            let (_, line) = format_event(e, format, ts).expect("every event has a line");
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line:?}"
            );
            bytes.extend_from_slice(line.as_bytes());
            if format == LogFormat::Json {
                json_lines.push(line);
            }
        }
    }
    (bytes, json_lines)
}

#[test]
fn session_logs_never_contain_kek_plaintext_or_raw_key_ids() {
    let s = run_session();
    let (bytes, json_lines) = all_log_bytes(&s.events);
    assert!(
        bytes.len() > 1000,
        "the session logged too little to mean anything"
    );
    assert_absent(&bytes, &KEK_BYTES, "KEK bytes of the key file");
    for p in plaintexts() {
        assert_absent(&bytes, &p, "plaintext");
    }
    for key_id in &s.key_ids {
        assert_absent(&bytes, key_id.as_bytes(), "unhashed key id");
        let hashed = hash_key_id(key_id);
        assert!(
            String::from_utf8_lossy(&bytes).contains(&hashed),
            "the hashed key id {hashed} should be logged"
        );
    }
    // The key file's text (which holds the key bytes base64-encoded) is also absent.
    let file = keyring().serialize();
    for line in String::from_utf8_lossy(&file)
        .lines()
        .filter(|l| l.len() > 20)
    {
        if let Some(b64) = line.split_whitespace().find(|w| w.len() >= 40) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(b64),
                "key file text logged"
            );
        }
    }
    // JSON lines are objects with ts, level and msg; uids correlate requests.
    let mut uids = Vec::new();
    for line in &json_lines {
        let v: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(v["ts"].is_number(), "{line}");
        assert!(
            Level::parse(v["level"].as_str().unwrap()).is_some(),
            "{line}"
        );
        assert!(v["msg"].is_string(), "{line}");
        if let Some(uid) = v["uid"].as_str() {
            uids.push(uid.to_string());
        }
    }
    for want in [
        "uid-enc-0",
        "uid-dec-3",
        "uid-miss",
        "uid-hit",
        "uid-after-rotation",
    ] {
        assert!(uids.iter().any(|u| u == want), "{want} not logged");
    }
}

#[test]
fn health_polling_is_debug_and_failures_are_warnings() {
    let s = run_session();
    let ts = Duration::ZERO;
    let mut saw = [false; 4];
    for e in &s.events {
        let (level, line) = format_event(e, LogFormat::Json, ts).unwrap();
        match e {
            Event::RequestCompleted {
                method,
                code: Code::Ok,
                ..
            } if method.name() == "v2.Status" => {
                assert_eq!(level, Level::Debug, "{line}");
                saw[0] = true;
            }
            Event::RemoteCompleted {
                op, error: None, ..
            } if op.name() == "status" => {
                assert_eq!(level, Level::Debug, "{line}");
                saw[1] = true;
            }
            Event::RemoteCompleted { error: Some(_), .. } => {
                assert_eq!(level, Level::Warn, "{line}");
                saw[2] = true;
            }
            Event::HealthChanged {
                healthy: false,
                cause,
            } => {
                assert!(line.contains("\"cause\":"), "{line}");
                // Start-up stages every plugin passes through are info; failures warn.
                if kms_plugin_core::health::is_startup_stage(cause) {
                    assert_eq!(level, Level::Info, "{line}");
                } else {
                    assert_eq!(level, Level::Warn, "{line}");
                    saw[3] = true;
                }
            }
            _ => {}
        }
    }
    assert_eq!(saw, [true; 4]);
}
