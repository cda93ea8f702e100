//! HPACK header compression (RFC 7541): a complete decoder and a minimal, table-free encoder.
//!
//! - [`Decoder`] decodes header blocks from the peer: static and dynamic table with eviction,
//!   dynamic table size updates, Huffman strings, all three literal kinds. Every malformed
//!   block is an [`HpackError`]; the caller turns it into a connection error of type
//!   COMPRESSION_ERROR (RFC 9113 §4.3).
//! - [`Encoder`] writes our response headers and trailers using only the static table (so the
//!   peer's dynamic table stays empty and its SETTINGS_HEADER_TABLE_SIZE never constrains us).
//! - [`encode_integer`] / [`decode_integer`] are the prefix-integer primitives (§5.1).
//!
//! ```
//! use kms_plugin_core::hpack::{Decoder, Encoder};
//!
//! // Our response headers: `:status: 200` is static index 8, so it encodes as 0x88.
//! let mut block = Vec::new();
//! let mut encoder = Encoder::new();
//! encoder.encode_field(b":status", b"200", false, &mut block);
//! encoder.encode_field(b"content-type", b"application/grpc", false, &mut block);
//! assert_eq!(block[0], 0x88);
//!
//! // One decoder per connection; each complete header block is decoded in one call.
//! let mut decoder = Decoder::new(4096);
//! let mut fields = Vec::new();
//! decoder.decode(&block, &mut |name, value, _never_indexed| {
//!     fields.push((name.to_vec(), value.to_vec()));
//! })?;
//! assert_eq!(fields[1], (b"content-type".to_vec(), b"application/grpc".to_vec()));
//! # Ok::<(), kms_plugin_core::hpack::HpackError>(())
//! ```

pub mod decoder;
pub mod encoder;
pub mod huffman;
pub mod table;

use alloc::vec::Vec;
use core::fmt;

pub use decoder::Decoder;
pub use encoder::Encoder;

/// The SETTINGS_HEADER_TABLE_SIZE every HTTP/2 endpoint starts with (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The largest integer a peer may encode (§5.1 leaves the limit to implementations). Every
/// length and index we accept fits in 32 bits; anything larger is [`HpackError::IntegerOverflow`].
pub const MAX_INTEGER: usize = u32::MAX as usize;

/// At most this many continuation octets follow an integer's prefix (5 × 7 bits cover
/// [`MAX_INTEGER`]); more, even zero-valued padding ones, is [`HpackError::IntegerOverflow`].
pub const MAX_INTEGER_CONTINUATIONS: usize = 5;

/// Why a header block could not be decoded. Any of these is a connection error of type
/// COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// An integer exceeds [`MAX_INTEGER`] or uses more than [`MAX_INTEGER_CONTINUATIONS`]
    /// continuation octets (§5.1).
    IntegerOverflow,
    /// The block ends inside a representation: in an integer, or before a string literal the
    /// representation requires (§5.1, §5.2, §6).
    Truncated,
    /// A string literal declares more octets than remain in the block (§5.2).
    StringTooLong,
    /// A Huffman string contains EOS, or its padding is longer than 7 bits or not all ones
    /// (§5.2).
    InvalidHuffman,
    /// An indexed representation or name reference uses index 0 (§6.1).
    ZeroIndex,
    /// An index beyond the static plus dynamic table (§2.3.3).
    InvalidIndex,
    /// A dynamic table size update above the SETTINGS_HEADER_TABLE_SIZE we advertised (§6.3).
    SizeUpdateTooLarge,
    /// A dynamic table size update after the first field representation of a block (§4.2).
    SizeUpdateNotAtStart,
    /// We lowered our SETTINGS_HEADER_TABLE_SIZE below the table's current size and the next
    /// block did not start with a size update to at most the lowest value (§4.2).
    SizeUpdateMissing,
}

impl HpackError {
    /// What went wrong, in a few words (no header content: safe for logs and events).
    pub const fn description(self) -> &'static str {
        match self {
            Self::IntegerOverflow => "HPACK integer overflow",
            Self::Truncated => "HPACK header block truncated",
            Self::StringTooLong => "HPACK string literal longer than the header block",
            Self::InvalidHuffman => "invalid HPACK Huffman string (EOS or bad padding)",
            Self::ZeroIndex => "HPACK index 0",
            Self::InvalidIndex => "HPACK index beyond the header tables",
            Self::SizeUpdateTooLarge => "HPACK dynamic table size update above our limit",
            Self::SizeUpdateNotAtStart => "HPACK dynamic table size update after a field",
            Self::SizeUpdateMissing => "HPACK dynamic table size update missing",
        }
    }
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Appends `value` as an HPACK integer with an N-bit prefix (§5.1).
///
/// `prefix_bits` is N (1..=8, clamped); `first_byte_flags` supplies the bits above the
/// prefix in the first octet (e.g. `0x80` for an indexed field) and must have its low N bits
/// clear.
pub fn encode_integer(value: usize, prefix_bits: u8, first_byte_flags: u8, out: &mut Vec<u8>) {
    let max_prefix = prefix_max(prefix_bits);
    if value < max_prefix {
        out.push(first_byte_flags | value as u8);
        return;
    }
    out.push(first_byte_flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Decodes an HPACK integer with an N-bit prefix from the start of `input` (§5.1), ignoring
/// the bits above the prefix in the first octet.
///
/// Returns the value and the number of octets it used. Errors with
/// [`HpackError::Truncated`] if `input` ends inside the integer, and with
/// [`HpackError::IntegerOverflow`] above [`MAX_INTEGER`] or after more than
/// [`MAX_INTEGER_CONTINUATIONS`] continuation octets. `prefix_bits` is clamped to 1..=8.
pub fn decode_integer(input: &[u8], prefix_bits: u8) -> Result<(usize, usize), HpackError> {
    let max_prefix = prefix_max(prefix_bits);
    let (&first, rest) = input.split_first().ok_or(HpackError::Truncated)?;
    let prefix = usize::from(first) & max_prefix;
    if prefix < max_prefix {
        return Ok((prefix, 1));
    }
    let mut value = prefix as u64;
    for (i, &byte) in rest.iter().enumerate() {
        if i >= MAX_INTEGER_CONTINUATIONS {
            return Err(HpackError::IntegerOverflow);
        }
        value += u64::from(byte & 0x7f) << (7 * i);
        if value > MAX_INTEGER as u64 {
            return Err(HpackError::IntegerOverflow);
        }
        if byte & 0x80 == 0 {
            return Ok((value as usize, i + 2));
        }
    }
    Err(HpackError::Truncated)
}

/// `2^N - 1` for an N-bit prefix, N clamped to 1..=8.
fn prefix_max(prefix_bits: u8) -> usize {
    (1usize << prefix_bits.clamp(1, 8)) - 1
}
