//! End to end with a tonic (Rust, hyper/h2) gRPC client: KMS v2 Status, Encrypt and Decrypt
//! over the Unix socket of the `kms-plugin` binary (tonic sends `:authority: localhost`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;
#[path = "support/tonic_v2.rs"]
mod tonic_v2;

use support::{Plugin, TempDir, init_keys};

#[test]
fn tonic_client_v2_round_trip() {
    let dir = TempDir::new("tonic");
    let key_file = init_keys(&dir);
    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    let _plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    tonic_v2::v2_round_trip(&sock);
}
