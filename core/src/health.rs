//! healthz causes: short, bounded, non-secret strings (docs/protocol.md §4: anything but `ok`
//! fails the apiserver's check and is shown in its `/readyz` output).

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
