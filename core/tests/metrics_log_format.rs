//! Log lines of single events: JSON and text shapes, hostile request uids, hashed key ids.

use core::time::Duration;

use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::event::Event;
use kms_plugin_core::health;
use kms_plugin_core::ids::Method;
use kms_plugin_core::metrics::hash_key_id;
use kms_plugin_core::metrics::log::{
    Level, LogFormat, MAX_UID_CHARS, Value, event_level, format_event, format_line,
};
use kms_plugin_core::plugin::ConnId;
use kms_plugin_core::rpc::Code;

const TS: Duration = Duration::new(1_763_856_000, 123_456_789);

fn completed(uid: &str, code: Code) -> Event {
    Event::RequestCompleted {
        conn: ConnId(3),
        method: Method::V2Encrypt,
        code,
        latency: Duration::from_micros(1500),
        parked: false,
        uid: Some(uid.into()),
    }
}

#[test]
fn json_and_text_shapes_are_exact() {
    let e = completed("6f1c-uid", Code::Ok);
    let (level, json) = format_event(&e, LogFormat::Json, TS).unwrap();
    assert_eq!(level, Level::Debug);
    assert_eq!(
        json,
        "{\"ts\":1763856000.123456,\"level\":\"debug\",\"msg\":\"request completed\",\
         \"method\":\"v2.Encrypt\",\"code\":\"OK\",\"latency_us\":1500,\"parked\":false,\
         \"conn\":3,\"uid\":\"6f1c-uid\"}\n"
    );
    let (_, text) = format_event(&e, LogFormat::Text, TS).unwrap();
    assert_eq!(
        text,
        "1763856000.123456 debug request completed method=v2.Encrypt code=OK latency_us=1500 \
         parked=false conn=3 uid=6f1c-uid\n"
    );
}

#[test]
fn hostile_uid_cannot_forge_lines_or_fields() {
    let uid = "x\"}\n{\"level\":\"error\",\"msg\":\"forged\" a=b\r\u{7}";
    for format in [LogFormat::Json, LogFormat::Text] {
        let (_, line) = format_event(&completed(uid, Code::Internal), format, TS).unwrap();
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        assert!(line.ends_with('\n'));
        assert!(!line.contains('\r') && !line.contains('\u{7}'), "{line:?}");
        if format == LogFormat::Json {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["uid"], uid);
            assert_eq!(v["level"], "warn");
            assert_eq!(v["msg"], "request completed");
        } else {
            assert!(line.contains("uid=\"x\\\"}\\n{\\\"level"), "{line}");
        }
    }
}

#[test]
fn long_uid_is_capped() {
    let uid: String = "é".repeat(MAX_UID_CHARS + 50);
    let (_, line) = format_event(&completed(&uid, Code::Ok), LogFormat::Json, TS).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let logged = v["uid"].as_str().unwrap();
    assert_eq!(logged.chars().count(), MAX_UID_CHARS + 1);
    assert!(logged.ends_with('…'));
}

#[test]
fn key_ids_are_only_logged_hashed() {
    let key_id = "local:default:v7:c0ffee";
    let e = Event::KeyIdChanged {
        key_id: key_id.into(),
    };
    for format in [LogFormat::Json, LogFormat::Text] {
        let (level, line) = format_event(&e, format, TS).unwrap();
        assert_eq!(level, Level::Info);
        assert!(!line.contains(key_id), "{line}");
        assert!(line.contains(&hash_key_id(key_id)), "{line}");
    }
}

