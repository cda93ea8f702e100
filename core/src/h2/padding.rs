//! Padding and priority fields of DATA and HEADERS frames (RFC 9113 §6.1, §6.2).

use super::{FrameError, FrameHead, Reason, flags};

/// Strips the Pad Length octet and padding when PADDED is set.
///
/// §6.1/§6.2: padding length greater than or equal to the remaining payload is a connection
/// PROTOCOL_ERROR.
pub fn strip_padding<'a>(head: &FrameHead, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    if !head.has(flags::PADDED) {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "PADDED frame without pad length",
        ));
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(FrameError::Connection(
            Reason::PROTOCOL_ERROR,
            "padding exceeds payload",
        ));
    }
    rest.get(..rest.len() - pad).ok_or(FrameError::Connection(
        Reason::PROTOCOL_ERROR,
        "padding exceeds payload",
    ))
}

/// The header block fragment of a HEADERS frame: padding and the 5-octet priority fields
/// (§6.2, PRIORITY flag; accepted and ignored per §5.3.2) removed.
///
/// A HEADERS frame that depends on its own stream is a stream PROTOCOL_ERROR (§5.3.1), but we
/// still return the fragment so the HPACK state stays in sync; the caller checks
/// [`self_dependent`].
pub fn headers_fragment<'a>(head: &FrameHead, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    let body = strip_padding(head, payload)?;
    if head.has(flags::PRIORITY) {
        return body.get(5..).ok_or(FrameError::Connection(
            Reason::FRAME_SIZE_ERROR,
            "HEADERS too short for priority",
        ));
    }
    Ok(body)
}

/// Whether a HEADERS frame with PRIORITY names its own stream as dependency (§5.3.1).
pub fn self_dependent(head: &FrameHead, payload: &[u8]) -> bool {
    if !head.has(flags::PRIORITY) {
        return false;
    }
    let offset = usize::from(head.has(flags::PADDED));
    payload
        .get(offset..offset + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .is_some_and(|b| u32::from_be_bytes(b) & 0x7fff_ffff == head.stream)
}
