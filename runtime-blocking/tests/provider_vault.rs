//! The blocking Vault Transit provider (ureq) against a real HTTP(S) fake Transit server on
//! 127.0.0.1: round trips, key ids and rotation, tokens, error mapping, deadlines, TLS.
#![cfg(feature = "vault")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/transit_server.rs"]
mod transit_server;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kms_plugin_blocking::provider::KekProvider;
use kms_plugin_blocking::provider::vault::{TokenSource, VaultConfig, VaultProvider};
use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::secret::Secret32;
use transit_server::TransitServer;
use zeroize::Zeroizing;

const TOKEN: &str = "hvs.test-token-1";

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn config(server: &TransitServer, key: &str, token: TokenSource) -> VaultConfig {
    VaultConfig {
        addr: server.url(),
        namespace: None,
        mount: "transit".into(),
        key: key.into(),
        token,
        ca_file: None,
    }
}

fn token(t: &str) -> TokenSource {
    TokenSource::Value(Zeroizing::new(t.to_string()))
}

fn server_with_key() -> TransitServer {
    let server = TransitServer::start();
    server.add_key("kms");
    server.allow_token(TOKEN);
    server
}

fn kek(byte: u8) -> Secret32 {
    Secret32::from_bytes([byte; 32])
}

/// A unique temporary directory (removed on drop).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kms-provider-{tag}-{}-{:?}",
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
fn wrap_unwrap_round_trip_with_stable_key_id() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    assert_eq!(p.name(), "vault");
    let key_id = p.status(soon()).unwrap();
    assert!(key_id.starts_with("vault:kms:v1:"), "{key_id}");
    assert_eq!(p.status(soon()).unwrap(), key_id, "key id is stable");
    let wrapped = p.wrap(&key_id, &kek(7), soon()).unwrap();
    assert!(wrapped.starts_with(b"vault:v1:"));
    assert!(!wrapped.windows(32).any(|w| w == [7u8; 32]));
    let back = p.unwrap(&key_id, &wrapped, soon()).unwrap();
    assert_eq!(back.expose(), &[7u8; 32]);
    assert_eq!(server.count("/v1/transit/encrypt/kms"), 1);
    assert_eq!(server.count("/v1/transit/decrypt/kms"), 1);
}

#[test]
fn remote_rotation_changes_key_id_and_old_blobs_still_unwrap() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let v1 = p.status(soon()).unwrap();
    let old = p.wrap(&v1, &kek(1), soon()).unwrap();
    assert_eq!(server.rotate("kms"), 2);
    let v2 = p.status(soon()).unwrap();
    assert_ne!(v1, v2);
    assert!(v2.starts_with("vault:kms:v2:"), "{v2}");
    let new = p.wrap(&v2, &kek(2), soon()).unwrap();
    assert!(new.starts_with(b"vault:v2:"));
    // Wrapping under the old key id still uses exactly version 1 (explicit key_version).
    assert!(
        p.wrap(&v1, &kek(3), soon())
            .unwrap()
            .starts_with(b"vault:v1:")
    );
    assert_eq!(p.unwrap(&v1, &old, soon()).unwrap().expose(), &[1u8; 32]);
    assert_eq!(p.unwrap(&v2, &new, soon()).unwrap().expose(), &[2u8; 32]);
    // A blob presented under the wrong version's key id is refused before any request.
    let before = server.count("decrypt");
    assert_eq!(
        p.unwrap(&v2, &old, soon()).err().unwrap().kind,
        RemoteErrorKind::Corrupt
    );
    assert_eq!(server.count("decrypt"), before);
}

#[test]
fn recreated_key_gets_a_new_key_id_and_same_key_id_across_addresses() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let v1 = p.status(soon()).unwrap();
    // Another host reaches the same Vault through another address: same key id.
    let mut other = config(&server, "kms", token(TOKEN));
    other.addr = other.addr.replace("127.0.0.1", "localhost");
    assert_ne!(other.addr, server.url());
    assert_eq!(
        VaultProvider::new(other).unwrap().status(soon()).unwrap(),
        v1
    );
    let blob = p.wrap(&v1, &kek(5), soon()).unwrap();
    // The key is deleted and re-created under the same name: version 1 again, but other
    // key material, so the key id must differ (never reused for another key).
    server.delete_key("kms");
    server.add_key("kms");
    let recreated = p.status(soon()).unwrap();
    assert!(recreated.starts_with("vault:kms:v1:"), "{recreated}");
    assert_ne!(recreated, v1);
    let e = p.unwrap(&v1, &blob, soon()).err().unwrap();
    assert_eq!(e.kind, RemoteErrorKind::Corrupt, "{}", e.detail);
}

