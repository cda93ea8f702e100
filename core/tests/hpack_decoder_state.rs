//! HPACK decoder state: the never-indexed flag per representation, table accessors, the
//! redacted `Debug`, and a long story's table bookkeeping.

mod hpack_support;

use std::collections::VecDeque;

use hpack_support::decode_all;
use kms_plugin_core::hpack::{DEFAULT_TABLE_SIZE, Decoder, HpackError};

fn flags(decoder: &mut Decoder, block: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    decoder
        .decode(block, &mut |_, _, never| out.push(never))
        .unwrap();
    out
}

#[test]
fn never_indexed_flag_per_representation() {
    let mut d = Decoder::default();
    // §6.1 indexed, §6.2.1 incremental, §6.2.2 without indexing, §6.2.3 never indexed
    // (new name and indexed name), then the stored entry indexed again.
    let block = b"\x82\x41\x01a\x00\x01b\x01c\x10\x01d\x01e\x13\x01/\xbe";
    assert_eq!(
        flags(&mut d, block),
        [false, false, false, true, true, false]
    );
    // Only the incremental literal was stored.
    assert_eq!(d.table_len(), 1);
    assert_eq!(d.table_entry(0), Some((&b":authority"[..], &b"a"[..])));
}

#[test]
fn accessors_and_defaults() {
    let d = Decoder::default();
    assert_eq!(DEFAULT_TABLE_SIZE, 4096);
    assert_eq!((d.max_table_size(), d.table_capacity()), (4096, 4096));
    assert_eq!((d.table_len(), d.table_size()), (0, 0));
    assert_eq!(d.table_entry(0), None);
    assert_eq!(d.table_entry(usize::MAX), None);

    let mut d = Decoder::new(0);
    assert_eq!(d.table_capacity(), 0);
    // Raising our limit does not grow the table until the peer says so.
    d.set_max_table_size(8192);
    assert_eq!((d.max_table_size(), d.table_capacity()), (8192, 0));
    decode_all(&mut d, b"\x3f\xe1\x3f").unwrap(); // 8192 = 31 + 8161
    assert_eq!(d.table_capacity(), 8192);
}

#[test]
fn debug_output_never_shows_header_contents() {
    let mut d = Decoder::default();
    decode_all(&mut d, b"\x40\x0dauthorization\x0eBearer s3cr3t!").unwrap();
    let shown = format!("{d:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("Bearer"),
        "{shown}"
    );
    assert!(shown.contains("size: 59"), "{shown}");
    let _ = decode_all(&mut d, b"\x80");
    assert!(format!("{d:?}").contains("ZeroIndex"));
    assert_eq!(HpackError::ZeroIndex.to_string(), "HPACK index 0");
}

/// Thousands of insertions with evictions and compactions: each entry reads back intact,
/// and the size always equals the sum of the entries.
#[test]
fn long_run_table_bookkeeping() {
    let mut d = Decoder::new(1000);
    let mut expected: VecDeque<(Vec<u8>, Vec<u8>)> = VecDeque::new();
    let mut size = 0;
    for i in 0..5000usize {
        let name = format!("n{}", i % 7).into_bytes();
        let value = vec![b'a' + (i % 26) as u8; (i * 37) % 300];
        let mut block = vec![0x40, name.len() as u8];
        block.extend_from_slice(&name);
        kms_plugin_core::hpack::encode_integer(value.len(), 7, 0, &mut block);
        block.extend_from_slice(&value);
        decode_all(&mut d, &block).unwrap();
        // The model: push front, evict from the back (§4.4).
        size += name.len() + value.len() + 32;
        expected.push_front((name, value));
        while size > 1000 {
            let (n, v) = expected.pop_back().unwrap();
            size -= n.len() + v.len() + 32;
        }
        assert_eq!(
            (d.table_len(), d.table_size()),
            (expected.len(), size),
            "after {i}"
        );
        for (j, (n, v)) in expected.iter().enumerate() {
            assert_eq!(
                d.table_entry(j),
                Some((&n[..], &v[..])),
                "entry {j} after {i}"
            );
        }
    }
}
