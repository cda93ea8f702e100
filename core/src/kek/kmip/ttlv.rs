//! The KMIP TTLV encoding, the small subset the KMIP provider needs (KMIP 1.4 spec, section 9.1
//! "TTLV Encoding"): every item is a 3-byte tag, a 1-byte type, a 4-byte big-endian length and
//! the value, padded with zeros to a multiple of 8 bytes. Structures hold further items.
//!
//! [`Writer`] builds messages into a zeroizing buffer allocated once (requests carry the local
//! KEK and the password, so the buffer must never be reallocated and leave a copy behind).
//! [`Item`] reads a borrowed item and [`Items`] iterates a structure's children without
//! recursion or allocation; every length is checked against the bytes actually present
//! before it is used, and a value whose length does not fit its type is an error.

use alloc::vec::Vec;
use zeroize::Zeroizing;

/// Item type `Structure`.
pub const STRUCTURE: u8 = 0x01;
/// Item type `Integer` (4 bytes, signed).
pub const INTEGER: u8 = 0x02;
/// Item type `Long Integer` (8 bytes, signed).
pub const LONG_INTEGER: u8 = 0x03;
/// Item type `Big Integer`.
pub const BIG_INTEGER: u8 = 0x04;
/// Item type `Enumeration` (4 bytes, unsigned).
pub const ENUMERATION: u8 = 0x05;
/// Item type `Boolean` (8 bytes).
pub const BOOLEAN: u8 = 0x06;
/// Item type `Text String` (UTF-8).
pub const TEXT_STRING: u8 = 0x07;
/// Item type `Byte String`.
pub const BYTE_STRING: u8 = 0x08;
/// Item type `Date-Time` (8 bytes, signed seconds since the Unix epoch).
pub const DATE_TIME: u8 = 0x09;
/// Item type `Interval` (4 bytes, unsigned seconds).
pub const INTERVAL: u8 = 0x0A;

/// Size of an item header (tag, type, length).
pub const HEADER_LEN: usize = 8;

/// Why bytes are not valid TTLV (no input bytes are quoted: they may be secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlvError {
    /// Fewer bytes than a header or than the header's length (with padding) announces.
    Truncated,
    /// An unknown item type, or a length that does not fit the type.
    BadLength,
    /// A value of another type than the field requires.
    WrongType,
    /// A text string that is not UTF-8.
    BadText,
}

/// The value length `len` rounded up to the 8-byte padding; `None` on overflow.
fn padded(len: usize) -> Option<usize> {
    len.checked_add(7).map(|n| n & !7)
}

/// Builds one TTLV message in a zeroizing buffer that is never reallocated.
pub struct Writer {
    buf: Zeroizing<Vec<u8>>,
    /// Set when a write did not fit the capacity (the message is then refused).
    overflow: bool,
}

impl Writer {
    /// A writer for a message of at most `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Zeroizing::new(Vec::with_capacity(capacity)),
            overflow: false,
        }
    }

    fn header(&mut self, tag: u32, typ: u8, len: usize) -> bool {
        let total = padded(len).and_then(|p| p.checked_add(HEADER_LEN + self.buf.len()));
        let len32 = u32::try_from(len);
        match (total, len32) {
            (Some(total), Ok(len32)) if !self.overflow && total <= self.buf.capacity() => {
                self.buf.extend_from_slice(&tag.to_be_bytes()[1..]);
                self.buf.push(typ);
                self.buf.extend_from_slice(&len32.to_be_bytes());
                true
            }
            _ => {
                self.overflow = true;
                false
            }
        }
    }

    fn value(&mut self, tag: u32, typ: u8, value: &[u8]) {
        if self.header(tag, typ, value.len()) {
            self.buf.extend_from_slice(value);
            let pad = padded(value.len()).unwrap_or(0) - value.len();
            let end = self.buf.len() + pad;
            self.buf.resize(end, 0);
        }
    }

    /// A structure `tag` whose children `body` writes.
    pub fn structure(&mut self, tag: u32, body: impl FnOnce(&mut Self)) {
        if !self.header(tag, STRUCTURE, 0) {
            return;
        }
        let start = self.buf.len();
        body(self);
        if self.overflow {
            return;
        }
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        if let Some(field) = self.buf.get_mut(start - 4..start) {
            field.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// An `Integer`.
    pub fn integer(&mut self, tag: u32, value: i32) {
        self.value(tag, INTEGER, &value.to_be_bytes());
    }

    /// An `Enumeration`.
    pub fn enumeration(&mut self, tag: u32, value: u32) {
        self.value(tag, ENUMERATION, &value.to_be_bytes());
    }

    /// A `Boolean`.
    pub fn boolean(&mut self, tag: u32, value: bool) {
        self.value(tag, BOOLEAN, &u64::from(value).to_be_bytes());
    }

    /// A `Date-Time` (seconds since the Unix epoch).
    pub fn date_time(&mut self, tag: u32, value: i64) {
        self.value(tag, DATE_TIME, &value.to_be_bytes());
    }

    /// A `Text String`.
    pub fn text(&mut self, tag: u32, value: &str) {
        self.value(tag, TEXT_STRING, value.as_bytes());
    }

    /// A `Byte String`.
    pub fn bytes(&mut self, tag: u32, value: &[u8]) {
        self.value(tag, BYTE_STRING, value);
    }

    /// The message, or `None` if it did not fit the capacity given at creation.
    pub fn finish(self) -> Option<Zeroizing<Vec<u8>>> {
        (!self.overflow).then_some(self.buf)
    }
}

/// One item borrowed from a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    /// The 3-byte tag (`0x42xxxx` for KMIP's own tags).
    pub tag: u32,
    /// The item type (one of the constants of this module).
    pub typ: u8,
    /// The value without padding.
    pub value: &'a [u8],
}

