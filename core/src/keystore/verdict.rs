//! The healthz verdict: what the keystore's state says about Encrypt and Decrypt right now,
//! the string v2 Status reports, and the event when it changes.

use core::time::Duration;

use super::{Keystore, WrapState};
use crate::effect::RemoteErrorKind;
use crate::event::Event;
use crate::health::{self, Health};
use crate::time::Timestamp;

impl Keystore {
    /// The healthz verdict at `now` (the cached one, with time-based causes re-checked).
    pub fn health_at(&self, now: Timestamp) -> Health {
        self.compute_health(now)
    }

    /// The healthz string v2 Status reports at `now`: [`Keystore::health_at`]'s cause, except
    /// that a missing remote key version is named with the remote's detail: `key version
    /// missing: <detail>` (an unwrap under it failed; the most recent of them), or `remote kms
    /// error: key_version_missing: <detail>` (Status itself fails: a key it reported is gone,
    /// a key file was refused). Bounded and non-secret.
    pub fn healthz_at(&self, now: Timestamp) -> &str {
        let h = self.compute_health(now);
        if h.cause == health::KEY_VERSION_MISSING {
            self.missing.healthz()
        } else if self.remote.last_error == Some(RemoteErrorKind::KeyVersionMissing)
            && h.cause == health::remote_cause(RemoteErrorKind::KeyVersionMissing)
            && !self.remote.missing_named.is_empty()
        {
            &self.remote.missing_named
        } else {
            h.cause
        }
    }

    pub(super) fn wrap_error(&self) -> Option<RemoteErrorKind> {
        match self.wrap {
            WrapState::Idle { last_error, .. } => last_error,
            WrapState::AwaitingWrap { .. } => None,
        }
    }

    pub(super) fn unavailable_cause(&self, now: Timestamp) -> &'static str {
        let h = self.compute_health(now);
        if h.ok {
            // Unreachable in practice: healthy implies a usable KEK.
            health::NO_LOCAL_KEK
        } else {
            h.cause
        }
    }

    pub(super) fn compute_health(&self, now: Timestamp) -> Health {
        if let Some(kind) = self.remote.last_error {
            return Health::failing(health::remote_cause(kind));
        }
        let Some(last) = self.remote.last_success else {
            return Health::failing(health::AWAITING_STATUS);
        };
        if now.saturating_duration_since(last) > self.cfg.status_staleness {
            return Health::failing(health::STATUS_STALE);
        }
        let Some(cur) = &self.current else {
            return Health::failing(
                self.wrap_error()
                    .map_or(health::NO_LOCAL_KEK, health::remote_cause),
            );
        };
        if !self.usable(cur, now) {
            return Health::failing(health::LOCAL_KEK_WORN_OUT);
        }
        if let Some(kind) = self.wrap_error() {
            return Health::failing(health::remote_cause(kind));
        }
        // Last: Encrypt works and the apiserver keeps writing (and rotating) through a non-`ok`
        // healthz, but data under the missing version stays unreadable until it is restored.
        if !self.missing.is_empty() {
            return Health::failing(health::KEY_VERSION_MISSING);
        }
        Health::HEALTHY
    }

    pub(super) fn refresh_health(&mut self, now: Timestamp) {
        let h = self.compute_health(now);
        if h != self.health {
            self.health = h;
            self.events.push_back(Event::HealthChanged {
                healthy: h.ok,
                cause: h.cause,
            });
        }
    }

    /// Time since the last successful remote Status (for probes and metrics).
    pub fn status_age(&self, now: Timestamp) -> Option<Duration> {
        self.remote
            .last_success
            .map(|t| now.saturating_duration_since(t))
    }
}
