//! The HPACK encoder for our response headers and trailers (RFC 7541 §6): static table only.

use alloc::vec::Vec;

use super::table::STATIC_TABLE;
use super::{encode_integer, huffman};

/// Encodes header fields without ever adding to the peer's dynamic table.
///
/// Each field is, in order of preference: an indexed field when (name, value) is in the
/// static table (§6.1, e.g. `:status: 200` is `0x88`); a literal without indexing with a
/// static name index (§6.2.2); a literal without indexing with a literal name. Sensitive
/// fields are never-indexed literals (§6.2.3, §7.1.3). Since nothing is ever inserted, the
/// peer's SETTINGS_HEADER_TABLE_SIZE never constrains the encoding; see
/// [`Encoder::set_peer_max_table_size`] for the one signal a strict peer expects.
///
/// Names are written as given: the caller passes lowercase names (RFC 9113 §8.2.1).
#[derive(Debug, Default)]
pub struct Encoder {
    /// Huffman-encode a string when that is shorter (§5.2).
    use_huffman: bool,
    /// The table size the peer believes we use: starts at 4096 (RFC 9113 §6.5.2) and becomes
    /// 0 once we signal it (then no later setting can fall below it).
    signaled_size: Option<usize>,
    /// A size update to 0 is owed at the start of the next header block (§4.2).
    update_pending: bool,
}

impl Encoder {
    /// An encoder that writes string literals raw (no Huffman).
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder that Huffman-encodes a string literal whenever that is shorter (§5.2).
    pub fn with_huffman() -> Self {
        Self {
            use_huffman: true,
            ..Self::default()
        }
    }

    /// Records a SETTINGS_HEADER_TABLE_SIZE received from the peer (call it when the SETTINGS
    /// frame is processed, between header blocks).
    ///
    /// We never use the dynamic table, but RFC 7541 §4.2 says a reduced maximum must be
    /// acknowledged by a dynamic table size update at the start of the next block, and strict
    /// decoders (nghttp2) enforce it. If `max` is below the size the peer assumes (4096 at
    /// first), the next [`Encoder::encode_field`] call first writes a size update to 0, after
    /// which no later setting needs another.
    pub fn set_peer_max_table_size(&mut self, max: usize) {
        let assumed = self.signaled_size.unwrap_or(super::DEFAULT_TABLE_SIZE);
        if max < assumed {
            self.update_pending = true;
        }
    }

    /// Appends one field to `out`. `sensitive` fields (credentials, for example) become
    /// never-indexed literals (§6.2.3) so intermediaries never index them either.
    ///
    /// Call it for every field of a block in order; the first call after
    /// [`Encoder::set_peer_max_table_size`] lowered the peer's limit starts the block with a
    /// size update.
    pub fn encode_field(&mut self, name: &[u8], value: &[u8], sensitive: bool, out: &mut Vec<u8>) {
        if self.update_pending {
            // §6.3 Dynamic Table Size Update to 0: 001xxxxx with a 5-bit prefix.
            encode_integer(0, 5, 0x20, out);
            self.update_pending = false;
            self.signaled_size = Some(0);
        }
        let mut name_index = 0;
        for (i, &(n, v)) in STATIC_TABLE.iter().enumerate() {
            if n == name {
                if v == value && !sensitive {
                    // §6.1 Indexed Header Field: 1xxxxxxx, 7-bit index.
                    encode_integer(i + 1, 7, 0x80, out);
                    return;
                }
                if name_index == 0 {
                    name_index = i + 1;
                }
            }
        }
        // §6.2.2 without indexing 0000xxxx, §6.2.3 never indexed 0001xxxx; 4-bit name index.
        let flags = if sensitive { 0x10 } else { 0x00 };
        encode_integer(name_index, 4, flags, out);
        if name_index == 0 {
            self.encode_string(name, out);
        }
        self.encode_string(value, out);
    }

    /// Appends a string literal (§5.2): Huffman when enabled and shorter, raw otherwise.
    pub fn encode_string(&self, s: &[u8], out: &mut Vec<u8>) {
        if self.use_huffman {
            let huffman_len = huffman::encoded_len(s);
            if huffman_len < s.len() {
                encode_integer(huffman_len, 7, 0x80, out);
                huffman::encode(s, out);
                return;
            }
        }
        encode_integer(s.len(), 7, 0x00, out);
        out.extend_from_slice(s);
    }
}
