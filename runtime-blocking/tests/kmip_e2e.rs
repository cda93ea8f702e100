//! End to end: `kms-plugin serve --provider kmip` (build with the cargo feature `kmip`) against
//! a real PyKMIP server over mutual TLS, driven by a tonic gRPC client over the Unix socket.
//! Status, Encrypt and Decrypt; rotation on the server; a restart that must unwrap old data
//! through the server; the server down at start and mid-run; a wrong client certificate; a
//! missing key; a replaced key; a wrap mode the server cannot do (a start-up error). Readiness
//! and health changes are read from the plugin's own log lines and the server's log, never
//! from sleeps.
#![cfg(feature = "kmip")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "kmip/harness.rs"]
mod harness;
mod support;
#[path = "support/tonic_v2.rs"]
mod tonic_v2;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{Admin, Pki, PyKmip};
use support::{BIN, Plugin, TempDir};
use tonic_v2::Client;

const WAIT: Duration = Duration::from_secs(30);
/// The plugin's text log lines for health changes (`<ts> <level:5> <msg> ...`).
const HEALTHY: &str = "info  healthy";
const UNHEALTHY: &str = "warn  unhealthy";

struct Env {
    dir: TempDir,
    pki: Pki,
    server: PyKmip,
    admin: Admin,
}

impl Env {
    fn new(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let pki = Pki::generate(&dir.0);
        let server = PyKmip::start(&pki);
        let admin = Admin::new(&pki, &server);
        Self {
            dir,
            pki,
            server,
            admin,
        }
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("kms.sock")
    }

    /// The `serve` arguments for client certificate `client` (`client`, `rogue`, ...).
    fn args(&self, client: &str) -> Vec<String> {
        let path = |name: &str| self.pki.path(name).display().to_string();
        vec![
            "serve".into(),
            "--provider".into(),
            "kmip".into(),
            "--kmip-addr".into(),
            self.server.addr(),
            "--kmip-client-cert".into(),
            path(&format!("{client}.pem")),
            "--kmip-client-key".into(),
            path(&format!("{client}.key")),
            "--ca-file".into(),
            path("ca.pem"),
            "--listen".into(),
            format!("unix://{}", self.sock().display()),
            "--log-format".into(),
            "text".into(),
            "--log-level".into(),
            "debug".into(),
            "--status-refresh".into(),
            "0.3".into(),
        ]
    }

    fn command(&self, client: &str, key: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(self.args(client))
            .args(extra)
            .env_remove("KMS_USER_ID")
            .env("KMS_KEY_ID", key);
        cmd
    }

    fn start(&self, client: &str, key: &str) -> Plugin {
        Plugin::spawn(&mut self.command(client, key, &[]), &["listening"])
    }

    /// Decrypt operations the server has processed so far (from its log).
    fn server_decrypts(&self) -> usize {
        self.server
            .log()
            .matches("Processing operation: Decrypt")
            .count()
    }
}

