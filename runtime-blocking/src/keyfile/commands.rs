//! The `keys` commands as the command line runs them: each takes the key file's write lock
//! (saying on stderr when it has to wait for another command), does its work, and returns the
//! lines to print. Parser-independent: the CLI only maps arguments to these calls.

use std::path::Path;

use super::{NewVersion, WriteLock};

fn lock(path: &Path) -> Result<WriteLock, String> {
    super::lock_for_write(path, |lock| {
        eprintln!(
            "kms-plugin: waiting for {}: another `kms-plugin keys` command is changing the key file",
            lock.display()
        );
    })
}

/// `keys init [--force]`: a new key file with version 1 of `name`. With `force`, an existing
/// file is first kept as a timestamped backup, and the output says where.
pub fn init(path: &Path, name: &str, force: bool) -> Result<Vec<String>, String> {
    let lock = lock(path)?;
    let created = super::init(path, name, force, &lock)?;
    let mut lines = Vec::new();
    if let Some(backup) = &created.backup {
        lines.push(format!(
            "kept the previous key file as {} (mode 0600): keep it until nothing encrypted with it remains",
            backup.display()
        ));
    }
    lines.push(format!(
        "created {} with key {name} v1 ({}); back this file up",
        path.display(),
        created.key_id
    ));
    Ok(lines)
}

/// `keys rotate`: a new version of `name`, current at once (one host).
pub fn rotate(path: &Path, name: &str) -> Result<Vec<String>, String> {
    let lock = lock(path)?;
    let key_id = super::add_version(path, name, NewVersion::Current, &lock)?;
    Ok(vec![format!(
        "rotated {name} in {}: new key id {key_id}; running plugins pick it up without a restart \
         (several hosts: use `keys stage`, copy the file to every host, then `keys promote` on each)",
        path.display()
    )])
}

/// `keys stage`: a new version of `name` that decrypts but is not current yet.
pub fn stage(path: &Path, name: &str) -> Result<Vec<String>, String> {
    let lock = lock(path)?;
    let key_id = super::add_version(path, name, NewVersion::Staged, &lock)?;
    let (keyring, _) = super::load(path)?;
    Ok(vec![
        format!(
            "staged {name} in {}: new key id {key_id}; plugins can decrypt with it once they see the file, \
             and encrypt with it after `keys promote`",
            path.display()
        ),
        format!(
            "next: copy this file to every control-plane host, check `keys status` shows fingerprint {} \
             there, then run `keys promote` on each host",
            keyring.fingerprint()
        ),
    ])
}

/// `keys promote`: makes the highest (staged) version of `name` current.
pub fn promote(path: &Path, name: &str) -> Result<Vec<String>, String> {
    let lock = lock(path)?;
    let (promotion, key_id) = super::promote(path, name, &lock)?;
    let (keyring, _) = super::load(path)?;
    let fingerprint = keyring.fingerprint();
    Ok(vec![if promotion.changed() {
        format!(
            "promoted {name} v{} in {}: new key id {key_id}; running plugins encrypt with it within \
             --status-refresh; fingerprint {fingerprint}",
            promotion.to,
            path.display()
        )
    } else {
        format!(
            "{name} v{} is already current in {} ({key_id}); nothing staged to promote (if you \
             expected a staged version, copy the key file from the host where `keys stage` ran); \
             fingerprint {fingerprint}",
            promotion.to,
            path.display()
        )
    }])
}

/// `keys list`: one line per version. Reads only (no lock).
pub fn list(path: &Path) -> Result<Vec<String>, String> {
    super::list(path)
}

/// `keys status`: the fingerprint, then each name's current key id and staged versions.
pub fn status(path: &Path) -> Result<Vec<String>, String> {
    super::status(path)
}

/// For `serve` with the default key file: creates it when, and only when, it does not exist
/// (ENOENT). Any other error (permissions, I/O) is returned, never answered with a new key.
/// Returns the new key id if it created the file.
pub fn create_if_absent(path: &Path, name: &str) -> Result<Option<String>, String> {
    let absent = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(format!(
            "key file {}: {e}; refusing to create a new one (fix the error, or pass --key-file)",
            path.display()
        )),
    };
    if !absent(path)? {
        return Ok(None);
    }
    let lock = lock(path)?;
    if !absent(path)? {
        return Ok(None); // a concurrent `keys init` created it meanwhile
    }
    super::init(path, name, false, &lock).map(|created| Some(created.key_id))
}

#[cfg(test)]
mod tests {
    use super::create_if_absent;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed).unwrap();
        let dir = std::env::temp_dir().join(format!("kms-{tag}-{:016x}", u64::from_le_bytes(seed)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_key_file_is_created_only_when_none_exists() {
        let dir = temp_dir("create-if-absent");
        let path = dir.join("keyring");
        let key_id = create_if_absent(&path, "default").unwrap();
        assert!(key_id.is_some_and(|id| id.starts_with("local:default:v1:")));
        let first = std::fs::read(&path).unwrap();
        assert_eq!(create_if_absent(&path, "default").unwrap(), None);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            first,
            "an existing file is kept"
        );
        // Any error but "does not exist" (here: a regular file where a directory should be,
        // ENOTDIR; as root, permissions cannot stand in for it) is refused, never answered
        // with a new key.
        let blocker = dir.join("not-a-dir");
        std::fs::write(&blocker, b"").unwrap();
        let err = create_if_absent(&blocker.join("keyring"), "default").unwrap_err();
        assert!(err.contains("refusing to create"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
