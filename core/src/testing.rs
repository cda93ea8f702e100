//! Test support: an in-memory HTTP/2 + gRPC client and helpers for deterministic simulations.
//!
//! Compiled for the core's own tests and, with the `testing` feature, for the runtimes',
//! benches' and fuzzers' use. Never part of a production build.
#![allow(clippy::missing_panics_doc, clippy::must_use_candidate)]

pub mod client;
pub mod fake_remote;
pub mod h2_harness;
pub mod kms_messages;
pub mod remote_driver;
pub mod service_sim;
pub mod sim;
