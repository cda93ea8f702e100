//! Exact-bytes transcripts of our responses (golden bytes).

mod transport_support;
use transport_support::*;

fn respond_with(resp: fn() -> Response) -> Vec<u8> {
    let mut p = pair();
    let start = p.server_bytes.len();
    p.unary("/x", b"abc", &opts(), &mut |_: &Request| Some(resp()));
    p.server_bytes[start..].to_vec()
}

#[test]
fn ok_response_bytes() {
    let got = respond_with(|| Response::ok(SecretBytes::copy_from(b"abc")));
    let mut want = vec![0, 0, 20, 1, 0x4, 0, 0, 0, 1]; // HEADERS, END_HEADERS, stream 1
    want.extend([0x88, 0x0f, 0x10, 16]); // :status 200; content-type (static name 31), 16 bytes
    want.extend(b"application/grpc");
    want.extend([0, 0, 8, 0, 0, 0, 0, 0, 1]); // DATA, stream 1
    want.extend([0, 0, 0, 0, 3, b'a', b'b', b'c']); // 5-byte prefix + message
    want.extend([0, 0, 15, 1, 0x5, 0, 0, 0, 1]); // HEADERS, END_HEADERS|END_STREAM
    want.extend([0, 11]);
    want.extend(b"grpc-status");
    want.extend([1, b'0']);
    // The client's WINDOW_UPDATEs do not appear: these are server bytes only.
    assert_eq!(got, want);
}

#[test]
fn error_response_bytes() {
    let got = respond_with(|| Response::error(Code::NotFound, "no 100%"));
    let mut want = vec![0, 0, 59, 1, 0x5, 0, 0, 0, 1]; // one HEADERS, END_HEADERS|END_STREAM
    want.extend([0x88, 0x0f, 0x10, 16]);
    want.extend(b"application/grpc");
    want.extend([0, 11]);
    want.extend(b"grpc-status");
    want.extend([1, b'5']);
    want.extend([0, 12]);
    want.extend(b"grpc-message");
    want.extend([9]);
    want.extend(b"no 100%25");
    assert_eq!(got, want);
}
