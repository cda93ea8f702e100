//! gRPC over HTTP/2 details (gRPC `doc/PROTOCOL-HTTP2.md`): the 5-byte message prefix,
//! `grpc-timeout`, `content-type` and the percent-encoding of `grpc-message`.

use alloc::string::String;
use core::time::Duration;

/// Length of the Length-Prefixed-Message prefix: compressed flag (1) + length (4, big endian).
pub const PREFIX_LEN: usize = 5;

/// Parses a `grpc-timeout` value: `TimeoutValue TimeoutUnit`, where TimeoutValue is 1 to 8
/// ASCII digits and TimeoutUnit one of `H M S m u n` (PROTOCOL-HTTP2 "Requests"). `None` for
/// anything else.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Whether `content-type` names gRPC: `application/grpc` optionally followed by `+format`
/// or `;params` (PROTOCOL-HTTP2 "Content-Type"). Case-insensitive on the media type.
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    const BASE: &[u8] = b"application/grpc";
    if value.len() < BASE.len() || !value[..BASE.len()].eq_ignore_ascii_case(BASE) {
        return false;
    }
    matches!(value.get(BASE.len()), None | Some(b'+' | b';'))
}

/// Percent-encodes a `grpc-message` (PROTOCOL-HTTP2 "Responses": bytes outside 0x20..=0x7E,
/// and `%` itself, are sent as `%XX`).
pub fn percent_encode(message: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}
