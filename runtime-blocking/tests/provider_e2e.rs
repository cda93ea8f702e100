//! End to end: `kms-plugin serve --provider vault` and `--provider pkcs11` (each in builds with
//! its cargo feature) driven by a real gRPC client (tonic) over the Unix socket, against the fake
//! Transit server over real HTTP on 127.0.0.1 and a real SoftHSM2 token. Remote rotation
//! changes Status.key_id while old ciphertexts still decrypt (after a restart, so the remote
//! really unwraps); faults (remote down at start, dying mid-run, wrong or rotated token, wrong
//! PIN) never crash the plugin, never leave it reporting `ok` while the remote refuses, and
//! heal without a restart. Readiness and health changes are read from the plugin's own log
//! lines, never from sleeps.
#![cfg(any(feature = "vault", feature = "pkcs11"))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[cfg(feature = "pkcs11")]
#[path = "support/softhsm.rs"]
mod softhsm;
mod support;
#[path = "support/tonic_v2.rs"]
mod tonic_v2;
#[cfg(feature = "vault")]
#[path = "support/transit_server.rs"]
mod transit_server;

#[cfg(feature = "vault")]
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{BIN, Plugin, TempDir, unix_socket};
use tonic_v2::Client;
#[cfg(feature = "vault")]
use transit_server::TransitServer;

#[cfg(feature = "vault")]
const TOKEN: &str = "hvs.e2e-token";
const WAIT: Duration = Duration::from_secs(30);
/// The plugin's text log lines for health changes (`<ts> <level:5> <msg> ...`).
const HEALTHY: &str = "info  healthy";
const UNHEALTHY: &str = "warn  unhealthy";

/// Starts the plugin on the Vault provider at `url` (plain http: the fake Transit server),
/// token from `token_file`, listening on `listen`, with `extra` flags after those.
#[cfg(feature = "vault")]
fn start_vault(url: &str, token_file: &Path, listen: &str, extra: &[&str]) -> Plugin {
    let token_file = token_file.to_str().unwrap();
    let mut args = vec![
        "--provider",
        "vault",
        "--vault-addr",
        url,
        "--vault-insecure-http",
        "--token-file",
        token_file,
        "--listen",
        listen,
    ];
    args.extend_from_slice(extra);
    start(&args, &[("KMS_KEY_ID", "kms")])
}

