//! kms-plugin runtime on blocking std threads, and the `kms-plugin` binary's library.
//!
//! [`serve::Server`] drives one `kms_plugin_core::Plugin` over a Unix socket; [`cli`] is the
//! command line of the static `kms-plugin` binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod cli;
pub mod clock;
pub mod driver;
pub mod encryption_config;
pub mod endpoint;
pub mod keyfile;
pub mod log;
pub mod observe;
pub mod probe;
pub mod provider;
pub mod serve;
pub mod socket;
