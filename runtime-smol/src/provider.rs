//! Remote KEK providers as the smol runtime executes them (async, cancel on drop).

pub mod local;
pub mod resilient;
pub mod secret_file;
pub mod vault;

use std::future::Future;
use std::pin::Pin;

use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteOp, RemoteReply};

/// A boxed, sendable future (keeps the trait object-safe without extra crates).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A remote KEK behind async calls. Dropping a returned future cancels the call. The runtime
/// bounds every call by the core's deadline; implementations must never put secrets into the
/// errors they return.
pub trait AsyncKekProvider: Send + Sync + 'static {
    /// Short provider name for logs and metrics: `local`, `vault`, `pkcs11`.
    fn name(&self) -> &'static str;
    /// The current remote key id if the remote KEK is usable.
    fn status(&self) -> BoxFuture<'_, Result<String, RemoteError>>;
    /// Wraps `kek` under exactly the remote key `key_id`.
    fn wrap<'a>(
        &'a self,
        key_id: &'a str,
        kek: &'a Secret32,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>>;
    /// Unwraps a blob produced by [`AsyncKekProvider::wrap`] under `key_id`.
    fn unwrap<'a>(
        &'a self,
        key_id: &'a str,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Secret32, RemoteError>>;
}

/// Runs one core [`RemoteOp`] against `provider`.
pub async fn execute(
    provider: &dyn AsyncKekProvider,
    op: &RemoteOp,
) -> Result<RemoteReply, RemoteError> {
    match op {
        RemoteOp::Status => provider
            .status()
            .await
            .map(|key_id| RemoteReply::Status { key_id }),
        RemoteOp::Wrap { key_id, kek } => provider
            .wrap(key_id, kek)
            .await
            .map(|wrapped| RemoteReply::Wrapped { wrapped }),
        RemoteOp::Unwrap { key_id, wrapped } => provider
            .unwrap(key_id, wrapped)
            .await
            .map(|kek| RemoteReply::Unwrapped { kek }),
    }
}
