//! The 9-octet frame head (RFC 9113 §4.1) and writers for every frame the server sends.

use alloc::vec::Vec;

use super::reason::Reason;

/// Length of the frame head (RFC 9113 §4.1).
pub const HEAD_LEN: usize = 9;
/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest window or window increment (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The initial window of every stream and of the connection (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The smallest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const MIN_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// Flag bits (RFC 9113 §6).
pub mod flags {
    /// DATA, HEADERS: last frame of the stream (§6.1, §6.2).
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement (§6.5, §6.7).
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the header block is complete (§6.2, §6.10).
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: a pad length octet and padding are present (§6.1, §6.2).
    pub const PADDED: u8 = 0x8;
    /// HEADERS: stream dependency and weight are present (§6.2).
    pub const PRIORITY: u8 = 0x20;
}

/// Frame types (RFC 9113 §6); anything else is `Unknown` and ignored (§4.1, §5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FrameKind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    Unknown(u8),
}

impl FrameKind {
    /// The type octet's meaning.
    pub const fn from_u8(kind: u8) -> Self {
        match kind {
            0x0 => Self::Data,
            0x1 => Self::Headers,
            0x2 => Self::Priority,
            0x3 => Self::RstStream,
            0x4 => Self::Settings,
            0x5 => Self::PushPromise,
            0x6 => Self::Ping,
            0x7 => Self::GoAway,
            0x8 => Self::WindowUpdate,
            0x9 => Self::Continuation,
            other => Self::Unknown(other),
        }
    }

    /// The type octet.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Data => 0x0,
            Self::Headers => 0x1,
            Self::Priority => 0x2,
            Self::RstStream => 0x3,
            Self::Settings => 0x4,
            Self::PushPromise => 0x5,
            Self::Ping => 0x6,
            Self::GoAway => 0x7,
            Self::WindowUpdate => 0x8,
            Self::Continuation => 0x9,
            Self::Unknown(k) => k,
        }
    }
}

/// A parsed frame head (RFC 9113 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// Payload length (24 bits).
    pub len: u32,
    /// Frame type.
    pub kind: FrameKind,
    /// Flags octet.
    pub flags: u8,
    /// Stream identifier; the reserved bit is cleared (§4.1: "MUST be ignored").
    pub stream: u32,
}

impl FrameHead {
    /// Parses the 9-octet head.
    pub fn parse(bytes: &[u8; HEAD_LEN]) -> Self {
        Self {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: FrameKind::from_u8(bytes[3]),
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & MAX_WINDOW,
        }
    }

    /// Whether `flag` is set.
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Appends the 9-octet encoding. `len` must fit 24 bits.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_be_bytes()[1..]);
        out.push(self.kind.as_u8());
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & MAX_WINDOW).to_be_bytes());
    }
}

/// Appends a frame head for a payload of `len` octets.
pub fn write_head(out: &mut Vec<u8>, len: usize, kind: FrameKind, flags: u8, stream: u32) {
    FrameHead {
        len: len as u32,
        kind,
        flags,
        stream,
    }
    .write(out);
}

/// Appends a whole frame.
pub fn write_frame(out: &mut Vec<u8>, kind: FrameKind, flags: u8, stream: u32, payload: &[u8]) {
    write_head(out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
}

/// Appends RST_STREAM (§6.4).
pub fn write_rst_stream(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    write_frame(
        out,
        FrameKind::RstStream,
        0,
        stream,
        &reason.0.to_be_bytes(),
    );
}

/// Appends GOAWAY (§6.8) with no debug data.
pub fn write_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    write_head(out, 8, FrameKind::GoAway, 0, 0);
    out.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends WINDOW_UPDATE (§6.9); `increment` must be 1..=2^31-1.
pub fn write_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    write_frame(
        out,
        FrameKind::WindowUpdate,
        0,
        stream,
        &(increment & MAX_WINDOW).to_be_bytes(),
    );
}

/// Appends a PING acknowledgement echoing `opaque` (§6.7).
pub fn write_ping_ack(out: &mut Vec<u8>, opaque: &[u8; 8]) {
    write_frame(out, FrameKind::Ping, flags::ACK, 0, opaque);
}

/// Appends an empty SETTINGS acknowledgement (§6.5).
pub fn write_settings_ack(out: &mut Vec<u8>) {
    write_head(out, 0, FrameKind::Settings, flags::ACK, 0);
}

/// Strips PADDED framing (§6.1, §6.2): returns the content without the pad length octet and
/// the padding, or `None` when the padding is as long as the payload or longer (a connection
/// error of type PROTOCOL_ERROR).
pub fn strip_padding(payload: &[u8], flags: u8) -> Option<&[u8]> {
    if flags & flags::PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    let pad = usize::from(pad);
    if pad > rest.len() {
        return None;
    }
    rest.get(..rest.len() - pad)
}
