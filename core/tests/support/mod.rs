//! Shared helpers for the core's integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod h2;
