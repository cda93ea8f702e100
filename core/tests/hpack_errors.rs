//! HPACK decoder errors: every `HpackError` variant reached by a crafted block, plus the
//! accepted edge cases next to each limit.

mod hpack_support;

use hpack_support::{Field, decode_all};
use kms_plugin_core::hpack::{
    DEFAULT_TABLE_SIZE, Decoder, HpackError, MAX_INTEGER, decode_integer, encode_integer,
};

/// A decoder that has already stored `("aaaa", "bbbb")` (dynamic index 62, size 40).
fn with_one_entry() -> Decoder {
    let mut d = Decoder::default();
    let fields = decode_all(&mut d, b"\x40\x04aaaa\x04bbbb").unwrap();
    assert_eq!(fields, [(b"aaaa".to_vec(), b"bbbb".to_vec())]);
    assert_eq!((d.table_len(), d.table_size()), (1, 40));
    d
}

#[test]
fn crafted_blocks_fail_with_the_right_error() {
    use HpackError::*;
    #[rustfmt::skip]
    let cases: &[(&str, &[u8], HpackError)] = &[
        // §5.1 integers: six continuation octets, even if they add nothing.
        ("index with 6 continuation octets", b"\xff\x80\x80\x80\x80\x80\x00", IntegerOverflow),
        // 127 + 0x7f·(1 + 2^7 + 2^14 + 2^21 + 2^28) > 2^32 - 1.
        ("index above 2^32-1", b"\xff\xff\xff\xff\xff\x7f", IntegerOverflow),
        ("string length above 2^32-1", b"\x40\x7f\xff\xff\xff\xff\x7f", IntegerOverflow),
        ("size update above 2^32-1", b"\x3f\xff\xff\xff\xff\x7f", IntegerOverflow),
        // The block ends inside a representation.
        ("integer missing its continuation", b"\xff", Truncated),
        ("integer ends on a continuation bit", b"\x82\xff\x80", Truncated),
        ("new name: no name string", b"\x40", Truncated),
        ("new name: no value string", b"\x00\x01a", Truncated),
        ("indexed name: no value string", b"\x82\x44", Truncated),
        ("never indexed: no value string", b"\x11", Truncated),
        ("string length truncated", b"\x04\x7f", Truncated),
        // §5.2: declared length beyond the block.
        ("value longer than the block", b"\x44\x05/ab", StringTooLong),
        ("name longer than the block", b"\x00\x03ab", StringTooLong),
        ("huge length, tiny block", b"\x00\x7f\xe1\xff\xff\x0f", StringTooLong),
        ("huffman string longer than the block", b"\x00\x85\xff", StringTooLong),
        // §5.2 Huffman: padding of 8 bits, padding not all ones, EOS.
        ("padding longer than 7 bits", b"\x00\x81\xff\x00", InvalidHuffman),
        ("padding with a zero bit", b"\x00\x81\x00\x00", InvalidHuffman),
        ("padding 110 after 'a' (00011)", b"\x04\x81\x1e", InvalidHuffman),
        ("EOS in the string", b"\x04\x84\xff\xff\xff\xff", InvalidHuffman),
        ("EOS after a symbol", b"\x04\x85\x07\xff\xff\xff\xff", InvalidHuffman),
        // §6.1: index 0.
        ("indexed field with index 0", b"\x80", ZeroIndex),
        ("index 0 after valid fields", b"\x82\x86\x80", ZeroIndex),
        // §2.3.3: indices beyond both tables.
        ("index 62 with an empty dynamic table", b"\xbe", InvalidIndex),
        ("name index 62 with an empty table", b"\x7e\x01a", InvalidIndex),
        ("never-indexed name index 62", b"\x1f\x2f\x01a", InvalidIndex),
        ("index 2^32-1", b"\xff\x80\xff\xff\xff\x0f", InvalidIndex),
        // §6.3: above the 4096 we advertise (4097 = 31 + 4066).
        ("size update to 4097", b"\x3f\xe2\x1f", SizeUpdateTooLarge),
        ("second size update too large", b"\x20\x3f\xe2\x1f", SizeUpdateTooLarge),
        // §4.2: only at the start of a block.
        ("size update after a field", b"\x82\x20", SizeUpdateNotAtStart),
        ("size update after a literal", b"\x04\x01/\x3f\xe1\x1f", SizeUpdateNotAtStart),
    ];
    for &(what, block, expected) in cases {
        let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
        assert_eq!(decode_all(&mut decoder, block), Err(expected), "{what}");
        // The context is lost: the same error sticks, even for a valid block.
        assert_eq!(
            decode_all(&mut decoder, b"\x82"),
            Err(expected),
            "{what}: sticky"
        );
        // Display exists for every variant and names HPACK.
        assert!(expected.to_string().contains("HPACK"), "{what}");
    }
}

