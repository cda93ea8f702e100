//! HPACK decoder (RFC 7541) over arbitrary header blocks, with small and default table sizes.
//!
//! Input: `config | (u16-be length | block)*` (a short last block is used as is).
//! `config` bits 0-1 pick the advertised table size (4096, 256, 0, 65536); bit 2 lowers the
//! limit to 64 after the first block (a SETTINGS change, §4.2); bit 3 makes the round-trip
//! encoder use Huffman.
//!
//! Checks, besides "never panics": the table never exceeds its capacity, an error is sticky,
//! every emitted field is bounded by the block and table sizes, and every successfully decoded
//! block re-encodes (static-table encoder) to a block that decodes to the same fields.
#![no_main]

use kms_plugin_core::hpack::{Decoder, Encoder, huffman};
use libfuzzer_sys::fuzz_target;

const SIZES: [usize; 4] = [4096, 256, 0, 65536];

type Field = (Vec<u8>, Vec<u8>, bool);

fn decode_all(
    d: &mut Decoder,
    block: &[u8],
) -> Result<Vec<Field>, kms_plugin_core::hpack::HpackError> {
    let mut fields = Vec::new();
    d.decode(block, &mut |n, v, s| {
        fields.push((n.to_vec(), v.to_vec(), s))
    })?;
    Ok(fields)
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, mut rest)) = data.split_first() else {
        return;
    };
    let max = SIZES[usize::from(config & 3)];
    let mut decoder = Decoder::new(max);
    let mut limit = max;
    let mut first = true;
    let mut sticky = None;
    while !rest.is_empty() {
        let block = match rest {
            [a, b, tail @ ..] => {
                let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
                let (block, tail) = tail.split_at(len);
                rest = tail;
                block
            }
            _ => core::mem::take(&mut rest),
        };
        let result = decode_all(&mut decoder, block);
        assert!(decoder.table_size() <= decoder.table_capacity());
        match (&result, sticky) {
            (Err(e), None) => sticky = Some(*e),
            (Err(e), Some(s)) => assert_eq!(*e, s, "errors are sticky"),
            (Ok(_), Some(_)) => panic!("decode succeeded after an error"),
            (Ok(fields), None) => {
                assert!(decoder.table_capacity() <= limit.max(max));
                for (n, v, _) in fields {
                    // A field comes from the block (Huffman expands at most 8/5) or a table.
                    assert!(n.len() + v.len() <= block.len() * 8 / 5 + max.max(limit) + 4096);
                }
                round_trip(fields, config & 8 != 0);
            }
        }
        if first && config & 4 != 0 {
            limit = 64;
            decoder.set_max_table_size(limit);
        }
        first = false;
        // Huffman on its own: whatever decodes re-encodes to something that decodes the same.
        let mut plain = Vec::new();
        if huffman::decode(block, &mut plain).is_ok() {
            let mut enc = Vec::new();
            huffman::encode(&plain, &mut enc);
            assert_eq!(enc.len(), huffman::encoded_len(&plain));
            let mut again = Vec::new();
            huffman::decode(&enc, &mut again).expect("our Huffman output decodes");
            assert_eq!(again, plain);
        }
    }
});

fn round_trip(fields: &[Field], use_huffman: bool) {
    let mut encoder = if use_huffman {
        Encoder::with_huffman()
    } else {
        Encoder::new()
    };
    let mut block = Vec::new();
    for (n, v, s) in fields {
        encoder.encode_field(n, v, *s, &mut block);
    }
    let mut fresh = Decoder::new(0);
    let again = decode_all(&mut fresh, &block).expect("our encoder's output decodes");
    let strip = |f: &[Field]| {
        f.iter()
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(fields));
    for ((_, _, s1), (_, _, s2)) in fields.iter().zip(&again) {
        assert!(!s1 || *s2, "never-indexed fields stay never-indexed");
    }
}
