//! End to end with a real gRPC client (Python grpcio) against the `kms-plugin` binary: KMS v2
//! and v1 round trips with every `:authority` kube-apiserver sends (docs/protocol.md §2).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use support::{Plugin, Served, TempDir, grpc_go_authority, grpcio, grpcio_abstract, init_keys};

#[test]
fn v1_and_v2_with_every_authority_on_a_path_socket() {
    let served = Served::serve("auth", &[]);
    let (sock, target) = (&served.sock, &served.listen);
    let authorities = [
        "localhost".to_string(),            // kube >= 1.32, KMS v2
        grpc_go_authority(sock),            // every KMS v1 client; KMS v2 before 1.32
        sock.to_str().unwrap().to_string(), // old grpc-go: the raw path
        "-".to_string(),                    // grpcio's own default
    ];
    for authority in &authorities {
        let (ok, out) = grpcio(target, authority, &["both"]);
        assert!(ok, "authority {authority:?}: {out}");
        assert!(out.contains("\"healthz\": \"ok\""), "{out}");
        assert!(out.contains("\"version\": \"v1beta1\""), "{out}");
        assert!(out.contains("\"tamper\": \"INVALID_ARGUMENT\""), "{out}");
    }
}

#[test]
fn v2_and_v1_on_an_abstract_socket_with_at_authority() {
    let dir = TempDir::new("abstract");
    let key_file = init_keys(&dir);
    let name = format!("kms-test-{}", std::process::id());
    let listen = format!("unix:///@{name}");
    let _plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    let (ok, out) = grpcio_abstract(&name, &["both"]);
    assert!(ok, "{out}");
    assert!(out.contains("\"roundtrip\": true"), "{out}");
}

#[test]
fn status_version_v2beta1_for_kube_127() {
    let served = Served::serve("v2beta1", &["--status-version", "v2beta1"]);
    let (ok, out) = grpcio(&served.listen, "localhost", &["v2"]);
    assert!(ok, "{out}");
    assert!(out.contains("\"version\": \"v2beta1\""), "{out}");
}

#[test]
fn key_rotation_is_picked_up_without_restart_and_old_ciphertexts_still_decrypt() {
    let served = Served::serve("rotate", &["--status-refresh", "0.2"]);
    let (plugin, listen, key_file) = (&served.plugin, &served.listen, &served.keys);
    let saved = served.dir.join("saved.json");
    let (ok, out) = grpcio(listen, "localhost", &["save", saved.to_str().unwrap()]);
    assert!(ok, "{out}");
    let rotated = support::run(&["keys", "rotate", "--key-file", key_file.to_str().unwrap()]);
    assert!(rotated.status.success());
    let stdout = String::from_utf8_lossy(&rotated.stdout);
    let new_key_id = stdout
        .split("new key id ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    // The plugin logs the key id change (hashed) once the refresh has wrapped a new local KEK.
    let hash = kms_plugin_blocking::log::hash_key_id(&new_key_id);
    plugin.wait_log(
        &format!("key id changed key_id_hash={hash}"),
        std::time::Duration::from_secs(20),
    );
    let (ok, out) = grpcio(listen, "localhost", &["check", saved.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("\"status_key_id\": \"{new_key_id}\"")),
        "{out}"
    );
    assert!(
        !out.contains(&format!("\"old_key_id\": \"{new_key_id}\"")),
        "{out}"
    );
}