#[test]
fn tampered_blob_is_corrupt_and_trimmed_versions_are_refused() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let v1 = p.status(soon()).unwrap();
    let mut blob = p.wrap(&v1, &kek(4), soon()).unwrap();
    let last = blob.len() - 3;
    blob[last] = if blob[last] == b'A' { b'B' } else { b'A' };
    let e = p.unwrap(&v1, &blob, soon()).err().unwrap();
    assert_eq!(e.kind, RemoteErrorKind::Corrupt, "{}", e.detail);
    assert!(e.detail.contains("HTTP 400"), "{}", e.detail);
    server.rotate("kms");
    let good = p.wrap(&v1, &kek(4), soon()).unwrap();
    server.set_min_decryption_version("kms", 2);
    let e = p.unwrap(&v1, &good, soon()).err().unwrap();
    assert_eq!(e.kind, RemoteErrorKind::KeyVersionMissing, "{}", e.detail);
    assert!(e.detail.contains("disallowed"), "{}", e.detail);
    assert!(e.detail.contains("key \"kms\" version v1"), "{}", e.detail);
    assert!(e.detail.contains("min_decryption_version"), "{}", e.detail);
}

#[test]
fn wrong_token_is_auth_and_missing_policy_is_permission() {
    let server = server_with_key();
    server.allow_token_read_only("hvs.read-only");
    let bad = VaultProvider::new(config(&server, "kms", token("hvs.wrong"))).unwrap();
    let e = bad.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Auth, "{}", e.detail);
    assert!(e.detail.contains("HTTP 403"), "{}", e.detail);
    assert!(
        !e.detail.contains("hvs.wrong"),
        "token must not leak: {}",
        e.detail
    );
    // A token that may read the key but not use it: Status itself is not ok (the plugin must
    // never report healthy while it cannot wrap), and so is a wrap.
    let ro = VaultProvider::new(config(&server, "kms", token("hvs.read-only"))).unwrap();
    let e = ro.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Permission, "{}", e.detail);
    assert!(e.detail.contains("transit/encrypt/kms"), "{}", e.detail);
    let key_id = ro.target().key_id(1, 0);
    let e = ro.wrap(&key_id, &kek(1), soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Permission, "{}", e.detail);
    let empty = VaultProvider::new(config(&server, "kms", token(""))).unwrap();
    assert_eq!(
        empty.status(soon()).unwrap_err().kind,
        RemoteErrorKind::Auth
    );
    assert_eq!(
        server.count("/keys/"),
        2,
        "an empty token is refused locally"
    );
}

#[test]
fn token_file_is_reread_when_it_changes() {
    let server = server_with_key();
    let dir = TempDir::new("token");
    let path = dir.0.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    let p = VaultProvider::new(config(&server, "kms", TokenSource::File(path.clone()))).unwrap();
    let key_id = p.status(soon()).unwrap();
    // Rotate: the old token is revoked, the file gets the new one (written atomically the way
    // Vault Agent does, so the inode changes).
    server.revoke_token(TOKEN);
    assert_eq!(p.status(soon()).unwrap_err().kind, RemoteErrorKind::Auth);
    server.allow_token("hvs.test-token-2");
    let tmp = dir.0.join("token.tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .write_all(b"  hvs.test-token-2  \n")
        .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(p.status(soon()).unwrap(), key_id);
    // In-place rewrite of a different length is noticed too.
    server.allow_token("hvs.test-token-333");
    server.revoke_token("hvs.test-token-2");
    std::fs::write(&path, "hvs.test-token-333").unwrap();
    assert_eq!(p.status(soon()).unwrap(), key_id);
    // A missing file is an auth problem with the path, not a crash.
    std::fs::remove_file(&path).unwrap();
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Auth);
    assert!(e.detail.contains("token file"), "{}", e.detail);
}

