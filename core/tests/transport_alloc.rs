//! Allocation budget of the request path: a counting global allocator watches a warmed-up
//! connection take requests, answer them and write responses into a reused output buffer.
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; this file only forwards to System.

mod raw_peer;
use raw_peer::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn one(conn: &mut Connection, bytes: &[u8], out: &mut Vec<u8>) {
    conn.handle_bytes(bytes, Timestamp::ZERO);
    let Request {
        stream, message, ..
    } = conn.poll_request().expect("request");
    conn.respond(stream, Response::ok(message), Timestamp::ZERO);
    out.clear();
    assert!(conn.poll_transmit(out));
    while conn.poll_event().is_some() {}
}

#[test]
fn steady_state_request_path_allocations() {
    let mut conn = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut hello = PREFACE.to_vec();
    hello.extend(settings_frame(&[]));
    hello.extend(raw_frame(4, 1, 0, &[]));
    hello.extend(window_update_frame(0, 1 << 30));
    conn.handle_bytes(&hello, Timestamp::ZERO);
    let requests: Vec<Vec<u8>> = (0..300u32).map(|i| request(2 * i + 1, &[7; 64])).collect();
    let mut out = Vec::with_capacity(1 << 16);
    for r in &requests[..100] {
        one(&mut conn, r, &mut out);
    }
    let before = allocations();
    for r in &requests[100..] {
        one(&mut conn, r, &mut out);
    }
    let total = allocations() - before;
    println!(
        "{total} allocations for 200 requests (handle_bytes + poll_request + respond + poll_transmit)"
    );
    // Budget: a few per request (the :path string, the message buffer, the stream's state);
    // nothing per frame.
    assert!(total <= 4 * 200, "{total} allocations for 200 requests");
}
