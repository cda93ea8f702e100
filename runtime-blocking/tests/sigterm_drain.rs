//! SIGTERM drains: a Decrypt whose remote unwrap is in flight when the signal arrives is still
//! answered, then the plugin exits 0 and unlinks its socket. The remote is the fake Transit
//! server with a slow answer; "in flight" is read from the server's own request log.
#![cfg(feature = "vault")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;
#[path = "support/tonic_v2.rs"]
mod tonic_v2;
#[path = "support/transit_server.rs"]
mod transit_server;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{BIN, Plugin, TempDir, unix_socket};
use tonic_v2::Client;
use transit_server::TransitServer;

const TOKEN: &str = "hvs.drain-token";
const WAIT: Duration = Duration::from_secs(30);

fn start(args: &[&str]) -> Plugin {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .args(["--log-format", "text", "--log-level", "debug"])
        .env("KMS_KEY_ID", "kms")
        .env_remove("KMS_USER_ID")
        .env_remove("VAULT_ADDR");
    Plugin::spawn(&mut cmd, &["info  healthy"])
}

#[test]
fn sigterm_answers_the_in_flight_decrypt_then_exits_0() {
    let server = TransitServer::start();
    server.add_key("kms");
    server.allow_token(TOKEN);
    let dir = TempDir::new("drain");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (sock, listen) = unix_socket(&dir, "kms.sock");
    let url = server.url();
    let args = [
        "--provider",
        "vault",
        "--vault-addr",
        url.as_str(),
        "--vault-insecure-http",
        "--token-file",
        token_file.to_str().unwrap(),
        "--listen",
        listen.as_str(),
        "--shutdown-grace",
        "20",
    ];

    // A ciphertext from a first process...
    let first = start(&args);
    let mut client = Client::connect(&sock);
    let enc = client.encrypt(&[7; 32]).unwrap();
    drop(client);
    assert_eq!(first.terminate(), 0);

    // ...decrypted by a fresh one (no cached KEK): the unwrap goes to the slow Transit server.
    let plugin = start(&args);
    let before = server.count("/decrypt/kms");
    server.set_delay(Duration::from_millis(500));
    let sock2 = sock.clone();
    let decrypt = std::thread::spawn(move || Client::connect(&sock2).decrypt(&enc));
    // Bounded wait until the unwrap has reached the server (it answers 0.5 s later).
    let deadline = Instant::now() + WAIT;
    while server.count("/decrypt/kms") == before {
        assert!(
            Instant::now() < deadline,
            "the unwrap never reached Transit"
        );
        std::thread::yield_now();
    }

    assert_eq!(plugin.terminate(), 0, "graceful exit after draining");
    let answer = decrypt.join().unwrap();
    assert_eq!(answer.map_err(|s| s.to_string()), Ok(vec![7; 32]));
    assert!(!sock.exists(), "socket unlinked on exit");
}
