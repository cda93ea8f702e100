//! The HPACK static table (RFC 7541 Appendix A) and the decoder's dynamic table (§2.3.2, §4).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

/// The per-entry overhead added to `len(name) + len(value)` in table size accounting (§4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// Number of entries in the static table; dynamic indices start at `STATIC_LEN + 1` (§2.3.3).
pub const STATIC_LEN: usize = 61;

/// The static table (RFC 7541 Appendix A): `STATIC_TABLE[i - 1]` is index `i`.
pub const STATIC_TABLE: [(&[u8], &[u8]); STATIC_LEN] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// Position of one entry's bytes inside [`DynamicTable`]'s byte buffer.
#[derive(Clone, Copy)]
struct Entry {
    /// Logical offset of the name's first byte: `bytes[start - base]` (wrapping arithmetic).
    start: usize,
    name_len: usize,
    value_len: usize,
}

impl Entry {
    fn octets(&self) -> usize {
        self.name_len + self.value_len
    }
}

/// The dynamic table of one HPACK decoding context (RFC 7541 §2.3.2, §4).
///
/// Entries live back to back in one byte buffer (name then value), oldest first, and are
/// described by a queue of offsets, so inserting and evicting allocate nothing once the
/// buffers have grown to their working size. Evicted bytes at the buffer's front are
/// compacted away (an amortised O(1) copy per inserted byte) once they outnumber the live
/// ones, so the buffer's length stays below twice the capacity (its allocation below four
/// times, with `Vec`'s doubling), and the offset queue below `capacity / 32` entries.
pub struct DynamicTable {
    /// `bytes[head..]` are the live entries' bytes, oldest first.
    bytes: Vec<u8>,
    /// Number of dead (evicted) bytes at the front of `bytes`.
    head: usize,
    /// Logical offset of `bytes[0]`; grows (wrapping) as compaction drops dead bytes.
    base: usize,
    /// Oldest entry at the front, newest (index 0, HPACK index 62) at the back.
    entries: VecDeque<Entry>,
    /// Sum of entry sizes per §4.1; invariant: `size <= capacity`.
    size: usize,
    /// The current maximum size, set by dynamic table size updates (§4.2, §6.3).
    capacity: usize,
}

impl DynamicTable {
    /// An empty table whose maximum size is `capacity` octets.
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: Vec::new(),
            head: 0,
            base: 0,
            entries: VecDeque::new(),
            size: 0,
            capacity,
        }
    }

    /// The table size in octets: the sum of `len(name) + len(value) + 32` over entries (§4.1).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The current maximum size (§4.2).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at dynamic index `index` (0 = newest = HPACK index 62), or `None`.
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let last = self.entries.len().checked_sub(1)?;
        let entry = self.entries.get(last.checked_sub(index)?)?;
        let from = entry.start.wrapping_sub(self.base);
        let bytes = self.bytes.get(from..from + entry.octets())?;
        Some(bytes.split_at(entry.name_len))
    }

    /// Changes the maximum size, evicting oldest entries until the size fits (§4.3).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict_to(capacity);
    }

    /// Adds an entry at the front (index 0), first evicting oldest entries until it fits
    /// (§4.4). An entry larger than the capacity empties the table and is not added.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let entry_size = name
            .len()
            .saturating_add(value.len())
            .saturating_add(ENTRY_OVERHEAD);
        if entry_size > self.capacity {
            // §4.4: "an attempt to add an entry larger than the maximum size causes the
            // table to be emptied of all existing entries and results in an empty table."
            self.evict_to(0);
            return;
        }
        self.evict_to(self.capacity - entry_size);
        let live = self.bytes.len() - self.head;
        if self.head > 0 && self.head >= live {
            self.bytes.drain(..self.head);
            self.base = self.base.wrapping_add(self.head);
            self.head = 0;
        }
        let start = self.base.wrapping_add(self.bytes.len());
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.entries.push_back(Entry {
            start,
            name_len: name.len(),
            value_len: value.len(),
        });
        self.size += entry_size;
    }

    /// Evicts oldest entries until `size <= limit` (§4.4).
    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.size -= old.octets() + ENTRY_OVERHEAD;
            self.head += old.octets();
        }
        if self.entries.is_empty() {
            self.bytes.clear();
            self.head = 0;
            self.size = 0;
        }
    }
}

impl fmt::Debug for DynamicTable {
    /// Sizes only: header values can carry credentials, so contents are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicTable")
            .field("len", &self.entries.len())
            .field("size", &self.size)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_evict_and_compact() {
        let mut t = DynamicTable::new(100);
        t.insert(b"a", b"1"); // 34
        t.insert(b"b", b"22"); // 35
        assert_eq!((t.len(), t.size()), (2, 69));
        assert_eq!(t.get(0), Some((&b"b"[..], &b"22"[..])));
        assert_eq!(t.get(1), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(t.get(2), None);
        t.insert(b"c", b"333"); // 36: evicts "a"
        assert_eq!((t.len(), t.size()), (2, 71));
        assert_eq!(t.get(1), Some((&b"b"[..], &b"22"[..])));
        for i in 0..1000u32 {
            let v = i.to_be_bytes();
            t.insert(b"k", &v);
            assert_eq!(t.get(0), Some((&b"k"[..], &v[..])));
            assert!(t.bytes.len() <= 2 * t.capacity());
        }
        t.insert(&[b'x'; 69], b""); // 101 > 100: empties the table
        assert!(t.is_empty());
        assert_eq!(t.size(), 0);
        t.insert(&[b'x'; 68], b""); // exactly 100 fits
        assert_eq!((t.len(), t.size()), (1, 100));
        t.set_capacity(99);
        assert!(t.is_empty());
    }
}
