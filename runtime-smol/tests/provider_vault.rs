//! The smol Vault Transit provider (hyper 1 + futures-rustls) and its resilient wrapper
//! against the same fake Transit server as the blocking runtime's tests (real HTTP and HTTPS
//! on 127.0.0.1).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../runtime-blocking/tests/support/transit_server.rs"]
mod transit_server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_io::Timer;
use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::kek::resilience::{BreakerConfig, BreakerState, RetryPolicy};
use kms_plugin_core::secret::Secret32;
use kms_plugin_smol::provider::AsyncKekProvider;
use kms_plugin_smol::provider::resilient::ResilientProvider;
use kms_plugin_smol::provider::vault::{TokenSource, VaultConfig, VaultProvider};
use smol::future;
use transit_server::TransitServer;
use zeroize::Zeroizing;

const TOKEN: &str = "hvs.smol-token";

fn config(server: &TransitServer, token: TokenSource) -> VaultConfig {
    VaultConfig {
        addr: server.url(),
        namespace: None,
        mount: "transit".into(),
        key: "kms".into(),
        token,
        ca_file: None,
        request_timeout: Duration::from_secs(5),
    }
}

fn token(t: &str) -> TokenSource {
    TokenSource::Value(Zeroizing::new(t.to_string()))
}

fn server() -> TransitServer {
    let s = TransitServer::start();
    s.add_key("kms");
    s.allow_token(TOKEN);
    s
}

fn kek(b: u8) -> Secret32 {
    Secret32::from_bytes([b; 32])
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kms-smol-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn round_trip_rotation_and_old_blobs() {
    let s = server();
    let p = VaultProvider::new(config(&s, token(TOKEN))).unwrap();
    smol::block_on(async {
        assert_eq!(p.name(), "vault");
        let v1 = p.status().await.unwrap();
        assert!(v1.starts_with("vault:kms:v1:"), "{v1}");
        let old = p.wrap(&v1, &kek(1)).await.unwrap();
        assert!(old.starts_with(b"vault:v1:"));
        assert_eq!(p.unwrap(&v1, &old).await.unwrap().expose(), &[1; 32]);
        s.rotate("kms");
        let v2 = p.status().await.unwrap();
        assert!(v2.starts_with("vault:kms:v2:"), "{v2}");
        let new = p.wrap(&v2, &kek(2)).await.unwrap();
        assert!(new.starts_with(b"vault:v2:"));
        assert_eq!(p.unwrap(&v1, &old).await.unwrap().expose(), &[1; 32]);
        assert_eq!(p.unwrap(&v2, &new).await.unwrap().expose(), &[2; 32]);
    });
    // Same key ids as the blocking runtime computes: the core derives them.
    let blocking_style =
        kms_plugin_core::kek::vault::TransitTarget::new(&s.url(), None, "transit", "kms").unwrap();
    assert_eq!(p.target().key_id(2, 7), blocking_style.key_id(2, 7));
}

#[test]
fn https_with_test_ca_and_untrusted_server() {
    let s = TransitServer::start_tls();
    s.add_key("kms");
    s.allow_token(TOKEN);
    let dir = TempDir::new("ca");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, s.ca_pem()).unwrap();
    let mut cfg = config(&s, token(TOKEN));
    cfg.ca_file = Some(ca);
    let p = VaultProvider::new(cfg).unwrap();
    let untrusted = VaultProvider::new(config(&s, token(TOKEN))).unwrap();
    smol::block_on(async {
        let key_id = p.status().await.unwrap();
        let blob = p.wrap(&key_id, &kek(9)).await.unwrap();
        assert_eq!(p.unwrap(&key_id, &blob).await.unwrap().expose(), &[9; 32]);
        let e = untrusted.status().await.unwrap_err();
        assert!(!e.kind.is_transient(), "{e:?}");
        assert!(e.detail.contains("TLS"), "{}", e.detail);
    });
    assert_eq!(s.count("/keys/"), 1);
}

#[test]
fn tokens_and_policies() {
    let s = server();
    s.allow_token_read_only("hvs.ro");
    let dir = TempDir::new("token");
    let path = dir.0.join("token");
    std::fs::write(&path, "hvs.first\n").unwrap();
    s.allow_token("hvs.first");
    let from_file = VaultProvider::new(config(&s, TokenSource::File(path.clone()))).unwrap();
    let wrong = VaultProvider::new(config(&s, token("hvs.nope"))).unwrap();
    let ro = VaultProvider::new(config(&s, token("hvs.ro"))).unwrap();
    smol::block_on(async {
        let e = wrong.status().await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::Auth, "{}", e.detail);
        assert!(e.detail.contains("HTTP 403"));
        assert_eq!(
            ro.status().await.unwrap_err().kind,
            RemoteErrorKind::Permission
        );
        let key_id = from_file.status().await.unwrap();
        assert_eq!(
            ro.wrap(&key_id, &kek(1)).await.unwrap_err().kind,
            RemoteErrorKind::Permission
        );
        s.revoke_token("hvs.first");
        s.allow_token("hvs.second-token");
        let tmp = dir.0.join("token.tmp");
        std::fs::write(&tmp, "hvs.second-token").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(from_file.status().await.unwrap(), key_id);
    });
}

