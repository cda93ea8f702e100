//! Retries, per-attempt deadlines and a circuit breaker around any blocking [`KekProvider`].
//!
//! The decisions (which errors retry, backoff, breaker transitions) are the core's pure
//! state machines in `kms_plugin_core::kek::resilience`; this wrapper only reads the clock,
//! sleeps between attempts and draws jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kms_plugin_core::kek::resilience::{
    AfterFailure, BreakerConfig, BreakerState, Call, CircuitBreaker, RetryPolicy,
};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, Timestamp};

use super::KekProvider;

/// A [`KekProvider`] that retries transient failures of `P` and fails fast while the remote
/// is known to be down. Every call returns by its deadline (plus the time the inner provider
/// overruns its own attempt deadline, which well-behaved providers do not).
pub struct ResilientProvider<P> {
    inner: P,
    policy: RetryPolicy,
    breaker: Mutex<CircuitBreaker>,
    origin: Instant,
    jitter: RandomState,
}

impl<P: KekProvider> ResilientProvider<P> {
    /// Wraps `inner` with `policy` and a breaker configured by `breaker`.
    pub fn new(inner: P, policy: RetryPolicy, breaker: BreakerConfig) -> Self {
        Self {
            inner,
            policy,
            breaker: Mutex::new(CircuitBreaker::new(breaker)),
            origin: Instant::now(),
            jitter: RandomState::new(),
        }
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The breaker's current state (for metrics and tests).
    pub fn breaker_state(&self) -> BreakerState {
        self.lock().state()
    }

    fn lock(&self) -> MutexGuard<'_, CircuitBreaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamp(&self, t: Instant) -> Timestamp {
        let nanos = t.saturating_duration_since(self.origin).as_nanos();
        Timestamp::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn instant(&self, t: Timestamp) -> Instant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }

    fn next_jitter(&self) -> u64 {
        let mut h = self.jitter.build_hasher();
        h.write_u128(
            Instant::now()
                .saturating_duration_since(self.origin)
                .as_nanos(),
        );
        h.finish()
    }

    /// Runs `attempt` under the retry policy and breaker.
    fn run<T>(
        &self,
        deadline: Instant,
        mut attempt: impl FnMut(Instant) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let mut call = Call::new(self.stamp(deadline));
        loop {
            let attempt_deadline = {
                let now = self.stamp(Instant::now());
                call.begin_attempt(&self.policy, &mut self.lock(), now)?
                    .deadline
            };
            let result = attempt(self.instant(attempt_deadline));
            let now = self.stamp(Instant::now());
            match result {
                Ok(v) => {
                    call.after_success(&mut self.lock(), now);
                    return Ok(v);
                }
                Err(e) => {
                    let jitter = self.next_jitter();
                    let after = call.after_failure(&self.policy, &mut self.lock(), e, now, jitter);
                    match after {
                        AfterFailure::GiveUp(e) => return Err(e),
                        AfterFailure::RetryAt(at) => {
                            std::thread::sleep(
                                self.instant(at).saturating_duration_since(Instant::now()),
                            );
                        }
                    }
                }
            }
        }
    }
}

impl<P: KekProvider> KekProvider for ResilientProvider<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn render_metrics(&self, out: &mut String) {
        self.inner.render_metrics(out);
    }

    fn health_warning(&self) -> Option<&'static str> {
        self.inner.health_warning()
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        self.run(deadline, |d| self.inner.status(d))
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        self.run(deadline, |d| self.inner.wrap(key_id, kek, d))
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        self.run(deadline, |d| self.inner.unwrap(key_id, wrapped, d))
    }
}
