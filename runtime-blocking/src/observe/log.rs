//! Core events as log lines: the shared formatter
//! ([`kms_plugin_core::metrics::log::format_event`]) written through the runtime's [`Logger`].

use kms_plugin_core::event::Event;
use kms_plugin_core::metrics::log::{event_level, format_event};

use crate::log::{Logger, wall_clock};

/// Logs one core event if its level is enabled (formatting is skipped otherwise). Events hold
/// no secrets, key ids are written hashed and request uids escaped.
pub fn log_event(logger: &Logger, event: &Event) {
    if !logger.enabled(event_level(event)) {
        return;
    }
    if let Some((level, line)) = format_event(event, logger.format(), wall_clock()) {
        logger.write_line(level, &line);
    }
}
