//! `memcpy`, `memmove`, `memcmp` and `bcmp`.
//!
//! musl's x86_64 `memcpy` is `rep movsq` with byte loops around it. On the machines measured
//! (docs/performance.md) every call costs ~35 ns whatever its size (3 bytes: 38 ns; glibc: 2 ns),
//! and a KMS request makes ~45 of them (HPACK fields, frame heads, cipher key schedules, map
//! nodes): ~1.7 µs of a 5 µs v2 Decrypt. These versions copy with unaligned 8/16-byte loads and
//! stores (SSE2, part of the x86_64 baseline, so no CPU detection is needed): small copies are
//! two overlapping loads and two stores, large ones a loop of aligned 64-byte stores.
//!
//! musl's `memcmp` is a byte loop (and its `bcmp` calls it); Rust's
//! slice equality calls `bcmp`, ~14 times a request (HPACK names, paths, map keys). These
//! compare 8 bytes at a time.
//!
//! With the `export` feature the four functions are exported under their C names. In a static
//! link the linker then never pulls musl's `memcpy.o`/`memmove.o`/`memcmp.o`/`bcmp.o` from
//! `libc.a` (musl's `memmove` reaches `__memcpy_fwd` in `memcpy.o`, so both are replaced
//! together), and every caller, musl's own included, uses these. Without the feature they are
//! ordinary functions, which is how the tests exercise them on any target.
//!
//! The copies accept overlapping ranges (`memcpy`'s contract does not require it; being
//! `memmove` as well costs one comparison): every byte range is read before any store that
//! could overwrite it.
//!
//! The crate's `#![no_builtins]` keeps LLVM from recognising the loops as `memcpy`/`bcmp`
//! idioms and compiling them into calls to themselves.

use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_store_si128, _mm_storeu_si128};

/// C `memcpy`: copies `len` bytes from `src` to `dest` and returns `dest`.
///
/// # Safety
/// `src` must be valid for reads and `dest` for writes of `len` bytes (the C contract). The
/// ranges may overlap (unlike C's `memcpy`, this one is also a correct `memmove`).
#[cfg_attr(feature = "export", unsafe(no_mangle))]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, len: usize) -> *mut u8 {
    // SAFETY: the caller's C contract, passed on unchanged.
    unsafe { copy(dest, src, len) };
    dest
}

/// C `memmove`: copies `len` bytes from `src` to `dest`, which may overlap; returns `dest`.
///
/// # Safety
/// `src` must be valid for reads and `dest` for writes of `len` bytes (the C contract).
#[cfg_attr(feature = "export", unsafe(no_mangle))]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, len: usize) -> *mut u8 {
    // SAFETY: the caller's C contract, passed on unchanged.
    unsafe { copy(dest, src, len) };
    dest
}

/// C `memcmp`: compares `len` bytes as unsigned chars; negative, zero or positive as the first
/// differing byte of `a` is below, equal to or above that of `b`.
///
/// # Safety
/// `a` and `b` must be valid for reads of `len` bytes (the C contract).
#[cfg_attr(feature = "export", unsafe(no_mangle))]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's C contract, passed on unchanged.
    unsafe { compare(a, b, len) }
}

/// C `bcmp`: zero if the `len` bytes at `a` and `b` are equal, non-zero otherwise (Rust's slice
/// equality calls it).
///
/// # Safety
/// `a` and `b` must be valid for reads of `len` bytes (the C contract).
#[cfg_attr(feature = "export", unsafe(no_mangle))]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's C contract, passed on unchanged.
    unsafe { compare(a, b, len) }
}

/// `memcmp`: 8 bytes at a time (loaded big-endian, so comparing the words orders them like
/// their bytes), the last partial word as an overlapping load, single bytes below 8.
///
/// # Safety
/// As [`memcmp`].
#[inline(always)]
unsafe fn compare(a: *const u8, b: *const u8, len: usize) -> i32 {
    // SAFETY (whole body): every 8-byte load starts at an offset <= `len - 8`, every byte load
    // at an offset < `len`.
    unsafe {
        if len < 8 {
            for i in 0..len {
                let (x, y) = (a.add(i).read(), b.add(i).read());
                if x != y {
                    return i32::from(x) - i32::from(y);
                }
            }
            return 0;
        }
        let mut i = 0;
        while i + 8 <= len {
            let (x, y) = (word(a, i), word(b, i));
            if x != y {
                return if x < y { -1 } else { 1 };
            }
            i += 8;
        }
        if i < len {
            // The last word overlaps bytes already found equal, so its order is theirs.
            let (x, y) = (word(a, len - 8), word(b, len - 8));
            if x != y {
                return if x < y { -1 } else { 1 };
            }
        }
        0
    }
}

/// The 8 bytes at `p + offset`, big-endian.
///
/// # Safety
/// `p + offset` valid for 8 bytes of reads.
#[inline(always)]
unsafe fn word(p: *const u8, offset: usize) -> u64 {
    // SAFETY: caller's guarantee.
    u64::from_be(unsafe { p.add(offset).cast::<u64>().read_unaligned() })
}

