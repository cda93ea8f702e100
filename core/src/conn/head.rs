//! Request header validation (RFC 9113 §8.2, §8.3) and the gRPC fields we read
//! (PROTOCOL-HTTP2 "Requests"). Fed one decoded field at a time from the HPACK callback.

use alloc::string::String;
use core::time::Duration;

use crate::grpc;

/// What one decoded header block told us. `:authority` is deliberately never inspected
/// (kms-protocol spec §1.3: grpc-go sends a percent-encoded socket path).
#[derive(Default)]
pub(crate) struct RequestHead {
    /// Sum of name + value + 32 per field (RFC 9113 §6.5.2, RFC 7541 §4.1).
    pub(crate) list_size: usize,
    /// The cap on `list_size`; fields beyond it are still decoded but not recorded.
    pub(crate) list_cap: usize,
    /// The first §8.2/§8.3 violation.
    pub(crate) malformed: Option<&'static str>,
    pub(crate) any_pseudo: bool,
    regular_seen: bool,
    pub(crate) method: Option<bool>,
    scheme: bool,
    authority: bool,
    pub(crate) path: Option<String>,
    /// `Some(true)` for a gRPC content-type.
    pub(crate) grpc_content_type: Option<bool>,
    /// `Some(false)` when `grpc-encoding` names anything but identity.
    pub(crate) identity_encoding: Option<bool>,
    /// A well-formed `grpc-timeout`.
    pub(crate) timeout: Option<Duration>,
    /// Whether `grpc-timeout` was present but malformed.
    pub(crate) timeout_malformed: bool,
}

impl RequestHead {
    /// An empty head with the given header-list cap.
    pub(crate) fn new(list_cap: usize) -> Self {
        Self {
            list_cap,
            ..Self::default()
        }
    }

    /// Whether the decoded list exceeded the cap.
    pub(crate) fn oversize(&self) -> bool {
        self.list_size > self.list_cap
    }

    fn bad(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }

    /// Records one field.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) {
        self.list_size = self.list_size.saturating_add(name.len() + value.len() + 32);
        if self.oversize() || self.malformed.is_some() {
            return;
        }
        // §8.2.1: values must not contain NUL, CR or LF, nor start or end with whitespace.
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
            || value.first().is_some_and(|&b| b == b' ' || b == b'\t')
            || value.last().is_some_and(|&b| b == b' ' || b == b'\t')
        {
            return self.bad("invalid field value");
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            self.pseudo(pseudo, value);
        } else {
            self.regular(name, value);
        }
    }

    fn pseudo(&mut self, name: &[u8], value: &[u8]) {
        self.any_pseudo = true;
        // §8.3: pseudo-header fields must precede regular fields.
        if self.regular_seen {
            return self.bad("pseudo-header after regular field");
        }
        let duplicate = match name {
            b"method" => self.method.replace(value == b"POST").is_some(),
            b"scheme" => core::mem::replace(&mut self.scheme, true),
            b"authority" => core::mem::replace(&mut self.authority, true),
            b"path" => {
                // §8.3.1: `:path` must not be empty.
                let Ok(path) = core::str::from_utf8(value) else {
                    return self.bad("non-UTF-8 :path");
                };
                if path.is_empty() {
                    return self.bad("empty :path");
                }
                self.path.replace(String::from(path)).is_some()
            }
            // §8.3: undefined pseudo-headers (and response ones like :status) are malformed.
            _ => return self.bad("unknown pseudo-header"),
        };
        // §8.3.1: each request pseudo-header appears at most once.
        if duplicate {
            self.bad("duplicate pseudo-header");
        }
    }

    fn regular(&mut self, name: &[u8], value: &[u8]) {
        self.regular_seen = true;
        // §8.2.1: names are lowercase tokens (no uppercase, controls, space, DEL, non-ASCII or ':').
        if name.is_empty()
            || name
                .iter()
                .any(|&b| b.is_ascii_uppercase() || b <= 0x20 || b >= 0x7f || b == b':')
        {
            return self.bad("invalid field name");
        }
        match name {
            // §8.2.2: connection-specific fields are malformed.
            b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding"
            | b"upgrade" => {
                self.bad("connection-specific field");
            }
            // §8.2.2: `te` may only be "trailers".
            b"te" if value != b"trailers" => self.bad("te other than trailers"),
            b"content-type" => self.grpc_content_type = Some(grpc::is_grpc_content_type(value)),
            b"grpc-encoding" => self.identity_encoding = Some(value == b"identity"),
            b"grpc-timeout" => {
                self.timeout = grpc::parse_timeout(value);
                self.timeout_malformed = self.timeout.is_none();
            }
            _ => {}
        }
    }

    /// §8.3.1: a request must carry `:method`, `:scheme` and `:path` (`:authority` optional).
    pub(crate) fn check_request(&mut self) {
        if self.malformed.is_none()
            && (self.method.is_none() || !self.scheme || self.path.is_none())
        {
            self.bad("missing pseudo-header");
        }
    }
}
