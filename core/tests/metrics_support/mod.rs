//! Shared by the metrics tests (core and runtimes): a strict parser for Prometheus text
//! exposition format 0.0.4, the allowed label values of every family, and redaction helpers.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::float_cmp,
    clippy::type_complexity,
    clippy::single_match_else,
    clippy::format_collect
)]

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed exposition: family types (from `# TYPE`), helps, and samples in order.
#[derive(Debug, Default)]
pub struct Exposition {
    pub types: BTreeMap<String, String>,
    pub helps: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Samples of family `family` (histogram suffixes included).
    pub fn family(&self, family: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| family_of(&s.name, &self.types) == family)
            .collect()
    }

    /// The value of the one sample `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    }
}

/// The family a sample name belongs to (strips `_bucket`/`_sum`/`_count` of histograms).
pub fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).map(String::as_str) == Some("histogram")
        {
            return base;
        }
    }
    name
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `text` strictly; panics with the offending line on anything malformed.
pub fn parse(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    let mut exp = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(line);
            assert!(is_metric_name(name), "{line}");
            assert!(
                exp.helps.insert(name.into(), help.into()).is_none(),
                "dup HELP {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect(line);
            assert!(is_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line}"
            );
            assert!(exp.helps.contains_key(name), "TYPE before HELP: {line}");
            assert!(
                exp.types.insert(name.into(), ty.into()).is_none(),
                "dup TYPE {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let (name_end, rest) = match line.find(['{', ' ']) {
            Some(i) => (i, &line[i..]),
            None => panic!("no value: {line}"),
        };
        let name = &line[..name_end];
        assert!(is_metric_name(name), "{line}");
        let mut labels = Vec::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                let (i, c) = chars.next().expect(line);
                if c == '}' {
                    end = i;
                    break;
                }
                // label name up to '='
                let mut key = String::from(c);
                loop {
                    let (_, c) = chars.next().expect(line);
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                assert!(is_metric_name(&key), "label name {key:?} in {line}");
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    let (_, c) = chars.next().expect(line);
                    match c {
                        '"' => break,
                        '\\' => match chars.next().expect(line).1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line}"),
                        },
                        c => value.push(c),
                    }
                }
                assert!(
                    !labels.iter().any(|(k, _): &(String, String)| *k == key),
                    "duplicate label {key} in {line}"
                );
                labels.push((key, value));
                match chars.peek().map(|x| x.1) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    other => panic!("unexpected {other:?} in {line}"),
                }
            }
            &body[end + 1..]
        } else {
            rest
        };
        let value = rest.strip_prefix(' ').expect(line);
        assert!(!value.contains(' '), "timestamps are not used: {line}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let family = family_of(name, &exp.types).to_string();
        assert!(
            exp.types.contains_key(&family),
            "sample before its TYPE: {line}"
        );
        exp.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    exp
}

/// Every family the plugin exports, with its type and the label names of its samples.
pub const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        "kms_plugin_grpc_requests_total",
        "counter",
        &["method", "code"],
    ),
    (
        "kms_plugin_grpc_request_duration_seconds",
        "histogram",
        &["method"],
    ),
    (
        "kms_plugin_grpc_requests_abandoned_total",
        "counter",
        &["method"],
    ),
    ("kms_plugin_parked_limit_reached_total", "counter", &[]),
    ("kms_plugin_parked_requests", "gauge", &[]),
    (
        "kms_plugin_remote_operations_total",
        "counter",
        &["provider", "op", "error"],
    ),
    (
        "kms_plugin_remote_operation_duration_seconds",
        "histogram",
        &["provider", "op"],
    ),
    (
        "kms_plugin_remote_operations_abandoned_total",
        "counter",
        &["provider", "op", "reason"],
    ),
    (
        "kms_plugin_remote_late_replies_dropped_total",
        "counter",
        &[],
    ),
    ("kms_plugin_remote_operations_in_flight", "gauge", &[]),
    (
        "kms_plugin_remote_key_versions_missing",
        "gauge",
        &["provider"],
    ),
    ("kms_plugin_unwrap_cache_hits_total", "counter", &[]),
    ("kms_plugin_unwrap_cache_misses_total", "counter", &[]),
    (
        "kms_plugin_unwrap_single_flight_joins_total",
        "counter",
        &[],
    ),
    ("kms_plugin_connections_accepted_total", "counter", &[]),
    ("kms_plugin_connections_refused_total", "counter", &[]),
    ("kms_plugin_connections_closed_total", "counter", &[]),
    ("kms_plugin_transport_events_total", "counter", &["kind"]),
    (
        "kms_plugin_http2_errors_total",
        "counter",
        &["kind", "reason"],
    ),
    ("kms_plugin_unwrap_cache_size", "gauge", &[]),
    ("kms_plugin_connections_open", "gauge", &[]),
    ("kms_plugin_key_id_info", "gauge", &["key_id_hash"]),
    ("kms_plugin_key_id_changes_total", "counter", &[]),
    (
        "kms_plugin_local_kek_rotations_total",
        "counter",
        &["reason"],
    ),
    ("kms_plugin_local_kek_age_seconds", "gauge", &[]),
    ("kms_plugin_local_kek_uses", "gauge", &[]),
    ("kms_plugin_status_age_seconds", "gauge", &[]),
    ("kms_plugin_health_changes_total", "counter", &[]),
    ("kms_plugin_healthz", "gauge", &[]),
    ("kms_plugin_shutting_down", "gauge", &[]),
];