#[test]
fn errors_and_slow_server() {
    let s = server();
    let mut cfg = config(&s, token(TOKEN));
    cfg.request_timeout = Duration::from_millis(300);
    let p = VaultProvider::new(cfg).unwrap();
    smol::block_on(async {
        s.fail_next(503, 1);
        let e = p.status().await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::Unavailable);
        assert!(e.detail.contains("HTTP 503"), "{}", e.detail);
        s.fail_next(429, 1);
        assert_eq!(
            p.status().await.unwrap_err().kind,
            RemoteErrorKind::Throttled
        );
        s.set_delay(Duration::from_secs(5));
        let start = Instant::now();
        let e = p.status().await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind, RemoteErrorKind::Timeout);
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(800),
            "{took:?}"
        );
        // Dropping the future (what the runtime does at the core's deadline) cancels at once.
        let start = Instant::now();
        let cancelled = future::or(async { Some(p.status().await) }, async {
            Timer::after(Duration::from_millis(50)).await;
            None
        })
        .await;
        assert!(cancelled.is_none());
        assert!(start.elapsed() < Duration::from_millis(250));
    });
}

fn resilient(s: &TransitServer, breaker: BreakerConfig) -> ResilientProvider<VaultProvider> {
    let policy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_millis(250),
        min_attempt_time: Duration::from_millis(5),
    };
    let inner = VaultProvider::new(config(s, token(TOKEN))).unwrap();
    ResilientProvider::new(inner, policy, breaker, Duration::from_millis(900))
}

#[test]
fn resilient_retries_5xx_and_times_out_within_budget() {
    let s = server();
    let p = resilient(
        &s,
        BreakerConfig {
            failure_threshold: 100,
            cool_down: Duration::from_secs(60),
        },
    );
    smol::block_on(async {
        s.fail_next(500, 2);
        assert!(p.status().await.is_ok());
        assert_eq!(s.count("/keys/kms"), 3);
        s.set_delay(Duration::from_secs(5));
        let start = Instant::now();
        let e = p.status().await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::Timeout, "{}", e.detail);
        assert!(
            start.elapsed() < Duration::from_millis(1_400),
            "{:?}",
            start.elapsed()
        );
    });
}

#[test]
fn resilient_breaker_opens_on_dead_server_and_recovers() {
    let mut s = server();
    let p = resilient(
        &s,
        BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_millis(300),
        },
    );
    smol::block_on(async {
        let key_id = p.status().await.unwrap();
        s.stop();
        assert_eq!(
            p.status().await.unwrap_err().kind,
            RemoteErrorKind::Unavailable
        );
        assert!(matches!(p.breaker_state(), BreakerState::Open { .. }));
        s.restart();
        let before = s.count("");
        let e = p.status().await.unwrap_err();
        assert!(e.detail.starts_with("circuit open"), "{}", e.detail);
        assert_eq!(s.count(""), before, "no traffic while open");
        Timer::after(Duration::from_millis(320)).await;
        // The probe is cancelled mid-flight (slow server): the next call probes instead.
        s.set_delay(Duration::from_millis(500));
        let dropped = future::or(async { Some(p.status().await) }, async {
            Timer::after(Duration::from_millis(50)).await;
            None
        })
        .await;
        assert!(dropped.is_none());
        s.set_delay(Duration::ZERO);
        assert_eq!(p.status().await.unwrap(), key_id);
        assert_eq!(
            p.breaker_state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
    });
}

#[test]
#[ignore = "measurement: cargo test -p kms-plugin-smol --test provider_vault -- --ignored --nocapture"]
fn latency_report() {
    for tls in [false, true] {
        let s = if tls {
            TransitServer::start_tls()
        } else {
            TransitServer::start()
        };
        s.add_key("kms");
        s.allow_token(TOKEN);
        let dir = TempDir::new("bench");
        let mut cfg = config(&s, token(TOKEN));
        if tls {
            let ca = dir.0.join("ca.pem");
            std::fs::write(&ca, s.ca_pem()).unwrap();
            cfg.ca_file = Some(ca);
        }
        let p = VaultProvider::new(cfg).unwrap();
        smol::block_on(async {
            let key_id = p.status().await.unwrap();
            let rounds = 200u32;
            let start = Instant::now();
            for _ in 0..rounds {
                let blob = p.wrap(&key_id, &kek(1)).await.unwrap();
                p.unwrap(&key_id, &blob).await.unwrap();
            }
            let per = start.elapsed() / (rounds * 2);
            println!(
                "smol vault {}: {per:?} per call ({rounds} wrap+unwrap pairs)",
                if tls { "https" } else { "http" }
            );
        });
    }
}
