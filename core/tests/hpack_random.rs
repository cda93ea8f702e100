//! Deterministic robustness: random and mutated header blocks never panic the decoder, and
//! its invariants hold whatever it is fed (a fixed-seed stand-in until the fuzz target).

mod hpack_support;

use hpack_support::{headers, load, story_files};
use kms_plugin_core::hpack::{Decoder, Encoder, HpackError};

/// xorshift64*: tiny, deterministic, good enough to spray bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// Decodes `block` and checks the invariants that hold after success or failure.
fn check(decoder: &mut Decoder, block: &[u8]) -> Result<usize, HpackError> {
    let mut emitted = 0usize;
    let result = decoder.decode(block, &mut |name, value, _| {
        // A field's strings come from the block (at most 8/5 of it after Huffman) or from a
        // table entry (at most the table size).
        assert!(name.len() + value.len() <= block.len() * 8 / 5 + 4096);
        emitted += 1;
    });
    assert!(decoder.table_size() <= decoder.table_capacity());
    assert!(decoder.table_capacity() <= decoder.max_table_size());
    let entries: usize = (0..decoder.table_len())
        .map(|i| {
            let (n, v) = decoder
                .table_entry(i)
                .expect("entries below table_len exist");
            n.len() + v.len() + 32
        })
        .sum();
    assert_eq!(entries, decoder.table_size());
    result.map(|()| emitted)
}

#[test]
fn random_blocks_never_panic() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut outcomes = [0usize; 2];
    for i in 0..10_000 {
        let len = rng.below(96);
        // Half the blocks lean on the representation prefixes the decoder branches on.
        let block: Vec<u8> = (0..len)
            .map(|_| {
                let b = rng.byte();
                if i % 2 == 0 { b } else { b & 0x9f }
            })
            .collect();
        let mut decoder = Decoder::new([0, 64, 256, 4096][i % 4]);
        let ok = check(&mut decoder, &block).is_ok();
        outcomes[usize::from(ok)] += 1;
    }
    std::eprintln!(
        "random blocks: {} rejected, {} accepted",
        outcomes[0],
        outcomes[1]
    );
    // The generator really exercises both paths.
    assert!(outcomes[0] > 1000 && outcomes[1] > 100, "{outcomes:?}");
}

/// Valid blocks from the test data, mutated (bit flips, byte changes, truncation,
/// splices), decoded on one long-lived decoder per story until it fails.
#[test]
fn mutated_valid_blocks_never_panic() {
    let mut rng = XorShift(0x0dd_ba11_cafe_f00d);
    let mut blocks = 0;
    let mut failures = 0;
    for (_, path) in story_files().into_iter().step_by(4) {
        let story = load(&path);
        let mut decoder = Decoder::default();
        let mut encoder = Encoder::with_huffman();
        for case in story["cases"].as_array().unwrap() {
            let mut block = if let Some(wire) = case.get("wire").and_then(|w| w.as_str()) {
                hex::decode(wire).unwrap()
            } else {
                let mut out = Vec::new();
                for (n, v) in headers(case) {
                    encoder.encode_field(&n, &v, false, &mut out);
                }
                out
            };
            match rng.below(5) {
                0 => {}
                1 if !block.is_empty() => {
                    let at = rng.below(block.len());
                    block[at] ^= 1 << rng.below(8);
                }
                2 if !block.is_empty() => {
                    let at = rng.below(block.len());
                    block[at] = rng.byte();
                }
                3 => block.truncate(rng.below(block.len() + 1)),
                _ => {
                    let at = rng.below(block.len() + 1);
                    let noise: Vec<u8> = (0..rng.below(8)).map(|_| rng.byte()).collect();
                    block.splice(at..at, noise);
                }
            }
            blocks += 1;
            if check(&mut decoder, &block).is_err() {
                failures += 1;
                // Sticky: a failed context keeps failing.
                assert!(check(&mut decoder, b"\x82").is_err());
                decoder = Decoder::default();
            }
        }
    }
    std::eprintln!("mutated blocks: {blocks}, {failures} rejected");
    assert!(blocks > 500 && failures > 50, "{blocks} {failures}");
}
