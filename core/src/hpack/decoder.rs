//! The HPACK decoder (RFC 7541 §3, §6): one per connection, for the peer's header blocks.

use alloc::vec::Vec;
use core::fmt;

use super::table::{DynamicTable, STATIC_LEN, STATIC_TABLE};
use super::{HpackError, decode_integer, huffman};

/// The callback [`Decoder::decode`] calls per field: `(name, value, never_indexed)`, where
/// `never_indexed` marks a never-indexed literal (§6.2.3) that must stay never-indexed if
/// forwarded.
pub type FieldSink<'a> = dyn FnMut(&[u8], &[u8], bool) + 'a;

/// Decodes the header blocks of one HPACK context (one connection, peer to us).
///
/// Memory is bounded: the dynamic table holds at most the advertised table size (its byte
/// buffer less than twice that in use, see [`DynamicTable`]), and the scratch buffer for one field holds at most 8/5
/// of the block's length (a raw string is no longer than the block, a Huffman one at most
/// 8/5 of its encoding). Buffers are reused, so steady-state decoding allocates nothing.
/// Time is linear in the block's length (plus the callback's work).
pub struct Decoder {
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE we advertise: the limit for size updates (§6.3).
    max_table_size: usize,
    /// Set when our limit dropped below the table's capacity: the lowest limit since the last
    /// block, which the next block's size updates must reach (§4.2).
    required_update: Option<usize>,
    /// One field's name followed by its value, for literal representations.
    scratch: Vec<u8>,
    /// The first error; once set, every later `decode` returns it (the context is lost).
    failed: Option<HpackError>,
}

impl Decoder {
    /// A decoder whose size-update limit and initial dynamic table size are both
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE we advertise
    /// ([`DEFAULT_TABLE_SIZE`](super::DEFAULT_TABLE_SIZE) unless we send another value).
    pub fn new(max_table_size: usize) -> Self {
        Self {
            table: DynamicTable::new(max_table_size),
            max_table_size,
            required_update: None,
            scratch: Vec::new(),
            failed: None,
        }
    }

    /// Changes the limit for dynamic table size updates, once a new
    /// SETTINGS_HEADER_TABLE_SIZE we sent has been acknowledged.
    ///
    /// The table itself changes only when the peer sends a size update. If `max` is below the
    /// table's current size, the next header block must start with a size update to at most
    /// the lowest limit set since the previous block, or it fails with
    /// [`HpackError::SizeUpdateMissing`] (§4.2).
    pub fn set_max_table_size(&mut self, max: usize) {
        self.max_table_size = max;
        if max < self.table.capacity() {
            self.required_update = Some(self.required_update.map_or(max, |m| m.min(max)));
        }
    }

    /// The current limit for dynamic table size updates.
    pub fn max_table_size(&self) -> usize {
        self.max_table_size
    }

    /// Decodes one complete header block (the HEADERS or PUSH_PROMISE fragment and all its
    /// CONTINUATION fragments, concatenated), calling `emit(name, value, never_indexed)` for
    /// each field in order.
    ///
    /// Fields before an error may already have been emitted. Any error is a connection error
    /// of type COMPRESSION_ERROR (RFC 9113 §4.3): the context is then unusable, and every
    /// later call returns the same error. The caller enforces its header list size limit in
    /// `emit` (a one-octet indexed field can repeat a table entry of up to the table size),
    /// but must still pass every block here so the dynamic table stays in sync.
    pub fn decode(&mut self, block: &[u8], emit: &mut FieldSink<'_>) -> Result<(), HpackError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = self.decode_block(block, emit);
        if let Err(err) = result {
            self.failed = Some(err);
        }
        result
    }

    /// The dynamic table size in octets (§4.1).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// The dynamic table's current maximum size, as last set by a size update (§4.2).
    pub fn table_capacity(&self) -> usize {
        self.table.capacity()
    }

    /// The number of entries in the dynamic table.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// The dynamic table entry `index` (0 = newest, HPACK index 62), for tests.
    pub fn table_entry(&self, dynamic_index_from_0: usize) -> Option<(&[u8], &[u8])> {
        self.table.get(dynamic_index_from_0)
    }

