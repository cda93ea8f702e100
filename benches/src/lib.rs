//! Benchmarks for kms-plugin.
//!
//! - `benches/` (criterion): core micro-benchmarks.
//! - `src/bin/e2e.rs`: the end-to-end load benchmark over real Unix sockets, comparing the
//!   kms-plugin runtimes with a tonic reference server (`src/bin/tonic-reference.rs`) and the raw
//!   socket floor (`src/bin/floor-echo.rs`); see docs/performance.md.

// Benchmarks do IO, read clocks and spawn threads (clippy.toml bans them in the core only).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod floor;
pub mod h2load;
pub mod procstat;
pub mod refkms;
pub mod report;
pub mod tonic_ref;

/// Prost messages and tonic server stubs generated from `proto/` by `build.rs`.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::all,
    clippy::pedantic
)]
pub mod pb {
    /// KMS v2 (`package v2`).
    pub mod v2 {
        tonic::include_proto!("v2");
    }
    /// KMS v1beta1 (`package v1beta1`, deprecated).
    pub mod v1beta1 {
        tonic::include_proto!("v1beta1");
    }
}
