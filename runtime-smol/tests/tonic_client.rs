//! End to end with a tonic (Rust, hyper/h2) gRPC client against the smol runtime's binary:
//! KMS v2 Status, Encrypt and Decrypt over a path socket (tonic sends `:authority: localhost`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;
#[path = "../../runtime-blocking/tests/support/tonic_v2.rs"]
mod tonic_v2;

use support::{Plugin, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_kms-plugin-smol");

#[test]
fn tonic_client_v2_round_trip_on_the_smol_runtime() {
    use kms_plugin_core::keyring::Keyring;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = TempDir::new("smol-tonic");
    let mut keyring = Keyring::new();
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).unwrap();
    keyring
        .add_key(
            "default",
            kms_plugin_core::secret::Secret32::from_bytes(key),
        )
        .unwrap();
    let keys = dir.join("keyring");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&keys)
        .unwrap();
    std::io::Write::write_all(&mut f, &keyring.serialize()).unwrap();
    drop(f);

    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    let _plugin = Plugin::start_bin(
        BIN,
        &["--listen", &listen, "--key-file", keys.to_str().unwrap()],
    );
    tonic_v2::v2_round_trip(&sock);
}
