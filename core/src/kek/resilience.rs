//! Retry schedule and circuit breaker shared by every remote KEK provider (pure state machines).
//!
//! The runtimes' `resilient` provider wrappers own one [`CircuitBreaker`] per provider (behind
//! a mutex) and one [`Call`] per operation, read their clock, perform the attempts and sleep
//! between them; everything they *decide* is decided here, with `now` passed in and jitter
//! supplied by the caller, so the behaviour is tested on a virtual clock.
//!
//! Policy:
//! - Only transient failures ([`RemoteErrorKind::is_transient`]: throttled, unavailable,
//!   timeout) are retried, at most [`RetryPolicy::max_attempts`] attempts per call, with
//!   jittered exponential backoff, and never past the call's deadline. Auth, permission,
//!   not-found and corrupt answers are final at once (a wrong PIN is never retried, so an HSM
//!   token cannot be locked out by the plugin).
//! - Each attempt gets its own deadline, `min(now + attempt_timeout, call deadline)`.
//! - The breaker opens after [`BreakerConfig::failure_threshold`] consecutive transient
//!   failures; while open, calls fail fast with `Unavailable` "circuit open" (no remote
//!   traffic); after [`BreakerConfig::cool_down`] one call is let through as a half-open
//!   probe, whose success closes the breaker and whose transient failure re-opens it. The
//!   core's periodic Status is that probe, so a recovered remote is noticed without restart.
//! - A non-transient answer proves the remote is reachable and resets the failure count, so
//!   a wrong token is reported as `auth`, never hidden behind "circuit open".

use alloc::format;
use core::time::Duration;

use crate::effect::{RemoteError, RemoteErrorKind};
use crate::time::Timestamp;

/// How one remote operation is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, including the first (>= 1; 0 is treated as 1).
    pub max_attempts: u32,
    /// Backoff cap before the first retry; doubles on each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of any single backoff.
    pub max_backoff: Duration,
    /// Deadline of one attempt, counted from its start (the call's deadline still applies).
    pub attempt_timeout: Duration,
    /// An attempt is not started with less than this left before the call's deadline.
    pub min_attempt_time: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms .. 2 s backoff, 1 s per attempt, 20 ms minimum attempt: with the
    /// core's default 2 s remote timeout, a hung first attempt still leaves room for a retry.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(1),
            min_attempt_time: Duration::from_millis(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 = first retry): "equal jitter" over
    /// `cap = min(max_backoff, initial_backoff * 2^retry)`, i.e. uniform in `[cap/2, cap]`,
    /// drawn from the caller's random `jitter`. Deterministic for a given `jitter`.
    pub fn backoff(&self, retry: u32, jitter: u64) -> Duration {
        let initial = u64::try_from(self.initial_backoff.as_nanos()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.max_backoff.as_nanos()).unwrap_or(u64::MAX);
        let factor = 1u64.checked_shl(retry.min(63)).unwrap_or(u64::MAX);
        let cap = initial.saturating_mul(factor).min(max);
        let half = cap / 2;
        let spread = cap - half;
        let extra = if spread == 0 {
            0
        } else {
            jitter % spread.saturating_add(1)
        };
        Duration::from_nanos(half.saturating_add(extra))
    }
}

/// One remote operation's retry bookkeeping, from the first attempt to the final answer.
#[derive(Debug)]
pub struct Call {
    /// The core's deadline for the whole operation.
    deadline: Timestamp,
    /// Attempts started so far (0 before the first).
    attempts: u32,
}

/// A started attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The attempt must be abandoned (as `Timeout`) at this time.
    pub deadline: Timestamp,
    /// This attempt is the breaker's half-open probe: if it is cancelled before it reports,
    /// call [`CircuitBreaker::abandon_probe`].
    pub probe: bool,
}

/// How [`CircuitBreaker::admit`] let a call through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Normal,
    /// The breaker was open and its cool-down is over: this call is the one probe.
    Probe,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Wait until `at`, then call [`Call::begin_attempt`] again.
    RetryAt(Timestamp),
    /// Stop and report this error.
    GiveUp(RemoteError),
}

