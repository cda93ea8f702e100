//! The tokio embedding example (examples/tokio_embed.rs) serves a real tonic client: KMS v2
//! Status, Encrypt and Decrypt, then shuts down gracefully.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../examples/tokio_embed.rs"]
mod example;
#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;
#[path = "../../runtime-blocking/tests/support/tonic_v2.rs"]
mod tonic_v2;

use std::time::Duration;

#[test]
fn the_core_driven_by_tokio_answers_a_tonic_client_and_shuts_down() {
    let dir = support::TempDir::new("tokio-embed");
    let sock = dir.join("kms.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(async { tokio::net::UnixListener::bind(&sock) })
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(example::serve(listener, async {
        let _ = stop_rx.await;
    }));
    // The core's first remote Status is answered at once by the in-memory remote.
    tonic_v2::v2_round_trip(&sock);
    stop_tx.send(()).unwrap();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), server).await })
        .expect("serve returns after shutdown")
        .unwrap();
}
