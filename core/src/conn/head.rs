//! Request header validation (RFC 9113 §8.1-§8.3, gRPC PROTOCOL-HTTP2 "Requests").
//!
//! `:authority` is deliberately never validated: grpc-go sends the percent-encoded socket
//! path (`%2Ftmp%2Fkms.sock`), older clients the raw path, abstract sockets `@name`, and
//! kube >= 1.32's v2 client `localhost` (docs/protocol.md §2). All of them must reach the service.

use alloc::borrow::Cow;
use alloc::string::String;
use core::time::Duration;

use crate::grpc;
use crate::rpc::{Code, Response};

/// What a valid request head carries to the service.
pub(crate) struct RequestHead {
    pub(crate) path: Cow<'static, str>,
    pub(crate) timeout: Option<Duration>,
    /// `content-length`, when sent (§8.1.1: must match the DATA received).
    pub(crate) content_length: Option<u64>,
}

/// How a header block failed.
pub(crate) enum HeadError {
    /// Malformed (§8.1.1): stream error PROTOCOL_ERROR.
    Malformed(&'static str),
    /// Well-formed HTTP/2 but not an acceptable gRPC request: answered with this response
    /// (and an HTTP status other than 200 when given).
    Reject(u16, Response),
}

/// Collects the fields of one header block as the HPACK decoder emits them.
pub(crate) struct HeadCollector {
    max_list_size: usize,
    list_size: usize,
    trailers: bool,
    seen_regular: bool,
    malformed: Option<&'static str>,
    method_post: Option<bool>,
    scheme: bool,
    authority: bool,
    path: Option<Cow<'static, str>>,
    content_type_ok: Option<bool>,
    content_length: Option<u64>,
    timeout: Option<Result<Duration, ()>>,
    encoding_ok: bool,
}

/// Paths interned to avoid an allocation per request (the KMS methods, docs/protocol.md §3).
const KNOWN_PATHS: [&str; 6] = [
    "/v2.KeyManagementService/Status",
    "/v2.KeyManagementService/Encrypt",
    "/v2.KeyManagementService/Decrypt",
    "/v1beta1.KeyManagementService/Version",
    "/v1beta1.KeyManagementService/Encrypt",
    "/v1beta1.KeyManagementService/Decrypt",
];

const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

impl HeadCollector {
    /// A collector for a request head (`trailers == false`) or request trailers.
    pub(crate) fn new(max_list_size: usize, trailers: bool) -> Self {
        Self {
            max_list_size,
            list_size: 0,
            trailers,
            seen_regular: false,
            malformed: None,
            method_post: None,
            scheme: false,
            authority: false,
            path: None,
            content_type_ok: None,
            content_length: None,
            timeout: None,
            encoding_ok: true,
        }
    }

    fn malformed(&mut self, why: &'static str) {
        if self.malformed.is_none() {
            self.malformed = Some(why);
        }
    }

