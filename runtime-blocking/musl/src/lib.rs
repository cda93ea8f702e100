//! `memcpy`, `memmove`, `memcmp` and `bcmp` for the static musl `kms-plugin` binary.
//!
//! The static pod runs a musl binary: 1.2 MiB, ~1.3 MiB resident, a plain static executable
//! (docs/performance.md). musl's x86_64 `memcpy`/`memmove` cost ~35 ns per call whatever the
//! size, and a KMS request makes ~45 calls; its `memcmp` (which its `bcmp` calls) is a byte
//! loop, ~14 calls a request. [`mod@mem`] has the replacements. (musl's other
//! slow spot, `malloc`, is replaced by dlmalloc in `runtime-blocking/src/main.rs`.)
//!
//! `runtime-blocking` depends on this crate only when building for musl x86_64, with the
//! `export` feature (the C symbols). Without `export` everything here is ordinary Rust, which
//! is how the tests run it on any target.
//!
//! The crate is `#![no_builtins]`, which keeps it out of LTO; it must then not use `std`
//! (LTO internalises std's symbols), so it is `no_std` and has no dependencies.
#![no_std]
#![no_builtins]
// Raw memory is this crate's whole purpose: its entry points have the C contract, and each
// `unsafe` block says which part of the contract it relies on.
#![allow(unsafe_code)]
// The helpers exist for readability; they must disappear into the entry points.
#![allow(clippy::inline_always)]
// Registers named a, b, c… in load order read best in the unrolled copies.
#![allow(clippy::many_single_char_names)]

#[cfg(target_arch = "x86_64")]
pub mod mem;

#[cfg(target_arch = "x86_64")]
pub use mem::{bcmp, memcmp, memcpy, memmove};