/// The blocking runtime's local key file provider's own families
/// (runtime-blocking/src/provider/local.rs), rendered after the core's.
pub const LOCAL_PROVIDER_FAMILIES: &[(&str, &str, &[&str])] = &[
    ("kms_plugin_keyring_info", "gauge", &["fingerprint"]),
    ("kms_plugin_keyring_versions", "gauge", &[]),
    ("kms_plugin_keyring_staged_versions", "gauge", &[]),
    (
        "kms_plugin_key_file_refused",
        "gauge",
        &["file", "versions"],
    ),
];

/// The blocking runtime's own families (its accept loop's peer-credential gate) and the Vault
/// provider's.
pub const RUNTIME_FAMILIES: &[(&str, &str, &[&str])] = &[
    ("kms_plugin_peer_refused_total", "counter", &[]),
    ("kms_plugin_vault_insecure_http", "gauge", &[]),
];

/// Families whose samples appear only once something happened (no pre-initialised series).
pub const OPTIONAL_FAMILIES: &[&str] = &["kms_plugin_http2_errors_total"];

/// Whether `family` must have samples in any scrape.
pub fn always_sampled(family: &str) -> bool {
    !OPTIONAL_FAMILIES.contains(&family)
}

/// The allowed values of every label (the bounded sets), or `None` for `key_id_hash`, which
/// must match `sha256:<16 lower-case hex>`.
pub fn allowed_values(label: &str) -> Option<BTreeSet<&'static str>> {
    let set: &[&str] = match label {
        "method" => &[
            "v1beta1.Version",
            "v1beta1.Encrypt",
            "v1beta1.Decrypt",
            "v2.Status",
            "v2.Encrypt",
            "v2.Decrypt",
            "unknown",
        ],
        "code" => &[
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ],
        "provider" => &["local", "vault", "pkcs11", "fake", "other"],
        "op" => &["status", "wrap", "unwrap"],
        "error" => &[
            "none",
            "auth",
            "not_found",
            "permission",
            "throttled",
            "unavailable",
            "timeout",
            "corrupt",
            "other",
        ],
        // Rotation reasons, abandonment reasons and HTTP/2 error codes (RFC 9113 §7).
        "reason" => &[
            "initial",
            "remote_key_changed",
            "usage",
            "age",
            "timeout",
            "cancelled",
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
            "UNKNOWN",
        ],
        "kind" => &[
            "protocol_error",
            "request_rejected",
            "peer_goaway",
            "stream_reset",
            "closed",
        ],
        "le" => &[
            "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
            "1", "2.5", "5", "10", "30", "+Inf",
        ],
        "key_id_hash" => return None,
        other => panic!("unexpected label name {other:?}"),
    };
    Some(set.iter().copied().collect())
}

