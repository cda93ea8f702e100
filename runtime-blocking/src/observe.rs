//! Observability for the blocking runtime: the `/metrics`, `/livez` and `/readyz` HTTP
//! responder ([`metrics_server`]) and event logging ([`log`]).

pub mod log;
pub mod metrics_server;
