//! Model-based test: random valid header blocks using every representation (dynamic
//! indices, all literal kinds, raw and Huffman strings, size updates, limit changes) are
//! decoded and compared with an independent model of the tables (RFC 7541 §2.3, §4).

use std::collections::VecDeque;

use kms_plugin_core::hpack::table::STATIC_TABLE;
use kms_plugin_core::hpack::{Decoder, encode_integer, huffman};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self) -> Vec<u8> {
        let len = if self.chance(10) {
            self.below(400)
        } else {
            self.below(24)
        };
        let printable = self.chance(70);
        (0..len)
            .map(|_| {
                let b = (self.next() >> 56) as u8;
                if printable { b'a' + b % 26 } else { b }
            })
            .collect()
    }
}

/// The reference model of one decoding context.
struct Model {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>, // newest first
    size: usize,
    capacity: usize,
}

impl Model {
    fn get(&self, index: usize) -> (Vec<u8>, Vec<u8>) {
        if index <= STATIC_TABLE.len() {
            let (n, v) = STATIC_TABLE[index - 1];
            (n.to_vec(), v.to_vec())
        } else {
            self.entries[index - STATIC_TABLE.len() - 1].clone()
        }
    }
    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let (n, v) = self.entries.pop_back().unwrap();
            self.size -= n.len() + v.len() + 32;
        }
    }
    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        if size > self.capacity {
            self.evict_to(0);
        } else {
            self.evict_to(self.capacity - size);
            self.size += size;
            self.entries.push_front((name, value));
        }
    }
}

fn string(rng: &mut Rng, s: &[u8], out: &mut Vec<u8>) {
    if rng.chance(50) {
        let mut h = Vec::new();
        huffman::encode(s, &mut h);
        encode_integer(h.len(), 7, 0x80, out);
        out.extend_from_slice(&h);
    } else {
        encode_integer(s.len(), 7, 0, out);
        out.extend_from_slice(s);
    }
}

#[test]
fn random_valid_blocks_match_the_model() {
    let mut rng = Rng(0x1357_9bdf_2468_ace0);
    let mut totals = [0usize; 4]; // blocks, fields, inserts, size updates
    for context in 0..40 {
        let initial = [4096, 256, 1000, 0][context % 4];
        let mut decoder = Decoder::new(initial);
        let mut model = Model {
            entries: VecDeque::new(),
            size: 0,
            capacity: initial,
        };
        let mut limit = initial;
        for _ in 0..60 {
            let mut block = Vec::new();
            let mut expected = Vec::new();
            // Sometimes we change our advertised limit (as if our SETTINGS were ACKed).
            let mut must_update_to = None;
            if rng.chance(10) {
                limit = [0, 100, 256, 1000, 4096, 8192][rng.below(6)];
                decoder.set_max_table_size(limit);
                if limit < model.capacity {
                    must_update_to = Some(limit);
                }
            }
            let updates = if must_update_to.is_some() {
                1 + rng.below(2)
            } else {
                rng.below(3)
            };
            for u in 0..updates {
                let size = match must_update_to {
                    Some(required) if u == 0 => rng.below(required + 1),
                    _ if rng.chance(20) => limit,
                    _ => rng.below(limit + 1),
                };
                encode_integer(size, 5, 0x20, &mut block);
                model.capacity = size;
                model.evict_to(size);
                totals[3] += 1;
            }
            for _ in 0..rng.below(20) {
                let max_index = STATIC_TABLE.len() + model.entries.len();
                match rng.below(4) {
                    0 => {
                        let index = 1 + rng.below(max_index);
                        encode_integer(index, 7, 0x80, &mut block);
                        let (n, v) = model.get(index);
                        expected.push((n, v, false));
                    }
                    kind => {
                        // 1: incremental (01, 6-bit), 2: without (0000, 4-bit), 3: never (0001).
                        let (prefix, flags) = [(6, 0x40), (4, 0x00), (4, 0x10)][kind - 1];
                        let name = if rng.chance(50) {
                            let index = 1 + rng.below(max_index);
                            encode_integer(index, prefix, flags, &mut block);
                            model.get(index).0
                        } else {
                            let name = rng.bytes();
                            encode_integer(0, prefix, flags, &mut block);
                            string(&mut rng, &name, &mut block);
                            name
                        };
                        let value = rng.bytes();
                        string(&mut rng, &value, &mut block);
                        if kind == 1 {
                            model.insert(name.clone(), value.clone());
                            totals[2] += 1;
                        }
                        expected.push((name, value, kind == 3));
                    }
                }
            }
            let mut got = Vec::new();
            decoder
                .decode(&block, &mut |n, v, never| {
                    got.push((n.to_vec(), v.to_vec(), never));
                })
                .unwrap_or_else(|e| panic!("context {context}: {e:?}"));
            assert_eq!(got, expected, "context {context}");
            assert_eq!(decoder.table_capacity(), model.capacity);
            assert_eq!(
                (decoder.table_len(), decoder.table_size()),
                (model.entries.len(), model.size)
            );
            for (j, (n, v)) in model.entries.iter().enumerate() {
                assert_eq!(decoder.table_entry(j), Some((&n[..], &v[..])));
            }
            totals[0] += 1;
            totals[1] += expected.len();
        }
    }
    std::eprintln!(
        "model: {} blocks, {} fields, {} insertions, {} size updates",
        totals[0],
        totals[1],
        totals[2],
        totals[3]
    );
    assert!(totals[2] > 1000 && totals[3] > 100, "{totals:?}");
}