#[test]
fn server_errors_map_to_kinds() {
    let server = server_with_key();
    server.add_key_of_type("rsa", "rsa-2048");
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    for (status, kind) in [
        (503, RemoteErrorKind::Unavailable),
        (500, RemoteErrorKind::Unavailable),
        (429, RemoteErrorKind::Throttled),
        (404, RemoteErrorKind::NotFound),
    ] {
        server.fail_next(status, 1);
        let e = p.status(soon()).unwrap_err();
        assert_eq!(e.kind, kind, "{}", e.detail);
        assert!(e.detail.contains(&format!("HTTP {status}")), "{}", e.detail);
        assert!(
            e.detail.contains(&format!("injected {status}")),
            "{}",
            e.detail
        );
    }
    let missing = VaultProvider::new(config(&server, "nope", token(TOKEN))).unwrap();
    assert_eq!(
        missing.status(soon()).unwrap_err().kind,
        RemoteErrorKind::NotFound
    );
    let rsa = VaultProvider::new(config(&server, "rsa", token(TOKEN))).unwrap();
    let e = rsa.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Other);
    assert!(e.detail.contains("not an AEAD"), "{}", e.detail);
    let mut wrong_mount = config(&server, "kms", token(TOKEN));
    wrong_mount.mount = "kv".into();
    let e = VaultProvider::new(wrong_mount)
        .unwrap()
        .status(soon())
        .unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::NotFound);
}

#[test]
fn slow_server_times_out_at_the_deadline() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    server.set_delay(Duration::from_secs(5));
    let start = Instant::now();
    let deadline = start + Duration::from_millis(300);
    let e = p.status(deadline).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind, RemoteErrorKind::Timeout, "{}", e.detail);
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(
        took < Duration::from_millis(800),
        "deadline overrun: {took:?}"
    );
    // A deadline already past fails at once, without a request.
    let before = server.count("");
    let e = p.status(Instant::now()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Timeout);
    assert_eq!(server.count(""), before);
}

#[test]
fn dead_server_is_unavailable() {
    let mut server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let key_id = p.status(soon()).unwrap();
    server.stop();
    let start = Instant::now();
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Unavailable, "{}", e.detail);
    assert!(start.elapsed() < Duration::from_secs(2));
    server.restart();
    assert_eq!(p.status(soon()).unwrap(), key_id);
}

#[test]
fn provider_construction_does_no_network_io() {
    // Nothing listens on port 9 of 127.0.0.1; construction must still succeed.
    let cfg = VaultConfig {
        addr: "http://127.0.0.1:9".into(),
        namespace: None,
        mount: "transit".into(),
        key: "kms".into(),
        token: token(TOKEN),
        ca_file: None,
    };
    let p = VaultProvider::new(cfg).unwrap();
    assert_eq!(
        p.status(soon()).unwrap_err().kind,
        RemoteErrorKind::Unavailable
    );
    let bad = VaultConfig {
        addr: "vault:8200".into(),
        namespace: None,
        mount: "transit".into(),
        key: "kms".into(),
        token: token(TOKEN),
        ca_file: None,
    };
    assert!(VaultProvider::new(bad).is_err());
}

#[test]
fn namespace_header_is_sent() {
    let server = server_with_key();
    let mut cfg = config(&server, "kms", token(TOKEN));
    cfg.namespace = Some("team-a/".into());
    let p = VaultProvider::new(cfg).unwrap();
    p.status(soon()).unwrap();
    let log = server.log();
    assert_eq!(log.last().unwrap().2.as_deref(), Some("team-a"));
}