/// Starts `kms-plugin serve` with `args` and `env`, waiting for its "listening" line.
fn start(args: &[&str], env: &[(&str, &str)]) -> Plugin {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .args([
            "--log-format",
            "text",
            "--log-level",
            "debug",
            "--status-refresh",
            "0.3",
        ])
        .env_remove("KMS_USER_ID")
        .env_remove("KMS_KEY_ID")
        .env_remove("VAULT_ADDR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Plugin::spawn(&mut cmd, &["listening"])
}

#[cfg(feature = "vault")]
fn transit() -> TransitServer {
    let server = TransitServer::start();
    server.add_key("kms");
    server.allow_token(TOKEN);
    server
}

#[cfg(feature = "vault")]
#[test]
fn vault_rotation_changes_key_id_and_old_ciphertexts_still_decrypt() {
    let server = transit();
    let dir = TempDir::new("e2e-vault");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (sock, listen) = unix_socket(&dir, "kms.sock");
    let url = server.url();
    let plugin = start_vault(&url, &token_file, &listen, &[]);
    plugin.wait_log(HEALTHY, WAIT);
    let mut client = Client::connect(&sock);
    let s1 = client.status();
    assert_eq!(s1.healthz, "ok");
    assert!(s1.key_id.starts_with("vault:kms:v1:"), "{}", s1.key_id);
    let old = client.encrypt(&[1; 32]).unwrap();
    assert_eq!(old.key_id, s1.key_id);
    assert_eq!(client.decrypt(&old).unwrap(), vec![1; 32]);

    // Remote rotation: the plugin notices on its status timer and moves to v2.
    server.rotate("kms");
    plugin.wait_log("key id changed", WAIT);
    let s2 = client.status();
    assert!(s2.key_id.starts_with("vault:kms:v2:"), "{}", s2.key_id);
    assert_eq!(s2.healthz, "ok");
    let new = client.encrypt(&[2; 32]).unwrap();
    assert_eq!(
        new.key_id, s2.key_id,
        "Status and Encrypt agree after rotation"
    );
    assert_eq!(client.decrypt(&old).unwrap(), vec![1; 32]);
    drop(client);
    drop(plugin);

    // A fresh process has no cached local KEKs: decrypting the v1 ciphertext needs a real
    // Transit unwrap under version 1.
    let before = server.count("/decrypt/kms");
    let plugin = start_vault(&url, &token_file, &listen, &[]);
    plugin.wait_log(HEALTHY, WAIT);
    let mut client = Client::connect(&sock);
    assert_eq!(client.status().key_id, s2.key_id);
    assert_eq!(client.decrypt(&old).unwrap(), vec![1; 32]);
    assert_eq!(client.decrypt(&new).unwrap(), vec![2; 32]);
    assert!(
        server.count("/decrypt/kms") >= before + 2,
        "remote unwraps happened"
    );
}

#[cfg(feature = "vault")]
#[test]
fn vault_faults_never_crash_never_report_ok_and_heal_without_restart() {
    let mut server = transit();
    let dir = TempDir::new("e2e-vault-faults");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (sock, listen) = unix_socket(&dir, "kms.sock");
    let url = server.url();
    // Remote down at start: the plugin still binds its socket and answers Status.
    server.stop();
    let plugin = start_vault(&url, &token_file, &listen, &[]);
    let mut client = Client::connect(&sock);
    assert_ne!(client.status().healthz, "ok", "down at start is not ok");
    assert!(
        client.encrypt(&[1; 32]).is_err(),
        "no local KEK can be wrapped yet"
    );

    // The remote comes up: healthy without restart.
    server.restart();
    plugin.wait_log(HEALTHY, WAIT);
    assert_eq!(client.status().healthz, "ok");
    let enc = client.encrypt(&[3; 32]).unwrap();

    // The remote dies mid-run: not ok (cause from the circuit/transport), then heals.
    server.stop();
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("unreachable"), "{line}");
    assert_ne!(client.status().healthz, "ok");
    server.restart();
    plugin.wait_log(HEALTHY, WAIT);
    assert_eq!(client.status().healthz, "ok");

    // The token is revoked: auth; a rotated token file heals it.
    server.revoke_token(TOKEN);
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("auth"), "{line}");
    let status = client.status();
    assert_ne!(status.healthz, "ok");
    assert!(status.healthz.contains("auth"), "{}", status.healthz);
    server.allow_token("hvs.e2e-token-2");
    let tmp = dir.join("token.new");
    std::fs::write(&tmp, "hvs.e2e-token-2").unwrap();
    std::fs::rename(&tmp, &token_file).unwrap();
    plugin.wait_log(HEALTHY, WAIT);
    assert_eq!(client.status().healthz, "ok");
    assert_eq!(client.decrypt(&enc).unwrap(), vec![3; 32]);

    // A hung remote: not ok by the staleness/timeout rule, and still answering Status fast.
    server.set_delay(Duration::from_secs(30));
    plugin.wait_log(UNHEALTHY, WAIT);
    let start = std::time::Instant::now();
    assert_ne!(client.status().healthz, "ok");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "Status never waits for the remote"
    );
    server.set_delay(Duration::ZERO);
    plugin.wait_log(HEALTHY, WAIT);
    assert_eq!(client.status().healthz, "ok");
    assert_eq!(plugin.terminate(), 0, "clean exit after all the faults");
}