/// Copies `len` bytes from `src` to `dest`, ranges allowed to overlap.
///
/// Up to 128 bytes every load happens before the first store, so overlap cannot matter. Beyond
/// that the first and last 16 bytes are loaded up front and stored last, and the middle is
/// copied in 16-byte units aligned on `dest`, forwards when `dest` is below `src` (or the
/// ranges are disjoint) and backwards otherwise: each unit is loaded before it is stored, and
/// the units it could overwrite in `src` have already been copied.
///
/// # Safety
/// As [`memcpy`].
#[inline(always)]
unsafe fn copy(dest: *mut u8, src: *const u8, len: usize) {
    // SAFETY (whole body): every offset used below is < `len`, and every access of width `w`
    // starts at an offset <= `len - w`, which the size branches guarantee; the caller
    // guarantees `len` bytes at both pointers.
    unsafe {
        match len {
            0 => {}
            1 => dest.write(src.read()),
            2..=3 => copy_ends::<u16>(dest, src, len),
            4..=7 => copy_ends::<u32>(dest, src, len),
            8..=16 => copy_ends::<u64>(dest, src, len),
            17..=32 => {
                let a = load(src);
                let b = load(src.add(len - 16));
                store(dest, a);
                store(dest.add(len - 16), b);
            }
            33..=64 => {
                let a = load(src);
                let b = load(src.add(16));
                let c = load(src.add(len - 32));
                let d = load(src.add(len - 16));
                store(dest, a);
                store(dest.add(16), b);
                store(dest.add(len - 32), c);
                store(dest.add(len - 16), d);
            }
            65..=128 => {
                let a = load(src);
                let b = load(src.add(16));
                let c = load(src.add(32));
                let d = load(src.add(48));
                let e = load(src.add(len - 64));
                let f = load(src.add(len - 48));
                let g = load(src.add(len - 32));
                let h = load(src.add(len - 16));
                store(dest, a);
                store(dest.add(16), b);
                store(dest.add(32), c);
                store(dest.add(48), d);
                store(dest.add(len - 64), e);
                store(dest.add(len - 48), f);
                store(dest.add(len - 32), g);
                store(dest.add(len - 16), h);
            }
            _ => copy_large(dest, src, len),
        }
    }
}

/// `len > 128`: head and tail held in registers, aligned 16-byte units in between.
///
/// # Safety
/// As [`memcpy`], with `len > 128`.
#[inline(always)]
unsafe fn copy_large(dest: *mut u8, src: *const u8, len: usize) {
    // SAFETY (whole body): `len > 128`; units are [i, i + 16) with 0 <= i and i + 16 <= len,
    // the head is [0, 16) and the tail [len - 16, len).
    unsafe {
        let head = load(src);
        let tail = load(src.add(len - 16));
        let gap = (dest as usize).wrapping_sub(src as usize);
        if gap >= len {
            // `dest` is below `src`, or the ranges are disjoint: forwards. Units start at the
            // first 16-byte boundary of `dest` after its first byte; the head covers [0, i).
            let mut i = 16 - (dest as usize & 15);
            while i + 64 <= len {
                let a = load(src.add(i));
                let b = load(src.add(i + 16));
                let c = load(src.add(i + 32));
                let d = load(src.add(i + 48));
                store_aligned(dest.add(i), a);
                store_aligned(dest.add(i + 16), b);
                store_aligned(dest.add(i + 32), c);
                store_aligned(dest.add(i + 48), d);
                i += 64;
            }
            while i + 16 <= len {
                store_aligned(dest.add(i), load(src.add(i)));
                i += 16;
            }
        } else {
            // `dest` is above `src` and overlaps it: backwards. Units end at the last 16-byte
            // boundary of `dest` before its end; the tail covers [end, len).
            let mut end = len - ((dest as usize + len) & 15);
            while end >= 64 {
                let a = load(src.add(end - 16));
                let b = load(src.add(end - 32));
                let c = load(src.add(end - 48));
                let d = load(src.add(end - 64));
                store_aligned(dest.add(end - 16), a);
                store_aligned(dest.add(end - 32), b);
                store_aligned(dest.add(end - 48), c);
                store_aligned(dest.add(end - 64), d);
                end -= 64;
            }
            while end >= 16 {
                store_aligned(dest.add(end - 16), load(src.add(end - 16)));
                end -= 16;
            }
        }
        store(dest, head);
        store(dest.add(len - 16), tail);
    }
}

/// Copies `len` bytes (`size_of::<T>() <= len <= 2 * size_of::<T>()`) as the first and the
/// last `T`, both loaded before either is stored.
///
/// # Safety
/// As [`memcpy`], with `len` in that range.
#[inline(always)]
unsafe fn copy_ends<T: Copy>(dest: *mut u8, src: *const u8, len: usize) {
    let width = size_of::<T>();
    // SAFETY: `width <= len`, so both accesses are within the `len` bytes the caller provides.
    unsafe {
        let a = src.cast::<T>().read_unaligned();
        let b = src.add(len - width).cast::<T>().read_unaligned();
        dest.cast::<T>().write_unaligned(a);
        dest.add(len - width).cast::<T>().write_unaligned(b);
    }
}

/// 16 bytes from `src`, any alignment.
///
/// # Safety
/// `src` valid for 16 bytes of reads.
#[inline(always)]
unsafe fn load(src: *const u8) -> __m128i {
    // SAFETY: caller's guarantee; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_loadu_si128(src.cast()) }
}

/// 16 bytes to `dest`, any alignment.
///
/// # Safety
/// `dest` valid for 16 bytes of writes.
#[inline(always)]
unsafe fn store(dest: *mut u8, value: __m128i) {
    // SAFETY: caller's guarantee; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_storeu_si128(dest.cast(), value) }
}

/// 16 bytes to a 16-byte-aligned `dest`.
///
/// # Safety
/// `dest` 16-byte aligned and valid for 16 bytes of writes.
#[inline(always)]
unsafe fn store_aligned(dest: *mut u8, value: __m128i) {
    debug_assert!((dest as usize).trailing_zeros() >= 4);
    // SAFETY: caller's guarantee; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_store_si128(dest.cast(), value) }
}
