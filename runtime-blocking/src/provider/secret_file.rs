//! Credentials read from files (Vault token, PKCS#11 PIN), re-read whenever the file changes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use kms_plugin_core::{RemoteError, RemoteErrorKind};
use zeroize::Zeroizing;

/// Longest accepted credential.
pub const MAX_SECRET_LEN: usize = 8 * 1024;

/// Identity of one version of a file: size, modification time and inode. A rotation by
/// rename (Vault Agent, Kubernetes secret volumes) or by rewrite changes at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    mtime_nanos: i128,
    inode: u64,
}

impl FileStamp {
    /// The stamp of a file's current version, from its metadata.
    pub fn of(meta: &fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            mtime_nanos: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
        }
    }
}

fn auth(detail: String) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Auth, detail)
}

/// Checks a credential is a printable ASCII word; errors name `origin`, never the value.
pub fn check_secret(secret: &str, what: &str, origin: &str) -> Result<(), RemoteError> {
    if secret.is_empty() {
        return Err(auth(format!("{what} from {origin} is empty")));
    }
    if secret.len() > MAX_SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(auth(format!(
            "{what} from {origin} is not a printable ASCII word of at most {MAX_SECRET_LEN} bytes"
        )));
    }
    Ok(())
}

/// Reads a credential file (surrounding whitespace trimmed), caching it until it changes.
pub struct SecretFile {
    path: PathBuf,
    what: &'static str,
    cached: Mutex<Option<(FileStamp, Arc<Zeroizing<String>>)>>,
}

impl SecretFile {
    /// A reader of `path`; `what` names the credential in errors (`vault token`, `PIN`).
    pub fn new(path: PathBuf, what: &'static str) -> Self {
        Self {
            path,
            what,
            cached: Mutex::new(None),
        }
    }

    /// The current content and its stamp. Missing, unreadable, empty or oversized files are
    /// `Auth` errors naming the path.
    pub fn read(&self) -> Result<(FileStamp, Arc<Zeroizing<String>>), RemoteError> {
        let what = self.what;
        let shown = self.path.display();
        let meta =
            fs::metadata(&self.path).map_err(|e| auth(format!("{what} file {shown}: {e}")))?;
        let stamp = FileStamp::of(&meta);
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, secret)) = cached.as_ref().filter(|(s, _)| *s == stamp) {
            return Ok((stamp, Arc::clone(secret)));
        }
        if meta.len() > MAX_SECRET_LEN as u64 + 64 {
            return Err(auth(format!("{what} file {shown} is too large")));
        }
        let raw = Zeroizing::new(
            fs::read(&self.path).map_err(|e| auth(format!("{what} file {shown}: {e}")))?,
        );
        let text = std::str::from_utf8(&raw)
            .map_err(|_| auth(format!("{what} file {shown} is not UTF-8")))?;
        let secret = Zeroizing::new(text.trim().to_owned());
        check_secret(&secret, what, &format!("file {shown}"))?;
        let secret = Arc::new(secret);
        *cached = Some((stamp, Arc::clone(&secret)));
        Ok((stamp, secret))
    }
}
