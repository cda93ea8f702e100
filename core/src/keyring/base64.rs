//! Strict, constant-time standard Base64 (RFC 4648 §4, with `=` padding) for key material,
//! through the `base64ct` crate (RustCrypto).
//!
//! Keys are decoded and encoded without secret-dependent table lookups or branches. Decoding
//! is canonical: the length must be a multiple of 4, padding appears only at the end, and the
//! unused bits of the last symbol must be zero, so every byte string has exactly one accepted
//! text form (the tests below pin that down).

use alloc::vec;
use alloc::vec::Vec;
use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

/// Encodes `bytes` as padded standard Base64, appending to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + Base64::encoded_len(bytes), 0);
    if let Some(dst) = out.get_mut(start..) {
        // `encoded_len` is exactly the space `encode` needs: it cannot fail.
        let _ = Base64::encode(bytes, dst);
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
    let mut out = Zeroizing::new(vec![0u8; text.len() / 4 * 3]);
    let len = Base64::decode(text, &mut out).ok()?.len();
    out.truncate(len);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{decode, encode_into};
    use alloc::vec::Vec;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    #[test]
    fn every_symbol_and_length_round_trips() {
        // Every byte value in every position of a 1..=3-byte tail, plus a full key.
        for len in 0..=34usize {
            for fill in [0u8, 0x3f, 0x80, 0xfb, 0xff] {
                let plain: Vec<u8> = (0..len)
                    .map(|i| fill ^ (i as u8).wrapping_mul(37))
                    .collect();
                let mut text = Vec::new();
                encode_into(&plain, &mut text);
                assert!(text.iter().all(|c| ALPHABET.contains(c) || *c == b'='));
                assert_eq!(
                    decode(&text).as_deref().map(Vec::as_slice),
                    Some(&plain[..])
                );
            }
        }
        // Appending keeps what was there.
        let mut out = b"key: ".to_vec();
        encode_into(b"foo", &mut out);
        assert_eq!(out, b"key: Zm9v");
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
