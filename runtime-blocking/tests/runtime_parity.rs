//! The runtime parity tests (tests/parity/mod.rs) against the static binary's `serve`; the smol
//! runtime runs the same ones against `kms-plugin-smol` (runtime-smol/tests/runtime_parity.rs).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[macro_use]
mod parity;
mod support;

parity_tests!(parity::Bin {
    path: env!("CARGO_BIN_EXE_kms-plugin"),
    serve: &["serve"],
});
