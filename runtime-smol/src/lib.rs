//! kms-plugin runtime on smol / async-io, for embedding in async applications.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn main() -> Result<(), String> {
//! use kms_plugin_smol::serve::{ServeOptions, serve};
//! let executor = Arc::new(smol::Executor::new());
//! let listener = async_io::Async::<std::os::unix::net::UnixListener>::bind("/tmp/kms.sock")
//!     .map_err(|e| e.to_string())?;
//! let keyring = kms_plugin_core::keyring::Keyring::new(); // load yours
//! # let provider: Arc<dyn kms_plugin_smol::provider::AsyncKekProvider> = todo!();
//! let options = ServeOptions { config: Default::default(), provider, shutdown_grace: std::time::Duration::from_secs(5) };
//! smol::block_on(executor.run(serve(executor.clone(), listener, options, std::future::pending())))
//! # }
//! ```
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod observe;
pub mod provider;
pub mod serve;