    fn decode_block(&mut self, block: &[u8], emit: &mut FieldSink<'_>) -> Result<(), HpackError> {
        let mut rest = block;
        // §4.2: size updates may only precede the first field representation of a block.
        let mut at_start = true;
        let mut lowest_update: Option<usize> = None;
        while let Some(&first) = rest.first() {
            if first & 0xe0 == 0x20 {
                // §6.3 Dynamic Table Size Update: 001xxxxx, 5-bit prefix.
                if !at_start {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                let (size, used) = decode_integer(rest, 5)?;
                rest = rest.get(used..).unwrap_or_default();
                if size > self.max_table_size {
                    return Err(HpackError::SizeUpdateTooLarge);
                }
                lowest_update = Some(lowest_update.map_or(size, |l| l.min(size)));
                self.table.set_capacity(size);
                continue;
            }
            if at_start {
                at_start = false;
                self.check_required_update(lowest_update)?;
            }
            rest = self.decode_field(first, rest, emit)?;
        }
        if at_start {
            self.check_required_update(lowest_update)?;
        }
        Ok(())
    }

    /// §4.2: after we lowered our limit below the table size, the first block must shrink
    /// the table to at most the lowest limit.
    fn check_required_update(&mut self, lowest_update: Option<usize>) -> Result<(), HpackError> {
        if let Some(required) = self.required_update {
            match lowest_update {
                Some(size) if size <= required => self.required_update = None,
                _ => return Err(HpackError::SizeUpdateMissing),
            }
        }
        Ok(())
    }

    /// Decodes one field representation starting at `rest` (whose first octet is `first`)
    /// and returns the rest of the block.
    fn decode_field<'b>(
        &mut self,
        first: u8,
        rest: &'b [u8],
        emit: &mut FieldSink<'_>,
    ) -> Result<&'b [u8], HpackError> {
        if first & 0x80 != 0 {
            // §6.1 Indexed Header Field: 1xxxxxxx, 7-bit index.
            let (index, used) = decode_integer(rest, 7)?;
            let (name, value) = lookup(&self.table, index)?;
            emit(name, value, false);
            return Ok(rest.get(used..).unwrap_or_default());
        }
        // §6.2.1 with incremental indexing: 01xxxxxx, 6-bit name index.
        // §6.2.2 without indexing: 0000xxxx; §6.2.3 never indexed: 0001xxxx; 4-bit index.
        let (prefix_bits, add_to_table, never_indexed) = if first & 0x40 != 0 {
            (6, true, false)
        } else {
            (4, false, first & 0x10 != 0)
        };
        let (name_index, used) = decode_integer(rest, prefix_bits)?;
        let mut rest = rest.get(used..).unwrap_or_default();
        self.scratch.clear();
        if name_index == 0 {
            // New name: a string literal follows the first octet (§6.2).
            rest = read_string(rest, &mut self.scratch)?;
        } else {
            // Copy the name: inserting this field may evict the entry it refers to (§4.4).
            let (name, _) = lookup(&self.table, name_index)?;
            self.scratch.extend_from_slice(name);
        }
        let name_len = self.scratch.len();
        rest = read_string(rest, &mut self.scratch)?;
        let (name, value) = self.scratch.split_at(name_len);
        if add_to_table {
            self.table.insert(name, value);
        }
        emit(name, value, never_indexed);
        Ok(rest)
    }
}

/// The (name, value) at HPACK index `index` (§2.3.3): 1..=61 static, then dynamic.
fn lookup(table: &DynamicTable, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
    match index {
        // §6.1: "The index value of 0 is not used. It MUST be treated as a decoding error".
        0 => Err(HpackError::ZeroIndex),
        1..=STATIC_LEN => STATIC_TABLE
            .get(index - 1)
            .copied()
            .ok_or(HpackError::InvalidIndex),
        // §2.3.3: "Indices strictly greater than the sum of the lengths of both tables
        // MUST be treated as a decoding error."
        _ => table
            .get(index - STATIC_LEN - 1)
            .ok_or(HpackError::InvalidIndex),
    }
}

/// Reads a string literal (§5.2) from the start of `input`, appends its decoded octets to
/// `out`, and returns the rest of the input.
fn read_string<'b>(input: &'b [u8], out: &mut Vec<u8>) -> Result<&'b [u8], HpackError> {
    let first = *input.first().ok_or(HpackError::Truncated)?;
    let (len, used) = decode_integer(input, 7)?;
    let rest = input.get(used..).unwrap_or_default();
    // §5.2: the length is checked against what the block holds before anything is buffered.
    let (data, rest) = rest
        .split_at_checked(len)
        .ok_or(HpackError::StringTooLong)?;
    if first & 0x80 != 0 {
        huffman::decode(data, out)?;
    } else {
        out.extend_from_slice(data);
    }
    Ok(rest)
}

impl Default for Decoder {
    /// A decoder for the default SETTINGS_HEADER_TABLE_SIZE of 4096 (RFC 9113 §6.5.2).
    fn default() -> Self {
        Self::new(super::DEFAULT_TABLE_SIZE)
    }
}

impl fmt::Debug for Decoder {
    /// Sizes and state only: header values can carry credentials, so no field is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("table", &self.table)
            .field("max_table_size", &self.max_table_size)
            .field("required_update", &self.required_update)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
