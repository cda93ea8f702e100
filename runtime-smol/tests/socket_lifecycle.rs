//! Socket lifecycle of the smol example binary: a stale socket is reclaimed; a live listener, a
//! symlink and a regular file at the path are refused and left untouched.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../../runtime-blocking/tests/support/mod.rs"]
mod support;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

use support::{Plugin, TempDir, key_file};

const BIN: &str = env!("CARGO_BIN_EXE_kms-plugin-smol");

fn start_refused(keys: &Path, sock: &Path) -> String {
    let out = Command::new(BIN)
        .args([
            "--listen",
            &format!("unix://{}", sock.display()),
            "--key-file",
            keys.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn stale_socket_is_reclaimed() {
    let dir = TempDir::new("smol-stale");
    let keys = key_file(&dir);
    let sock = dir.join("kms.sock");
    drop(UnixListener::bind(&sock).unwrap()); // leaves the file, nobody listening
    let plugin = Plugin::start_bin(
        BIN,
        &[
            "--listen",
            &format!("unix://{}", sock.display()),
            "--key-file",
            keys.to_str().unwrap(),
        ],
    );
    UnixStream::connect(&sock).expect("the plugin listens on the reclaimed path");
    assert_eq!(plugin.terminate(), 0);
    assert!(!sock.exists(), "socket unlinked after SIGTERM");
}

#[test]
fn live_listener_symlink_and_regular_file_are_refused() {
    let dir = TempDir::new("smol-refuse");
    let keys = key_file(&dir);

    let live = dir.join("live.sock");
    let _listener = UnixListener::bind(&live).unwrap();
    let err = start_refused(&keys, &live);
    assert!(err.contains("another process is listening"), "{err}");
    assert!(
        UnixStream::connect(&live).is_ok(),
        "the live listener keeps its socket"
    );

    let regular = dir.join("regular");
    std::fs::write(&regular, b"keep me").unwrap();
    let err = start_refused(&keys, &regular);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&regular).unwrap(), b"keep me");

    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&regular, &link).unwrap();
    let err = start_refused(&keys, &link);
    assert!(err.contains("is a symlink"), "{err}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
