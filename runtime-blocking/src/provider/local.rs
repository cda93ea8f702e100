//! The embedded default provider: a local key file (see `keyfile`), re-read when it changes.
//!
//! `status` (issued by the core on its refresh timer) checks the file's stamp and reloads it
//! when it was replaced, so `kms-plugin keys rotate` takes effect without a restart: Status
//! then reports the new key id, new local KEKs are wrapped under it, and every old version
//! stays in the file to unwrap old ones. A file that became unreadable or corrupt keeps the
//! last good keyring for unwrapping and makes `status` fail (healthz shows the cause).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};

use super::KekProvider;
use crate::keyfile::{self, FileStamp};

/// A [`KekProvider`] over a local keyring file.
pub struct LocalKeyFile {
    path: PathBuf,
    key_name: String,
    state: Mutex<(Keyring, FileStamp)>,
}

impl LocalKeyFile {
    /// Loads `path` (errors are one operator-facing line) and serves key `key_name` from it.
    pub fn open(path: PathBuf, key_name: String) -> Result<Self, String> {
        let (keyring, stamp) = keyfile::load(&path)?;
        if keyring.current_key_id(&key_name).is_none() {
            return Err(format!(
                "key file {} has no key named {key_name:?} (KMS_KEY_ID); add it with \
                 `kms-plugin keys rotate --key-file {} --key-name {key_name}`",
                path.display(),
                path.display()
            ));
        }
        Ok(Self {
            path,
            key_name,
            state: Mutex::new((keyring, stamp)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Keyring, FileStamp)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reloads the file if its stamp changed; errors leave the last good keyring in place.
    fn refresh(&self) -> Result<(), RemoteError> {
        let stamp = FileStamp::of(&self.path).map_err(|e| {
            RemoteError::new(RemoteErrorKind::Unavailable, format!("key file: {e}"))
        })?;
        if stamp == self.lock().1 {
            return Ok(());
        }
        let (keyring, stamp) =
            keyfile::load(&self.path).map_err(|e| RemoteError::new(RemoteErrorKind::Corrupt, e))?;
        *self.lock() = (keyring, stamp);
        Ok(())
    }
}

impl KekProvider for LocalKeyFile {
    fn name(&self) -> &'static str {
        "local"
    }

    fn status(&self, _deadline: Instant) -> Result<String, RemoteError> {
        self.refresh()?;
        self.lock().0.current_key_id(&self.key_name).ok_or_else(|| {
            RemoteError::new(
                RemoteErrorKind::NotFound,
                format!("key file has no key named {:?}", self.key_name),
            )
        })
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        _deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| RemoteError::new(RemoteErrorKind::Other, format!("entropy: {e}")))?;
        self.lock().0.wrap(key_id, kek, nonce)
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        _deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        let result = self.lock().0.unwrap(key_id, wrapped);
        match result {
            // Another host may have rotated the shared file: look again once.
            Err(e) if e.kind == RemoteErrorKind::NotFound => {
                self.refresh()?;
                self.lock().0.unwrap(key_id, wrapped)
            }
            other => other,
        }
    }
}
