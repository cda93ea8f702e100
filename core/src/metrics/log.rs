//! Log lines for [`Event`]s, shared by both runtimes: one JSON object per line (`ts`, `level`,
//! `msg`, then the fields) or a text line (`ts level msg key=value ...`).
//!
//! Guarantees: events hold no secrets, and this module adds none; key ids are written only
//! hashed (`key_id_hash="sha256:<hex16>"`); peer-supplied strings (request uids) are escaped so
//! a line can never be split or forged, and capped at [`MAX_UID_CHARS`] characters.
//! Per-request and health-polling detail (Status requests, remote status refreshes) is
//! `debug`.

use alloc::string::String;
use core::fmt::{self, Write as _};
use core::time::Duration;

use super::hash_key_id;
use crate::effect::RemoteOpKind;
use crate::event::ConnEvent;
use crate::event::Event;
use crate::ids::{ConnId, Method};
use crate::rpc::Code;

/// Longest request uid written (characters); longer ones are cut and marked with `…`.
pub const MAX_UID_CHARS: usize = 128;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// `ts level msg key=value ...`.
    Text,
}

impl LogFormat {
    /// Parses `json|text`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "text" => Some(Self::Text),
            _ => None,
        }
    }
}

/// Severity, most severe first (`Error < Debug`, so `level <= max` means "printed").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is wrong but the plugin carries on.
    Warn,
    /// Lifecycle and notable changes.
    Info,
    /// Per-request and health-polling detail.
    Debug,
}

