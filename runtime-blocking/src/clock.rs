//! One monotonic origin converting `Instant` <-> the core's `Timestamp`.

use std::time::{Duration, Instant};

use kms_plugin_core::Timestamp;

/// Converts between the process's monotonic clock and core timestamps.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The current time as a core timestamp.
    pub fn now(&self) -> Timestamp {
        self.timestamp(Instant::now())
    }

    /// `instant` as a core timestamp (saturating at the origin).
    pub fn timestamp(&self, instant: Instant) -> Timestamp {
        let nanos = instant.saturating_duration_since(self.origin).as_nanos();
        Timestamp::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// `t` as an `Instant`.
    pub fn instant(&self, t: Timestamp) -> Instant {
        self.origin
            .checked_add(Duration::from_nanos(t.as_nanos()))
            .unwrap_or_else(|| self.origin + Duration::from_secs(86_400 * 365))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
