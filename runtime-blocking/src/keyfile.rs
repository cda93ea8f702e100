//! The local provider's key file: loading with permission checks, serialized atomic writes,
//! and the `keys` commands.
//!
//! Losing the key file loses every Secret encrypted under it, so:
//! - every write holds an exclusive advisory lock (`flock`) on a sibling `<file>.lock`, so
//!   concurrent `keys` commands serialize: each reads the file the previous one wrote, and two
//!   keys never get the same version;
//! - writes never leave a half-written file: a temp file in the same directory is written,
//!   fsynced, renamed over the target, and the directory is fsynced before the command reports
//!   a version as created;
//! - `keys init --force` first copies the file it replaces to a timestamped backup beside it.
//!
//! Files are created 0600; a key file readable by group or others is refused.

pub mod commands;

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
    // The stamp of the file that was read (not of the path, which may be replaced meanwhile).
    let meta = file
        .metadata()
        .map_err(|e| format!("key file {shown}: {e}"))?;
    let stamp = FileStamp {
        ino: meta.ino(),
        len: meta.len(),
        mtime_nanos: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    };
    Ok((keyring, stamp))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, String> {
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("key file {}: not a file name", path.display()))?;
    Ok(parent_dir(path).join(format!("{}{suffix}", file_name.to_string_lossy())))
}

/// An exclusive advisory lock (`flock`) on `<key file>.lock`, held while a `keys` command reads,
/// changes and writes the key file. Released when dropped (or when the process dies).
pub struct WriteLock {
    _file: File,
}

// `File::lock`/`try_lock` (flock(2) on Linux) are std since 1.89; the pinned toolchain
// (rust-toolchain.toml, 1.95) has them, the workspace's declared MSRV does not yet.
#[allow(clippy::incompatible_msrv)]
/// Takes the write lock of `path`'s key file, creating its directory (0700) and the lock file
/// (0600) if needed. If another command holds it, calls `on_wait` once and waits for it.
pub fn lock_for_write(path: &Path, on_wait: impl FnOnce(&Path)) -> Result<WriteLock, String> {
    let dir = parent_dir(path);
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create key directory {}: {e}", dir.display()))?;
    }
    let lock_path = sibling(path, ".lock")?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| format!("cannot open lock file {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            on_wait(&lock_path);
            file.lock()
                .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", lock_path.display()));
        }
    }
    Ok(WriteLock { _file: file })
}

/// Writes `keyring` to `path` atomically with mode 0600 (temp file + fsync + rename + dir
/// fsync). With `overwrite == false` an existing file is left untouched and an error returned.
/// The caller holds the [`WriteLock`].
pub fn store(
    path: &Path,
    keyring: &Keyring,
    overwrite: bool,
    _lock: &WriteLock,
) -> Result<(), String> {
    let shown = path.display();
    let dir = parent_dir(path);
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(format!(
            "key file {shown} already exists; refusing to overwrite it (use `kms-plugin keys \
             rotate` to add a version; `keys init --force` replaces it after a backup)"
        ));
    }
    let tmp = sibling(path, &format!(".tmp-{}", std::process::id()))?;
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

/// `YYYYMMDDTHHMMSSZ` for `secs` since the Unix epoch (UTC).
fn utc_stamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Copies the key file at `path` to `<path>.bak-<UTC time>` (mode 0600, fsynced, never over an
/// existing file) and returns the backup's path. `None` when there is no file to keep.
fn backup(path: &Path, _lock: &WriteLock) -> Result<Option<PathBuf>, String> {
    let shown = path.display();
    let mut source = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot back up key file {shown} before replacing it: {e}"
            ));
        }
    };
    let mut bytes = Zeroizing::new(Vec::new());
    source
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot back up key file {shown} before replacing it: {e}"))?;
    let stamp = utc_stamp(crate::log::wall_clock().as_secs());
    for attempt in 0..100u32 {
        let suffix = if attempt == 0 {
            format!(".bak-{stamp}")
        } else {
            format!(".bak-{stamp}-{attempt}")
        };
        let target = sibling(path, &suffix)?;
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write backup {}: {e}", target.display())),
        };
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| File::open(parent_dir(path))?.sync_all())
            .map_err(|e| format!("cannot write backup {}: {e}", target.display()))?;
        return Ok(Some(target));
    }
    Err(format!(
        "cannot back up key file {shown}: too many backups named .bak-{stamp}"
    ))
}