impl Call {
    /// A new call that must be answered by `deadline`.
    pub fn new(deadline: Timestamp) -> Self {
        Self {
            deadline,
            attempts: 0,
        }
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Asks `breaker` for permission and starts an attempt: returns the attempt's deadline
    /// and whether it is the breaker's half-open probe, or the error to report (circuit
    /// open, or no time left: `Timeout`).
    pub fn begin_attempt(
        &mut self,
        policy: &RetryPolicy,
        breaker: &mut CircuitBreaker,
        now: Timestamp,
    ) -> Result<Attempt, RemoteError> {
        if self.deadline.saturating_duration_since(now) < policy.min_attempt_time {
            return Err(RemoteError::new(
                RemoteErrorKind::Timeout,
                "deadline reached before the remote call could start",
            ));
        }
        let admission = breaker.admit(now)?;
        self.attempts = self.attempts.saturating_add(1);
        Ok(Attempt {
            deadline: now
                .saturating_add(policy.attempt_timeout)
                .min(self.deadline),
            probe: admission == Admission::Probe,
        })
    }

    /// Records a failed attempt in `breaker` and decides whether to retry. `jitter` is a
    /// fresh random number from the caller.
    pub fn after_failure(
        &mut self,
        policy: &RetryPolicy,
        breaker: &mut CircuitBreaker,
        error: RemoteError,
        now: Timestamp,
        jitter: u64,
    ) -> AfterFailure {
        breaker.record_failure(&error, now);
        if !error.kind.is_transient() || self.attempts >= policy.max_attempts.max(1) {
            return AfterFailure::GiveUp(error);
        }
        let retry_index = self.attempts.saturating_sub(1);
        let at = now.saturating_add(policy.backoff(retry_index, jitter));
        if self.deadline.saturating_duration_since(at) < policy.min_attempt_time {
            return AfterFailure::GiveUp(error);
        }
        AfterFailure::RetryAt(at)
    }

    /// Records a successful attempt in `breaker`.
    pub fn after_success(&mut self, breaker: &mut CircuitBreaker, now: Timestamp) {
        breaker.record_success(now);
    }
}

/// When the breaker opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker (>= 1; 0 is treated as 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before one probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive transient failures; probes again after 5 s.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// The breaker's state; each variant holds only what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `consecutive_failures` < threshold.
    Closed {
        /// Transient failures since the last success or non-transient answer.
        consecutive_failures: u32,
    },
    /// Calls fail fast until `until`.
    Open {
        /// When the next call becomes a half-open probe.
        until: Timestamp,
    },
    /// One probe is in flight; other calls fail fast until it reports.
    AwaitProbe,
}

/// Circuit breaker over one remote (see the module docs for the policy).
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    /// Kind and detail of the last transient failure, quoted in "circuit open" errors.
    last_failure: Option<RemoteError>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
            last_failure: None,
        }
    }

    /// The current state (for metrics and tests).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may go to the remote now. While open: `Err(Unavailable "circuit
    /// open ...")`. The first call after the cool-down becomes the probe
    /// ([`BreakerState::AwaitProbe`]); it must be followed by `record_success`,
    /// `record_failure` or [`CircuitBreaker::abandon_probe`].
    pub fn admit(&mut self, now: Timestamp) -> Result<Admission, RemoteError> {
        match self.state {
            BreakerState::Closed { .. } => Ok(Admission::Normal),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::AwaitProbe;
                Ok(Admission::Probe)
            }
            BreakerState::Open { until } => Err(self.open_error(Some(until), now)),
            BreakerState::AwaitProbe => Err(self.open_error(None, now)),
        }
    }

    /// A call succeeded: the breaker closes.
    pub fn record_success(&mut self, _now: Timestamp) {
        self.state = BreakerState::Closed {
            consecutive_failures: 0,
        };
        self.last_failure = None;
    }

    /// A call failed with `error`. Transient failures count towards opening (a failed probe
    /// re-opens at once); other failures mean the remote answered, so the count resets.
    pub fn record_failure(&mut self, error: &RemoteError, now: Timestamp) {
        if !error.kind.is_transient() {
            self.record_success(now);
            return;
        }
        self.last_failure = Some(error.clone());
        let threshold = self.config.failure_threshold.max(1);
        self.state = match self.state {
            BreakerState::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= threshold {
                    self.open_until(now)
                } else {
                    BreakerState::Closed {
                        consecutive_failures: failures,
                    }
                }
            }
            BreakerState::AwaitProbe => self.open_until(now),
            open @ BreakerState::Open { .. } => open,
        };
    }

    /// The probe was cancelled before it answered: the next call becomes the probe.
    pub fn abandon_probe(&mut self, now: Timestamp) {
        if self.state == BreakerState::AwaitProbe {
            self.state = BreakerState::Open { until: now };
        }
    }

    fn open_until(&self, now: Timestamp) -> BreakerState {
        BreakerState::Open {
            until: now.saturating_add(self.config.cool_down),
        }
    }

    fn open_error(&self, until: Option<Timestamp>, now: Timestamp) -> RemoteError {
        let last = match &self.last_failure {
            Some(e) => format!("; last failure: {}: {}", e.kind.name(), e.detail),
            None => alloc::string::String::new(),
        };
        let when = match until {
            Some(t) => format!(
                "next probe in {} ms",
                t.saturating_duration_since(now).as_millis()
            ),
            None => alloc::string::String::from("probe in flight"),
        };
        RemoteError::new(
            RemoteErrorKind::Unavailable,
            format!("circuit open ({when}){last}"),
        )
    }
}
