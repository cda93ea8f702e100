//! Test support for kms-plugin-core: the one in-memory HTTP/2 + gRPC test client
//! ([`client::TestClient`], built on the core's own `h2` frames and HPACK), deterministic
//! simulations on a virtual clock ([`sim::Sim`] for the whole plugin, [`h2_harness::Harness`]
//! for one connection, [`service_sim::ServiceSim`] for the KMS services alone), a fake remote
//! KEK ([`fake_remote::FakeRemote`]) and the KMS message codecs tests assert with.
//!
//! Shared by the core's integration tests, the runtimes' tests, the fuzz targets and the
//! benchmarks. It is test, fuzz and bench support only, never a production dependency: it
//! reaches the core's crate-private layers through the core's `testing` feature, which no
//! shipped build enables. Like the core it is sans-IO (`no_std` + `alloc`): no sockets,
//! clocks, entropy or threads.
#![no_std]
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc, clippy::must_use_candidate)]

extern crate alloc;

pub mod client;
pub mod fake_remote;
pub mod h2_harness;
pub mod kms_messages;
pub mod remote_driver;
pub mod service_sim;
pub mod sim;

pub use kms_plugin_core::testing::{Connection, KmsService};
