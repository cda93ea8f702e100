//! The remote-call policy (`kek::resilience`): retry backoff and its jitter bounds, the
//! circuit breaker's states, and how errors are classified for retry.

use core::time::Duration;

use kms_plugin_core::kek::resilience::*;
use kms_plugin_core::{RemoteError, RemoteErrorKind, Timestamp};

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

fn err(kind: RemoteErrorKind) -> RemoteError {
    RemoteError::new(kind, "test")
}

fn breaker(threshold: u32) -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig {
        failure_threshold: threshold,
        cool_down: Duration::from_secs(5),
    })
}

#[test]
fn backoff_grows_exponentially_within_jitter_bounds_and_caps() {
    let p = RetryPolicy::default();
    for jitter in [0u64, 1, 12_345, u64::MAX] {
        let b0 = p.backoff(0, jitter);
        assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
        let b3 = p.backoff(3, jitter);
        assert!(b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800));
        let b40 = p.backoff(40, jitter);
        assert!(b40 >= Duration::from_secs(1) && b40 <= Duration::from_secs(2));
    }
    assert_eq!(p.backoff(0, 0), Duration::from_millis(50));
    assert_ne!(p.backoff(2, 7), p.backoff(2, 9_999_999));
}

#[test]
fn transient_failures_retry_until_max_attempts() {
    let p = RetryPolicy::default();
    let mut b = breaker(10);
    let mut call = Call::new(ms(10_000));
    let mut now = ms(0);
    for attempt in 1..=3u32 {
        let started = call.begin_attempt(&p, &mut b, now).unwrap();
        assert_eq!(started.deadline, now.saturating_add(p.attempt_timeout));
        assert!(!started.probe);
        assert_eq!(call.attempts(), attempt);
        match call.after_failure(&p, &mut b, err(RemoteErrorKind::Unavailable), now, 0) {
            AfterFailure::RetryAt(at) => {
                assert!(attempt < 3);
                assert!(at > now);
                now = at;
            }
            AfterFailure::GiveUp(e) => {
                assert_eq!(attempt, 3);
                assert_eq!(e.kind, RemoteErrorKind::Unavailable);
            }
        }
    }
}

#[test]
fn non_transient_failures_are_never_retried() {
    let p = RetryPolicy::default();
    for kind in [
        RemoteErrorKind::Auth,
        RemoteErrorKind::Permission,
        RemoteErrorKind::NotFound,
        RemoteErrorKind::Corrupt,
        RemoteErrorKind::Other,
    ] {
        let mut b = breaker(1);
        let mut call = Call::new(ms(10_000));
        call.begin_attempt(&p, &mut b, ms(0)).unwrap();
        let after = call.after_failure(&p, &mut b, err(kind), ms(1), 0);
        assert_eq!(after, AfterFailure::GiveUp(err(kind)));
        // The remote answered: even a threshold of 1 leaves the breaker closed.
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
    }
}

#[test]
fn attempts_stay_inside_the_call_deadline() {
    let p = RetryPolicy::default();
    let mut b = breaker(10);
    let mut call = Call::new(ms(1_000));
    let d = call.begin_attempt(&p, &mut b, ms(0)).unwrap().deadline;
    assert_eq!(
        d,
        ms(1_000),
        "attempt deadline is capped by the call deadline"
    );
    // A retry whose backoff would end too close to the deadline is not scheduled.
    let after = call.after_failure(&p, &mut b, err(RemoteErrorKind::Timeout), ms(990), 0);
    assert!(matches!(after, AfterFailure::GiveUp(e) if e.kind == RemoteErrorKind::Timeout));
    // No attempt starts with less than min_attempt_time left.
    let mut late = Call::new(ms(1_000));
    let e = late.begin_attempt(&p, &mut b, ms(990)).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Timeout);
    assert_eq!(late.attempts(), 0);
}

#[test]
fn breaker_opens_after_threshold_fails_fast_and_probes_after_cool_down() {
    let mut b = breaker(3);
    for i in 0..3 {
        b.admit(ms(i)).unwrap();
        b.record_failure(&err(RemoteErrorKind::Unavailable), ms(i));
    }
    assert_eq!(b.state(), BreakerState::Open { until: ms(5_002) });
    let e = b.admit(ms(100)).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Unavailable);
    assert!(e.detail.starts_with("circuit open"), "{}", e.detail);
    assert!(e.detail.contains("unavailable: test"), "{}", e.detail);
    // Cool-down over: exactly one probe goes through.
    assert_eq!(b.admit(ms(5_002)).unwrap(), Admission::Probe);
    assert_eq!(b.state(), BreakerState::AwaitProbe);
    assert!(b.admit(ms(5_003)).is_err());
    // Failed probe re-opens for a full cool-down.
    b.record_failure(&err(RemoteErrorKind::Timeout), ms(5_010));
    assert_eq!(b.state(), BreakerState::Open { until: ms(10_010) });
    // Successful probe closes.
    b.admit(ms(10_010)).unwrap();
    b.record_success(ms(10_011));
    assert_eq!(
        b.state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(b.admit(ms(10_012)).unwrap(), Admission::Normal);
}

#[test]
fn success_resets_the_failure_count() {
    let mut b = breaker(3);
    b.record_failure(&err(RemoteErrorKind::Unavailable), ms(0));
    b.record_failure(&err(RemoteErrorKind::Unavailable), ms(1));
    b.record_success(ms(2));
    b.record_failure(&err(RemoteErrorKind::Unavailable), ms(3));
    assert_eq!(
        b.state(),
        BreakerState::Closed {
            consecutive_failures: 1
        }
    );
}

#[test]
fn abandoned_probe_lets_the_next_call_probe() {
    let mut b = breaker(1);
    b.record_failure(&err(RemoteErrorKind::Unavailable), ms(0));
    b.admit(ms(5_000)).unwrap();
    b.abandon_probe(ms(5_001));
    b.admit(ms(5_001)).unwrap();
    assert_eq!(b.state(), BreakerState::AwaitProbe);
}

#[test]
fn open_breaker_makes_call_fail_fast_without_an_attempt() {
    let p = RetryPolicy::default();
    let mut b = breaker(1);
    let mut call = Call::new(ms(10_000));
    call.begin_attempt(&p, &mut b, ms(0)).unwrap();
    let after = call.after_failure(&p, &mut b, err(RemoteErrorKind::Unavailable), ms(1), 0);
    let AfterFailure::RetryAt(at) = after else {
        panic!("expected a retry, got {after:?}")
    };
    let e = call.begin_attempt(&p, &mut b, at).unwrap_err();
    assert!(e.detail.starts_with("circuit open"));
    assert_eq!(call.attempts(), 1);
}
