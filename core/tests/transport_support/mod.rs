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
