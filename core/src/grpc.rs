//! gRPC over HTTP/2 framing for unary calls (gRPC `doc/PROTOCOL-HTTP2.md`).
//!
//! Pure helpers: the 5-byte Length-Prefixed-Message prefix, `grpc-timeout` parsing,
//! `content-type` classification and `grpc-message` percent-encoding. The connection uses them
//! to validate requests and build responses.

use alloc::vec::Vec;
use core::time::Duration;

/// Length of the Length-Prefixed-Message prefix: Compressed-Flag (1) + Message-Length (4).
pub const PREFIX_LEN: usize = 5;

/// A parsed Length-Prefixed-Message prefix (PROTOCOL-HTTP2 "Requests": Length-Prefixed-Message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessagePrefix {
    /// Compressed-Flag: 1 = compressed with the `grpc-encoding` algorithm.
    pub compressed: bool,
    /// Message-Length.
    pub length: u32,
}

/// Why a prefix is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// The flag octet is neither 0 nor 1 (the spec defines only these values).
    BadFlag,
}

/// Parses a 5-byte prefix.
pub fn parse_prefix(prefix: [u8; PREFIX_LEN]) -> Result<MessagePrefix, PrefixError> {
    let [flag, a, b, c, d] = prefix;
    let compressed = match flag {
        0 => false,
        1 => true,
        _ => return Err(PrefixError::BadFlag),
    };
    Ok(MessagePrefix {
        compressed,
        length: u32::from_be_bytes([a, b, c, d]),
    })
}

/// The prefix of an uncompressed message of `len` bytes.
pub fn encode_prefix(len: u32) -> [u8; PREFIX_LEN] {
    let l = len.to_be_bytes();
    [0, l[0], l[1], l[2], l[3]]
}

/// Whether `content-type` names gRPC: `application/grpc`, or that followed by `+` or `;`
/// (PROTOCOL-HTTP2 "Content-Type"). Anything else is answered with HTTP 415.
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    match value.strip_prefix(b"application/grpc") {
        Some(rest) => rest.is_empty() || rest.starts_with(b"+") || rest.starts_with(b";"),
        None => false,
    }
}

/// Parses `grpc-timeout` (PROTOCOL-HTTP2: `Timeout → TimeoutValue TimeoutUnit`, TimeoutValue
/// = 1 to 8 ASCII digits, TimeoutUnit one of `H M S m u n`). `None` if it does not match the
/// grammar; the connection answers that with INTERNAL (as grpc-go does for a malformed
/// `grpc-timeout`).
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

/// Percent-encodes `grpc-message` (PROTOCOL-HTTP2 "Responses": bytes outside 0x20..=0x7E, and
/// `%` itself, become `%XX` with uppercase hex), appending to `out`.
pub fn percent_encode(message: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in message {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// Decodes a percent-encoded `grpc-message`; malformed escapes are kept verbatim (the spec asks
/// receivers not to fail on them).
pub fn percent_decode(value: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                value.get(i + 1).and_then(|&x| hex(x)),
                value.get(i + 2).and_then(|&x| hex(x)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_timeout(b"99999999m"),
            Some(Duration::from_millis(99_999_999))
        );
        assert_eq!(parse_timeout(b"5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"1s",
            b"-1S",
            b"1 S",
            b"1.5S",
            b"10",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percent() {
        let mut out = Vec::new();
        percent_encode("a%b\n\u{e9}~ ".as_bytes(), &mut out);
        assert_eq!(out, b"a%25b%0A%C3%A9~ ");
        assert_eq!(percent_decode(&out), "a%b\n\u{e9}~ ".as_bytes());
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    }

    #[test]
    fn content_types() {
        assert!(is_grpc_content_type(b"application/grpc"));
        assert!(is_grpc_content_type(b"application/grpc+proto"));
        assert!(is_grpc_content_type(b"application/grpc;charset=utf-8"));
        assert!(!is_grpc_content_type(b"application/grpcx"));
        assert!(!is_grpc_content_type(b"application/json"));
    }
}
