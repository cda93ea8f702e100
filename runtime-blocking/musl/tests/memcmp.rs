//! `memcmp`/`bcmp` against `Ord` on byte slices: every length up to 80 and some large ones,
//! a difference at every position in both directions, unaligned starts.
#![cfg(target_arch = "x86_64")]
#![allow(unsafe_code)]

use std::cmp::Ordering;

use kms_plugin_musl::{bcmp, memcmp};

fn sign(n: i32) -> Ordering {
    n.cmp(&0)
}

#[test]
fn orders_like_byte_slices_at_every_length_and_difference() {
    let mut lengths: Vec<usize> = (0..=80).collect();
    lengths.extend([127, 128, 129, 1000, 4099]);
    for len in lengths {
        for offset in [0usize, 1, 3, 7] {
            let base: Vec<u8> = (0..len + offset).map(|i| (i * 37 + 11) as u8).collect();
            let a = &base[offset..];
            // Equal.
            let b = a.to_vec();
            // SAFETY: both slices hold `len` bytes.
            let (m, e) = unsafe {
                (
                    memcmp(a.as_ptr(), b.as_ptr(), len),
                    bcmp(a.as_ptr(), b.as_ptr(), len),
                )
            };
            assert_eq!((m, e), (0, 0), "len {len} offset {offset}: equal");
            let positions: Vec<usize> = if len <= 80 {
                (0..len).collect()
            } else {
                vec![0, 7, 8, len / 2, len - 9, len - 8, len - 1]
            };
            for at in positions {
                for delta in [1u8, 255] {
                    // b differs from a at `at` by +1 or -1 (wrapping); the expected order
                    // follows the actual bytes.
                    let mut b = a.to_vec();
                    b[at] = b[at].wrapping_add(delta);
                    let expected = if a[at] < b[at] {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    // Later bytes must not matter: make them order the other way.
                    for later in b.iter_mut().skip(at + 1) {
                        *later = if expected == Ordering::Less { 0 } else { 255 };
                    }
                    assert_eq!(a.cmp(&b[..]), expected);
                    // SAFETY: both slices hold `len` bytes.
                    let (m, e) = unsafe {
                        (
                            memcmp(a.as_ptr(), b.as_ptr(), len),
                            bcmp(a.as_ptr(), b.as_ptr(), len),
                        )
                    };
                    assert_eq!(
                        sign(m),
                        expected,
                        "memcmp len {len} offset {offset} at {at}"
                    );
                    assert_ne!(e, 0, "bcmp len {len} offset {offset} at {at}");
                }
            }
        }
    }
}