#[test]
fn status_encrypt_decrypt_rotation_and_restart() {
    let mut env = Env::new("kmip-e2e");
    let uid = env.admin.create("kube-kms");
    let plugin = env.start("client", "kube-kms");
    plugin.wait_log(HEALTHY, WAIT);
    let mut client = Client::connect(&env.sock());
    let s1 = client.status();
    assert_eq!(s1.healthz, "ok");
    assert!(
        s1.key_id.starts_with(&format!("kmip:{uid}:")),
        "{}",
        s1.key_id
    );
    let old = client.encrypt(&[1; 32]).unwrap();
    assert_eq!(old.key_id, s1.key_id);
    assert_eq!(client.decrypt(&old).unwrap(), vec![1; 32]);

    // Rotation on the server: a newer key under the name. The plugin notices on its status
    // timer; Status and Encrypt agree on the new key id; old data still decrypts.
    let uid2 = env.admin.create("kube-kms");
    plugin.wait_log("key id changed", WAIT);
    let s2 = client.status();
    assert!(
        s2.key_id.starts_with(&format!("kmip:{uid2}:")),
        "{}",
        s2.key_id
    );
    let new = client.encrypt(&[2; 32]).unwrap();
    assert_eq!(new.key_id, s2.key_id);
    assert_eq!(client.decrypt(&old).unwrap(), vec![1; 32]);
    drop(client);
    drop(plugin);

    // A fresh process has no cached local KEKs: old and new data decrypt through the server.
    let before = env.server_decrypts();
    let plugin = env.start("client", "kube-kms");
    plugin.wait_log(HEALTHY, WAIT);
    let mut client = Client::connect(&env.sock());
    assert_eq!(client.status().key_id, s2.key_id);
    assert_eq!(client.decrypt(&old).unwrap(), vec![1; 32]);
    assert_eq!(client.decrypt(&new).unwrap(), vec![2; 32]);
    assert!(
        env.server_decrypts() >= before + 2,
        "the restarted plugin unwrapped through the server"
    );

    // The key is replaced (destroyed, a new one under the name): the plugin that used it
    // says the key is gone, never `ok` over data it can no longer decrypt.
    env.admin.run(&format!("destroy {uid2}"));
    env.admin.create("kube-kms");
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("key_version_missing"), "{line}");
    assert!(client.status().healthz.contains("key_version_missing"));
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn outages_credentials_missing_keys_and_modes() {
    let mut env = Env::new("kmip-e2e-faults");
    env.admin.create("kube-kms");

    // Server down at start: the plugin binds its socket, answers Status (not ok), and heals
    // without a restart when the server comes up.
    env.server.stop();
    let plugin = env.start("client", "kube-kms");
    let mut client = Client::connect(&env.sock());
    assert_ne!(client.status().healthz, "ok", "down at start is not ok");
    assert!(
        client.encrypt(&[1; 32]).is_err(),
        "nothing can be wrapped yet"
    );
    env.server.restart();
    plugin.wait_log(HEALTHY, WAIT);
    assert_eq!(client.status().healthz, "ok");
    let enc = client.encrypt(&[3; 32]).unwrap();

    // Server down mid-run: unhealthy (unreachable), and back.
    env.server.stop();
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("unreachable"), "{line}");
    assert_ne!(client.status().healthz, "ok");
    env.server.restart();
    plugin.wait_log(HEALTHY, WAIT);
    assert_eq!(client.status().healthz, "ok");
    assert_eq!(client.decrypt(&enc).unwrap(), vec![3; 32]);
    assert_eq!(plugin.terminate(), 0);

    // A client certificate the server does not trust: auth.
    let plugin = env.start("rogue", "kube-kms");
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("auth"), "{line}");
    let mut client = Client::connect(&env.sock());
    assert!(client.status().healthz.contains("auth"));
    drop(client);
    drop(plugin);

    // A key that does not exist: not_found.
    let plugin = env.start("client", "no-such-key");
    let line = plugin.wait_log(UNHEALTHY, WAIT);
    assert!(line.contains("not_found"), "{line}");
    drop(plugin);

    // A wrap mode the server cannot do is a start-up error naming the problem.
    let out = env
        .command("client", "kube-kms", &["--kmip-mode", "key-wrap"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot wrap"), "{stderr}");
}

#[test]
fn misconfiguration_is_a_usage_error_naming_the_flag() {
    let dir = TempDir::new("kmip-e2e-config");
    let pki = Pki::generate(&dir.0);
    let cert = pki.path("client.pem").display().to_string();
    let key = pki.path("client.key").display().to_string();
    let ca = pki.path("ca.pem").display().to_string();
    let base = ["serve", "--provider", "kmip"];
    let tls = [
        "--kmip-client-cert",
        cert.as_str(),
        "--kmip-client-key",
        key.as_str(),
        "--ca-file",
        ca.as_str(),
    ];
    // (flags after `serve --provider kmip`, environment, what the error must name)
    type Case<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 4] = [
        (tls.to_vec(), &[("KMS_KEY_ID", "k")], "--kmip-addr"),
        (
            [&["--kmip-addr", "127.0.0.1:9"][..], &tls[..2]].concat(),
            &[("KMS_KEY_ID", "k")],
            "--kmip-client-key",
        ),
        (
            [&["--kmip-addr", "127.0.0.1:9"][..], &tls[..]].concat(),
            &[("KMS_KEY_ID", "k"), ("KMS_USER_ID", "alice")],
            "--kmip-password-file",
        ),
        (
            [&["--kmip-addr", "127.0.0.1:9"][..], &tls[..]].concat(),
            &[],
            "KMS_KEY_ID",
        ),
    ];
    for (args, env, needle) in cases {
        let mut cmd = Command::new(BIN);
        cmd.args(base)
            .args(&args)
            .env_remove("KMS_USER_ID")
            .env_remove("KMS_KEY_ID");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
