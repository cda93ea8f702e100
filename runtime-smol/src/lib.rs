//! kms-plugin runtime on smol / async-io, for embedding in async applications.
//!
//! Everything that is not the event loop is the std layer of `kms_plugin_blocking`, shared
//! with the static binary: the socket lifecycle (`socket::BoundSocket`), the providers
//! (`provider::{local, vault, pkcs11, resilient}`) and their secret files, the logger, the
//! clock and the [`Driver`](kms_plugin_blocking::driver::Driver) that runs the core's loop
//! contract, logs, metrics and readiness. This crate adds the async event loop ([`serve`])
//! and an async `/metrics` responder.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn main() -> Result<(), String> {
//! use kms_plugin_blocking::provider::local::LocalKeyFile;
//! use kms_plugin_smol::serve::{ServeOptions, serve};
//! let executor = Arc::new(smol::Executor::new());
//! let listener = async_io::Async::<std::os::unix::net::UnixListener>::bind("/tmp/kms.sock")
//!     .map_err(|e| e.to_string())?;
//! use kms_plugin_blocking::log::{Level, LogFormat, Logger};
//! let logger = Logger::new(LogFormat::Json, Level::Info);
//! let provider = LocalKeyFile::open("/etc/kms/keyring".into(), "default".into(), logger)?;
//! let options = ServeOptions {
//!     config: Default::default(),
//!     provider: Arc::new(provider),
//!     shutdown_grace: std::time::Duration::from_secs(5),
//!     peer_gate: None,
//! };
//! smol::block_on(executor.run(serve(executor.clone(), listener, options, std::future::pending())))
//! # }
//! ```
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod observe;
pub mod serve;
