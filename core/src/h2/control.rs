//! Control frames: PRIORITY (§6.3), RST_STREAM (§6.4), PING (§6.7), GOAWAY (§6.8) and
//! WINDOW_UPDATE (§6.9). Parsers check length and stream rules; encoders append to `out`.

use alloc::vec::Vec;

use super::{FrameError, FrameHead, FrameKind, Reason, flags};

fn be32(payload: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = payload.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Checks a PRIORITY frame (§6.3): stream 0 is a connection PROTOCOL_ERROR; a length other than
/// 5 is a stream FRAME_SIZE_ERROR; a self-dependency is a stream PROTOCOL_ERROR (§5.3.1).
/// Otherwise the frame is ignored.
pub fn check_priority(head: &FrameHead, payload: &[u8]) -> Result<(), FrameError> {
    if head.stream == 0 {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "PRIORITY on stream 0",
        ));
    }
    if payload.len() != 5 {
        return Err(FrameError::Stream(
            Reason::FRAME_SIZE_ERROR,
            "PRIORITY length not 5",
        ));
    }
    if be32(payload, 0).is_some_and(|d| d & 0x7fff_ffff == head.stream) {
        return Err(FrameError::Stream(
            Reason::PROTOCOL_ERROR,
            "stream depends on itself",
        ));
    }
    Ok(())
}

/// Parses RST_STREAM (§6.4): stream 0 is PROTOCOL_ERROR, length other than 4 FRAME_SIZE_ERROR
/// (both connection errors).
pub fn parse_rst_stream(head: &FrameHead, payload: &[u8]) -> Result<Reason, FrameError> {
    if head.stream == 0 {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "RST_STREAM on stream 0",
        ));
    }
    match (payload.len(), be32(payload, 0)) {
        (4, Some(code)) => Ok(Reason(code)),
        _ => Err(FrameError::Connection(
            Reason::FRAME_SIZE_ERROR,
            "RST_STREAM length not 4",
        )),
    }
}

/// Parses PING (§6.7): stream other than 0 is PROTOCOL_ERROR, length other than 8
/// FRAME_SIZE_ERROR (connection errors). Returns the opaque data.
pub fn parse_ping(head: &FrameHead, payload: &[u8]) -> Result<[u8; 8], FrameError> {
    if head.stream != 0 {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "PING on a stream",
        ));
    }
    <[u8; 8]>::try_from(payload)
        .map_err(|_| FrameError::Connection(Reason::FRAME_SIZE_ERROR, "PING length not 8"))
}

/// Parses GOAWAY (§6.8): stream other than 0 is PROTOCOL_ERROR, fewer than 8 octets
/// FRAME_SIZE_ERROR. Returns (last stream id, error code); debug data is ignored.
pub fn parse_goaway(head: &FrameHead, payload: &[u8]) -> Result<(u32, Reason), FrameError> {
    if head.stream != 0 {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "GOAWAY on a stream",
        ));
    }
    match (be32(payload, 0), be32(payload, 4)) {
        (Some(last), Some(code)) => Ok((last & 0x7fff_ffff, Reason(code))),
        _ => Err(FrameError::Connection(
            Reason::FRAME_SIZE_ERROR,
            "GOAWAY shorter than 8",
        )),
    }
}

/// Parses WINDOW_UPDATE (§6.9): length other than 4 is a connection FRAME_SIZE_ERROR; an
/// increment of 0 is PROTOCOL_ERROR (stream error on a stream, connection error on stream 0).
pub fn parse_window_update(head: &FrameHead, payload: &[u8]) -> Result<u32, FrameError> {
    let Some(raw) = be32(payload, 0).filter(|_| payload.len() == 4) else {
        return Err(FrameError::Connection(
            Reason::FRAME_SIZE_ERROR,
            "WINDOW_UPDATE length not 4",
        ));
    };
    let increment = raw & 0x7fff_ffff;
    if increment == 0 {
        return Err(if head.stream == 0 {
            FrameError::Connection(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE increment 0")
        } else {
            FrameError::Stream(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE increment 0")
        });
    }
    Ok(increment)
}

fn head(out: &mut Vec<u8>, length: u32, kind: FrameKind, flags: u8, stream: u32) {
    FrameHead {
        length,
        kind,
        flags,
        stream,
    }
    .encode(out);
}

/// Appends RST_STREAM(`reason`) for `stream`.
pub fn encode_rst_stream(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    head(out, 4, FrameKind::RstStream, 0, stream);
    out.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends a PING; `ack` sets the ACK flag (§6.7: the reply echoes the data).
pub fn encode_ping(out: &mut Vec<u8>, data: [u8; 8], ack: bool) {
    head(out, 8, FrameKind::Ping, if ack { flags::ACK } else { 0 }, 0);
    out.extend_from_slice(&data);
}

/// Appends GOAWAY(`last_stream`, `reason`) without debug data.
pub fn encode_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    head(out, 8, FrameKind::GoAway, 0, 0);
    out.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends WINDOW_UPDATE(`increment`) for `stream` (0 = connection).
pub fn encode_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    head(out, 4, FrameKind::WindowUpdate, 0, stream);
    out.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}
