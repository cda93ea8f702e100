//! Allocation budget of the server connection in steady state: a counting global allocator
//! watches `handle_bytes` + `poll_request` + `respond` + `poll_transmit` for many unary calls
//! (the client's bytes are built beforehand, outside the counted window).
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; this file only forwards to System.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kms_plugin_core::Timestamp;
use kms_plugin_core::TransportConfig;
use kms_plugin_core::rpc::Response;
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_testkit::Connection;
use kms_plugin_testkit::client::{
    RequestOptions, TestClient, raw_frame, settings_frame, window_update_frame,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
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

/// Allocations per request for `calls` sequential unary calls of `size`-octet messages.
fn per_request(calls: usize, size: usize, path: &str) -> f64 {
    let cfg = TransportConfig::default();
    let mut conn = Connection::new(&cfg, Timestamp::ZERO);
    let mut client = TestClient::new();
    let mut hs = client.handshake();
    hs.extend_from_slice(&raw_frame(0x4, 0x1, 0, &[]));
    // Open our send windows wide so responses never wait for credit.
    hs.extend_from_slice(&settings_frame(&[(0x4, 0x7fff_ffff)]));
    hs.extend_from_slice(&window_update_frame(0, 0x7fff_ffff - 65_535));
    // The client learns our windows (8 MiB connection window) before building its calls.
    let mut preface = Vec::new();
    conn.poll_transmit(&mut preface);
    client.receive(&preface);
    let _ = client.pending_output();
    let requests: Vec<Vec<u8>> = (0..calls)
        .map(|_| {
            client
                .unary(path, &vec![7u8; size], &RequestOptions::default())
                .1
        })
        .collect();
    let replies: Vec<SecretBytes> = (0..calls)
        .map(|_| SecretBytes::copy_from(&vec![9u8; size]))
        .collect();
    assert_eq!(client.blocked_bytes(), 0, "every call fits the windows");
    let mut out = Vec::with_capacity(1 << 20);
    conn.handle_bytes(&hs, Timestamp::ZERO);
    conn.poll_transmit(&mut out);
    out.clear();
    let mut replies = replies.into_iter();
    let before = allocations();
    for req_bytes in &requests {
        conn.handle_bytes(req_bytes, Timestamp::ZERO);
        while let Some(req) = conn.poll_request() {
            let body = replies.next().expect("one reply per call");
            conn.respond(req.stream, Response::ok(body), Timestamp::ZERO);
        }
        conn.poll_transmit(&mut out);
        out.clear();
    }
    let used = allocations() - before;
    assert_eq!(conn.in_flight(), 0);
    assert!(replies.next().is_none(), "every call was served");
    f64::from(u32::try_from(used).unwrap_or(u32::MAX))
        / f64::from(u32::try_from(calls).unwrap_or(1))
}

#[test]
fn allocations_per_unary_call_are_bounded() {
    // Known KMS paths: only the request body buffer (handed to the service as the message).
    // Other paths: plus the path string.
    for (size, path, budget) in [
        (32, "/v2.KeyManagementService/Encrypt", 1.1),
        (4096, "/v2.KeyManagementService/Decrypt", 1.1),
        (32, "/some.Other/Method", 2.1),
    ] {
        let per = per_request(1000, size, path);
        println!("{size}-octet messages on {path}: {per:.2} allocations per call");
        assert!(per <= budget, "{per}");
    }
}
