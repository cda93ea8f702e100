//! kms-plugin runtime (blocking std threads).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod provider;
