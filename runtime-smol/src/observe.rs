//! Observability for the smol runtime: `/metrics`, `/livez` and `/readyz` over hyper 1
//! ([`metrics_server`]) and event logging ([`log`]), in the same shapes as the blocking
//! runtime (the registry, the address parser and the log formatter live in
//! `kms_plugin_core::metrics`).

pub mod log;
pub mod metrics_server;