/// Reads the item at the start of `bytes`; returns it and the bytes after its padding.
pub fn read_item(bytes: &[u8]) -> Result<(Item<'_>, &[u8]), TtlvError> {
    let header = bytes.get(..HEADER_LEN).ok_or(TtlvError::Truncated)?;
    let tag = u32::from_be_bytes([0, header[0], header[1], header[2]]);
    let typ = header[3];
    let len = usize::try_from(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]))
    .map_err(|_| TtlvError::BadLength)?;
    let fixed = match typ {
        INTEGER | ENUMERATION | INTERVAL => Some(4),
        LONG_INTEGER | BOOLEAN | DATE_TIME => Some(8),
        STRUCTURE | TEXT_STRING | BYTE_STRING | BIG_INTEGER => None,
        _ => return Err(TtlvError::BadLength),
    };
    if fixed.is_some_and(|f| f != len) || (matches!(typ, STRUCTURE | BIG_INTEGER) && len % 8 != 0) {
        return Err(TtlvError::BadLength);
    }
    let body = &bytes[HEADER_LEN..];
    let full = padded(len).ok_or(TtlvError::BadLength)?;
    if body.len() < full {
        return Err(TtlvError::Truncated);
    }
    let item = Item {
        tag,
        typ,
        value: &body[..len],
    };
    Ok((item, &body[full..]))
}

/// The items of a structure's body, in order.
#[derive(Clone, Debug)]
pub struct Items<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Item<'a>, TtlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match read_item(self.rest) {
            Ok((item, rest)) => {
                self.rest = rest;
                Some(Ok(item))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl<'a> Item<'a> {
    fn fixed<const N: usize>(&self, typ: u8) -> Result<[u8; N], TtlvError> {
        if self.typ != typ {
            return Err(TtlvError::WrongType);
        }
        self.value.try_into().map_err(|_| TtlvError::BadLength)
    }

    /// The children of a structure.
    pub fn children(&self) -> Result<Items<'a>, TtlvError> {
        if self.typ != STRUCTURE {
            return Err(TtlvError::WrongType);
        }
        Ok(Items { rest: self.value })
    }

    /// The first child tagged `tag`, if any (a malformed child before it is an error).
    pub fn child(&self, tag: u32) -> Result<Option<Self>, TtlvError> {
        for item in self.children()? {
            let item = item?;
            if item.tag == tag {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    /// The value of an `Integer`.
    pub fn integer(&self) -> Result<i32, TtlvError> {
        self.fixed(INTEGER).map(i32::from_be_bytes)
    }

    /// The value of an `Enumeration`.
    pub fn enumeration(&self) -> Result<u32, TtlvError> {
        self.fixed(ENUMERATION).map(u32::from_be_bytes)
    }

    /// The value of a `Date-Time` (seconds since the Unix epoch).
    pub fn date_time(&self) -> Result<i64, TtlvError> {
        self.fixed(DATE_TIME).map(i64::from_be_bytes)
    }

    /// The value of a `Text String`.
    pub fn text(&self) -> Result<&'a str, TtlvError> {
        if self.typ != TEXT_STRING {
            return Err(TtlvError::WrongType);
        }
        core::str::from_utf8(self.value).map_err(|_| TtlvError::BadText)
    }

    /// The value of a `Byte String`.
    pub fn bytes(&self) -> Result<&'a [u8], TtlvError> {
        if self.typ != BYTE_STRING {
            return Err(TtlvError::WrongType);
        }
        Ok(self.value)
    }
}
