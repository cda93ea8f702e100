//! The 9-octet frame header (RFC 9113 §4.1).

use alloc::vec::Vec;

/// Length of the frame header.
pub const HEAD_LEN: usize = 9;

/// Frame flag bits (RFC 9113 §6).
pub mod flags {
    /// DATA, HEADERS: last frame the sender will send on this stream (§6.1, §6.2).
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement (§6.5, §6.7).
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the header block ends in this frame (§6.2, §6.10).
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: a Pad Length octet and padding are present (§6.1, §6.2).
    pub const PADDED: u8 = 0x8;
    /// HEADERS: Exclusive/Stream Dependency/Weight are present (§6.2).
    pub const PRIORITY: u8 = 0x20;
}

/// The frame types of RFC 9113 §6, plus every other value (§4.1: unknown types are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// §6.1
    Data,
    /// §6.2
    Headers,
    /// §6.3 (deprecated; accepted and ignored)
    Priority,
    /// §6.4
    RstStream,
    /// §6.5
    Settings,
    /// §6.6 (a client must never send it: §8.4)
    PushPromise,
    /// §6.7
    Ping,
    /// §6.8
    GoAway,
    /// §6.9
    WindowUpdate,
    /// §6.10
    Continuation,
    /// Any other type: ignored (§4.1, §5.5).
    Unknown(u8),
}

impl FrameKind {
    /// The type from its wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Data,
            1 => Self::Headers,
            2 => Self::Priority,
            3 => Self::RstStream,
            4 => Self::Settings,
            5 => Self::PushPromise,
            6 => Self::Ping,
            7 => Self::GoAway,
            8 => Self::WindowUpdate,
            9 => Self::Continuation,
            other => Self::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Headers => 1,
            Self::Priority => 2,
            Self::RstStream => 3,
            Self::Settings => 4,
            Self::PushPromise => 5,
            Self::Ping => 6,
            Self::GoAway => 7,
            Self::WindowUpdate => 8,
            Self::Continuation => 9,
            Self::Unknown(v) => v,
        }
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// Payload length (24 bits).
    pub length: u32,
    /// Frame type.
    pub kind: FrameKind,
    /// Flag bits.
    pub flags: u8,
    /// Stream identifier with the reserved bit cleared (§4.1: "MUST be ignored when receiving").
    pub stream: u32,
}

impl FrameHead {
    /// Parses the first 9 octets of `input`; `None` if fewer are available (not an error).
    pub fn parse(input: &[u8]) -> Option<Self> {
        let b: &[u8; HEAD_LEN] = input.get(..HEAD_LEN)?.try_into().ok()?;
        Some(Self {
            length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: FrameKind::from_u8(b[3]),
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    /// Appends the 9-octet header to `out`. `length` must fit in 24 bits.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let l = self.length.to_be_bytes();
        let s = self.stream.to_be_bytes();
        out.extend_from_slice(&[
            l[1],
            l[2],
            l[3],
            self.kind.as_u8(),
            self.flags,
            s[0],
            s[1],
            s[2],
            s[3],
        ]);
    }

    /// Whether `flag` is set.
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}
