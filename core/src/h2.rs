//! HTTP/2 frame layer (RFC 9113 §4, §6): zero-copy parsing over borrowed input and
//! encoders that append to a caller-owned `Vec<u8>`.
//!
//! Nothing here keeps state between frames; the connection state machine lives in
//! [`crate::conn`]. Parsers return a [`FrameError`] naming the RFC error code and whether it is
//! a stream or connection error; the connection turns it into RST_STREAM or GOAWAY.

pub mod control;
pub mod head;
pub mod padding;
pub mod reason;
pub mod settings;

pub use head::{FrameHead, FrameKind, HEAD_LEN, flags};
pub use reason::Reason;
pub use settings::{Setting, SettingId};

/// The client connection preface (RFC 9113 §3.4), followed by the client's SETTINGS frame.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The initial flow-control window of every stream and the connection (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// The largest flow-control window (RFC 9113 §6.9.1): 2^31-1.
pub const MAX_WINDOW: u32 = 0x7fff_ffff;

/// The smallest and largest legal SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const MIN_MAX_FRAME_SIZE: u32 = 16_384;
/// See [`MIN_MAX_FRAME_SIZE`].
pub const MAX_MAX_FRAME_SIZE: u32 = 16_777_215;

/// Whether a frame error kills one stream or the whole connection (RFC 9113 §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// RST_STREAM the frame's stream with this code (§5.4.2).
    Stream(Reason, &'static str),
    /// GOAWAY with this code and close (§5.4.1).
    Connection(Reason, &'static str),
}

/// Appends a complete frame (header + payload) to `out`.
pub fn encode_frame(
    out: &mut alloc::vec::Vec<u8>,
    kind: FrameKind,
    flags: u8,
    stream: u32,
    payload: &[u8],
) {
    FrameHead {
        length: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .encode(out);
    out.extend_from_slice(payload);
}
