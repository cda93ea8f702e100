//! Sans-IO core of kms-plugin.
//!
//! This crate holds everything the plugin *decides*: HTTP/2 (RFC 9113) server-side framing
//! and state, HPACK (RFC 7541), gRPC unary framing, the KMS v1beta1/v2 services, the local key
//! hierarchy, caches and annotations. It never touches IO, clocks, entropy, threads,
//! environment or files: `now` and RNG seeds are passed in, and every request to the outside
//! world leaves as an [`effect::Effect`].
//!
//! # Public API
//!
//! What an embedder uses:
//! - [`Plugin`] with its [`Config`] (including [`TransportConfig`]): one per listening
//!   socket; it is fed through `handle_*` calls and drained through `poll_*` calls (below);
//! - what comes out of it: [`Effect`]s for the driver to perform (remote KEK operations
//!   answered with [`RemoteReply`] / [`RemoteError`], connection closes), [`Event`]s (with
//!   [`ConnEvent`], and the healthz causes of [`health`]) for logs and metrics (rendered by
//!   [`metrics`]), ids ([`ids`]) and the driver's contract errors ([`error::UsageError`]);
//! - the pure pieces a driver or tool needs on its own: the ciphertext formats ([`envelope`],
//!   [`annotations`]), the local key file ([`keyring`]), the remote providers' wire codecs
//!   ([`kek`]), the wire layers a probe or test client builds requests with ([`h2`],
//!   [`hpack`], [`grpc`], [`rpc`]), and [`time::Timestamp`], [`secret`], [`rng`].
//!
//! The layers beneath [`Plugin`] are crate-private: `conn` (one HTTP/2 connection), `kms`
//! (the KMS services) and `keystore` (the key hierarchy's state). With the `testing`
//! feature, a hidden `testing` module re-exports the first two (`Connection`, `KmsService`)
//! and the apiserver's response checks for the test harness, `kms-plugin-testkit`
//! (core/testkit/), through which integration tests, fuzz targets and benchmarks drive each
//! layer alone; a production build has no path to them. The modules import each other
//! without cycles (checked by `tests/module_graph.rs`).
//!
//! # Loop contract
//!
//! A driver (see the runtime crates) owns one [`plugin::Plugin`] and, after **every**
//! `handle_*` call, drains all outputs in this order before waiting again:
//! `poll_transmit` until `None`, `poll_effect` until `None`, `poll_event` until `None`, then
//! `poll_timeout` to learn the next deadline. Time passed in must never go backwards.
//!
//! **Backpressure.** The bytes `poll_transmit` hands out belong to the driver until written.
//! A driver reads a connection again only once the bytes it holds for that connection are
//! written and while [`plugin::Plugin::wants_read`] is true. Reading is the only thing that
//! makes a peer's frames produce output, so a peer that does not read its answers (a PING or
//! request flood) is not read either, and what is queued for it stays bounded: the driver's
//! unwritten bytes by the output of one read plus answers already in flight, the core's by
//! `transport.max_pending_output` (input fed while `wants_read` is false ends the connection
//! with GOAWAY(ENHANCE_YOUR_CALM) rather than queueing more).
#![no_std]
#![forbid(unsafe_code)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod annotations;
pub mod config;
// `pub` inside these three means "reachable through `testing`": without that feature nothing
// reaches them, which `unreachable_pub` would flag item by item.
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod conn;
pub mod effect;
pub mod envelope;
pub mod error;
pub mod event;
pub mod grpc;
pub mod h2;
pub mod health;
pub mod hpack;
pub mod ids;
pub mod kek;
pub mod keyring;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod keystore;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod kms;
pub mod metrics;
pub mod plugin;
pub mod rng;
pub mod rpc;
pub mod secret;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
pub mod time;

pub use config::{Config, TransportConfig};
pub use effect::{Effect, OpId, RemoteError, RemoteErrorKind, RemoteOp, RemoteReply};
pub use event::{ConnEvent, Event};
pub use plugin::{ConnId, Plugin};
pub use time::Timestamp;
