//! Structured log lines on stderr (JSON by default, or text). Never given secrets: callers pass
//! only non-secret fields, and key ids are hashed by [`hash_key_id`].

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kms_plugin_core::metrics::log::{Value, format_line};

pub use kms_plugin_core::metrics::log::{Level, LogFormat};

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

    /// The line format.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Logs `msg` with `fields` (non-secret values only), in the shape shared with the core's
    /// event formatter ([`kms_plugin_core::metrics::log::format_line`]).
    pub fn log(&self, level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        if !self.enabled(level) {
            return;
        }
        let fields: Vec<(&str, Value<'_>)> = fields
            .iter()
            .map(|(k, v)| (*k, Value::Display(*v)))
            .collect();
        let line = format_line(self.format, wall_clock(), level, msg, &fields);
        self.write_line(level, &line);
    }

    /// Writes one complete, already formatted line (ending in `\n`) if `level` is enabled.
    pub fn write_line(&self, level: Level, line: &str) {
        if self.enabled(level) {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
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

/// Time since the Unix epoch (zero if the clock is before it).
pub fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// `sha256:<16 hex>` of a key id: how key ids appear in logs (the apiserver hashes them too).
pub use kms_plugin_core::metrics::hash_key_id;
