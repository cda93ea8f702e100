//! The resilient wrapper (retries + circuit breaker) around the blocking Vault provider,
//! against the fake Transit server: 5xx retried, auth not retried, deadlines respected, a dead
//! server opens the breaker and recovery closes it without restarting anything.
#![cfg(feature = "vault")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/transit_server.rs"]
mod transit_server;

use std::time::{Duration, Instant};

use kms_plugin_blocking::provider::KekProvider;
use kms_plugin_blocking::provider::resilient::ResilientProvider;
use kms_plugin_blocking::provider::vault::{TokenSource, VaultConfig, VaultProvider};
use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::kek::resilience::{BreakerConfig, BreakerState, RetryPolicy};
use kms_plugin_core::secret::Secret32;
use transit_server::TransitServer;
use zeroize::Zeroizing;

const TOKEN: &str = "hvs.resilient";

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_millis(250),
        min_attempt_time: Duration::from_millis(5),
    }
}

fn provider(
    server: &TransitServer,
    token: &str,
    breaker: BreakerConfig,
) -> ResilientProvider<VaultProvider> {
    let vault = VaultProvider::new(VaultConfig {
        addr: server.url(),
        namespace: None,
        mount: "transit".into(),
        key: "kms".into(),
        token: TokenSource::Value(Zeroizing::new(token.into())),
        ca_file: None,
    })
    .unwrap();
    ResilientProvider::new(vault, policy(), breaker)
}

fn server() -> TransitServer {
    let s = TransitServer::start();
    s.add_key("kms");
    s.allow_token(TOKEN);
    s
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn lenient() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 100,
        cool_down: Duration::from_secs(60),
    }
}

#[test]
fn transient_5xx_is_retried_until_success() {
    let s = server();
    let p = provider(&s, TOKEN, lenient());
    s.fail_next(503, 2);
    let key_id = p.status(soon()).unwrap();
    assert!(key_id.starts_with("vault:kms:v1:"));
    assert_eq!(s.count("/keys/kms"), 3, "two failures, then success");
    // Wrap and unwrap are retried the same way.
    s.fail_next(502, 1);
    let wrapped = p
        .wrap(&key_id, &Secret32::from_bytes([5; 32]), soon())
        .unwrap();
    s.fail_next(429, 1);
    assert_eq!(
        p.unwrap(&key_id, &wrapped, soon()).unwrap().expose(),
        &[5; 32]
    );
    assert_eq!(s.count("/encrypt/"), 2);
    assert_eq!(s.count("/decrypt/"), 2);
}

#[test]
fn retries_are_bounded() {
    let s = server();
    let p = provider(&s, TOKEN, lenient());
    s.fail_next(500, 10);
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Unavailable);
    assert_eq!(s.count("/keys/kms"), 3, "max_attempts");
}

#[test]
fn auth_failures_are_not_retried_and_do_not_open_the_breaker() {
    let s = server();
    let p = provider(
        &s,
        "hvs.wrong",
        BreakerConfig {
            failure_threshold: 1,
            cool_down: Duration::from_secs(60),
        },
    );
    for _ in 0..3 {
        assert_eq!(p.status(soon()).unwrap_err().kind, RemoteErrorKind::Auth);
    }
    assert_eq!(s.count("/keys/kms"), 3, "exactly one request per call");
    assert_eq!(
        p.breaker_state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
}

#[test]
fn hung_server_returns_timeout_by_the_call_deadline() {
    let s = server();
    let p = provider(&s, TOKEN, lenient());
    s.set_delay(Duration::from_secs(5));
    let start = Instant::now();
    let e = p.status(start + Duration::from_millis(700)).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind, RemoteErrorKind::Timeout, "{}", e.detail);
    assert!(took < Duration::from_millis(1_200), "overran: {took:?}");
    // Several 250 ms attempts fit before the 700 ms deadline.
    assert!(
        s.count("/keys/kms") >= 2,
        "per-attempt deadline allows retries"
    );
}

#[test]
fn dead_server_opens_the_breaker_which_recovers_by_probing() {
    let mut s = server();
    let p = provider(
        &s,
        TOKEN,
        BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_millis(300),
        },
    );
    let key_id = p.status(soon()).unwrap();
    s.stop();
    // One call makes 3 attempts: all refused, so the breaker opens.
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Unavailable, "{}", e.detail);
    assert!(matches!(p.breaker_state(), BreakerState::Open { .. }));
    // The remote comes back, but while open calls fail fast without traffic.
    s.restart();
    let before = s.count("");
    let start = Instant::now();
    let e = p.status(soon()).unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(e.kind, RemoteErrorKind::Unavailable);
    assert!(e.detail.starts_with("circuit open"), "{}", e.detail);
    assert!(
        e.detail.contains("unavailable"),
        "cause is quoted: {}",
        e.detail
    );
    assert_eq!(s.count(""), before);
    // After the cool-down the next call (the core's periodic Status) probes and recovers.
    std::thread::sleep(Duration::from_millis(320));
    assert_eq!(p.status(soon()).unwrap(), key_id);
    assert_eq!(
        p.breaker_state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
}

#[test]
fn remote_down_at_start_then_up_recovers_without_restart() {
    let mut s = server();
    s.stop();
    // The plugin builds its provider while Vault is down: no IO at construction.
    let p = provider(
        &s,
        TOKEN,
        BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_millis(200),
        },
    );
    let start = Instant::now();
    let e = p.status(start + Duration::from_secs(2)).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Unavailable, "{}", e.detail);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "bounded by the deadline"
    );
    s.restart();
    std::thread::sleep(Duration::from_millis(220));
    let key_id = p.status(soon()).unwrap();
    assert!(key_id.starts_with("vault:kms:v1:"));
}
