//! A local keyring file as an [`AsyncKekProvider`] (the embedded default; see the blocking
//! runtime's `keyfile` module for the CLI that manages the file). Loaded once; the work is
//! in memory, so the futures complete at once.

use std::path::Path;
use std::sync::Arc;

use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};

use super::{AsyncKekProvider, BoxFuture};

/// Serves key `name` of a keyring.
pub struct LocalKeyring {
    keyring: Arc<Keyring>,
    name: String,
}

impl LocalKeyring {
    /// Loads `path` (refusing a file readable by group/others) and serves key `name`.
    pub fn open(path: &Path, name: &str) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "key file {} is readable by group/others; chmod 600 it",
                path.display()
            ));
        }
        let text = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|e| format!("key file {}: {e}", path.display()))?,
        );
        let keyring =
            Keyring::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))?;
        Self::new(keyring, name)
    }

    /// Serves key `name` of `keyring`.
    pub fn new(keyring: Keyring, name: &str) -> Result<Self, String> {
        if keyring.current_key_id(name).is_none() {
            return Err(format!("the keyring has no key named {name:?}"));
        }
        Ok(Self {
            keyring: Arc::new(keyring),
            name: name.to_string(),
        })
    }
}

impl AsyncKekProvider for LocalKeyring {
    fn name(&self) -> &'static str {
        "local"
    }

    fn status(&self) -> BoxFuture<'_, Result<String, RemoteError>> {
        let r = self
            .keyring
            .current_key_id(&self.name)
            .ok_or_else(|| RemoteError::new(RemoteErrorKind::NotFound, "no such key"));
        Box::pin(async move { r })
    }

    fn wrap<'a>(
        &'a self,
        key_id: &'a str,
        kek: &'a Secret32,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        let mut nonce = [0u8; 12];
        let r = getrandom::getrandom(&mut nonce)
            .map_err(|e| RemoteError::new(RemoteErrorKind::Other, format!("entropy: {e}")))
            .and_then(|()| self.keyring.wrap(key_id, kek, nonce));
        Box::pin(async move { r })
    }

    fn unwrap<'a>(
        &'a self,
        key_id: &'a str,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Secret32, RemoteError>> {
        let r = self.keyring.unwrap(key_id, wrapped);
        Box::pin(async move { r })
    }
}
