//! End to end with a real gRPC client (Python grpcio) against the smol runtime's binary:
//! KMS v2 and v1 with every `:authority` kube-apiserver sends (docs/protocol.md §2), path and abstract
//! sockets, and a graceful SIGTERM.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;

use support::{Plugin, TempDir, grpc_go_authority, grpcio};

const BIN: &str = env!("CARGO_BIN_EXE_kms-plugin-smol");

fn key_file(dir: &TempDir) -> std::path::PathBuf {
    use kms_plugin_core::keyring::Keyring;
    use std::os::unix::fs::OpenOptionsExt;
    let mut keyring = Keyring::new();
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).unwrap();
    keyring
        .add_key(
            "default",
            kms_plugin_core::secret::Secret32::from_bytes(key),
        )
        .unwrap();
    let path = dir.join("keyring");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &keyring.serialize()).unwrap();
    path
}

#[test]
fn smol_runtime_serves_v1_and_v2_with_every_authority() {
    let dir = TempDir::new("smol");
    let keys = key_file(&dir);
    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    let plugin = Plugin::start_bin(
        BIN,
        &["--listen", &listen, "--key-file", keys.to_str().unwrap()],
    );
    for authority in [
        "localhost".to_string(),
        grpc_go_authority(&sock),
        sock.display().to_string(),
        "-".into(),
    ] {
        let (ok, out) = grpcio(&listen, &authority, &["both"]);
        assert!(ok, "authority {authority:?}: {out}");
        assert!(out.contains("\"tamper\": \"INVALID_ARGUMENT\""), "{out}");
    }
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn smol_runtime_on_an_abstract_socket() {
    let dir = TempDir::new("smol-abstract");
    let keys = key_file(&dir);
    let name = format!("kms-smol-{}", std::process::id());
    let listen = format!("unix:///@{name}");
    let _plugin = Plugin::start_bin(
        BIN,
        &["--listen", &listen, "--key-file", keys.to_str().unwrap()],
    );
    let (ok, out) = grpcio(
        &format!("unix-abstract:{name}"),
        &format!("@{name}"),
        &["both"],
    );
    assert!(ok, "{out}");
}
