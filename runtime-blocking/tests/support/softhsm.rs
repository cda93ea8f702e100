//! SoftHSM2 tokens for the PKCS#11 tests (Debian `softhsm2` and `opensc`, installed by
//! `.ci/setup-softhsm.sh`), set up the way an operator would: `softhsm2-util` makes tokens,
//! `pkcs11-tool` makes keys, in a token directory of the test's own (`SOFTHSM2_CONF`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kms_plugin_blocking::provider::pkcs11::DEFAULT_MODULE;

/// Runs `cmd`; panics with its stdout and stderr unless it exits 0.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `dir/softhsm2.conf`, whose tokens live in `dir/tokens` (created); returns its path,
/// the value for `SOFTHSM2_CONF`.
pub fn conf(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    conf
}

/// Initialises a token labelled `label` in the first free slot of `conf`'s SoftHSM2.
pub fn init_token(conf: &Path, label: &str, so_pin: &str, pin: &str) {
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", so_pin, "--pin", pin]));
}

/// Generates a token AES-256 key labelled `key` with `CKA_ID` 01 on the token `label`.
pub fn keygen(conf: &Path, label: &str, pin: &str, key: &str) {
    run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", conf)
        .args(["--module", DEFAULT_MODULE, "--token-label", label])
        .args(["--login", "--pin", pin, "--keygen", "--key-type", "aes:32"])
        .args(["--label", key, "--id", "01"]));
}