/// What `keys init` did.
pub struct Created {
    /// The new key's key_id.
    pub key_id: String,
    /// Where the replaced file was kept (`--force` over an existing file).
    pub backup: Option<PathBuf>,
}

/// `keys init`: a new keyring with one version of `name`. With `force`, an existing file is
/// first kept as a timestamped backup beside it.
pub fn init(path: &Path, name: &str, force: bool, lock: &WriteLock) -> Result<Created, String> {
    let mut keyring = Keyring::new();
    keyring
        .add_key(name, random_key()?)
        .map_err(|e| format!("key name {name:?}: {e}"))?;
    let backup = if force { backup(path, lock)? } else { None };
    store(path, &keyring, force, lock)?;
    let key_id = keyring
        .current_key_id(name)
        .ok_or_else(|| "internal error: no key id after init".to_string())?;
    Ok(Created { key_id, backup })
}

/// How a new version enters the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NewVersion {
    /// `keys rotate`: the new version is current at once (single host).
    Current,
    /// `keys stage`: the new version unwraps but is not current until `keys promote`.
    Staged,
}

/// `keys rotate` / `keys stage`: adds a version of `name` (rotate also creates a new name);
/// old versions stay. Returns the new version's key_id.
pub fn add_version(
    path: &Path,
    name: &str,
    how: NewVersion,
    lock: &WriteLock,
) -> Result<String, String> {
    let (mut keyring, _) = load(path)?;
    let key = random_key()?;
    let version = match how {
        NewVersion::Current => keyring.add_key(name, key),
        NewVersion::Staged => keyring.stage_key(name, key),
    }
    .map_err(|e| format!("key name {name:?}: {e}"))?;
    store(path, &keyring, true, lock)?;
    keyring
        .key_id(name, version)
        .ok_or_else(|| "internal error: no key id for the new version".to_string())
}

/// `keys promote`: makes the highest (staged) version of `name` current. Returns the
/// promotion and the now-current key_id; the file is rewritten only if something changed.
pub fn promote(
    path: &Path,
    name: &str,
    lock: &WriteLock,
) -> Result<(kms_plugin_core::keyring::Promotion, String), String> {
    let (mut keyring, _) = load(path)?;
    let promotion = keyring
        .promote(name)
        .map_err(|e| format!("key name {name:?}: {e}"))?;
    if promotion.changed() {
        store(path, &keyring, true, lock)?;
    }
    let key_id = keyring
        .current_key_id(name)
        .ok_or_else(|| "internal error: no current key id".to_string())?;
    Ok((promotion, key_id))
}

/// `keys list`: one line per version: `name vN key_id [current|staged]`. Never key bytes.
pub fn list(path: &Path) -> Result<Vec<String>, String> {
    let (keyring, _) = load(path)?;
    let mut lines = Vec::new();
    for name in keyring.names() {
        let current = keyring.current_version(name);
        for version in keyring.versions(name) {
            let key_id = keyring.key_id(name, version).unwrap_or_default();
            let mark = match current {
                Some(c) if c == version => " current",
                Some(c) if version > c => " staged",
                _ => "",
            };
            lines.push(format!("{name} v{version} {key_id}{mark}"));
        }
    }
    Ok(lines)
}

/// `keys status`: the keyring fingerprint (compare it across hosts), then per name its
/// current key_id and any staged versions.
pub fn status(path: &Path) -> Result<Vec<String>, String> {
    let (keyring, _) = load(path)?;
    let mut lines = vec![format!(
        "fingerprint {} ({} versions)",
        keyring.fingerprint(),
        keyring.len()
    )];
    for name in keyring.names() {
        let current = keyring.current_key_id(name).unwrap_or_default();
        let staged: Vec<String> = keyring
            .staged_versions(name)
            .map(|v| format!("v{v}"))
            .collect();
        let staged = if staged.is_empty() {
            String::new()
        } else {
            format!(" staged {}", staged.join(" "))
        };
        lines.push(format!("{name} current {current}{staged}"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;

    #[test]
    fn utc_stamps_are_calendar_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_796_571_296), "20261206T153456Z");
    }
}
