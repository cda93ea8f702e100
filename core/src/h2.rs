//! HTTP/2 framing (RFC 9113 §4, §6): frame heads, frame writers, error codes and settings.
//!
//! Parsing is zero-copy over borrowed input; writers append to a caller-owned `Vec<u8>`.

pub mod frame;
pub mod reason;
pub mod settings;

pub use frame::{FrameHead, FrameKind, PREFACE};
pub use reason::Reason;
