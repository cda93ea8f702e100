//! The runtime parity tests (runtime-blocking/tests/parity/mod.rs) against `kms-plugin-smol`;
//! runtime-blocking/tests/runtime_parity.rs runs the same ones against the static binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[macro_use]
#[path = "../../runtime-blocking/tests/parity/mod.rs"]
mod parity;
#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;

parity_tests!(parity::Bin {
    path: env!("CARGO_BIN_EXE_kms-plugin-smol"),
    serve: &[],
});
