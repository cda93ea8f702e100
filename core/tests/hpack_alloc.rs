//! Steady-state decoding allocates nothing: a counting global allocator watches the decoder
//! while it inserts, evicts, Huffman-decodes and emits fields block after block.
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; this file only forwards to System.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kms_plugin_core::hpack::{Decoder, Encoder};

struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the slot may be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A block that exercises every representation: indexed static and dynamic fields, literals
/// with incremental indexing that evict older entries (new and indexed names), never-indexed
/// and without-indexing literals, raw and Huffman strings.
fn busy_block(round: u8) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84]; // :method GET, :scheme https, :path /
    for i in 0..40u8 {
        // 0x40: literal with incremental indexing, new name (raw), value (raw).
        block.extend_from_slice(&[0x40, 0x06]);
        block.extend_from_slice(b"x-key-");
        block.push(0x40); // 64-octet value: about 16 entries fit in 4096
        block.extend(std::iter::repeat_n(b'a' + (i + round) % 26, 64));
        block.push(0xbe); // index 62: the entry just added
    }
    // 0x7e: incremental indexing, name index 62; Huffman value "www.example.com".
    block.extend_from_slice(b"\x7e\x8c\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff");
    block.extend_from_slice(b"\x10\x01k\x01v"); // never indexed, new name
    block.extend_from_slice(b"\x0f\x10\x10application/grpc"); // without indexing
    block
}

#[test]
fn steady_state_decoding_does_not_allocate() {
    let blocks: Vec<Vec<u8>> = (0..26).map(busy_block).collect();
    let mut decoder = Decoder::default();
    let mut fields = 0usize;
    let mut octets = 0usize;
    let mut emit = |n: &[u8], v: &[u8], _: bool| {
        fields += 1;
        octets += n.len() + v.len();
    };
    // Warm up: buffers grow to their working size.
    for block in &blocks {
        decoder.decode(block, &mut emit).unwrap();
    }
    let before = allocations();
    for _ in 0..20 {
        for block in &blocks {
            decoder.decode(block, &mut emit).unwrap();
        }
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "allocations while decoding 520 warm blocks");
    assert!(decoder.table_len() > 10 && fields > 40_000 && octets > 1_000_000);
}

#[test]
fn encoding_into_a_reused_buffer_does_not_allocate() {
    let mut encoder = Encoder::with_huffman();
    let mut out = Vec::with_capacity(256);
    let before = allocations();
    for _ in 0..1000 {
        out.clear();
        encoder.encode_field(b":status", b"200", false, &mut out);
        encoder.encode_field(b"content-type", b"application/grpc", false, &mut out);
        encoder.encode_field(b"grpc-status", b"0", false, &mut out);
        encoder.encode_field(b"grpc-message", b"ok%20then", false, &mut out);
    }
    assert_eq!(allocations() - before, 0);
    assert!(!out.is_empty());
}
