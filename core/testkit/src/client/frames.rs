//! Raw frame builders for malformed-input tests, built from the core's own frame writers,
//! and small gRPC framing helpers.

use alloc::string::String;
use alloc::vec::Vec;

use kms_plugin_core::h2::frame::{self, FrameHead, FrameKind, HEAD_LEN};
use kms_plugin_core::h2::reason::Reason;
use kms_plugin_core::h2::settings;

/// Appends a raw frame (any type, flags, stream and payload) — for malformed-input tests.
pub fn raw_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + payload.len());
    frame::write_frame(&mut out, FrameKind::from_u8(kind), flags, stream, payload);
    out
}

/// A frame head alone, declaring `len` payload octets (the payload is not included).
pub fn raw_head(len: u32, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN);
    FrameHead {
        len,
        kind: FrameKind::from_u8(kind),
        flags,
        stream,
    }
    .write(&mut out);
    out
}

/// A SETTINGS frame with these entries.
pub fn settings_frame(entries: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    settings::write_settings(&mut out, entries);
    out
}

/// A WINDOW_UPDATE frame.
pub fn window_update_frame(stream: u32, increment: u32) -> Vec<u8> {
    raw_frame(0x8, 0, stream, &increment.to_be_bytes())
}

/// An RST_STREAM frame.
pub fn rst_stream_frame(stream: u32, code: u32) -> Vec<u8> {
    raw_frame(0x3, 0, stream, &code.to_be_bytes())
}

/// A PING frame (not an ACK).
pub fn ping_frame(opaque: [u8; 8]) -> Vec<u8> {
    raw_frame(0x6, 0, 0, &opaque)
}

/// A GOAWAY frame.
pub fn goaway_frame(last_stream: u32, code: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8);
    payload.extend_from_slice(&last_stream.to_be_bytes());
    payload.extend_from_slice(&code.to_be_bytes());
    raw_frame(0x7, 0, 0, &payload)
}

/// A gRPC Length-Prefixed-Message: flag 0, 4-octet big-endian length, the message.
pub fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Adds PADDED framing (pad length octet + `pad` zero octets) to a payload.
pub fn pad_payload(payload: &[u8], pad: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + payload.len() + usize::from(pad));
    out.push(pad);
    out.extend_from_slice(payload);
    out.resize(out.len() + usize::from(pad), 0);
    out
}

/// gRPC `grpc-message` percent-decoding (gRPC PROTOCOL-HTTP2 "Responses").
pub fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
    while let Some(&b) = v.get(i) {
        if let (b'%', Some(h), Some(l)) = (b, hex(v.get(i + 1)), hex(v.get(i + 2))) {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name of an HTTP/2 error code, for assertion messages.
pub fn reason_name(code: u32) -> &'static str {
    Reason(code).name()
}
