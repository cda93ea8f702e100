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

/// One server-side HTTP/2 connection alone (crate-private otherwise), for the transport's
/// conformance tests, the `h2_frames` fuzz target and the benchmarks.
pub use crate::conn::Connection;
/// The KMS services alone, without the transport (crate-private otherwise), for
/// [`service_sim`] and the benchmarks.
pub use crate::kms::KmsService;
