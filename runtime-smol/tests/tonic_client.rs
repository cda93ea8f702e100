//! End to end with a tonic (Rust, hyper/h2) gRPC client against the smol runtime's binary:
//! KMS v2 Status, Encrypt and Decrypt over a path socket (tonic sends `:authority: localhost`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;
#[path = "../../runtime-blocking/tests/support/tonic_v2.rs"]
mod tonic_v2;

use support::Served;

const BIN: &str = env!("CARGO_BIN_EXE_kms-plugin-smol");

#[test]
fn tonic_client_v2_round_trip_on_the_smol_runtime() {
    let served = Served::start_bin(BIN, "smol-tonic", &[]);
    tonic_v2::v2_round_trip(&served.sock);
}
