//! Core events and runtime messages as log lines (JSON by default, or text), in the shape the
//! blocking runtime writes: the line formatter is `kms_plugin_core::metrics::log`.

use std::fmt::Display;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kms_plugin_core::event::Event;
use kms_plugin_core::metrics::log::{Value, event_level, format_event, format_line};

pub use kms_plugin_core::metrics::log::{Level, LogFormat};

/// Where lines go: one `write_all` per line, under a lock, so lines never interleave.
type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// A logger for the smol runtime. Cheap to clone (clones share the sink).
#[derive(Clone)]
pub struct EventLogger {
    format: LogFormat,
    level: Level,
    sink: Sink,
}

impl EventLogger {
    /// Writes to stderr.
    pub fn stderr(format: LogFormat, level: Level) -> Self {
        Self::to_writer(format, level, Box::new(std::io::stderr()))
    }

    /// Writes to `sink` (e.g. a file, or a buffer in tests).
    pub fn to_writer(format: LogFormat, level: Level, sink: Box<dyn Write + Send>) -> Self {
        Self {
            format,
            level,
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    /// Whether `level` is written.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Logs one core event if its level is enabled (key ids hashed, uids escaped).
    pub fn event(&self, event: &Event) {
        if !self.enabled(event_level(event)) {
            return;
        }
        if let Some((_, line)) = format_event(event, self.format, wall_clock()) {
            self.write(&line);
        }
    }

    /// Logs `msg` with non-secret `fields`.
    pub fn log(&self, level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
        if !self.enabled(level) {
            return;
        }
        let fields: Vec<(&str, Value<'_>)> = fields
            .iter()
            .map(|(k, v)| (*k, Value::Display(*v)))
            .collect();
        self.write(&format_line(self.format, wall_clock(), level, msg, &fields));
    }

    fn write(&self, line: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = sink.write_all(line.as_bytes());
        let _ = sink.flush();
    }
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}