#[test]
fn levels_follow_severity() {
    assert_eq!(event_level(&completed("u", Code::Ok)), Level::Debug);
    assert_eq!(event_level(&completed("u", Code::Cancelled)), Level::Info);
    assert_eq!(event_level(&completed("u", Code::Unavailable)), Level::Warn);
    let status_failed = Event::RequestCompleted {
        conn: ConnId(0),
        method: Method::V2Status,
        code: Code::Unavailable,
        latency: Duration::ZERO,
        parked: false,
        uid: None,
    };
    assert_eq!(event_level(&status_failed), Level::Debug);
    assert_eq!(
        event_level(&Event::ParkedLimitReached { conn: ConnId(0) }),
        Level::Warn
    );
    let health = |healthy, cause| event_level(&Event::HealthChanged { healthy, cause });
    assert_eq!(health(true, "ok"), Level::Info);
    assert_eq!(health(false, health::NO_LOCAL_KEK), Level::Info);
    assert_eq!(health(false, health::AWAITING_STATUS), Level::Info);
    assert_eq!(health(false, health::STATUS_STALE), Level::Warn);
    assert_eq!(health(false, health::LOCAL_KEK_WORN_OUT), Level::Warn);
    assert_eq!(
        health(false, health::remote_cause(RemoteErrorKind::Unavailable)),
        Level::Warn
    );
    assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
    assert_eq!(Level::parse("warning"), Some(Level::Warn));
    assert_eq!(Level::parse("trace"), None);
    assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
}

#[test]
fn format_line_types_values() {
    let line = format_line(
        LogFormat::Json,
        Duration::ZERO,
        Level::Info,
        "m",
        &[
            ("s", Value::Str("a b")),
            ("n", Value::U64(7)),
            ("b", Value::Bool(true)),
            ("d", Value::Display(&1.5)),
        ],
    );
    assert_eq!(
        line,
        "{\"ts\":0.000000,\"level\":\"info\",\"msg\":\"m\",\"s\":\"a b\",\"n\":7,\"b\":true,\"d\":\"1.5\"}\n"
    );
    let line = format_line(
        LogFormat::Text,
        Duration::ZERO,
        Level::Error,
        "m",
        &[("s", Value::Str("a b")), ("e", Value::Str(""))],
    );
    assert_eq!(line, "0.000000 error m s=\"a b\" e=\"\"\n");
}

#[test]
fn transport_events_name_kind_code_and_stream() {
    use kms_plugin_core::ConnEvent;
    use kms_plugin_core::h2::reason::Reason;
    let conn_error = Event::Transport {
        conn: ConnId(9),
        event: ConnEvent::ProtocolError {
            stream: None,
            reason: Reason::PROTOCOL_ERROR,
            detail: "DATA on stream 0",
        },
    };
    let (level, line) = format_event(&conn_error, LogFormat::Json, TS).unwrap();
    assert_eq!(level, Level::Info);
    assert_eq!(
        line,
        "{\"ts\":1763856000.123456,\"level\":\"info\",\"msg\":\"HTTP/2 connection error sent (GOAWAY)\",\
         \"reason\":\"PROTOCOL_ERROR\",\"detail\":\"DATA on stream 0\",\"conn\":9}\n"
    );
    let reset = Event::Transport {
        conn: ConnId(9),
        event: ConnEvent::StreamReset {
            stream: 5,
            reason: Reason::CANCEL,
        },
    };
    let (level, line) = format_event(&reset, LogFormat::Text, TS).unwrap();
    assert_eq!(level, Level::Debug);
    assert_eq!(
        line,
        "1763856000.123456 debug peer reset a stream reason=CANCEL conn=9 stream=5\n"
    );
}

/// The healthz causes (`health`) themselves.
mod health_causes {
    use kms_plugin_core::RemoteErrorKind;
    use kms_plugin_core::health::*;

    #[test]
    fn causes_are_short_and_name_the_kind() {
        for kind in [
            RemoteErrorKind::Auth,
            RemoteErrorKind::NotFound,
            RemoteErrorKind::KeyVersionMissing,
            RemoteErrorKind::Permission,
            RemoteErrorKind::Throttled,
            RemoteErrorKind::Unavailable,
            RemoteErrorKind::Timeout,
            RemoteErrorKind::Corrupt,
            RemoteErrorKind::Other,
        ] {
            let cause = remote_cause(kind);
            assert!(cause.ends_with(kind.name()), "{cause}");
            assert!(cause.len() < 64);
            assert_ne!(cause, OK);
        }
    }
}
