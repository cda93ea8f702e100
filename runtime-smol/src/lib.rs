//! kms-plugin runtime (smol / async-io).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod observe;
pub mod provider;
