//! End to end with a tonic (Rust, hyper/h2) gRPC client: KMS v2 Status, Encrypt and Decrypt
//! over the Unix socket of the `kms-plugin` binary (tonic sends `:authority: localhost`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;
#[path = "support/tonic_v2.rs"]
mod tonic_v2;

use support::Served;

#[test]
fn tonic_client_v2_round_trip() {
    let served = Served::serve("tonic", &[]);
    tonic_v2::v2_round_trip(&served.sock);
}