    /// One decoded field.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) {
        // §6.5.2: the size of a field is its name and value lengths plus 32.
        self.list_size = self.list_size.saturating_add(name.len() + value.len() + 32);
        if self.list_size > self.max_list_size || self.malformed.is_some() {
            return;
        }
        // §8.2.1: field values must not contain NUL, CR or LF.
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return self.malformed("field value contains NUL, CR or LF");
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            // §8.3: pseudo-headers come before regular fields, at most once each, only
            // the defined request ones, and never in trailers (§8.1).
            if self.seen_regular || self.trailers {
                return self.malformed("pseudo-header after regular fields or in trailers");
            }
            match pseudo {
                b"method" if self.method_post.is_none() => {
                    self.method_post = Some(value == b"POST");
                }
                b"scheme" if !self.scheme => self.scheme = true,
                b"authority" if !self.authority => self.authority = true, // never validated
                b"path" if self.path.is_none() => match core::str::from_utf8(value) {
                    // Well-known paths are shared, sparing an allocation per request.
                    Ok(p) if !p.is_empty() => {
                        self.path =
                            Some(KNOWN_PATHS.iter().find(|k| **k == p).map_or_else(
                                || Cow::Owned(String::from(p)),
                                |k| Cow::Borrowed(*k),
                            ));
                    }
                    _ => self.malformed(":path is empty or not UTF-8"),
                },
                _ => self.malformed("unknown or repeated pseudo-header"),
            }
            return;
        }
        self.seen_regular = true;
        // §8.2.1: field names are lowercase tokens.
        if name.is_empty()
            || name
                .iter()
                .any(|&b| b.is_ascii_uppercase() || b <= b' ' || b >= 0x7f || b == b':')
        {
            return self.malformed("field name is empty, has uppercase or invalid characters");
        }
        // §8.2.2: connection-specific fields are malformed; `te` may only be "trailers".
        if CONNECTION_SPECIFIC.contains(&name) {
            return self.malformed("connection-specific header field");
        }
        match name {
            b"te" if value != b"trailers" => self.malformed("te other than trailers"),
            b"content-type" => self.content_type_ok = Some(grpc::is_grpc_content_type(value)),
            // §8.1.1: content-length must be one decimal number matching the DATA length.
            b"content-length" => match (self.content_length, parse_decimal(value)) {
                (None, Some(n)) => self.content_length = Some(n),
                _ => self.malformed("invalid or repeated content-length"),
            },
            b"grpc-timeout" => self.timeout = Some(grpc::parse_timeout(value).ok_or(())),
            b"grpc-encoding" => self.encoding_ok = value == b"identity",
            _ => {}
        }
    }

    /// Whether the block exceeded the header list size limit.
    pub(crate) fn too_large(&self) -> bool {
        self.list_size > self.max_list_size
    }

    /// The verdict on a request's trailers (§8.1): only malformation matters.
    pub(crate) fn finish_trailers(&self) -> Result<(), HeadError> {
        self.malformed
            .map_or(Ok(()), |m| Err(HeadError::Malformed(m)))
    }

    /// The verdict on a request head.
    pub(crate) fn finish(self) -> Result<RequestHead, HeadError> {
        if self.too_large() {
            return Err(HeadError::Reject(
                200,
                Response::error(Code::ResourceExhausted, "request header list too large"),
            ));
        }
        if let Some(m) = self.malformed {
            return Err(HeadError::Malformed(m));
        }
        // §8.3.1: :method, :scheme and :path are mandatory in a request.
        let (Some(post), true, Some(path)) = (self.method_post, self.scheme, self.path) else {
            return Err(HeadError::Malformed("missing :method, :scheme or :path"));
        };
        // gRPC PROTOCOL-HTTP2: only POST; grpc-go answers other methods with HTTP 405.
        if !post {
            return Err(HeadError::Reject(
                405,
                Response::error(Code::Internal, "gRPC requires the POST method"),
            ));
        }
        // gRPC PROTOCOL-HTTP2 "Content-Type": anything but application/grpc[+/;..] is
        // answered with HTTP 415 Unsupported Media Type.
        if self.content_type_ok != Some(true) {
            return Err(HeadError::Reject(
                415,
                Response::error(Code::Internal, "content-type must be application/grpc"),
            ));
        }
        // We advertise no compression (no grpc-accept-encoding): only identity is accepted.
        if !self.encoding_ok {
            return Err(HeadError::Reject(
                200,
                Response::error(
                    Code::Unimplemented,
                    "grpc-encoding not supported; send identity",
                ),
            ));
        }
        let timeout = match self.timeout {
            None => None,
            Some(Ok(t)) => Some(t),
            // grpc-go answers an unparseable grpc-timeout with INTERNAL.
            Some(Err(())) => {
                return Err(HeadError::Reject(
                    200,
                    Response::error(Code::Internal, "malformed grpc-timeout"),
                ));
            }
        };
        Ok(RequestHead {
            path,
            timeout,
            content_length: self.content_length,
        })
    }
}

/// A non-empty run of at most 18 ASCII digits (fits u64 without overflow).
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')),
    )
}
