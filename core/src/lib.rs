//! Sans-IO core of kms-plugin.
//!
//! This crate holds everything the plugin *decides*: HTTP/2 (RFC 9113) server-side framing
//! and state, HPACK (RFC 7541), gRPC unary framing, the KMS v1beta1/v2 services, the local key
//! hierarchy, caches and annotations. It never touches IO, clocks, entropy, threads,
//! environment or files: `now` and RNG seeds are passed in, and every request to the outside
//! world leaves as an [`effect::Effect`].
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
pub mod conn;
pub mod effect;
pub mod envelope;
pub mod error;
pub mod event;
pub mod grpc;
pub mod h2;
pub mod hpack;
pub mod ids;
pub mod kek;
pub mod keyring;
pub mod keystore;
pub mod kms;
pub mod metrics;
pub mod plugin;
pub mod rng;
pub mod rpc;
pub mod secret;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;

pub use config::Config;
pub use effect::{Effect, OpId, RemoteError, RemoteErrorKind, RemoteOp, RemoteReply};
pub use event::Event;
pub use plugin::{ConnId, Plugin};
pub use time::Timestamp;