#[test]
fn dynamic_indices_are_bounded_by_the_table() {
    let mut d = with_one_entry();
    assert_eq!(
        decode_all(&mut d, b"\xbe"),
        Ok(vec![(b"aaaa".to_vec(), b"bbbb".to_vec())])
    );
    assert_eq!(decode_all(&mut d, b"\xbf"), Err(HpackError::InvalidIndex));
    let mut d = with_one_entry();
    // Name index 62 with a new value, never indexed: flag and name both come through.
    let mut got = Vec::new();
    d.decode(b"\x1f\x2f\x01z", &mut |n, v, never| {
        got.push((n.to_vec(), v.to_vec(), never));
    })
    .unwrap();
    assert_eq!(got, [(b"aaaa".to_vec(), b"z".to_vec(), true)]);
    assert_eq!(
        decode_all(&mut d, b"\x7f\x00\x01z"),
        Err(HpackError::InvalidIndex)
    );
}

#[test]
fn size_update_limits() {
    // Exactly the limit (4096 = 31 + 4065) is fine; several updates at the start too.
    let mut d = Decoder::default();
    assert_eq!(
        decode_all(&mut d, b"\x3f\xe1\x1f\x20\x3f\xe1\x1f\x82"),
        Ok(vec![(b":method".to_vec(), b"GET".to_vec())])
    );
    assert_eq!(d.table_capacity(), 4096);
    // A block of only size updates is fine.
    assert_eq!(decode_all(&mut d, b"\x20"), Ok(vec![]));
    assert_eq!(d.table_capacity(), 0);
    // With capacity 0 nothing is stored, and index 62 stays invalid.
    assert_eq!(
        decode_all(&mut d, b"\x40\x01a\x01b").map(|f| f.len()),
        Ok(1)
    );
    assert_eq!((d.table_len(), d.table_size()), (0, 0));
    assert_eq!(decode_all(&mut d, b"\xbe"), Err(HpackError::InvalidIndex));

    // Shrinking evicts oldest entries first (§4.3).
    let mut d = with_one_entry();
    decode_all(&mut d, b"\x40\x01c\x01d").unwrap(); // 34 octets, now index 62
    assert_eq!(d.table_size(), 74);
    decode_all(&mut d, b"\x3f\x03").unwrap(); // 34
    assert_eq!((d.table_len(), d.table_size()), (1, 34));
    assert_eq!(d.table_entry(0), Some((&b"c"[..], &b"d"[..])));
}

/// (what, limits we set in order, block, table capacity after it or the error).
type LimitCase<'a> = (&'a str, &'a [usize], &'a [u8], Result<usize, HpackError>);

