//! SETTINGS frame payloads (RFC 9113 §6.5).

use alloc::vec::Vec;

use super::{FrameError, FrameHead, FrameKind, Reason, flags};

/// Setting identifiers (RFC 9113 §6.5.2). Unknown ones are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum SettingId {
    HeaderTableSize,
    EnablePush,
    MaxConcurrentStreams,
    InitialWindowSize,
    MaxFrameSize,
    MaxHeaderListSize,
    Unknown(u16),
}

impl SettingId {
    /// The identifier from its wire value.
    pub const fn from_u16(v: u16) -> Self {
        match v {
            1 => Self::HeaderTableSize,
            2 => Self::EnablePush,
            3 => Self::MaxConcurrentStreams,
            4 => Self::InitialWindowSize,
            5 => Self::MaxFrameSize,
            6 => Self::MaxHeaderListSize,
            other => Self::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        match self {
            Self::HeaderTableSize => 1,
            Self::EnablePush => 2,
            Self::MaxConcurrentStreams => 3,
            Self::InitialWindowSize => 4,
            Self::MaxFrameSize => 5,
            Self::MaxHeaderListSize => 6,
            Self::Unknown(v) => v,
        }
    }
}

/// One identifier/value pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Which setting.
    pub id: SettingId,
    /// Its value.
    pub value: u32,
}

/// Checks a SETTINGS frame's header against §6.5 and returns its pairs, borrowed.
///
/// - stream other than 0: connection PROTOCOL_ERROR;
/// - ACK with a payload, or a length not a multiple of 6: connection FRAME_SIZE_ERROR.
pub fn parse<'a>(
    head: &FrameHead,
    payload: &'a [u8],
) -> Result<impl Iterator<Item = Setting> + 'a, FrameError> {
    if head.stream != 0 {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "SETTINGS on a stream",
        ));
    }
    if head.has(flags::ACK) && !payload.is_empty() {
        return Err(FrameError::Connection(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS ACK with payload",
        ));
    }
    if payload.len() % 6 != 0 {
        return Err(FrameError::Connection(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS length not a multiple of 6",
        ));
    }
    Ok(payload.chunks_exact(6).map(|c| Setting {
        id: SettingId::from_u16(u16::from_be_bytes([c[0], c[1]])),
        value: u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
    }))
}

/// Appends a SETTINGS frame carrying `settings` to `out`.
pub fn encode(out: &mut Vec<u8>, settings: &[Setting]) {
    FrameHead {
        length: (settings.len() * 6) as u32,
        kind: FrameKind::Settings,
        flags: 0,
        stream: 0,
    }
    .encode(out);
    for s in settings {
        out.extend_from_slice(&s.id.as_u16().to_be_bytes());
        out.extend_from_slice(&s.value.to_be_bytes());
    }
}

/// Appends a SETTINGS ACK (§6.5.3) to `out`.
pub fn encode_ack(out: &mut Vec<u8>) {
    FrameHead {
        length: 0,
        kind: FrameKind::Settings,
        flags: flags::ACK,
        stream: 0,
    }
    .encode(out);
}
