//! The local provider's key file: loading with permission checks, and atomic writes.
//!
//! Losing the key file loses every Secret encrypted under it, so writes never leave a
//! half-written file: a temp file in the same directory is written, fsynced, renamed over the
//! target, and the directory is fsynced. Files are created 0600; a key file readable by group
//! or others is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::secret::Secret32;
use zeroize::Zeroizing;

/// The default key file: on persistent host storage (a hostPath in the static pod).
pub const DEFAULT_KEY_FILE: &str = "/var/lib/kms-plugin/keyring";

/// Identifies one version of the file on disk (changes when it is replaced or rewritten).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    ino: u64,
    len: u64,
    mtime_nanos: i128,
}

impl FileStamp {
    /// The stamp of `path` now.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = fs::metadata(path)?;
        Ok(Self {
            ino: meta.ino(),
            len: meta.len(),
            mtime_nanos: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

/// Reads and parses a key file, refusing one readable by group or others. Errors are one
/// line naming the file and the fix; they never contain key material.
pub fn load(path: &Path) -> Result<(Keyring, FileStamp), String> {
    let shown = path.display();
    let mut file = File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!(
            "key file {shown} does not exist; create it with `kms-plugin keys init --key-file {shown}` \
             (or restore it from your backup)"
        ),
        ErrorKind::PermissionDenied => {
            format!("key file {shown}: permission denied; run as the file's owner")
        }
        _ => format!("key file {shown}: {e}"),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("key file {shown} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {shown} is readable or writable by group/others (mode {mode:04o}); \
             fix it with `chmod 600 {shown}`"
        ));
    }
    let limit = kms_plugin_core::keyring::MAX_FILE_LEN as u64;
    if meta.len() > limit {
        return Err(format!(
            "key file {shown} is larger than {limit} bytes; is it the right file?"
        ));
    }
    let mut text = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.read_to_end(&mut text)
        .map_err(|e| format!("key file {shown}: {e}"))?;
    let keyring = Keyring::parse(&text).map_err(|e| format!("key file {shown}: {e}"))?;
    let stamp = FileStamp::of(path).map_err(|e| format!("key file {shown}: {e}"))?;
    Ok((keyring, stamp))
}

/// Writes `keyring` to `path` atomically with mode 0600 (temp file + fsync + rename + dir
/// fsync). With `overwrite == false` an existing file is left untouched and an error returned.
pub fn store(path: &Path, keyring: &Keyring, overwrite: bool) -> Result<(), String> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create key directory {}: {e}", dir.display()))?;
    }
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(format!(
            "key file {shown} already exists; refusing to overwrite it (pass --force only if \
             nothing was ever encrypted with it, or use `kms-plugin keys rotate`)"
        ));
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("key file {shown}: not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&keyring.serialize())?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            fs::rename(&tmp, path)?;
        } else {
            // Link fails if the target appeared meanwhile: never clobber a key file.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write key file {shown}: {e}"));
    }
    Ok(())
}

/// A fresh 32-byte key from the OS CSPRNG.
pub fn random_key() -> Result<Secret32, String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut *bytes).map_err(|e| format!("OS random generator failed: {e}"))?;
    Ok(Secret32::from_bytes(*bytes))
}

/// `keys init`: a new keyring with one version of `name`.
pub fn init(path: &Path, name: &str, force: bool) -> Result<String, String> {
    let mut keyring = Keyring::new();
    keyring
        .add_key(name, random_key()?)
        .map_err(|e| format!("key name {name:?}: {e}"))?;
    store(path, &keyring, force)?;
    keyring
        .current_key_id(name)
        .ok_or_else(|| "internal error: no key id after init".to_string())
}

/// `keys rotate`: adds a version of `name` (creating the name if needed); old versions stay.
pub fn rotate(path: &Path, name: &str) -> Result<String, String> {
    let (mut keyring, _) = load(path)?;
    keyring
        .add_key(name, random_key()?)
        .map_err(|e| format!("key name {name:?}: {e}"))?;
    store(path, &keyring, true)?;
    keyring
        .current_key_id(name)
        .ok_or_else(|| "internal error: no key id after rotate".to_string())
}

/// `keys list`: one line per version: `name version key_id [current]`. Never key bytes.
pub fn list(path: &Path) -> Result<Vec<String>, String> {
    let (keyring, _) = load(path)?;
    let mut lines = Vec::new();
    for name in keyring.names() {
        let current = keyring.current_version(name);
        for version in keyring.versions(name) {
            let key_id = keyring.key_id(name, version).unwrap_or_default();
            let mark = if Some(version) == current {
                " current"
            } else {
                ""
            };
            lines.push(format!("{name} v{version} {key_id}{mark}"));
        }
    }
    Ok(lines)
}