#[test]
fn https_with_test_ca() {
    let server = TransitServer::start_tls();
    server.add_key("kms");
    server.allow_token(TOKEN);
    let dir = TempDir::new("ca");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let mut cfg = config(&server, "kms", token(TOKEN));
    assert!(cfg.addr.starts_with("https://127.0.0.1:"));
    cfg.ca_file = Some(ca.clone());
    let p = VaultProvider::new(cfg).unwrap();
    let key_id = p.status(soon()).unwrap();
    let wrapped = p.wrap(&key_id, &kek(9), soon()).unwrap();
    assert_eq!(
        p.unwrap(&key_id, &wrapped, soon()).unwrap().expose(),
        &[9u8; 32]
    );
    // Without the CA the server is not trusted: a non-transient error, no request served.
    let untrusted = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let e = untrusted.status(soon()).unwrap_err();
    assert!(!e.kind.is_transient(), "{e:?}");
    assert_eq!(server.count("/keys/"), 1);
    // A CA file without certificates is a configuration error.
    std::fs::write(&ca, "not a pem").unwrap();
    let mut cfg = config(&server, "kms", token(TOKEN));
    cfg.ca_file = Some(ca);
    assert!(VaultProvider::new(cfg).is_err());
}

#[test]
fn oversized_response_is_refused_as_corrupt() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    server.set_padding(100 * 1024);
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Corrupt, "{}", e.detail);
    server.set_padding(1024);
    assert!(p.status(soon()).is_ok(), "small extra fields are ignored");
}

#[test]
fn concurrent_calls_from_many_threads() {
    let server = server_with_key();
    let p = std::sync::Arc::new(VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap());
    let key_id = p.status(soon()).unwrap();
    let threads: Vec<_> = (0..8u8)
        .map(|i| {
            let p = std::sync::Arc::clone(&p);
            let key_id = key_id.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let blob = p.wrap(&key_id, &kek(i), soon()).unwrap();
                    assert_eq!(p.unwrap(&key_id, &blob, soon()).unwrap().expose(), &[i; 32]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.count("/encrypt/"), 40);
}

#[test]
fn capabilities_check_is_lenient_when_vault_will_not_say() {
    // A token created without Vault's default policy cannot call sys/capabilities-self:
    // Status relies on the key read alone instead of failing a working setup.
    let server = server_with_key();
    server.deny_capabilities();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let key_id = p.status(soon()).unwrap();
    assert!(key_id.starts_with("vault:kms:v1:"));
    assert_eq!(server.count("/v1/sys/capabilities-self"), 1);
}

#[test]
#[ignore = "measurement: cargo test -p kms-plugin-blocking --test provider_vault -- --ignored --nocapture"]
fn latency_report() {
    for tls in [false, true] {
        let server = if tls {
            TransitServer::start_tls()
        } else {
            TransitServer::start()
        };
        server.add_key("kms");
        server.allow_token(TOKEN);
        let dir = TempDir::new("bench");
        let mut cfg = config(&server, "kms", token(TOKEN));
        if tls {
            let ca = dir.0.join("ca.pem");
            std::fs::write(&ca, server.ca_pem()).unwrap();
            cfg.ca_file = Some(ca);
        }
        let p = VaultProvider::new(cfg).unwrap();
        let key_id = p.status(soon()).unwrap();
        let rounds = 200u32;
        let start = Instant::now();
        for _ in 0..rounds {
            let blob = p.wrap(&key_id, &kek(1), soon()).unwrap();
            p.unwrap(&key_id, &blob, soon()).unwrap();
        }
        let per = start.elapsed() / (rounds * 2);
        println!(
            "blocking vault {}: {per:?} per call ({rounds} wrap+unwrap pairs)",
            if tls { "https" } else { "http" }
        );
    }
}

#[test]
fn connection_closed_without_answer_is_unavailable() {
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    server.drop_next(1);
    let e = p.status(soon()).unwrap_err();
    assert_eq!(e.kind, RemoteErrorKind::Unavailable, "{}", e.detail);
    assert!(p.status(soon()).is_ok());
}

#[test]
fn rotation_through_the_transit_http_api() {
    // What an operator runs: `vault write -f transit/keys/kms/rotate`.
    let server = server_with_key();
    let p = VaultProvider::new(config(&server, "kms", token(TOKEN))).unwrap();
    let v1 = p.status(soon()).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .post(format!("{}/v1/transit/keys/kms/rotate", server.url()))
        .header("X-Vault-Token", TOKEN)
        .send_empty()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let v2 = p.status(soon()).unwrap();
    assert!(v2.starts_with("vault:kms:v2:"), "{v2}");
    assert_ne!(v1, v2);
}