/// Checks every sample: known family, expected label names, every label value in its bounded
/// set, histograms cumulative and consistent. Returns the families that have samples.
pub fn check_bounded(exp: &Exposition) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for s in &exp.samples {
        let family = family_of(&s.name, &exp.types);
        let (_, ty, names) = FAMILIES
            .iter()
            .chain(LOCAL_PROVIDER_FAMILIES)
            .chain(RUNTIME_FAMILIES)
            .find(|(f, _, _)| *f == family)
            .unwrap_or_else(|| panic!("unknown family {family}"));
        assert_eq!(
            exp.types.get(family).map(String::as_str),
            Some(*ty),
            "{family}"
        );
        let mut expected: Vec<&str> = names.to_vec();
        if s.name.ends_with("_bucket") && *ty == "histogram" {
            expected.push("le");
        }
        let got: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(got, expected, "labels of {s:?}");
        for (k, v) in &s.labels {
            if k == "file" || k == "versions" {
                // One series per provider; the refused file's path and versions, cut to 256 bytes.
                assert!(v.len() <= 256, "{k}={v:?}");
                continue;
            }
            if k == "fingerprint" {
                let hex = v.strip_prefix("kr1:").expect(v);
                assert!(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
                continue;
            }
            match allowed_values(k) {
                Some(set) => assert!(set.contains(v.as_str()), "{k}={v:?} not allowed in {s:?}"),
                None => {
                    let hex = v.strip_prefix("sha256:").expect(v);
                    assert_eq!(hex.len(), 16, "{v}");
                    assert!(
                        hex.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    );
                }
            }
        }
        assert!(s.value.is_finite() && s.value >= 0.0, "{s:?}");
        seen.insert(family.to_string());
    }
    check_histograms(exp);
    seen
}

/// Every histogram series: `le` strictly increasing, counts non-decreasing, ends in `+Inf`
/// whose count equals `_count`; `_sum` present.
pub fn check_histograms(exp: &Exposition) {
    let mut series: BTreeMap<(String, Vec<(String, String)>), Vec<(f64, f64)>> = BTreeMap::new();
    for s in &exp.samples {
        if let Some(base) = s.name.strip_suffix("_bucket")
            && exp.types.get(base).map(String::as_str) == Some("histogram")
        {
            let le = s.label("le").expect("bucket without le");
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let key: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            series
                .entry((base.to_string(), key))
                .or_default()
                .push((le, s.value));
        }
    }
    assert!(!series.is_empty(), "no histogram series");
    for ((base, labels), buckets) in &series {
        for w in buckets.windows(2) {
            assert!(w[0].0 < w[1].0, "{base}{labels:?}: le not increasing {w:?}");
            assert!(w[0].1 <= w[1].1, "{base}{labels:?}: counts decrease {w:?}");
        }
        let last = buckets.last().unwrap();
        assert!(last.0.is_infinite(), "{base}{labels:?}: no +Inf bucket");
        let lbl: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let count = exp.value(&format!("{base}_count"), &lbl).expect("_count");
        assert_eq!(count, last.1, "{base}{labels:?}: _count != +Inf bucket");
        let sum = exp.value(&format!("{base}_sum"), &lbl).expect("_sum");
        assert!(sum >= 0.0);
        if count == 0.0 {
            assert_eq!(sum, 0.0);
        }
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The encodings of `secret` a leak could take: raw, lower/upper hex, base64 (standard and
/// URL-safe, padded or not). Empty needles are never produced.
pub fn encodings(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let hex_lower: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64(secret);
    let b64_nopad = b64.trim_end_matches('=').to_string();
    let b64_url = b64_nopad.replace('+', "-").replace('/', "_");
    vec![
        ("raw".into(), secret.to_vec()),
        ("hex".into(), hex_lower.clone().into_bytes()),
        ("HEX".into(), hex_lower.to_uppercase().into_bytes()),
        ("base64".into(), b64_nopad.into_bytes()),
        ("base64url".into(), b64_url.into_bytes()),
    ]
}

/// Panics if `haystack` contains any encoding of `secret` (named `what`).
pub fn assert_absent(haystack: &[u8], secret: &[u8], what: &str) {
    for (enc, needle) in encodings(secret) {
        assert!(
            !haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice()),
            "{what} ({enc}) found in the output"
        );
    }
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}

#[test]
#[should_panic(expected = "(base64)")]
fn assert_absent_finds_a_base64_leak() {
    let secret = [0xc3u8, 0x1f, 0x7a, 0x90, 0x2e, 0xd4, 0x58];
    let line = format!("{{\"msg\":\"oops\",\"v\":\"{}\"}}", base64(&secret));
    assert_absent(line.as_bytes(), &secret, "secret");
}

#[test]
#[should_panic(expected = "(hex)")]
fn assert_absent_finds_a_hex_leak() {
    let secret = b"plaintext!";
    let line: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    assert_absent(format!("x={line}").as_bytes(), secret, "secret");
}
