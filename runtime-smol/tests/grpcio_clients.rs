//! End to end with a real gRPC client (Python grpcio) against the smol runtime's binary:
//! KMS v2 and v1 with every `:authority` kube-apiserver sends (docs/protocol.md §2), path and abstract
//! sockets, and a graceful SIGTERM.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;

use support::{Plugin, Served, TempDir, grpc_go_authority, grpcio, grpcio_abstract, key_file};

const BIN: &str = env!("CARGO_BIN_EXE_kms-plugin-smol");

#[test]
fn smol_runtime_serves_v1_and_v2_with_every_authority() {
    let served = Served::start_bin(BIN, "smol", &[]);
    let (sock, listen) = (&served.sock, &served.listen);
    for authority in [
        "localhost".to_string(),
        grpc_go_authority(sock),
        sock.display().to_string(),
        "-".into(),
    ] {
        let (ok, out) = grpcio(listen, &authority, &["both"]);
        assert!(ok, "authority {authority:?}: {out}");
        assert!(out.contains("\"tamper\": \"INVALID_ARGUMENT\""), "{out}");
    }
    assert_eq!(served.plugin.terminate(), 0);
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
    let (ok, out) = grpcio_abstract(&name, &["both"]);
    assert!(ok, "{out}");
}
