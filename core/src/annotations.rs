//! Annotation keys and limits of KMS v2 (lowercase FQDN keys, <= 32 KiB in total).
//!
//! kube-apiserver runs `ValidateEncryptedObject` on every `EncryptResponse`
//! (docs/protocol.md §4): each annotation key must pass APIMACHINERY
//! `validation.IsFullyQualifiedDomainName`, and `Σ len(key) + len(value)` must not exceed
//! `annotationsMaxSize = 32 * 1024`. A response that fails is thrown away and the apiserver
//! turns unhealthy, so the plugin checks the same rules before answering. [`is_valid_key`]
//! reproduces the Go function exactly.

/// Annotation key holding the remote-wrapped local KEK (KMS v2 Encrypt/Decrypt).
///
/// A lowercase FQDN of the plugin's own domain (docs/protocol.md §4 FQDN rule; the KEP's
/// `kms.kubernetes.io/local-kek` is invalid because of the `/`).
pub const WRAPPED_KEK_KEY: &str = "wrapped-kek.kms-plugin.io";

/// Annotation key holding the envelope format version (value [`FORMAT_VALUE_V1`]).
pub const FORMAT_KEY: &str = "format.kms-plugin.io";

/// The value of [`FORMAT_KEY`] for the current v2 envelope format.
pub const FORMAT_VALUE_V1: &[u8] = b"1";

/// The most annotation bytes kube-apiserver accepts: `Σ len(key) + len(value)`
/// (docs/protocol.md §4, `annotationsMaxSize = 32 * 1024`; the apiserver rejects
/// `> annotationsMaxSize`).
pub const MAX_TOTAL_BYTES: usize = 32 * 1024;

/// `DNS1123SubdomainMaxLength` (APIMACHINERY `validation.go`).
const SUBDOMAIN_MAX_LEN: usize = 253;
/// `DNS1123LabelMaxLength` (APIMACHINERY `validation.go`).
const LABEL_MAX_LEN: usize = 63;

/// Why a set of annotations would be rejected by kube-apiserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnotationError {
    /// A key is not a fully qualified domain name (docs/protocol.md §4 FQDN rule).
    InvalidKey,
    /// `Σ len(key) + len(value)` exceeds [`MAX_TOTAL_BYTES`].
    TooLarge,
}

impl core::fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::InvalidKey => "annotation key is not a lowercase fully qualified domain name",
            Self::TooLarge => "annotations exceed 32 KiB in total",
        })
    }
}

impl core::error::Error for AnnotationError {}

/// Whether `key` passes APIMACHINERY `IsFullyQualifiedDomainName` (docs/protocol.md §4), exactly:
///
/// 1. empty is invalid;
/// 2. a single trailing `.` is stripped;
/// 3. the rest must be a DNS-1123 subdomain: at most 253 bytes matching
///    `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`;
/// 4. it needs at least two `.`-separated labels, each a DNS-1123 label (at most 63 bytes).
pub fn is_valid_key(key: &str) -> bool {
    if key.is_empty() {
        return false;
    }
    let name = key.strip_suffix('.').unwrap_or(key);
    if name.len() > SUBDOMAIN_MAX_LEN {
        return false;
    }
    let mut labels = 0usize;
    for label in name.split('.') {
        if !is_dns1123_label(label) {
            return false;
        }
        labels += 1;
    }
    labels >= 2
}

/// One DNS-1123 label: 1..=63 bytes of `[a-z0-9-]`, starting and ending alphanumeric.
fn is_dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= LABEL_MAX_LEN
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Checks what kube-apiserver checks on `EncryptResponse.annotations` (docs/protocol.md §4):
/// every key valid ([`is_valid_key`]) and `Σ len(key) + len(value) <= MAX_TOTAL_BYTES`.
///
/// A key error takes precedence over a size error, whatever the order.
pub fn validate<'a>(
    annotations: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), AnnotationError> {
    let mut total = 0usize;
    let mut too_large = false;
    for (key, value) in annotations {
        if !is_valid_key(key) {
            return Err(AnnotationError::InvalidKey);
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
        too_large |= total > MAX_TOTAL_BYTES;
    }
    if too_large {
        Err(AnnotationError::TooLarge)
    } else {
        Ok(())
    }
}
