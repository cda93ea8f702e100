//! Observability for the smol runtime: `/metrics`, `/livez` and `/readyz` over hyper 1
//! ([`metrics_server`]). Logging, metrics and readiness are the std layer's
//! (`kms_plugin_blocking::{log, driver}`), the same lines and families as the blocking runtime.

pub mod metrics_server;