#[test]
fn lowering_our_limit_requires_a_size_update() {
    // §4.2: after we lower SETTINGS_HEADER_TABLE_SIZE below the table size, the next block
    // must start with an update to at most the new value.
    let cases: &[LimitCase<'_>] = &[
        (
            "no update",
            &[100],
            b"\x82",
            Err(HpackError::SizeUpdateMissing),
        ),
        (
            "empty block",
            &[100],
            b"",
            Err(HpackError::SizeUpdateMissing),
        ),
        ("update to the limit", &[100], b"\x3f\x45\x82", Ok(100)),
        ("update below the limit", &[100], b"\x20\x82", Ok(0)),
        (
            "update above the limit",
            &[100],
            b"\x3f\x46\x82",
            Err(HpackError::SizeUpdateTooLarge),
        ),
        // Lowered then raised: the lowest value must be signalled, then may rise again.
        (
            "lowest not signalled",
            &[100, 4096],
            b"\x3f\xa9\x01\x82",
            Err(HpackError::SizeUpdateMissing),
        ),
        (
            "lowest signalled, then raised",
            &[100, 4096],
            b"\x3f\x45\x3f\xe1\x1f\x82",
            Ok(4096),
        ),
        // Raising alone, or lowering to the current size, needs no update.
        ("raised only", &[8192], b"\x82", Ok(4096)),
        ("same size", &[4096], b"\x82", Ok(4096)),
    ];
    for &(what, settings, block, expected) in cases {
        let mut d = with_one_entry();
        for &s in settings {
            d.set_max_table_size(s);
        }
        let got = decode_all(&mut d, block).map(|_| d.table_capacity());
        assert_eq!(got, expected, "{what}");
        if expected.is_ok() {
            // Satisfied once: the next block needs no update.
            assert!(decode_all(&mut d, b"\x82").is_ok(), "{what}: next block");
        }
    }
    // The update evicts what no longer fits.
    let mut d = with_one_entry();
    d.set_max_table_size(39);
    decode_all(&mut d, b"\x3f\x08\x82").unwrap();
    assert_eq!(
        (d.table_len(), d.table_size(), d.table_capacity()),
        (0, 0, 39)
    );
}

#[test]
fn eviction_semantics() {
    // §4.4: an entry larger than the table empties it.
    let mut d = with_one_entry();
    // Name of 4065 = 127 + 3938 octets: entry size 4097, one more than the table.
    let mut block = b"\x40\x7f\xe2\x1e".to_vec();
    block.extend(std::iter::repeat_n(b'n', 4065));
    block.push(0);
    let fields = decode_all(&mut d, &block).unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0.len(), 4065);
    assert_eq!((d.table_len(), d.table_size()), (0, 0));

    // An entry of exactly the capacity fits (4096 - 32 = 4064 octets).
    let mut d = with_one_entry();
    let mut block = b"\x40\x7f\xe1\x1e".to_vec(); // name 4064 = 127 + 3937
    block.extend(std::iter::repeat_n(b'n', 4064));
    block.push(0);
    decode_all(&mut d, &block).unwrap();
    assert_eq!((d.table_len(), d.table_size()), (1, 4096));

    // §4.4: a new entry may name an entry its insertion evicts; the name survives.
    let mut d = Decoder::new(40);
    decode_all(&mut d, b"\x40\x04aaaa\x04bbbb").unwrap(); // exactly 40
    let fields = decode_all(&mut d, b"\x7e\x04cccc\xbe").unwrap();
    let expected: Vec<Field> = vec![
        (b"aaaa".to_vec(), b"cccc".to_vec()),
        (b"aaaa".to_vec(), b"cccc".to_vec()),
    ];
    assert_eq!(fields, expected);
    assert_eq!((d.table_len(), d.table_size()), (1, 40));
}

#[test]
fn integer_limits() {
    // Five continuation octets are the maximum, and 2^32 - 1 the largest value.
    assert_eq!(decode_integer(b"\x1f\x80\x80\x80\x80\x00", 5), Ok((31, 6)));
    assert_eq!(
        decode_integer(b"\x1f\x80\x80\x80\x80\x80\x00", 5),
        Err(HpackError::IntegerOverflow)
    );
    let mut max = Vec::new();
    encode_integer(MAX_INTEGER, 7, 0x80, &mut max);
    assert_eq!(decode_integer(&max, 7), Ok((MAX_INTEGER, max.len())));
    let mut over = Vec::new();
    encode_integer(MAX_INTEGER + 1, 7, 0x80, &mut over);
    assert_eq!(decode_integer(&over, 7), Err(HpackError::IntegerOverflow));
    assert_eq!(decode_integer(b"", 7), Err(HpackError::Truncated));
    // Round trip across prefixes and magnitudes.
    for prefix in 1..=8 {
        for value in [
            0,
            1,
            2,
            14,
            15,
            30,
            31,
            62,
            63,
            126,
            127,
            254,
            255,
            256,
            1337,
            1 << 20,
        ] {
            let mut out = vec![];
            encode_integer(value, prefix, 0, &mut out);
            assert_eq!(
                decode_integer(&out, prefix),
                Ok((value, out.len())),
                "{value}/{prefix}"
            );
        }
    }
}
