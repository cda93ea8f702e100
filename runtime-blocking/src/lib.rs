//! kms-plugin runtime on blocking std threads, and the `kms-plugin` binary's library.
//!
//! [`serve::Server`] drives one `kms_plugin_core::Plugin` over a Unix socket; [`cli`] is the
//! command line of the static `kms-plugin` binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

// Links the replacement `memcpy`/`memmove`/`memcmp`/`bcmp` into every musl x86_64 binary of
// this crate (the static `kms-plugin`): musl's are slow there (runtime-blocking/musl).
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
use kms_plugin_musl as _;

pub mod cli;
pub mod clock;
pub mod encryption_config;
pub mod endpoint;
pub mod keyfile;
pub mod log;
pub mod observe;
pub mod probe;
pub mod provider;
pub mod serve;
pub mod socket;
