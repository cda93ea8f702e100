//! Hand-built frames for raw-peer transport tests, which drive the shared harness
//! (`kms_plugin_testkit::h2_harness::Harness::raw_connected` / `feed`) byte for byte; the
//! server's output is parsed and checked by the shared test client.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use kms_plugin_core::h2::PREFACE;
pub use kms_plugin_core::h2::reason::Reason;
pub use kms_plugin_core::hpack::Encoder;
pub use kms_plugin_core::rpc::{Code, Request, Response};
pub use kms_plugin_core::secret::SecretBytes;
pub use kms_plugin_core::time::Timestamp;
pub use kms_plugin_core::{ConnEvent, TransportConfig};
pub use kms_plugin_testkit::Connection;
pub use kms_plugin_testkit::client::{
    grpc_message, pad_payload, ping_frame, raw_frame, rst_stream_frame, settings_frame,
    window_update_frame,
};
pub use kms_plugin_testkit::h2_harness::Harness;

/// The request fields grpc-go sends.
pub const GOOD: &[(&str, &str)] = &[
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/x"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
];

/// `fields` encoded with a fresh HPACK encoder (static table and literals only, so blocks
/// from different calls can be mixed freely).
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    for (n, v) in fields {
        e.encode_field(n.as_bytes(), v.as_bytes(), false, &mut out);
    }
    out
}

/// HEADERS(END_HEADERS) + DATA(one gRPC message, END_STREAM) on `stream`.
pub fn request(stream: u32, message: &[u8]) -> Vec<u8> {
    let mut bytes = raw_frame(1, 0x4, stream, &block(GOOD));
    bytes.extend(raw_frame(0, 0x1, stream, &grpc_message(message)));
    bytes
}
