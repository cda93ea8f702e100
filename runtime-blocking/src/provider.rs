//! Remote KEK providers as the blocking runtime executes them.
//!
//! The core asks for remote work through `Effect::Remote`; the runtime runs the matching
//! provider call on a worker thread and feeds the answer back with `Plugin::handle_remote`.

#[cfg(feature = "kmip")]
pub mod kmip;
pub mod local;
pub mod logged;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod remote;
pub mod resilient;
pub mod secret_file;
#[cfg(feature = "vault")]
pub mod vault;

use std::time::Instant;

use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteOp, RemoteReply};

/// A remote KEK (key file, Vault/OpenBao Transit, PKCS#11 HSM, KMIP server) behind blocking calls.
///
/// Implementations must be safe to call from several threads at once, must give up by
/// `deadline` (returning [`kms_plugin_core::RemoteErrorKind::Timeout`]), and must never put
/// secrets into the errors they return.
pub trait KekProvider: Send + Sync + 'static {
    /// Short provider name for logs and metrics: `local`, `vault`, `pkcs11`, `kmip`.
    fn name(&self) -> &'static str;
    /// The current remote key id (non-secret, 1..=1024 bytes, never reused) if the remote
    /// KEK is usable.
    fn status(&self, deadline: Instant) -> Result<String, RemoteError>;
    /// Wraps `kek` under exactly the remote key `key_id`.
    fn wrap(&self, key_id: &str, kek: &Secret32, deadline: Instant)
    -> Result<Vec<u8>, RemoteError>;
    /// Unwraps a blob produced by [`KekProvider::wrap`] under `key_id`.
    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        deadline: Instant,
    ) -> Result<Secret32, RemoteError>;
    /// Appends the provider's own metric families (Prometheus text format, bounded labels) to
    /// `/metrics`; none by default.
    fn render_metrics(&self, _out: &mut String) {}
    /// A condition under which the provider works but that operators must see wherever they
    /// check health (`/readyz`, the log line on becoming healthy), e.g. Vault over plain http.
    /// Never changes Status healthz: kube-apiserver stops using a plugin whose healthz is
    /// not `ok`. `None` by default.
    fn health_warning(&self) -> Option<&'static str> {
        None
    }
}

/// Runs one core [`RemoteOp`] against `provider`.
pub fn execute(
    provider: &dyn KekProvider,
    op: &RemoteOp,
    deadline: Instant,
) -> Result<RemoteReply, RemoteError> {
    match op {
        RemoteOp::Status => provider
            .status(deadline)
            .map(|key_id| RemoteReply::Status { key_id }),
        RemoteOp::Wrap { key_id, kek } => provider
            .wrap(key_id, kek, deadline)
            .map(|wrapped| RemoteReply::Wrapped { wrapped }),
        RemoteOp::Unwrap { key_id, wrapped } => provider
            .unwrap(key_id, wrapped, deadline)
            .map(|kek| RemoteReply::Unwrapped { kek }),
    }
}
