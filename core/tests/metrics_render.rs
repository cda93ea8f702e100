//! Rendering of a small hand-fed registry against a golden file, and rendering invariants.

#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

use core::time::Duration;

use kms_plugin_core::ConnEvent;
use kms_plugin_core::effect::{OpId, RemoteErrorKind, RemoteOpKind};
use kms_plugin_core::event::{Event, RotationReason};
use kms_plugin_core::h2::reason::Reason;
use kms_plugin_core::ids::Method;
use kms_plugin_core::metrics::{Metrics, hash_key_id};
use kms_plugin_core::plugin::ConnId;
use kms_plugin_core::rpc::Code;

mod metrics_support;
use metrics_support::{check_bounded, check_histograms, parse};

fn small_registry() -> Metrics {
    let mut m = Metrics::new("local");
    let events = [
        Event::ConnectionAccepted { conn: ConnId(0) },
        Event::RequestCompleted {
            conn: ConnId(0),
            method: Method::V2Encrypt,
            code: Code::Ok,
            latency: Duration::from_micros(700),
            parked: false,
            uid: Some("u1".into()),
        },
        Event::RequestCompleted {
            conn: ConnId(0),
            method: Method::V2Decrypt,
            code: Code::Unavailable,
            latency: Duration::from_secs(2),
            parked: true,
            uid: None,
        },
        Event::RemoteCompleted {
            id: OpId(1),
            op: RemoteOpKind::Unwrap,
            error: Some(RemoteErrorKind::Timeout),
            latency: Duration::from_millis(1_999),
        },
        Event::RemoteAbandoned {
            id: OpId(2),
            op: RemoteOpKind::Status,
            timed_out: true,
        },
        Event::LateRemoteReplyDropped { id: OpId(2) },
        Event::UnwrapJoined { id: OpId(1) },
        Event::LocalKekRotated {
            reason: RotationReason::Initial,
        },
        Event::ConnectionRefused { conn: ConnId(1) },
        Event::Transport {
            conn: ConnId(0),
            event: ConnEvent::StreamReset {
                stream: 3,
                reason: Reason::CANCEL,
            },
        },
    ];
    for e in &events {
        m.record(e);
    }
    m
}

#[test]
fn small_registry_matches_golden() {
    let mut out = String::new();
    small_registry().render(&mut out);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/metrics_small.prom"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &out).unwrap();
    }
    let golden = std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 to create)");
    if out != golden {
        let first = out
            .lines()
            .zip(golden.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| out.lines().count().min(golden.lines().count()));
        panic!(
            "rendering changed at line {}: got {:?}, golden {:?}; review and rerun with UPDATE_GOLDEN=1",
            first + 1,
            out.lines().nth(first),
            golden.lines().nth(first)
        );
    }
    let exp = parse(&out);
    check_bounded(&exp);
    // Unobserved gauges have no samples yet; counters and histograms always do.
    assert!(exp.family("kms_plugin_healthz").is_empty());
    assert!(exp.family("kms_plugin_key_id_info").is_empty());
    assert_eq!(
        exp.value("kms_plugin_unwrap_cache_misses_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        exp.value("kms_plugin_unwrap_cache_hits_total", &[]),
        Some(0.0)
    );
}

