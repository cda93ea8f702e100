//! SETTINGS (RFC 9113 §6.5): the peer's values and the encoding of ours.

use alloc::vec::Vec;

use super::frame::{self, FrameKind, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_MAX_FRAME_SIZE};
use super::reason::Reason;

/// Setting identifiers (RFC 9113 §6.5.2).
pub mod id {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The peer's settings that affect what we send (defaults from RFC 9113 §6.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    /// The HPACK table size the peer's decoder allows.
    pub header_table_size: u32,
    /// Initial send window of every stream.
    pub initial_window_size: u32,
    /// The largest frame payload we may send.
    pub max_frame_size: u32,
    /// The header list size the peer accepts (advisory).
    pub max_header_list_size: u32,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            header_table_size: 4096,
            initial_window_size: frame::DEFAULT_WINDOW,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            max_header_list_size: u32::MAX,
        }
    }
}

impl PeerSettings {
    /// Applies a SETTINGS payload (§6.5): a length not a multiple of 6 is FRAME_SIZE_ERROR,
    /// ENABLE_PUSH other than 0/1 and MAX_FRAME_SIZE out of range are PROTOCOL_ERROR,
    /// INITIAL_WINDOW_SIZE above 2^31-1 is FLOW_CONTROL_ERROR (§6.5.2); unknown identifiers
    /// are ignored (§6.5.2). Settings are applied in order.
    pub fn apply(&mut self, payload: &[u8]) -> Result<(), Reason> {
        if payload.len() % 6 != 0 {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        for entry in payload.chunks_exact(6) {
            let ident = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match ident {
                id::HEADER_TABLE_SIZE => self.header_table_size = value,
                id::ENABLE_PUSH if value > 1 => return Err(Reason::PROTOCOL_ERROR),
                id::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => {
                    return Err(Reason::FLOW_CONTROL_ERROR);
                }
                id::INITIAL_WINDOW_SIZE => self.initial_window_size = value,
                id::MAX_FRAME_SIZE
                    if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
                {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                id::MAX_FRAME_SIZE => self.max_frame_size = value,
                id::MAX_HEADER_LIST_SIZE => self.max_header_list_size = value,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Appends a SETTINGS frame carrying `(identifier, value)` pairs.
pub fn write_settings(out: &mut Vec<u8>, entries: &[(u16, u32)]) {
    frame::write_head(out, entries.len() * 6, FrameKind::Settings, 0, 0);
    for (ident, value) in entries {
        out.extend_from_slice(&ident.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}
