//! Retries, per-attempt deadlines and a circuit breaker around any [`AsyncKekProvider`].
//!
//! The decisions are the core's pure state machines (`kms_plugin_core::kek::resilience`);
//! this wrapper reads the clock, races attempts against timers and draws jitter. The async
//! trait carries no deadline, so each call gets `call_budget` (set it to the core's remote
//! timeout); the runtime may drop the future earlier, which cancels the attempt, and a
//! cancelled half-open probe hands the probe to the next call.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_io::Timer;
use kms_plugin_core::kek::resilience::{
    AfterFailure, BreakerConfig, BreakerState, Call, CircuitBreaker, RetryPolicy,
};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind, Timestamp};
use smol::future;

use super::{AsyncKekProvider, BoxFuture};

/// An [`AsyncKekProvider`] that retries transient failures of `P` and fails fast while the
/// remote is known to be down.
pub struct ResilientProvider<P> {
    inner: P,
    policy: RetryPolicy,
    call_budget: Duration,
    breaker: Mutex<CircuitBreaker>,
    origin: Instant,
    jitter: RandomState,
}

/// Hands the probe back to the breaker if the attempt's future is dropped mid-flight.
struct ProbeGuard<'a, P> {
    owner: &'a ResilientProvider<P>,
    armed: bool,
}

impl<P> Drop for ProbeGuard<'_, P> {
    fn drop(&mut self) {
        if self.armed {
            let now = self.owner.stamp(Instant::now());
            self.owner.lock().abandon_probe(now);
        }
    }
}

impl<P: AsyncKekProvider> ResilientProvider<P> {
    /// Wraps `inner`; each call may take up to `call_budget` including retries.
    pub fn new(
        inner: P,
        policy: RetryPolicy,
        breaker: BreakerConfig,
        call_budget: Duration,
    ) -> Self {
        Self {
            inner,
            policy,
            call_budget,
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

    async fn run<'a, T, F, Fut>(&'a self, mut attempt: F) -> Result<T, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RemoteError>> + 'a,
    {
        let mut call = Call::new(self.stamp(Instant::now() + self.call_budget));
        loop {
            let started = {
                let now = self.stamp(Instant::now());
                call.begin_attempt(&self.policy, &mut self.lock(), now)?
            };
            let mut guard = ProbeGuard {
                owner: self,
                armed: started.probe,
            };
            let until = self.instant(started.deadline);
            let timeout = async {
                Timer::at(until).await;
                Err(RemoteError::new(
                    RemoteErrorKind::Timeout,
                    format!("{}: attempt deadline exceeded", self.inner.name()),
                ))
            };
            let result = future::or(attempt(), timeout).await;
            guard.armed = false;
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
                            Timer::at(self.instant(at)).await;
                        }
                    }
                }
            }
        }
    }
}

impl<P> ResilientProvider<P> {
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
}

impl<P: AsyncKekProvider> AsyncKekProvider for ResilientProvider<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn status(&self) -> BoxFuture<'_, Result<String, RemoteError>> {
        Box::pin(self.run(|| self.inner.status()))
    }

    fn wrap<'a>(
        &'a self,
        key_id: &'a str,
        kek: &'a Secret32,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(self.run(move || self.inner.wrap(key_id, kek)))
    }

    fn unwrap<'a>(
        &'a self,
        key_id: &'a str,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Secret32, RemoteError>> {
        Box::pin(self.run(move || self.inner.unwrap(key_id, wrapped)))
    }
}
