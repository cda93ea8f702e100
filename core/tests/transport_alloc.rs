//! Allocation budget of the request path: a counting global allocator watches a warmed-up
//! connection take requests, answer them and write responses into a reused output buffer.
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; this file only forwards to System.

mod transport_support;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use transport_support::*;

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

#[test]
fn steady_state_request_path_allocations() {
    let mut conn = Connection::new(&TransportConfig::default(), Timestamp::ZERO);
    let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    input.extend(frame(4, 0, 0, &[]));
    input.extend(frame(4, 1, 0, &[]));
    conn.handle_bytes(&input, Timestamp::ZERO);
    let requests: Vec<Vec<u8>> = (0..300u32)
        .map(|i| request(2 * i + 1, GOOD, &[7; 64]))
        .collect();
    let mut out = Vec::with_capacity(1 << 16);
    let one = |conn: &mut Connection, bytes: &[u8], out: &mut Vec<u8>| {
        conn.handle_bytes(bytes, Timestamp::ZERO);
        let req = conn.poll_request().expect("request");
        let Request {
            stream, message, ..
        } = req;
        conn.respond(stream, Response::ok(message), Timestamp::ZERO);
        out.clear();
        assert!(conn.poll_transmit(out));
        while conn.poll_event().is_some() {}
    };
    for r in &requests[..100] {
        one(&mut conn, r, &mut out);
    }
    let before = allocations();
    for r in &requests[100..] {
        one(&mut conn, r, &mut out);
    }
    let total = allocations() - before;
    // Per request: the :path String and the exactly-reserved message buffer (moved into the
    // Request and, here, back out as the response body).
    println!("{total} allocations for 200 requests");
    assert!(total <= 2 * 200, "{total} allocations for 200 requests");
}
