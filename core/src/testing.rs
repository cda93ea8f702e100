//! Test support: an in-memory HTTP/2 + gRPC client and helpers for deterministic simulations.
//!
//! Compiled for the core's own tests and, with the `testing` feature, for the runtimes',
//! benches' and fuzzers' use. Never part of a production build.

pub mod client;
pub mod sim;
