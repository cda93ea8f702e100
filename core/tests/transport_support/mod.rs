//! Shared helpers for the transport tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use kms_plugin_core::conn::{ConnEvent, Connection, TransportConfig};
pub use kms_plugin_core::h2::Reason;
pub use kms_plugin_core::rpc::{Code, Request, Response};
pub use kms_plugin_core::secret::SecretBytes;
pub use kms_plugin_core::testing::client::{
    ClientResponse, Pair, RequestOptions, TestClient, echo,
};
pub use kms_plugin_core::time::Timestamp;

/// A connected pair with the default config.
pub fn pair() -> Pair {
    Pair::new(&TransportConfig::default())
}

/// Default request options.
pub fn opts() -> RequestOptions {
    RequestOptions::default()
}

/// A raw frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    TestClient::frame(kind, flags, stream, payload)
}

/// The server's GOAWAY code, if any.
pub fn goaway_code(p: &Pair) -> Option<u32> {
    p.client.goaway().map(|(_, c)| c)
}

/// Encodes `fields` in order with a fresh static-only HPACK encoder.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut e = kms_plugin_core::hpack::Encoder::new();
    let mut out = Vec::new();
    for (n, v) in fields {
        e.encode_field(n.as_bytes(), v.as_bytes(), false, &mut out);
    }
    out
}

/// The standard request fields grpc-go sends.
pub const GOOD: &[(&str, &str)] = &[
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/x"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
];

/// HEADERS(END_HEADERS) + DATA(one message, END_STREAM) for `fields` on `stream`.
pub fn request(stream: u32, fields: &[(&str, &str)], message: &[u8]) -> Vec<u8> {
    let mut bytes = frame(1, 0x4, stream, &block(fields));
    let mut body = vec![0];
    body.extend((message.len() as u32).to_be_bytes());
    body.extend(message);
    bytes.extend(frame(0, 0x1, stream, &body));
    bytes
}
