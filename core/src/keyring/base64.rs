//! Strict, constant-time standard Base64 (RFC 4648 §4, with `=` padding) for key material.
//!
//! Keys are decoded and encoded without secret-dependent table lookups or branches (the
//! technique of the `base64ct` crate, written out here for the one alphabet we need). Decoding
//! is canonical: the length must be a multiple of 4, padding appears only at the end, and the
//! unused bits of the last symbol must be zero, so every byte string has exactly one accepted
//! text form.

use alloc::vec::Vec;
use zeroize::Zeroizing;

/// Maps one Base64 symbol to its 6-bit value, or to a negative number if it is not in the
/// standard alphabet. Branch-free in the symbol.
fn decode_symbol(symbol: u8) -> i16 {
    let s = i16::from(symbol);
    let mut value: i16 = -1;
    // 'A'..='Z' (0x41..=0x5a) -> 0..=25: add s - 0x41 + 1.
    value += (((0x40 - s) & (s - 0x5b)) >> 8) & (s - 64);
    // 'a'..='z' (0x61..=0x7a) -> 26..=51: add s - 0x61 + 26 + 1.
    value += (((0x60 - s) & (s - 0x7b)) >> 8) & (s - 70);
    // '0'..='9' (0x30..=0x39) -> 52..=61: add s - 0x30 + 52 + 1.
    value += (((0x2f - s) & (s - 0x3a)) >> 8) & (s + 5);
    // '+' (0x2b) -> 62.
    value += (((0x2a - s) & (s - 0x2c)) >> 8) & 0x3f;
    // '/' (0x2f) -> 63.
    value += (((0x2e - s) & (s - 0x30)) >> 8) & 0x40;
    value
}

/// Maps a 6-bit value (0..=63) to its Base64 symbol. Branch-free in the value.
fn encode_symbol(value: u8) -> u8 {
    let v = i16::from(value);
    let mut diff: i16 = 0x41; // 'A'
    diff += ((25 - v) >> 8) & 0x06; // 26.. -> 'a' (0x61 = 26 + 0x41 + 6)
    diff -= ((51 - v) >> 8) & 0x4b; // 52.. -> '0' (0x30 = 52 + 0x47 - 75)
    diff -= ((61 - v) >> 8) & 0x0f; // 62 -> '+' (0x2b = 62 - 4 - 15)
    diff += ((62 - v) >> 8) & 0x03; // 63 -> '/' (0x2f = 63 - 19 + 3)
    // v + diff is in 0x2b..=0x7a: the low byte is the whole value.
    let [low, _] = (v + diff).to_le_bytes();
    low
}

/// Encodes `bytes` as padded standard Base64, appending to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        out.push(encode_symbol(b0 >> 2));
        out.push(encode_symbol(((b0 & 0x03) << 4) | (b1 >> 4)));
        if chunk.len() > 1 {
            out.push(encode_symbol(((b1 & 0x0f) << 2) | (b2 >> 6)));
        } else {
            out.push(b'=');
        }
        if chunk.len() > 2 {
            out.push(encode_symbol(b2 & 0x3f));
        } else {
            out.push(b'=');
        }
    }
}

/// Decodes padded standard Base64; `None` for anything non-canonical.
///
/// The result is zeroizing because it is key material. Timing depends only on the length and
/// the padding, never on the symbols' values.
pub(crate) fn decode(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let padding = match text {
        [.., b'=', b'='] => 2,
        [.., b'='] => 1,
        _ => 0,
    };
    let body = text.get(..text.len() - padding)?;
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
    let mut invalid: i16 = 0;
    for chunk in body.chunks(4) {
        let c0 = decode_symbol(chunk.first().copied().unwrap_or(b'A'));
        let c1 = decode_symbol(chunk.get(1).copied().unwrap_or(b'A'));
        let c2 = decode_symbol(chunk.get(2).copied().unwrap_or(b'A'));
        let c3 = decode_symbol(chunk.get(3).copied().unwrap_or(b'A'));
        invalid |= c0 | c1 | c2 | c3;
        let bits =
            (i32::from(c0) << 18) | (i32::from(c1) << 12) | (i32::from(c2) << 6) | i32::from(c3);
        let [_, b0, b1, b2] = bits.to_be_bytes();
        let bytes = [b0, b1, b2];
        match chunk.len() {
            4 => out.extend_from_slice(&bytes),
            3 => {
                // Two bytes; the last symbol's low 2 bits must be zero (canonical).
                invalid |= -i16::from(bytes[2] != 0);
                out.extend_from_slice(&bytes[..2]);
            }
            2 => {
                // One byte; the second symbol's low 4 bits must be zero (canonical).
                invalid |= -i16::from(bytes[1] != 0 || bytes[2] != 0);
                out.extend_from_slice(&bytes[..1]);
            }
            _ => return None,
        }
    }
    // A full 4-symbol group must precede no padding; `body.chunks(4)` yields a short chunk
    // exactly when padding was present, so `padding` and the last chunk agree by construction.
    if invalid < 0 { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::{decode, decode_symbol, encode_into, encode_symbol};
    use alloc::vec::Vec;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    #[test]
    fn symbol_maps_are_exact_for_every_input() {
        for byte in 0..=255u8 {
            let expected = ALPHABET.iter().position(|c| *c == byte);
            let got = decode_symbol(byte);
            match expected {
                Some(value) => assert_eq!(Ok(got), i16::try_from(value), "{byte:#x}"),
                None => assert!(got < 0, "{byte:#x} -> {got}"),
            }
        }
        for value in 0..64u8 {
            assert_eq!(encode_symbol(value), ALPHABET[value as usize]);
        }
    }

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 §10.
        let vectors: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foob", b"Zm9vYg=="),
            (b"fooba", b"Zm9vYmE="),
            (b"foobar", b"Zm9vYmFy"),
        ];
        for (plain, text) in vectors {
            let mut out = Vec::new();
            encode_into(plain, &mut out);
            assert_eq!(out, text);
            assert_eq!(decode(text).as_deref().map(Vec::as_slice), Some(plain));
        }
    }

    #[test]
    fn rejects_non_canonical_and_malformed() {
        for bad in [
            &b"Zg="[..],
            b"Zg",
            b"Zh==",
            b"Zm9=",
            b"Zm8=Zm8=",
            b"=Zm8",
            b"Z===",
            b"====",
            b"Zm9v\n",
            b"Zm-v",
            b"Zm_v",
            b"Zm9v ",
        ] {
            assert!(decode(bad).is_none(), "{:?}", core::str::from_utf8(bad));
        }
    }
}
