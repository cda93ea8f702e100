//! healthz causes: short, bounded, non-secret strings (docs/protocol.md §4: anything but `ok`
//! fails the apiserver's check and is shown in its `/readyz` output).

use alloc::string::String;

use crate::effect::RemoteErrorKind;

/// The value of healthz when Encrypt and Decrypt would work right now.
pub const OK: &str = "ok";
/// No remote Status has completed yet.
pub const AWAITING_STATUS: &str = "waiting for first remote kms status";
/// The last successful remote Status is older than `status_staleness`.
pub const STATUS_STALE: &str = "remote kms status stale";
/// A remote key id is known but no local KEK has been wrapped under it yet.
pub const NO_LOCAL_KEK: &str = "no local KEK yet";
/// The current local KEK reached `max_uses` or `max_age` and no fresh one is installed yet.
pub const LOCAL_KEK_WORN_OUT: &str = "local KEK worn out, rotation pending";
/// An unwrap answered `key_version_missing` and none under that remote key id has succeeded
/// since. v2 Status names the version: healthz is this, `: `, and the remote's detail.
pub const KEY_VERSION_MISSING: &str = "key version missing";

/// Whether `cause` is a start-up stage (no remote answer or no local KEK yet, and no failure
/// seen), which every plugin passes through before its first `ok`: logged at info, not warn.
#[must_use]
pub fn is_startup_stage(cause: &str) -> bool {
    cause == AWAITING_STATUS || cause == NO_LOCAL_KEK
}

/// The cause reported when the remote failed with `kind`.
pub const fn remote_cause(kind: RemoteErrorKind) -> &'static str {
    match kind {
        RemoteErrorKind::Timeout => "remote kms unreachable: timeout",
        RemoteErrorKind::Unavailable => "remote kms unreachable: unavailable",
        RemoteErrorKind::Auth => "remote kms error: auth",
        RemoteErrorKind::NotFound => "remote kms error: not_found",
        RemoteErrorKind::KeyVersionMissing => "remote kms error: key_version_missing",
        RemoteErrorKind::Permission => "remote kms error: permission",
        RemoteErrorKind::Throttled => "remote kms error: throttled",
        RemoteErrorKind::Corrupt => "remote kms error: corrupt",
        RemoteErrorKind::Other => "remote kms error: other",
    }
}

/// A healthz verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Whether Encrypt and Decrypt would work right now.
    pub ok: bool,
    /// [`OK`] or a short cause.
    pub cause: &'static str,
}

impl Health {
    /// Healthy.
    pub const HEALTHY: Self = Self {
        ok: true,
        cause: OK,
    };

    /// Unhealthy because of `cause`.
    pub const fn failing(cause: &'static str) -> Self {
        Self { ok: false, cause }
    }
}

/// The gRPC trailer that carries a [`HealthWarning`] on v2 Status answers.
pub const WARNING_TRAILER: &str = "kms-plugin-warning";

/// The longest [`HealthWarning`], in octets.
pub const MAX_WARNING_LEN: usize = 200;

/// An operator-facing warning about how the plugin runs (e.g. a remote KMS reached over plain
/// http) that does not make it unhealthy: healthz stays `ok`, and v2 Status answers carry the
/// text in the [`WARNING_TRAILER`] trailer for `kms-plugin probe` to print.
///
/// Guarantees: 1 to [`MAX_WARNING_LEN`] octets of printable ASCII (0x20..=0x7E), neither
/// starting nor ending with a space, so it is always a valid HTTP/2 field value
/// (RFC 9113 §8.2.1) and safe to print on a terminal or in a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthWarning(String);

impl HealthWarning {
    /// `text` made safe: every byte outside 0x20..=0x7E (controls, DEL, any non-ASCII
    /// character) is dropped, then leading spaces, then all past [`MAX_WARNING_LEN`] octets,
    /// then trailing spaces. `None` when nothing is left.
    #[must_use]
    pub fn new(text: &str) -> Option<Self> {
        let mut kept: String = text
            .bytes()
            .filter(|b| (0x20..=0x7e).contains(b))
            .skip_while(|&b| b == b' ')
            .take(MAX_WARNING_LEN)
            .map(char::from)
            .collect();
        kept.truncate(kept.trim_end_matches(' ').len());
        (!kept.is_empty()).then_some(Self(kept))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_keeps_printable_ascii_only_bounded_and_trimmed() {
        let w = HealthWarning::new(" plain\r\nhttp\u{7f} \u{e9}t\u{e9} ").unwrap();
        assert_eq!(w.as_str(), "plainhttp t");
        let long = "x".repeat(3 * MAX_WARNING_LEN);
        assert_eq!(
            HealthWarning::new(&long).unwrap().as_str().len(),
            MAX_WARNING_LEN
        );
        assert_eq!(HealthWarning::new(" \t\u{1b} "), None);
        assert_eq!(HealthWarning::new(""), None);
    }
}