/// With the remote KMS dead, the plugin is unready but alive: `probe --liveness` passes (so
/// kubelet never restarts it), `probe` fails, and what it can decrypt from its in-memory KEKs
/// (the current local KEK and the cache) keeps decrypting. Data under a trimmed Vault version
/// fails with an error naming the version, never a generic one, and healthz (so `probe`) names
/// it until a Decrypt under it succeeds again.
#[cfg(feature = "vault")]
#[test]
fn vault_outage_keeps_the_plugin_alive_and_decrypting_from_cache() {
    let mut server = transit();
    let dir = TempDir::new("e2e-vault-outage");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (sock, listen) = unix_socket(&dir, "kms.sock");
    let url = server.url();
    let start_plugin = || start_vault(&url, &token_file, &listen, &[]);
    let plugin = start_plugin();
    plugin.wait_log(HEALTHY, WAIT);
    let mut client = Client::connect(&sock);
    let under_v1 = client.encrypt(&[4; 32]).unwrap();
    // A remote rotation: the plugin re-wraps a new local KEK under v2; the v1 one is cached.
    server.rotate("kms");
    plugin.wait_log("remote key id changed", WAIT);
    let under_v2 = client.encrypt(&[5; 32]).unwrap();
    assert_ne!(under_v1.key_id, under_v2.key_id);

    server.stop();
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("unreachable"), "{line}");
    let probe = |extra: &[&str]| {
        let mut args = vec!["probe", "--listen", listen.as_str()];
        args.extend_from_slice(extra);
        let out = Command::new(BIN).args(&args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = probe(&["--liveness"]);
    assert_eq!(code, Some(0), "alive during the outage: {out}");
    assert!(out.starts_with("live "), "{out}");
    let (code, out) = probe(&[]);
    assert_eq!(code, Some(1), "unready during the outage: {out}");
    assert!(out.contains("unreachable"), "{out}");
    assert_eq!(
        client.decrypt(&under_v2).unwrap(),
        vec![5; 32],
        "current KEK"
    );
    assert_eq!(
        client.decrypt(&under_v1).unwrap(),
        vec![4; 32],
        "cached KEK"
    );

    // Back up, then v1 is trimmed: after a restart (cache gone) its data names the version.
    server.restart();
    plugin.wait_log(HEALTHY, WAIT);
    server.set_min_decryption_version("kms", 2);
    drop(client);
    assert_eq!(plugin.terminate(), 0);
    let plugin = start_plugin();
    plugin.wait_log(HEALTHY, WAIT);
    let mut client = Client::connect(&sock);
    assert_eq!(client.decrypt(&under_v2).unwrap(), vec![5; 32]);
    let err = client.decrypt(&under_v1).unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("key_version_missing"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("version v1"), "{}", err.message());
    let line = plugin.wait_log("remote key version missing", WAIT);
    assert!(line.contains("version v1"), "{line}");
    // healthz names the trimmed version (readiness fails, liveness passes) while Status keeps
    // the same key id, so the apiserver keeps writing under v2.
    let status = client.status();
    assert!(
        status.healthz.starts_with("key version missing: ")
            && status.healthz.contains("key \"kms\" version v1"),
        "{}",
        status.healthz
    );
    assert_eq!(status.key_id, under_v2.key_id);
    let (code, out) = probe(&[]);
    assert_eq!(code, Some(1), "unready while v1 is missing: {out}");
    assert!(
        out.contains("key version missing") && out.contains("version v1"),
        "{out}"
    );
    assert_eq!(probe(&["--liveness"]).0, Some(0));
    assert_eq!(client.encrypt(&[6; 32]).unwrap().key_id, under_v2.key_id);

    // The operator lowers min_decryption_version again: the next Decrypt under v1 succeeds,
    // and healthz is ok again without a restart.
    server.set_min_decryption_version("kms", 1);
    assert_eq!(client.decrypt(&under_v1).unwrap(), vec![4; 32]);
    assert_eq!(client.status().healthz, "ok");
    let (code, out) = probe(&[]);
    assert_eq!(code, Some(0), "ready once v1 is back: {out}");
    drop(client);
    assert_eq!(plugin.terminate(), 0);
}

#[cfg(feature = "vault")]
#[test]
fn vault_misconfiguration_is_a_usage_error_not_a_crash() {
    for (args, env, needle) in [
        (
            vec!["--provider", "vault"],
            vec![("KMS_KEY_ID", "kms")],
            "--vault-addr",
        ),
        (
            vec!["--provider", "vault", "--vault-addr", "http://127.0.0.1:9"],
            vec![("KMS_KEY_ID", "kms")],
            "KMS_USER_ID",
        ),
        (
            vec!["--provider", "vault", "--vault-addr", "vault:8200"],
            vec![("KMS_KEY_ID", "kms"), ("KMS_USER_ID", "t")],
            "http",
        ),
        // Plain http is refused unless asked for by name: the token and keys would be cleartext.
        (
            vec!["--provider", "vault", "--vault-addr", "http://127.0.0.1:9"],
            vec![("KMS_KEY_ID", "kms"), ("KMS_USER_ID", "t")],
            "--vault-insecure-http",
        ),
        (
            vec!["--provider", "vault"],
            vec![
                ("KMS_KEY_ID", "kms"),
                ("KMS_USER_ID", "t"),
                ("VAULT_ADDR", "HTTP://127.0.0.1:9"),
            ],
            "cleartext",
        ),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(&args)
            .env_remove("KMS_USER_ID")
            .env_remove("KMS_KEY_ID")
            .env_remove("VAULT_ADDR");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// `--vault-insecure-http` is loud: a warning at start naming the cleartext, a gauge, and a
/// health warning in `/readyz` and in the log on becoming healthy, while Status healthz stays
/// exactly `ok` (kube-apiserver would stop using a working plugin otherwise).
#[cfg(feature = "vault")]
#[test]
fn vault_over_plain_http_is_warned_about_and_reported() {
    let server = transit();
    let dir = TempDir::new("e2e-vault-http");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (sock, listen) = unix_socket(&dir, "kms.sock");
    let url = server.url();
    let plugin = start_vault(
        &url,
        &token_file,
        &listen,
        &["--metrics-addr", "127.0.0.1:0"],
    );
    let (_, warning) = plugin.log.wait(0, "INSECURE", WAIT);
    assert!(warning.contains("warn"), "{warning}");
    assert!(warning.contains("cleartext"), "{warning}");
    let (_, line) = plugin.log.wait(0, "serving metrics", WAIT);
    let addr = support::metrics_addr(&line);
    let scrape = support::http_get(&addr, "/metrics");
    assert!(
        scrape
            .lines()
            .any(|l| l == "kms_plugin_vault_insecure_http 1"),
        "{scrape}"
    );
    let health_warning = "vault reached over plain http (--vault-insecure-http)";
    plugin.wait_log(HEALTHY, WAIT);
    let logged = plugin.wait_log("health warning", WAIT);
    assert!(
        logged.contains("warn  health warning") && logged.contains(health_warning),
        "{logged}"
    );
    let readyz = support::http_get(&addr, "/readyz");
    assert!(readyz.starts_with("HTTP/1.1 200 "), "still ready: {readyz}");
    assert!(
        readyz.ends_with(&format!("\r\n\r\nok\nwarning: {health_warning}\n")),
        "{readyz}"
    );
    assert_eq!(Client::connect(&sock).status().healthz, "ok");
    // The shipped readiness probe passes and prints the warning after its `ok` line (the
    // liveness probe too, after its `live` line).
    for (check, first) in [(None, "ok version="), (Some("--liveness"), "live version=")] {
        let mut args = vec!["probe", "--listen", listen.as_str()];
        args.extend(check);
        let out = Command::new(BIN).args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {stdout}");
        assert!(lines[0].starts_with(first), "{args:?}: {stdout}");
        assert_eq!(lines[1], format!("warning: {health_warning}"), "{args:?}");
    }
    assert_eq!(plugin.terminate(), 0);
}

#[cfg(feature = "pkcs11")]
mod pkcs11 {
    use super::*;
    use std::path::PathBuf;

    /// A SoftHSM2 token `kms` with AES key `kms-key`, in its own SOFTHSM2_CONF directory.
    fn token_conf(dir: &TempDir) -> PathBuf {
        let conf = softhsm::conf(&dir.0);
        softhsm::init_token(&conf, "kms", "1234", "5678");
        softhsm::keygen(&conf, "kms", "5678", "kms-key");
        conf
    }

    #[test]
    fn pkcs11_serve_round_trip_and_wrong_pin() {
        let dir = TempDir::new("e2e-pkcs11");
        let conf = token_conf(&dir);
        let conf = conf.to_str().unwrap();
        let (sock, listen) = unix_socket(&dir, "kms.sock");
        let pin_file = dir.join("pin");
        // Wrong PIN first: the plugin starts, reports auth, never crashes, never retries
        // the login (no lockout), and heals when the PIN file is fixed.
        std::fs::write(&pin_file, "0000").unwrap();
        let args = [
            "--provider",
            "pkcs11",
            "--pkcs11-token-label",
            "kms",
            "--pin-file",
            pin_file.to_str().unwrap(),
            "--listen",
            listen.as_str(),
        ];
        let env = [("KMS_KEY_ID", "kms-key"), ("SOFTHSM2_CONF", conf)];
        let plugin = start(&args, &env);
        let line = plugin.wait_log(UNHEALTHY, WAIT);
        assert!(line.contains("auth"), "{line}");
        let mut client = Client::connect(&sock);
        let status = client.status();
        assert!(status.healthz.contains("auth"), "{}", status.healthz);
        let tmp = dir.join("pin.new");
        std::fs::write(&tmp, "5678").unwrap();
        std::fs::rename(&tmp, &pin_file).unwrap();
        plugin.wait_log(HEALTHY, WAIT);
        let status = client.status();
        assert_eq!(status.healthz, "ok");
        assert!(
            status.key_id.starts_with("pkcs11:kms-key:"),
            "{}",
            status.key_id
        );
        let enc = client.encrypt(&[4; 32]).unwrap();
        assert_eq!(enc.key_id, status.key_id);
        drop(client);
        drop(plugin);
        // A restarted plugin unwraps through the HSM.
        let plugin = start(&args, &env);
        plugin.wait_log(HEALTHY, WAIT);
        let mut client = Client::connect(&sock);
        assert_eq!(client.decrypt(&enc).unwrap(), vec![4; 32]);
        assert_eq!(plugin.terminate(), 0);
    }
}
