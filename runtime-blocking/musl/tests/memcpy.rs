//! Every size class, alignment and overlap of `memcpy`/`memmove`, against a byte-by-byte model.
#![cfg(target_arch = "x86_64")]
#![allow(unsafe_code)]

use kms_plugin_musl::{memcpy, memmove};

/// Lengths at and around every branch of the implementation, and some large ones.
fn lengths() -> Vec<usize> {
    let mut lengths: Vec<usize> = (0..=300).collect();
    lengths.extend([511, 512, 513, 1000, 4095, 4096, 4097, 65_541]);
    lengths
}

/// Distinct, position-dependent bytes, so a byte copied from the wrong place shows.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

const GUARD: usize = 48;

#[test]
fn disjoint_copies_are_exact_for_every_length_and_alignment() {
    for len in lengths() {
        let alignments: &[usize] = if len <= 300 {
            &[0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15]
        } else {
            &[0, 1, 8, 15]
        };
        for &src_off in alignments {
            for &dest_off in alignments {
                let src = pattern(len + 64, 1);
                let mut dest = vec![0xA5u8; len + 64 + 2 * GUARD];
                let before = dest.clone();
                let d = GUARD + dest_off;
                let s = src_off;
                for (name, f) in [
                    ("memcpy", memcpy as unsafe extern "C" fn(_, _, _) -> _),
                    ("memmove", memmove),
                ] {
                    dest.copy_from_slice(&before);
                    // SAFETY: both ranges lie inside their vectors.
                    let ret = unsafe { f(dest.as_mut_ptr().add(d), src.as_ptr().add(s), len) };
                    assert_eq!(
                        ret,
                        dest.as_mut_ptr().wrapping_add(d),
                        "{name} returns dest"
                    );
                    assert_eq!(
                        &dest[d..d + len],
                        &src[s..s + len],
                        "{name} len {len} src+{s} dest+{dest_off}"
                    );
                    assert_eq!(
                        &dest[..d],
                        &before[..d],
                        "{name} len {len}: wrote before dest"
                    );
                    assert_eq!(
                        &dest[d + len..],
                        &before[d + len..],
                        "{name} len {len}: wrote past the end"
                    );
                }
            }
        }
    }
}

#[test]
fn overlapping_moves_match_a_copy_through_a_temporary() {
    for len in lengths().into_iter().filter(|&l| l <= 4097) {
        // Every distance up to 40 bytes either way, then a spread up to a full overlap miss.
        let mut distances: Vec<isize> = (-40..=40).collect();
        for step in [len / 3, len / 2, len.saturating_sub(1), len, len + 1] {
            let step = isize::try_from(step).unwrap();
            distances.extend([step, -step]);
        }
        for delta in distances {
            let span = len + delta.unsigned_abs() + 2 * GUARD;
            let base = pattern(span, 7);
            let (src_at, dest_at) = if delta >= 0 {
                (GUARD, GUARD + delta.unsigned_abs())
            } else {
                (GUARD + delta.unsigned_abs(), GUARD)
            };
            for (name, f) in [
                ("memcpy", memcpy as unsafe extern "C" fn(_, _, _) -> _),
                ("memmove", memmove),
            ] {
                let mut expected = base.clone();
                let moved: Vec<u8> = base[src_at..src_at + len].to_vec();
                expected[dest_at..dest_at + len].copy_from_slice(&moved);
                let mut buffer = base.clone();
                let p = buffer.as_mut_ptr();
                // SAFETY: both ranges lie inside `buffer`; the functions accept overlap.
                unsafe { f(p.add(dest_at), p.add(src_at), len) };
                assert!(buffer == expected, "{name} len {len} delta {delta}");
            }
        }
    }
}
