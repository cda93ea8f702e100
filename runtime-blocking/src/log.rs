//! Structured log lines on stderr (JSON by default, or text). Never given secrets: callers pass
//! only non-secret fields, and key ids are hashed by [`hash_key_id`].

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// `ts level msg key=value ...`.
    Text,
}

/// Severity, most severe first.
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
    /// Parses `error|warn|info|debug`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "error" => Self::Error,
            "warn" | "warning" => Self::Warn,
            "info" => Self::Info,
            "debug" => Self::Debug,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

/// A logger writing whole lines to stderr (one `write` per line, so lines never interleave).
#[derive(Clone, Copy, Debug)]
pub struct Logger {
    format: LogFormat,
    level: Level,
}

impl Logger {
    /// A logger with `format`, printing `level` and more severe.
    pub fn new(format: LogFormat, level: Level) -> Self {
        Self { format, level }
    }

    /// Whether `level` is printed.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Logs `msg` with `fields` (non-secret values only).
    pub fn log(&self, level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        if !self.enabled(level) {
            return;
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = String::with_capacity(128);
        match self.format {
            LogFormat::Json => {
                let _ = write!(
                    line,
                    "{{\"ts\":{ts:.6},\"level\":\"{}\",\"msg\":",
                    level.name()
                );
                push_json_str(&mut line, msg);
                for (key, value) in fields {
                    line.push(',');
                    push_json_str(&mut line, key);
                    line.push(':');
                    push_json_str(&mut line, &value.to_string());
                }
                line.push('}');
            }
            LogFormat::Text => {
                let _ = write!(line, "{ts:.6} {:5} {msg}", level.name());
                for (key, value) in fields {
                    let _ = write!(line, " {key}={value}");
                }
            }
        }
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// Logs at error level.
    pub fn error(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Error, msg, fields);
    }

    /// Logs at warn level.
    pub fn warn(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Warn, msg, fields);
    }

    /// Logs at info level.
    pub fn info(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Info, msg, fields);
    }

    /// Logs at debug level.
    pub fn debug(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Debug, msg, fields);
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `sha256:<16 hex>` of a key id: how key ids appear in logs (the apiserver hashes them too).
pub fn hash_key_id(key_id: &str) -> String {
    let digest = Sha256::digest(key_id.as_bytes());
    let mut out = String::from("sha256:");
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}
