//! A [`KekProvider`] wrapper that logs what the core cannot: the detail of a
//! `key_version_missing` failure (which remote key version is gone, and the fix). The core
//! sees only the error kind for Status failures (healthz `remote kms error:
//! key_version_missing`); this log line names the version. Each distinct detail is logged once
//! in a row, so a Status failing on every refresh does not repeat it.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};

use super::KekProvider;
use crate::log::Logger;

/// Logs `key_version_missing` failures of `inner` (see the module docs).
pub struct LogMissingVersions {
    inner: Box<dyn KekProvider>,
    logger: Logger,
    last: Mutex<Option<String>>,
}

impl LogMissingVersions {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn KekProvider>, logger: Logger) -> Self {
        Self {
            inner,
            logger,
            last: Mutex::new(None),
        }
    }

    fn note<T>(&self, op: &str, result: Result<T, RemoteError>) -> Result<T, RemoteError> {
        if let Err(e) = &result
            && e.kind == RemoteErrorKind::KeyVersionMissing
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if last.as_deref() != Some(e.detail.as_str()) {
                self.logger.error(
                    "remote key version missing: data wrapped under it no longer decrypts",
                    &[
                        ("provider", &self.inner.name()),
                        ("op", &op),
                        ("detail", &e.detail),
                    ],
                );
                *last = Some(e.detail.clone());
            }
        }
        result
    }
}

impl KekProvider for LogMissingVersions {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        self.note("status", self.inner.status(deadline))
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        self.note("wrap", self.inner.wrap(key_id, kek, deadline))
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        self.note("unwrap", self.inner.unwrap(key_id, wrapped, deadline))
    }

    fn render_metrics(&self, out: &mut String) {
        self.inner.render_metrics(out);
    }

    fn health_warning(&self) -> Option<&'static str> {
        self.inner.health_warning()
    }
}
