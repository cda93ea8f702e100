//! Socket lifecycle: bind safely, reclaim only stale sockets, unlink on exit.
//!
//! - The parent directory is created (0700... kept as found if it exists).
//! - Something at the path: a socket nobody answers on is stale and removed; a live listener,
//!   a symlink, a regular file or anything else is refused with a clear error.
//! - The socket is bound inside a private temporary directory, chmod-ed, then renamed onto
//!   the path, so it never exists at the path with a wider mode than `--socket-mode`.
//!   The temporary directory's name is random (`.kms-plugin-bind-<16 hex>`, mode 0700), so
//!   no other user can prepare it in advance.
//! - Abstract sockets (`unix:///@name`) are bound with the exact name bytes.
//! - [`directory_warning`]: a socket directory other users may write to (sticky `/tmp`
//!   included) lets them take the path while the plugin restarts; `serve` warns at start.
//! - [`peer`]: who may connect (`SO_PEERCRED` on every accept).

pub mod peer;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::endpoint::Endpoint;

/// A bound listener that unlinks its socket file when dropped, if the path still names the
/// socket it bound (not one another process put there since).
pub struct BoundSocket {
    listener: UnixListener,
    /// The socket file and its (device, inode).
    path: Option<(PathBuf, (u64, u64))>,
}

impl BoundSocket {
    /// Binds `endpoint` with `mode` (path sockets only). Errors are one operator-facing line.
    pub fn bind(endpoint: &Endpoint, mode: u32) -> Result<Self, String> {
        match endpoint {
            Endpoint::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .map_err(|e| format!("--listen {endpoint}: {e}"))?;
                let listener = UnixListener::bind_addr(&addr).map_err(|e| {
                    if e.kind() == ErrorKind::AddrInUse {
                        format!("--listen {endpoint}: another process already listens on this abstract socket; stop it or choose another name")
                    } else {
                        format!("--listen {endpoint}: cannot bind: {e}")
                    }
                })?;
                Ok(Self {
                    listener,
                    path: None,
                })
            }
            Endpoint::Path(path) => bind_path(endpoint, path, mode),
        }
    }

    /// The listener.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// The socket file, for path sockets.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_ref().map(|(p, _)| p.as_path())
    }
}

/// The (device, inode) of whatever is at `path`, without following a symlink.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if let Some((path, ours)) = &self.path {
            if identity(path) == Some(*ours) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn bind_path(endpoint: &Endpoint, path: &Path, mode: u32) -> Result<BoundSocket, String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("--listen {endpoint}: no parent directory"))?;
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| {
                format!(
                    "--listen {endpoint}: cannot create directory {}: {e}",
                    dir.display()
                )
            })?;
    }
    reclaim_if_stale(endpoint, path)?;

    // Bind in a private directory next to the target, fix the mode, then rename into place.
    // The name is random: another user cannot create it (or a symlink) beforehand, and
    // DirBuilder::create fails rather than reuse anything already there.
    let mut nonce = [0u8; 8];
    getrandom::getrandom(&mut nonce)
        .map_err(|e| format!("--listen {endpoint}: OS random generator failed: {e}"))?;
    let private = dir.join(format!(
        ".kms-plugin-bind-{:016x}",
        u64::from_le_bytes(nonce)
    ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| {
            format!(
                "--listen {endpoint}: cannot create {}: {e}",
                private.display()
            )
        })?;
    let tmp = private.join("s");
    let result = (|| -> Result<UnixListener, String> {
        let listener = UnixListener::bind(&tmp)
            .map_err(|e| format!("--listen {endpoint}: cannot bind: {e}"))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("--listen {endpoint}: cannot set mode {mode:o}: {e}"))?;
        // rename(2) refuses nothing here: reclaim_if_stale left the path empty, and a racing
        // creator would be replaced only if it is a socket-or-file at the same path.
        if fs::symlink_metadata(path).is_ok() {
            return Err(format!(
                "--listen {endpoint}: {} appeared while binding; is another plugin starting?",
                path.display()
            ));
        }
        fs::rename(&tmp, path)
            .map_err(|e| format!("--listen {endpoint}: cannot move socket into place: {e}"))?;
        Ok(listener)
    })();
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_dir(&private);
    let listener = result?;
    let ours = identity(path)
        .ok_or_else(|| format!("--listen {endpoint}: the socket vanished right after binding"))?;
    Ok(BoundSocket {
        listener,
        path: Some((path.to_path_buf(), ours)),
    })
}

/// Leaves `path` free: removes a stale socket, refuses anything else.
fn reclaim_if_stale(endpoint: &Endpoint, path: &Path) -> Result<(), String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "--listen {endpoint}: cannot inspect {}: {e}",
                path.display()
            ));
        }
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(format!(
            "--listen {endpoint}: {} is a symlink; refusing to follow or replace it (remove it if it is yours)",
            path.display()
        ));
    }
    if !kind.is_socket() {
        return Err(format!(
            "--listen {endpoint}: {} exists and is not a socket; refusing to replace it (move it away or choose another path)",
            path.display()
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "--listen {endpoint}: another process is listening on {}; stop it first (is a plugin already running?)",
            path.display()
        )),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => fs::remove_file(path).map_err(|e| {
            format!(
                "--listen {endpoint}: cannot remove stale socket {}: {e}",
                path.display()
            )
        }),
        Err(e) => Err(format!(
            "--listen {endpoint}: cannot tell whether {} is in use ({e}); remove it if it is stale",
            path.display()
        )),
    }
}

/// A warning when `endpoint`'s directory may be written by users other than its owner (group-
/// or world-writable, sticky `/tmp` included): such a user can create the socket path while
/// the plugin is down and receive what kube-apiserver sends. `None` for abstract sockets and
/// private directories.
pub fn directory_warning(endpoint: &Endpoint) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let Endpoint::Path(path) = endpoint else {
        return None;
    };
    let dir = path.parent()?;
    let meta = fs::metadata(dir).ok()?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 == 0 {
        return None;
    }
    let sticky = if mode & 0o1000 == 0 { "" } else { ", sticky" };
    Some(format!(
        "the socket directory {} (mode {mode:04o}{sticky}, owner uid {}) is writable by other users: one of them can take the socket path while the plugin restarts; use a directory only root and the plugin's user can write, such as /run/kms-plugin",
        dir.display(),
        meta.uid()
    ))
}
