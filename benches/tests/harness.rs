//! The end-to-end benchmark's own parts work: the closed-loop HTTP/2 client against the tonic
//! reference server (valid responses, no errors, sampled bodies checked) and the raw floor.
//! Bounded: each load run lasts 300 ms.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_plugin_benches::h2load::{self, Call, Validator, Window};
use kms_plugin_benches::pb::{v1beta1, v2};
use kms_plugin_benches::{floor, tonic_ref};
use prost::Message;

fn temp_socket(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kms-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn window(ms: u64) -> Window {
    let start = Instant::now() + Duration::from_millis(50);
    Window {
        start,
        end: start + Duration::from_millis(ms),
    }
}

/// Starts the tonic reference server on its own runtime thread; returns when it listens.
fn start_tonic(socket: &std::path::Path) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let path = socket.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(tonic_ref::serve(&path, async {
            let _ = stopped.await;
        }))
        .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "tonic reference did not listen");
        std::thread::sleep(Duration::from_millis(5));
    }
    stop
}

#[test]
fn h2_client_drives_the_tonic_reference_server() {
    let socket = temp_socket("tonic.sock");
    let stop = start_tonic(&socket);

    let status = Call::new("/v2.KeyManagementService/Status", &[]);
    let body = h2load::unary(&socket, &status).expect("Status answers");
    let st = v2::StatusResponse::decode(body.as_slice()).unwrap();
    assert_eq!((st.version.as_str(), st.healthz.as_str()), ("v2", "ok"));

    let enc = v2::EncryptRequest {
        plaintext: vec![9; 32],
        uid: "u".into(),
    };
    let enc = h2load::unary(
        &socket,
        &Call::new("/v2.KeyManagementService/Encrypt", &enc.encode_to_vec()),
    )
    .unwrap();
    let enc = v2::EncryptResponse::decode(enc.as_slice()).unwrap();
    let dec = v2::DecryptRequest {
        ciphertext: enc.ciphertext,
        uid: "u".into(),
        key_id: enc.key_id,
        annotations: enc.annotations,
    };
    let dec_call = Call::new("/v2.KeyManagementService/Decrypt", &dec.encode_to_vec());
    let good: Validator =
        Arc::new(|b| v2::DecryptResponse::decode(b).is_ok_and(|d| d.plaintext == [9; 32]));
    let stats = h2load::run_connection(&socket, &dec_call, &good, 8, window(300));
    assert_eq!(stats.failure, None);
    assert_eq!(stats.errors, 0);
    assert!(
        stats.latencies_ns.len() > 10,
        "{} requests",
        stats.latencies_ns.len()
    );
    assert!(stats.bytes_in > 0 && stats.responses_in_window > 0);

    // A validator that rejects is counted as errors (the first response is always sampled).
    let bad: Validator = Arc::new(|_| false);
    let stats = h2load::run_connection(&socket, &dec_call, &bad, 1, window(100));
    assert!(stats.errors >= 1);

    // gRPC errors (trailers-only) are errors, not successes.
    let v1_bad = v1beta1::DecryptRequest {
        version: "v1beta1".into(),
        cipher: vec![1, 2, 3],
    };
    let call = Call::new(
        "/v1beta1.KeyManagementService/Decrypt",
        &v1_bad.encode_to_vec(),
    );
    assert!(h2load::unary(&socket, &call).is_err());
    let any: Validator = Arc::new(|_| true);
    let stats = h2load::run_connection(&socket, &call, &any, 4, window(100));
    assert!(stats.latencies_ns.is_empty() && stats.errors > 0);
    let _ = stop.send(());
}

#[test]
fn floor_echo_round_trips() {
    let socket = temp_socket("floor.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || floor::serve(&listener));
    let stats = floor::run_connection(&socket, 150, 120, 16, window(300));
    assert_eq!(stats.failure, None);
    assert!(
        stats.latencies_ns.len() > 100,
        "{} requests",
        stats.latencies_ns.len()
    );
}