#[test]
fn every_latency_lands_in_a_monotonic_histogram() {
    let mut m = Metrics::new("vault");
    // Latencies spanning every bucket edge, exactly on, just below and just above.
    let mut nanos = vec![0u64, 1, u64::MAX / 2];
    for edge in [
        500_000u64,
        1_000_000,
        2_500_000,
        5_000_000,
        10_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
        2_500_000_000,
        5_000_000_000,
        10_000_000_000,
        30_000_000_000,
    ] {
        nanos.extend([edge - 1, edge, edge + 1]);
    }
    for (i, n) in nanos.iter().enumerate() {
        m.record(&Event::RequestCompleted {
            conn: ConnId(0),
            method: Method::V1Decrypt,
            code: Code::Ok,
            latency: Duration::from_nanos(*n),
            parked: i % 2 == 0,
            uid: None,
        });
        m.record(&Event::RemoteCompleted {
            id: OpId(i as u64),
            op: RemoteOpKind::Wrap,
            error: None,
            latency: Duration::from_nanos(*n),
        });
    }
    let mut out = String::new();
    m.render(&mut out);
    let exp = parse(&out);
    check_bounded(&exp);
    check_histograms(&exp);
    let count = nanos.len() as f64;
    let bucket = |name: &str, labels: &[(&str, &str)]| exp.value(name, labels).unwrap();
    let g = "kms_plugin_grpc_request_duration_seconds_bucket";
    let meth = ("method", "v1beta1.Decrypt");
    assert_eq!(bucket(g, &[meth, ("le", "+Inf")]), count);
    // 0, 1 ns, 499_999 ns and 500_000 ns are <= 0.0005 s.
    assert_eq!(bucket(g, &[meth, ("le", "0.0005")]), 4.0);
    // Everything but u64::MAX/2 ns, 10 s + 1 ns and 30 s +- 1 ns / 30 s is <= 10 s.
    assert_eq!(bucket(g, &[meth, ("le", "10")]), count - 5.0);
    let r = "kms_plugin_remote_operation_duration_seconds_bucket";
    let labels = [("provider", "vault"), ("op", "wrap"), ("le", "30")];
    assert_eq!(bucket(r, &labels), count - 2.0);
}

#[test]
fn provider_label_is_sanitised() {
    for (given, shown) in [
        ("local", "local"),
        ("pkcs11", "pkcs11"),
        ("Vault Transit", "other"),
        ("", "other"),
    ] {
        let mut out = String::new();
        Metrics::new(given).render(&mut out);
        assert!(out.contains(&format!("provider=\"{shown}\"")), "{given}");
    }
}

#[test]
fn key_id_hash_is_sha256_prefix() {
    // sha256("abc") = ba7816bf8f01cfea...
    assert_eq!(hash_key_id("abc"), "sha256:ba7816bf8f01cfea");
}

/// The exposition helpers alone: histogram bounds, label escaping, bucket edges.
mod exposition {
    use core::time::Duration;

    use kms_plugin_core::metrics::exposition::*;

    #[test]
    #[allow(clippy::cast_precision_loss)]
    fn bounds_strictly_increase_and_labels_match_nanos() {
        for bounds in [GRPC_LATENCY_BOUNDS, REMOTE_LATENCY_BOUNDS] {
            for w in bounds.windows(2) {
                assert!(w[0].0 < w[1].0, "{w:?}");
            }
            for (nanos, le) in bounds {
                let secs: f64 = le.parse().unwrap();
                assert!((secs * 1e9 - *nanos as f64).abs() < 1.0, "{le} vs {nanos}");
            }
        }
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_label_value(&mut s, "a\\b\"c\nd");
        assert_eq!(s, "a\\\\b\\\"c\\nd");
        let mut s = String::new();
        header(&mut s, "x", Kind::Gauge, "say \"hi\"\\\n");
        assert_eq!(s, "# HELP x say \"hi\"\\\\\\n\n# TYPE x gauge\n");
    }

    #[test]
    fn bucket_edges_are_inclusive() {
        let mut h = Histogram::new(GRPC_LATENCY_BOUNDS);
        h.observe(Duration::from_micros(500)); // exactly on 0.0005
        h.observe(Duration::from_nanos(500_001)); // just above
        h.observe(Duration::from_secs(60)); // above every bound
        let mut s = String::new();
        h.render(&mut s, "h", &[]);
        assert!(s.contains("h_bucket{le=\"0.0005\"} 1\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"0.001\"} 2\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"10\"} 2\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("h_sum 60.001000001\n"), "{s}");
        assert!(s.contains("h_count 3\n"), "{s}");
    }
}