impl Level {
    /// Parses `error|warn|warning|info|debug`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "error" => Self::Error,
            "warn" | "warning" => Self::Warn,
            "info" => Self::Info,
            "debug" => Self::Debug,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

/// A field value with its JSON type.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    /// A string (escaped).
    Str(&'a str),
    /// An unsigned number.
    U64(u64),
    /// A boolean.
    Bool(bool),
    /// Anything displayable, written as a string (escaped).
    Display(&'a dyn fmt::Display),
}

/// Formats one complete line (ending in `\n`). `ts` is the wall-clock time since the Unix
/// epoch, written as seconds with 6 decimals.
pub fn format_line(
    format: LogFormat,
    ts: Duration,
    level: Level,
    msg: &str,
    fields: &[(&str, Value<'_>)],
) -> String {
    let mut line = String::with_capacity(96 + 24 * fields.len());
    let (secs, micros) = (ts.as_secs(), ts.subsec_micros());
    match format {
        LogFormat::Json => {
            let _ = write!(
                line,
                "{{\"ts\":{secs}.{micros:06},\"level\":\"{}\",\"msg\":",
                level.name()
            );
            push_json_str(&mut line, msg);
            for (key, value) in fields {
                line.push(',');
                push_json_str(&mut line, key);
                line.push(':');
                match value {
                    Value::Str(s) => push_json_str(&mut line, s),
                    Value::U64(n) => {
                        let _ = write!(line, "{n}");
                    }
                    Value::Bool(b) => line.push_str(if *b { "true" } else { "false" }),
                    Value::Display(d) => {
                        let mut s = String::new();
                        let _ = write!(s, "{d}");
                        push_json_str(&mut line, &s);
                    }
                }
            }
            line.push('}');
        }
        LogFormat::Text => {
            let _ = write!(line, "{secs}.{micros:06} {:5} ", level.name());
            push_text(&mut line, msg, false);
            for (key, value) in fields {
                line.push(' ');
                push_text(&mut line, key, true);
                line.push('=');
                match value {
                    Value::Str(s) => push_text(&mut line, s, true),
                    Value::U64(n) => {
                        let _ = write!(line, "{n}");
                    }
                    Value::Bool(b) => line.push_str(if *b { "true" } else { "false" }),
                    Value::Display(d) => {
                        let mut s = String::new();
                        let _ = write!(s, "{d}");
                        push_text(&mut line, &s, true);
                    }
                }
            }
        }
    }
    line.push('\n');
    line
}

/// JSON string with RFC 8259 §7 escapes (quotes, backslash, every control character).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Text value: bare when it has no space, quote, `=` or control character, else quoted with
/// escapes; control characters are always escaped so one event stays one line.
fn push_text(out: &mut String, s: &str, quote_if_needed: bool) {
    let needs_quotes = quote_if_needed
        && (s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control()));
    if needs_quotes {
        out.push('"');
    }
    for c in s.chars() {
        match c {
            '"' if needs_quotes => out.push_str("\\\""),
            '\\' if needs_quotes => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    if needs_quotes {
        out.push('"');
    }
}

/// The level [`format_event`] gives `event` (check it against the logger's level before
/// formatting, to skip the work for filtered events).
pub fn event_level(event: &Event) -> Level {
    match event {
        Event::ConnectionAccepted { .. }
        | Event::ConnectionClosed { .. }
        | Event::RemoteStarted { .. }
        | Event::UnwrapJoined { .. } => Level::Debug,
        Event::ConnectionRefused { .. } | Event::ParkedLimitReached { .. } => Level::Warn,
        Event::Transport { event, .. } => match event {
            ConnEvent::ProtocolError { .. } | ConnEvent::RequestRejected { .. } => Level::Info,
            ConnEvent::PeerGoAway { .. }
            | ConnEvent::StreamReset { .. }
            | ConnEvent::Closed { .. } => Level::Debug,
        },
        Event::RequestAbandoned { .. }
        | Event::LateRemoteReplyDropped { .. }
        | Event::KeyIdChanged { .. }
        | Event::LocalKekRotated { .. }
        | Event::ShutdownStarted => Level::Info,
        Event::RequestCompleted { method, code, .. } => match code {
            Code::Ok => Level::Debug,
            _ if *method == Method::V2Status => Level::Debug,
            Code::Cancelled => Level::Info,
            _ => Level::Warn,
        },
        Event::RemoteCompleted { error, .. } => {
            if error.is_some() {
                Level::Warn
            } else {
                Level::Debug
            }
        }
        Event::RemoteAbandoned { timed_out, .. } => {
            if *timed_out {
                Level::Warn
            } else {
                Level::Debug
            }
        }
        Event::HealthChanged { healthy, cause } => {
            if *healthy || crate::health::is_startup_stage(cause) {
                Level::Info
            } else {
                Level::Warn
            }
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The uid as logged: at most [`MAX_UID_CHARS`] characters (cut ones end in `…`).
fn capped_uid(uid: &str) -> (&str, bool) {
    match uid.char_indices().nth(MAX_UID_CHARS) {
        Some((cut, _)) => (uid.get(..cut).unwrap_or(""), true),
        None => (uid, false),
    }
}

/// The log line for `event` at `ts` (wall clock since the Unix epoch), with its level. `None`
/// is reserved for events not worth a line (currently every event has one).
pub fn format_event(event: &Event, format: LogFormat, ts: Duration) -> Option<(Level, String)> {
    let level = event_level(event);
    let line =
        |msg: &str, fields: &[(&str, Value<'_>)]| format_line(format, ts, level, msg, fields);
    let text = match event {
        Event::ConnectionAccepted { conn } => {
            line("connection accepted", &[("conn", Value::U64(conn.0))])
        }
        Event::ConnectionRefused { conn } => line(
            "connection refused: connection limit reached or shutting down",
            &[("conn", Value::U64(conn.0))],
        ),
        Event::ConnectionClosed { conn } => {
            line("connection closed", &[("conn", Value::U64(conn.0))])
        }
        Event::Transport { conn, event } => transport_line(*conn, event, &line),
        Event::RequestCompleted {
            conn,
            method,
            code,
            latency,
            parked,
            uid,
        } => {
            let mut uid_buf = String::new();
            let uid_value = uid.as_deref().map(|u| {
                let (head, cut) = capped_uid(u);
                if cut {
                    uid_buf.push_str(head);
                    uid_buf.push('…');
                    uid_buf.as_str()
                } else {
                    head
                }
            });
            let fields = [
                ("method", Value::Str(method.name())),
                ("code", Value::Str(code.name())),
                ("latency_us", Value::U64(us(*latency))),
                ("parked", Value::Bool(*parked)),
                ("conn", Value::U64(conn.0)),
                ("uid", Value::Str(uid_value.unwrap_or(""))),
            ];
            let n = if uid_value.is_some() { 6 } else { 5 };
            line("request completed", fields.get(..n).unwrap_or(&fields))
        }
        Event::RequestAbandoned { conn, method } => line(
            "request abandoned by the client",
            &[
                ("method", Value::Str(method.name())),
                ("conn", Value::U64(conn.0)),
            ],
        ),
        Event::RemoteStarted { id, op } => line(
            remote_msg(*op, "started"),
            &[("op", Value::Str(op.name())), ("op_id", Value::U64(id.0))],
        ),
        Event::RemoteCompleted {
            id,
            op,
            error,
            latency,
        } => match error {
            None => line(
                remote_msg(*op, "completed"),
                &[
                    ("op", Value::Str(op.name())),
                    ("op_id", Value::U64(id.0)),
                    ("latency_ms", Value::U64(ms(*latency))),
                ],
            ),
            Some(kind) => line(
                "remote operation failed",
                &[
                    ("op", Value::Str(op.name())),
                    ("error", Value::Str(kind.name())),
                    ("op_id", Value::U64(id.0)),
                    ("latency_ms", Value::U64(ms(*latency))),
                ],
            ),
        },
        Event::RemoteAbandoned { id, op, timed_out } => line(
            if *timed_out {
                "remote operation timed out"
            } else {
                "remote operation no longer needed"
            },
            &[("op", Value::Str(op.name())), ("op_id", Value::U64(id.0))],
        ),
        Event::LateRemoteReplyDropped { id } => {
            line("late remote reply dropped", &[("op_id", Value::U64(id.0))])
        }
        Event::UnwrapJoined { id } => line(
            "decrypt joined an unwrap in flight",
            &[("op_id", Value::U64(id.0))],
        ),
        Event::KeyIdChanged { key_id } => line(
            "remote key id changed",
            &[("key_id_hash", Value::Str(&hash_key_id(key_id)))],
        ),
        Event::LocalKekRotated { reason } => line(
            "local KEK rotated",
            &[("reason", Value::Str(reason.name()))],
        ),
        Event::HealthChanged { healthy, cause } => {
            if *healthy {
                line("healthy", &[])
            } else {
                line("unhealthy", &[("cause", Value::Str(cause))])
            }
        }
        Event::ParkedLimitReached { conn } => line(
            "request refused: too many requests waiting for the remote KMS",
            &[("conn", Value::U64(conn.0))],
        ),
        Event::ShutdownStarted => line("graceful shutdown started", &[]),
    };
    Some((level, text))
}

/// Formats a message and its fields into a line (level and time already bound).
type LineFn<'a> = dyn Fn(&str, &[(&str, Value<'_>)]) -> String + 'a;

/// The line of a transport event: its kind, HTTP/2 error code name, stream and static detail.
fn transport_line(conn: ConnId, event: &ConnEvent, line: &LineFn<'_>) -> String {
    let c = ("conn", Value::U64(conn.0));
    match event {
        ConnEvent::ProtocolError {
            stream,
            reason,
            detail,
        } => {
            let fields = [
                ("reason", Value::Str(reason.name())),
                ("detail", Value::Str(detail)),
                c,
                ("stream", Value::U64(u64::from(stream.unwrap_or(0)))),
            ];
            let (msg, n) = if stream.is_some() {
                ("HTTP/2 stream error sent (RST_STREAM)", 4)
            } else {
                ("HTTP/2 connection error sent (GOAWAY)", 3)
            };
            line(msg, fields.get(..n).unwrap_or(&fields))
        }
        ConnEvent::RequestRejected { stream, code } => line(
            "request rejected by the transport",
            &[
                ("code", Value::Str(code.name())),
                c,
                ("stream", Value::U64(u64::from(*stream))),
            ],
        ),
        ConnEvent::PeerGoAway {
            reason,
            last_stream,
        } => line(
            "peer sent GOAWAY",
            &[
                ("reason", Value::Str(reason.name())),
                c,
                ("last_stream", Value::U64(u64::from(*last_stream))),
            ],
        ),
        ConnEvent::StreamReset { stream, reason } => line(
            "peer reset a stream",
            &[
                ("reason", Value::Str(reason.name())),
                c,
                ("stream", Value::U64(u64::from(*stream))),
            ],
        ),
        ConnEvent::Closed { reason } => line(
            "connection closed by the transport",
            &[("reason", Value::Str(reason)), c],
        ),
    }
}

/// Message for a remote operation's start/end; status refreshes read as health polling.
fn remote_msg(op: RemoteOpKind, what: &str) -> &'static str {
    match (op, what) {
        (RemoteOpKind::Status, "started") => "remote status refresh started",
        (RemoteOpKind::Status, _) => "remote status refreshed",
        (_, "started") => "remote operation started",
        _ => "remote operation completed",
    }
}
